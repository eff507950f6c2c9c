"""One evaluation cycle of every rule: read the live windows, step each state, record it.

Run by Celery beat every ``MESHUI_ALERTS_INTERVAL_S`` seconds (``meshui.alerts.tasks``);
safe to run twice, or on two workers at once:

1. **A lock per cycle.** A cycle is the interval the clock is in (``cycle_of``); the first
   evaluator to ``SET meshui:alerts:cycle:<cycle> NX`` runs it, any other skips it. When
   Redis cannot be reached for the lock the evaluator goes on (it is about to record Error
   on every rule) and relies on step 3 alone.
2. **Read, then decide, outside any transaction**: the windows of every rule in two
   pipelines (``meshui.alerts.windows``), a reading per concrete target, no lock held on
   the database while Redis answers.
3. **Apply in one transaction** (``meshui.alerts.recording``): the state rows locked, a
   row already evaluated in this cycle left alone, so a second evaluator of the same cycle
   changes nothing; every change an ``AlertTransition`` with the value that caused it,
   announced after the commit (``transitions_recorded``). Two evaluators creating the same
   new row: the second's unique constraint error rolls its transaction back and it applies
   again, finding the row done.

Times: the windows are read up to the second the run starts in, and the states are stepped
at the cycle's start, so pending and keep-firing periods count whole intervals whatever
the jitter between runs; beat runs the task at each multiple of the interval
(``meshui.alerts.schedule``), so a run is well inside its cycle.

Targets: a concrete rule has one state row (its target); a pattern rule one per matching
series of the cycle's data (``targets.SeriesIndex``), plus, while nothing matches, one row
for the pattern itself in NoData. A matched target that is no longer in the data is
resolved (Normal, recorded) and its row removed, as Grafana resolves a stale series. When
the data source is down every row of every rule goes to Error.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError

from collector.series import Scope
from meshui.alerts import metrics, rules, series_windows, targets, windows
from meshui.alerts.models import AlertRule, AlertState, AlertTransition
from meshui.alerts.recording import DETAIL_MAX, Readings, apply
from meshui.alerts.states import NO_DATA, Reading
from meshui.alerts.window_cache import WindowCache
from meshui.identity import expiry
from meshui.redis_clients import DATA_SOURCE_ERRORS, get_redis

logger = logging.getLogger(__name__)

LOCK_PREFIX = "meshui:alerts:cycle:"


def cycle_of(now: float, interval: int) -> int:
    """The cycle ``now`` falls in: the start of its interval, in epoch seconds."""
    return int(now // interval) * interval


def lock_key(cycle: int) -> str:
    return f"{LOCK_PREFIX}{cycle}"


@dataclass(slots=True)
class CycleReport:
    """What one run did (the task's result, the bench's numbers)."""

    cycle: int
    ran: bool = False
    skipped: str = ""
    rules: int = 0
    targets: int = 0
    transitions: int = 0
    error: str = ""
    seconds: dict[str, float] = field(default_factory=dict)  # wall time of each phase

    def as_json(self) -> dict[str, Any]:
        return {"cycle": self.cycle, "ran": self.ran, "skipped": self.skipped,
                "rules": self.rules, "targets": self.targets, "transitions": self.transitions,
                "error": self.error, "seconds": {k: round(v, 4) for k, v in self.seconds.items()}}




def data_source_detail(exc: BaseException) -> str:
    return f"the live graph store (Redis) is unavailable ({type(exc).__name__}: {exc})"[:DETAIL_MAX]


def no_data_detail(rule: rules.Rule, target: targets.Target, matched_over: int) -> str:
    if rule.target.is_pattern and target.key == rule.target.key:
        return f"nothing in the last {matched_over} s matches {target.label()}"
    if rule.metric == metrics.CERT_EXPIRY:
        return f"no live proxy of {target.label()} holds a certificate from meshui's CA"
    return f"{target.label()} had no request in the last {rule.window_s} s"


class Evaluator:
    """Evaluates every rule once per cycle; the clock (epoch seconds) is injected."""

    def __init__(self, redis_client: Any = None, clock: Callable[[], float] = time.time,
                 interval: int | None = None, worker: str | None = None,
                 cache: WindowCache | None = None) -> None:
        self.redis = redis_client
        self.clock = clock
        self.interval = interval or settings.MESHUI_ALERTS_INTERVAL_S
        self.worker = worker or uuid.uuid4().hex[:12]
        # Settled data kept from cycle to cycle, when the caller keeps the evaluator's cache.
        self.cache = cache if cache is not None else WindowCache()

    def _redis(self) -> Any:
        return self.redis if self.redis is not None else get_redis()

    def _lock(self, cycle: int) -> bool:
        try:
            return bool(self._redis().set(lock_key(cycle), self.worker, nx=True,
                                          ex=max(3 * self.interval, 30)))
        except DATA_SOURCE_ERRORS as exc:
            logger.warning("alerts: cycle %d: no lock, Redis unavailable (%s); evaluating "
                           "under the database's guard", cycle, exc)
            return True

    def run(self) -> CycleReport:
        now = self.clock()
        report = CycleReport(cycle_of(now, self.interval))
        started = time.perf_counter()
        if not self._lock(report.cycle):
            report.skipped = "another evaluator holds this cycle"
            return report
        rule_list = self._rules()
        report.rules = len(rule_list)
        if not rule_list:
            report.ran = True
            return report
        known = self._known_targets()
        report.seconds["load"] = time.perf_counter() - started
        mark = time.perf_counter()
        readings, report.error = self.read(rule_list, known, int(now))
        report.seconds["read"] = time.perf_counter() - mark
        report.targets = sum(len(found) for found in readings.values())
        mark = time.perf_counter()
        # States are stepped at the cycle's time, not the moment this run started: periods
        # then count whole intervals, as Prometheus counts `for` from scheduled evaluation
        # times. A run that starts a few ms early would otherwise find a 10 s pending period
        # held for 9.99 s and fire an interval late.
        recorded = self._apply_with_retry(rule_list, readings, float(report.cycle), report.cycle)
        report.seconds["apply"] = time.perf_counter() - mark
        report.transitions = len(recorded)
        report.ran = True
        report.seconds["total"] = time.perf_counter() - started
        return report

    @staticmethod
    def _rules() -> list[rules.Rule]:
        """Every rule; one that no longer checks (changed outside the API) is left out, loudly."""
        found = []
        for row in AlertRule.objects.all():
            try:
                found.append(rules.rule_of(row))
            except ValueError as exc:
                logger.error("alerts: rule %s %r is not evaluated: %s", row.pk, row.name, exc)
        return found

    @staticmethod
    def _known_targets() -> dict[int, list[str]]:
        """The target keys each rule has a state row for (an outage's Error, long patterns)."""
        known: dict[int, list[str]] = {}
        for rule_id, key in AlertState.objects.values_list("rule_id", "target_key"):
            known.setdefault(rule_id, []).append(key)
        return known

    # -- reading ----------------------------------------------------------------------------

    def read(self, rule_list: list[rules.Rule], known: Mapping[int, list[str]],
             at: int) -> tuple[dict[int, Readings], str]:
        """Every rule's readings at second ``at``, and the data source's error if it failed."""
        try:
            return self._read(rule_list, known, at), ""
        except DATA_SOURCE_ERRORS as exc:
            self.cache.failed(at)  # collectors will resend what they could not write
            detail = data_source_detail(exc)
            logger.warning("alerts: %s; every rule is in Error", detail)
            failed = Reading.failed(detail)
            out: dict[int, Readings] = {}
            for rule in rule_list:
                held = known.get(rule.id) or [rule.target.key]
                out[rule.id] = {key: (json.loads(key), failed, detail) for key in held}
            return out, detail

    def _read(self, rule_list: list[rules.Rule], known: Mapping[int, list[str]],
              at: int) -> dict[int, Readings]:
        redis_client = self._redis()
        short = windows.graph_windows(rule.window_s for rule in rule_list)
        totals = windows.read_graph_windows(redis_client, short, at, self.cache)
        # A pattern matches what had data in its window; a long window's, what the longest
        # short window holds (and the targets it already tracks).
        planned = {rule.id: self._targets(rule, totals[min(rule.window_s, short[-1])].index,
                                          known.get(rule.id, []))
                   for rule in rule_list}
        wanted = [(scope, rule.window_s) for rule in rule_list
                  if rule.window_s > windows.GRAPH_READ_MAX_S
                  for _, scope in planned[rule.id] if scope is not None]
        long_counts = series_windows.read_series_windows(redis_client, wanted, at, self.cache)
        values: dict[tuple[Scope, int, str], float | None] = {}
        certificates = (expiry.hours_left(datetime.fromtimestamp(at, UTC))
                        if any(rule.metric == metrics.CERT_EXPIRY for rule in rule_list) else None)
        counts_of: dict[tuple[Scope, int], metrics.Counts | None] = {}

        def counts(scope: Scope, window: int) -> metrics.Counts | None:
            pair = (scope, window)
            if pair not in counts_of:
                counts_of[pair] = (long_counts.get(pair) if window > windows.GRAPH_READ_MAX_S
                                   else totals[window].counts(scope))
            return counts_of[pair]

        out: dict[int, Readings] = {}
        for rule in rule_list:
            found: Readings = {}
            matched_over = min(rule.window_s, short[-1])
            covered = len(windows.evaluated_seconds(at, rule.window_s))
            for target, scope in planned[rule.id]:
                value = 1.0 if rule.metric == metrics.NO_DATA else None
                if certificates is not None and rule.metric == metrics.CERT_EXPIRY:
                    value = (certificates.by_proxy.get(str(target.instance)) if target.kind == "instance"
                             else certificates.by_service.get(str(target.service)))
                elif scope is not None:
                    if rule.target.is_pattern and counts(scope, rule.window_s) is None:
                        continue  # a tracked match without data in its window: gone
                    memo = (scope, rule.window_s, rule.metric)
                    if memo not in values:
                        values[memo] = metrics.value_of(rule.metric, counts(scope, rule.window_s),
                                                        covered)
                    value = values[memo]
                found[target.key] = (target.as_json(), NO_DATA if value is None else Reading(value),
                                     no_data_detail(rule, target, matched_over))
            if not found:  # a pattern whose matches all went: its own row, in NoData
                found[rule.target.key] = (rule.target.as_json(),
                                          Reading(1.0) if rule.metric == metrics.NO_DATA else NO_DATA,
                                          no_data_detail(rule, rule.target, matched_over))
            out[rule.id] = found
        return out

    @staticmethod
    def _targets(rule: rules.Rule, index: targets.SeriesIndex,
                 known: list[str]) -> list[tuple[targets.Target, Scope | None]]:
        """The concrete targets of a rule this cycle, each with its series (None: unknown)."""
        target = rule.target
        if not target.is_pattern:
            if target.kind == "instance" and target.service is None:
                service = index.instance_service(str(target.instance))
                resolved = targets.Target("instance", service=service, instance=target.instance)
                return [(target, resolved.scope())]
            return [(target, target.scope())]
        matched = {found.key: found for found in index.expand(target)}
        if rule.window_s > windows.GRAPH_READ_MAX_S:  # quiet lately, maybe not over its window
            for key in known:
                if key not in matched and key != target.key:
                    matched[key] = targets.parse(json.loads(key))
        if not matched:  # the pattern's own row, in NoData until something matches
            return [(target, None)]
        return [(found, found.scope()) for found in matched.values()]

    # -- applying -----------------------------------------------------------------------------

    def _apply_with_retry(self, rule_list: list[rules.Rule], readings: dict[int, Readings],
                          now: float, cycle: int) -> list[AlertTransition]:
        try:
            return apply(rule_list, readings, now, cycle)
        except IntegrityError:
            # Another evaluator created one of the same new rows first: its transaction has
            # committed, so this one now finds those rows evaluated and leaves them.
            logger.info("alerts: cycle %d: a concurrent evaluator created state rows; "
                        "applying again", cycle)
            return apply(rule_list, readings, now, cycle)
