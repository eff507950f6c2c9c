"""The backtest: a rule replayed over the last hour, before it is saved (the rule preview).

For each target, the metric every ``step`` seconds (the evaluation interval) over the
window before that moment, exactly the seconds the evaluator would have read then
(``windows.evaluated_seconds``), and the states ``states.replay`` steps through from
Normal: where the rule would have been pending, firing, recovering or without data.

The counts come from each series' own keys through ``collector.series`` (``plans``,
``queue_reads``, ``split_replies``) in one pipeline for every target: whole 10 s cells when
every window starts and ends on one (an hour is a few small hashes per series), single
seconds otherwise. The window slides a cell at a time, adding the cell that enters and
taking away the one that leaves, so a quantile is always over the whole window's histogram.

A pattern's targets are the series that had data in the hour (a SCAN of the 10 s keys:
fine for a request a person makes, never done per evaluation), at most
``MAX_PREVIEW_TARGETS`` of them, by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from collector import series as series_reads
from collector import seriesstore
from collector.graphstore import SEP
from collector.series import Scope
from meshui.alerts import metrics, states, targets, windows
from meshui.alerts.metrics import Counts
from meshui.alerts.states import Condition, Reading
from meshui.alerts.targets import SeriesIndex, Target

SPAN_S = 3600
MAX_PREVIEW_TARGETS = 20
SCAN_COUNT = 1000


def evaluation_times(end: int, step: int, span: int = SPAN_S) -> list[int]:
    """The moments, multiples of ``step``, of the last ``span`` seconds up to ``end``."""
    first = end - span
    first += -first % step
    return list(range(first, end + 1, step))


def cell_of(spans: Sequence[range]) -> int:
    """10 when every window starts and ends on a 10 s cell, else 1."""
    cell = seriesstore.CELL
    return cell if all(span.start % cell == 0 and span.stop % cell == 0 for span in spans) else 1


def sliding(cells: Mapping[int, Counts], spans: Sequence[range], cell: int) -> list[Counts]:
    """The counts over each span (starts and ends never going back, multiples of ``cell``),
    one cell entering and one leaving at a time."""
    out: list[Counts] = []
    running = Counts()
    low = high = spans[0].start if spans else 0  # the running counts cover low..high-1
    for span in spans:
        if span.start >= high:  # a step longer than the window: nothing carries over
            running, low, high = Counts(), span.start, span.start
        for begin in range(high, span.stop, cell):
            if begin in cells:
                running.merge(cells[begin])
        for begin in range(low, span.start, cell):
            if begin in cells:
                running.merge(cells[begin], -1)
        low, high = span.start, span.stop
        out.append(Counts(running.requests, running.errors, dict(running.latency),
                          dict(running.events)))
    return out


def cells_of(parts: Sequence[Mapping[int, Mapping[str, int]]], cell: int) -> dict[int, Counts]:
    """Per-second counts of a scope's reads (``series.split_replies``) filed by cell."""
    cells: dict[int, Counts] = {}
    for by_second in parts:
        for second, kinds in by_second.items():
            start = second - second % cell
            found = cells.get(start)
            if found is None:
                found = cells[start] = Counts()
            found.add_all(kinds)
    return cells


def discover(redis_client: Any, target: Target, since: int) -> SeriesIndex:
    """The series of ``target``'s kind with data since ``since`` (a SCAN of the 10 s keys)."""
    prefixes: set[str] = set()
    for kind in targets.SERIES[target.kind]:
        if kind is None:
            continue
        match = f"{seriesstore.S10_PREFIX}{kind}{SEP}*"
        for raw in redis_client.scan_iter(match=match, count=SCAN_COUNT):
            body = (raw.decode() if isinstance(raw, bytes) else raw)[len(seriesstore.S10_PREFIX):]
            cut = body.rfind(SEP) + 1
            try:
                block = int(body[cut:])
            except ValueError:  # not written by a collector
                continue
            if block + seriesstore.BLOCK > since:
                prefixes.add(body[:cut])
    return SeriesIndex(prefixes)


def preview_targets(redis_client: Any, target: Target, since: int
                    ) -> tuple[list[tuple[Target, Scope | None]], int]:
    """The targets a preview shows (at most MAX_PREVIEW_TARGETS) and how many were left out."""
    if not target.is_pattern:
        if target.kind == "instance" and target.service is None:
            service = discover(redis_client, target, since).instance_service(str(target.instance))
            return [(target, Target("instance", service=service,
                                    instance=target.instance).scope())], 0
        return [(target, target.scope())], 0
    found = discover(redis_client, target, since).expand(target)
    if not found:
        return [(target, None)], 0
    shown = found[:MAX_PREVIEW_TARGETS]
    return [(each, each.scope()) for each in shown], len(found) - len(shown)


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


def transition_json(target: Target, transition: states.Transition) -> dict[str, Any]:
    return {"at": iso(transition.at), "target": target.as_json(), "from_state": transition.old,
            "to_state": transition.new, "value": transition.value, "detail": transition.detail}


def replay_target(condition: Condition, metric: str, times: Sequence[int], spans: Sequence[range],
                  counts: Sequence[Counts] | None, step: int, target: Target) -> dict[str, Any]:
    """One target's line and states (``counts`` None: nothing to read, no data throughout)."""
    values = [metrics.value_of(metric, None if counts is None else counts[n], len(span))
              for n, span in enumerate(spans)]
    readings = [(float(at), states.NO_DATA if value is None else Reading(value))
                for at, value in zip(times, values, strict=True)]
    statuses, transitions = states.replay(condition, readings)
    return {
        "target": target.as_json(), "values": values,
        "states": [status.state.value for status in statuses],
        "periods": [{"state": state, "start": int(start), "end": int(end)}
                    for state, start, end in states.periods(times, statuses, step)],
        "transitions": [transition_json(target, t) for t in transitions],
    }


def preview(redis_client: Any, fields: Mapping[str, Any], now: float, step: int) -> dict[str, Any]:
    """The backtest of a checked rule (``rules.check``'s fields) over the hour before now."""
    target = targets.parse(fields["target"])
    condition = Condition(fields["op"], fields["fire"], fields["recover"], fields["for_s"],
                          fields["keep_firing_s"])
    window, metric = fields["window_s"], fields["metric"]
    times = evaluation_times(int(now), step)
    spans = [windows.evaluated_seconds(at, window) for at in times]
    cell = cell_of(spans)
    shown, truncated = preview_targets(redis_client, target, spans[0].start)
    seconds = range(spans[0].start, spans[-1].stop)
    pipe = redis_client.pipeline(transaction=False)
    planned: list[list[seriesstore.ReadPlan] | None] = []
    for _, scope in shown:
        if scope is None:
            planned.append(None)
            continue
        read = series_reads.plans(Scope(scope.requests, scope.events, None), seconds, cell)
        series_reads.queue_reads(pipe, read)
        planned.append(read)
    replies = pipe.execute() if any(read is not None for read in planned) else []
    out, offset = [], 0
    for (each, _), plans in zip(shown, planned, strict=True):
        counts = None
        if plans is not None:
            used = sum(len(plan.s1_keys) + len(plan.s10_keys) for plan in plans)
            parts = series_reads.split_replies(plans, replies[offset:offset + used])
            offset += used
            counts = sliding(cells_of(parts, cell), spans, cell)
        out.append(replay_target(condition, metric, times, spans, counts, step, each))
    return {"step": step, "window_s": window, "metric": metric, "unit": metrics.UNITS[metric],
            "op": condition.op, "fire": condition.fire, "recover": condition.recover,
            "times": times, "targets": out, "truncated": truncated}
