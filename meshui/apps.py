from __future__ import annotations

from django.apps import AppConfig


class MeshuiConfig(AppConfig):
    name = "meshui"
    verbose_name = "meshui"

    def ready(self) -> None:
        from meshui import checks  # noqa: F401  (registers the system checks)
