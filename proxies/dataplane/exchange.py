"""One request/response carried through the sidecar: what inbound and outbound exchanges share.

The downstream connection (``proxies.dataplane.downstream``) parses a request's head and
creates an exchange for it: an ``InboundExchange`` (``inbound``: to the local app) or an
``OutboundExchange`` (``outbound``: under the destination's traffic policy). This base
streams the request body up and the response down, binds each try to an upstream
connection (a pooled one, or one it opens), answers with a sidecar-made error response
(``answer``) and records the outcome (telemetry, the sampled span) when the response
ends. The subclasses fill in the hooks: the first step (``begin``), what binding a
connection counts, whether one may be opened, and how a try ends or fails.

It is a callback state machine: the downstream connection calls ``begin``,
``request_body`` and ``request_complete``, the upstream connection the ``on_response_*``
methods; what happens when a peer fails it or time runs out is ``proxies.dataplane.endings``.
Both connections are typed against ``interfaces``, never imported.

Writes are coalesced: bytes for a peer are appended to a pending list during a parser
feed and written once at its end, so a small request or response costs one syscall
instead of one per head/body/terminator (each uvloop write is a send(2) of ~3 µs here).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from proxies import http1
from proxies.dataplane import errors
from proxies.dataplane.errors import LocalError
from proxies.dataplane.interfaces import PAUSE_CONNECT, Downstream, Plane, Pool, Upstream
from proxies.http1 import HEAD
from proxies.mesh.endpoints import Endpoint
from proxies.telemetry.tailkeep import KEEP_FIELD
from proxies.telemetry.tracecontext import TraceContext
from proxies.traffic.ratelimit import DESTINATION, RateLimiter
from proxies.traffic.retry import CONNECT_FAILURE, IDEMPOTENT_METHOD_BYTES, REPLAY_LIMIT

log = logging.getLogger("proxies.exchange")

DRAIN_LIMIT = 1024 * 1024  # request body discarded after an early response before closing

_perf = time.perf_counter
_NO_BODY_STATUS = (204, 304)


class Exchange:
    """State of one request/response through the proxy (see the module docstring)."""

    outbound: bool  # set by each subclass, as is
    direction: str  # the telemetry label

    __slots__ = (
        # the request as the client sent it
        "downstream", "plane", "method", "target", "host", "head", "chunked_req", "has_body",
        "expect_continue", "client_keep_alive", "http10", "trace", "source", "source_sidecar",
        # where it goes (the service's name, for telemetry), and the connection of the current try
        "destination_service", "destination_version", "endpoint", "conn", "conn_reused", "try_gen",
        "retried_fresh",
        # the request body: pending writes, and what is kept to send it again
        "up_pending", "retry_ok", "replay", "replay_size", "replay_limit", "request_done", "drained",
        # the response
        "down_pending", "response_started", "response_done", "chunk_resp", "eof_body", "status",
        "finished",
        # telemetry
        "t0", "start_ns", "events",
    )  # fmt: skip

    def __init__(
        self, downstream: Downstream, method: bytes, target: bytes, host: bytes | None, head: list[bytes],
        chunked_req: bool, has_body: bool, client_keep_alive: bool, http10: bool, expect_continue: bool,
        trace: TraceContext, source: str, source_sidecar: bool,
    ) -> None:  # fmt: skip
        plane = downstream.plane
        self.downstream = downstream
        self.plane: Plane = plane
        self.method = method
        self.target = target
        self.host = host
        self.head = head
        self.chunked_req = chunked_req
        self.has_body = has_body
        self.retry_ok = not has_body or method in IDEMPOTENT_METHOD_BYTES  # see proxies.traffic.retry
        self.expect_continue = expect_continue
        self.client_keep_alive = client_keep_alive
        self.http10 = http10
        self.trace = trace
        self.t0 = _perf()
        sampled = trace.sampled
        self.start_ns = time.time_ns() if sampled else 0
        self.events: list[tuple[int, str, dict[str, Any]]] | None = [] if sampled else None
        self.source = source
        self.source_sidecar = source_sidecar
        self.destination_service = plane.service
        self.destination_version = plane.version
        self.endpoint: Endpoint | None = None
        self.conn: Upstream | None = None
        self.conn_reused = False
        self.try_gen = 0  # bumped when a try ends, so a late connect knows it is stale
        self.retried_fresh = False
        self.up_pending: list[bytes] = []
        self.replay: list[bytes] | None = [] if self.retry_ok else None
        self.replay_size = 0
        self.replay_limit = REPLAY_LIMIT
        self.down_pending: list[bytes] = []
        self.request_done = False
        self.response_started = False
        self.response_done = False
        self.chunk_resp = False
        self.eof_body = False
        self.status = 0
        self.drained = 0
        self.finished = False

    # the request head ----------------------------------------------------------------------

    def _origin_form(self) -> bytes | None:
        """The request-target in origin-form (Host taken from absolute-form), or None: answered."""
        if self.method == b"CONNECT":
            self.answer(errors.CONNECT_NOT_SUPPORTED)
            return None
        split = http1.split_target(self.target)
        if split is None:
            self.answer(errors.BAD_REQUEST_TARGET)
            return None
        authority, origin = split
        if authority is not None:
            self.host = authority
            self.head = http1.with_host(self.head, authority)
        return origin

    def _rate_limited(self, limiter: RateLimiter, service: str, outbound: bool) -> bool:
        """Take a token for this request's caller; without one, answer 429 and say so.

        Outbound: this sidecar's limit on what it sends to ``service`` (the caller is always
        the local service). Inbound: the local service's own limit on its callers, keyed by
        their ``x-meshui-source`` ("unknown" without one), before the local app sees it.
        """
        wait = limiter.admit(self.source)
        if not wait:
            return False
        scope = limiter.rejected_scope or DESTINATION
        self.plane.metrics.count_rate_limited(scope, outbound, self.source, service)
        self.event("rate_limited", {"scope": scope, "retry_after_s": wait})
        self.answer(errors.rate_limited(service, scope, wait))
        return True

    def event(self, name: str, attributes: dict[str, Any]) -> None:
        """Add an event to the request's span: when it is sampled, or may be kept (tail keep)."""
        events = self.events
        if events is None:
            if self.plane.tail is None:
                return
            events = self.events = []  # only now: most unsampled requests have no event
        events.append((time.time_ns(), name, attributes))

    # the upstream connection ---------------------------------------------------------------

    def dispatch(self, fresh: bool) -> None:
        """Send on an idle pooled connection to ``endpoint``, or open one (``fresh``: always)."""
        endpoint = self.endpoint
        assert endpoint is not None
        plane = self.plane
        pool = plane.pool_for(endpoint)
        conn = None if fresh else pool.take_idle()
        if conn is not None:
            self._attach(conn, True)
            return
        if not self._reserve_connect(pool):
            return
        self.downstream.pause(PAUSE_CONNECT)
        plane.loop.create_task(self._connect(pool, self.try_gen))

    async def _connect(self, pool: Pool, gen: int) -> None:
        try:
            try:
                conn = await pool.connect()
            except (TimeoutError, OSError) as exc:
                self._connect_settled(None)
                if not self.finished and gen == self.try_gen:
                    self.downstream.resume(PAUSE_CONNECT)
                    timed_out = isinstance(exc, asyncio.TimeoutError)
                    reason = "timed out" if timed_out else (exc.strerror or str(exc))
                    self.connect_failed(f"connect failed: {reason}", timed_out)
                return
            self._connect_settled(conn)
            if self.finished or gen != self.try_gen:
                pool.release(conn)  # the try is over (timed out); the connection is still good
                return
            self.downstream.resume(PAUSE_CONNECT)
            self._attach(conn, False)
        except Exception:
            log.exception("unexpected error while connecting upstream")
            self.downstream.abort()

    def resend(self) -> None:
        """Queue what was sent so far again, for another connection or try."""
        replay = self.replay or []
        self.up_pending[:0] = replay
        self.replay = []
        self.replay_size = 0

    # request side (called by the downstream connection) ------------------------------------------------

    def flush_up(self) -> None:
        pending = self.up_pending
        conn = self.conn
        if not pending or conn is None:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        replay = self.replay
        if replay is not None:
            self.replay_size += len(data)
            if self.replay_size > self.replay_limit:
                self.replay = None  # too big to keep: this request is no longer retryable
            else:
                replay.append(data)
        conn.idle_ticks = 0
        transport = conn.transport
        if not transport.is_closing():
            transport.write(data)

    def request_body(self, data: bytes) -> None:
        if self.response_done:
            self.drained += len(data)
            if self.drained > DRAIN_LIMIT:
                self.downstream.abort()
            return
        if self.chunked_req:
            self.up_pending += (b"%x\r\n" % len(data), data, http1.CRLF)
        else:
            self.up_pending.append(data)

    def request_complete(self) -> None:
        self.request_done = True
        if self.response_done:
            self._finish()
        elif self.chunked_req:
            self.up_pending.append(http1.LAST_CHUNK)

    # response side (called by the upstream connection) ------------------------------------

    def on_response_head(
        self, status: int, reason: bytes, lines: list[bytes], has_length: bool, chunked: bool,
        tokens: list[bytes] | None,
    ) -> None:  # fmt: skip
        if status < 200:
            # Interim (100 Continue, 103 Early Hints): forward to HTTP/1.1 clients only.
            if not self.http10:
                lines[0] = http1.status_line(status, reason)
                lines.append(http1.CRLF)
                self.down_pending.append(b"".join(lines))
            return
        if tokens:
            # Never the framing: a "Connection: content-length" must not leave the body
            # forwarded without its length (http1.FRAMING).
            named = http1.named_fields(tokens)
            if named:
                lines = http1.drop_named_fields(lines, named, 1)
        lines[0] = http1.status_line(status, reason)
        self.status = status
        self.response_started = True
        if self.method == HEAD or status in _NO_BODY_STATUS:
            pass
        elif has_length and not chunked:
            pass
        else:
            if not chunked:
                self.eof_body = True  # body delimited by the upstream closing
            if self.http10:
                self.client_keep_alive = False
            else:
                self.chunk_resp = True
                lines.append(http1.TRANSFER_CHUNKED)
        if not self.outbound and self.source_sidecar:
            # Tail keep, in-band: tell the calling sidecar to keep this trace (tailkeep.py).
            tail = self.plane.tail
            if tail is not None and tail.header and not self.trace.sampled and tail.signal(self, status):
                lines.append(KEEP_FIELD)
        if not self.client_keep_alive:
            lines.append(http1.CONNECTION_CLOSE)
        lines.append(http1.CRLF)
        self.down_pending.append(b"".join(lines))

    def keep_hinted(self) -> None:
        """The response carried ``x-meshui-keep`` (stripped already by the upstream connection).

        Believed only outbound, where the upstream is another sidecar's inbound listener; the
        local app's (inbound) is ignored, so nothing outside the mesh can set it.
        """
        if self.outbound and not self.trace.sampled:
            tail = self.plane.tail
            if tail is not None and tail.header:
                tail.hinted(self.trace.trace_id)

    def on_response_body(self, data: bytes) -> None:
        if self.chunk_resp:
            self.down_pending += (b"%x\r\n" % len(data), data, http1.CRLF)
        else:
            self.down_pending.append(data)

    def flush_down(self) -> None:
        pending = self.down_pending
        if not pending:
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        self.downstream.write(data)

    def on_response_complete(self, upstream_keep_alive: bool) -> None:
        if self.chunk_resp:
            self.down_pending.append(http1.LAST_CHUNK)
        self.flush_down()
        self.response_done = True
        conn = self.detach()
        self.endpoint.requests_total += 1  # type: ignore[union-attr]
        if conn is not None:
            if upstream_keep_alive and self.request_done and not self.eof_body:
                conn.pool.release(conn)
            else:
                conn.close()
        self.record(False)
        self.after_response()

    # hooks: each kind of exchange fills these in -----------------------------------------

    def begin(self) -> None:
        """Start: called when this exchange becomes the active one of its connection."""
        raise NotImplementedError

    def _attach(self, conn: Upstream, reused: bool) -> None:
        """Bind ``conn`` to this exchange for the current try, and send what is pending."""
        raise NotImplementedError

    def detach(self) -> Upstream | None:
        """Unbind the current connection and return it (for the caller to release or close)."""
        raise NotImplementedError

    def _reserve_connect(self, pool: Pool) -> bool:
        """Whether a new connection may be opened (False: answered already)."""
        raise NotImplementedError

    def _connect_settled(self, conn: Upstream | None) -> None:
        """A connect ended, opened (``conn``) or failed (None): give back what it held."""
        raise NotImplementedError

    def end_try(self, ok: bool) -> None:
        """The current try is over: a connection still being opened for it is stale."""
        raise NotImplementedError

    def tell_outlier_detector(self, status: int | None, gateway_error: bool) -> None:
        """Count the try's outcome against its instance."""
        raise NotImplementedError

    def try_failed(self, error: str, reason: str, timeout_kind: str | None = None) -> None:
        """A try got no response (``error``, a ``proxies.traffic.retry`` name): answer or retry."""
        raise NotImplementedError

    # endings --------------------------------------------------------------------------------

    def answer(self, error: LocalError) -> None:
        """Answer with a sidecar-made error response (text/plain, x-meshui-error)."""
        conn = self.detach()
        if conn is not None:
            conn.close()
        if self.response_started:
            self.downstream.abort()
            return
        close = errors.must_close(error, self.request_done, self.expect_continue, self.client_keep_alive)
        if close:
            self.client_keep_alive = False
        status = self.status = error.status
        self.response_started = True
        self.response_done = True
        self.downstream.write(errors.encode(error, head_only=self.method == HEAD, close=close))
        self.record(status >= 500)
        self.after_response()

    def connect_failed(self, reason: str, timed_out: bool) -> None:
        """Opening a connection for the current try failed or timed out."""
        endpoint = self.endpoint
        assert endpoint is not None
        self.plane.metrics.count_connect_error(self.direction, self.destination_service, endpoint.address)
        self.try_failed(CONNECT_FAILURE, reason, "connect" if timed_out else None)

    def after_response(self) -> None:
        """The response is out: the exchange is finished, unless request body is still to come."""
        downstream = self.downstream
        if not self.client_keep_alive:
            downstream.close_after_response()
        elif not self.request_done:
            return  # finished by request_complete, once the rest is read (or drained)
        if not self.finished:  # _finish, inlined: this runs once per request
            self.finished = True
            downstream.exchange_finished(self)

    def _finish(self) -> None:
        if not self.finished:
            self.finished = True
            self.downstream.exchange_finished(self)

    def record(self, error: bool) -> None:
        """Report the request: telemetry always, the span when sampled, else to tail keep."""
        plane = self.plane
        status = self.status
        end = _perf()
        telemetry = plane.telemetry
        telemetry.record_request(
            self.direction,
            self.source,
            self.destination_service,
            self.destination_version,
            status,
            self.source_sidecar,
            end - self.t0,
        )
        trace = self.trace
        if trace.sampled:
            plane.record_span(self, error or status >= 500)
        else:
            tail = plane.tail
            # Held in the ring (the common case) or kept now: a slow or failed request.
            if tail is None or not tail.add(self, end, error or status >= 500):
                return
        # Its span is exported: let the latency bucket it landed in point at it.
        telemetry.record_exemplar(
            self.direction, self.source, self.destination_service, self.destination_version,
            status, self.source_sidecar, end - self.t0, trace.trace_id, trace.span_id,
            time.time_ns())
