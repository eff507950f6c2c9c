"""meshui: the dashboard and control plane of the mesh."""

from __future__ import annotations

# Load the Celery app whenever Django starts so @shared_task binds to it (Celery's
# documented Django layout).
from meshui.celery import app as celery_app

__all__ = ["celery_app"]
