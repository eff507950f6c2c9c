"""Request durations aggregated in process, per export interval: the sidecar's hot path.

A request appends plain values to one ``Point`` per distinct attribute set (count, sum,
min, max and an exponential histogram at scale 3 in milliseconds, the bucket index of
``proxies.telemetry.histogram``, so sidecar and collector histograms merge exactly). The
export task swaps the whole interval out with one reference swap: on one event loop
nothing can run between reading the old dict and installing the new one, so no lock is
needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from proxies.telemetry import histogram

# The bucket formula of histogram.bucket_index, inlined: a Python call costs ~70 ns, a
# third of record() (measured in bench/telemetry_overhead.py). A test asserts that both
# agree on every edge.
_FACTOR = (2**histogram.SCALE) / math.log(2)
_LOW_MS = 0.001
MIN_INDEX = histogram.MIN_INDEX
MAX_INDEX = histogram.MAX_INDEX
_log = math.log
_ceil = math.ceil

# Exemplars per data point: one per bucket, up to this many buckets (the collector keeps 64).
MAX_EXEMPLARS_PER_POINT = 32

# Attribute values come partly from request headers (x-meshui-source): keep them short.
MAX_ATTRIBUTE_LENGTH = 256
DEFAULT_MAX_ATTRIBUTE_SETS = 2000

#: (direction, source, destination, destination_version, status, source_sidecar)
AttributeSet = tuple[str, str, str, str, int, bool]


def bucket_index(value_ms: float) -> int:
    """Same as histogram.bucket_index for positive finite values (the inlined form)."""
    if value_ms <= _LOW_MS:
        return MIN_INDEX
    index = _ceil(_log(value_ms) * _FACTOR) - 1
    return MIN_INDEX if index < MIN_INDEX else MAX_INDEX if index > MAX_INDEX else index


class Point:
    """One attribute set's measurements in one interval (mutable, owned by one interval)."""

    __slots__ = ("attributes", "count", "sum", "min", "max", "zero_count", "buckets", "exemplars")

    def __init__(self, attributes: AttributeSet) -> None:
        self.attributes = attributes
        self.count = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf
        self.zero_count = 0
        self.buckets: dict[int, int] = {}
        # bucket index -> (trace id, span id, ms, end ns) of a sampled request that landed
        # there, the latest: one per bucket, so the slow buckets have theirs too, not only
        # the common one. None until the first (most intervals have none).
        self.exemplars: dict[int, tuple[bytes, bytes, float, int]] | None = None


@dataclass(slots=True)
class Interval:
    """What one export interval recorded: ``points`` may hold aliases, ``unique`` does not."""

    start_ns: int
    end_ns: int = 0
    points: dict[tuple[object, ...], Point] = field(default_factory=dict)
    unique: list[Point] = field(default_factory=list)

    @property
    def measurements(self) -> int:
        return sum(point.count for point in self.unique)


def attribute_text(value: object) -> str:
    """An attribute value as exported: a string of at most 256 characters, valid UTF-8."""
    text = "" if value is None else value if type(value) is str else str(value)
    if len(text) > MAX_ATTRIBUTE_LENGTH:
        text = text[:MAX_ATTRIBUTE_LENGTH]
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates from a surrogateescape-decoded header
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def normalize(raw: tuple[object, ...]) -> AttributeSet | None:
    """The attribute set to export for what a caller passed, or None when it is unusable."""
    direction, source, destination, version, status, source_sidecar = raw
    if isinstance(status, bool):
        return None
    try:
        code = int(status)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return None
    if not 0 <= code <= 999:
        return None
    return (
        attribute_text(direction),
        attribute_text(source),
        attribute_text(destination),
        attribute_text(version),
        code,
        bool(source_sidecar),
    )


class RequestAggregator:
    """Aggregates request durations per attribute set; ``take()`` hands an interval over."""

    __slots__ = ("interval", "max_attribute_sets", "dropped_invalid", "dropped_cardinality")

    def __init__(self, start_ns: int, max_attribute_sets: int = DEFAULT_MAX_ATTRIBUTE_SETS) -> None:
        self.interval = Interval(start_ns)
        self.max_attribute_sets = max_attribute_sets
        # Counted in measurements (one per record() call), like every metrics drop.
        self.dropped_invalid = 0
        self.dropped_cardinality = 0

    def record(
        self,
        direction: str,
        source: str,
        destination: str,
        destination_version: str,
        status: int,
        source_sidecar: bool,
        duration_s: float,
    ) -> None:
        """Add one request. Never raises: unusable input is counted as dropped."""
        try:
            ms = duration_s * 1000.0
            if ms > _LOW_MS:
                # OverflowError on inf: counted below as invalid.
                index = _ceil(_log(ms) * _FACTOR) - 1
                if index > MAX_INDEX:
                    index = MAX_INDEX
                elif index < MIN_INDEX:
                    index = MIN_INDEX
            elif ms == 0.0:
                index = None
            elif ms > 0.0:
                index = MIN_INDEX
            else:  # negative or NaN
                self.dropped_invalid += 1
                return
            key = (direction, source, destination, destination_version, status, source_sidecar)
            point = self.interval.points.get(key)
            if point is None:
                point = self._add(key)
                if point is None:
                    return
            point.count += 1
            point.sum += ms
            if ms < point.min:
                point.min = ms
            if ms > point.max:
                point.max = ms
            if index is None:
                point.zero_count += 1
            else:
                buckets = point.buckets
                buckets[index] = buckets.get(index, 0) + 1
        except Exception:  # noqa: BLE001 - the request path must never see telemetry fail
            self.dropped_invalid += 1

    def exemplar(
        self,
        direction: str,
        source: str,
        destination: str,
        destination_version: str,
        status: int,
        source_sidecar: bool,
        duration_s: float,
        trace_id: bytes,
        span_id: bytes,
        end_ns: int,
    ) -> None:
        """Attach a sampled request (just counted by ``record``) to its bucket as its exemplar.

        Off the common path: only sampled requests come here. Never raises.
        """
        try:
            key = (direction, source, destination, destination_version, status, source_sidecar)
            point = self.interval.points.get(key)
            if point is None:  # dropped by record (invalid, cardinality): nothing to point at
                return
            ms = duration_s * 1000.0
            index = bucket_index(ms) if ms > 0.0 else MIN_INDEX
            exemplars = point.exemplars
            if exemplars is None:
                exemplars = point.exemplars = {}
            elif len(exemplars) >= MAX_EXEMPLARS_PER_POINT and index not in exemplars:
                return
            exemplars[index] = (trace_id, span_id, ms, end_ns)
        except Exception:  # noqa: BLE001 - the request path must never see telemetry fail
            return

    def _add(self, key: tuple[object, ...]) -> Point | None:
        """The slow path of a new attribute set: validate it once, alias equal sets."""
        attributes = normalize(key)
        if attributes is None:
            self.dropped_invalid += 1
            return None
        interval = self.interval
        point = interval.points.get(attributes)
        if point is None:
            if len(interval.unique) >= self.max_attribute_sets:
                self.dropped_cardinality += 1
                return None
            point = Point(attributes)
            interval.unique.append(point)
            interval.points[attributes] = point
        if len(interval.points) < 4 * self.max_attribute_sets:
            interval.points[key] = point  # alias, e.g. status "200" -> 200
        return point

    def take(self, now_ns: int) -> Interval:
        """Close the current interval at ``now_ns`` and start the next one (one swap)."""
        interval, self.interval = self.interval, Interval(now_ns)
        interval.end_ns = now_ns
        return interval
