"""The forwarder's sending queue: bounded by bytes and by exports, taken in merged batches.

Pure bookkeeping, no I/O (collector/forwarder.py does the sending). One FIFO per signal, so
a burst of metrics never holds traces back: ``take`` alternates between signals.

Merging: consecutive protobuf exports of one signal are sent as one request by joining their
bytes. That is exact, not a re-encode: a protobuf message's serialization followed by
another's parses as one message whose repeated fields hold both lists
(https://protobuf.dev/programming-guides/encoding/#last-one-wins, "repeated fields ...
concatenated"), and an ``Export*ServiceRequest`` has nothing but its repeated
``resource_spans`` / ``resource_metrics``. So one sender task keeps up with a far-away
backend (one round trip per batch, not per export). OTLP/JSON cannot be joined; each JSON
export is a request of its own.

Bytes and exports stay counted until a batch taken has been *released* (delivered, rejected
or dropped): what is in flight or waiting for a retry is held in memory too.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

SIGNALS = ("traces", "metrics")
PROTOBUF = "application/x-protobuf"
JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Export:
    """One accepted export as received: its (decompressed) body, encoding and item count."""

    signal: str
    payload: bytes
    content_type: str  # PROTOBUF or JSON
    items: int  # spans or data points


@dataclass(slots=True)
class Batch:
    """Exports of one signal and encoding, sent as one request."""

    signal: str
    content_type: str
    exports: list[Export] = field(default_factory=list)

    @property
    def items(self) -> int:
        return sum(export.items for export in self.exports)

    @property
    def size(self) -> int:
        return sum(len(export.payload) for export in self.exports)

    def body(self) -> bytes:
        if len(self.exports) == 1:
            return self.exports[0].payload
        return b"".join(export.payload for export in self.exports)


class ForwardQueue:
    """Exports waiting to be forwarded, at most ``max_bytes`` of payload and ``max_exports``."""

    def __init__(self, max_bytes: int, max_exports: int) -> None:
        self.max_bytes = max_bytes
        self.max_exports = max_exports
        self._waiting: dict[str, deque[Export]] = {signal: deque() for signal in SIGNALS}
        self._next = 0  # index into SIGNALS of the signal ``take`` looks at first
        self.bytes = 0  # waiting and taken-not-released
        self.exports = 0

    def offer(self, export: Export) -> bool:
        """Queue ``export``; False (nothing queued) when it does not fit."""
        if self.exports + 1 > self.max_exports or self.bytes + len(export.payload) > self.max_bytes:
            return False
        self._waiting[export.signal].append(export)
        self.bytes += len(export.payload)
        self.exports += 1
        return True

    def waiting(self) -> int:
        """Exports not taken yet."""
        return sum(len(waiting) for waiting in self._waiting.values())

    def take(self, max_request_bytes: int) -> Batch | None:
        """The next batch to send (None when nothing waits); release it once it is done with.

        A protobuf export is joined by the ones queued after it of the same signal while the
        batch stays within ``max_request_bytes``; an export larger than that goes alone.
        """
        for offset in range(len(SIGNALS)):
            signal = SIGNALS[(self._next + offset) % len(SIGNALS)]
            waiting = self._waiting[signal]
            if not waiting:
                continue
            self._next = (self._next + offset + 1) % len(SIGNALS)
            first = waiting.popleft()
            batch = Batch(signal, first.content_type, [first])
            if first.content_type == PROTOBUF:
                size = len(first.payload)
                while (
                    waiting
                    and waiting[0].content_type == PROTOBUF
                    and size + len(waiting[0].payload) <= max_request_bytes
                ):
                    export = waiting.popleft()
                    size += len(export.payload)
                    batch.exports.append(export)
            return batch
        return None

    def release(self, batch: Batch) -> None:
        """``batch`` is done with (sent, rejected or dropped): its room is free again."""
        self.bytes -= batch.size
        self.exports -= len(batch.exports)

    def take_all(self) -> list[Export]:
        """Empty the queue of what waits (at shutdown, to count it); frees its room."""
        left: list[Export] = []
        for waiting in self._waiting.values():
            left.extend(waiting)
            waiting.clear()
        for export in left:
            self.bytes -= len(export.payload)
            self.exports -= 1
        return left
