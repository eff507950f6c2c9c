"""Fuzz target: meshui's control-frame parser (issue 6).

Valid frames, mutated (wrong types, boundary and huge strings, deep nesting, odd unicode,
extra or missing keys): ``parse_frame`` returns a frame or raises FrameError, never anything
else; a hello it accepts is one the sidecar's own endpoints validator accepts; an error
never echoes a big value back.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshui.registry.frames import MAX_FRAME_BYTES, MAX_FRAME_DEPTH, FrameError, Hello, parse_frame
from proxies.mesh.endpoints import validate_services
from proxies.mesh.schema import address_problem
from tests.fuzzing import examples, outcome

pytestmark = pytest.mark.fuzz

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3),
    max_leaves=8,
)
label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", fullmatch=True)
odd_text = st.one_of(
    st.text(max_size=80),  # any unicode, surrogates and controls included
    st.sampled_from(["", " ", "-", "a-", "Evil:Name", "UPPER", "café", "a" * 63, "a" * 64,
                     "x" * 200, "x" * 201, "é" * 70, "\x00", "a\nb", "ﬁ", "İ", "١٢"]),
    label.map(lambda s: s + "."), label.map(str.upper),
)
address = st.one_of(
    st.tuples(st.sampled_from(["127.0.0.1", "h", "catalog.svc", "[::1]", "::1", "", "a" * 254,
                               "10.0.0.256", "-h", "h_1"]),
              st.sampled_from(["1", "65535", "0", "65536", "080", "", "+1", "١", "99999"]))
    .map(lambda hp: f"{hp[0]}:{hp[1]}"),
    odd_text,
)
integers = st.one_of(st.integers(-3, 3), st.sampled_from([2**31 - 1, 2**31, 2**63 - 1, 2**63,
                                                         -(2**63), 10**30]), st.booleans())


def valid_hello() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        "type": st.just("hello"),
        "proxy_id": st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,30}[A-Za-z0-9])?", fullmatch=True),
        "service": label,
        "version": st.sampled_from(["v1", "v2", "", "1.2.3-rc1"]),
        "address": st.just("127.0.0.1:15001"),
        "admin": st.just("127.0.0.1:15000"),
        "pid": st.integers(1, 99999),
        "sidecar_version": st.just("0.1.0"),
    })


def valid_other() -> st.SearchStrategy[dict[str, Any]]:
    kind = st.sampled_from(["endpoints", "config"])
    return st.one_of(
        st.fixed_dictionaries({"type": st.just("ack"), "kind": kind, "version": st.integers(0, 99)}),
        st.fixed_dictionaries({"type": st.just("nack"), "kind": kind,
                               "version": st.integers(0, 99), "reason": st.text(max_size=30)}),
        st.fixed_dictionaries({"type": st.just("heartbeat"),
                               "state": st.dictionaries(st.text(max_size=8), json_values,
                                                        max_size=4)}),
    )


@st.composite
def mutated(draw: st.DrawFn) -> str:
    frame = draw(st.one_of(valid_hello(), valid_other()))
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from([*frame, "extra"]))
        how = draw(st.sampled_from(["json", "text", "address", "int", "drop", "deep", "huge"]))
        if how == "drop":
            frame.pop(key, None)
        elif how == "json":
            frame[key] = draw(json_values)
        elif how == "text":
            frame[key] = draw(odd_text)
        elif how == "address":
            frame[key] = draw(address)
        elif how == "int":
            frame[key] = draw(integers)
        elif how == "deep":
            depth = draw(st.sampled_from([MAX_FRAME_DEPTH - 1, MAX_FRAME_DEPTH, 50, 5000]))
            nested: Any = 1
            for _ in range(depth):
                nested = [nested]
            frame[key] = nested
        else:
            frame[key] = "a" * draw(st.sampled_from([MAX_FRAME_BYTES - 200, MAX_FRAME_BYTES]))
    try:
        text = json.dumps(frame, ensure_ascii=draw(st.booleans()))
    except RecursionError:
        text = "[" * 5000 + "]" * 5000
    cut = draw(st.sampled_from([None] * 15 + [1, -1, 10]))  # sometimes not even JSON
    return text if cut is None else text[:cut]


@examples()
@given(mutated())
def test_parse_frame_returns_a_valid_frame_or_a_frame_error(text: str) -> None:
    try:
        frame = parse_frame(text)
    except FrameError as exc:
        assert len(str(exc)) < 400  # never echoes a big value back
        assert exc.as_frame()["code"]
        outcome("control.parse_frame", "error:" + exc.code)
        return
    if isinstance(frame, Hello):
        # Whatever meshui registers, every sidecar accepts in an endpoints message.
        validate_services({frame.service: [{"instance": frame.proxy_id, "version": frame.version,
                                            "address": frame.address}]})
        assert frame.admin == "" or address_problem(frame.admin) is None
        assert len(frame.proxy_id) <= 200 and len(frame.address) <= 255
    outcome("control.parse_frame", type(frame).__name__.lower())
