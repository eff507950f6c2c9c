"""The restart hold (settle.py): no sidecar is sent a partial set after meshui starts."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from meshui.registry import settle
from meshui.registry.models import Instance, Service
from meshui.registry.settle import HOLD_KEY, decide
from meshui.registry.tasks import sweep_stale, sweep_verdict
from tests.meshui.test_control_channel import hello, receive, receive_until, sidecar
from tests.polling import eventually

KNOWN = frozenset({"a", "b", "c"})


def test_pushes_are_held_while_known_instances_are_missing_and_the_interval_runs() -> None:
    verdict = decide(KNOWN, frozenset({"a"}), started_at=100.0, now=102.0, interval=5.0)
    assert verdict.held and verdict.wait_s == pytest.approx(3.0)
    assert "2 of 3" in verdict.reason


def test_the_hold_ends_when_every_known_instance_said_hello_again() -> None:
    verdict = decide(KNOWN, KNOWN, started_at=100.0, now=100.5, interval=5.0)
    assert not verdict.held and verdict.wait_s == 0.0


def test_the_hold_ends_after_one_heartbeat_interval_naming_who_never_returned() -> None:
    assert decide(KNOWN, frozenset({"a"}), 100.0, 104.999, 5.0).held
    verdict = decide(KNOWN, frozenset({"a"}), 100.0, 105.0, 5.0)
    assert not verdict.held and "b, c" in verdict.reason


def test_a_process_that_knew_nobody_holds_nothing() -> None:
    assert not decide(frozenset(), frozenset(), 100.0, 100.0, 5.0).held


def test_the_sweep_waits_while_held_or_while_nobody_was_heard_from() -> None:
    now = timezone.now()
    stale = timedelta(seconds=15)
    assert sweep_verdict(now, now, stale, hold_active=True) is not None
    assert sweep_verdict(now - timedelta(seconds=16), now, stale, hold_active=False) is not None
    assert sweep_verdict(now - timedelta(seconds=1), now, stale, hold_active=False) is None
    assert sweep_verdict(None, now, stale, hold_active=False) is None


# -- through the real consumer ----------------------------------------------------------


def left_by_previous_process(*proxy_ids: str, silent_for: float) -> None:
    """Rows as a crashed or restarted meshui leaves them: connected, owned by dead sockets."""
    service = Service.objects.create(name="catalog")
    seen = timezone.now() - timedelta(seconds=silent_for)
    for i, proxy_id in enumerate(proxy_ids):
        Instance.objects.create(
            proxy_id=proxy_id, service=service, version="v1", address=f"127.0.0.1:{9001 + i}",
            connected=True, connected_at=seen, last_seen=seen, connection="gone!old")


async def hello_again(proxy_id: str, port: int) -> Any:
    communicator = sidecar("catalog", client=("10.0.0.7", port))
    connected, _ = await communicator.connect()
    assert connected
    await communicator.send_json_to(hello(proxy_id, "catalog", port=port))
    assert (await receive(communicator))["type"] == "welcome"  # never held
    return communicator


@pytest.fixture
def restarted(meshui_settings: Any) -> Any:
    """A fresh hold, as a process start makes; a settled one again afterwards."""
    yield settle.begin
    settle.settled_hold()


@pytest.mark.django_db(transaction=True)
async def test_after_a_restart_no_partial_set_is_pushed_and_the_full_set_once_all_returned(
    restarted: Any, redis_client: Any
) -> None:
    # meshui was away for longer than the stale window: the rows alone list nobody live.
    await database_sync_to_async(left_by_previous_process)("a", "b", "c", silent_for=20)
    hold = restarted()
    a = await hello_again("a", 9001)
    b = await hello_again("b", 9002)
    await eventually(lambda: hold.pending and redis_client.exists(HOLD_KEY))
    assert not hold.settled
    assert await database_sync_to_async(sweep_stale)() == []  # the Celery sweep waits too
    c = await hello_again("c", 9003)

    firsts = [await receive_until(s, lambda f: f["type"] == "endpoints") for s in (a, b, c)]
    # The first endpoints frame each sidecar saw is the whole set: none got a partial one.
    for frame in firsts:
        assert [i["instance"] for i in frame["services"]["catalog"]] == ["a", "b", "c"]
    assert len({f["version"] for f in firsts}) == 1  # the held push, sent once
    assert hold.settled and not hold.pending
    for s in (a, b, c):
        await s.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_the_hold_ends_after_one_heartbeat_interval_when_one_never_returns(
    restarted: Any, meshui_settings: Any
) -> None:
    meshui_settings.MESHUI_HEARTBEAT_INTERVAL = 1
    await database_sync_to_async(left_by_previous_process)("a", "b", silent_for=5)
    started = time.time()
    hold = restarted(started)
    a = await hello_again("a", 9001)
    frame = await receive_until(a, lambda f: f["type"] == "endpoints", timeout=5)
    assert time.time() >= started + 1.0  # not before the interval
    assert hold.settled
    # b never came back; its row is not live, so the set that finally goes is a alone.
    assert [i["instance"] for i in frame["services"]["catalog"]] == ["a"]
    await a.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_instances_that_left_before_the_restart_are_not_waited_for(
    restarted: Any,
) -> None:
    def left_cleanly() -> None:
        left_by_previous_process("a", "b", silent_for=1)
        Instance.objects.filter(proxy_id="b").update(connected=False)

    await database_sync_to_async(left_cleanly)()
    hold = restarted()
    a = await hello_again("a", 9001)
    frame = await receive_until(a, lambda f: f["type"] == "endpoints")
    assert hold.settled and [i["instance"] for i in frame["services"]["catalog"]] == ["a"]
    await a.disconnect()


@pytest.mark.django_db(transaction=True)
def test_the_sweep_evicts_nobody_when_no_instance_was_heard_from(meshui_settings: Any) -> None:
    # meshui was down for 20 s: every heartbeat had nowhere to go.
    left_by_previous_process("a", "b", silent_for=20)
    assert sweep_stale() == []
    assert Instance.objects.filter(connected=True).count() == 2
    # Once one instance is heard from again, the silent one is stale, and swept.
    Instance.objects.filter(proxy_id="a").update(last_seen=timezone.now())
    assert sweep_stale() == ["b"]
