"""A WebSocket test communicator for ASGI consumers.

``channels.testing`` imports daphne at package import (for its live-server test case) and
daphne is not a dependency here, so this is the same small shim over asgiref's
ApplicationCommunicator that channels' ``WebsocketCommunicator`` is.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote, urlparse

from asgiref.testing import ApplicationCommunicator


class WebsocketCommunicator(ApplicationCommunicator):
    def __init__(self, application: Any, path: str,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
        parsed = urlparse(path)
        self.scope = {
            "type": "websocket",
            "path": unquote(parsed.path),
            "query_string": parsed.query.encode(),
            "headers": headers or [],
            "subprotocols": [],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
        }
        super().__init__(application, self.scope)

    async def connect(self, timeout: float = 3) -> tuple[bool, Any]:
        """(True, subprotocol) when accepted; (False, close code) when refused."""
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(timeout)
        if response["type"] == "websocket.close":
            # As a real server does after a refused handshake: tell the consumer the socket
            # is gone and let it finish, so no task is left for the loop to cancel.
            await self.send_input({"type": "websocket.disconnect", "code": 1006})
            await self.wait(timeout)
            return False, response.get("code", 1000)
        assert response["type"] == "websocket.accept", response
        return True, response.get("subprotocol")

    async def send_to(self, text_data: str) -> None:
        await self.send_input({"type": "websocket.receive", "text": text_data})

    async def send_json_to(self, data: Any) -> None:
        await self.send_to(json.dumps(data))

    async def receive_from(self, timeout: float = 3) -> str:
        response = await self.receive_output(timeout)
        assert response["type"] == "websocket.send", response
        return response["text"]

    async def receive_json_from(self, timeout: float = 3) -> Any:
        return json.loads(await self.receive_from(timeout))

    async def disconnect(self, code: int = 1000, timeout: float = 3) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)
