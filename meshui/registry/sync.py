"""Where a sidecar stands with the latest state meshui sent it, per kind (xDS's sync states).

Pure: the latest version, when it was sent, what the sidecar last acknowledged or rejected,
and a clock in; a ``KindSync`` out. The rules are ``istioctl proxy-status``'s, plus a grace
period before "not acknowledged" is called STALE (docs/control-channel.md, "Sync state"):

- ``NOT_SENT``: there is nothing to send yet, or the sidecar is disconnected and never
  acknowledged the latest;
- ``SYNCED``: it acknowledged the latest (a disconnected sidecar that did still runs it);
- ``NACKED``: it rejected the latest, with its reason; its last good state stays in force;
- ``PENDING``: sent, the acknowledgement not in yet, within the timeout;
- ``STALE``: sent, not acknowledged within the timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class SyncState(StrEnum):
    SYNCED = "SYNCED"
    PENDING = "PENDING"
    STALE = "STALE"
    NACKED = "NACKED"
    NOT_SENT = "NOT_SENT"


@dataclass(frozen=True, slots=True)
class Acknowledgements:
    """What one sidecar said about one kind: its last ACK and its last NACK."""

    acked: int | None = None
    acked_at: datetime | None = None
    nacked: int | None = None
    nacked_at: datetime | None = None
    nack_reason: str = ""


@dataclass(frozen=True, slots=True)
class KindSync:
    state: SyncState
    sent: int | None  # the version meshui sent this sidecar (the latest, once connected)
    acked: int | None  # the last version it acknowledged (what it runs)
    nack_reason: str | None  # why it rejected the latest (NACKED only)
    since: datetime | None  # when the state began


def kind_sync(latest: int | None, published_at: datetime | None, connected: bool,
              connected_at: datetime | None, said: Acknowledgements, now: datetime,
              timeout: timedelta) -> KindSync:
    """The sync state of one sidecar for one kind (config or endpoints)."""
    if latest is None:
        return KindSync(SyncState.NOT_SENT, None, said.acked, None, None)
    if said.acked == latest:
        return KindSync(SyncState.SYNCED, latest, said.acked, None, said.acked_at)
    if not connected:
        return KindSync(SyncState.NOT_SENT, None, said.acked, None, None)
    if said.nacked == latest:
        return KindSync(SyncState.NACKED, latest, said.acked, said.nack_reason, said.nacked_at)
    # It got the latest when it was published, or right after its hello if that came later.
    sent_at = max((t for t in (published_at, connected_at) if t is not None), default=now)
    if now - sent_at > timeout:
        return KindSync(SyncState.STALE, latest, said.acked, None, sent_at + timeout)
    return KindSync(SyncState.PENDING, latest, said.acked, None, sent_at)
