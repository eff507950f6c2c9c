"""The ring of recent span records: bounded by count, per trace and age; looked up by trace id."""

from __future__ import annotations

import pytest

from proxies.telemetry.spanring import END, RECORD_FIELDS, Record, SpanRing


def record(trace: int, end: float, span: int = 1) -> Record:
    values = dict.fromkeys(RECORD_FIELDS)
    values.update(trace_id=trace.to_bytes(16, "big"), span_id=span.to_bytes(8, "big"), end=end)
    return tuple(values[name] for name in RECORD_FIELDS)


def tid(trace: int) -> bytes:
    return trace.to_bytes(16, "big")


def test_a_trace_s_records_are_taken_together_oldest_first_and_only_once() -> None:
    ring = SpanRing(size=10)
    first, other, second = record(1, 1.0, span=1), record(2, 1.1), record(1, 1.2, span=2)
    for item in (first, other, second):
        ring.add(item)

    assert ring.holds(tid(1)) and ring.held() == 3
    assert ring.take(tid(1), now=1.5) == [first, second]
    assert ring.take(tid(1), now=1.5) == []
    assert not ring.holds(tid(1))
    assert ring.take(tid(2), now=1.5) == [other]
    assert ring.take(tid(3), now=1.5) == []


def test_past_its_size_the_oldest_record_goes_and_is_counted() -> None:
    ring = SpanRing(size=3)
    for trace in range(5):
        ring.add(record(trace, float(trace)))

    assert len(ring) == 3 and ring.held() == 3
    assert ring.dropped["overwritten"] == 2
    assert not ring.holds(tid(0)) and not ring.holds(tid(1))
    assert [ring.take(tid(t), 4.0)[0][END] for t in (2, 3, 4)] == [2.0, 3.0, 4.0]


def test_overwriting_a_record_leaves_the_later_records_of_its_trace() -> None:
    ring = SpanRing(size=2)
    ring.add(record(1, 1.0, span=1))
    ring.add(record(1, 2.0, span=2))
    ring.add(record(2, 3.0))  # pushes out trace 1's first record only

    held = ring.take(tid(1), now=3.0)
    assert [r[END] for r in held] == [2.0]


def test_records_older_than_the_age_are_swept_and_never_handed_out() -> None:
    ring = SpanRing(size=100, max_age_s=5.0)
    ring.add(record(1, 10.0))
    ring.add(record(2, 12.0))

    assert ring.sweep(now=15.5) == 1  # trace 1 ended 5.5 s before
    assert ring.dropped["expired"] == 1
    assert not ring.holds(tid(1)) and ring.holds(tid(2))
    # A lookup sweeps first: nothing older than the age comes back, whenever it is asked.
    assert ring.take(tid(2), now=17.5) == []
    assert len(ring) == 0


def test_a_taken_trace_s_records_age_out_of_the_deque_without_touching_a_newer_list() -> None:
    ring = SpanRing(size=10, max_age_s=5.0)
    old = record(1, 1.0, span=1)
    ring.add(old)
    assert ring.take(tid(1), now=1.0) == [old]
    new = record(1, 4.0, span=2)  # the same trace again, later (its wanted mark expired)
    ring.add(new)

    ring.sweep(now=6.5)  # the taken record ages out of the deque

    assert ring.take(tid(1), now=6.5) == [new]


def test_a_trace_holds_at_most_max_per_trace_records() -> None:
    ring = SpanRing(size=100, max_per_trace=3)
    for span in range(5):
        ring.add(record(1, float(span), span=span + 1))

    assert len(ring.take(tid(1), now=4.0)) == 3
    assert ring.dropped["per_trace_full"] == 2


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="size"):
        SpanRing(size=0)
    with pytest.raises(ValueError, match="max_age_s"):
        SpanRing(max_age_s=0)
