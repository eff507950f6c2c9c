from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def meshui(request: HttpRequest) -> dict[str, Any]:
    return {"meshui_public_read": settings.MESHUI_PUBLIC_READ}
