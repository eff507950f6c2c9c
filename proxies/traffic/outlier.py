"""Passive health: eject instances that keep failing, with Envoy's outlier detection semantics.

One ``OutlierDetector`` per destination service (docs/policy.md, ``outlier_detection``),
following Envoy (https://www.envoyproxy.io/docs/envoy/latest/intro/arch_overview/upstream/outlier):

- Each response is reported with ``on_result``. A 5xx, or a failure with no response
  (status None: connect failure, reset, timeout), adds one to the instance's consecutive
  5xx count; a gateway error (502, 503, 504, or no response) also adds one to its
  consecutive gateway-error count, and any other 5xx resets that one. Any non-5xx resets
  both. Reaching a threshold (``consecutive_5xx``, default 5; ``consecutive_gateway_errors``,
  off by default as Envoy's enforcement is 0%) ejects the instance at once, and resets the
  count that fired so a fresh bout is detected without an interleaved success.
- Ejection is refused (``ejections_overflow``) when it would take the ejected share of the
  destination's instances above ``max_ejection_percent``, unless none is ejected: at least
  one instance is always ejectable, so with 3 instances and 10% exactly one goes out.
- An ejection lasts ``base_ejection_s * times_ejected`` (30 s, 60 s, ...), capped at
  ``max_ejection_s`` (300 s). ``times_ejected`` stops growing once it reaches the cap, and
  every sweep that finds the instance in service lowers it by one, so an instance that
  stays healthy earns back short ejections.
- ``sweep`` runs every ``interval_s`` (10 s): it returns to service the instances whose
  ejection time is up, resetting their counters. An instance therefore stays out until the
  first sweep after its time, as in Envoy.
- ``on_health``: a passing active health check (proxies/healthcheck.py) returns an ejected
  instance at once (Envoy's ``successful_active_health_check_uneject_host``).
- ``eligible``: the instances to balance over: the ones in service, or all of them in panic
  mode, when fewer than ``panic_threshold_percent`` (50%) are in service.

The counters and the ejection live on ``Endpoint`` (they survive endpoint swaps); the
detector holds the config, the clock, the destination's instances and its counters. Pure:
no I/O, no timers; the data plane calls ``sweep`` on its interval.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from proxies.mesh.endpoints import Endpoint
from proxies.policy.schema import OutlierDetection

EjectionReason = Literal["consecutive_5xx", "consecutive_gateway_errors"]
GATEWAY_STATUSES = frozenset({502, 503, 504})


@dataclass(frozen=True, slots=True)
class Ejection:
    """An instance taken out of service (for the span event and the metric)."""

    endpoint: Endpoint
    reason: EjectionReason
    duration_s: float
    until: float
    times_ejected: int


def ejection_duration_s(config: OutlierDetection, times_ejected: int) -> float:
    """Envoy's ``min(base * times_ejected, max(base, max_ejection_time))``."""
    base = config.base_ejection_s
    return min(base * times_ejected, max(base, config.max_ejection_s))


class OutlierDetector:
    """Consecutive-failure ejection, max-ejection-percent, panic mode, for one destination."""

    __slots__ = (
        "config",
        "clock",
        "hosts",
        "ejections_total",
        "ejections_overflow",
        "ejections_by_reason",
        "unejections_total",
        "panic_total",
    )

    def __init__(
        self,
        config: OutlierDetection,
        clock: Callable[[], float],
        hosts: Sequence[Endpoint] = (),
    ) -> None:
        self.config = config
        self.clock = clock
        # Every instance of the destination (all versions): the base of max_ejection_percent
        # and what sweep walks. The data plane sets it again on each endpoints swap.
        self.hosts: Sequence[Endpoint] = hosts
        self.ejections_total = 0
        self.ejections_overflow = 0  # ejections max_ejection_percent prevented
        self.ejections_by_reason: dict[str, int] = {
            "consecutive_5xx": 0,
            "consecutive_gateway_errors": 0,
        }
        self.unejections_total = 0
        self.panic_total = 0  # eligible() calls answered in panic mode

    def set_hosts(self, hosts: Sequence[Endpoint]) -> None:
        """The destination's instances after an endpoints swap (their state carries over)."""
        self.hosts = hosts

    # hot path ----------------------------------------------------------------------------

    def eligible(self, endpoints: Sequence[Endpoint]) -> tuple[Sequence[Endpoint], bool]:
        """(instances to balance over, panic): those in service, or all below the panic threshold.

        ``endpoints`` may be a subset (one version); panic is then judged on that subset, as
        Envoy's subset load balancer does. With nothing ejected the input is returned as is.
        """
        for endpoint in endpoints:
            if endpoint.ejected_until:
                break
        else:
            return endpoints, False
        healthy = [e for e in endpoints if not e.ejected_until]
        if len(healthy) * 100.0 < self.config.panic_threshold_percent * len(endpoints):
            self.panic_total += 1
            return endpoints, True
        return healthy, False

    def on_result(
        self, endpoint: Endpoint, status: int | None, gateway_error: bool = False
    ) -> Ejection | None:
        """Count one outcome of a try on ``endpoint``; return the ejection it caused, if any.

        ``status`` None means no response (connect failure, reset, timeout): a 5xx and a
        gateway error. ``gateway_error`` marks a status the sidecar made up for such a failure.
        """
        if status is not None and status < 500 and not gateway_error:
            endpoint.consecutive_5xx = 0
            endpoint.consecutive_gateway = 0
            return None
        config = self.config
        ejection = None
        if status is None or gateway_error or status in GATEWAY_STATUSES:
            endpoint.consecutive_gateway += 1
            if (
                endpoint.consecutive_gateway == config.consecutive_gateway_errors
                and not endpoint.ejected_until
            ):
                ejection = self._eject(endpoint, "consecutive_gateway_errors")
                # Envoy resets the count that fired, ejected or not (overflow), so the next
                # bout is detected without an interleaved success.
                endpoint.consecutive_gateway = 0
        else:
            endpoint.consecutive_gateway = 0
        endpoint.consecutive_5xx += 1
        if endpoint.consecutive_5xx == config.consecutive_5xx and not endpoint.ejected_until:
            ejection = self._eject(endpoint, "consecutive_5xx")
            endpoint.consecutive_5xx = 0
        return ejection

    # off the hot path --------------------------------------------------------------------

    def _eject(self, endpoint: Endpoint, reason: EjectionReason) -> Ejection | None:
        """Eject ``endpoint`` (in service) unless max_ejection_percent forbids it."""
        hosts = self.hosts or (endpoint,)
        ejected = sum(1 for e in hosts if e.ejected_until)
        if ejected and 100.0 * (ejected + 1) / len(hosts) > self.config.max_ejection_percent:
            self.ejections_overflow += 1
            return None
        config = self.config
        # The multiplier stops growing at the cap so healthy sweeps bring it down promptly.
        if config.base_ejection_s * endpoint.times_ejected < max(
            config.base_ejection_s, config.max_ejection_s
        ):
            endpoint.times_ejected += 1
        duration = ejection_duration_s(config, endpoint.times_ejected)
        now = self.clock()
        endpoint.ejected_until = now + duration
        endpoint.ejections += 1
        self.ejections_total += 1
        self.ejections_by_reason[reason] += 1
        return Ejection(endpoint, reason, duration, endpoint.ejected_until, endpoint.times_ejected)

    def _uneject(self, endpoint: Endpoint) -> None:
        endpoint.ejected_until = 0.0
        # Envoy resets the counters on return so a few errors do not re-eject at once.
        endpoint.consecutive_5xx = 0
        endpoint.consecutive_gateway = 0
        self.unejections_total += 1

    def sweep(self) -> list[Endpoint]:
        """Return to service the instances whose ejection is over; return them.

        An instance found in service lowers its ejection multiplier by one (Envoy: "if the
        host is healthy during that check, the ejection time multiplier is decremented").
        """
        now = self.clock()
        returned = []
        for endpoint in self.hosts:
            if endpoint.ejected_until:
                if now >= endpoint.ejected_until:
                    self._uneject(endpoint)
                    returned.append(endpoint)
            elif endpoint.times_ejected:
                endpoint.times_ejected -= 1
        return returned

    def on_health(self, endpoint: Endpoint, healthy: bool) -> None:
        """An active health check result: a passing one returns an ejected instance now.

        A failing check leaves the outlier state alone, as in Envoy (active health checking
        has its own notion of unhealthy; here checks only probe ejected instances).
        """
        if healthy and endpoint.ejected_until:
            self._uneject(endpoint)

    def state(self, endpoint: Endpoint) -> dict[str, Any]:
        """The instance's outlier state for the admin port (``ejected_until`` in clock seconds)."""
        now = self.clock()
        return {
            "consecutive_5xx": endpoint.consecutive_5xx,
            "consecutive_gateway": endpoint.consecutive_gateway,
            "ejected": bool(endpoint.ejected_until),
            "ejected_until": endpoint.ejected_until or None,
            "ejected_remaining_s": round(max(0.0, endpoint.ejected_until - now), 3)
            if endpoint.ejected_until
            else 0.0,
            "times_ejected": endpoint.times_ejected,
            "ejections": endpoint.ejections,
        }

    def counters(self) -> dict[str, Any]:
        return {
            "ejections_total": self.ejections_total,
            "ejections_overflow": self.ejections_overflow,
            "ejections_by_reason": dict(self.ejections_by_reason),
            "unejections_total": self.unejections_total,
            "ejections_active": sum(1 for e in self.hosts if e.ejected_until),
            "panic_total": self.panic_total,
        }
