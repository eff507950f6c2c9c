"""Reading request heads off a client connection, within the listener's limits.

The codec side of ``DownstreamConnection`` (``proxies.dataplane.downstream``, its
subclass): counts each read against the head budget before the parser sees it, and the
target and every header field as httptools hands them over, so a head past a limit is
refused the moment it passes it, with nothing buffered beyond (docs/sidecar.md,
"Limits"). It keeps what the connection needs of the head's fields (Host, framing, trace
context, Connection options) and strips the hop-by-hop ones as they stream in. The
refusal itself (the answer, the close) is the connection's: ``_reject``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from proxies import http1
from proxies.dataplane import errors

if TYPE_CHECKING:
    from proxies.dataplane.errors import LocalError
    from proxies.dataplane.limits import ListenerLimits

log = logging.getLogger("proxies.listener")

# A read: bytes, or (on a TLS connection) a view of the plane's read buffer, valid only
# during the call that is given it.
Received = bytes | memoryview

# Request fields that need a look; everything else is copied through untouched.
_WATCHED = http1.HOP_BY_HOP | {
    b"host",
    b"content-length",
    b"traceparent",
    b"x-meshui-source",
    b"tracestate",
    b"expect",
}
# _head_left while a body (not a head) is being read: never reached.
_NOT_IN_HEAD = 1 << 62
_CHUNKED = b"chunked"
# The request line besides its method and target: two spaces, "HTTP/1.1", CRLF.
_REQUEST_LINE_REST = 12


class _Refused(Exception):
    """Raised in a codec callback to refuse the request with ``error`` (parsing stops)."""

    def __init__(self, error: LocalError) -> None:
        self.error = error


class _StopReading(Exception):
    """Raised in a codec callback: the connection is closing, parse nothing more."""


class _Discard(list[bytes]):
    """Where trailer fields go (llhttp reports them through on_header after the body).

    The sidecar re-chunks a body and sends no trailers; a trailer must never land in the
    head of a request still queued behind another (a trailing Content-Length would make
    that head ambiguous).
    """

    def __iadd__(self, other: Iterable[bytes]) -> _Discard:  # type: ignore[override,misc]
        return self


TRAILERS = _Discard()


class RequestReader(asyncio.Protocol):
    """The request-head half of a client connection (see the module docstring)."""

    __slots__ = (
        "parser",
        "_close_after",
        "_stopped",
        "_max_target",
        "_max_headers",
        "_max_body",
        "_body_left",
        "_head_budget",
        "_head_left",
        "_url",
        "_lines",
        "_host",
        "_fields",
        "_sized_body",
        "_chunked",
        "_tokens",
        "_traceparent",
        "_tracestate",
        "_source",
        "_expect",
    )

    outbound: bool

    def __init__(self, limits: ListenerLimits) -> None:
        self.parser = http1.RequestParser(self)
        self._close_after = False  # the connection closes once the active exchange ends
        self._stopped = False  # nothing more is parsed (closing, or a refusal is pending)
        self._max_target = limits.max_target_bytes
        self._max_headers = limits.max_headers
        self._max_body = limits.max_request_body_bytes  # 0: no limit
        # Bytes the current head may still take on the wire (counted per read, before the
        # parser sees them); _NOT_IN_HEAD while a body is read. Back to the budget at each
        # message's end, so a head that starts mid-read is counted from the next read on.
        self._head_budget = self._head_left = limits.head_budget
        self._url = b""  # reset at each message's end (_request_line_bytes reads it mid-head)
        self.on_message_begin()

    def _reject(self, error: LocalError) -> None:
        raise NotImplementedError

    def _after_upgrade_request(self, data: Received, offset: int) -> None:
        raise NotImplementedError

    # feeding the codec ----------------------------------------------------------------------
    # DownstreamConnection.data_received inlines the common case of _feed_counted (a read that
    # fits the head budget); these are the rest.

    def _feed_counted(self, data: Received) -> None:
        """Feed ``data``, counting it against the head budget first."""
        left = self._head_left - len(data)
        if left >= 0:
            self._head_left = left
            self._feed(data)
        else:
            self._feed_bounded(data)

    def _feed_bounded(self, data: Received) -> None:
        """Feed a read that may take the head past its budget: only what fits, piece by piece.

        The budget starts as the header bytes allowed; once the request line is known its
        length is allowed on top, so the limit is on the header section itself. httptools
        never holds a header value past the budget: what does not fit is never fed.
        """
        start, end = 0, len(data)
        while start < end:
            room = self._head_left
            if room < _NOT_IN_HEAD:
                room += self._request_line_bytes()
            if room <= 0:
                self._reject(errors.HEADERS_TOO_LARGE)
                return
            stop = min(end, start + room)
            self._head_left -= stop - start
            if not self._feed(data[start:stop]) or self._stopped:
                return
            start = stop

    def _request_line_bytes(self) -> int:
        """The current request line's length on the wire so far (0 before its target)."""
        url = self._url
        if not url:
            return 0
        try:
            method = len(self.parser.get_method())
        except http1.ParseError:
            method = 0
        return method + len(url) + _REQUEST_LINE_REST

    def _feed(self, data: Received) -> bool:
        """Run the codec over ``data``; False when it stopped (refused, closing, upgraded)."""
        try:
            self.parser.feed_data(data)
            return True
        except (http1.ParseError, http1.UpgradeRequest) as exc:
            stopped = exc
        # Handled outside the except block: an upgrade goes on feeding what follows it, and a
        # callback error raised in there would get the UpgradeRequest as its __context__ and
        # lose the refusal that caused it (a pipelined HTTP/2.0 line after an Upgrade request
        # answered 500; found by make fuzz).
        self._parse_stopped(stopped, data)
        return False

    def _parse_stopped(self, exc: Exception, data: Received) -> None:
        """The codec stopped inside ``data``: an upgrade, a refusal, a malformed request, a bug."""
        if isinstance(exc, http1.UpgradeRequest):
            self._after_upgrade_request(data, exc.args[0] if exc.args else len(data))
        elif isinstance(exc, http1.CallbackError):
            cause = exc.__context__
            if isinstance(cause, _Refused):
                self._reject(cause.error)
            elif not isinstance(cause, _StopReading):
                log.error("bug while handling a request", exc_info=cause or exc)
                self._reject(errors.INTERNAL_ERROR)
        else:
            self._reject(errors.bad_request(f"malformed request: {exc}"))

    # codec callbacks ------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._stopped:
            raise _StopReading  # a request behind one that closes the connection is never read
        self._lines: list[bytes] = [b""]
        self._host: bytes | None = None
        self._fields = 0
        self._body_left = -1  # body bytes the request may still send; -1: not counted
        self._sized_body = False
        self._chunked = False
        self._tokens: list[bytes] | None = None
        self._traceparent: bytes | None = None
        self._tracestate: bytes | None = None
        self._source: bytes | None = None
        self._expect = False

    def on_url(self, url: bytes) -> None:
        url = self._url + url  # usually one piece: the concatenation copies nothing big
        if len(url) > self._max_target:
            raise _Refused(errors.TARGET_TOO_LONG)
        self._url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        # Every field received counts, forwarded or not: the limit is exact, and it bounds
        # what dropped fields accumulate (tracestate joins, Connection tokens). ~20 ns a field
        # (timeit on the 2-core box, ~0.5% of a hop's CPU). Their bytes are counted per read
        # instead (_head_left): adding len(name) + len(value) here measured ~50 ns more a
        # field, ~0.3 µs for a 6-field request.
        fields = self._fields = self._fields + 1
        if fields > self._max_headers:
            raise _Refused(errors.TOO_MANY_HEADERS)
        lname = name.lower()
        if lname in _WATCHED:
            if lname == b"host":
                if self._host is not None:
                    # RFC 9112 §3.2: more than one Host is a 400; hops could pick different ones.
                    raise _Refused(errors.bad_request("more than one Host field"))
                self._host = value
            elif lname == b"content-length":
                # A body exists only for a length above 0 (llhttp has checked the digits):
                # "Content-Length: 0" leaves a POST retry-safe (proxies.traffic.retry).
                self._sized_body = value.strip(b" \t0") != b""
            elif lname == b"traceparent":
                self._traceparent = value
                return  # replaced by ours (our span becomes the parent)
            elif lname == b"tracestate":
                # Re-sent by the exchange only with a valid traceparent (W3C 3.3.1.1). Several
                # fields are one comma-separated list (RFC 9110 5.3), so they are combined.
                tracestate = self._tracestate
                self._tracestate = value if tracestate is None else tracestate + b"," + value
                return
            elif lname == b"x-meshui-source":
                self._source = value
                if self.outbound:
                    return  # replaced by our own service name
            elif lname == b"expect":
                self._expect = value.lower() == b"100-continue"
            else:
                if lname == b"transfer-encoding":
                    if value.strip(b" \t").lower() != _CHUNKED:
                        self._refuse_transfer_coding(value)
                    self._chunked = True
                elif lname == b"connection":
                    tokens = http1.connection_tokens(value)
                    self._tokens = tokens if self._tokens is None else self._tokens + tokens
                return
        lines = self._lines
        lines += (name, http1.HEADER_SEP, value, http1.CRLF)

    def _checked_fields(self, lines: list[bytes], http10: bool) -> list[bytes]:
        """The head's checks that need all of it (only for a Connection or Transfer-Encoding field).

        Raises ``_Refused``; returns the fields without those Connection names.
        """
        tokens = self._tokens
        if tokens:
            if b"upgrade" in tokens and (self._chunked or self._sized_body) and self.parser.should_upgrade():
                # llhttp hands an upgrade request over at its head, body unread; the sidecar
                # drops Upgrade and forwards an ordinary request, whose body would then be
                # parsed as the next request. Refused instead.
                raise _Refused(errors.bad_request("an Upgrade request cannot carry a body here"))
            named = http1.named_fields(tokens)  # never the framing fields (http1.FRAMING)
            if named:
                lines = http1.drop_named_fields(lines, named, 1)
        if self._chunked and http10:
            # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty.
            raise _Refused(errors.bad_request("Transfer-Encoding in an HTTP/1.0 request"))
        return lines

    def _refuse_transfer_coding(self, value: bytes) -> None:
        """Refuse a Transfer-Encoding other than plain ``chunked``.

        Not ending in chunked, the body has no framing the sidecar can forward: 400, as
        llhttp would (obfuscations such as ``xchunked`` or ``chunked, identity`` land here).
        Ending in chunked after other codings (``gzip, chunked``), it is framed but cannot go
        on as it came, since the sidecar re-frames the body: RFC 9112 §6.1 says 501.
        """
        last = value.rsplit(b",", 1)[-1].strip(b" \t").lower()
        if last != _CHUNKED:
            raise _Refused(errors.bad_request("Transfer-Encoding must end in chunked"))
        raise _Refused(errors.UNSUPPORTED_TRANSFER_CODING)

    def _start_body_count(self, lines: list[bytes]) -> None:
        """Apply --max-request-body-bytes to a request with a body (only when it is set).

        A declared length past it is refused before anything goes upstream; a chunked body
        is counted as it arrives (on_body) and refused when it passes it.
        """
        if self._chunked:
            self._body_left = self._max_body
            return
        length = http1.field_value(lines, b"content-length")
        if length is not None and int(length) > self._max_body:  # llhttp checked the digits
            raise _Refused(errors.BODY_TOO_LARGE)

    def _count_body(self, size: int) -> None:
        left = self._body_left - size
        if left < 0:
            raise _Refused(errors.BODY_TOO_LARGE)
        self._body_left = left

    def _check_version(self) -> None:
        """Only HTTP/1.0 and 1.1 are forwarded (llhttp also takes 0.9 and 2.0 request lines)."""
        if self.parser.get_http_version() != "1.0":
            raise _Refused(errors.bad_request("only HTTP/1.0 and HTTP/1.1 requests are supported"))
