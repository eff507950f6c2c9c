"""Searching and reading the trace store (``collector.tracestore``): what the API serves.

A search names a time range and filters. It never scans all traces: it walks one sorted
set, newest first, within the time range, the one of the filters' indexes (service, edge,
operation, errors; every trace when no name is given) that holds the fewest traces in the
range (``ZCOUNT``, O(log n) each), and checks the other filters on each candidate's summary,
inside Redis (``SEARCH_SCRIPT``). It stops at ``limit`` matches or after ``MAX_EXAMINED``
candidates; ``truncated`` then says that more candidates were left unread (narrow the
range). The numbers come first in a summary, so a duration or status filter costs a string
match per candidate, and JSON is decoded only for a name filter that is not the index.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from typing import Any, TypedDict

import orjson

from collector.tracedecode import SpanJSON, decode_spans
from collector.tracestore import (
    ALL,
    ERRORS,
    LUA_COMMON,
    SUMMARIES,
    SUMMARY_PATTERN,
    blob_key,
    edge_index,
    operation_index,
    service_index,
)
from collector.tracesummary import EDGE_SEP, MAX_OPERATION_LENGTH

DEFAULT_LIMIT = 20
MAX_LIMIT = 1000
# Candidates one search reads at most: ~5 µs each in the script (bench/trace_search.py), so a
# search that finds too little stops within ~50 ms of Redis time and says it was truncated.
MAX_EXAMINED = 10_000
DEFAULT_RANGE_S = 3600
# Times are epoch seconds; nothing before 2000 or after 2100 is a time a span could have.
MIN_TIME, MAX_TIME = 946_684_800.0, 4_102_444_800.0
MAX_DURATION_MS = 7 * 24 * 3600 * 1000.0
TRACE_ID = re.compile(r"[0-9a-f]{32}")
STATUSES = ("error", "ok")


class QueryProblem(ValueError):
    """A search parameter is invalid; ``parameter`` names it, the message says why."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


def trace_id_problem(value: str) -> str | None:
    if TRACE_ID.fullmatch(value) is None or value == "0" * 32:
        return f"trace id must be 32 lower-case hex digits, not all zero, got {value[:40]!r}"
    return None


@dataclass(frozen=True, slots=True)
class TraceQuery:
    """What a search asks for; ``validate()`` raises ``QueryProblem`` naming the parameter."""

    start: float | None = None  # epoch seconds; default: an hour before end
    end: float | None = None  # epoch seconds; default: now
    service: str = ""
    source: str = ""
    target: str = ""
    operation: str = ""
    trace_id: str = ""
    min_ms: float | None = None
    max_ms: float | None = None
    status: str = ""  # "error", "ok" or "" (any)
    limit: int = DEFAULT_LIMIT

    def validate(self) -> None:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and MIN_TIME <= value <= MAX_TIME):
                raise QueryProblem(name, f"{name} must be epoch seconds between {MIN_TIME:.0f} "
                                         f"(2000) and {MAX_TIME:.0f} (2100), got {value}")
        if self.start is not None and self.end is not None and self.start > self.end:
            raise QueryProblem("start", f"start ({self.start}) must not be after end ({self.end})")
        for name in ("min_ms", "max_ms"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and 0 <= value <= MAX_DURATION_MS):
                raise QueryProblem(name, f"{name} must be a number of milliseconds from 0 to "
                                         f"{MAX_DURATION_MS:.0f}, got {value}")
        if self.min_ms is not None and self.max_ms is not None and self.min_ms > self.max_ms:
            raise QueryProblem("min_ms", f"min_ms ({self.min_ms}) must not be above max_ms ({self.max_ms})")
        if self.status not in ("", *STATUSES):
            raise QueryProblem("status", f"status must be 'error' or 'ok', got {self.status[:40]!r}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise QueryProblem("limit", f"limit must be between 1 and {MAX_LIMIT}, got {self.limit}")
        if bool(self.source) != bool(self.target):
            raise QueryProblem("source" if not self.source else "target",
                               "give source and target together (an edge), or service")
        if len(self.operation) > MAX_OPERATION_LENGTH:
            raise QueryProblem("operation", f"operation is longer than {MAX_OPERATION_LENGTH} "
                                            "characters (stored operations are cut there)")
        if self.trace_id:
            problem = trace_id_problem(self.trace_id)
            if problem:
                raise QueryProblem("trace_id", problem)

    def range_us(self, now: float) -> tuple[int, int]:
        end = self.end if self.end is not None else now
        start = self.start if self.start is not None else end - DEFAULT_RANGE_S
        return int(start * 1_000_000), int(end * 1_000_000)


class EdgeJSON(TypedDict):
    source: str
    target: str


class RootJSON(TypedDict):
    service: str
    operation: str


class TraceSummaryJSON(TypedDict):
    trace_id: str
    start: float  # epoch seconds
    duration_ms: float  # the root span's, else the longest span's
    max_span_ms: float
    error: bool
    kept: bool
    span_count: int
    services: list[str]
    edges: list[EdgeJSON]
    operations: list[str]
    root: RootJSON | None


class TraceListJSON(TypedDict):
    traces: list[TraceSummaryJSON]
    examined: int  # candidates read
    truncated: bool  # candidates were left unread (MAX_EXAMINED): narrow the search


class TraceJSON(TraceSummaryJSON):
    spans: list[SpanJSON]


_SUMMARY = re.compile(SUMMARY_PATTERN.replace("%d", r"\d"), re.S)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []  # cjson writes an empty array as {}


def parse_summary(trace_id: bytes, summary: bytes) -> TraceSummaryJSON | None:
    match = _SUMMARY.match(summary.decode(errors="replace"))
    if match is None:
        return None
    start, duration, longest, error, kept, spans, _, root, names_json = match.groups()
    try:
        names = orjson.loads(names_json)
    except orjson.JSONDecodeError:
        names = []
    names = _list(names) + [[], [], [], "", ""][len(_list(names)):]
    edges: list[EdgeJSON] = []
    for edge in _list(names[1]):
        source, _, target = str(edge).partition(EDGE_SEP)
        edges.append({"source": source, "target": target})
    return {
        "trace_id": trace_id.hex(),
        "start": int(start) / 1e6,
        "duration_ms": int(duration) / 1000,
        "max_span_ms": int(longest) / 1000,
        "error": error == "1",
        "kept": kept == "1",
        "span_count": int(spans),
        "services": [str(s) for s in _list(names[0])],
        "edges": edges,
        "operations": [str(o) for o in _list(names[2])],
        "root": {"service": str(names[3]), "operation": str(names[4])} if root == "1" else None,
    }


# KEYS[1] is the summary hash, KEYS[2..] the candidate indexes. ARGV: low and high start
# (µs, inclusive), limit, most candidates, min and max duration (µs; -1: none), status (0 any,
# 1 error, 2 ok), then for each index of KEYS[2..] a kind ("s", "e", "o" for a name filter,
# "-" otherwise) and its name. Returns {examined, 1 when candidates were left unread, id,
# summary, id, summary...}, newest first.
SEARCH_SCRIPT = LUA_COMMON + """
local lo, hi = ARGV[1], ARGV[2]
local limit, budget = tonumber(ARGV[3]), tonumber(ARGV[4])
local min_us, max_us, status = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local best, best_n, best_at = nil, -1, 0
for i = 2, #KEYS do
  local n = redis.call('ZCOUNT', KEYS[i], lo, hi)
  if best == nil or n < best_n then best, best_n, best_at = KEYS[i], n, i end
end
local checks = {}
for i = 2, #KEYS do
  local kind = ARGV[8 + 2 * (i - 2)]
  if i ~= best_at and kind ~= '-' then
    checks[#checks + 1] = {({s = 1, e = 2, o = 3})[kind], ARGV[9 + 2 * (i - 2)]}
  end
end
local function has(list, value)
  for _, v in ipairs(list) do if v == value then return true end end
  return false
end
local out = {0, 0}
local found, examined, skip, top, more = 0, 0, 0, hi, true
while more and found < limit and examined < budget do
  local page = math.min(256, budget - examined)
  local rows = redis.call('ZREVRANGEBYSCORE', best, top, lo, 'WITHSCORES', 'LIMIT', skip, page)
  if #rows == 0 then more = false break end
  if #rows < 2 * page then more = false end
  local last, tail = rows[#rows], 0
  for j = #rows, 2, -2 do if rows[j] == last then tail = tail + 1 else break end end
  if last == top then skip = skip + tail else skip = tail end
  top = last
  local ids = {}
  for j = 1, #rows, 2 do ids[#ids + 1] = rows[j] end
  local sums = redis.call('HMGET', KEYS[1], unpack(ids))
  for j = 1, #ids do
    examined = examined + 1
    local s = sums[j]
    -- Only the duration and the error flag: a full parse would copy the names per candidate.
    local dur, err
    if s then dur, err = string.match(s, '^%d+ (%d+) %d+ (%d)') end
    dur = tonumber(dur)
    if dur and (min_us < 0 or dur >= min_us) and (max_us < 0 or dur <= max_us)
        and (status == 0 or (status == 1 and err == '1') or (status == 2 and err == '0')) then
      local ok = true
      if #checks > 0 then
        local names = decode(parse(s).names)
        for _, check in ipairs(checks) do
          if not has(names[check[1]], check[2]) then ok = false break end
        end
      end
      if ok then
        found = found + 1
        out[#out + 1] = ids[j]
        out[#out + 1] = s
        if found >= limit then break end
      end
    end
  end
end
out[1] = examined
out[2] = (more and found < limit) and 1 or 0
return out
"""


def _search_call(query: TraceQuery, now: float) -> tuple[list[Any], list[Any]]:
    """The KEYS and ARGV of ``SEARCH_SCRIPT`` for ``query``."""
    lo, hi = query.range_us(now)
    indexes: list[tuple[Any, str, str]] = []
    if query.service:
        indexes.append((service_index(query.service), "s", query.service))
    if query.source:
        edge = f"{query.source}{EDGE_SEP}{query.target}"
        indexes.append((edge_index(edge), "e", edge))
    if query.operation:
        indexes.append((operation_index(query.operation), "o", query.operation))
    if query.status == "error":
        indexes.append((ERRORS, "-", ""))
    if not indexes:
        indexes.append((ALL, "-", ""))
    keys: list[Any] = [SUMMARIES, *(key for key, _, _ in indexes)]
    args: list[Any] = [lo, hi, query.limit, MAX_EXAMINED,
                       -1 if query.min_ms is None else int(query.min_ms * 1000),
                       -1 if query.max_ms is None else int(query.max_ms * 1000),
                       {"": 0, "error": 1, "ok": 2}[query.status]]
    for _, kind, name in indexes:
        args += (kind, name)
    return keys, args


def _matches(summary: TraceSummaryJSON, query: TraceQuery, now: float) -> bool:
    """``query``'s filters on one summary (the search by trace id reads no index)."""
    lo, hi = query.range_us(now)
    start_us = round(summary["start"] * 1e6)
    edges = {(e["source"], e["target"]) for e in summary["edges"]}
    return (lo <= start_us <= hi
            and (query.min_ms is None or summary["duration_ms"] >= query.min_ms)
            and (query.max_ms is None or summary["duration_ms"] <= query.max_ms)
            and (not query.status or summary["error"] == (query.status == "error"))
            and (not query.service or query.service in summary["services"])
            and (not query.source or (query.source, query.target) in edges)
            and (not query.operation or query.operation in summary["operations"]))


def _listing(reply: list[Any]) -> TraceListJSON:
    traces = []
    for at in range(2, len(reply), 2):
        summary = parse_summary(reply[at], reply[at + 1])
        if summary is not None:
            traces.append(summary)
    return {"traces": traces, "examined": int(reply[0]), "truncated": bool(int(reply[1]))}


async def asearch_traces(client: Any, query: TraceQuery, now: float | None = None) -> TraceListJSON:
    """The traces ``query`` finds, newest first (``query`` must be valid)."""
    now = time.time() if now is None else now
    if query.trace_id:
        raw = await client.hget(SUMMARIES, bytes.fromhex(query.trace_id))
        summary = parse_summary(bytes.fromhex(query.trace_id), raw) if raw else None
        found = [summary] if summary is not None and _matches(summary, query, now) else []
        return {"traces": found, "examined": 1, "truncated": False}
    keys, args = _search_call(query, now)
    reply = await client.eval(SEARCH_SCRIPT, len(keys), *keys, *args)
    return _listing(reply)


def search_traces(client: Any, query: TraceQuery, now: float | None = None) -> TraceListJSON:
    """``asearch_traces`` for a synchronous client."""
    now = time.time() if now is None else now
    if query.trace_id:
        raw = client.hget(SUMMARIES, bytes.fromhex(query.trace_id))
        summary = parse_summary(bytes.fromhex(query.trace_id), raw) if raw else None
        found = [summary] if summary is not None and _matches(summary, query, now) else []
        return {"traces": found, "examined": 1, "truncated": False}
    keys, args = _search_call(query, now)
    return _listing(client.eval(SEARCH_SCRIPT, len(keys), *keys, *args))


def _trace(trace_id: str, summary: bytes | None, blob: bytes | None) -> TraceJSON | None:
    if summary is None or blob is None:
        return None
    parsed = parse_summary(bytes.fromhex(trace_id), summary)
    if parsed is None:
        return None
    return {**parsed, "spans": decode_spans(blob)}  # type: ignore[typeddict-item]


async def afetch_trace(client: Any, trace_id: str) -> TraceJSON | None:
    """Every stored span of the trace, nested (``collector.tracedecode``); None if not stored."""
    raw = bytes.fromhex(trace_id)
    pipe = client.pipeline(transaction=False)
    pipe.hget(SUMMARIES, raw)
    pipe.get(blob_key(raw))
    summary, blob = await pipe.execute()
    return _trace(trace_id, summary, blob)


def fetch_trace(client: Any, trace_id: str) -> TraceJSON | None:
    raw = bytes.fromhex(trace_id)
    pipe = client.pipeline(transaction=False)
    pipe.hget(SUMMARIES, raw)
    pipe.get(blob_key(raw))
    summary, blob = pipe.execute()
    return _trace(trace_id, summary, blob)
