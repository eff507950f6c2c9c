"""The HTTP/1.1 codec: every piece of wire-format knowledge the data path needs.

Parsing is llhttp through httptools (as uvicorn does); this module wraps it and owns the
serialisation side (heads, chunk framing, sidecar-made responses) so the parser can be
swapped without touching the proxy logic.
"""

from __future__ import annotations

import httptools

RequestParser = httptools.HttpRequestParser
ResponseParser = httptools.HttpResponseParser
ParseError = httptools.HttpParserError
CallbackError = httptools.HttpParserCallbackError
UpgradeRequest = httptools.HttpParserUpgrade

# RFC 9110 §7.6.1 connection-specific fields, plus the de-facto Proxy-Connection and
# Proxy-Authenticate/-Authorization (hop-by-hop by RFC 9110 §11.7). Names are lower-cased.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
    }
)

HEAD = b"HEAD"  # the method whose response has no body, whatever its framing says
CRLF = b"\r\n"
LAST_CHUNK = b"0\r\n\r\n"
HEADER_SEP = b": "
TRANSFER_CHUNKED = b"transfer-encoding: chunked\r\n"
CONNECTION_CLOSE = b"connection: close\r\n"
_TRACESTATE = b"tracestate: "

# Fields that frame the message (RFC 9112 §6) or name its target: never hop-by-hop, even
# when Connection names them. Dropping Content-Length because a client wrote
# "Connection: keep-alive, Content-Length" would forward a body without its framing, and
# the next hop would read that body as the next request (request smuggling).
FRAMING = frozenset({b"content-length", b"transfer-encoding", b"host"})
# Connection options that name no field.
_CONNECTION_OPTIONS = frozenset({b"close", b"keep-alive"})

_REASONS = {
    100: b"Continue",
    200: b"OK",
    204: b"No Content",
    304: b"Not Modified",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Content Too Large",
    414: b"URI Too Long",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    501: b"Not Implemented",
    502: b"Bad Gateway",
    503: b"Service Unavailable",
    504: b"Gateway Timeout",
}


def connection_tokens(value: bytes) -> list[bytes]:
    """The lower-cased option names of one Connection header value."""
    return [t.strip().lower() for t in value.split(b",") if t.strip()]


def named_fields(tokens: list[bytes]) -> set[bytes]:
    """The fields a Connection header's options name for removal (RFC 9110 §7.6.1).

    ``close`` and ``keep-alive`` name no field, and the framing fields (``FRAMING``) are
    never removed: the message must reach the next hop framed as it was received.
    """
    return {t for t in tokens if t not in _CONNECTION_OPTIONS and t not in FRAMING}


def drop_named_fields(lines: list[bytes], names: set[bytes], start: int) -> list[bytes]:
    """Remove header fields named in Connection from a flat [name, ": ", value, CRLF] list.

    Rare (Connection usually says only keep-alive or close), so it is a second pass kept
    off the common path.
    """
    kept = lines[:start]
    for i in range(start, len(lines), 4):
        if lines[i].lower() not in names:
            kept += lines[i : i + 4]
    return kept


def split_target(target: bytes) -> tuple[bytes | None, bytes] | None:
    """Split a request-target into (authority or None, origin-form target).

    ``/items?x=1`` -> (None, ``/items?x=1``); ``http://catalog:80/items`` ->
    (``catalog:80``, ``/items``); ``*`` stays as is. Anything else is None (malformed).
    """
    first = target[:1]
    if first == b"/":
        return None, target
    if target == b"*":
        return None, target
    if target[:7].lower() == b"http://":
        rest = target[7:]
        cut = len(rest)
        for sep in (b"/", b"?", b"#"):
            i = rest.find(sep)
            if i != -1 and i < cut:
                cut = i
        authority = rest[:cut]
        path = rest[cut:].split(b"#", 1)[0]
        if not authority:
            return None
        if not path.startswith(b"/"):
            path = b"/" + path
        return authority, path
    return None


def with_host(lines: list[bytes], authority: bytes) -> list[bytes]:
    """The request's fields with Host replaced by an absolute-form target's authority.

    RFC 9112 §3.2.2: with absolute-form the URI's authority replaces Host.
    """
    lines = drop_named_fields(lines, {b"host"}, 1)
    lines += (b"host", HEADER_SEP, authority, CRLF)
    return lines


def field_value(lines: list[bytes], name: bytes) -> bytes | None:
    """A field's value by lower-case name in a flat [name, ": ", value, CRLF] list, or None."""
    for i in range(1, len(lines) - 3, 4):
        if lines[i].lower() == name:
            return lines[i + 2]
    return None


def request_head(
    lines: list[bytes], method: bytes, origin: bytes, traceparent: str, tracestate: str | None, chunked: bool
) -> bytes:
    """The forwarded request head: origin-form request line, our trace fields, the framing.

    ``lines`` is the flat field list with a placeholder first (it is completed in place).
    W3C Trace Context 3.3.1.1: tracestate travels only with a valid traceparent; the
    caller passes it only if the incoming traceparent was valid.
    """
    lines[0] = b"%b %b HTTP/1.1\r\n" % (method, origin)
    lines += (b"traceparent: ", traceparent.encode("latin-1"), CRLF)
    if tracestate is not None:
        lines += (_TRACESTATE, tracestate.encode("latin-1"), CRLF)
    if chunked:
        lines.append(TRANSFER_CHUNKED)
    lines.append(CRLF)
    return b"".join(lines)


def host_name(authority: bytes) -> bytes:
    """The lower-cased host of an authority, without userinfo and port."""
    at = authority.rfind(b"@")
    if at != -1:
        authority = authority[at + 1 :]
    if authority.startswith(b"["):
        end = authority.find(b"]")
        return authority[: end + 1].lower() if end != -1 else authority.lower()
    colon = authority.find(b":")
    if colon != -1:
        authority = authority[:colon]
    return authority.strip().lower()


def status_line(status: int, reason: bytes) -> bytes:
    return b"HTTP/1.1 %d %b\r\n" % (status, reason or _REASONS.get(status, b"Unknown"))


def error_response(
    status: int, error: str, message: str, *, head_only: bool = False, close: bool = False
) -> bytes:
    """A complete sidecar-made response: text/plain body and ``x-meshui-error: <error>``."""
    body = message.encode("utf-8", "replace") + b"\n"
    head = b"".join(
        (
            status_line(status, b""),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"x-meshui-error: %b\r\n" % error.encode("ascii"),
            b"content-length: %d\r\n" % len(body),
            CONNECTION_CLOSE if close else b"",
            CRLF,
        )
    )
    return head if head_only else head + body


def simple_response(status: int, content_type: bytes, body: bytes) -> bytes:
    """A complete response that closes the connection (used by the admin listener)."""
    return b"".join(
        (
            status_line(status, b""),
            b"content-type: %b\r\n" % content_type,
            b"content-length: %d\r\n" % len(body),
            CONNECTION_CLOSE,
            CRLF,
            body,
        )
    )
