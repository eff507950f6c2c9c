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
3. **Apply in one transaction**: the rules' state rows are locked (``select_for_update``;
   SQLite's IMMEDIATE transactions, settings.py, serialise writers instead), and a row
   already evaluated in this cycle is left alone, so a second evaluator of the same cycle
   changes nothing. Each row is stepped through ``meshui.alerts.states``; every change is
   an ``AlertTransition`` with the value that caused it. A rule edited since step 2 is left
   to the next cycle. Two evaluators creating the same new row: the second's unique
   constraint error rolls its transaction back and it applies again, finding the row done.

After the commit ``transitions_recorded`` is sent with the new transitions (what
notifications consume).

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.dispatch import Signal

from collector.series import Scope
from meshui.alerts import metrics, rules, series_windows, targets, windows
from meshui.alerts.models import AlertRule, AlertState, AlertTransition
from meshui.alerts.states import NO_DATA, Reading, State, Status, Transition, initial, resolve, step
from meshui.alerts.window_cache import WindowCache
from meshui.redis_clients import DATA_SOURCE_ERRORS, get_redis

logger = logging.getLogger(__name__)

LOCK_PREFIX = "meshui:alerts:cycle:"
DETAIL_MAX = 500

#: Sent after the commit of a cycle that changed states: ``transitions`` (AlertTransition
#: rows, with ids). Notifications connect here.
transitions_recorded = Signal()


def cycle_of(now: float, interval: int) -> int:
    """The cycle ``now`` falls in: the start of its interval, in epoch seconds."""
    return int(now // interval) * interval


def lock_key(cycle: int) -> str:
    return f"{LOCK_PREFIX}{cycle}"


def as_datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


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


# A rule's readings this cycle: target key -> (the target's JSON, the reading).
Readings = dict[str, tuple[dict[str, str], Reading, str]]


def data_source_detail(exc: BaseException) -> str:
    return f"the live graph store (Redis) is unavailable ({type(exc).__name__}: {exc})"[:DETAIL_MAX]


def no_data_detail(rule: rules.Rule, target: targets.Target, matched_over: int) -> str:
    if rule.target.is_pattern and target.key == rule.target.key:
        return f"nothing in the last {matched_over} s matches {target.label()}"
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
        recorded = self._apply_with_retry(rule_list, readings, now, report.cycle)
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
                if scope is not None:
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


@dataclass(slots=True)
class _Row:
    """A state row as a cycle reads and writes it (no model instance, no target JSON: a
    cycle handles thousands; the key is the target's JSON anyway)."""

    pk: int | None
    key: str
    state: str
    since: datetime
    value: float | None
    detail: str
    last_evaluated: datetime | None


ROW_FIELDS = ("pk", "target_key", "state", "since", "value", "detail", "last_evaluated")


def status_of(row: _Row) -> Status:
    return Status(State(row.state), row.since.timestamp(), row.value, row.detail)


def _transition_row(rule_id: int, key: str, target: dict[str, str], transition: Transition,
                    cycle: int) -> AlertTransition:
    return AlertTransition(
        rule_id=rule_id, target_key=key, target=target, from_state=transition.old,
        to_state=transition.new, value=transition.value, detail=transition.detail[:DETAIL_MAX],
        at=as_datetime(transition.at), cycle=cycle)


@dataclass(slots=True)
class _Writes:
    """What one cycle's apply writes, gathered so that each kind is one bulk statement."""

    changed: list[_Row] = field(default_factory=list)
    created: list[AlertState] = field(default_factory=list)
    gone: list[int] = field(default_factory=list)
    recorded: list[AlertTransition] = field(default_factory=list)


def _step_rule(rule: rules.Rule, current: dict[str, _Row], found: Readings, now: float,
               cycle: int, writes: _Writes) -> None:
    """Step one rule's rows (``current``, by key, taken as they are used) with its readings."""
    now_dt, cycle_dt = as_datetime(now), as_datetime(cycle)
    for key, (target, reading, no_data) in found.items():
        row = current.pop(key, None)
        if row is not None and row.last_evaluated is not None and row.last_evaluated >= cycle_dt:
            continue  # this cycle was applied already
        status, transition = step(rule.condition, initial(now) if row is None else status_of(row),
                                  reading, now, no_data)
        detail = status.detail[:DETAIL_MAX]
        if row is None:
            writes.created.append(AlertState(
                rule_id=rule.id, target_key=key, target=target, state=status.state,
                since=as_datetime(status.since), value=status.value, detail=detail,
                last_evaluated=now_dt))
        else:
            row.state, row.since = status.state, as_datetime(status.since)
            row.value, row.detail, row.last_evaluated = status.value, detail, now_dt
            writes.changed.append(row)
        if transition is not None:
            writes.recorded.append(_transition_row(rule.id, key, target, transition, cycle))
    for key, stale in current.items():  # tracked, but not among this cycle's targets
        if stale.last_evaluated is not None and stale.last_evaluated >= cycle_dt:
            continue
        gone = json.loads(key)
        if not rule.target.is_pattern:
            detail = "the rule's target changed"
        elif key == rule.target.key:
            detail = "the pattern matches again"
        else:
            detail = f"{targets.parse(gone).label()} is no longer in the data"
        transition = resolve(status_of(stale), now, detail)
        if transition is not None:
            writes.recorded.append(_transition_row(rule.id, key, gone, transition, cycle))
        if stale.pk is not None:
            writes.gone.append(stale.pk)


STATE_COLUMNS = ("state", "since", "value", "detail", "last_evaluated")


def _update_states(changed: list[_Row]) -> None:
    """Write every evaluated row back: one UPDATE, executed many times.

    ``bulk_update`` builds a CASE per column and row, which took ~1.5 s of CPU for 2,000
    rows (bench/alert_eval.py); executemany sends the same statement with each row's values
    (psycopg pipelines them), a few ms.
    """
    quote, ops = connection.ops.quote_name, connection.ops
    columns = ", ".join(f"{quote(name)} = %s" for name in STATE_COLUMNS)  # fields = columns
    sql = f"UPDATE {quote(AlertState._meta.db_table)} SET {columns} WHERE {quote('id')} = %s"
    with connection.cursor() as cursor:
        cursor.executemany(sql, [
            (row.state, ops.adapt_datetimefield_value(row.since), row.value, row.detail,
             ops.adapt_datetimefield_value(row.last_evaluated), row.pk) for row in changed])


def apply(rule_list: Iterable[rules.Rule], readings: Mapping[int, Readings], now: float,
          cycle: int) -> list[AlertTransition]:
    """Step every rule's rows with this cycle's readings, in one transaction."""
    writes = _Writes()
    with transaction.atomic():
        # Every rule and row (a cycle evaluates them all): no IN list of a thousand ids.
        live = dict(AlertRule.objects.values_list("pk", "updated_at"))
        rows: dict[int, dict[str, _Row]] = {}
        for rule_id, *values in AlertState.objects.select_for_update().values_list(
                "rule_id", *ROW_FIELDS):
            row = _Row(*values)
            rows.setdefault(rule_id, {})[row.key] = row
        for rule in rule_list:
            if live.get(rule.id) == rule.updated_at:  # else deleted or edited since it was read
                _step_rule(rule, rows.get(rule.id, {}), readings.get(rule.id, {}), now, cycle,
                           writes)
        if writes.changed:
            _update_states(writes.changed)
        if writes.created:
            AlertState.objects.bulk_create(writes.created, batch_size=500)
        if writes.gone:
            AlertState.objects.filter(pk__in=writes.gone).delete()
        recorded = writes.recorded
        if recorded:
            recorded = AlertTransition.objects.bulk_create(recorded, batch_size=500)
            transaction.on_commit(lambda: _announce(recorded))
    return recorded


def _announce(recorded: list[AlertTransition]) -> None:
    for row in recorded:
        logger.info("alert %s on %s: %s -> %s (%s)", row.rule_id, row.target_key,
                    row.from_state, row.to_state, row.detail)
    transitions_recorded.send(sender=Evaluator, transitions=recorded)
