from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def read_access(request: HttpRequest) -> dict[str, Any]:
    """Whether pages are open to anonymous readers (the header then says "public read-only")."""
    return {"meshui_public_read": settings.MESHUI_PUBLIC_READ}
