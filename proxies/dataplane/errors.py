"""The sidecar's own error responses: status, ``x-meshui-error`` code and message of each.

Pure: each function returns a ``LocalError`` value and the exchange writes it
(``http1.error_response``). Whether a retry can help follows from the status, as the
mesh's callers read it: 4xx means this request will fail again as sent (permanent),
502/503 mean the destination may be back soon (transient).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from http import HTTPStatus

from proxies import http1


@dataclass(frozen=True, slots=True)
class LocalError:
    """One sidecar-made error response, before it is encoded."""

    status: int
    code: str  # the x-meshui-error header: stable, for programs
    message: str  # the text/plain body: for people
    close: bool = False  # the request cannot be skipped safely: close the client connection
    headers: tuple[tuple[bytes, bytes], ...] = ()  # extra fields (x-meshui-timeout, retry-after)


# Permanent: the request itself is unusable. Every refused request closes the client
# connection and nothing more is read from it: the rest of what the client sent cannot be
# trusted to be framed the way we would skip it (a request smuggled behind a refused one
# must never be forwarded).
CONNECT_NOT_SUPPORTED = LocalError(405, "connect-not-supported", "CONNECT is not supported", True)
BAD_REQUEST_TARGET = LocalError(400, "bad-request-target", "malformed request-target", True)
NO_DESTINATION = LocalError(400, "no-destination", "no Host header and no absolute-form URI", True)

# Refused by the listener while a request head is read (counted by code in
# meshui_proxy_rejected_requests_total; REJECT_REASONS below lists them).
TARGET_TOO_LONG = LocalError(414, "target-too-long", "request-target too long", True)
HEADERS_TOO_LARGE = LocalError(431, "headers-too-large", "request header fields too large", True)
TOO_MANY_HEADERS = LocalError(431, "too-many-headers", "too many header fields", True)
BODY_TOO_LARGE = LocalError(413, "body-too-large", "request body too large", True)
HEADER_TIMEOUT = LocalError(408, "header-timeout", "request head not received in time", True)
UNSUPPORTED_TRANSFER_CODING = LocalError(
    501, "unsupported-transfer-coding", "only the chunked transfer coding is supported", True
)
INTERNAL_ERROR = LocalError(500, "internal-error", "the sidecar failed on this request", True)


BAD_REQUEST = "bad-request"


def bad_request(message: str) -> LocalError:
    """Permanent: the bytes are not an HTTP/1.1 request the sidecar can forward safely."""
    return LocalError(400, BAD_REQUEST, message, True)


# What the listener answers itself while parsing (the x-meshui-error codes): these requests
# never become an exchange, so telemetry does not count them; the admin port does.
REJECT_REASONS = (BAD_REQUEST,) + tuple(
    error.code
    for error in (
        TARGET_TOO_LONG,
        HEADERS_TOO_LARGE,
        TOO_MANY_HEADERS,
        HEADER_TIMEOUT,
        BODY_TOO_LARGE,
        UNSUPPORTED_TRANSFER_CODING,
        INTERNAL_ERROR,
    )
)


# Transient: the listener is at --max-connections; a new connection gets this and is closed
# before anything is read from it.
CONNECTION_LIMIT = LocalError(
    503,
    "connection-limit",
    "too many client connections on this listener",
    True,
    headers=((b"retry-after", b"1"),),
)


def unknown_service(name: str, known: object) -> LocalError:
    """Transient: the service may appear with the next endpoints update."""
    return LocalError(502, "unknown-service", f"unknown service {name!r}; known services: {known}")


def no_healthy_upstream(service: str) -> LocalError:
    """Transient: the service has no instance right now."""
    return LocalError(503, "no-healthy-upstream", f"service {service!r} has no live instance")


def upstream_protocol_error(reason: str) -> LocalError:
    """Transient: the upstream answered something that is not an HTTP/1.1 response."""
    return LocalError(502, "upstream-protocol-error", reason)


UPSTREAM_INCOMPLETE = upstream_protocol_error("upstream sent an incomplete response")


def local_app_unavailable(address: str, reason: str) -> LocalError:
    """Transient: the inbound side could not reach the app this sidecar fronts."""
    return LocalError(503, "local-app-unavailable", f"the local app at {address} is unavailable ({reason})")


def upstream_connect_failure(service: str, instance: str, address: str, reason: str) -> LocalError:
    """Transient: connecting to an instance failed and no other attempt was allowed."""
    return LocalError(
        503, "upstream-connect-failure", f"{service} instance {instance} at {address}: {reason}"
    )


def timed_out(kind: str, service: str) -> LocalError:
    """Transient: ``kind`` is connect, request, per-try or idle (the x-meshui-timeout header)."""
    return LocalError(
        504, "timeout", f"{service}: {kind} timeout", headers=((b"x-meshui-timeout", kind.encode("ascii")),)
    )


def overflow(service: str, limit: str) -> LocalError:
    """Transient: a circuit-breaker limit is reached; the request failed fast, never queued."""
    return LocalError(
        503,
        "overflow",
        f"{service}: circuit breaker {limit} reached",
        headers=((b"x-meshui-overflow", limit.encode("ascii")),),
    )


def rate_limited(service: str, scope: str, wait_s: float) -> LocalError:
    """Transient: the local token bucket of ``scope`` (destination or source) is empty."""
    retry_after = max(1, math.ceil(wait_s)) if math.isfinite(wait_s) else 3600
    return LocalError(
        429,
        "rate-limited",
        f"{service}: rate limited ({scope})",
        headers=((b"retry-after", b"%d" % retry_after), (b"x-meshui-ratelimited", scope.encode("ascii"))),
    )


def denied(rule: str, service: str) -> LocalError:
    """Permanent: the destination's authorization rules refuse this caller or request."""
    return LocalError(
        403, "denied", f"{service} denied this request (authorization rule {rule})", False,
        ((b"x-meshui-denied", rule.encode("ascii")),),
    )


def fault_abort(status: int) -> LocalError:
    """Injected by policy (a route's abort fault): the status is whatever the policy says."""
    return LocalError(status, "fault-injected", "fault injected", headers=((b"x-meshui-fault", b"abort"),))


def encode(error: LocalError, *, head_only: bool, close: bool) -> bytes:
    """The bytes of a sidecar-made response, with the error's extra fields after the status line."""
    data = http1.error_response(error.status, error.code, error.message, head_only=head_only, close=close)
    if not error.headers:
        return data
    try:
        phrase = HTTPStatus(error.status).phrase.encode("ascii")
    except ValueError:
        phrase = b"Unknown"
    _, rest = data.split(b"\r\n", 1)
    fields = b"".join(b"%b: %b\r\n" % pair for pair in error.headers)
    return http1.status_line(error.status, phrase) + fields + rest


def must_close(error: LocalError, request_done: bool, expect_continue: bool, client_keep_alive: bool) -> bool:
    """Whether the client connection closes after this error response.

    A client that sent ``Expect: 100-continue`` and is still waiting may never send the
    body we would have to skip, so such a connection cannot be reused either.
    """
    return error.close or not client_keep_alive or (not request_done and expect_continue)
