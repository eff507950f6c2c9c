"""The control channel refuses a plaintext handshake in production settings.

A sidecar's token travels in the handshake, and every policy and endpoints set meshui
pushes follows on the same socket: over ``ws://`` anyone on the path reads the token and can
join as that service. So when meshui serves HTTPS (``MESHUI_TLS_CERT``, or a TLS proxy in
front: ``MESHUI_BEHIND_TLS_PROXY``) and ``DEBUG`` is off, a handshake that did not arrive
over TLS is answered ``403`` before its token is looked at, with a body and a log line that
say what to change (docs/security.md, "The dashboard over HTTPS").

"Over TLS" is the ASGI scope's ``scheme`` (``wss``: uvicorn ended TLS itself, or its
``--proxy-headers`` took ``X-Forwarded-Proto`` from a trusted proxy address) or, behind a
TLS proxy, ``X-Forwarded-Proto: https`` on the handshake, the header Django's
``SECURE_PROXY_SSL_HEADER`` trusts for the pages.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

logger = logging.getLogger("meshui.registry.consumers")

# The refusal's body: what a sidecar's control client shows as its last_error.
PLAINTEXT_REFUSED = (
    "meshui refuses the control channel over plaintext (ws://): connect with wss:// "
    "(the sidecar's --control URL; --control-ca names the CA of meshui's certificate)"
)
FORWARDED_PROTO = b"x-forwarded-proto"
HOST_SHOWN_MAX = 100  # of the Host header in the log line: it is the client's to choose


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def arrived_over_tls(scope: dict[str, Any], behind_tls_proxy: bool) -> bool:
    """Whether this handshake reached us over TLS, as far as meshui can tell."""
    if scope.get("scheme") == "wss":
        return True
    if not behind_tls_proxy:
        return False
    forwarded = _header(scope, FORWARDED_PROTO)
    # The left-most value, as Django reads SECURE_PROXY_SSL_HEADER: the first proxy's.
    return forwarded is not None and forwarded.split(",", 1)[0].strip().lower() in ("https", "wss")


def plaintext_refused(
    scope: dict[str, Any], *, debug: bool, https: bool, behind_tls_proxy: bool
) -> bool:
    """Refuse a plaintext handshake when meshui runs HTTPS in production settings."""
    return https and not debug and not arrived_over_tls(scope, behind_tls_proxy)


def _peer(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown peer"


def _wss_url(scope: dict[str, Any]) -> str:
    host = (_header(scope, b"host") or "meshui-host")[:HOST_SHOWN_MAX]
    return f"wss://{host}{scope.get('path', '')!s}"


async def refuse_plaintext(
    scope: dict[str, Any], send: Callable[[dict[str, Any]], Awaitable[None]]
) -> bool:
    """Answer a plaintext handshake 403 (and log it); whether it did.

    Called first in ``ControlConsumer.connect()``, which returns at once on ``True``. The
    body goes out through the ASGI ``websocket.http.response`` extension (uvicorn has it);
    a server without it gets a bare close before accept, which is a 403 too.
    """
    if not plaintext_refused(
        scope,
        debug=settings.DEBUG,
        https=getattr(settings, "MESHUI_HTTPS", False),
        behind_tls_proxy=getattr(settings, "MESHUI_BEHIND_TLS_PROXY", False),
    ):
        return False
    why = ("meshui is behind a TLS proxy (MESHUI_BEHIND_TLS_PROXY) and the handshake had no "
           "X-Forwarded-Proto: https" if settings.MESHUI_BEHIND_TLS_PROXY
           else "meshui serves HTTPS (MESHUI_TLS_CERT)")
    logger.warning("control channel: refused a plaintext (ws://) handshake from %s: %s, and "
                   "DEBUG is off; point the sidecar's --control at %s", _peer(scope), why,
                   _wss_url(scope))
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send({"type": "websocket.http.response.start", "status": 403,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
        await send({"type": "websocket.http.response.body", "body": PLAINTEXT_REFUSED.encode()})
    else:
        await send({"type": "websocket.close"})
    return True
