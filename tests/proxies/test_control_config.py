"""`config` messages over a real websockets server: applied and ACKed, or NACKed naming the field."""

from __future__ import annotations

import pytest

from proxies.control.client import ControlClient
from proxies.mesh.endpoints import EndpointRegistry
from proxies.policy.store import PolicyStore
from tests.ports import free_port
from tests.proxies.conftest import until
from tests.proxies.test_control import TOKEN, FakeMeshui

PAYMENTS = {
    "payments": [
        {"instance": "p1", "version": "v1", "address": "127.0.0.1:15001"},
        {"instance": "p2", "version": "v2", "address": "127.0.0.1:15002"},
    ]
}
GOOD_POLICY = {"services": {"payments": {"split": {"v1": 90, "v2": 10}}}}


@pytest.fixture
async def meshui():
    server = FakeMeshui(free_port())
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(meshui):
    client = ControlClient(
        f"ws://127.0.0.1:{meshui.port}/api/v1/control",
        TOKEN,
        {"proxy_id": "frontend-v1-abc", "service": "frontend", "version": "v1", "address": "127.0.0.1:1"},
        EndpointRegistry(),
        lambda: {"endpoints_version": 0},
        backoff_min=0.01,
        backoff_max=0.05,
        policy_store=PolicyStore(),
    )
    client.start()
    await until(lambda: client.state == "connected")
    yield client
    await client.stop()


def replies(meshui: FakeMeshui) -> list[dict]:
    return [m for m in meshui.received if m["type"] in ("ack", "nack") and m["kind"] == "config"]


async def test_a_valid_config_is_put_in_force_and_acked_with_its_revision(meshui, client):
    swaps: list[tuple[int, int]] = []
    client.policy_store.subscribe(lambda old, new: swaps.append((old.revision, new.revision)))
    await meshui.send({"type": "config", "revision": 4, "policy": GOOD_POLICY})
    await until(lambda: replies(meshui))
    assert replies(meshui) == [{"type": "ack", "kind": "config", "version": 4}]
    policy = client.policy_store.policy
    assert policy.revision == 4 and policy.for_service("payments").split == (("v1", 90.0), ("v2", 10.0))
    assert swaps == [(0, 4)]
    assert client.view()["config"] == {"revision": 4, "policy": GOOD_POLICY}


async def test_an_invalid_config_is_nacked_naming_the_field_and_the_previous_policy_stays(meshui, client):
    await meshui.send({"type": "config", "revision": 1, "policy": GOOD_POLICY})
    await until(lambda: replies(meshui))
    in_force = client.policy_store.policy
    bad = {"services": {"payments": {"split": {"v1": 90, "v2": 5}}}}
    await meshui.send({"type": "config", "revision": 2, "policy": bad})
    await until(lambda: len(replies(meshui)) == 2)
    nack = replies(meshui)[1]
    assert nack["type"] == "nack" and nack["version"] == 2
    assert nack["reason"] == "services.payments.split: weights must sum to 100, got 95"
    assert client.policy_store.policy is in_force
    assert client.config_revision == 1
    assert client.view()["last_rejected_config"] == {"revision": 2, "reason": nack["reason"]}


async def test_a_version_no_live_instance_has_is_nacked(meshui, client):
    await meshui.send({"type": "endpoints", "version": 1, "services": PAYMENTS})
    await until(lambda: meshui.of_type("ack"))
    await meshui.send(
        {"type": "config", "revision": 3, "policy": {"services": {"payments": {"split": {"v3": 100}}}}}
    )
    await until(lambda: replies(meshui))
    assert replies(meshui)[0]["type"] == "nack"
    assert replies(meshui)[0]["reason"].startswith("services.payments.split.v3: unknown version 'v3'")
    assert client.policy_store.policy.revision == 0


async def test_an_unknown_key_is_nacked_rather_than_ignored(meshui, client):
    await meshui.send({"type": "config", "revision": 5, "policy": {"default": {"retry": {"attempts": 1}}}})
    await until(lambda: replies(meshui))
    assert replies(meshui)[0]["reason"].startswith("default.retry: unknown key")


async def test_a_policy_that_is_not_an_object_is_nacked(meshui, client):
    await meshui.send({"type": "config", "revision": 6, "policy": [1, 2]})
    await until(lambda: replies(meshui))
    assert replies(meshui)[0] == {
        "type": "nack",
        "kind": "config",
        "version": 6,
        "reason": "policy: must be an object",
    }


async def test_the_message_revision_is_the_policy_revision(meshui, client):
    await meshui.send({"type": "config", "revision": 9, "policy": {"revision": 1}})
    await until(lambda: replies(meshui))
    assert client.policy_store.policy.revision == 9
