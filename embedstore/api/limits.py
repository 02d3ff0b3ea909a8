"""Request body limits enforced on the streamed body (not only on ``Content-Length``)."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from embedstore.errors import PayloadTooLarge


def is_json(content_type: str) -> bool:
    """True for ``application/json`` and ``*+json`` media types (parameters ignored)."""
    main = content_type.split(";", 1)[0].strip().lower()
    return main == "application/json" or main.endswith("+json")


def too_large_body(limit: int, kind: str) -> bytes:
    """The JSON body of a 413 answer."""
    detail = f"{kind} body exceeds the limit of {limit} bytes"
    return json.dumps({"detail": detail, "type": PayloadTooLarge.__name__}).encode()


class BodyLimitMiddleware:
    """Answer 413 when a request body exceeds ``max_json_bytes`` (JSON) or ``max_upload_bytes``.

    The limit is checked against ``Content-Length`` up front and against the bytes actually
    received, so chunked uploads and lying headers are cut off as soon as they pass the limit.
    """

    def __init__(self, app: ASGIApp, *, max_json_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_json_bytes = max_json_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        is_json_body = is_json(headers.get("content-type", ""))
        limit = self.max_json_bytes if is_json_body else self.max_upload_bytes
        kind = "JSON" if is_json_body else "Upload"
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await _send_413(send, limit, kind)
            return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise PayloadTooLarge(f"{kind} body exceeds the limit of {limit} bytes")
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                # Whatever the app made of the cut-off body, the answer is 413.
                if not started and message["type"] == "http.response.start":
                    started = True
                    await _send_413(send, limit, kind)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except PayloadTooLarge:
            if not started:
                started = True
                await _send_413(send, limit, kind)


async def _send_413(send: Send, limit: int, kind: str) -> None:
    body = too_large_body(limit, kind)
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
