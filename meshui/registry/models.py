"""The registry: services and the sidecar instances that serve them."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from meshui.registry.sync import Acknowledgements, KindSync, SyncState, kind_sync

__all__ = ["Instance", "Service", "SyncState", "stale_after", "sync_timeout"]


def stale_after() -> timedelta:
    """How long an instance stays live without a heartbeat (3 intervals, as xDS does)."""
    return timedelta(seconds=3 * settings.MESHUI_HEARTBEAT_INTERVAL)


def sync_timeout() -> timedelta:
    """How long a sent state may go unacknowledged before the sidecar shows STALE."""
    return timedelta(seconds=settings.MESHUI_SYNC_TIMEOUT)


class Service(models.Model):
    name = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class InstanceQuerySet(models.QuerySet["Instance"]):
    def live(self, now: datetime | None = None) -> InstanceQuerySet:
        """Instances whose control connection is open and whose heartbeat is recent."""
        now = now or timezone.now()
        return self.filter(connected=True, last_seen__gte=now - stale_after())

    def for_endpoints(self, now: datetime | None = None) -> InstanceQuerySet:
        """What the ``endpoints`` message lists: live instances, by service then id."""
        return self.live(now).select_related("service").order_by("service__name", "proxy_id")

    def overdue(self, now: datetime | None = None) -> InstanceQuerySet:
        """Connected instances the stale sweep must mark disconnected."""
        now = now or timezone.now()
        return self.filter(connected=True, last_seen__lt=now - stale_after())

    def for_listing(self) -> InstanceQuerySet:
        """The /api/v1/instances order: service, then proxy id."""
        return self.select_related("service").order_by("service__name", "proxy_id")


class Instance(models.Model):
    proxy_id = models.CharField(max_length=200, unique=True)
    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="instances")
    version = models.CharField(max_length=100, blank=True, default="")
    address = models.CharField(max_length=255, help_text="host:port other sidecars dial")
    admin_address = models.CharField(max_length=255, blank=True, default="")
    pid = models.IntegerField(null=True, blank=True)
    connected = models.BooleanField(default=False)
    connected_at = models.DateTimeField(null=True, blank=True)
    # The Channels channel name of the control connection that owns this row (unique per
    # connection across ASGI processes). Only that connection may update or evict the row,
    # so a closing old socket never touches a row a newer connection took over (issue 6).
    connection = models.CharField(max_length=200, blank=True, default="")
    last_seen = models.DateTimeField(null=True, blank=True)
    # What the sidecar said about each kind of state it was sent (registry/sync.py).
    endpoints_acked = models.BigIntegerField(
        null=True, blank=True, help_text="the last endpoints version the sidecar acknowledged"
    )
    endpoints_acked_at = models.DateTimeField(null=True, blank=True)
    endpoints_nacked = models.BigIntegerField(null=True, blank=True)
    endpoints_nacked_at = models.DateTimeField(null=True, blank=True)
    last_nack_reason = models.TextField(blank=True, default="")  # of the endpoints NACK
    config_acked = models.BigIntegerField(
        null=True, blank=True, help_text="the last policy revision the sidecar acknowledged"
    )
    config_acked_at = models.DateTimeField(null=True, blank=True)
    config_nacked = models.BigIntegerField(null=True, blank=True)
    config_nacked_at = models.DateTimeField(null=True, blank=True)
    config_nack_reason = models.TextField(blank=True, default="")

    objects = InstanceQuerySet.as_manager()

    class Meta:
        ordering = ["service__name", "proxy_id"]

    def __str__(self) -> str:
        return f"{self.proxy_id} ({self.service_id})"

    def endpoints_sync(self, latest: int | None, published_at: datetime | None,
                       now: datetime | None = None) -> KindSync:
        """Where this sidecar stands with endpoints version ``latest``."""
        said = Acknowledgements(self.endpoints_acked, self.endpoints_acked_at,
                                self.endpoints_nacked, self.endpoints_nacked_at,
                                self.last_nack_reason)
        return kind_sync(latest, published_at, self.connected, self.connected_at, said,
                         now or timezone.now(), sync_timeout())

    def config_sync(self, latest: int | None, published_at: datetime | None,
                    now: datetime | None = None) -> KindSync:
        """Where this sidecar stands with policy revision ``latest``."""
        said = Acknowledgements(self.config_acked, self.config_acked_at, self.config_nacked,
                                self.config_nacked_at, self.config_nack_reason)
        return kind_sync(latest, published_at, self.connected, self.connected_at, said,
                         now or timezone.now(), sync_timeout())
