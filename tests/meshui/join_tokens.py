"""Join tokens for tests: real ``JoinToken`` rows, with a token text a test can predict.

``join_token("catalog")`` is the token a catalog sidecar joins with (the same text each
time within a test, so helpers need not pass it around); ``name`` makes another one for the
same service, and ``fields`` set the row's columns (``expires_at``, ``revoked_at``). Usable
from sync tests and from async ones (there the row is written from a worker thread, as
database_sync_to_async would).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from meshui.identity.models import JoinToken, token_digest


def _ensure(token: str, service: str, fields: dict[str, Any], in_thread: bool) -> None:
    try:
        JoinToken.objects.get_or_create(token_hash=token_digest(token), defaults={
            "service": service, "prefix": token[:12], "created_by_name": "tests",
            "expires_at": timezone.now() + timedelta(days=1), **fields})
    finally:
        if in_thread:
            connection.close()


def join_token(service: str, name: str = "", **fields: Any) -> str:
    """The token text of a join token for ``service`` (the row is made if it is not there)."""
    token = f"mjt_test-{service}" + (f"-{name}" if name else "")
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        _ensure(token, service, fields, in_thread=False)
        return token
    with ThreadPoolExecutor(1) as pool:  # the ORM refuses to run inside an event loop
        pool.submit(_ensure, token, service, fields, True).result()
    return token
