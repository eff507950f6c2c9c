"""When the sidecar may send a request again, how long it waits, and how many retries it allows.

Two layers live here, both pure (values in, a decision out; the exchange acts on it):

The transport-level retry the sidecar always had, before any response byte arrived: a
pooled keep-alive connection that the upstream had already closed means the request never
reached an application, so it goes once more on a fresh connection to the same instance
(``retry_on_fresh_connection``).

The policy-level retries of issue 3 (``policy.Retries``, docs/policy.md):

- ``retry_condition`` says which ``retry_on`` condition an outcome meets (Envoy's
  vocabulary: https://www.envoyproxy.io/docs/envoy/latest/configuration/http/http_filters/router_filter#x-envoy-retry-on);
- ``may_replay`` says whether the request can be sent again at all (RFC 9110 §9.2.2: a
  body is replayed only if it was buffered whole and the method is idempotent, unless the
  policy allows non-idempotent retries);
- ``backoff_s`` is exponential backoff with AWS's "full jitter"
  (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/);
- ``RetryBudget`` keeps retries to a fraction of requests over a sliding window, so retries
  never amplify an outage (Finagle's retry budget, as Linkerd uses it:
  https://finagle.github.io/blog/2016/02/08/retry-budgets/).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from proxies.policy.schema import Retries
from proxies.policy.schema import RetryBudget as RetryBudgetConfig

REPLAY_LIMIT = 64 * 1024  # request bytes kept for a retry; past this a retry is impossible

# What went wrong when there is no response status: the ``error`` retry_condition takes.
CONNECT_FAILURE = "connect-failure"  # the TCP connect failed or timed out
REFUSED_STREAM = "refused-stream"  # the upstream refused the request before processing it
RESET = "reset"  # the connection closed or reset before a whole response arrived
PER_TRY_TIMEOUT = "per-try-timeout"  # the try ran out of time (a 504 from the proxy)
ERRORS = frozenset({CONNECT_FAILURE, REFUSED_STREAM, RESET, PER_TRY_TIMEOUT})

# What retry_condition returns beyond the retry_on vocabulary: a status in Retries.statuses.
RETRIABLE_STATUS_CODES = "retriable-status-codes"

GATEWAY_ERRORS = frozenset({502, 503, 504})

# Methods a proxy may repeat without changing the outcome (RFC 9110 §9.2.2). The codec hands
# methods over as bytes (the exchange checks those); policy and tests speak str.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
IDEMPOTENT_METHOD_BYTES = frozenset(m.encode("ascii") for m in IDEMPOTENT_METHODS)


def retry_on_fresh_connection(
    conn_reused: bool, retried_fresh: bool, retry_ok: bool, replayable: bool
) -> bool:
    """Whether a request whose pooled connection closed before any response goes again."""
    return conn_reused and not retried_fresh and retry_ok and replayable


def retry_condition(status: int | None, error: str | None, retries: Retries) -> str | None:
    """The ``retry_on`` condition this outcome meets under ``retries``, or None: do not retry.

    ``error`` is one of ``ERRORS`` when no response arrived (``status`` is then ignored).
    The most specific configured condition is named, for the span's ``retry`` event. As in
    Envoy, ``gateway-error`` also covers failures where the proxy itself would answer 502,
    503 or 504 (a failed connect, a reset, a per-try timeout), and ``reset`` covers any
    failure where no response arrived.
    """
    retry_on = retries.retry_on
    if error is not None:
        if error in retry_on:  # connect-failure, refused-stream, reset by their own name
            return error
        if "gateway-error" in retry_on:
            return "gateway-error"
        if RESET in retry_on:
            return RESET
        return None
    if status is None:
        return None
    if status in GATEWAY_ERRORS and "gateway-error" in retry_on:
        return "gateway-error"
    if status in retries.statuses:
        return RETRIABLE_STATUS_CODES
    return None


def may_replay(
    method: str | bytes,
    has_body: bool,
    buffered_ok: bool,
    retries: Retries,
    body_bytes: int | None = None,
) -> bool:
    """Whether a request can be sent again: always without a body, else only a buffered one.

    ``buffered_ok`` says every body byte sent is still held for a replay; ``body_bytes``,
    when the caller knows it, is checked against ``retries.max_buffered_body_bytes`` too.
    A body is replayed only for an idempotent method unless ``retry_non_idempotent``.
    """
    if not has_body:
        return True
    if not buffered_ok:
        return False
    if body_bytes is not None and body_bytes > retries.max_buffered_body_bytes:
        return False
    if retries.retry_non_idempotent:
        return True
    return method in IDEMPOTENT_METHODS or method in IDEMPOTENT_METHOD_BYTES


# 2**63 * any sane base is far past any cap; beyond it float conversion would overflow.
_MAX_EXPONENT = 63


def backoff_s(attempt: int, base_ms: float, max_ms: float, rng: random.Random) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first): full jitter.

    Uniform over [0, min(max_ms, base_ms * 2**attempt)], so concurrent clients spread out
    instead of retrying in lockstep, and the expected wait still grows exponentially.
    """
    ceiling_ms = max_ms if attempt >= _MAX_EXPONENT else min(max_ms, base_ms * 2 ** max(attempt, 0))
    return rng.random() * ceiling_ms / 1000.0


class RetryBudget:
    """Retries at most ``percent`` of requests, but always ``min_per_second``, over a window.

    One per destination. Each request deposits, each retry withdraws; both expire after
    ``window_s`` (a ring of ``SLOTS`` slots, as Finagle's WindowedAdder), so the budget
    refills once an outage has passed. Within any window, retries stay below
    ``max(percent% of requests, min_per_second * window_s)``: the issue's "at most 20% of
    requests, at least 10 per second". (Finagle and Tower add the two allowances instead of
    taking the larger; the bound here is the stricter of the readings.)

    Call ``on_request`` for every original request, ``can_retry`` once per retry decision
    (a refusal counts in ``exhausted_total``), and ``on_retry`` when the retry is sent.
    """

    SLOTS = 10

    __slots__ = (
        "_clock",
        "_ratio",
        "_reserve",
        "_slot_s",
        "_epoch",
        "_requests",
        "_retries",
        "_request_sum",
        "_retry_sum",
        "exhausted_total",
        "retries_total",
    )

    def __init__(self, config: RetryBudgetConfig, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._ratio = config.percent / 100.0
        self._reserve = config.min_per_second * config.window_s
        self._slot_s = config.window_s / self.SLOTS
        self._epoch = math.floor(clock() / self._slot_s)  # index of the slot "now" falls in
        self._requests = [0] * self.SLOTS
        self._retries = [0] * self.SLOTS
        self._request_sum = 0
        self._retry_sum = 0
        self.exhausted_total = 0
        self.retries_total = 0

    def _advance(self) -> int:
        """Expire the slots that fell out of the window; return the current slot's index."""
        epoch = math.floor(self._clock() / self._slot_s)
        if epoch > self._epoch:
            for e in range(self._epoch + 1, min(epoch, self._epoch + self.SLOTS) + 1):
                i = e % self.SLOTS
                self._request_sum -= self._requests[i]
                self._retry_sum -= self._retries[i]
                self._requests[i] = 0
                self._retries[i] = 0
            self._epoch = epoch
        return self._epoch % self.SLOTS

    def on_request(self) -> None:
        """An original request was sent: deposit."""
        self._requests[self._advance()] += 1
        self._request_sum += 1

    def can_retry(self) -> bool:
        """Whether one more retry fits in the budget; a refusal counts as exhaustion."""
        self._advance()
        allowed = max(self._ratio * self._request_sum, self._reserve)
        if self._retry_sum + 1 <= allowed:
            return True
        self.exhausted_total += 1
        return False

    def on_retry(self) -> None:
        """A retry was sent: withdraw."""
        self._retries[self._advance()] += 1
        self._retry_sum += 1
        self.retries_total += 1

    def state(self) -> dict[str, float]:
        """The window's figures, for the admin port."""
        self._advance()
        return {
            "requests_in_window": self._request_sum,
            "retries_in_window": self._retry_sum,
            "allowed_in_window": max(self._ratio * self._request_sum, self._reserve),
            "exhausted_total": self.exhausted_total,
        }
