"""Alerts on what zero trust does: denials (the ``denied`` and ``audit_denied`` edge events)
and ``cert_expiry_h``, hours until the first certificate of a target's live proxies expires,
read from meshui's CA's records at each evaluation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from django.test import Client

from meshui.alerts.evaluator import Evaluator
from meshui.alerts.models import AlertState
from meshui.alerts.states import State
from meshui.identity.models import Certificate
from meshui.registry.models import Instance, Service
from tests.clock import FakeClock
from tests.meshui.alerts.traffic import BASE, Traffic, make_rule

pytestmark = pytest.mark.django_db
NOW = datetime.fromtimestamp(BASE, UTC)


def proxy(proxy_id: str, service: str, hours_left: float, *, live: bool = True) -> None:
    row, _ = Service.objects.get_or_create(name=service)
    Instance.objects.create(proxy_id=proxy_id, service=row, version="v1", address="127.0.0.1:1",
                            connected=live, last_seen=NOW)
    Certificate.objects.create(
        proxy_id=proxy_id, service=service, spiffe_id=f"spiffe://meshui.local/service/{service}",
        serial=proxy_id.encode().hex(), not_before=NOW - timedelta(hours=1),
        not_after=NOW + timedelta(hours=hours_left), issued_at=NOW - timedelta(hours=1))


def states() -> dict[str, tuple[str, float | None]]:
    return {row.rule.name: (row.state, row.value) for row in AlertState.objects.select_related("rule")}


def test_a_service_alerts_on_its_first_certificate_to_expire_and_an_instance_on_its_own(
        meshui_settings: Any, redis_client: redis.Redis) -> None:
    proxy("payments-v1-0", "payments", 12.0)
    proxy("payments-v1-1", "payments", 2.5)  # its renewal is late
    proxy("payments-v1-2", "payments", 0.5, live=False)  # gone: its certificate is not served
    proxy("catalog-v1-0", "catalog", 20.0)
    make_rule("payments certs", target={"service": "payments"}, metric="cert_expiry_h", op="<",
              fire=4.0, recover=6.0)
    make_rule("catalog certs", target={"service": "catalog"}, metric="cert_expiry_h", op="<",
              fire=4.0, recover=6.0)
    make_rule("one instance", target={"instance": "payments-v1-0"}, metric="cert_expiry_h", op="<",
              fire=4.0, recover=6.0)
    make_rule("nobody", target={"service": "ratings"}, metric="cert_expiry_h", op="<", fire=4.0,
              recover=6.0)
    assert Evaluator(redis_client, clock=FakeClock(BASE + 0.3), interval=10).run().ran
    found = states()
    assert found["payments certs"] == (State.FIRING, 2.5)
    assert found["catalog certs"] == (State.NORMAL, 20.0)
    assert found["one instance"] == (State.NORMAL, 12.0)
    assert found["nobody"] == (State.NO_DATA, None)
    detail = AlertState.objects.get(rule__name="nobody").detail
    assert "holds a certificate" in detail


def test_the_api_refuses_it_on_an_edge_naming_why(operator: Client) -> None:
    response = operator.post("/api/v1/alerts/rules", {
        "name": "edge certs", "target": {"source": "a", "target": "b"}, "metric": "cert_expiry_h",
        "window_s": 60,
        "op": "<", "fire": 4}, content_type="application/json")
    assert response.status_code == 400, response.content
    assert "certificates belong to proxies" in response.content.decode()


def test_denials_and_would_be_denials_fire_like_any_policy_event(
        meshui_settings: Any, redis_client: redis.Redis) -> None:
    make_rule("denied", target={"source": "checkout", "target": "payments"}, metric="denied",
              fire=1.0, recover=0.5)
    make_rule("audit", target={"service": "payments"}, metric="audit_denied", fire=1.0, recover=0.5)
    Traffic(redis_client).calls("checkout", "payments", range(BASE - 10, BASE), 10, 0.0,
                                events={"denied": 2, "audit_denied": 3}).write()
    assert Evaluator(redis_client, clock=FakeClock(BASE + 0.3), interval=10).run().ran
    found = states()
    assert found["denied"] == (State.FIRING, 2.0)
    assert found["audit"] == (State.FIRING, 3.0)
