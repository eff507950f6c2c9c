"""An alert rule through the demo's real sidecars, meshui, the collector and Celery worker
and beat: checkout -> payments error rate, fire above 20 % for 10 s, recover below 5 %.

payments' failures are raised with a fault revision through the control-plane API; the
rule goes Pending then Firing within the pending period, one evaluation interval and 5 s;
a real HTTP receiver in the test gets exactly one firing webhook. At 12 % (between recover
and fire) it keeps firing; with the fault removed it recovers once the rate is under 5 %,
and exactly one resolved webhook arrives. Evaluation every 2 s here (the default is 10 s)
keeps the test short; the bound is the issue's, in this interval.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from meshui.demo.mesh import Mesh
from tests.e2e.alerting import INSTANCES, Shop
from tests.e2e.meshes import small_mesh
from tests.meshui.alerts.receivers import HttpReceiver, http_receiver
from tests.polling import wait_until

INTERVAL_S = 2
FOR_S = 10


@pytest.fixture(scope="module")
def mesh(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    redis_url = f"{redis_server_url}/15"
    redis.Redis.from_url(redis_url).flushdb()
    with small_mesh(tmp_path_factory.mktemp("alerts"), "alerts", INSTANCES, redis_url=redis_url,
                    run_celery=True,
                    extra_env=(("MESHUI_ALERTS_INTERVAL_S", str(INTERVAL_S)),
                               ("MESHUI_ALERTS_DISPATCH_S", "1"))) as mesh:
        yield mesh


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    yield from http_receiver()


def test_a_fault_fires_the_rule_once_and_removing_it_resolves_it_once(
        mesh: Mesh, receiver: HttpReceiver) -> None:
    with Shop(mesh) as shop:
        wait_until(lambda: shop.edge_requests() > 100, 30, what="traffic on checkout -> payments")
        point = shop.contact_point(receiver.url)
        rule = shop.rule(point["id"])["id"]
        wait_until(lambda: shop.alert(rule)["state"] == "Normal"
                   and shop.alert(rule)["last_evaluated"], 20, what="the rule evaluated, Normal")

        _, committed = shop.payments_failing(100)
        deadline = FOR_S + INTERVAL_S + 5
        wait_until(lambda: receiver.bodies(), deadline + 10, what="the firing webhook")
        fired = time.time() - committed
        states = [t["to_state"] for t in shop.history(rule)]
        assert states[:2] == ["Pending", "Firing"], states
        assert fired <= deadline, f"the webhook came {fired:.1f} s after the commit"
        [body] = receiver.bodies()
        assert body["status"] == "firing" and body["receiver"] == "e2e hook"
        assert body["groupLabels"] == {"alertname": "payments errors"}
        [alert] = body["alerts"]
        assert alert["labels"] | {"team": "-"} == {
            "alertname": "payments errors", "severity": "critical", "team": "-",
            "source": "checkout", "target": "payments"}

        # 12 %: above recover (5 %), under fire (20 %): still firing, nothing sent.
        shop.payments_failing(12)
        wait_until(lambda: 0.06 < (shop.alert(rule)["value"] or 0) < 0.19, 30,
                   what="the error rate between recover and fire")
        seen = shop.alert(rule)["last_evaluated"]
        wait_until(lambda: shop.alert(rule)["last_evaluated"] != seen, 10,
                   what="another evaluation")
        middle = shop.alert(rule)
        assert middle["state"] == "Firing", middle
        assert 0.05 < middle["value"] < 0.2, middle

        shop.payments_failing(0)
        wait_until(lambda: shop.alert(rule)["state"] == "Normal", 40, what="recovered")
        resolved = next(t for t in reversed(shop.history(rule)) if t["to_state"] == "Normal")
        assert resolved["value"] < 0.05, resolved
        wait_until(lambda: len(receiver.bodies()) >= 2, 15, what="the resolved webhook")
        # One more dispatch interval and evaluation pass: nothing else comes.
        seen = shop.alert(rule)["last_evaluated"]
        wait_until(lambda: shop.alert(rule)["last_evaluated"] != seen, 10,
                   what="another evaluation")
        sent = shop.api("GET", "alerts/notifications").json()["notifications"]
    statuses = [b["status"] for b in receiver.bodies()]
    assert statuses == ["firing", "resolved"], statuses
    assert receiver.bodies()[1]["alerts"][0]["status"] == "resolved"
    assert [(n["status"], n["state"], n["attempts"]) for n in sent] == [
        ("resolved", "sent", 1), ("firing", "sent", 1)]
