from __future__ import annotations

from django.apps import AppConfig


class AlertsConfig(AppConfig):
    """Alert rules, their states per target and the history of every state change."""

    name = "meshui.alerts"
    label = "alerts"
    verbose_name = "Alerts"
