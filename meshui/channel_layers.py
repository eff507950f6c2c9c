"""The ``CHANNEL_LAYERS`` setting, derived from ``REDIS_URL`` (pure: no Django imports)."""

from __future__ import annotations

from typing import Any

# redis-py 8 caps an asyncio pool at 100 connections and channels-redis then raises
# MaxConnectionsError under bursts (shared/notes/pitfalls.md): give the host as a dict.
DEFAULT_MAX_CONNECTIONS = 1000
# Longer than channels-redis' 5 s BZPOPMIN so a quiet channel is not a read timeout.
BLOCKING_READ_TIMEOUT = 15.0


def channel_layers_for(redis_url: str, max_connections: int = DEFAULT_MAX_CONNECTIONS) -> dict[str, Any]:
    """The ``CHANNEL_LAYERS`` setting for ``redis_url`` (in-memory when it is empty).

    The in-memory layer only keeps an unconfigured process importable; system check
    ``meshui.E001`` reports the missing ``REDIS_URL``.
    """
    if not redis_url:
        return {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # socket_timeout: redis-py 8 reads with a 5 s timeout by default, exactly
                # channels-redis' blocking-pop time, so idle consumers died with
                # TimeoutError at random (and sidecars' control channels dropped).
                "hosts": [{"address": redis_url, "max_connections": max_connections,
                           "socket_timeout": BLOCKING_READ_TIMEOUT}],
                "prefix": "meshui:asgi",
                # Live updates are merged and throttled upstream, so a small capacity is
                # enough; a slow page loses old deltas, never the newest.
                "capacity": 200,
                "expiry": 30,
            },
        }
    }
