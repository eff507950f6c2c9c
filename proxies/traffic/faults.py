"""Fault injection per route: delay and abort, each on its own percentage of requests.

As Envoy's fault filter (and Istio's VirtualService ``fault``): the delay and the abort are
decided independently, the delay is applied first, and an aborted request never reaches an
upstream. A route with faults is not retried (``RouteDecision.retriable``), so an injected
abort is what the caller sees. Pure: the injected ``random.Random`` decides.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from proxies.policy.schema import Fault


@dataclass(frozen=True, slots=True)
class FaultDecision:
    """What to do to one request: wait ``delay_s`` (0.0: no delay), answer ``abort_status``."""

    delay_s: float = 0.0
    abort_status: int | None = None


def _hits(percent: float, rng: random.Random) -> bool:
    # random() is in [0, 1): 0% never hits, 100% always does.
    return rng.random() * 100.0 < percent


def decide(fault: Fault | None, rng: random.Random) -> FaultDecision | None:
    """The faults to inject into this request, or None when none applies (the common case)."""
    if fault is None:
        return None
    delay_s = 0.0
    abort_status = None
    # One draw per configured fault, delay first, so a seeded rng gives a fixed sequence.
    if fault.delay is not None and _hits(fault.delay.percent, rng):
        delay_s = fault.delay.fixed_ms / 1000.0
    if fault.abort is not None and _hits(fault.abort.percent, rng):
        abort_status = fault.abort.status
    if delay_s == 0.0 and abort_status is None:
        return None
    return FaultDecision(delay_s, abort_status)
