"""``--wait`` on apply, split and rollback: until every connected sidecar runs the revision,
one of them NACKs it, or the timeout; the sidecars' answers are their rows, as the control
channel records an ACK or a NACK."""

from __future__ import annotations

import json
from typing import Any

import pytest

from meshui.cli import wait
from meshui.cli.wait import Progress, progress
from meshui.registry.models import Instance
from tests.cli.conftest import Meshctl, live_instance

EVEN = json.dumps({"services": {"catalog": {"split": {"v1": 50, "v2": 50}}}})


@pytest.fixture
def catalog() -> None:
    live_instance("catalog", "v1", "catalog-v1-0")
    live_instance("catalog", "v2", "catalog-v2-0")
    gone = live_instance("catalog", "v2", "catalog-v2-9")  # disconnected: not waited for
    Instance.objects.filter(pk=gone.pk).update(connected=False)


def test_wait_ends_once_every_connected_sidecar_acked_the_revision(
    meshctl: Meshctl, catalog: None
) -> None:
    Instance.objects.update(config_acked=1)  # they answer at once
    result = meshctl("apply", "-f", "-", "--wait", stdin=EVEN)
    assert (result.code, result.err) == (0, "")
    assert result.out == "revision 1 created\napplied on 2/2 sidecars\n"


def test_wait_prints_progress_until_the_last_sidecar_acks(
    meshctl: Meshctl, catalog: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert meshctl("apply", "-f", "-", stdin=EVEN).code == 0
    Instance.objects.filter(proxy_id="catalog-v1-0").update(config_acked=2)
    Instance.objects.filter(proxy_id="catalog-v2-0").update(config_acked=1)
    polls: list[str] = []

    def the_second_sidecar_acks_after_the_first_poll(answer: Any, revision: int) -> Progress:
        state = progress(answer, revision)
        polls.append(state.line())
        if len(polls) == 1:
            Instance.objects.filter(proxy_id="catalog-v2-0").update(config_acked=2)
        return state

    monkeypatch.setattr(wait, "progress", the_second_sidecar_acks_after_the_first_poll)
    result = meshctl("split", "catalog", "v1=80", "v2=20", "--wait", "--timeout", "20")
    assert result.code == 0, result.err
    assert result.out == ("revision 2 created\napplied on 1/2 sidecars\n"
                          "applied on 2/2 sidecars\n")
    assert polls[0] == "applied on 1/2 sidecars" and polls[-1] == "applied on 2/2 sidecars"


def test_a_nack_ends_the_wait_naming_the_sidecar_and_its_reason(
    meshctl: Meshctl, catalog: None
) -> None:
    Instance.objects.filter(proxy_id="catalog-v1-0").update(config_acked=1)
    Instance.objects.filter(proxy_id="catalog-v2-0").update(
        config_nacked=1, config_nack_reason="split.v2: not on this sidecar")
    result = meshctl("apply", "-f", "-", "--wait", stdin=EVEN)
    assert result.code == 1
    assert result.out == ("revision 1 created\napplied on 1/2 sidecars\n"
                          "  catalog-v2-0 (catalog v2): NACKED revision 1: split.v2: not on "
                          "this sidecar\n")
    assert result.err == ("meshctl: 1 sidecar rejected revision 1 and keeps the last good "
                          "one: fix the policy and apply again\n")


def test_the_wait_times_out_naming_the_sidecars_that_did_not_answer(
    meshctl: Meshctl, catalog: None
) -> None:
    Instance.objects.filter(proxy_id="catalog-v1-0").update(config_acked=1)
    result = meshctl("apply", "-f", "-", "--wait", "--timeout", "1.5", "-o", "json",
                     stdin=EVEN)
    assert result.code == 3
    assert result.json()["revision"] == 1  # stdout keeps the JSON; progress went to stderr
    lines = result.err.splitlines()
    assert lines[0] == "applied on 1/2 sidecars"
    # STALE once MESHUI_SYNC_TIMEOUT (1 s here) passed without an ACK; PENDING before.
    assert lines[1] in ("  catalog-v2-0 (catalog v2): STALE, runs no revision yet",
                        "  catalog-v2-0 (catalog v2): PENDING, runs no revision yet")
    assert lines[2] == ("meshctl: timed out after 1.5 s: 1 of 2 sidecars have not applied "
                        "revision 1 (meshctl proxy-status shows them; --timeout waits longer)")


def test_rollback_waits_too_and_with_no_sidecar_there_is_nothing_to_wait_for(
    meshctl: Meshctl,
) -> None:
    assert meshctl("apply", "-f", "-", stdin="{}").code == 0
    result = meshctl("rollback", "1", "--wait")
    assert result.out == "revision 2 created\nno connected sidecars to wait for\n"


def test_progress_counts_a_later_revision_as_applied_and_ignores_disconnected_sidecars() -> None:
    def proxy(name: str, state: str, acked: int | None, connected: bool = True) -> dict:
        return {"proxy_id": name, "service": "s", "version": "v1", "connected": connected,
                "config": {"state": state, "revision_acked": acked, "nack_reason": None}}

    answer = {"proxies": [proxy("a", "SYNCED", 5), proxy("b", "PENDING", 3),
                          proxy("c", "NACKED", 3), proxy("d", "NOT_SENT", None, False)]}
    state = progress(answer, 4)
    assert (state.applied, state.total, state.done) == (1, 3, True)
    assert [p.name for p in state.nacked] == ["c"] and [p.name for p in state.waiting] == ["b"]
    assert not progress({"proxies": [proxy("b", "PENDING", 3)]}, 4).done
