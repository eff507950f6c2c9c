"""An alert through the whole mesh: checkout -> payments traffic, a fault revision, a rule,
a real webhook receiver. Shared by tests/e2e/test_alerts.py and bench/alert_latency.py.

``Shop`` drives POST /checkout through the frontend's sidecar at a steady rate from a
thread (frontend -> checkout -> payments), and turns payments' failures up and down with
policy revisions through the control-plane API: an abort fault on payments' route, which
checkout's sidecar injects, so the edge checkout -> payments sees the errors.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx

from meshui.demo.mesh import Mesh
from meshui.demo.topology import Instance

INSTANCES = (Instance("frontend", "v1"), Instance("catalog", "v1"), Instance("inventory", "v1"),
             Instance("checkout", "v1"), Instance("payments", "v1", failure_rate=0.0))
EDGE = {"source": "checkout", "target": "payments"}


class Shop:
    def __init__(self, mesh: Mesh, rps: float = 40.0) -> None:
        self.mesh, self.rps = mesh, rps
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._load, daemon=True)
        self.client = httpx.Client(timeout=10, trust_env=False,
                                   headers={"Authorization": f"Bearer {mesh.demo_token()}"})

    def __enter__(self) -> Shop:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=15)
        self.client.close()

    def _load(self) -> None:
        url = self.mesh.config.inbound_url("frontend") + "/checkout"
        period = 1.0 / self.rps
        with httpx.Client(timeout=10, trust_env=False, headers={"host": "frontend"}) as client:
            due = time.monotonic()
            while not self.stop.is_set():
                try:
                    client.post(url, content=b"{}")
                    self.sent += 1
                except httpx.HTTPError:
                    pass  # counted by the mesh as it sees it; the load goes on
                due += period
                self.stop.wait(max(0.0, due - time.monotonic()))

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.client.request(method, f"{self.mesh.config.dashboard_url}api/v1/{path}",
                                   **kwargs)

    def payments_failing(self, percent: float) -> tuple[int, float]:
        """A revision that makes ``percent`` % of checkout's calls to payments fail (0: no
        fault); its number and when it was committed (the API's answer, epoch seconds)."""
        routes = [] if not percent else [{
            "name": "payments-chaos", "match": {"path_prefix": "/charge"},
            "fault": {"abort": {"status": 503, "percent": percent}}}]
        parent = self.api("GET", "policy").json()["revision"]
        response = self.api("PATCH", "policy/services/payments", json={
            "patch": {"routes": routes}, "parent": parent, "source": "cli"})
        committed = time.time()
        assert response.status_code == 201, response.text
        return int(response.json()["revision"]), committed

    def contact_point(self, url: str, **fields: Any) -> dict[str, Any]:
        response = self.api("POST", "alerts/contact-points", json={
            "name": "e2e hook", "kind": "webhook", "url": url, "group_wait_s": 0,
            "group_interval_s": 1} | fields)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def rule(self, point: int, **fields: Any) -> dict[str, Any]:
        response = self.api("POST", "alerts/rules", json={
            "name": "payments errors", "target": EDGE, "metric": "error_rate", "window_s": 10,
            "op": ">", "fire": 0.2, "recover": 0.05, "for_s": 10, "severity": "critical",
            "labels": {"team": "payments"}, "contact_points": [point]} | fields)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def alert(self, rule: int) -> dict[str, Any]:
        [found] = self.api("GET", "alerts", params={"rule": rule}).json()["alerts"]
        return found  # type: ignore[no-any-return]

    def history(self, rule: int) -> list[dict[str, Any]]:
        """Oldest first."""
        rows = self.api("GET", f"alerts/rules/{rule}/history",
                        params={"per_page": 500}).json()["transitions"]
        return list(reversed(rows))

    def edge_requests(self) -> int:
        edges = self.api("GET", "graph", params={"window": 60}).json()["edges"]
        return next((e["requests"] for e in edges
                     if (e["source"], e["target"]) == ("checkout", "payments")), 0)
