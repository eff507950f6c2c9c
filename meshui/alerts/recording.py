"""Applying a cycle's readings to the state rows, in one transaction, and recording each change.

The third step of a cycle (``meshui.alerts.evaluator``): every state row is locked
(``select_for_update``; SQLite's IMMEDIATE transactions serialise writers instead), a row
already evaluated in this cycle is left alone (a second evaluator of the cycle changes
nothing), each other row is stepped through ``meshui.alerts.states`` and written back, a
target met for the first time gets its row, a pattern's match that went away is resolved and
its row removed, and every state change is an ``AlertTransition``. A rule edited or deleted
since its readings were taken is left to the next cycle. After the commit
``transitions_recorded`` is sent with the new transitions (what notifications consume).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection, transaction
from django.dispatch import Signal

from meshui.alerts import rules, targets
from meshui.alerts.models import AlertRule, AlertState, AlertTransition
from meshui.alerts.states import (
    FIRING_STATES,
    Reading,
    State,
    Status,
    Transition,
    initial,
    resolve,
    step,
)

logger = logging.getLogger(__name__)

DETAIL_MAX = 500

#: Sent after the commit of a cycle that changed states: ``transitions`` (AlertTransition
#: rows, with ids). Notifications connect here.
transitions_recorded = Signal()

# A rule's readings this cycle: target key -> (the target's JSON, the reading, what NoData
# would say).
Readings = dict[str, tuple[dict[str, str], Reading, str]]


def as_datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


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
    firing_since: datetime | None


ROW_FIELDS = ("pk", "target_key", "state", "since", "value", "detail", "last_evaluated",
              "firing_since")


def firing_since(old: _Row | None, status: Status) -> datetime | None:
    """When the firing that ``status`` is part of began: kept through Firing and
    Recovering, set on entering them, cleared on leaving them, but for Error: a data source
    that fails for a while does not resolve what fired (notifications keep it firing)."""
    kept = old.firing_since if old is not None else None
    if status.state == State.ERROR:
        return kept
    if not status.firing:
        return None
    if kept is not None and State(old.state) in (*FIRING_STATES, State.ERROR):  # type: ignore[union-attr]
        return kept
    return as_datetime(status.since)


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
                last_evaluated=now_dt, firing_since=firing_since(None, status)))
        else:
            row.firing_since = firing_since(row, status)
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


STATE_COLUMNS = ("state", "since", "value", "detail", "last_evaluated", "firing_since")


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
             ops.adapt_datetimefield_value(row.last_evaluated),
             ops.adapt_datetimefield_value(row.firing_since), row.pk) for row in changed])


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
            announce_on_commit(recorded)
    return recorded


def announce_on_commit(recorded: list[AlertTransition]) -> None:
    """Log the transitions and send ``transitions_recorded`` once the transaction commits."""

    def announce() -> None:
        for row in recorded:
            logger.info("alert %s on %s: %s -> %s (%s)", row.rule_id, row.target_key,
                        row.from_state, row.to_state, row.detail)
        transitions_recorded.send(sender=AlertTransition, transitions=recorded)

    transaction.on_commit(announce)
