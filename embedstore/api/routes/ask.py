"""``POST /v1/collections/{name}/ask``: an answer from the retrieved media, as server-sent events.

Events, each ``data`` a JSON object: ``items`` (``{"items": [{"id", "uri"}]}``, the items given to
the model, first), ``token`` (``{"text"}``, pieces of the answer as they are generated), then
``done`` (``{"answer", "items"}``) or ``error`` (``{"detail", "type"}``). Errors found before
generation starts (unknown collection, bad limits, nothing retrievable) are plain JSON errors.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from embedstore.api.deps import StateDep, json_body
from embedstore.api.queries import SearchOptions
from embedstore.api.schemas import AskRequest
from embedstore.errors import EmbedstoreError, InvalidInput

router = APIRouter()
log = logging.getLogger(__name__)

ASK_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": AskRequest.model_json_schema()}},
    }
}
ASK_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Server-sent events: items, token..., done (or error)",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    400: {"description": "Bad question or limits"},
    401: {"description": "Missing or wrong API key"},
    404: {"description": "No such collection, or nothing retrievable for the question"},
    422: {"description": "Unknown modality or a generator other than the server's"},
    503: {"description": "The generator's checkpoint or the [llava] extra is missing"},
}


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One server-sent event with a JSON payload (newlines inside stay escaped)."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


@router.post(
    "/collections/{name}/ask",
    openapi_extra=ASK_BODY,
    responses=ASK_RESPONSES,
    response_class=StreamingResponse,
    summary="Answer a question from the collection's best matches (streamed as SSE)",
)
async def ask(name: str, request: Request, state: StateDep) -> StreamingResponse:
    """Retrieve with the question, then stream the generator's answer."""
    from embedstore.ask import prepare

    req = await json_body(request, AskRequest)
    queries = state.queries
    queries.check_text(req.question)
    queries.check_options(SearchOptions(req.k, 0, req.modalities, None))
    configured = state.settings.generator
    if req.model is not None and req.model != configured:
        raise InvalidInput(
            f"This server answers with {configured!r} only (the 'generator' setting)",
            field="model",
        )
    prepared = await run_in_threadpool(
        prepare,
        state.engine,
        name,
        req.question,
        k=req.k,
        modalities=req.modalities,
        mode=req.mode,
        model=configured,
    )

    async def events() -> AsyncIterator[bytes]:
        items = prepared.cited()
        yield sse("items", {"items": items})
        pieces: list[str] = []
        stream = prepared.stream()
        try:
            async for piece in iterate_in_threadpool(stream):
                pieces.append(piece)
                yield sse("token", {"text": piece})
        except EmbedstoreError as e:
            yield sse("error", {"detail": str(e), "type": type(e).__name__})
            return
        except Exception:
            log.exception("ask on %s failed while generating", name)
            yield sse("error", {"detail": "internal error", "type": "InternalError"})
            return
        finally:  # a client that went away stops the generation (the stream's stop flag)
            close = getattr(stream, "close", None)
            with contextlib.suppress(ValueError):  # still running in a worker: it ends by itself
                if close is not None:
                    await run_in_threadpool(close)
        yield sse("done", {"answer": "".join(pieces).strip(), "items": items})

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
