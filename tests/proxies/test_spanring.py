"""The ring of recent span records: bounded by count, per trace and age; looked up by trace id."""

from __future__ import annotations

import pytest

from proxies.telemetry.spanring import END, GENERATIONS, RECORD_FIELDS, Record, SpanRing


def record(trace: int, end: float, span: int = 1) -> Record:
    values = dict.fromkeys(RECORD_FIELDS)
    values.update(trace_id=trace.to_bytes(16, "big"), span_id=span.to_bytes(8, "big"), end=end)
    return tuple(values[name] for name in RECORD_FIELDS)


def tid(trace: int) -> bytes:
    return trace.to_bytes(16, "big")


def test_a_trace_s_records_are_taken_together_oldest_first_and_only_once() -> None:
    ring = SpanRing(size=100)
    first, other, second = record(1, 1.0, span=1), record(2, 1.1), record(1, 1.2, span=2)
    for item in (first, other, second):
        ring.add(item)

    assert ring.holds(tid(1)) and ring.held() == 3
    assert ring.take(tid(1), now=1.5) == [first, second]
    assert ring.take(tid(1), now=1.5) == []
    assert not ring.holds(tid(1)) and ring.held() == 1
    assert ring.take(tid(2), now=1.5) == [other]
    assert ring.take(tid(3), now=1.5) == [] and ring.held() == 0


def test_a_trace_spread_over_generations_is_taken_whole() -> None:
    ring = SpanRing(size=4 * GENERATIONS)  # four records a generation
    ring.add(record(1, 1.0, span=1))
    for trace in range(2, 6):  # close the first generation on its count
        ring.add(record(trace, 1.0))
    ring.add(record(1, 1.1, span=2))

    assert [r[1][-1] for r in ring.take(tid(1), now=1.2)] == [1, 2]
    assert ring.held() == 4


def test_it_holds_at_most_size_records_and_at_least_the_last_three_quarters() -> None:
    ring = SpanRing(size=8)
    for trace in range(100):
        ring.add(record(trace, 1.0))
        assert ring.held() <= 8

    assert ring.held() >= 6
    assert ring.dropped["overwritten"] == 100 - ring.held()
    assert all(ring.holds(tid(t)) for t in range(94, 100))  # the newest
    assert not any(ring.holds(tid(t)) for t in range(0, 90))  # the oldest went first


def test_records_older_than_the_age_are_never_handed_out_and_are_swept() -> None:
    ring = SpanRing(size=100, max_age_s=3.0)  # a generation stays open 1 s
    ring.add(record(1, 10.0))
    ring.add(record(2, 10.5))

    # Still held 3.2 s later (its generation is the oldest), but never handed out.
    assert ring.take(tid(1), now=13.2) == []
    assert [r[END] for r in ring.take(tid(2), now=13.2)] == [10.5]
    ring.add(record(3, 13.3))
    ring.sweep(now=17.4)  # no request since: the sweep closes generations on time
    assert not ring.holds(tid(3)) and ring.held() == 0
    assert ring.dropped["expired"] >= 1


def test_time_alone_closes_generations_while_requests_come() -> None:
    ring = SpanRing(size=10_000, max_age_s=4.0)
    for tenth in range(80):  # 8 s of a slow trickle, a record every 0.1 s: never the count
        ring.add(record(tenth, 100.0 + tenth / 10))

    assert not ring.holds(tid(0)) and ring.holds(tid(79))
    assert 40 <= ring.held() <= 54  # what ended in the last 4 s, and at most a third more
    assert ring.dropped["expired"] == 80 - ring.held() and ring.dropped["overwritten"] == 0


def test_a_taken_trace_seen_again_is_held_again() -> None:
    ring = SpanRing(size=100)
    old = record(1, 1.0, span=1)
    ring.add(old)
    assert ring.take(tid(1), now=1.0) == [old]
    new = record(1, 1.5, span=2)  # the same trace again, later (its wanted mark expired)
    ring.add(new)

    assert ring.take(tid(1), now=1.6) == [new]


def test_a_trace_holds_at_most_max_per_trace_records() -> None:
    ring = SpanRing(size=100, max_per_trace=3)
    for span in range(5):
        ring.add(record(1, 1.0, span=span + 1))

    assert len(ring.take(tid(1), now=1.0)) == 3
    assert ring.dropped["per_trace_full"] == 2


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(ValueError, match="size"):
        SpanRing(size=0)
    with pytest.raises(ValueError, match="max_age_s"):
        SpanRing(max_age_s=0)
