"""Recent traces in Redis: the layout, and the script that writes them within a budget.

Collectors write through ``collector.trace_exporter`` (this module's ``WRITE_SCRIPT``, one
batch of traces a call, applied at most once); the web app reads through
``collector.tracesearch``. Keys (``<id>`` is the trace id's 16 raw bytes; docs/collector.md,
"Trace store"):

    meshui:traces:t:<id>        string  the trace's spans: records of ``tracesummary.pack_record``
    meshui:traces:sum           hash    <id> -> summary (``SUMMARY_FORMAT`` + names JSON)
    meshui:traces:i:all         zset    every trace, scored by start (epoch µs)
    meshui:traces:i:kept        zset    the kept tier: errors, slow calls, meshui.keep
    meshui:traces:i:common      zset    the rest: evicted first
    meshui:traces:i:err         zset    traces with an error
    meshui:traces:i:s:<service> zset    traces with a span of the service
    meshui:traces:i:e:<src>␟<dst> zset  traces with a call on the edge
    meshui:traces:i:o:<op>      zset    traces with a SERVER or root span of the operation
    meshui:traces:bytes         string  the bytes the store holds, as accounted (below)
    meshui:traces:flush:<batch> string  marker: the batch was applied (at most once)

**Budget.** Each trace is accounted at what it costs Redis: its blob (plus allocator slack),
its summary, and a fixed cost per key and per index entry, measured with ``MEMORY USAGE``
on Valkey 9 (``ENTRY_BYTES``, ``TRACE_BYTES``; bench/trace_search.py checks the accounting
against ``INFO memory``). After every batch, while the total passes ``budget``, the oldest
trace of the common tier is removed whole, then, when the common tier is empty, the oldest
kept one; the script returns what it removed, which the collector counts. Traces whose start
is more than ``ttl`` old are removed the same way (expired) at each write, and every key
also carries ``EXPIRE ttl + 120 s`` so that the store empties itself when no collector runs.

The script reads and writes keys it computes (index keys named after services): the trace
store needs a single Redis, not Redis Cluster.
"""

from __future__ import annotations

from typing import Any

import orjson

from collector.tracesummary import MAX_EDGES, MAX_OPERATIONS, MAX_SERVICES, TraceChunk

PREFIX = "meshui:traces:"
SUMMARIES = PREFIX + "sum"
ALL = PREFIX + "i:all"
KEPT = PREFIX + "i:kept"
COMMON = PREFIX + "i:common"
ERRORS = PREFIX + "i:err"
BYTES = PREFIX + "bytes"
FLUSH_MARKER_PREFIX = PREFIX + "flush:"
FLUSH_MARKER_TTL = 3600
# Keys outlive the traces' TTL a little, so a reader never meets a summary without spans.
KEY_GRACE_S = 120

# What a trace costs Redis beyond its blob and summary bytes (MEMORY USAGE on Valkey 9,
# bench/trace_search.py): its blob key (key, value object, expiry entry) and each entry it
# has in a sorted set or the summary hash (dict entry, skiplist node, the 16-byte member).
TRACE_BYTES = 160
ENTRY_BYTES = 112
# Allocator size classes round a string up by at most 25% (jemalloc: 4 classes a doubling).
BLOB_SLACK = 1.25


def blob_key(trace_id: bytes) -> bytes:
    return PREFIX.encode() + b"t:" + trace_id


def service_index(service: str) -> bytes:
    return f"{PREFIX}i:s:{service}".encode()


def edge_index(edge: str) -> bytes:
    return f"{PREFIX}i:e:{edge}".encode()


def operation_index(operation: str) -> bytes:
    return f"{PREFIX}i:o:{operation}".encode()


# A summary: "<start µs> <duration µs> <longest span µs> <error 0|1> <kept 0|1> <spans>
# <bytes accounted> <has root 0|1>\n" then the JSON array [services, edges, operations,
# root service, root operation]. The numbers come first so the search script filters on
# them without decoding JSON (orjson and cjson escape every control character, so the
# newline cannot occur inside the JSON).
SUMMARY_PATTERN = r"^(%d+) (%d+) (%d+) (%d) (%d) (%d+) (%d+) (%d)\n(.*)$"

LUA_COMMON = f"""
local P = '{PREFIX}'
local SUM, ALL, KEPT, COMMON = P..'sum', P..'i:all', P..'i:kept', P..'i:common'
local ERR, BYTES = P..'i:err', P..'bytes'
local function parse(s)
  local start, dur, mx, err, kept, spans, bytes, root, names = string.match(s, '{SUMMARY_PATTERN}')
  if not start then return nil end
  return {{start=tonumber(start), dur=tonumber(dur), mx=tonumber(mx), err=tonumber(err),
          kept=tonumber(kept), spans=tonumber(spans), bytes=tonumber(bytes), root=tonumber(root),
          names=names}}
end
local function decode(names)
  local ok, value = pcall(cjson.decode, names)
  if not ok or type(value) ~= 'table' then return {{{{}}, {{}}, {{}}, '', ''}} end
  for i = 1, 3 do if type(value[i]) ~= 'table' then value[i] = {{}} end end
  return value
end
"""

# KEYS[1] is the batch's marker. ARGV: marker TTL, now (µs), TTL (µs), budget (bytes), most
# spans a trace may hold, most expired traces to remove, then 10 values per trace: id,
# start µs, duration µs, has root, longest µs, error, kept, spans, names JSON, blob.
# Returns {applied, stored traces, stored spans, of which kept (by this batch), evicted
# traces, evicted spans, expired
# traces, expired spans, too-large traces, too-large spans, bytes accounted after}.
WRITE_SCRIPT = LUA_COMMON + f"""
if redis.call('EXISTS', KEYS[1]) == 1 then return {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}} end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
local now, ttl, budget = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local max_spans, sweep = tonumber(ARGV[5]), tonumber(ARGV[6])
local keep_s = math.floor(ttl / 1000000) + {KEY_GRACE_S}
local total = tonumber(redis.call('GET', BYTES) or '0')
local caps = {{{MAX_SERVICES}, {MAX_EDGES}, {MAX_OPERATIONS}}}
local prefixes = {{P..'i:s:', P..'i:e:', P..'i:o:'}}

local function remove(id)
  local s = redis.call('HGET', SUM, id)
  redis.call('ZREM', ALL, id)
  redis.call('ZREM', KEPT, id)
  redis.call('ZREM', COMMON, id)
  redis.call('ZREM', ERR, id)
  redis.call('DEL', P..'t:'..id)
  if not s then return 0 end
  redis.call('HDEL', SUM, id)
  local h = parse(s)
  if not h then return 0 end
  local names = decode(h.names)
  for k = 1, 3 do
    for _, name in ipairs(names[k]) do redis.call('ZREM', prefixes[k]..name, id) end
  end
  total = total - h.bytes
  return h.spans
end

local expired_t, expired_s = 0, 0
local cutoff = '(' .. string.format('%.0f', now - ttl)
local old = redis.call('ZRANGEBYSCORE', ALL, '-inf', cutoff, 'LIMIT', 0, sweep)
for _, id in ipairs(old) do
  expired_s = expired_s + remove(id)
  expired_t = expired_t + 1
end

local stored_t, stored_s, kept_t, large_t, large_s = 0, 0, 0, 0, 0
for at = 7, #ARGV, 10 do
  local id = ARGV[at]
  local start, dur = tonumber(ARGV[at+1]), tonumber(ARGV[at+2])
  local root, mx = tonumber(ARGV[at+3]), tonumber(ARGV[at+4])
  local err, kept, spans = tonumber(ARGV[at+5]), tonumber(ARGV[at+6]), tonumber(ARGV[at+7])
  local names_json, blob = ARGV[at+8], ARGV[at+9]
  local key = P..'t:'..id
  local previous = redis.call('HGET', SUM, id)
  local h = previous and parse(previous)
  local ok = true
  local prev_bytes = 0
  if h then
    if h.spans + spans > max_spans then
      ok = false
    else
      -- A later part of a trace already stored: merge the summaries, extend the spans.
      local names, new = decode(h.names), decode(names_json)
      for k = 1, 3 do
        local seen = {{}}
        for _, name in ipairs(names[k]) do seen[name] = true end
        for _, name in ipairs(new[k]) do
          if not seen[name] and #names[k] < caps[k] then
            names[k][#names[k] + 1] = name
            seen[name] = true
          end
        end
      end
      if h.root == 1 then
        dur = h.dur
        new[4], new[5] = names[4], names[5]
      elseif root ~= 1 then
        dur = math.max(h.mx, mx)
      end
      names[4], names[5] = new[4], new[5]
      names_json = cjson.encode(names)
      if h.start < start then start = h.start end
      if h.mx > mx then mx = h.mx end
      if h.err > err then err = h.err end
      if h.kept > kept then kept = h.kept end
      if h.root > root then root = h.root end
      spans = spans + h.spans
      prev_bytes = h.bytes
      if kept == 1 and h.kept == 0 then redis.call('ZREM', COMMON, id) end
      -- GET then SET, not APPEND: APPEND leaves up to twice the string allocated.
      blob = (redis.call('GET', key) or '') .. blob
    end
  elseif spans > max_spans then
    ok = false
  end
  if not ok then
    large_t = large_t + 1
    large_s = large_s + tonumber(ARGV[at+7])
  else
    local names = decode(names_json)
    local entries = 4 + err + #names[1] + #names[2] + #names[3]
    local bytes = math.floor(#blob * {BLOB_SLACK}) + #names_json + 48
      + {TRACE_BYTES} + {ENTRY_BYTES} * entries
    redis.call('SET', key, blob, 'EX', keep_s)
    local head = string.format('%.0f %.0f %.0f %d %d %d %.0f %d\\n',
      start, dur, mx, err, kept, spans, bytes, root)
    redis.call('HSET', SUM, id, head .. names_json)
    redis.call('ZADD', ALL, start, id)
    redis.call('ZADD', kept == 1 and KEPT or COMMON, start, id)
    if err == 1 then redis.call('ZADD', ERR, start, id) end
    for k = 1, 3 do
      for _, name in ipairs(names[k]) do
        local index = prefixes[k]..name
        redis.call('ZADD', index, start, id)
        redis.call('EXPIRE', index, keep_s)
      end
    end
    total = total + bytes - prev_bytes
    stored_t = stored_t + 1
    kept_t = kept_t + tonumber(ARGV[at+6])
    stored_s = stored_s + tonumber(ARGV[at+7])
  end
end

local evicted_t, evicted_s = 0, 0
while total > budget do
  local ids = redis.call('ZRANGE', COMMON, 0, 0)
  if #ids == 0 then ids = redis.call('ZRANGE', KEPT, 0, 0) end
  if #ids == 0 then break end
  evicted_s = evicted_s + remove(ids[1])
  evicted_t = evicted_t + 1
end
if total < 0 then total = 0 end
redis.call('SET', BYTES, string.format('%.0f', total), 'EX', keep_s)
for _, k in ipairs({{SUM, ALL, KEPT, COMMON, ERR}}) do redis.call('EXPIRE', k, keep_s) end
return {{1, stored_t, stored_s, kept_t, evicted_t, evicted_s, expired_t, expired_s, large_t, large_s,
        string.format('%.0f', total)}}
"""


def filed_start_us(chunk: TraceChunk, now_us: int, ttl_us: int) -> int:
    """Where the trace is filed: its start, or its arrival when the start is implausible.

    Span times come from the sender's clock: a start more than the TTL in the past, or more
    than a minute ahead, would be swept at once or never, and would sort first in every
    search. Such a trace is filed (and searched) under the time it arrived.
    """
    if now_us - ttl_us < chunk.start_us <= now_us + 60_000_000:
        return chunk.start_us
    return now_us


def write_args(chunks: list[TraceChunk], now_us: int, ttl_us: int) -> list[Any]:
    """The per-trace part of ``WRITE_SCRIPT``'s ARGV for ``chunks``."""
    args: list[Any] = []
    for chunk in chunks:
        names = orjson.dumps([chunk.services, chunk.edges, chunk.operations,
                              chunk.root_service, chunk.root_operation])
        args += (chunk.trace_id, filed_start_us(chunk, now_us, ttl_us), chunk.duration_us,
                 int(chunk.has_root), chunk.max_us, int(chunk.error), int(chunk.kept),
                 chunk.span_count, names, chunk.blob)
    return args
