"""Writing the live graph: counter increments batched per second, applied at most once.

Connectors add increments to a ``GraphWriter``; the Redis exporter flushes it a few times a
second. Each flush is a ``FlushBatch`` that a Lua script applies only once, so a batch
resent after a lost reply is not counted twice. The field layout is ``graphstore``'s.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from collector import seriesstore
from collector.cardinality import CardinalityLimiter
from collector.graphstore import KEY_TTL, MAX_WINDOW, SEP, key_for
from collector.records import Exemplar
from collector.validation import FIELD_LIMIT

log = logging.getLogger(__name__)


# Each flush is one batch with an id of its own (``<writer instance>:<sequence>``). The script
# below applies a batch only if it can create the batch's marker key, so a batch sent again
# after its reply was lost (timeout, cut connection) is applied at most once.
FLUSH_MARKER_PREFIX = "meshui:flush:"
# A batch counts only seconds up to the moment Redis first applied it, and a window reaches
# back at most MAX_WINDOW seconds. So once a marker of that age has expired, a late resend could
# only add to seconds no graph reads any more: the marker need not live longer.
FLUSH_MARKER_TTL = MAX_WINDOW
# KEYS[1] is the batch's marker, KEYS[2..ARGV[3]+1] the counter hashes (the graph's
# per-second hashes and the series' keys), the rest the exemplar hashes. ARGV[1] is the
# marker TTL, ARGV[2] the most a field may hold (FIELD_LIMIT), ARGV[3] the number of counter
# hashes, then for each hash in KEYS order: its TTL, its number of fields, then field,
# increment pairs (counters) or field, exemplar pairs. Returns {applied, clipped}: applied is
# 1, or 0 when the batch had been applied before; clipped counts the increments cut or
# refused so that no field passes the limit.
#
# Redis does not roll a script back when a command in it fails: the writes before the error
# stay. So no command here may fail: each HINCRBY goes through pcall, and one that Redis
# refuses (a per-second key that is not a hash, a field holding something that is not an
# integer: neither written by a collector) loses only its own increment, counted as
# clipped, while the rest of the batch is applied and marked. One foreign key can never
# stop every flush. No HINCRBY can overflow: a field holds at most FIELD_LIMIT and an
# increment is cut to FIELD_LIMIT when the batch is sealed, so the sum stays below 2^53
# (exact in Lua's doubles); a field that passes the limit is set back to it. One HINCRBY a
# field, as plain increments would cost (bench/collector_flush.py).
#
# An exemplar replaces the one in its field unless that one is an error's and the new one
# is not (its text starts with E or -; ``seriesstore.Exemplar``): the slow bucket's failed
# request stays findable however many successes follow it in the same cell.
FLUSH_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, 0}
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
local limit = tonumber(ARGV[2])
local counters = tonumber(ARGV[3]) + 1
local clipped = 0
local at = 4
for k = 2, #KEYS do
  local ttl = ARGV[at]
  local last = at + 1 + 2 * tonumber(ARGV[at + 1])
  for i = at + 2, last, 2 do
    if k <= counters then
      local value = redis.pcall('HINCRBY', KEYS[k], ARGV[i], ARGV[i + 1])
      if type(value) ~= 'number' then
        clipped = clipped + 1
      elseif value > limit then
        redis.call('HSET', KEYS[k], ARGV[i], ARGV[2])
        clipped = clipped + 1
      end
    else
      local old = redis.pcall('HGET', KEYS[k], ARGV[i])
      if type(old) ~= 'string' or string.sub(old, 1, 1) ~= 'E' or string.sub(ARGV[i + 1], 1, 1) == 'E' then
        redis.pcall('HSET', KEYS[k], ARGV[i], ARGV[i + 1])
      end
    end
  end
  redis.pcall('EXPIRE', KEYS[k], ttl)
  at = last + 1
end
return {1, clipped}
"""


@dataclass(frozen=True, slots=True)
class FlushBatch:
    """Increments sealed under one id: Redis applies them at most once, however often sent.

    ``increments`` are the graph's, by second; ``series`` the same increments filed under
    each series' own keys (``seriesstore.series_increments``), ``exemplars`` exemplar texts
    by key and field. All three land together or not at all.
    """

    id: str
    increments: Mapping[int, Mapping[str, int]]
    series: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    exemplars: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    @property
    def marker_key(self) -> str:
        return f"{FLUSH_MARKER_PREFIX}{self.id}"

    @property
    def fields(self) -> int:
        return sum(len(fields) for fields in self.increments.values())

    def script_call(self) -> tuple[list[str], list[str | int]]:
        """The ``KEYS`` and ``ARGV`` of ``FLUSH_SCRIPT`` for this batch."""
        keys = [self.marker_key]
        args: list[str | int] = [FLUSH_MARKER_TTL, FIELD_LIMIT, len(self.increments) + len(self.series)]
        counters = [(key_for(second), KEY_TTL, fields) for second, fields in self.increments.items()]
        counters += [(key, seriesstore.ttl_of(key), fields) for key, fields in self.series.items()]
        for key, ttl, counts in counters:
            keys.append(key)
            args += (ttl, len(counts))
            for name, value in counts.items():
                args += (name, value)
        for key, texts in self.exemplars.items():
            keys.append(key)
            args += (seriesstore.S10_TTL, len(texts))
            for name, text in texts.items():
                args += (name, text)
        return keys, args


class GraphWriter:
    """Accumulates counter increments per second in memory; ``aflush`` writes them.

    Increments are applied with HINCRBY, so flushes from any number of collectors add up
    exactly. Each flush seals the open increments into a ``FlushBatch`` with a new id, and
    Redis applies a batch at most once (``FLUSH_SCRIPT``), so resending one whose outcome is
    unknown is safe. The caller decides when to flush (a few times a second).

    With a ``limiter``, an update (one call of ``add_*``) that would pass a cardinality limit
    is dropped whole and counted in ``limiter.dropped``. A field never holds more than
    ``FIELD_LIMIT``; increments cut to keep it so are counted in ``clipped``.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        instance_id: str | None = None,
        limiter: CardinalityLimiter | None = None,
    ) -> None:
        self._clock = clock
        self._pending: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        # Exemplar texts by key and field (``seriesstore``), sealed with the increments.
        self._exemplars: dict[str, dict[str, str]] = defaultdict(dict)
        # Random per writer, so a restarted or second collector never reuses a batch id.
        self.instance_id = instance_id or uuid.uuid4().hex
        self._sequence = itertools.count(1)
        # The batch sent last whose reply has not come back: it may or may not be applied.
        self._unconfirmed: FlushBatch | None = None
        self._script: Any = None
        self.limiter = limiter
        self.clipped = 0

    def _update(
        self,
        services: tuple[str, ...],
        edge: tuple[str, str] | None,
        increments: dict[str, int],
        second: int | None = None,
    ) -> dict[str, int] | None:
        """Add one update's increments, if the limiter admits all of it; those it added, or None."""
        increments = {name: value for name, value in increments.items() if value}
        if not increments:
            return None
        if self.limiter is not None:
            refused = self.limiter.admit(services, edge, list(increments))
            if refused is not None:
                self.limiter.dropped[refused] += 1
                return None
        bucket = self._pending[int(self._clock()) if second is None else second]
        for name, value in increments.items():
            bucket[name] += value
        return increments

    @staticmethod
    def _stats(prefix: str, requests: int, errors: int, latency: Mapping[int, int]) -> dict[str, int]:
        fields = {prefix + "n": requests, prefix + "x": errors}
        for index, count in latency.items():
            fields[f"{prefix}h{index}"] = count
        return fields

    def add_edge(
        self,
        source: str,
        target: str,
        requests: int,
        errors: int,
        latency: Mapping[int, int],
        version: str = "",
        exemplars: Sequence[tuple[int, Exemplar]] = (),
    ) -> None:
        """Count calls from ``source`` to ``target`` as the caller saw them.

        With the ``version`` of ``target`` that answered, the same counts also go to the
        edge's per-version breakdown (``ev`` fields, the observed traffic split). That is an
        update of its own, made only once the totals are in: when the series limit refuses
        it, the edge still counts every request and only the breakdown misses them (its
        shares then add up to less than 1, as for requests with no version). Both land in
        the same second, so no window reads a version's part without its edge's total.
        ``exemplars`` (bucket index, exemplar) go with the counts that admitted them.
        """
        edge = (source, target)
        prefix = f"e{SEP}{source}{SEP}{target}{SEP}"
        second = int(self._clock())
        added = self._update(edge, edge, self._stats(prefix, requests, errors, latency), second)
        if added is None:
            return
        self._file_exemplars(prefix, second, exemplars)
        if version:
            split_prefix = f"ev{SEP}{source}{SEP}{target}{SEP}{version}{SEP}"
            if self._breakdown(prefix, split_prefix, added, second):
                self._file_exemplars(split_prefix, second, exemplars)

    def add_edge_served(
        self, source: str, target: str, requests: int, errors: int, latency: Mapping[int, int]
    ) -> None:
        """Count calls from ``source`` to ``target`` as the target's side saw them (``es``).

        The target's sidecar times a request from its arrival to its answer, the caller's
        from sending to the answer: the difference is the network and the queueing between.
        """
        edge = (source, target)
        self._update(edge, edge, self._stats(f"es{SEP}{source}{SEP}{target}{SEP}", requests, errors, latency))

    def _breakdown(self, prefix: str, breakdown: str, added: dict[str, int], second: int) -> bool:
        """File an update's fields again under a breakdown's prefix (a version, an instance).

        The totals' fields, already free of zeros, renamed: half the cost of building them
        anew (bench/RESULTS.md, Collector A/B). An update of its own for the series limit.
        """
        cut = len(prefix)
        fields = {breakdown + name[cut:]: value for name, value in added.items()}
        if self.limiter is not None:
            refused = self.limiter.admit_series(fields)
            if refused is not None:
                self.limiter.dropped[refused] += 1
                return False
        bucket = self._pending[second]
        for name, value in fields.items():
            bucket[name] += value
        return True

    def _file_exemplars(self, series: str, second: int, exemplars: Sequence[tuple[int, Exemplar]]) -> None:
        if not exemplars:
            return
        texts = self._exemplars[seriesstore.exemplar_key(series, second)]
        for bucket, exemplar in exemplars:
            name = seriesstore.exemplar_field(second, bucket)
            old = texts.get(name)
            if old is None or not old.startswith("E") or exemplar.error:
                texts[name] = seriesstore.exemplar_text(exemplar)

    def add_node(
        self,
        service: str,
        version: str,
        requests: int,
        errors: int,
        latency: Mapping[int, int],
        instance: str = "",
        exemplars: Sequence[tuple[int, Exemplar]] = (),
    ) -> None:
        """Count requests that ``service`` (at ``version``, by ``instance``) served.

        The version's (``nv``) and the instance's (``i``) parts are breakdowns, as an edge's
        versions are: refused by the series limit on their own, the totals still count.
        """
        second = int(self._clock())
        prefix = f"n{SEP}{service}{SEP}"
        fields = self._stats(prefix, requests, errors, latency)
        if version:
            fields[f"v{SEP}{service}{SEP}{version}"] = requests
        added = self._update((service,), None, fields, second)
        if added is None:
            return
        self._file_exemplars(prefix, second, exemplars)
        added = {name: value for name, value in added.items() if name.startswith(prefix)}
        for part, name in (("nv", version), ("i", instance)):
            breakdown = f"{part}{SEP}{service}{SEP}{name}{SEP}"
            if name and self._breakdown(prefix, breakdown, added, second):
                self._file_exemplars(breakdown, second, exemplars)

    def add_edge_counter(self, source: str, target: str, name: str, value: int,
                         reporter: str = "", instance: str = "") -> None:
        """Count ``value`` policy events ``name`` (an ``EdgeEvent.key``) on ``source -> target``.

        Also filed for the series of ``target`` (``rn``: events on the calls it gets) and of
        the counting sidecar's ``instance`` of ``reporter`` (``ri``), for their charts; the
        graph reads only the edge's.
        """
        fields = {f"r{SEP}{source}{SEP}{target}{SEP}{name}": value,
                  f"rn{SEP}{target}{SEP}{name}": value}
        if reporter and instance:
            fields[f"ri{SEP}{reporter}{SEP}{instance}{SEP}{name}"] = value
        self._update((source, target), (source, target), fields)

    @property
    def pending(self) -> bool:
        """Whether anything waits to be written: open increments or an unconfirmed batch."""
        return bool(self._pending) or self._unconfirmed is not None

    @property
    def pending_fields(self) -> int:
        """How many counter fields wait to be written (to bound memory while Redis is down)."""
        open_fields = sum(len(fields) for fields in self._pending.values())
        return open_fields + (self._unconfirmed.fields if self._unconfirmed else 0)

    @property
    def unconfirmed_batch(self) -> FlushBatch | None:
        """The batch whose write failed or is in flight; the next flush sends it again."""
        return self._unconfirmed

    def take(self) -> dict[int, dict[str, int]]:
        """Hand over the open graph increments and start afresh (an unconfirmed batch stays)."""
        pending, self._pending = self._pending, defaultdict(lambda: defaultdict(int))
        return {second: dict(fields) for second, fields in pending.items()}

    def take_exemplars(self) -> dict[str, dict[str, str]]:
        """Hand over the open exemplars (key -> field -> text) and start afresh."""
        exemplars, self._exemplars = self._exemplars, defaultdict(dict)
        return dict(exemplars)

    def _seal(self) -> FlushBatch | None:
        increments, exemplars = self.take(), self.take_exemplars()
        if not increments:
            return None
        for fields in increments.values():
            for name, value in fields.items():
                if value > FIELD_LIMIT:  # the script would cut it anyway; keep ARGV exact
                    fields[name] = FIELD_LIMIT
                    self.clipped += 1
        return FlushBatch(f"{self.instance_id}:{next(self._sequence)}", increments,
                          seriesstore.series_increments(increments), exemplars)

    @staticmethod
    def queue_writes(pipe: Any, increments: Mapping[int, Mapping[str, int]]) -> None:
        """Queue plain HINCRBY/EXPIRE writes on ``pipe`` (for seeding a graph; not idempotent)."""
        keyed = [(key_for(second), KEY_TTL, fields) for second, fields in increments.items()]
        keyed += [(key, seriesstore.ttl_of(key), fields)
                  for key, fields in seriesstore.series_increments(increments).items()]
        for key, ttl, fields in keyed:
            for name, value in fields.items():
                pipe.hincrby(key, name, value)
            pipe.expire(key, ttl)

    async def aflush(self, redis_client: Any) -> int:
        """Write the unconfirmed batch, then the open increments as a new one; returns fields written.

        When a write fails, or is cancelled, its batch stays unconfirmed and the next flush
        sends it again under the same id: if Redis applied it and only the reply was lost, the
        marker makes the resend a no-op. Increments added meanwhile never join that batch
        (it may already be applied); they are sealed into the next one. Use a client without
        automatic retries all the same: the caller's flush loop is the one retry policy.
        """
        written = 0
        if self._unconfirmed is not None:
            written += await self._send(redis_client, self._unconfirmed)
        batch = self._seal()
        if batch is not None:
            written += await self._send(redis_client, batch)
        return written

    async def _send(self, redis_client: Any, batch: FlushBatch) -> int:
        # Unconfirmed from before the request until its reply: a failure or a cancellation
        # anywhere in between leaves it to be sent again.
        self._unconfirmed = batch
        if self._script is None:
            self._script = redis_client.register_script(FLUSH_SCRIPT)
        keys, args = batch.script_call()
        # EVALSHA; on NOSCRIPT redis-py loads the script and sends EVALSHA again, which is
        # safe: NOSCRIPT means nothing ran.
        applied, clipped = await self._script(keys=keys, args=args, client=redis_client)
        self._unconfirmed = None
        self.clipped += int(clipped)
        if not applied:
            log.info("graph batch %s was applied before (its reply was lost); not applied again", batch.id)
        return batch.fields
