"""``manage.py seed_alerts``: the demo's rules are valid, saved once, and a bad file names
the rule and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from meshui.alerts.models import AlertRule, ContactPoint
from meshui.demo.mesh import DEMO_ALERTS

pytestmark = pytest.mark.django_db


def test_the_demo_rules_are_saved_once_and_not_again_over_the_users_edits() -> None:
    call_command("seed_alerts", str(DEMO_ALERTS))
    names = set(AlertRule.objects.values_list("name", flat=True))
    assert names == {"payments errors", "slow product pages", "a service stopped serving"}
    AlertRule.objects.filter(name="slow product pages").delete()
    call_command("seed_alerts", str(DEMO_ALERTS))
    assert AlertRule.objects.count() == 2


def test_contact_points_are_named_and_a_bad_rule_names_its_field(tmp_path: Path) -> None:
    ContactPoint.objects.create(name="on-call", kind="webhook", config={"url": "http://h/x"})
    good = tmp_path / "good.yaml"
    good.write_text("rules:\n  - {name: a, target: {service: s}, metric: rps, window_s: 60,"
                    " op: '<', fire: 1, contact_points: [on-call]}\n")
    call_command("seed_alerts", str(good))
    assert [p.name for p in AlertRule.objects.get().contact_points.all()] == ["on-call"]
    AlertRule.objects.all().delete()
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - {name: a, target: {service: s}, metric: error_rate, window_s: 60,"
                   " op: '>', fire: 0.2, recover: 0.5}\n")
    with pytest.raises(CommandError, match=r"rules\[0\]\.recover: recover \(0.5\) must be at most"):
        call_command("seed_alerts", str(bad))
    missing = tmp_path / "missing.yaml"
    missing.write_text("rules:\n  - {name: a, target: {service: s}, metric: rps, window_s: 60,"
                       " op: '<', fire: 1, contact_points: [pager]}\n")
    with pytest.raises(CommandError, match="no contact point 'pager'"):
        call_command("seed_alerts", str(missing))
    assert not AlertRule.objects.exists()
