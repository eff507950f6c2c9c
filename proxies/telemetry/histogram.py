"""Latency histograms on one fixed exponential bucket scheme: the sidecar's wire format.

The sidecar exports its request durations in these buckets, so the layout is part of what it
emits; the collector, which merges them, imports it from here.

Buckets follow OTLP's exponential histogram at scale 3: bucket ``i`` holds values in
``(base**i, base**(i+1)]`` milliseconds with ``base = 2 ** (1/8)`` (about 9% wide), so a
quantile read from a merged histogram is within ~4.5% of the true value, from 1 µs to an
hour. Because every collector and sidecar uses the same index, histograms merge by adding
counts per index (in Redis with HINCRBY), exactly.
https://opentelemetry.io/docs/specs/otel/metrics/data-model/#exponentialhistogram
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

SCALE = 3
BASE = 2.0 ** (2.0**-SCALE)
_SCALE_FACTOR = (2**SCALE) / math.log(2)
# 1 µs .. 1 h in milliseconds; anything outside is clamped to the edge bucket.
MIN_INDEX = math.ceil(math.log2(0.001) * 2**SCALE) - 1
MAX_INDEX = math.ceil(math.log2(3_600_000.0) * 2**SCALE) - 1


def bucket_index(value_ms: float) -> int:
    """The bucket holding ``value_ms`` (clamped to the supported range; NaN -> the lowest)."""
    if not value_ms > 0.001:
        return MIN_INDEX
    if value_ms >= 3_600_000.0:  # also +inf, whose log cannot be rounded to an int
        return MAX_INDEX
    index = math.ceil(math.log(value_ms) * _SCALE_FACTOR) - 1
    if index < MIN_INDEX:
        return MIN_INDEX
    if index > MAX_INDEX:
        return MAX_INDEX
    return index


def lower_bound(index: int) -> float:
    return BASE**index


def upper_bound(index: int) -> float:
    return BASE ** (index + 1)


def rescale_index(index: int, scale: int) -> int:
    """Map an OTLP exponential-histogram bucket index at ``scale`` onto our scale.

    A finer scale maps exactly (shift right); a coarser one maps the bucket's geometric
    midpoint, which is the best a merged histogram can know about it. The midpoint is
    worked out as a base-2 exponent, never as a value, so no index can overflow a float.
    """
    if scale >= SCALE:
        return max(MIN_INDEX, min(MAX_INDEX, index >> (scale - SCALE)))
    exponent = (index + 0.5) / 2.0**scale  # log2 of the midpoint
    ours = math.ceil(exponent * 2**SCALE) - 1
    return max(MIN_INDEX, min(MAX_INDEX, ours))


def quantile(counts: Mapping[int, int], q: float) -> float | None:
    """The ``q`` quantile (0..1) in milliseconds of a histogram given as index -> count.

    Interpolates linearly inside the bucket that holds the rank, as Prometheus'
    ``histogram_quantile`` does. Returns None for an empty histogram.
    """
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for index in sorted(counts):
        count = counts[index]
        if count <= 0:
            continue
        if seen + count >= rank:
            low, high = lower_bound(index), upper_bound(index)
            fraction = (rank - seen) / count
            return low + (high - low) * fraction
        seen += count
    return upper_bound(max(counts))


def merge(histograms: Iterable[Mapping[int, int]]) -> dict[int, int]:
    merged: dict[int, int] = {}
    for histogram in histograms:
        for index, count in histogram.items():
            merged[index] = merged.get(index, 0) + count
    return merged
