"""Items: add (upload or server-side path), list, get, remove, and fetch media or a thumbnail."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from embedstore.api.deps import ApiState, StateDep, content_type, json_body, parse_json_field
from embedstore.api.media import media_path, media_type, remove_upload, save_upload, thumbnail
from embedstore.api.schemas import AddPath, AddResponse, ItemOut
from embedstore.api.security import confine_path
from embedstore.api.sniff import check_upload
from embedstore.errors import (
    BadRequest,
    InvalidMedia,
    InvalidQuery,
    ItemNotFound,
    UnsupportedMediaType,
)

router = APIRouter()

MAX_ID = 2**63 - 1
ItemId = Annotated[int, Path(ge=1, le=MAX_ID, description="The item's id.")]

_ADD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": AddPath.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "modality": {"type": "string"},
                        "metadata": {"type": "string", "description": "A JSON object."},
                    },
                }
            },
        },
    }
}
_ITEM_RESPONSES: dict[int | str, dict[str, Any]] = {404: {"description": "No such item"}}


def item_out(info: Any) -> ItemOut:
    """A store ``ItemInfo`` as the API shows it."""
    data = asdict(info) if is_dataclass(info) and not isinstance(info, type) else vars(info)
    return ItemOut.model_validate({k: v for k, v in data.items() if k in ItemOut.model_fields})


@router.post(
    "/collections/{name}/items",
    response_model=AddResponse,
    status_code=201,
    openapi_extra=_ADD_BODY,
    responses={403: {"description": "Path outside the roots"}, 413: {}, 415: {}, **_ITEM_RESPONSES},
    summary="Add an uploaded file (multipart) or a server-side file or folder (JSON)",
)
async def add_items(name: str, request: Request, state: StateDep) -> AddResponse:
    """Embed and store files; uploads are kept under the data dir so their media can be served."""
    await run_in_threadpool(state.engine.collection, name)  # 404 before reading a large body
    ctype = content_type(request)
    if ctype == "application/json":
        body = await json_body(request, AddPath)
        return await run_in_threadpool(_add_path, state, name, body)
    if ctype == "multipart/form-data":
        return await _add_upload(name, request, state)
    raise UnsupportedMediaType(
        f"Adding items takes application/json or multipart/form-data, not {ctype or 'nothing'!r}"
    )


def _add_path(state: ApiState, name: str, body: AddPath) -> AddResponse:
    roots = state.settings.root_list
    path = confine_path(body.path, roots)
    state.queries.check_modality(body.modality)
    # every file the walk finds is checked against the roots too, not only the named path; a few
    # changed files are decoded in this thread (ingest.run.IN_THREAD_MAX_FILES), more in a pool
    report = state.engine.index([path], name, modality=body.modality, within=roots)
    ids: list[int] = []
    if path.is_file():
        ids = [_item_id(state, name, path)] if not report.failed else []
    return AddResponse(ids=[i for i in ids if i is not None], report=report.to_dict())


async def _add_upload(name: str, request: Request, state: StateDep) -> AddResponse:
    form = await request.form(max_files=1, max_fields=8, max_part_size=64 * 1024)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise BadRequest("Upload the file in a multipart field called 'file'", field="file")
    modality = form.get("modality")
    modality = modality if isinstance(modality, str) and modality else None
    state.queries.check_modality(modality)
    raw_meta = form.get("metadata")
    metadata = parse_json_field(raw_meta if isinstance(raw_meta, str) else None, "metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidQuery("'metadata' must be a JSON object", field="metadata")
    data = await upload.read()
    filename = upload.filename or "upload"
    fmt, modality = check_upload(data[:64], modality, filename)

    def add() -> AddResponse:
        path = save_upload(state.settings, name, data, fmt)
        meta = {"name": filename, **(metadata or {})}  # written with the item: one transaction
        report = state.engine.index([path], name, modality=modality, workers=0, metadata=meta)
        if report.failed:  # a rejected upload leaves neither a file nor a failure record
            state.engine.collection(name).remove(uris=[str(path)])
            path.unlink(missing_ok=True)
            reason = report.failed[0].reason
            raise InvalidMedia(f"Upload {filename!r} could not be indexed: {reason}", uri=filename)
        item_id = _item_id(state, name, path)
        _set_metadata(state, name, item_id, meta)  # only a re-upload of stored bytes writes here
        return AddResponse(ids=[item_id], report=report.to_dict())

    return await run_in_threadpool(add)


def _item_id(state: ApiState, name: str, path: FsPath) -> int:
    coll = state.engine.collection(name)
    return int(coll.get_item(str(path)).id)


def _set_metadata(state: ApiState, name: str, item_id: int, metadata: dict[str, Any]) -> None:
    """Merge ``metadata`` into an item (an upsert by URI that keeps its vectors)."""
    from embedstore.store import NewItem

    coll = state.engine.collection(name)
    info = coll.get_item(item_id)
    merged = {**(getattr(info, "metadata", None) or {}), **metadata}
    if merged == getattr(info, "metadata", None):
        return
    coll.add_items(
        [
            NewItem(
                uri=info.uri,
                modality=info.modality,
                content_hash=info.content_hash,
                size=info.size,
                mtime=info.mtime,
                metadata=merged,
                vectors=coll.vectors_of(item_id),
            )
        ]
    )


@router.get(
    "/collections/{name}/items",
    response_model=list[ItemOut],
    responses=_ITEM_RESPONSES,
    summary="List items",
)
def list_items(
    name: str,
    state: StateDep,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_ID),
) -> list[ItemOut]:
    """Items of a collection, in id order."""
    coll = state.engine.collection(name)
    return [item_out(i) for i in coll.list_items(limit=limit, offset=offset)]


@router.get(
    "/collections/{name}/items/{item_id}",
    response_model=ItemOut,
    responses=_ITEM_RESPONSES,
    summary="Get an item",
)
def get_item(name: str, item_id: ItemId, state: StateDep) -> ItemOut:
    """One item with its metadata."""
    return item_out(state.engine.collection(name).get_item(item_id))


@router.delete(
    "/collections/{name}/items/{item_id}",
    status_code=204,
    responses=_ITEM_RESPONSES,
    summary="Remove an item",
)
def remove_item(name: str, item_id: ItemId, state: StateDep) -> Response:
    """Remove an item and its vectors (and its file, if it was uploaded)."""
    coll = state.engine.collection(name)
    info = coll.get_item(item_id)
    if coll.remove(ids=[item_id]) == 0:
        raise ItemNotFound(f"No item {item_id} in collection {name!r}")
    remove_upload(state.settings, name, info.uri)
    return Response(status_code=204)


@router.get(
    "/collections/{name}/items/{item_id}/media",
    response_class=FileResponse,
    responses={403: {"description": "File outside the served folders"}, **_ITEM_RESPONSES},
    summary="Download an item's file",
)
def get_media(name: str, item_id: ItemId, state: StateDep) -> FileResponse:
    """The item's file, if it lies inside the configured roots or the collection's uploads."""
    info = state.engine.collection(name).get_item(item_id)
    path = media_path(state.settings, name, info.uri)
    return FileResponse(path, media_type=media_type(path), filename=path.name)


@router.get(
    "/collections/{name}/items/{item_id}/thumbnail",
    response_class=Response,
    responses={
        200: {"content": {"image/jpeg": {}}},
        403: {"description": "File outside the served folders"},
        415: {"description": "Modality without thumbnails"},
        **_ITEM_RESPONSES,
    },
    summary="A JPEG thumbnail of an image or video item",
)
def get_thumbnail(name: str, item_id: ItemId, state: StateDep) -> Response:
    """A JPEG (at most 256x256) of an image, depth or thermal map, or a video's first frame."""
    info = state.engine.collection(name).get_item(item_id)
    path = media_path(state.settings, name, info.uri)
    jpeg = thumbnail(path, info.modality, state.settings.max_image_pixels)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})
