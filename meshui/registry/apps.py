from __future__ import annotations

from django.apps import AppConfig


class RegistryConfig(AppConfig):
    """Services, their sidecar instances and the control channel that keeps them current."""

    name = "meshui.registry"
    label = "registry"
    verbose_name = "Registry"

    def ready(self) -> None:
        # meshui.celery: load meshui's Celery app whenever Django starts, so the
        # @shared_task of every app's tasks.py binds to it (what Celery's Django layout does
        # in the project's __init__; here, so that a plain ``import meshui`` loads no Celery).
        # checks: registers the registry's system checks.
        import meshui.celery  # noqa: F401
        from meshui.registry import checks  # noqa: F401
