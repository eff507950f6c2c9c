"""Which instance of a destination a request goes to: round robin, least request, peak-EWMA.

One ``Balancer`` per destination service, made by ``make_balancer`` from its policy
(``ServicePolicy.load_balancer``). The caller hands ``pick`` the instances it may use,
already narrowed to the chosen version and to non-ejected hosts (or all of them in panic
mode) by ``OutlierDetector.eligible``, and reports each try with ``on_start`` /
``on_finish``. The state a balancer reads (outstanding requests, the RTT estimate) lives
on the ``Endpoint`` so it survives an endpoints or policy swap.

- ``round_robin``: a cursor over the instances, exact over any window.
- ``least_request``: power of two choices (Mitzenmacher) on outstanding requests, as
  Envoy's LEAST_REQUEST does with equal weights: two distinct random instances, the less
  loaded wins.
- ``peak_ewma`` (the default): Linkerd's balancer (tower's ``PeakEwma``,
  https://linkerd.io/2/features/load-balancing/): power of two choices over
  ``cost = rtt_estimate * (outstanding + 1)``. The estimate starts at ``default_rtt_ms``
  (30 ms); a sample above it replaces it at once (peak-sensitive); a lower sample blends in
  with weight ``1 - exp(-elapsed / decay_s)`` (decay 10 s). As in tower, reading the cost
  decays the estimate towards zero, so an instance that was slow and then got no traffic
  looks cheap again after a few decay periods and gets probed with real requests.

``exclude`` is a preference (Envoy's ``previous_hosts`` retry predicate): a retry goes to
an instance it has not tried when one exists, and to a tried one only when none is left.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Sequence
from typing import Protocol

from proxies.mesh.endpoints import Endpoint
from proxies.policy.schema import LoadBalancer, PeakEwma

Clock = Callable[[], float]


class Balancer(Protocol):
    def pick(self, endpoints: Sequence[Endpoint], exclude: Collection[Endpoint] = ()) -> Endpoint | None:
        """The instance for the next try, or None when ``endpoints`` is empty."""
        ...

    def on_start(self, endpoint: Endpoint) -> None:
        """A request was sent to ``endpoint``."""
        ...

    def on_finish(self, endpoint: Endpoint, rtt_s: float, ok: bool) -> None:
        """The request to ``endpoint`` ended after ``rtt_s`` seconds; ``ok`` if it succeeded."""
        ...


# Peak-EWMA arithmetic: pure functions of values, shared by the balancer and the admin port.


def observe_rtt(estimate_s: float, stamp: float, rtt_s: float, now: float, decay_s: float) -> float:
    """The estimate after a sample: a peak replaces it, a lower sample decays in (tower)."""
    if rtt_s >= estimate_s:
        return rtt_s
    keep = math.exp(-(now - stamp) / decay_s)
    return estimate_s * keep + rtt_s * (1.0 - keep)


def decayed(estimate_s: float, stamp: float, now: float, decay_s: float) -> float:
    """The estimate decayed towards zero for the time since ``stamp`` (a zero-RTT sample)."""
    return estimate_s * math.exp(-(now - stamp) / decay_s)


def estimate_s(endpoint: Endpoint, now: float, config: PeakEwma) -> float:
    """The current RTT estimate of ``endpoint`` for display, without changing it."""
    if endpoint.ewma_s is None:
        return config.default_rtt_ms / 1000.0
    return decayed(endpoint.ewma_s, endpoint.ewma_stamp, now, config.decay_s)


class _Tracking:
    """Outstanding requests and the RTT estimate, kept by every kind of balancer.

    Every kind keeps the estimate (one ``exp`` per response) so the admin port shows a
    meaningful EWMA whatever balancer is in force, and switching to peak-EWMA starts warm.
    """

    __slots__ = ("clock", "default_rtt_s", "decay_s")

    def __init__(self, config: PeakEwma, clock: Clock) -> None:
        self.clock = clock
        self.default_rtt_s = config.default_rtt_ms / 1000.0
        self.decay_s = config.decay_s

    def on_start(self, endpoint: Endpoint) -> None:
        endpoint.outstanding += 1

    def on_finish(self, endpoint: Endpoint, rtt_s: float, ok: bool) -> None:
        if endpoint.outstanding > 0:
            endpoint.outstanding -= 1
        now = self.clock()
        current = endpoint.ewma_s
        if current is None:
            current = self.default_rtt_s
            endpoint.ewma_stamp = now
        if not ok and rtt_s < current:
            # A fast failure (a refused connect, an instant 503) must not make an instance
            # look faster than it was: that would pull traffic into a black hole. Failures
            # are the outlier detector's business; here they only ever raise the estimate.
            rtt_s = current
        endpoint.ewma_s = observe_rtt(current, endpoint.ewma_stamp, rtt_s, now, self.decay_s)
        endpoint.ewma_stamp = now


class RoundRobin(_Tracking):
    """Each instance in turn; ``exclude`` skips instances while others remain."""

    __slots__ = ("cursor",)

    def __init__(self, config: PeakEwma, clock: Clock, rng: random.Random) -> None:
        super().__init__(config, clock)
        self.cursor = 0

    def pick(self, endpoints: Sequence[Endpoint], exclude: Collection[Endpoint] = ()) -> Endpoint | None:
        n = len(endpoints)
        if n == 0:
            return None
        start = self.cursor
        if exclude:
            for i in range(n):
                candidate = endpoints[(start + i) % n]
                if candidate not in exclude:
                    self.cursor = (start + i + 1) % n
                    return candidate
        self.cursor = (start + 1) % n
        return endpoints[start % n]


class _PowerOfTwoChoices(_Tracking):
    """Two distinct instances at random; the one with the lower ``cost`` wins (ties: the first)."""

    __slots__ = ("rng",)

    def __init__(self, config: PeakEwma, clock: Clock, rng: random.Random) -> None:
        super().__init__(config, clock)
        self.rng = rng

    def cost(self, endpoint: Endpoint, now: float) -> float:
        raise NotImplementedError

    def pick(self, endpoints: Sequence[Endpoint], exclude: Collection[Endpoint] = ()) -> Endpoint | None:
        if exclude:
            remaining = [e for e in endpoints if e not in exclude]
            if remaining:
                endpoints = remaining
        n = len(endpoints)
        if n < 2:
            return endpoints[0] if n else None
        randrange = self.rng.randrange
        i = randrange(n)
        j = randrange(n - 1)
        if j >= i:
            j += 1
        a = endpoints[i]
        b = endpoints[j]
        now = self.clock()
        return a if self.cost(a, now) <= self.cost(b, now) else b


class LeastRequest(_PowerOfTwoChoices):
    """Power of two choices on outstanding requests (Envoy's LEAST_REQUEST, choice_count 2)."""

    __slots__ = ()

    def cost(self, endpoint: Endpoint, now: float) -> float:
        return endpoint.outstanding


class PeakEwmaBalancer(_PowerOfTwoChoices):
    """Linkerd's peak-EWMA: power of two choices on ``rtt_estimate * (outstanding + 1)``."""

    __slots__ = ()

    def cost(self, endpoint: Endpoint, now: float) -> float:
        estimate = endpoint.ewma_s
        if estimate is None:
            estimate = self.default_rtt_s
        else:
            # tower's PeakEwma::load: reading the load decays the estimate to now.
            estimate = decayed(estimate, endpoint.ewma_stamp, now, self.decay_s)
        endpoint.ewma_s = estimate
        endpoint.ewma_stamp = now
        return estimate * (endpoint.outstanding + 1)


BALANCERS: dict[str, Callable[[PeakEwma, Clock, random.Random], Balancer]] = {
    "round_robin": RoundRobin,
    "least_request": LeastRequest,
    "peak_ewma": PeakEwmaBalancer,
}


def make_balancer(kind: LoadBalancer, config: PeakEwma, clock: Clock, rng: random.Random) -> Balancer:
    """The balancer ``kind`` for one destination (kinds are checked by parse_policy)."""
    return BALANCERS[kind](config, clock, rng)
