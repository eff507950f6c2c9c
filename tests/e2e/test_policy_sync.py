"""Policy revisions through real sidecars: pushed, ACKed, NACKed, STALE, and a meshui restart.

A small mesh of the demo's own processes (frontend -> catalog v1|v2 -> inventory), its policy
seeded as revision 1 as `make demo` seeds it. Writes go through the API with the API token
the demo issues for meshctl; the sidecars' admin ``/config`` is the ground truth of what runs.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import websockets

from meshui.demo.mesh import Mesh
from meshui.demo.topology import Instance
from tests.e2e.meshes import small_mesh
from tests.e2e.test_chaos import Load
from tests.polling import eventually, wait_until

INSTANCES = (Instance("frontend", "v1"), Instance("catalog", "v1"), Instance("catalog", "v2"),
             Instance("inventory", "v1"))
PROXY_IDS = {f"{i.service}-{i.version}-{n}" for n, i in enumerate(INSTANCES)}
SEED = "services:\n  catalog:\n    split: {v1: 80, v2: 20}\n"


@pytest.fixture(scope="module")
def mesh(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    with small_mesh(tmp_path_factory.mktemp("policy"), "policy", INSTANCES, policy=SEED) as mesh:
        yield mesh


def api(mesh: Mesh, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {mesh.demo_token()}"}
    return httpx.request(method, f"{mesh.config.dashboard_url}api/v1/{path}", headers=headers,
                         timeout=10, trust_env=False, **kwargs)


def summary(mesh: Mesh) -> dict[str, Any]:
    return api(mesh, "GET", "proxies").json()["summary"]


def sidecar_config(mesh: Mesh, index: int) -> dict[str, Any]:
    url = f"http://{mesh.config.host}:{mesh.config.ports(index).admin}/config"
    return httpx.get(url, timeout=5, trust_env=False).json()


def split(mesh: Mesh, weights: dict[str, int]) -> int:
    parent = api(mesh, "GET", "policy").json()["revision"]
    response = api(mesh, "PATCH", "policy/services/catalog", json={
        "patch": {"split": weights}, "parent": parent, "source": "cli"})
    assert response.status_code == 201, response.text
    return int(response.json()["revision"])


def everyone_runs(mesh: Mesh, revision: int) -> bool:
    """The API says all SYNCED on ``revision``, and every sidecar's /config agrees."""
    state = summary(mesh)
    if (state["revision"], state["synced"], state["total"]) != (revision, 4, 4):
        return False
    return all(sidecar_config(mesh, i)["policy"]["revision"] == revision
               for i in range(len(INSTANCES)))


def catalog_versions(mesh: Mesh, count: int) -> Counter[str]:
    """Which catalog instance answered each of ``count`` GET / through the frontend."""
    url = mesh.config.inbound_url("frontend") + "/"
    seen: Counter[str] = Counter()
    with httpx.Client(timeout=10, trust_env=False) as client:
        for _ in range(count):
            (call,) = client.get(url).json()["calls"]
            seen[call["instance"]] += 1
    return seen


def test_the_seed_is_revision_1_and_every_sidecar_runs_it(mesh: Mesh) -> None:
    current = api(mesh, "GET", "policy").json()
    assert (current["revision"], current["source"]) == (1, "seed")
    assert current["document"] == {"services": {"catalog": {"split": {"v1": 80, "v2": 20}}}}
    wait_until(lambda: everyone_runs(mesh, 1), 20, what="every sidecar on revision 1")
    frontend = sidecar_config(mesh, 0)
    assert frontend["policy"]["source"] == "control"
    assert frontend["control"]["config"]["revision"] == 1
    assert frontend["policy"]["in_force"]["services"]["catalog"]["split"] == {"v1": 80, "v2": 20}


def test_a_new_revision_reaches_every_sidecar_and_traffic_follows_it(mesh: Mesh) -> None:
    revision = split(mesh, {"v1": 0, "v2": 100})
    wait_until(lambda: everyone_runs(mesh, revision), 20, what=f"revision {revision} everywhere")
    assert catalog_versions(mesh, 20) == {"catalog-v2": 20}
    back = split(mesh, {"v1": 100, "v2": 0})
    wait_until(lambda: everyone_runs(mesh, back), 20, what=f"revision {back} everywhere")
    assert catalog_versions(mesh, 20) == {"catalog-v1": 20}


async def scripted_sidecar(mesh: Mesh, proxy_id: str, port: int, answer: str | None,
                           revisions: list[int]) -> None:
    """A control client that says hello, then NACKs every config (or never answers)."""
    url = f"ws://{mesh.config.host}:{mesh.config.meshui_port}/api/v1/control"
    headers = {"Authorization": f"Bearer {mesh.join_token('scripted')}"}
    async with websockets.connect(url, additional_headers=headers, proxy=None) as ws:
        await ws.send(json.dumps({"type": "hello", "proxy_id": proxy_id, "service": "scripted",
                                  "version": "v1", "address": f"127.0.0.1:{port}"}))
        async for text in ws:
            frame = json.loads(text)
            if frame["type"] == "config":
                revisions.append(frame["revision"])
                if answer == "nack":
                    await ws.send(json.dumps({"type": "nack", "kind": "config",
                                              "version": frame["revision"],
                                              "reason": "scripted: this sidecar says no"}))


async def test_a_nacking_sidecar_shows_nacked_and_a_silent_one_stale_while_the_rest_sync(
    mesh: Mesh,
) -> None:
    nacked: list[int] = []
    silent: list[int] = []
    tasks = [asyncio.create_task(scripted_sidecar(mesh, "scripted-nack", 1, "nack", nacked)),
             asyncio.create_task(scripted_sidecar(mesh, "scripted-silent", 2, None, silent))]
    try:
        await eventually(lambda: nacked and silent, timeout=15, what="both got the current revision")
        revision = await asyncio.to_thread(split, mesh, {"v1": 50, "v2": 50})

        def states() -> dict[str, dict[str, Any]] | None:
            rows = {p["proxy_id"]: p["config"] for p in api(mesh, "GET", "proxies").json()[
                "proxies"] if p["connected"]}
            done = rows.get("scripted-silent", {}).get("state") == "STALE"
            return rows if done else None

        # STALE only after MESHUI_SYNC_TIMEOUT (5 s) without an ACK.
        rows = await eventually(lambda: asyncio.to_thread(states), timeout=20,
                                what="the silent sidecar STALE")
        assert revision in nacked and revision in silent
        assert rows["scripted-nack"]["state"] == "NACKED"
        assert rows["scripted-nack"]["nack_reason"] == "scripted: this sidecar says no"
        assert {rows[p]["state"] for p in PROXY_IDS} == {"SYNCED"}
        state = await asyncio.to_thread(summary, mesh)
        assert state == {"revision": revision, "synced": 4, "total": 6, "pending": 0,
                         "stale": 1, "nacked": 1}
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_a_meshui_crash_changes_nothing_in_the_data_plane_and_all_sync_again(mesh: Mesh) -> None:
    revision = split(mesh, {"v1": 0, "v2": 100})
    wait_until(lambda: everyone_runs(mesh, revision), 20, what=f"revision {revision} everywhere")
    with Load(mesh) as load:
        wait_until(lambda: len(load.outcomes) >= 20, 20, what="load running")
        crashed = datetime.now(UTC)
        mesh.kill("meshui")
        # While meshui is away the sidecars keep the revision in force.
        assert all(sidecar_config(mesh, i)["policy"]["revision"] == revision
                   for i in range(len(INSTANCES)))
        mesh.start_again("meshui")

        def resynced() -> bool:
            # A reconnect resets what the row says was ACKed: SYNCED now means each sidecar
            # was sent the current revision after its new hello, and ACKed it.
            rows = api(mesh, "GET", "proxies").json()["proxies"]
            instances = {r["proxy_id"]: r for r in api(mesh, "GET", "instances").json()[
                "instances"]}
            return all(
                r["config"]["state"] == "SYNCED" and datetime.fromisoformat(
                    instances[r["proxy_id"]]["connected_at"].replace("Z", "+00:00")) > crashed
                for r in rows if r["proxy_id"] in PROXY_IDS)

        wait_until(resynced, 30, what="every sidecar back and SYNCED")
        wait_until(lambda: len(load.outcomes) >= 60, 30, what="more load after the restart")
    assert load.failures() == [], load.failures()
    assert catalog_versions(mesh, 10) == {"catalog-v2": 10}
