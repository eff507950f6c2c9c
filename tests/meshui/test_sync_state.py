"""The sync state of one sidecar for one kind: xDS's rules with a grace period (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from meshui.registry.sync import Acknowledgements, SyncState, kind_sync

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TIMEOUT = timedelta(seconds=5)


def state(latest: int | None, said: Acknowledgements, *, connected: bool = True,
          after: float = 1.0, connected_at: datetime = T0 - timedelta(hours=1)) -> SyncState:
    now = T0 + timedelta(seconds=after)
    return kind_sync(latest, T0, connected, connected_at, said, now, TIMEOUT).state


def test_nothing_to_send_is_not_sent() -> None:
    assert state(None, Acknowledgements()) == SyncState.NOT_SENT


def test_acking_the_latest_is_synced_even_once_disconnected() -> None:
    said = Acknowledgements(acked=3, acked_at=T0)
    assert state(3, said) == SyncState.SYNCED
    assert state(3, said, connected=False) == SyncState.SYNCED


def test_a_disconnected_sidecar_behind_is_not_sent() -> None:
    assert state(4, Acknowledgements(acked=3), connected=False) == SyncState.NOT_SENT


def test_rejecting_the_latest_is_nacked_with_the_reason_and_the_last_good_kept() -> None:
    said = Acknowledgements(acked=3, nacked=4, nacked_at=T0, nack_reason="split.v3: unknown")
    sync = kind_sync(4, T0, True, T0, said, T0, TIMEOUT)
    assert (sync.state, sync.acked, sync.nack_reason) == (SyncState.NACKED, 3, "split.v3: unknown")


def test_a_nack_of_an_older_version_does_not_count_for_the_latest() -> None:
    assert state(5, Acknowledgements(acked=3, nacked=4)) == SyncState.PENDING


def test_unacknowledged_is_pending_within_the_timeout_then_stale() -> None:
    assert state(4, Acknowledgements(acked=3), after=4.9) == SyncState.PENDING
    stale = kind_sync(4, T0, True, T0 - timedelta(hours=1), Acknowledgements(acked=3),
                      T0 + timedelta(seconds=6), TIMEOUT)
    assert stale.state == SyncState.STALE and stale.since == T0 + TIMEOUT


def test_a_sidecar_that_connected_after_the_publish_is_timed_from_its_hello() -> None:
    late = T0 + timedelta(seconds=10)
    assert state(4, Acknowledgements(), after=12, connected_at=late) == SyncState.PENDING
    assert state(4, Acknowledgements(), after=16, connected_at=late) == SyncState.STALE
