"""One request/response carried through the sidecar, from client connection to upstream and back.

The listener parses the request and creates the ``Exchange``; the exchange applies the
destination's traffic policy (``proxies.destination``) in the order docs/policy.md gives:
rate limit -> route -> fault -> circuit breaker -> pick (outlier-eligible instances, then
the balancer) -> try, with a per-try timeout -> on a retryable outcome, within the retry
budget and the breaker's ``max_retries``, back off and try another instance. An inbound
request meets only the local service's own rate limit (per calling service and in total)
before it goes to the local app. It borrows a
pooled connection (or opens one), streams the request body up and the response body
down, answers with a sidecar-made error response when it must (``proxies.errors``), and
records the outcome (telemetry, sampled span with its events) when the response ends.

The exchange is a callback state machine: a try begins in ``_start_try`` and ends in
``_end_try`` (response head, connect failure, reset, per-try timeout), which is where the
balancer and outlier detector hear about it. Timers (request, per-try, backoff, fault
delay) are loop timers cancelled when the exchange records its outcome.

Writes are coalesced: bytes for a peer are appended to a pending list during a parser
feed and written once at its end, so a small request or response costs one syscall
instead of one per head/body/terminator (each uvloop write is a send(2) of ~3 µs here).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from proxies import errors, http1
from proxies.circuit import MAX_CONNECTIONS, MAX_PENDING_REQUESTS
from proxies.errors import LocalError
from proxies.retry import (
    CONNECT_FAILURE,
    REPLAY_LIMIT,
    RESET,
    retry_condition,
    retry_on_fresh_connection,
)
from proxies.tries import PolicyTries

if TYPE_CHECKING:
    from proxies.destination import Destination
    from proxies.endpoints import Endpoint
    from proxies.listener import Listener
    from proxies.upstream import ConnectionPool, UpstreamConnection

log = logging.getLogger("proxies.exchange")

DRAIN_LIMIT = 1024 * 1024  # request body discarded after an early response before closing
PAUSE_CONNECT = 1

_perf = time.perf_counter
_HEAD = b"HEAD"
_NO_BODY_STATUS = (204, 304)
_TRACESTATE = b"tracestate: "

# The destination recorded for an outbound request that reached no registered service
# (CONNECT, a bad request-target, no host, a host that is not in the endpoint set): one
# node for "calls going nowhere", like Istio's BlackHoleCluster, instead of a self-edge or
# one ghost node (and one label value) per typo or external host. docs/telemetry.md.
UNREGISTERED = "unregistered"


class Exchange(PolicyTries):
    """State of one request/response through the proxy."""

    __slots__ = (
        "listener",
        "plane",
        "outbound",
        "method",
        "target",
        "host",
        "head",
        "chunked_req",
        "has_body",
        "retry_ok",
        "expect_continue",
        "client_keep_alive",
        "http10",
        "trace",
        "t0",
        "source",
        "source_sidecar",
        "destination",
        "destination_version",
        "dest",
        "version",
        "endpoint",
        "conn",
        "conn_reused",
        "attempts",
        "tried",
        "retried_fresh",
        "up_pending",
        "replay",
        "replay_size",
        "replay_limit",
        "down_pending",
        "request_done",
        "response_started",
        "response_done",
        "chunk_resp",
        "eof_body",
        "status",
        "drained",
        "finished",
        "start_ns",
        "events",
        "admitted",
        "started",
        "holds_retry",
        "try_t0",
        "try_gen",
        "try_timer",
        "request_timer",
        "deadline",
        "waiting",
    )

    def __init__(
        self,
        listener: Listener,
        method: bytes,
        target: bytes,
        host: bytes | None,
        head: list[bytes],
        chunked_req: bool,
        has_body: bool,
        client_keep_alive: bool,
        http10: bool,
        expect_continue: bool,
        trace: Any,
        source: str,
        source_sidecar: bool,
    ) -> None:
        plane = listener.plane
        self.listener = listener
        self.plane = plane
        self.outbound = listener.outbound
        self.method = method
        self.target = target
        self.host = host
        self.head = head
        self.chunked_req = chunked_req
        self.has_body = has_body
        self.retry_ok = not has_body or method in http1.IDEMPOTENT_METHODS  # see proxies.retry
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
        if self.outbound:
            self.destination = UNREGISTERED  # until routing finds a registered service
            self.destination_version = ""
        else:
            self.destination = plane.service
            self.destination_version = plane.version
        self.dest: Destination | None = None
        self.version: str | None = None
        self.endpoint: Endpoint | None = None
        self.conn: UpstreamConnection | None = None
        self.conn_reused = False
        self.attempts = 1
        self.tried: list[Endpoint] | None = None
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
        self.admitted = False  # holds a circuit-breaker request slot
        self.started = False  # the balancer was told a try started (on_start)
        self.holds_retry = False  # holds a circuit-breaker retry slot
        self.try_t0 = 0.0
        self.try_gen = 0  # bumped when a try ends, so a late connect knows it is stale
        self.try_timer: asyncio.TimerHandle | None = None
        self.request_timer: asyncio.TimerHandle | None = None
        self.deadline = False  # watched by the plane's coarse deadline tick
        self.waiting: asyncio.TimerHandle | None = None  # backoff or fault delay

    # routing -----------------------------------------------------------------------------

    def begin(self) -> None:
        """Route and dispatch; called when this exchange becomes the connection's active one."""
        plane = self.plane
        if self.method == b"CONNECT":
            self.respond_local(errors.CONNECT_NOT_SUPPORTED)
            return
        split = http1.split_target(self.target)
        if split is None:
            self.respond_local(errors.BAD_REQUEST_TARGET)
            return
        authority, origin = split
        lines = self.head
        if authority is not None:
            # RFC 9112 §3.2.2: with absolute-form the URI's authority replaces Host.
            self.host = authority
            lines = http1.drop_named_fields(lines, {b"host"}, 1)
            lines += (b"host", http1.HEADER_SEP, authority, http1.CRLF)
            self.head = lines
        dest = None
        if self.outbound:
            if self.host is None:
                self.respond_local(errors.NO_DESTINATION)
                return
            name = http1.host_name(self.host)
            dest = plane.destinations.get(name)
            if dest is None:
                snapshot = plane.registry.snapshot
                self.respond_local(errors.unknown_service(name.decode("latin-1"), snapshot.known))
                return
            self.destination = dest.name
            self.dest = dest
            fault = self._route(dest, origin)  # reads self.head: before the fields we add
            if self.finished or self.response_started:
                return
            lines += plane.outbound_extra
        else:
            fault = None
            limiter = plane.inbound_limiter
            if limiter is not None and self._rate_limited(limiter, plane.service, False):
                return
            self.endpoint = plane.app_endpoint
        lines[0] = b"%b %b HTTP/1.1\r\n" % (self.method, origin)
        trace = self.trace
        lines += (b"traceparent: ", trace.traceparent().encode("latin-1"), http1.CRLF)
        if trace.tracestate is not None:
            # W3C Trace Context 3.3.1.1: tracestate travels only with a valid traceparent;
            # the TraceContext kept it only if the incoming traceparent was valid.
            lines += (_TRACESTATE, trace.tracestate.encode("latin-1"), http1.CRLF)
        if self.chunked_req:
            lines.append(http1.TRANSFER_CHUNKED)
        lines.append(http1.CRLF)
        head = b"".join(lines)
        self.up_pending.insert(0, head)
        self.head = lines
        if dest is None:
            self._dispatch(False)
            return
        self.replay_limit = dest.retries.max_buffered_body_bytes + len(head)
        if fault is not None:
            self._inject(dest, fault)
        else:
            self._admit(dest)

    def _dispatch(self, fresh: bool) -> None:
        endpoint = self.endpoint
        assert endpoint is not None
        plane = self.plane
        pool = plane.pool_for(endpoint)
        conn = None if fresh else pool.take_idle()
        if conn is not None:
            self._attach(conn, True)
            return
        dest = self.dest
        if dest is not None:
            # Envoy's pool limits, failing fast instead of queueing past them.
            breaker = dest.breaker
            if not breaker.try_pending():
                self._overflow(MAX_PENDING_REQUESTS)
                return
            if not breaker.try_connection():
                breaker.end_pending()
                self._overflow(MAX_CONNECTIONS)
                return
            pool.connect_timeout_s = dest.connect_s
        self.listener.pause(PAUSE_CONNECT)
        plane.loop.create_task(self._connect(pool, self.try_gen))

    async def _connect(self, pool: ConnectionPool, gen: int) -> None:
        dest = self.dest
        try:
            try:
                conn = await pool.connect()
            except (TimeoutError, OSError) as exc:
                if dest is not None:
                    dest.breaker.end_pending()
                    dest.breaker.end_connection()
                if not self.finished and gen == self.try_gen:
                    self.listener.resume(PAUSE_CONNECT)
                    timed_out = isinstance(exc, asyncio.TimeoutError)
                    reason = "timed out" if timed_out else (exc.strerror or str(exc))
                    self._connect_failed(f"connect failed: {reason}", timed_out)
                return
            if dest is not None:
                dest.breaker.end_pending()
                conn.breaker = dest.breaker  # the connection holds its slot until it closes
            if self.finished or gen != self.try_gen:
                pool.release(conn)  # the try is over (timed out); the connection is still good
                return
            self.listener.resume(PAUSE_CONNECT)
            self._attach(conn, False)
        except Exception:
            log.exception("unexpected error while connecting upstream")
            self.listener.abort()

    def _attach(self, conn: UpstreamConnection, reused: bool) -> None:
        self.conn = conn
        self.conn_reused = reused
        conn.exchange = self
        endpoint = self.endpoint
        assert endpoint is not None
        dest = self.dest
        if dest is None:
            endpoint.outstanding += 1
        elif not self.started:
            self.started = True
            dest.balancer.on_start(endpoint)
        if not self.listener.feeding:
            self.flush_up()

    def _detach(self) -> UpstreamConnection | None:
        conn = self.conn
        if conn is not None:
            self.conn = None
            conn.exchange = None
            if self.dest is None:
                self.endpoint.outstanding -= 1  # type: ignore[union-attr]
            self.listener.resume(4)  # PAUSE_UPSTREAM_FULL no longer applies
        return conn

    # request side (called by the listener) ------------------------------------------------

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
                self.listener.abort()
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
        self,
        status: int,
        reason: bytes,
        lines: list[bytes],
        has_length: bool,
        chunked: bool,
        tokens: list[bytes] | None,
    ) -> None:
        if status < 200:
            # Interim (100 Continue, 103 Early Hints): forward to HTTP/1.1 clients only.
            if not self.http10:
                lines[0] = http1.status_line(status, reason)
                lines.append(http1.CRLF)
                self.down_pending.append(b"".join(lines))
            return
        dest = self.dest
        if dest is not None:
            # The try ends at the response head (Linkerd's peak-EWMA measures to the head).
            ok = status < 500
            self._end_try(ok)
            ejection = dest.outlier.on_result(self.endpoint, status, False)  # type: ignore[arg-type]
            if ejection is not None:
                self._ejected(ejection)
            if not ok or dest.retries.statuses:
                condition = retry_condition(status, None, dest.retries)
                if condition is not None and self._retry_allowed():
                    conn = self._detach()
                    if conn is not None:
                        conn.abort()  # its body is of no use; a fresh connection is cheaper to reason about
                    self._schedule_retry(condition)
                    return
        if tokens:
            named = {t for t in tokens if t not in (b"close", b"keep-alive")}
            if named:
                lines = http1.drop_named_fields(lines, named, 1)
        lines[0] = http1.status_line(status, reason)
        self.status = status
        self.response_started = True
        if self.method == _HEAD or status in _NO_BODY_STATUS:
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
        if not self.client_keep_alive:
            lines.append(http1.CONNECTION_CLOSE)
        lines.append(http1.CRLF)
        self.down_pending.append(b"".join(lines))

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
        self.listener.write(data)

    def on_response_complete(self, upstream_keep_alive: bool) -> None:
        if self.chunk_resp:
            self.down_pending.append(http1.LAST_CHUNK)
        self.flush_down()
        self.response_done = True
        conn = self._detach()
        self.endpoint.requests_total += 1  # type: ignore[union-attr]
        if conn is not None:
            if upstream_keep_alive and self.request_done and not self.eof_body:
                conn.pool.release(conn)
            else:
                conn.close()
        self._record(False)
        self._after_response()

    def on_upstream_lost(self, conn: UpstreamConnection, exc: Exception | None) -> None:
        """The upstream connection closed while this exchange was using it."""
        if self.conn is conn:
            self._detach()
        if self.finished or self.response_done:
            return
        if self.response_started:
            if self.eof_body and exc is None:
                self.on_response_complete(False)
                return
            # Headers are gone already: the only honest signal left is to cut the client.
            self.flush_down()
            self.status = self.status or 502
            self._record(True)
            self.listener.abort()
            return
        if conn.received:
            if self.dest is not None:
                self._end_try(False)
            self.respond_local(errors.UPSTREAM_INCOMPLETE)
            return
        replayable = self.replay is not None
        if retry_on_fresh_connection(self.conn_reused, self.retried_fresh, self.retry_ok, replayable):
            # A pooled connection the upstream had closed: the request never reached an
            # application. Same try, fresh connection to the same instance.
            self.retried_fresh = True
            self._resend()
            self._dispatch(True)
            return
        if self.dest is None:
            self._app_unavailable("connection closed before any response")
            return
        self._try_failed(RESET, "connection closed before any response")

    def on_upstream_error(self, conn: UpstreamConnection, reason: str) -> None:
        if self.conn is conn:
            self._detach()
        if self.finished or self.response_done:
            return
        dest = self.dest
        if dest is not None and not self.response_started:
            self._end_try(False)
            ejection = dest.outlier.on_result(self.endpoint, 502, True)  # type: ignore[arg-type]
            if ejection is not None:
                self._ejected(ejection)
        if self.response_started:
            self.flush_down()
            self._record(True)
            self.listener.abort()
            return
        self.respond_local(errors.upstream_protocol_error(reason))

    def _resend(self) -> None:
        replay = self.replay or []
        self.up_pending[:0] = replay
        self.replay = []
        self.replay_size = 0

    def _connect_failed(self, reason: str, timed_out: bool) -> None:
        endpoint = self.endpoint
        assert endpoint is not None
        plane = self.plane
        direction = "outbound" if self.outbound else "inbound"
        plane.metrics.count_connect_error(direction, self.destination, endpoint.address)
        if self.dest is None:
            self._app_unavailable(reason)
            return
        if timed_out:
            plane.metrics.count_timeout("connect", self.source, self.destination)
        self._try_failed(CONNECT_FAILURE, reason, "connect" if timed_out else None)

    def _app_unavailable(self, reason: str) -> None:
        self.respond_local(errors.local_app_unavailable(self.endpoint.address, reason))  # type: ignore[union-attr]

    # endings --------------------------------------------------------------------------------

    def respond_local(self, error: LocalError) -> None:
        """Answer with a sidecar-made error response (text/plain, x-meshui-error)."""
        conn = self._detach()
        if conn is not None:
            conn.close()
        if self.response_started:
            self.listener.abort()
            return
        close = errors.must_close(error, self.request_done, self.expect_continue, self.client_keep_alive)
        if close:
            self.client_keep_alive = False
        status = self.status = error.status
        self.response_started = True
        self.response_done = True
        self.listener.write(errors.encode(error, head_only=self.method == _HEAD, close=close))
        self._record(status >= 500)
        self._after_response()

    def _after_response(self) -> None:
        if not self.client_keep_alive:
            self.listener.close_after_response()
        if self.request_done:
            self._finish()
        elif not self.client_keep_alive:
            self._finish()

    def _finish(self) -> None:
        if not self.finished:
            self.finished = True
            self.listener.exchange_finished(self)

    def client_gone(self) -> None:
        """The client connection closed; drop the upstream side and count what happened."""
        if self.finished:
            return
        self.finished = True
        conn = self._detach()
        if conn is not None:
            conn.abort()
        if not self.response_done and self.t0:
            if not self.response_started:
                self.status = 499  # nginx's "client closed request"
            self._record(True)

    def _record(self, error: bool) -> None:
        plane = self.plane
        if self.dest is not None:
            self._release()
        status = self.status
        end = _perf()
        plane.telemetry.record_request(
            "outbound" if self.outbound else "inbound",
            self.source,
            self.destination,
            self.destination_version,
            status,
            self.source_sidecar,
            end - self.t0,
        )
        if self.trace.sampled:
            plane.record_span(self, error or status >= 500)
