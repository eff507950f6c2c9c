"""Fuzz target: what the sidecar's control client accepts (issue 6).

Mutated ``endpoints`` and ``config`` messages go through ``ControlClient``'s message
handler: each is applied and ACKed, or NACKed with a reason while the last good state stays
in force; never an exception. The socket is a recorder (one real server per case would
spend the budget on handshakes; tests/proxies/test_control*.py cover the real socket).
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxies.control.client import ControlClient
from proxies.mesh.endpoints import EndpointRegistry
from proxies.mesh.schema import NACK_REASON_MAX
from proxies.policy.store import PolicyStore
from proxies.telemetry.tailkeep import TailKeepConfig, TailKeeper
from tests.fuzzing import examples, outcome

pytestmark = pytest.mark.fuzz

SERVICES = {
    "payments": [
        {"instance": "p1", "version": "v1", "address": "127.0.0.1:15001"},
        {"instance": "p2", "version": "v2", "address": "[::1]:15002"},
    ],
    "catalog": [{"instance": "c1", "version": "v1", "address": "catalog.svc:80"}],
}
POLICY = {
    "default": {"retries": {"attempts": 2}, "timeouts": {"request_ms": 10000}},
    "services": {
        "payments": {
            "load_balancer": "peak_ewma",
            "timeouts": {"connect_ms": 500, "per_try_ms": 300},
            "retries": {"retry_on": ["connect-failure", "gateway-error"], "statuses": [429]},
            "split": {"v1": 90, "v2": 10},
            "routes": [{"name": "canary", "match": {"headers": {"x-canary": "1"}},
                        "split": {"v2": 100}}],
            "rate_limit": {"total": {"requests_per_second": 500, "burst": 1000}},
        },
        "catalog": {"load_balancer": "least_request",
                    "circuit_breaker": {"max_requests": 200, "max_pending_requests": 50}},
    },
}

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-2, 2), st.sampled_from([0, 100, 65536, 2**63, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
    st.sampled_from(["", "Evil:Name", "UPPER", "a" * 64, "x" * 201, "h:0", "h:70000", "::1:80",
                     "h:١٢", "é", "\x00", "[::1]:1", "10.0.0.1:1", "v1", "v3", "a" * 300 + ":80"]),
)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


def paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into a JSON document (the places a mutation can land)."""
    found = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            found += paths(value, (*prefix, key))
    elif isinstance(document, list):
        for i, value in enumerate(document):
            found += paths(value, (*prefix, i))
    return found


@st.composite
def mutated(draw: st.DrawFn, document: Any) -> Any:
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(paths(document)))
        value = draw(json_values)
        if not path:
            document = value
            continue
        parent = document
        try:
            for step in path[:-1]:
                parent = parent[step]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent[draw(st.sampled_from([path[-1], "extra", "Evil:Name"]))] = value
            elif draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation moved the ground under this path
    return document


version = st.one_of(st.integers(2, 50), scalars)
messages = st.one_of(
    st.fixed_dictionaries({"type": st.just("endpoints"), "version": version,
                           "services": mutated(SERVICES)}),
    st.fixed_dictionaries({"type": st.just("config"), "revision": version,
                           "policy": mutated(POLICY)}),
)


class Recorder:
    """The socket: keeps what the client sends."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text))


def run(awaitable: Any) -> None:
    """One loop for every case (asyncio.run would make and close one per call)."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    _loop.run_until_complete(awaitable)


_loop: asyncio.AbstractEventLoop | None = None


@pytest.fixture(autouse=True, scope="module")
def _close_the_loop() -> Any:
    yield
    if _loop is not None:
        _loop.close()


def fresh_client() -> ControlClient:
    client = ControlClient("ws://127.0.0.1:1/api/v1/control", "t", {"proxy_id": "me"},
                           EndpointRegistry(), dict, policy_store=PolicyStore())
    ws = Recorder()
    run(client._handle(ws, orjson.dumps(
        {"type": "endpoints", "version": 1, "services": SERVICES})))
    run(client._handle(ws, orjson.dumps({"type": "config", "revision": 1, "policy": POLICY})))
    assert [m["type"] for m in ws.sent] == ["ack", "ack"]
    return client


@examples()
@given(messages)
def test_endpoints_and_config_are_applied_or_nacked_and_the_last_good_state_stays(
    message: dict[str, Any]
) -> None:
    client = fresh_client()
    before = (client.registry.snapshot, client.policy_store.policy, client.config_revision)
    ws = Recorder()
    text = json.dumps(message, allow_nan=True)
    run(client._handle(ws, text))

    state = (client.registry.snapshot, client.policy_store.policy, client.config_revision)
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:  # NaN / Infinity: not JSON; logged and ignored
        assert ws.sent == [] and state == before
        outcome("control.sidecar_apply", "ignored")
        return
    (reply,) = ws.sent
    kind = "endpoints" if message["type"] == "endpoints" else "config"
    assert reply["kind"] == kind
    if reply["type"] == "nack":
        assert reply["reason"] and len(reply["reason"]) <= NACK_REASON_MAX
        # The client survives a parser bug (a NACK, logged), but it is still a bug.
        assert "could not be validated" not in reply["reason"], reply["reason"]
        assert state == before
        outcome("control.sidecar_apply", f"nack:{kind}")
        return
    assert reply["type"] == "ack"
    if kind == "endpoints":
        assert client.registry.snapshot.version == message["version"]
        assert client.policy_store.policy is before[1]
    else:
        assert client.config_revision == message["revision"]
        assert client.registry.snapshot is before[0]
    outcome("control.sidecar_apply", f"applied:{kind}")


GOOD_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
export_frames = st.fixed_dictionaries({
    "type": st.just("export_traces"), "id": st.one_of(st.integers(0, 2**63 - 1), scalars),
    "trace_ids": mutated([GOOD_TRACE, "ab" * 16, "0" * 31 + "1"]),
})


class Spans:
    def __init__(self) -> None:
        self.spans: list[Any] = []

    def record_span(self, span: Any) -> None:
        self.spans.append(span)


@examples()
@given(export_frames)
def test_an_export_traces_frame_is_done_or_nacked_whole_and_exports_at_most_the_keep_rate(
    message: dict[str, Any]
) -> None:
    sink = Spans()
    tail = TailKeeper(TailKeepConfig(keep_rate=2), sink)
    for trace in (GOOD_TRACE, "ab" * 16, "0" * 31 + "1"):  # three traces held
        tail.ring.add((bytes.fromhex(trace), b"\x01" * 8, None, True, b"GET", b"/", None, 200,
                       "catalog", "v1", None, tail.clock(), tail.clock(), False, None))
    client = ControlClient("ws://127.0.0.1:1/api/v1/control", "t", {"proxy_id": "me"},
                           EndpointRegistry(), dict, tail=tail)
    ws = Recorder()
    text = json.dumps(message, allow_nan=True)
    run(client._handle(ws, text))

    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        assert ws.sent == [] and sink.spans == []
        outcome("control.export_traces", "ignored")
        return
    if ws.sent:
        (nack,) = ws.sent
        assert nack["type"] == "nack" and nack["kind"] == "export_traces"
        assert nack["reason"].startswith(("id: ", "trace_ids: ")) and len(nack["reason"]) <= NACK_REASON_MAX
        assert isinstance(nack["version"], int) and sink.spans == []
        assert tail.frames == {"accepted": 0, "rejected": 1}
        outcome("control.export_traces", "nack:" + nack["reason"].split(":")[0])
        return
    assert tail.frames == {"accepted": 1, "rejected": 0}
    assert len(sink.spans) <= 2  # the keep rate, however many ids the frame names
    assert all(span.attributes["meshui.keep.reason"] == "remote" for span in sink.spans)
    outcome("control.export_traces", f"exported:{len(sink.spans)}")
