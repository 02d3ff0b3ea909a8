"""A real HTTP server on 127.0.0.1 standing in for a weights mirror, and a URL that refuses."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB standing in for a multi-GB checkpoint
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves PAYLOAD at any path; honours ``Range: bytes=N-`` unless ``ranges`` is off."""

    ranges = True
    seen: list[str | None] = []

    def do_GET(self) -> None:
        rng = self.headers.get("Range")
        type(self).seen.append(rng)
        start = int(rng.split("=")[1].rstrip("-")) if rng and self.ranges else 0
        if start >= len(PAYLOAD):
            self.send_response(416)
            self.end_headers()
            return
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_weights() -> Iterator[tuple[str, type[RangeHandler]]]:
    """``(url of imagebind_huge.pth, handler class whose ``seen`` lists the Range headers)``."""
    handler = type("Handler", (RangeHandler,), {"seen": [], "ranges": True})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/imagebind_huge.pth", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def refused_url() -> str:
    """A loopback URL whose port refuses connections (the socket is closed again): offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/imagebind_huge.pth"
