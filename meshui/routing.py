"""WebSocket routes: the sidecars' control channel and the browser's live graph."""

from __future__ import annotations

from channels.auth import AuthMiddlewareStack
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path

from meshui.dashboard.consumers import GraphConsumer
from meshui.registry.consumers import ControlConsumer

websocket_urlpatterns = [
    # Sidecars authenticate with a bearer token and send no Origin header, so no
    # session middleware or origin check here.
    path("api/v1/control", ControlConsumer.as_asgi()),
    # Browsers: session auth, and an Origin check against ALLOWED_HOSTS (cross-site
    # WebSocket hijacking).
    path("ws/graph", AllowedHostsOriginValidator(AuthMiddlewareStack(GraphConsumer.as_asgi()))),
]
