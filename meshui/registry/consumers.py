"""The control channel: one WebSocket per sidecar (docs/control-channel.md)."""

from __future__ import annotations

import hmac
import json
import logging
from datetime import datetime
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from meshui.broadcast import PROXIES_GROUP
from meshui.registry.endpoints import apublish_endpoints
from meshui.registry.frames import Ack, FrameError, Heartbeat, Hello, Nack, parse_frame
from meshui.registry.models import Instance, Service

logger = logging.getLogger(__name__)


def bearer_token(scope: dict[str, Any]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` handshake header, if any."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def token_is_valid(presented: str | None, expected: str) -> bool:
    """Constant-time comparison; an unset expected token accepts nobody."""
    if not expected or presented is None:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def peer(scope: dict[str, Any]) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown peer"


# -- database work (runs in a thread through database_sync_to_async) -------------------


def _register(hello: Hello, now: datetime) -> None:
    with transaction.atomic():
        service, _ = Service.objects.get_or_create(name=hello.service)
        Instance.objects.update_or_create(
            proxy_id=hello.proxy_id,
            defaults={
                "service": service,
                "version": hello.version,
                "address": hello.address,
                "admin_address": hello.admin,
                "pid": hello.pid,
                "connected": True,
                "connected_at": now,
                "last_seen": now,
                "endpoints_acked": None,
                "last_nack_reason": "",
            },
        )


def _mine(proxy_id: str, connected_at: datetime) -> Any:
    # A sidecar that reconnected has a newer connected_at: the old socket's late
    # disconnect or heartbeat must not touch the new connection's row.
    return Instance.objects.filter(proxy_id=proxy_id, connected_at=connected_at)


def _unregister(proxy_id: str, connected_at: datetime) -> bool:
    return bool(_mine(proxy_id, connected_at).filter(connected=True).update(connected=False))


def _heartbeat(proxy_id: str, connected_at: datetime, now: datetime) -> bool:
    """Record the heartbeat; True when it revived an instance the sweep had marked stale."""
    revived = _mine(proxy_id, connected_at).filter(connected=False).update(
        connected=True, last_seen=now
    )
    if not revived:
        _mine(proxy_id, connected_at).update(last_seen=now)
    return bool(revived)


def _record_ack(proxy_id: str, ack: Ack, now: datetime) -> None:
    if ack.kind == "endpoints":
        Instance.objects.filter(proxy_id=proxy_id).update(
            endpoints_acked=ack.version, last_nack_reason="", last_seen=now
        )


def _record_nack(proxy_id: str, nack: Nack, now: datetime) -> None:
    if nack.kind == "endpoints":
        Instance.objects.filter(proxy_id=proxy_id).update(
            last_nack_reason=f"version {nack.version}: {nack.reason}", last_seen=now
        )


register = database_sync_to_async(_register)
unregister = database_sync_to_async(_unregister)
heartbeat = database_sync_to_async(_heartbeat)
record_ack = database_sync_to_async(_record_ack)
record_nack = database_sync_to_async(_record_nack)


class ControlConsumer(AsyncWebsocketConsumer):
    """Registers a sidecar, keeps its instance live, and pushes it every endpoints change."""

    proxy_id: str | None = None
    connected_at: datetime | None = None
    endpoints_sent = 0

    async def connect(self) -> None:
        token = bearer_token(self.scope)
        if not token_is_valid(token, settings.MESHUI_CONTROL_TOKEN):
            logger.warning(
                "control channel: refused %s (%s token)",
                peer(self.scope), "missing" if token is None else "wrong",
            )
            await self.close()  # before accept(): the handshake fails with HTTP 403
            return
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.proxy_id is None or self.connected_at is None:
            return
        await self.channel_layer.group_discard(PROXIES_GROUP, self.channel_name)
        if await unregister(self.proxy_id, self.connected_at):
            logger.info("control channel: %s disconnected (code %s)", self.proxy_id, code)
            await apublish_endpoints()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            frame = parse_frame(text_data)
            if isinstance(frame, Hello):
                await self.on_hello(frame)
            elif self.proxy_id is None:
                raise FrameError(f"send hello before {type(frame).__name__.lower()}")
            elif isinstance(frame, Heartbeat):
                if await heartbeat(self.proxy_id, self.connected_at, timezone.now()):
                    await apublish_endpoints()
            elif isinstance(frame, Ack):
                await record_ack(self.proxy_id, frame, timezone.now())
            elif isinstance(frame, Nack):
                logger.warning("control channel: %s rejected %s %s: %s",
                               self.proxy_id, frame.kind, frame.version, frame.reason)
                await record_nack(self.proxy_id, frame, timezone.now())
        except FrameError as exc:
            await self.send_json({"type": "error", "reason": str(exc)})

    async def on_hello(self, hello: Hello) -> None:
        if self.proxy_id is not None and self.proxy_id != hello.proxy_id:
            raise FrameError("hello: this connection already belongs to " + self.proxy_id)
        self.connected_at = timezone.now()
        self.proxy_id = hello.proxy_id
        await register(hello, self.connected_at)
        logger.info("control channel: %s (%s %s) at %s from %s", hello.proxy_id,
                    hello.service, hello.version, hello.address, peer(self.scope))
        await self.send_json({
            "type": "welcome",
            "proxy_id": hello.proxy_id,
            "heartbeat_interval": settings.MESHUI_HEARTBEAT_INTERVAL,
        })
        await self.channel_layer.group_add(PROXIES_GROUP, self.channel_name)
        # The new instance's own endpoints message arrives through the group like
        # everybody else's.
        await apublish_endpoints()

    async def endpoints_changed(self, event: dict[str, Any]) -> None:
        if event["version"] <= self.endpoints_sent:
            return  # an older snapshot overtaken by a newer one
        self.endpoints_sent = event["version"]
        await self.send_json(
            {"type": "endpoints", "version": event["version"], "services": event["services"]}
        )

    async def send_json(self, payload: dict[str, Any]) -> None:
        await self.send(text_data=json.dumps(payload, separators=(",", ":")))
