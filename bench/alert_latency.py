"""Alert latency: from a fault revision's commit to the firing webhook at a real receiver.

The demo's processes (tests/e2e/alerting.py's shop: frontend -> checkout -> payments, 40
checkouts a second), meshui's Celery worker and beat on the defaults (evaluation every
10 s), a rule on checkout -> payments error rate (window 10 s, fire above 20 % for 10 s,
recover below 5 %), a webhook contact point with group wait 0 (the default 30 s would add
30 s by design: it waits for more alerts to join the group). Each run makes 100 % of
payments' calls fail with a revision through the control-plane API, waits for the firing
webhook, removes the fault and waits for the resolved one. The budget is the issue's:
the pending period + one evaluation interval + 5 s; the ratio printed is p95 / budget.

    .venv/bin/python bench/alert_latency.py [--runs 20] [--no-write]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import os  # noqa: E402

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshui.settings")

from bench.results import report  # noqa: E402
from tests.e2e.alerting import INSTANCES, Shop  # noqa: E402
from tests.e2e.meshes import small_mesh  # noqa: E402
from tests.meshui.alerts.receivers import http_receiver  # noqa: E402
from tests.polling import wait_until  # noqa: E402

INTERVAL_S = 10
FOR_S = 10


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    budget = FOR_S + INTERVAL_S + 5
    to_firing: list[float] = []
    to_pending: list[float] = []
    to_webhook: list[float] = []
    to_resolved: list[float] = []
    receivers = http_receiver()
    receiver = next(receivers)
    with tempfile.TemporaryDirectory() as workdir, small_mesh(
            Path(workdir), "alertbench", INSTANCES, run_celery=True,
            extra_env=(("MESHUI_ALERTS_INTERVAL_S", str(INTERVAL_S)),)) as mesh, \
            Shop(mesh) as shop:
        wait_until(lambda: shop.edge_requests() > 100, 60, what="traffic on checkout -> payments")
        point = shop.contact_point(receiver.url, group_interval_s=1)
        rule = shop.rule(point["id"], for_s=FOR_S)["id"]
        wait_until(lambda: shop.alert(rule)["last_evaluated"], 30, what="a first evaluation")
        for run in range(args.runs):
            # Each run's commit at a random moment of the evaluation cycle (the previous
            # run ended on a cycle's resolved message).
            time.sleep(random.uniform(0, INTERVAL_S))
            before = len(receiver.bodies())
            _, committed = shop.payments_failing(100)
            wait_until(lambda n=before: len(receiver.bodies()) > n, budget + 60, interval=0.05,
                       what="the firing webhook")
            to_webhook.append(time.time() - committed)
            history = shop.history(rule)
            fired = next(t for t in reversed(history) if t["to_state"] == "Firing")
            pending = next(t for t in reversed(history) if t["to_state"] == "Pending")
            to_firing.append(stamp(fired["at"]) - committed)
            to_pending.append(stamp(pending["at"]) - committed)
            _, cleared = shop.payments_failing(0)
            wait_until(lambda n=before: len(receiver.bodies()) > n + 1, budget + 60, interval=0.05,
                       what="the resolved webhook")
            to_resolved.append(time.time() - cleared)
            print(f"run {run + 1}: commit -> Pending {to_pending[-1]:.2f} s, -> Firing "
                  f"{to_firing[-1]:.2f} s, -> webhook "
                  f"{to_webhook[-1]:.1f} s; fault removed -> resolved webhook "
                  f"{to_resolved[-1]:.1f} s", flush=True)
        statuses = [body["status"] for body in receiver.bodies()]
    next(receivers, None)
    assert statuses == ["firing", "resolved"] * args.runs, statuses
    p95 = quantile(to_webhook, 0.95)
    lines = [
        "## Alert latency",
        "",
        f"`bench/alert_latency.py`, {args.runs} runs through the demo's processes with Celery "
        f"worker and beat on the defaults (evaluation every {INTERVAL_S} s): a rule on "
        f"checkout -> payments error rate (window 10 s, fire > 20 % for {FOR_S} s, recover "
        "< 5 %), a webhook contact point with group wait 0, 40 checkouts/s. From the commit "
        "of a revision making every payments call fail to the firing webhook at a real "
        "receiver, each commit at a random moment of the evaluation cycle; then from the "
        "fault's removal to the resolved one. Every run got exactly one firing and one "
        "resolved webhook. Transitions are stamped with their cycle's start (the run starts "
        "1 s into it), so the webhook's time is the one that counts.",
        "",
        "| from the commit to | p50 | p95 | max |",
        "|---|---|---|---|",
        f"| the Pending transition | {statistics.median(to_pending):.1f} s | "
        f"{quantile(to_pending, 0.95):.1f} s | {max(to_pending):.1f} s |",
        f"| the Firing transition | {statistics.median(to_firing):.1f} s | "
        f"{quantile(to_firing, 0.95):.1f} s | {max(to_firing):.1f} s |",
        f"| the firing webhook received | {statistics.median(to_webhook):.1f} s | {p95:.1f} s | "
        f"{max(to_webhook):.1f} s |",
        f"| (fault removed) the resolved webhook | {statistics.median(to_resolved):.1f} s | "
        f"{quantile(to_resolved, 0.95):.1f} s | {max(to_resolved):.1f} s |",
        "",
        f"Budget (pending {FOR_S} s + one interval {INTERVAL_S} s + 5 s): {budget} s. "
        f"p95 / budget = **{p95 / budget:.2f}x** ({'met' if p95 <= budget else 'MISSED'}).",
        "The Firing -> webhook part (a dispatch pass after the cycle, the send task) is "
        f"{statistics.median([w - f for w, f in zip(to_webhook, to_firing, strict=True)]):.2f} s "
        "at the median.",
    ]
    report(lines, not args.no_write)


if __name__ == "__main__":
    main()
