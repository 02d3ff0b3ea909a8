"""``POST /v1/collections/{name}/search``: JSON (text, vector, item id) or a multipart file upload."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile

from embedstore.api.deadline import within
from embedstore.api.deps import (
    ApiState,
    StateDep,
    content_type,
    json_body,
    list_field,
    parse_json_field,
    validate,
)
from embedstore.api.modes import text_mode_search
from embedstore.api.queries import SearchOptions, elapsed_ms
from embedstore.api.schemas import SearchForm, SearchRequest, SearchResponse
from embedstore.api.sniff import check_upload
from embedstore.errors import InvalidQuery, UnsupportedMediaType
from embedstore.types import SearchResult

router = APIRouter()

_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["file"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "The query medium."},
        "modality": {"type": "string", "description": "vision, audio, video, depth, thermal..."},
        "k": {"type": "integer", "minimum": 1, "default": 10},
        "offset": {"type": "integer", "minimum": 0, "default": 0},
        "modalities": {"type": "string", "description": "Comma separated target modalities."},
        "where": {"type": "string", "description": "A JSON metadata filter."},
    },
}

SEARCH_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": SearchRequest.model_json_schema()},
            "multipart/form-data": {"schema": _FORM_SCHEMA},
        },
    }
}

SEARCH_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad query (too long, k too large, bad filter)"},
    401: {"description": "Missing or wrong API key"},
    404: {"description": "No such collection or item"},
    409: {"description": "Vector dimension differs from the collection's"},
    413: {"description": "Body too large"},
    415: {"description": "Unsupported content type or upload file type"},
    504: {"description": "No answer within the server's request_timeout_s"},
}


@router.post(
    "/collections/{name}/search",
    response_model=SearchResponse,
    openapi_extra=SEARCH_BODY,
    responses=SEARCH_RESPONSES,
    summary="Search by text, vector, stored item (JSON) or an uploaded file (multipart)",
)
async def search(name: str, request: Request, state: StateDep) -> Response:
    """Search a collection; the request's content type picks JSON or multipart."""
    start = time.perf_counter()
    ctype = content_type(request)
    timeout = state.settings.request_timeout_s  # every search ends: its hits or a 504
    if ctype == "application/json" or ctype.endswith("+json"):
        body = await json_body(request, SearchRequest)
        hits = await within(timeout, search_json(name, body, state), "Search")
    elif ctype == "multipart/form-data":
        hits = await within(timeout, _search_upload(name, request, state), "Search")
    else:
        raise UnsupportedMediaType(
            f"Search takes application/json or multipart/form-data, not {ctype or 'no content type'!r}"
        )
    return search_answer(hits, start)


def search_answer(hits: list[SearchResult], start: float) -> JSONResponse:
    """The ``SearchResponse`` shape, written directly: validating the hits we made ourselves and
    serialising them through the model again cost more than the index search on the query path."""
    results = [{"start": None, "end": None, **h.to_dict()} for h in hits]
    return JSONResponse({"results": results, "took_ms": elapsed_ms(start)})


async def search_json(name: str, req: SearchRequest, state: ApiState) -> list[SearchResult]:
    """Run a validated JSON search (text, vector or item id; any mode) on collection ``name``."""
    queries = state.queries
    given = [f for f in ("text", "vector", "item_id") if getattr(req, f) is not None]
    if len(given) != 1:
        raise InvalidQuery(
            "Give exactly one of 'text', 'vector' or 'item_id' "
            f"({'none' if not given else ', '.join(given)} given); upload files as multipart"
        )
    opts = queries.check_options(SearchOptions(req.k, req.offset, req.modalities, req.where))
    if req.mode != "vector":
        if req.text is None:
            raise InvalidQuery(f"Search mode {req.mode!r} needs 'text'", field="mode")
        return await text_mode_search(state, name, queries.check_text(req.text), req.mode, opts)
    if req.text is not None:
        return await queries.search_source(name, "text", queries.check_text(req.text), opts)
    if req.vector is not None:
        return await queries.search_vector(name, req.vector, opts)
    assert req.item_id is not None
    return await queries.search_item(name, req.item_id, opts)


async def _search_upload(name: str, request: Request, state: StateDep) -> list[SearchResult]:
    form = await request.form(max_files=1, max_fields=16, max_part_size=64 * 1024)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidQuery(
            "Multipart search needs a 'file' field holding the query file", field="file"
        )
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    parsed = validate(
        SearchForm,
        {
            "modality": fields.get("modality") or None,
            "k": fields.get("k", 10),
            "offset": fields.get("offset", 0),
            "modalities": list_field([v for v in form.getlist("modalities") if isinstance(v, str)]),
            "where": parse_json_field(fields.get("where"), "where"),
        },
    )
    opts = state.queries.check_options(
        SearchOptions(parsed.k, parsed.offset, parsed.modalities, parsed.where)
    )
    state.queries.check_modality(parsed.modality)
    data = await upload.read()
    filename = upload.filename or "upload"
    _, modality = check_upload(data[:64], parsed.modality, filename)
    source: str | bytes = data
    if modality == "text":
        source = state.queries.check_text(data.decode("utf-8", errors="replace"))
    return await state.queries.search_source(name, modality, source, opts, label=filename)
