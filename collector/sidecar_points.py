"""One sidecar data point -> a validated ``SidecarPoint`` / ``SidecarCounter``, or ``Rejected``.

Pure: the protobuf and the OTLP/JSON decoder (``otlp_metrics``) read their fields into plain
values and call these, so both encodings pass exactly the same rules
(``collector.validation``). Latency histograms are remapped here onto
``proxies.telemetry.histogram``'s buckets (the layout the sidecars emit), so cumulative
points can be differenced bucket by bucket.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from collector import validation
from collector.otlp_common import Resource, is_true
from collector.records import (
    TEMPORALITY_CUMULATIVE,
    TEMPORALITY_DELTA,
    Exemplar,
    SidecarCounter,
    SidecarPoint,
)
from collector.validation import Rejected
from proxies.telemetry import histogram
from proxies.telemetry.encode import METRIC_NAME
from proxies.telemetry.events import EDGE_EVENTS

# The sidecars' request histogram and policy counters, by the names they export them under.
SIDECAR_METRIC = METRIC_NAME
# Policy counter -> the key it has in an edge's ``events``.
SIDECAR_COUNTERS = {event.metric: event.key for event in EDGE_EVENTS}

Buckets = tuple[int, Sequence[int]]  # (offset, counts) of one side of an exponential histogram


def exponential_latency(
    scale: int, zero_count: int, negative_total: int, offset: int, counts: Sequence[int]
) -> dict[int, int]:
    """Remap an exponential histogram's buckets onto ours (values <= 0 -> the lowest bucket)."""
    latency: dict[int, int] = {}
    low = zero_count + negative_total
    if low:
        latency[histogram.MIN_INDEX] = low
    for i, count in enumerate(counts):
        if count:
            index = histogram.rescale_index(offset + i, scale)
            latency[index] = latency.get(index, 0) + count
    return latency


def explicit_latency(bounds: Sequence[float], counts: Sequence[int]) -> dict[int, int]:
    """Remap an explicit-bucket histogram: each bucket is counted at its midpoint.

    Bucket ``i`` holds ``(bounds[i-1], bounds[i]]``; the first and the overflow bucket have
    no finite width, so they are counted at their one finite bound. The midpoint is
    ``a/2 + b/2``: ``(a + b)/2`` overflows to infinity for bounds near the largest double.
    """
    latency: dict[int, int] = {}
    last = len(bounds)
    for i, count in enumerate(counts):
        if not count:
            continue
        if last == 0:
            value = 0.0
        elif i == 0:
            value = bounds[0]
        elif i >= last:
            value = bounds[-1]
        else:
            value = bounds[i - 1] / 2 + bounds[i] / 2
        index = histogram.bucket_index(value)
        latency[index] = latency.get(index, 0) + count
    return latency


def _optional_finite(values: dict[str, float | None]) -> None:
    for what, value in values.items():
        if value is not None:
            validation.finite(value, f"{SIDECAR_METRIC}: {what}")


def exponential_point(
    resource: Resource,
    attributes: dict[str, Any],
    temporality: int,
    times: tuple[int, int],
    count: int,
    scale: int,
    zero_count: int,
    positive: Buckets,
    negative: Buckets,
    extremes: dict[str, float | None],
) -> SidecarPoint:
    """A point of an exponential histogram; ``extremes`` holds its optional sum/min/max."""
    validation.count(count, f"{SIDECAR_METRIC}: count")
    validation.exponential_histogram(scale, zero_count, positive, negative, count, SIDECAR_METRIC)
    _optional_finite(extremes)
    latency = exponential_latency(scale, zero_count, sum(negative[1]), positive[0], positive[1])
    return _point(resource, attributes, temporality, times, count, latency, "exp")


def explicit_point(
    resource: Resource,
    attributes: dict[str, Any],
    temporality: int,
    times: tuple[int, int],
    count: int,
    bounds: Sequence[float],
    counts: Sequence[int],
    extremes: dict[str, float | None],
) -> SidecarPoint:
    """A point of an explicit-bucket histogram; ``extremes`` holds its optional sum/min/max."""
    validation.count(count, f"{SIDECAR_METRIC}: count")
    validation.explicit_histogram(bounds, counts, count, SIDECAR_METRIC)
    _optional_finite(extremes)
    return _point(
        resource, attributes, temporality, times, count, explicit_latency(bounds, counts), "explicit"
    )


def _point(
    resource: Resource,
    attributes: dict[str, Any],
    temporality: int,
    times: tuple[int, int],
    count: int,
    latency: dict[int, int],
    kind: str,
) -> SidecarPoint:
    direction = attributes.get("meshui.direction")
    if direction not in ("outbound", "inbound"):
        raise Rejected(
            f"{SIDECAR_METRIC}: meshui.direction must be outbound or inbound, got {direction!r:.40}"
        )
    destination, source = _edge(SIDECAR_METRIC, attributes)
    version = attributes.get("destination.version", "")
    version = validation.name(version, f"{SIDECAR_METRIC}: destination.version", required=False)
    if temporality not in (TEMPORALITY_DELTA, TEMPORALITY_CUMULATIVE):
        raise Rejected(f"{SIDECAR_METRIC}: aggregation temporality must be delta or cumulative")
    status = attributes.get("http.response.status_code")
    stream = (
        resource.service,
        resource.instance,
        kind,
        tuple(sorted((k, repr(v)) for k, v in attributes.items())),
    )
    return SidecarPoint(
        instance=resource.instance,
        stream=stream,
        direction=direction,
        source=source,
        destination=destination,
        destination_version=version,
        status=0
        if status is None
        else validation.http_status(status, f"{SIDECAR_METRIC}: http.response.status_code"),
        source_sidecar=is_true(attributes.get("meshui.source.sidecar")),
        temporality=temporality,
        start_ns=times[0],
        time_ns=times[1],
        count=count,
        latency=latency,
    )


def _edge(metric: str, attributes: dict[str, Any]) -> tuple[str, str]:
    """``destination.service`` (required) and ``source.service`` (default ``unknown``), checked."""
    destination = validation.name(attributes.get("destination.service", ""), f"{metric}: destination.service")
    source = attributes.get("source.service")
    if source is None or source == "":
        return destination, "unknown"
    return destination, validation.name(source, f"{metric}: source.service")


def counter_point(name: str, attributes: dict[str, Any], value: int | float,
                  resource: Resource) -> SidecarCounter:
    """A point of a policy counter (a delta sum): a whole number of events, 0..MAX_POINT_COUNT,
    with the sidecar that counted them (``resource``)."""
    destination, source = _edge(name, attributes)
    if isinstance(value, float):
        if not value.is_integer():
            raise Rejected(f"{name}: value must be a whole number, got {value!r}")
        value = int(value)
    validation.count(value, f"{name}: value")
    return SidecarCounter(source, destination, SIDECAR_COUNTERS[name], value,
                          resource.service, resource.instance)


def counter_problem(name: str, data: str, temporality: int) -> str | None:
    """Why a policy counter metric cannot be used as a whole, or None."""
    if data != "sum":
        return f"{name} must be a sum, got {data}"
    if temporality != TEMPORALITY_DELTA:
        return f"{name}: aggregation temporality must be delta"
    return None


# Exemplars kept per data point: a sidecar sends one per latency bucket it saw sampled
# requests in (docs/telemetry.md), a few dozen at most.
MAX_EXEMPLARS_PER_POINT = 64
_ZERO_TRACE, _ZERO_SPAN = bytes(16), bytes(8)


def point_exemplars(point: SidecarPoint, raw: Sequence[tuple[bytes, bytes, float, int]]) -> int:
    """Attach the usable ones of ``raw`` (trace id, span id, value ms, time ns) to ``point``.

    Each goes to the bucket its value falls in; an exemplar with bad ids or a value that is
    not a finite duration is left out, as is any past the cap. Returns how many were.
    """
    bad = max(len(raw) - MAX_EXEMPLARS_PER_POINT, 0)
    error = point.status >= 500
    for trace_id, span_id, value, time_ns in raw[:MAX_EXEMPLARS_PER_POINT]:
        if (len(trace_id) != 16 or trace_id == _ZERO_TRACE or len(span_id) != 8 or span_id == _ZERO_SPAN
                or not isinstance(value, (int, float)) or not 0 <= value < 1e12):
            bad += 1
            continue
        point.exemplars.append((histogram.bucket_index(float(value)), Exemplar(
            trace_id.hex(), span_id.hex(), round(float(value), 3), time_ns / 1e9, error)))
    return bad
