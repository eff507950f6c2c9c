"""The rules an OTLP item must pass before it can reach the graph: pure checks, one per rule.

Each check returns the value it vouches for, or raises ``Rejected`` with a message naming the
field and what is wrong. The decoders catch ``Rejected`` per item (span or data point),
count it as rejected and report the first message through OTLP partial success
(https://opentelemetry.io/docs/specs/otlp/#partial-success); the rest of the export is kept.

The bounds exist so that what is accepted always fits the store: every count the graph
adds is at most ``MAX_POINT_COUNT``, and ``graphwriter`` caps a per-second field at
``FIELD_LIMIT`` so that the sum of a whole window (``MAX_WINDOW`` seconds) stays an int64.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from collector.graphstore import MAX_WINDOW

# Largest count (requests in one delta data point, one bucket, one policy counter) we accept.
# A sidecar exports every few seconds; no real interval holds 4 billion requests, and a bound
# this low leaves room for over 500,000 such points in one per-second field before FIELD_LIMIT.
MAX_POINT_COUNT = 2**32
# A per-second hash field never grows past this, so 3600 of them still add up to an int64
# (and it is below 2^53, so Redis' Lua doubles and JavaScript read it exactly).
FIELD_LIMIT = (2**63 - 1) // MAX_WINDOW
# Service names and versions become parts of Redis field names joined by "\x1f"; a control
# character in one would corrupt the layout, and a huge one bloats every page that lists it.
MAX_NAME_LENGTH = 255
# OTLP allows scales -10..20 (https://opentelemetry.io/docs/specs/otel/metrics/data-model/#exponential-scale).
MIN_SCALE, MAX_SCALE = -10, 20
# uint64 / fixed64 fields (timestamps).
MAX_UINT64 = 2**64 - 1
# HTTP status codes are three digits (RFC 9110 §15); 0 means "no response".
MAX_HTTP_STATUS = 999

_DECIMAL = re.compile(r"[+-]?[0-9]+")
_HEX = re.compile(r"[0-9a-fA-F]*")


class Rejected(ValueError):
    """One item (a span or a data point) cannot be accepted; the message says why."""


def count(value: int, what: str) -> int:
    """A count, checked to be within 0..MAX_POINT_COUNT."""
    if not 0 <= value <= MAX_POINT_COUNT:
        raise Rejected(f"{what} {value} is out of range 0..{MAX_POINT_COUNT}")
    return value


def bucket_counts(counts: Sequence[int], what: str) -> None:
    """Every bucket count within range (their sum is checked against the point's count)."""
    for value in counts:
        if not 0 <= value <= MAX_POINT_COUNT:
            raise Rejected(f"{what}: a bucket count {value} is out of range 0..{MAX_POINT_COUNT}")


def finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise Rejected(f"{what} must be finite, got {value!r}")
    return value


def explicit_bounds(bounds: Sequence[float], what: str) -> None:
    """Bounds finite and strictly increasing (OTLP HistogramDataPoint.explicit_bounds)."""
    previous = -math.inf
    for bound in bounds:
        if not math.isfinite(bound):
            raise Rejected(f"{what}: explicit bound {bound!r} is not finite")
        if bound <= previous:
            raise Rejected(f"{what}: explicit bounds must be strictly increasing")
        previous = bound


def explicit_histogram(bounds: Sequence[float], counts: Sequence[int], total: int, what: str) -> None:
    """The shape of an explicit-bucket histogram: one more bucket than bounds, summing to count."""
    explicit_bounds(bounds, what)
    if not counts:
        return  # a point may carry only its count
    if len(counts) != len(bounds) + 1:
        raise Rejected(f"{what}: {len(counts)} bucket counts for {len(bounds)} bounds (need one more)")
    bucket_counts(counts, what)
    if sum(counts) != total:
        raise Rejected(f"{what}: bucket counts sum to {sum(counts)}, not to the count {total}")


def index_range(scale: int) -> tuple[int, int]:
    """The bucket indexes a float64 can reach at ``scale`` (exponents -1074..1024).

    Index ``i`` covers ``(2**(i / 2**scale), 2**((i + 1) / 2**scale)]``; past these the bucket
    would start beyond the largest double or below the smallest subnormal.
    """
    factor = 2.0**scale
    return math.floor(-1074 * factor) - 1, math.ceil(1024 * factor) - 1


def exponential_histogram(
    scale: int,
    zero_count: int,
    positive: tuple[int, Sequence[int]],
    negative: tuple[int, Sequence[int]],
    total: int,
    what: str,
) -> None:
    """Scale within -10..20, bucket ranges a double can hold, buckets summing to the count."""
    if not MIN_SCALE <= scale <= MAX_SCALE:
        raise Rejected(f"{what}: scale {scale} is out of range {MIN_SCALE}..{MAX_SCALE}")
    count(zero_count, f"{what}: zero_count")
    low, high = index_range(scale)
    buckets = 0
    for side, (offset, counts) in (("positive", positive), ("negative", negative)):
        if counts and not (low <= offset and offset + len(counts) - 1 <= high):
            raise Rejected(
                f"{what}: {side} buckets {offset}..{offset + len(counts) - 1} are outside "
                f"{low}..{high}, the range of scale {scale}"
            )
        bucket_counts(counts, what)
        buckets += sum(counts)
    if zero_count + buckets != total:
        raise Rejected(
            f"{what}: zero_count plus bucket counts is {zero_count + buckets}, not the count {total}"
        )


def name(value: Any, what: str, *, required: bool = True) -> str:
    """A service name or version: 1..255 printable characters (empty allowed if not required)."""
    if not isinstance(value, str):
        raise Rejected(f"{what} must be a string, got {type(value).__name__}")
    if not value:
        if required:
            raise Rejected(f"{what} is missing")
        return value
    if len(value) > MAX_NAME_LENGTH:
        raise Rejected(f"{what} is longer than {MAX_NAME_LENGTH} characters")
    if not value.isprintable():
        raise Rejected(f"{what} holds a control or non-printable character")
    return value


def http_status(value: Any, what: str) -> int:
    """An HTTP status code attribute: an integer (or a decimal string, as some SDKs send) 0..999."""
    if isinstance(value, bool):
        raise Rejected(f"{what} must be an integer, got a boolean")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    elif isinstance(value, str) and _DECIMAL.fullmatch(value):
        value = int(value)
    if not isinstance(value, int):
        raise Rejected(f"{what} must be an integer, got {value!r:.40}")
    if not 0 <= value <= MAX_HTTP_STATUS:
        raise Rejected(f"{what} {value} is out of range 0..{MAX_HTTP_STATUS}")
    return value


def json_int(value: Any, what: str, low: int = 0, high: int = MAX_UINT64) -> int:
    """An OTLP/JSON integer (a number or a decimal string, as int64 fields are sent), in range."""
    if value is None:
        return 0
    if isinstance(value, bool):
        raise Rejected(f"{what} must be an integer, got a boolean")
    if isinstance(value, float):
        if not value.is_integer():
            raise Rejected(f"{what} must be an integer, got {value!r}")
        value = int(value)
    elif isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise Rejected(f"{what} must be an integer, got {value!r:.40}")
        value = int(value)
    elif not isinstance(value, int):
        raise Rejected(f"{what} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise Rejected(f"{what} {value} is out of range {low}..{high}")
    return value


def json_float(value: Any, what: str) -> float:
    """An OTLP/JSON double: a number (``"NaN"``/``"Infinity"`` strings are read, then refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Rejected(f"{what} must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except (ValueError, OverflowError):
        raise Rejected(f"{what} must be a number, got {value!r:.40}") from None
    return finite(number, what)


def json_enum(value: Any, names: dict[str, int], what: str) -> int:
    """An OTLP/JSON enum: its number or its name (https://protobuf.dev/programming-guides/json/)."""
    if isinstance(value, str) and value in names:
        return names[value]
    if isinstance(value, int) and not isinstance(value, bool) and value in names.values():
        return value
    raise Rejected(f"{what} must be one of {', '.join(names)} (or its number), got {value!r:.40}")


def json_hex_id(value: Any, size: int, what: str) -> bytes:
    """An OTLP/JSON id: exactly ``2 * size`` hex digits (no spaces, no base64); absent -> b""."""
    if value is None or value == "":
        return b""
    if not isinstance(value, str) or len(value) != 2 * size or not _HEX.fullmatch(value):
        raise Rejected(f"{what} must be {2 * size} hex digits, got {value!r:.40}")
    return bytes.fromhex(value)
