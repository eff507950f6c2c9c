"""The registry in Django's admin: services and their sidecar instances, read-mostly.

Rows are written by the control channel (a sidecar's hello, heartbeats, acks); the admin
shows them and can delete a service or an instance that is gone for good.
"""

from __future__ import annotations

from django.contrib import admin

from meshui.registry.models import Instance, Service


class InstanceInline(admin.TabularInline):
    model = Instance
    fields = ("proxy_id", "version", "address", "connected", "last_seen")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ("name", "created_at")
    search_fields = ("name",)
    readonly_fields = ("created_at",)
    inlines = [InstanceInline]


@admin.register(Instance)
class InstanceAdmin(admin.ModelAdmin):
    list_display = ("proxy_id", "service", "version", "address", "connected", "last_seen",
                    "endpoints_acked", "last_nack_reason")
    list_filter = ("connected", "service")
    search_fields = ("proxy_id", "address", "service__name")
    # The control channel owns these rows: editing one by hand would fight the sidecar.
    readonly_fields = ("proxy_id", "service", "version", "address", "admin_address", "pid",
                       "connected", "connected_at", "connection", "last_seen",
                       "endpoints_acked", "last_nack_reason")
