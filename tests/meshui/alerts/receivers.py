"""A webhook receiver on loopback for the contact point pages' tests and screenshots."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@contextmanager
def receiver(status: int, received: list[bytes] | None = None) -> Iterator[str]:
    """A webhook receiver on loopback answering every POST with ``status`` (the bodies it
    gets go to ``received``); its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if received is not None:
                received.append(body)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"bad request: unknown receiver" if status >= 400 else b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/hook"
    finally:
        server.shutdown()
        server.server_close()
