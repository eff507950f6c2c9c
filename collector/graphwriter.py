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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from collector.cardinality import CardinalityLimiter
from collector.graphstore import KEY_TTL, MAX_WINDOW, SEP, key_for
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
# KEYS[1] is the batch's marker, KEYS[2..] the per-second hashes. ARGV[1] is the marker TTL,
# ARGV[2] the hashes' TTL, ARGV[3] the most a field may hold (FIELD_LIMIT), then for each
# hash in KEYS order: its number of fields, then field, increment pairs. Returns
# {applied, clipped}: applied is 1, or 0 when the batch had been applied before; clipped
# counts the increments cut or refused so that no field passes the limit.
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
FLUSH_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, 0}
end
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
local limit = tonumber(ARGV[3])
local clipped = 0
local at = 4
for k = 2, #KEYS do
  local last = at + 2 * tonumber(ARGV[at])
  for i = at + 1, last, 2 do
    local value = redis.pcall('HINCRBY', KEYS[k], ARGV[i], ARGV[i + 1])
    if type(value) ~= 'number' then
      clipped = clipped + 1
    elseif value > limit then
      redis.call('HSET', KEYS[k], ARGV[i], ARGV[3])
      clipped = clipped + 1
    end
  end
  redis.pcall('EXPIRE', KEYS[k], ARGV[2])
  at = last + 1
end
return {1, clipped}
"""


@dataclass(frozen=True, slots=True)
class FlushBatch:
    """Increments sealed under one id: Redis applies them at most once, however often sent."""

    id: str
    increments: Mapping[int, Mapping[str, int]]

    @property
    def marker_key(self) -> str:
        return f"{FLUSH_MARKER_PREFIX}{self.id}"

    @property
    def fields(self) -> int:
        return sum(len(fields) for fields in self.increments.values())

    def script_call(self) -> tuple[list[str], list[str | int]]:
        """The ``KEYS`` and ``ARGV`` of ``FLUSH_SCRIPT`` for this batch."""
        keys = [self.marker_key]
        args: list[str | int] = [FLUSH_MARKER_TTL, KEY_TTL, FIELD_LIMIT]
        for second, fields in self.increments.items():
            keys.append(key_for(second))
            args.append(len(fields))
            for name, value in fields.items():
                args += (name, value)
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
    ) -> None:
        """Count calls from ``source`` to ``target`` as the caller saw them.

        With the ``version`` of ``target`` that answered, the same counts also go to the
        edge's per-version breakdown (``ev`` fields, the observed traffic split). That is an
        update of its own, made only once the totals are in: when the series limit refuses
        it, the edge still counts every request and only the breakdown misses them (its
        shares then add up to less than 1, as for requests with no version). Both land in
        the same second, so no window reads a version's part without its edge's total.
        """
        edge = (source, target)
        prefix = f"e{SEP}{source}{SEP}{target}{SEP}"
        second = int(self._clock())
        added = self._update(edge, edge, self._stats(prefix, requests, errors, latency), second)
        if added is None or not version:
            return
        # The totals' fields, already free of zeros, renamed: half the cost of building
        # them anew (bench/RESULTS.md, Collector A/B).
        split_prefix, cut = f"ev{SEP}{source}{SEP}{target}{SEP}{version}{SEP}", len(prefix)
        split = {split_prefix + name[cut:]: value for name, value in added.items()}
        if self.limiter is not None:
            refused = self.limiter.admit_series(split)
            if refused is not None:
                self.limiter.dropped[refused] += 1
                return
        bucket = self._pending[second]
        for name, value in split.items():
            bucket[name] += value

    def add_node(
        self, service: str, version: str, requests: int, errors: int, latency: Mapping[int, int]
    ) -> None:
        """Count requests that ``service`` (at ``version``) served."""
        fields = self._stats(f"n{SEP}{service}{SEP}", requests, errors, latency)
        if version:
            fields[f"v{SEP}{service}{SEP}{version}"] = requests
        self._update((service,), None, fields)

    def add_edge_counter(self, source: str, target: str, name: str, value: int) -> None:
        """Count ``value`` policy events ``name`` (an ``EdgeEvent.key``) on ``source -> target``."""
        self._update((source, target), (source, target), {f"r{SEP}{source}{SEP}{target}{SEP}{name}": value})

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
        """Hand over the open increments and start afresh (an unconfirmed batch stays)."""
        pending, self._pending = self._pending, defaultdict(lambda: defaultdict(int))
        return {second: dict(fields) for second, fields in pending.items()}

    def _seal(self) -> FlushBatch | None:
        increments = self.take()
        if not increments:
            return None
        for fields in increments.values():
            for name, value in fields.items():
                if value > FIELD_LIMIT:  # the script would cut it anyway; keep ARGV exact
                    fields[name] = FIELD_LIMIT
                    self.clipped += 1
        return FlushBatch(f"{self.instance_id}:{next(self._sequence)}", increments)

    @staticmethod
    def queue_writes(pipe: Any, increments: Mapping[int, Mapping[str, int]]) -> None:
        """Queue plain HINCRBY/EXPIRE writes on ``pipe`` (for seeding a graph; not idempotent)."""
        for second, fields in increments.items():
            key = key_for(second)
            for name, value in fields.items():
                pipe.hincrby(key, name, value)
            pipe.expire(key, KEY_TTL)

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
