"""The telemetry's Prometheus text for the sidecar's admin port (rendered on scrape only).

Two families of series: the telemetry's own health (dropped, exported, export errors,
queued spans) and the cumulative request counts and summed durations per attribute set,
``meshui_proxy_requests_total`` and ``meshui_proxy_request_duration_ms_total`` (a plain
counter of milliseconds, not named ``_sum``: a lone ``_sum`` reads as part of a histogram).
Pure: takes values, returns text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from proxies.telemetry.aggregate import AttributeSet, Point
from proxies.telemetry.export_state import SignalExport

_LABEL_NAMES = (
    "direction",
    "source",
    "destination",
    "destination_version",
    "code",
    "source_sidecar",
)


def prometheus_text(
    dropped: Mapping[tuple[str, str], int],
    signals: Iterable[SignalExport],
    queued_spans: int,
    totals: Mapping[AttributeSet, list[float]],
    current: Iterable[Point],
    totals_overflow: int,
) -> str:
    """All telemetry lines: ``totals`` (closed intervals) plus ``current`` (the open one)."""
    signals = tuple(signals)
    lines = [
        "# HELP meshui_telemetry_dropped_total Telemetry lost before the collector "
        "(metrics: request measurements, spans: spans).",
        "# TYPE meshui_telemetry_dropped_total counter",
    ]
    for (name, reason), value in dropped.items():
        lines.append(f'meshui_telemetry_dropped_total{{signal="{name}",reason="{reason}"}} {value}')
    lines += [
        "# HELP meshui_telemetry_exported_total Telemetry the collector accepted.",
        "# TYPE meshui_telemetry_exported_total counter",
    ]
    for signal in signals:
        lines.append(f'meshui_telemetry_exported_total{{signal="{signal.name}"}} {signal.exported}')
    lines += [
        "# HELP meshui_telemetry_export_errors_total Failed export requests (any reason).",
        "# TYPE meshui_telemetry_export_errors_total counter",
    ]
    for signal in signals:
        lines.append(f'meshui_telemetry_export_errors_total{{signal="{signal.name}"}} {signal.errors}')
    lines += [
        "# HELP meshui_telemetry_queue_spans Spans waiting to be exported.",
        "# TYPE meshui_telemetry_queue_spans gauge",
        f"meshui_telemetry_queue_spans {queued_spans}",
    ]
    lines += _request_lines(totals, current, totals_overflow)
    return "\n".join(lines) + "\n"


def _request_lines(
    closed: Mapping[AttributeSet, list[float]], current: Iterable[Point], overflow: int
) -> list[str]:
    totals = {key: list(value) for key, value in closed.items()}
    for point in current:
        total = totals.setdefault(point.attributes, [0, 0.0])
        total[0] += point.count
        total[1] += point.sum
    lines = [
        "# HELP meshui_proxy_requests_total Requests through the sidecar.",
        "# TYPE meshui_proxy_requests_total counter",
    ]
    sums = [
        "# HELP meshui_proxy_request_duration_ms_total Summed request durations (ms).",
        "# TYPE meshui_proxy_request_duration_ms_total counter",
    ]
    for attributes, (count, total_ms) in totals.items():
        labels = _labels(attributes)
        lines.append(f"meshui_proxy_requests_total{{{labels}}} {int(count)}")
        sums.append(f"meshui_proxy_request_duration_ms_total{{{labels}}} {total_ms!r}")
    lines += sums
    lines += [
        "# HELP meshui_proxy_requests_overflow_total Requests left out of the two families above"
        " (label-set limit reached).",
        "# TYPE meshui_proxy_requests_overflow_total counter",
        f"meshui_proxy_requests_overflow_total {overflow}",
    ]
    return lines


def _escape(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(attributes: AttributeSet) -> str:
    return ",".join(
        f'{name}="{_escape(value)}"' for name, value in zip(_LABEL_NAMES, attributes, strict=True)
    )
