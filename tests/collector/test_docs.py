"""Every counter the collector exposes is documented in docs/collector.md (a public contract)."""

from __future__ import annotations

import re
from pathlib import Path

from collector.cardinality import CardinalityLimiter
from collector.stats import CollectorStats, ForwardStats

DOCS = (Path(__file__).resolve().parents[2] / "docs" / "collector.md").read_text()


def test_every_metrics_family_and_health_field_is_in_the_collector_docs() -> None:
    stats = CollectorStats(cardinality=CardinalityLimiter(), forwarding=ForwardStats())
    families = re.findall(r"^# TYPE meshui_collector_(\w+) ", stats.prometheus(), re.M)
    assert "cardinality_rejected_total" in families and "forward_dropped_total" in families
    missing = [name for name in families if f"`{name}" not in DOCS]
    assert not missing, f"/metrics families not in docs/collector.md: {missing}"
    fields = [key for key in stats.as_dict() if f"`{key}" not in DOCS]
    assert not fields, f"/health fields not in docs/collector.md: {fields}"
    forwarding = [key for key in stats.as_dict()["forwarding"] if f"`forwarding.{key}" not in DOCS]
    assert not forwarding, f"/health forwarding fields not in docs/collector.md: {forwarding}"
