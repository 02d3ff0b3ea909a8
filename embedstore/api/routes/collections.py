"""Encoders and collections: list, create, show, drop."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from starlette.concurrency import run_in_threadpool

from embedstore.api.deps import StateDep
from embedstore.api.media import drop_uploads
from embedstore.api.schemas import CollectionCreate, CollectionOut, EncoderOut
from embedstore.api.security import check_encoder_name

router = APIRouter()


def collection_out(info: Any) -> CollectionOut:
    """A store ``CollectionInfo`` as the API shows it."""
    created: Any = getattr(info, "created_at", None)
    if created is not None:
        created = created.isoformat() if hasattr(created, "isoformat") else str(created)
    return CollectionOut(
        name=info.name,
        encoder=info.encoder,
        encoder_version=getattr(info, "encoder_version", "") or "",
        dim=info.dim,
        index_spec=info.index_spec,
        created_at=created,
        items=getattr(info, "items", 0),
        vectors=getattr(info, "vectors", 0),
        by_modality=dict(getattr(info, "by_modality", {}) or {}),
        index_backend=getattr(info, "index_backend", "faiss"),
    )


@router.get("/encoders", response_model=list[EncoderOut], summary="Registered encoders")
def list_encoders(state: StateDep) -> list[EncoderOut]:
    """Every registered encoder, and whether its weights are present on this server."""
    from embedstore.encoders import list_encoders as registered

    weights_dir = state.settings.resolved_weights_dir
    return [
        EncoderOut(
            name=e.name,
            family=e.family,
            dim=e.dim,
            modalities=sorted(e.modalities),
            description=e.description,
            weights_present=e.weights_present(weights_dir),
        )
        for e in registered()
    ]


@router.get("/collections", response_model=list[CollectionOut], summary="All collections")
def list_collections(state: StateDep) -> list[CollectionOut]:
    """Every collection with its counts."""
    return [collection_out(info) for info in state.engine.store.collections()]


@router.post(
    "/collections",
    response_model=CollectionOut,
    status_code=201,
    responses={409: {"description": "Exists"}, 422: {"description": "Unknown encoder"}},
    summary="Create a collection",
)
def create_collection(body: CollectionCreate, state: StateDep) -> CollectionOut:
    """Create a collection bound to an encoder (409 if it exists, unless ``exist_ok``)."""
    check_encoder_name(body.encoder, state.settings)  # no server paths through encoder names
    coll = state.engine.create_collection(
        body.name,
        encoder=body.encoder,
        index_spec=body.index_spec,
        exist_ok=body.exist_ok,
        index_backend=body.index_backend,
    )
    return collection_out(coll.info())


@router.get(
    "/collections/{name}",
    response_model=CollectionOut,
    responses={404: {"description": "No such collection"}},
    summary="Show a collection",
)
def get_collection(name: str, state: StateDep) -> CollectionOut:
    """One collection with its counts."""
    return collection_out(state.engine.collection(name).info())


@router.delete(
    "/collections/{name}",
    status_code=204,
    responses={404: {"description": "No such collection"}},
    summary="Drop a collection",
)
async def drop_collection(name: str, state: StateDep) -> Response:
    """Drop a collection, its vectors, its index files and its uploaded files."""

    def drop() -> None:
        state.engine.store.drop_collection(name)
        drop_uploads(state.settings, name)

    await run_in_threadpool(drop)
    return Response(status_code=204)
