"""The JSON search route answered without the framework's per-request machinery.

``POST /v1/collections/{name}/search`` with a JSON body is the call apps make most. Matching it
against every route, solving its dependencies and building a ``Request`` cost more CPU than the
index search itself (``benchmarks/load.py``). This ASGI layer sits inside the app's middleware
(metrics, body limits, CORS and the internal-error answer still apply to it) and answers that one
route directly, through the same parts as the FastAPI route: the key check, the ``SearchRequest``
model, ``search_json`` and the error answers. A request it does not take whole (another content
type, or a body that fails validation, whose 422 FastAPI words) goes on to the router with its
body replayed, so both ways give the same answers.
"""

from __future__ import annotations

import re
import time
from typing import Any

from pydantic import ValidationError
from starlette._utils import get_route_path
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from embedstore.api.deadline import within
from embedstore.api.deps import ApiState
from embedstore.api.errors import error_response
from embedstore.api.limits import is_json
from embedstore.api.routes.search import search_answer, search_json
from embedstore.api.schemas import SearchRequest
from embedstore.api.security import check_api_key
from embedstore.errors import EmbedstoreError

SEARCH_PATH = re.compile(r"/v1/collections/([^/]+)/search")  # the route's {name}: one segment


class JsonSearchLane:
    """Answer JSON searches directly; pass everything else to ``app`` unchanged."""

    def __init__(self, app: ASGIApp, *, state: ApiState, route: Any = None) -> None:
        self.app = app
        self.state = state
        self.route = route  # the router's route object: the metrics label requests by it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        match = SEARCH_PATH.fullmatch(get_route_path(scope))
        if match is None:
            await self.app(scope, receive, send)
            return
        content_type = authorization = ""
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value.decode("latin-1")
            elif key == b"authorization":
                authorization = value.decode("latin-1")
        if not is_json(content_type):
            await self.app(scope, receive, send)
            return
        if self.route is not None:
            scope["route"] = self.route
        client = scope.get("client")
        try:  # the key first, as the route's dependency does: no body is read without it
            check_api_key(self.state.settings, authorization, client[0] if client else None)
        except EmbedstoreError as e:
            await error_response(e, "POST", scope["path"])(scope, receive, send)
            return
        body = await read_body(receive)
        try:
            query = SearchRequest.model_validate_json(body)
        except ValidationError:  # FastAPI words the 422 (and bad JSON) as for any other route
            await self.app(scope, replay(body, receive), send)
            return
        await self.answer(match.group(1), query, scope, receive, send)

    async def answer(
        self, name: str, query: SearchRequest, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Run the search and send its hits, or the error it raised."""
        start = time.perf_counter()
        timeout = self.state.settings.request_timeout_s
        try:
            hits = await within(timeout, search_json(name, query, self.state), "Search")
        except EmbedstoreError as e:
            await error_response(e, "POST", scope["path"])(scope, receive, send)
            return
        await search_answer(hits, start)(scope, receive, send)


async def read_body(receive: Receive) -> bytes:
    """The whole request body (the body-limit middleware around us cuts it off at its limit)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` again, then whatever the client sends next."""
    pending = True

    async def again() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
