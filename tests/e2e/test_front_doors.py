"""The hostile inputs of issue 6, tried again against the running demo mesh.

An insider with a service's join token claims a live instance, registers names the
sidecars would refuse, and poisons the collector with an impossible data point; the mesh
refuses each, names what was wrong, and keeps serving with everything else intact.
"""

from __future__ import annotations

import asyncio
import json
import socket
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import websockets

from tests.collector.otlp_build import sidecar_metrics
from tests.e2e.conftest import RunningMesh
from tests.e2e.test_mesh import send
from tests.polling import eventually

VICTIM = "catalog-v1-1"  # proxy ids are <service>-<version>-<index>


async def control_session(mesh: RunningMesh, hello: dict[str, Any] | str,
                          token_of: str) -> list[dict[str, Any]]:
    """Send one hello on a fresh control connection, joining with ``token_of``'s join token;
    the frames meshui answers, until quiet."""
    url = f"ws://{mesh.config.host}:{mesh.config.meshui_port}/api/v1/control"
    frames = []
    token = await asyncio.to_thread(mesh.join_token, token_of)
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {token}"},
                                  max_size=None) as socket:
        await socket.send(hello if isinstance(hello, str) else json.dumps(hello))
        try:
            while True:
                frames.append(json.loads(await asyncio.wait_for(socket.recv(), 2)))
                if frames[-1]["type"] in ("error", "endpoints"):
                    return frames
        except (TimeoutError, websockets.exceptions.ConnectionClosed):
            return frames


def hello(proxy_id: str, service: str, address: str, version: str = "v1") -> dict[str, Any]:
    return {"type": "hello", "proxy_id": proxy_id, "service": service, "version": version,
            "address": address, "admin": "127.0.0.1:9", "pid": 4242, "sidecar_version": "attacker"}


def instances(mesh: RunningMesh) -> dict[str, dict[str, Any]]:
    rows = httpx.get(f"{mesh.api}/api/v1/instances", timeout=5).json()["instances"]
    return {row["proxy_id"]: row for row in rows}


def frontend_view(mesh: RunningMesh) -> dict[str, Any]:
    """The frontend sidecar's destinations, from its admin port."""
    admin = f"http://{mesh.config.host}:{mesh.config.ports(0).admin}/endpoints"
    return httpx.get(admin, timeout=5, trust_env=False).json()["destinations"]


async def test_an_impostor_hello_for_a_live_instance_is_refused_and_the_real_one_untouched(
    demo_mesh: RunningMesh,
) -> None:
    real = instances(demo_mesh)[VICTIM]

    frames = await control_session(demo_mesh, hello(VICTIM, "catalog", "127.0.0.1:1"), "catalog")

    assert frames[-1]["type"] == "error" and frames[-1]["code"] == "proxy_id_in_use", frames
    after = instances(demo_mesh)[VICTIM]
    assert (after["address"], after["connected"], after["connected_at"]) == (
        real["address"], True, real["connected_at"])
    addresses = {e["address"] for e in frontend_view(demo_mesh)["catalog"]["endpoints"]}
    assert "127.0.0.1:1" not in addresses and real["address"] in addresses
    assert send(demo_mesh, 10, path="/") == [200] * 10
    demo_mesh.wait_for(lambda: all(row["sync"] == "SYNCED" for row in instances(demo_mesh).values()
                                   if row["connected"]), what="every sidecar SYNCED")


async def test_invalid_hellos_are_refused_and_a_valid_new_service_still_reaches_every_sidecar(
    demo_mesh: RunningMesh,
) -> None:
    bad_name = await control_session(demo_mesh, hello("evil-1", "Evil:Name", "127.0.0.1:2"), "evil")
    huge = await control_session(demo_mesh, hello("evil-2", "evil", "127.0.0.1:" + "9" * 1_200_000),
                                 "evil")

    assert bad_name[-1]["type"] == "error" and bad_name[-1]["field"] == "service", bad_name
    assert huge[-1]["type"] == "error" and huge[-1]["code"] == "frame_too_large", huge
    assert not {"evil-1", "evil-2"} & set(instances(demo_mesh))

    url = f"ws://{demo_mesh.config.host}:{demo_mesh.config.meshui_port}/api/v1/control"
    token = {"Authorization": f"Bearer {await asyncio.to_thread(demo_mesh.join_token, 'newsvc')}"}
    async with websockets.connect(url, additional_headers=token) as socket:
        await socket.send(json.dumps(hello("newsvc-v1-0", "newsvc", "127.0.0.1:3")))
        await eventually(lambda: asyncio.to_thread(lambda: "newsvc" in frontend_view(demo_mesh)), 15)
    assert send(demo_mesh, 5, path="/") == [200] * 5


def test_a_poison_data_point_is_refused_and_the_good_ones_beside_it_are_counted(
    demo_mesh: RunningMesh,
) -> None:
    def edge() -> int:
        return demo_mesh.edge_count("poison-src", "poison-dst")

    good = {"count": 7, "attributes": {"destination.service": "poison-dst"}}
    body = sidecar_metrics([good, {**good, "count": 2**63}, good], service="poison-src").SerializeToString()

    response = httpx.post(f"{demo_mesh.config.collector_url}/v1/metrics", content=body, timeout=5,
                          headers={"content-type": "application/x-protobuf"})

    assert response.status_code == 200
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse

    answer = ExportMetricsServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_data_points == 1
    assert "count 9223372036854775808 is out of range" in answer.partial_success.error_message
    assert demo_mesh.settled(edge) == 14


SMUGGLED = b"POST /checkout HTTP/1.1\r\nHost: frontend\r\nContent-Length: 0\r\n\r\n"


def test_content_length_named_in_connection_smuggles_nothing_to_the_next_caller(
    demo_mesh: RunningMesh,
) -> None:
    """The issue's attack: 8 of 40 victims got the smuggled POST /checkout's answer.

    The attacker's requests and the victims' run at once, so the frontend sidecar's pooled
    connection to its app is reused by a victim while the app may still answer a smuggled
    request on it.
    """
    attack = (b"POST /checkout HTTP/1.1\r\nHost: frontend\r\nConnection: keep-alive, Content-Length\r\n"
              b"Content-Length: %d\r\n\r\n%b" % (len(SMUGGLED), SMUGGLED))
    address = (demo_mesh.config.host, demo_mesh.config.ports(0).inbound)
    checkouts = demo_mesh.settled(lambda: demo_mesh.edge_count("frontend", "checkout"))

    def attacker() -> None:
        for _ in range(20):
            with socket.create_connection(address, 5) as sock:
                sock.sendall(attack)
                sock.settimeout(5)
                try:
                    sock.recv(65536)
                except OSError:
                    pass

    def victims() -> list[httpx.Response]:
        with httpx.Client(timeout=10, trust_env=False) as client:
            return [client.get(demo_mesh.frontend() + "/product/42", headers={"host": "frontend"})
                    for _ in range(10)]

    with ThreadPoolExecutor(max_workers=6) as pool:
        attacks = [pool.submit(attacker) for _ in range(2)]
        answers = [pool.submit(victims) for _ in range(4)]
        for done in attacks:
            done.result()
        got = [response for future in answers for response in future.result()]

    # A product page calls catalog and reviews; the smuggled checkout would call checkout.
    wrong = [r.json() for r in got if r.status_code != 200
             or {c["service"] for c in r.json()["calls"]} != {"catalog", "reviews"}]
    assert wrong == []
    # Nor did the smuggled request run on its own: each of the 40 attacks is one checkout.
    assert demo_mesh.settled(lambda: demo_mesh.edge_count("frontend", "checkout")) == checkouts + 40
