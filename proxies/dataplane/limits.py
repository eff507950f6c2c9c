"""Limits of the two data listeners: request head sizes, header and idle timeouts, connection caps.

One frozen value, built from the sidecar's flags (``proxies.config``) and read by each
``DownstreamConnection`` when a connection is accepted (docs/sidecar.md, "Limits"). The
defaults are those a client expects from a front proxy: Envoy's 60 KiB of request
headers, a 16 KiB request-target, a 10 s header-read timeout (slowloris), a keep-alive
idle timeout, and a cap on connections per listener that stays under the file-descriptor
limit so the admin listener and ``/ready`` keep answering when a listener is flooded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

MAX_TARGET_BYTES = 16 * 1024  # request-target; longer is 414
MAX_HEADER_BYTES = 60 * 1024  # header fields, names and values; more is 431 (Envoy's default)
MAX_HEADERS = 256  # header fields; more is 431
HEADER_TIMEOUT_S = 10.0  # first byte of a request head to its blank line; then 408
CLIENT_IDLE_TIMEOUT_S = 60.0  # keep-alive connection with no request in progress
MAX_CONNECTIONS = 1024  # per data listener; past it a new connection gets 503 and close
MAX_REQUEST_BODY_BYTES = 0  # 0: no limit (bodies stream through, with backpressure); else 413

# File descriptors kept for what is not a client connection: the listening sockets, the
# admin listener, the control channel, telemetry export, logs.
RESERVED_FDS = 64


@dataclass(frozen=True, slots=True)
class ListenerLimits:
    """What one client connection may use; every field is a sidecar flag."""

    max_target_bytes: int = MAX_TARGET_BYTES
    max_header_bytes: int = MAX_HEADER_BYTES
    max_headers: int = MAX_HEADERS
    header_timeout_s: float = HEADER_TIMEOUT_S
    client_idle_timeout_s: float = CLIENT_IDLE_TIMEOUT_S
    max_connections: int = MAX_CONNECTIONS
    max_request_body_bytes: int = MAX_REQUEST_BODY_BYTES

    @property
    def head_budget(self) -> int:
        """Bytes a request head may take on the wire besides its request line: the header
        fields and the blank line ending them (proxies.dataplane.request_reader).

        httptools hands a header field over only once its value is complete, and buffers it
        until then; counting reads against this budget is what bounds that buffer (a 64 MiB
        header value is cut here, never parsed).
        """
        return self.max_header_bytes + 2

    def validate(self) -> list[str]:
        """What is wrong with these limits, each message naming its flag (empty: all good)."""
        problems = []
        for flag, value in (
            ("--max-target-bytes", self.max_target_bytes),
            ("--max-header-bytes", self.max_header_bytes),
            ("--max-headers", self.max_headers),
            ("--max-connections", self.max_connections),
        ):
            if value < 1:
                problems.append(f"{flag} must be at least 1, got {value}")
        if self.max_request_body_bytes < 0:
            problems.append(
                f"--max-request-body-bytes must be 0 (no limit) or more, got {self.max_request_body_bytes}"
            )
        for flag, seconds in (
            ("--header-timeout", self.header_timeout_s),
            ("--client-idle-timeout", self.client_idle_timeout_s),
        ):
            if not (seconds > 0 and math.isfinite(seconds)):
                problems.append(f"{flag} must be a number of seconds above 0, got {seconds}")
        return problems


def fds_needed(max_connections: int) -> int:
    """File descriptors the two data listeners can use at their cap.

    Each client connection may hold one upstream connection (to the local app inbound, to
    another sidecar outbound), so a listener at its cap holds twice its cap.
    """
    return 2 * 2 * max_connections + RESERVED_FDS


def fit_connection_cap(max_connections: int, fd_limit: int) -> int:
    """The largest cap not above ``max_connections`` that leaves the admin listener a descriptor.

    Past the file-descriptor limit accept() fails for every listener, the admin one
    included; a cap under it refuses the excess with a 503 instead.
    """
    if fds_needed(max_connections) <= fd_limit:
        return max_connections
    return max(1, (fd_limit - RESERVED_FDS) // 4)


def within_fd_limit(limits: ListenerLimits, soft: int, hard: int) -> tuple[ListenerLimits, int]:
    """The limits to run with and the soft file-descriptor limit to ask for.

    Raises the soft limit towards the hard one as far as the connection caps need (as Go's
    runtime does at start), then lowers ``max_connections`` if even the hard limit is
    too small (``fit_connection_cap``). Pure: the caller does the setrlimit and the logging.
    """
    needed = fds_needed(limits.max_connections)
    wanted = soft if needed <= soft else min(needed, hard)
    cap = fit_connection_cap(limits.max_connections, wanted)
    if cap != limits.max_connections:
        limits = replace(limits, max_connections=cap)
    return limits, wanted
