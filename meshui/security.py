"""Browser security headers on every response: Content-Security-Policy, Permissions-Policy.

The pages run no inline script (no ``<script>`` bodies, no ``on*=`` attributes): every
script is a static file, and data reaches it through ``json_script`` blocks, which are JSON,
not script. ``style-src`` allows inline styles because Plotly.js sets ``style`` attributes
and injects a ``<style>`` element at run time; the browser test
(tests/meshui/test_front_doors_browser.py) loads every page, the API docs page among them,
and fails on any CSP violation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import sync_and_async_middleware

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self'",
    # 'self' also matches ws:// and wss:// to this host (CSP Level 3): the live-graph socket.
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
# Nothing here uses a device or a payment API: deny them to any script that gets in.
PERMISSIONS_POLICY = ", ".join(f"{feature}=()" for feature in (
    "accelerometer", "autoplay", "camera", "display-capture", "geolocation", "gyroscope",
    "magnetometer", "microphone", "midi", "payment", "usb",
))

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Permissions-Policy": PERMISSIONS_POLICY,
}


def _add_headers(response: HttpResponse) -> HttpResponse:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@sync_and_async_middleware
def SecurityHeadersMiddleware(get_response: Callable[[HttpRequest], Any]) -> Any:  # noqa: N802
    """Adds ``HEADERS`` to every response that does not set its own (sync and async)."""
    if iscoroutinefunction(get_response):

        async def middleware(request: HttpRequest) -> HttpResponse:
            return _add_headers(await get_response(request))

    else:

        def middleware(request: HttpRequest) -> HttpResponse:  # type: ignore[misc]
            return _add_headers(get_response(request))

    return middleware
