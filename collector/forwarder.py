"""Exporter: forward every accepted export to another OTLP/HTTP endpoint (Tempo, Jaeger, a collector).

The receivers call ``Forwarder.offer`` with the export's bytes once they have accepted it;
a bounded queue (collector/forward_queue.py) holds it and one sender task POSTs it to
``<endpoint>/v1/traces`` or ``/v1/metrics``. Nothing here can slow ingest or make it fail:
a full queue drops the new export and counts it (the graph still gets it).

What is sent is the export as received: protobuf bytes as they came (joined with the next
ones, never re-encoded), OTLP/JSON as JSON with its own content type. JSON is not converted
to protobuf because a converter would have to know every bytes field that OTLP/JSON spells
in hex (protobuf's json_format takes them as base64 and silently makes 24-byte garbage ids,
shared/notes/pitfalls.md), and would spend CPU on the receive path; OTLP/HTTP backends take
JSON on the same paths (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding).

Outcomes follow https://opentelemetry.io/docs/specs/otlp/#otlphttp-response, as the
sidecar's exporter does (proxies/telemetry/export_retry.py): 2xx is delivered (its partial
success counted), 429/502/503/504 and no response at all (refused, reset, timed out) are
retried with exponential backoff and jitter, Retry-After honoured, for at most
``max_retry_time_s``; every other status is a rejection, never retried. Each export ends
either delivered or dropped with a reason, so ``forwarded + dropped + queued`` accounts for
everything offered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson
from google.rpc.status_pb2 import Status

from collector.errors import ConfigError
from collector.forward_queue import JSON, PROTOBUF, SIGNALS, Batch, Export, ForwardQueue
from collector.stats import ForwardStats
from proxies.telemetry.encode import rejected_in_response
from proxies.telemetry.export_retry import Backoff, Outcome, classify, parse_retry_after
from proxies.telemetry.http_client import HttpClient, HttpError, HttpResponse

log = logging.getLogger(__name__)

_PATHS = {"traces": "/v1/traces", "metrics": "/v1/metrics"}
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")  # RFC 9110 field-name
# Set by the client itself; a configured one would be sent twice.
_RESERVED_HEADERS = frozenset(
    {"host", "content-type", "content-length", "transfer-encoding", "connection", "user-agent"}
)
# Within service.COMPONENT_SHUTDOWN_TIMEOUT_S (10 s), so the drain ends on its own terms.
MAX_DRAIN_TIMEOUT_S = 8.0
MAX_RESPONSE_BODY = 64 * 1024  # enough for any Status or partial success; the rest is discarded


@dataclass(frozen=True, slots=True)
class ForwarderConfig:
    endpoint: str = ""  # base URL, e.g. http://tempo:4318; empty: forwarding is off
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request, e.g. Authorization
    signals: tuple[str, ...] = SIGNALS  # Tempo and Jaeger take no metrics: ("traces",)
    queue_max_bytes: int = 64 * 1024 * 1024  # payload bytes waiting or in flight
    queue_max_exports: int = 10_000
    max_request_bytes: int = 4 * 1024 * 1024  # protobuf exports are joined up to this
    timeout_s: float = 10.0  # one request, connect included
    max_retry_time_s: float = 300.0  # from a batch's first attempt; then retries_exhausted
    initial_backoff_s: float = 1.0
    max_backoff_s: float = 30.0
    max_retry_after_s: float = 60.0  # a longer Retry-After is cut to this
    drain_timeout_s: float = 5.0  # at shutdown; what is left then is dropped (shutdown)
    log_interval_s: float = 10.0  # at most one line per problem kind this often

    @property
    def enabled(self) -> bool:
        return bool(self.endpoint)

    def validate(self) -> None:
        if self.endpoint:
            parts = urlsplit(self.endpoint)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    "forwarder.endpoint", f"must be an http(s)://host[:port] URL, got {self.endpoint!r}"
                )
            if parts.username is not None or parts.password is not None:
                raise ConfigError(
                    "forwarder.endpoint",
                    "must not carry credentials; send them as a header "
                    "(--forward-header 'Authorization=...')",
                )
            if parts.query or parts.fragment:
                raise ConfigError("forwarder.endpoint", "must have no query or fragment")
            try:
                parts.port  # noqa: B018 - raises ValueError when out of range
            except ValueError as exc:
                raise ConfigError("forwarder.endpoint", str(exc)) from None
        for name, value in self.headers:
            if not _TOKEN.match(name):
                raise ConfigError("forwarder.headers", f"{name!r} is not a valid header name")
            if name.lower() in _RESERVED_HEADERS:
                raise ConfigError("forwarder.headers", f"{name} is set by the forwarder itself")
            if any(c in value for c in "\r\n\0") or not value.isascii():
                raise ConfigError("forwarder.headers", f"the value of {name} must be printable ASCII")
        if not self.signals or any(s not in SIGNALS for s in self.signals):
            raise ConfigError(
                "forwarder.signals", f"must be some of {', '.join(SIGNALS)}, got {self.signals}"
            )
        for key, number, minimum in (
            ("queue_max_bytes", self.queue_max_bytes, 1),
            ("queue_max_exports", self.queue_max_exports, 1),
            ("max_request_bytes", self.max_request_bytes, 1),
        ):
            if number < minimum:
                raise ConfigError(f"forwarder.{key}", f"must be >= {minimum}, got {number}")
        for key, seconds in (
            ("timeout_s", self.timeout_s),
            ("max_backoff_s", self.max_backoff_s),
            ("initial_backoff_s", self.initial_backoff_s),
        ):
            if not seconds > 0:
                raise ConfigError(f"forwarder.{key}", f"must be > 0, got {seconds}")
        for key, seconds in (
            ("max_retry_time_s", self.max_retry_time_s),
            ("max_retry_after_s", self.max_retry_after_s),
            ("log_interval_s", self.log_interval_s),
        ):
            if not seconds >= 0:
                raise ConfigError(f"forwarder.{key}", f"must be >= 0, got {seconds}")
        if not 0 <= self.drain_timeout_s <= MAX_DRAIN_TIMEOUT_S:
            raise ConfigError(
                "forwarder.drain_timeout_s", f"must be 0..{MAX_DRAIN_TIMEOUT_S:g}, got {self.drain_timeout_s}"
            )


class LogThrottle:
    """At most one log line per key every ``interval`` seconds, saying how many were held back."""

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self.interval = interval
        self.clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """None: stay quiet. Otherwise log now; the number is how many lines were held back."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)


def backend_message(response: HttpResponse) -> str:
    """The error a backend gave, short and printable: a google.rpc.Status message, else the body."""
    body = response.body
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    text: str | None = None
    if content_type == PROTOBUF:
        with contextlib.suppress(Exception):
            text = Status.FromString(body).message
    elif content_type == JSON:
        with contextlib.suppress(Exception):
            document = orjson.loads(body)
            message = document.get("message") if isinstance(document, dict) else None
            text = message if isinstance(message, str) else None
    if text is None:
        text = body[:200].decode("utf-8", "replace")
    # Network text goes into our log: one line, no control characters, bounded.
    return repr(text[:200])


def partial_rejection(signal: str, response: HttpResponse) -> tuple[int, str]:
    """(rejected items, message) of a 2xx's partial success; (0, "") when absent or unreadable."""
    content_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    try:
        if content_type == JSON:
            document = orjson.loads(response.body) if response.body else {}
            partial = document.get("partialSuccess") or {}
            field = "rejectedSpans" if signal == "traces" else "rejectedDataPoints"
            return int(partial.get(field) or 0), str(partial.get("errorMessage") or "")
        return rejected_in_response(signal, response.body)
    except Exception:  # noqa: BLE001 - a 2xx with an unreadable body is still delivered
        return 0, ""


class Forwarder:
    """The forwarding exporter: ``offer`` from the receivers, one sender task, a bounded queue."""

    def __init__(
        self,
        config: ForwarderConfig,
        stats: ForwardStats | None = None,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        config.validate()
        if not config.enabled:
            raise ConfigError("forwarder.endpoint", "is empty: forwarding is off")
        self.config = config
        self.stats = stats or ForwardStats()
        self.stats.queue_max_bytes = config.queue_max_bytes
        self.stats.queue_max_exports = config.queue_max_exports
        self.queue = ForwardQueue(config.queue_max_bytes, config.queue_max_exports)
        self._monotonic = monotonic
        self._jitter = jitter
        self._throttle = LogThrottle(config.log_interval_s, monotonic)
        self._client = HttpClient(
            config.endpoint,
            config.timeout_s,
            headers=config.headers,
            user_agent="meshui-collector",
            max_response_body=MAX_RESPONSE_BODY,
        )
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._running = False
        self._current: Batch | None = None
        self._unreachable = False

    # -- the receivers' entry point ---------------------------------------------------------
    def offer(self, signal: str, payload: bytes, content_type: str, items: int) -> bool:
        """Queue an accepted export for forwarding; False when it was not queued.

        ``payload`` is the export's uncompressed body, ``content_type`` ``application/x-protobuf``
        or ``application/json`` (parameters allowed), ``items`` its spans or data points. Never
        blocks and never raises for a full queue: that drop is counted (``queue_full``).
        """
        if signal not in self.config.signals or items <= 0:
            return False  # not a signal this backend takes, or nothing in it
        media = content_type.split(";", 1)[0].strip().lower()
        if media not in (PROTOBUF, JSON):
            raise ValueError(f"cannot forward {content_type!r}; use {PROTOBUF} or {JSON}")
        if not self._running:
            self.stats.dropped[signal, "shutdown"] += items
            return False
        if not self.queue.offer(Export(signal, payload, media, items)):
            self.stats.dropped[signal, "queue_full"] += items
            self._warn(
                "queue_full",
                "forward queue full (%d exports, %d bytes): dropping new %s",
                self.queue.exports,
                self.queue.bytes,
                signal,
            )
            return False
        self._gauges()
        self._wake.set()
        return True

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        self._running = True
        self._task = asyncio.create_task(self._run(), name="otlp-forwarder")

    async def shutdown(self) -> None:
        """Stop taking exports, send what is queued within ``drain_timeout_s``, count the rest."""
        task = self._task
        if task is None:
            return
        self._running = False
        self._wake.set()
        done, _ = await asyncio.wait({task}, timeout=self.config.drain_timeout_s)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        left = list(self.queue.take_all())
        if self._current is not None:
            left.extend(self._current.exports)
            self.queue.release(self._current)
            self._current = None
        for export in left:
            self.stats.dropped[export.signal, "shutdown"] += export.items
        if left:
            log.warning(
                "forwarder stopped with %d exports (%d items) not delivered to %s",
                len(left),
                sum(export.items for export in left),
                self.config.endpoint,
            )
        self._gauges()
        self._client.close()
        self._task = None

    # -- sending ----------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            batch = self.queue.take(self.config.max_request_bytes)
            if batch is None:
                if not self._running:
                    return  # drained
                self._wake.clear()
                await self._wake.wait()
                continue
            self._current = batch
            try:
                await self._deliver(batch)
            except Exception:  # loop boundary: one bad batch must not stop forwarding
                log.exception("forwarding a batch of %d %s failed", batch.items, batch.signal)
                self.stats.dropped[batch.signal, "error"] += batch.items
            self._current = None
            self.queue.release(batch)
            self._gauges()

    async def _deliver(self, batch: Batch) -> None:
        """Send ``batch`` until it is delivered, rejected or out of retry time."""
        config = self.config
        backoff = Backoff(
            initial=config.initial_backoff_s,
            maximum=config.max_backoff_s,
            max_retry_after=config.max_retry_after_s,
            random=self._jitter,
        )
        started = self._monotonic()
        body = batch.body()
        while True:
            outcome, retry_after = await self._post(batch, body)
            if outcome is not Outcome.RETRY:
                return
            delay = backoff.next_delay(retry_after)
            if self._monotonic() + delay - started > config.max_retry_time_s:
                self.stats.dropped[batch.signal, "retries_exhausted"] += batch.items
                self._warn(
                    "retries_exhausted",
                    "dropping %d %s: %s still failing after %.0f s of retries",
                    batch.items,
                    batch.signal,
                    config.endpoint,
                    self._monotonic() - started,
                )
                return
            self.stats.retries[batch.signal] += 1
            await asyncio.sleep(delay)

    async def _post(self, batch: Batch, body: bytes) -> tuple[Outcome, float | None]:
        signal = batch.signal
        try:
            response = await self._client.post(_PATHS[signal], body, batch.content_type)
        except HttpError as error:
            self.stats.requests[signal, "error"] += 1
            if not self._unreachable:
                self._unreachable = True
                log.warning("forward backend %s unreachable (%s); retrying", self.config.endpoint, error)
            return Outcome.RETRY, None
        if self._unreachable:
            self._unreachable = False
            log.info("forward backend %s reachable again", self.config.endpoint)
        self.stats.requests[signal, str(response.status)] += 1
        outcome = classify(response.status)
        if outcome is Outcome.OK:
            rejected, message = partial_rejection(signal, response)
            rejected = min(max(rejected, 0), batch.items)
            self.stats.forwarded[signal] += batch.items - rejected
            if rejected:
                self.stats.backend_rejected[signal] += rejected
                self._warn(
                    "partial",
                    "forward backend %s rejected %d of %d %s: %r",
                    self.config.endpoint,
                    rejected,
                    batch.items,
                    signal,
                    message[:200],
                )
        elif outcome is Outcome.REJECTED:
            self.stats.dropped[signal, "rejected"] += batch.items
            self._warn(
                "rejected",
                "forward backend %s answered HTTP %d for %d %s, dropping them (not retryable): %s",
                self.config.endpoint,
                response.status,
                batch.items,
                signal,
                backend_message(response),
            )
        else:
            return outcome, parse_retry_after(response.headers.get("retry-after"), time.time())
        return outcome, None

    def _warn(self, kind: str, message: str, *args: object) -> None:
        held = self._throttle.allow(kind)
        if held is None:
            return
        suffix = f" ({held} more like it not logged)" if held else ""
        log.warning(message + suffix, *args)

    def _gauges(self) -> None:
        self.stats.queue_bytes = self.queue.bytes
        self.stats.queue_exports = self.queue.exports
