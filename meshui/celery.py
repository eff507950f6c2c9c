"""The Celery application: broker is REDIS_URL, settings under the CELERY_ namespace."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshui.settings")

app = Celery("meshui")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
