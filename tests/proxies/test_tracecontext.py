"""W3C Trace Context parsing and propagation (https://www.w3.org/TR/trace-context/)."""

from __future__ import annotations

import pytest

from proxies.telemetry import tracecontext

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def header(version: str = "00", trace: str = TRACE, parent: str = PARENT, flags: str = "01") -> str:
    return f"{version}-{trace}-{parent}-{flags}"


@pytest.mark.parametrize(
    ("traceparent", "sampled"),
    [
        (header(flags="01"), True),
        (header(flags="00"), False),
        (header(flags="03"), True),  # other flag bits are ignored
        (header(flags="02"), False),
        (header(flags="ff"), True),
        (" " + header() + "\t", True),  # HTTP optional whitespace around the value
        (header(version="01"), True),  # a future version, exactly four fields
        (header(version="cc") + "-what-the-future-holds", True),  # ... or with more after "-"
        (header(version="fe", flags="00") + "-x", False),
    ],
)
def test_a_valid_traceparent_continues_the_trace_with_a_new_span_of_ours(
    traceparent: str, sampled: bool
) -> None:
    context = tracecontext.incoming(traceparent, "vendor=abc,other=1", sample_rate=0.0)

    assert context.trace_id == bytes.fromhex(TRACE)
    assert context.parent_span_id == bytes.fromhex(PARENT)
    assert len(context.span_id) == 8 and context.span_id != bytes.fromhex(PARENT)
    assert context.span_id != bytes(8)
    assert context.sampled is sampled
    assert context.tracestate == "vendor=abc,other=1"
    assert context.traceparent() == f"00-{TRACE}-{context.span_id.hex()}-{'01' if sampled else '00'}"


@pytest.mark.parametrize(
    "traceparent",
    [
        "",
        "garbage",
        header(trace="0" * 32),  # all-zero trace id
        header(parent="0" * 16),  # all-zero parent id
        header(trace=TRACE.upper()),  # uppercase hex
        header(parent=PARENT.upper()),
        header(flags="0A"),
        header(version="0A"),
        header(version="ff"),  # version 255 is forbidden
        header() + "-extra",  # version 00 is exactly 55 characters
        header() + "x",
        header(version="01") + "x",  # a future version must go on with "-"
        header()[:-1],  # too short
        header(trace=TRACE[:-1] + "g"),  # not hex
        header(trace=TRACE[:30] + " 3"),  # bytes.fromhex would accept the space
        header().replace("-", "_"),
        header(flags="1"),
        "00-" + TRACE + "-" + PARENT + "-01\n",
    ],
)
def test_an_invalid_traceparent_starts_a_new_trace_and_drops_tracestate(traceparent: str) -> None:
    context = tracecontext.incoming(traceparent, "vendor=abc", sample_rate=1.0)

    assert context.trace_id != bytes.fromhex(TRACE) and len(context.trace_id) == 16
    assert context.trace_id != bytes(16)
    assert context.parent_span_id is None
    assert context.tracestate is None
    assert context.sampled is True  # decided by the sample rate


def test_without_a_traceparent_the_sample_rate_decides() -> None:
    never = [tracecontext.incoming(None, None, 0.0).sampled for _ in range(200)]
    always = [tracecontext.incoming(None, None, 1.0).sampled for _ in range(200)]
    some = [tracecontext.incoming(None, None, 0.5).sampled for _ in range(2000)]

    assert not any(never)
    assert all(always)
    assert 800 < sum(some) < 1200


def test_an_incoming_sampled_flag_wins_over_the_sample_rate() -> None:
    assert tracecontext.incoming(header(flags="01"), None, 0.0).sampled is True
    assert tracecontext.incoming(header(flags="00"), None, 1.0).sampled is False


def test_a_tracestate_without_a_valid_traceparent_is_dropped() -> None:
    assert tracecontext.incoming(None, "vendor=abc", 0.0).tracestate is None


def test_an_empty_tracestate_is_not_forwarded() -> None:
    assert tracecontext.incoming(header(), "", 0.0).tracestate is None


def test_a_new_trace_gets_fresh_random_ids_and_a_well_formed_header() -> None:
    contexts = [tracecontext.incoming(None, None, 0.0) for _ in range(100)]

    assert len({context.trace_id for context in contexts}) == 100
    assert len({context.span_id for context in contexts}) == 100
    for context in contexts:
        # What we send must itself parse as a valid traceparent pointing at our span.
        downstream = tracecontext.incoming(context.traceparent(), None, 0.0)
        assert downstream.trace_id == context.trace_id
        assert downstream.parent_span_id == context.span_id
        assert downstream.sampled is False


def test_a_future_version_is_answered_with_version_00() -> None:
    context = tracecontext.incoming(header(version="42") + "-more", None, 0.0)

    assert context.traceparent().startswith(f"00-{TRACE}-")
