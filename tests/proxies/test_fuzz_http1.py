"""Property-based fuzzing of the HTTP/1.1 codec's pure functions (proxies.http1) and the framing it feeds."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxies import http1
from tests.fuzzing import examples, outcome
from tests.proxies.conftest import FakeUpstreams, client_of, frontend_plane, parse_responses

pytestmark = pytest.mark.fuzz

# The bytes that matter to HTTP framing, so generated values hit separators, not just noise.
SPECIAL = st.sampled_from(
    [b"/", b"?", b"#", b"@", b":", b"[", b"]", b",", b" ", b"\t", b"\r", b"\n", b"%", b"*", b"\x00", b"\xff"]
)
WORD = st.sampled_from([b"http://", b"HTTP://", b"https://", b"catalog", b"80", b"::1", b"user", b"close"])
FRAGMENTS = st.lists(st.one_of(SPECIAL, WORD, st.binary(max_size=6)), max_size=12).map(b"".join)
TOKENS = st.sampled_from(
    [b"close", b"keep-alive", b"Keep-Alive", b"content-length", b"Content-Length", b"transfer-encoding",
     b"host", b"HOST", b"upgrade", b"x-private", b"te", b""]
)  # fmt: skip
NAMES = st.one_of(TOKENS, st.binary(min_size=1, max_size=10))


TARGETS = st.one_of(
    FRAGMENTS.map(lambda f: b"/" + f), FRAGMENTS.map(lambda f: b"http://" + f), FRAGMENTS, st.just(b"*")
)


@examples()
@given(TARGETS)
def test_split_target_answers_origin_form_or_none(target: bytes) -> None:
    split = http1.split_target(target)
    if split is None:
        outcome("split_target", "malformed")
        return
    authority, origin = split
    assert origin == b"*" or origin.startswith(b"/")
    assert b"#" not in origin or authority is None  # absolute-form drops the fragment
    if authority is None:
        assert origin == target  # origin-form and * pass through untouched
        outcome("split_target", "origin")
    else:
        assert authority and not any(sep in authority for sep in (b"/", b"?", b"#"))
        assert target.lower().startswith(b"http://")
        outcome("split_target", "absolute")


@examples()
@given(
    st.sampled_from([b"", b"http://"]),
    st.lists(st.one_of(WORD, SPECIAL), max_size=6).map(b"".join),
    FRAGMENTS,
)
def test_split_target_keeps_the_authority_of_an_absolute_uri(
    scheme: bytes, authority: bytes, path: bytes
) -> None:
    authority = bytes(b for b in authority if b not in b"/?#")
    target = b"http://" + authority + b"/" + path
    split = http1.split_target(target)
    if not authority:
        assert split is None
        outcome("split_target_absolute", "no-authority")
        return
    assert split is not None and split[0] == authority
    assert split[1].startswith(b"/")
    outcome("split_target_absolute", "ok")


@examples()
@given(FRAGMENTS)
def test_host_name_is_lower_case_without_userinfo_or_port(authority: bytes) -> None:
    host = http1.host_name(authority)
    assert host == host.lower()
    assert b"@" not in host
    if not host.startswith(b"["):
        assert b":" not in host
    outcome("host_name", "bracketed" if host.startswith(b"[") else "empty" if not host else "name")


@examples()
@given(st.lists(st.tuples(TOKENS, st.sampled_from([b"", b" ", b"\t", b"  "])), max_size=6))
def test_connection_tokens_are_stripped_lower_case_and_never_empty(pieces) -> None:
    value = b",".join(pad + token + pad for token, pad in pieces)
    tokens = http1.connection_tokens(value)
    assert tokens == [t.lower() for t, _ in pieces if t]
    outcome("connection_tokens", len(tokens))


@examples()
@given(st.lists(NAMES, max_size=8))
def test_named_fields_never_name_the_framing(tokens) -> None:
    lowered = [t.strip().lower() for t in tokens]
    named = http1.named_fields(lowered)
    assert not named & http1.FRAMING
    assert not named & {b"close", b"keep-alive"}
    assert named <= set(lowered)
    outcome("named_fields", "some" if named else "none")


FIELDS = st.lists(st.tuples(NAMES, st.binary(max_size=8)), max_size=8)


@examples()
@given(FIELDS, st.lists(NAMES, max_size=4))
def test_drop_named_fields_removes_exactly_the_named_ones(fields, names) -> None:
    lines = [b"HEAD-PLACEHOLDER"]
    for name, value in fields:
        lines += (name, http1.HEADER_SEP, value, http1.CRLF)
    named = {n.lower() for n in names}
    kept = http1.drop_named_fields(lines, named, 1)
    assert kept[0] == b"HEAD-PLACEHOLDER"
    assert (len(kept) - 1) % 4 == 0
    assert [(kept[i], kept[i + 2]) for i in range(1, len(kept), 4)] == [
        (n, v) for n, v in fields if n.lower() not in named
    ]
    outcome("drop_named_fields", "dropped" if len(kept) < len(lines) else "kept")


@examples()
@given(
    st.sampled_from([400, 405, 408, 413, 414, 429, 431, 500, 501, 502, 503, 504, 299, 999]),
    st.text(max_size=40),
    st.booleans(),
)
def test_error_responses_are_well_formed_http(status: int, message: str, close: bool) -> None:
    data = http1.error_response(status, "some-code", message, close=close)
    [(got, fields, body)] = parse_responses(data)
    assert got == status
    assert int(fields[b"content-length"]) == len(body)
    assert fields[b"x-meshui-error"] == b"some-code"
    assert (fields.get(b"connection") == b"close") is close
    outcome("error_response", "close" if close else "keep-alive")


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@examples()
@given(st.lists(st.binary(min_size=1, max_size=300), max_size=5))
def test_a_body_delimited_by_the_upstream_closing_is_rechunked_and_round_trips(
    loop: asyncio.AbstractEventLoop, pieces: list[bytes]
) -> None:
    upstreams = FakeUpstreams()
    plane = frontend_plane(upstreams.connect, loop=loop)
    downstream, client = client_of(plane, outbound=False)
    downstream.data_received(b"GET / HTTP/1.1\r\nHost: frontend\r\n\r\n")
    loop.run_until_complete(asyncio.sleep(0))  # the connect task
    [conn] = upstreams.connections
    conn.data_received(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
    for piece in pieces:
        conn.data_received(piece)
    conn.connection_lost(None)
    [(status, fields, body)] = parse_responses(client.take())
    assert status == 200 and fields[b"transfer-encoding"] == b"chunked"
    assert body == b"".join(pieces)
    outcome("chunk", len(pieces))
