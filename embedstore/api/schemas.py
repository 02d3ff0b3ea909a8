"""Request and response bodies of the HTTP API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Where = dict[str, Any]
SearchMode = Literal["vector", "keyword", "hybrid"]


class SearchRequest(BaseModel):
    """A JSON search: exactly one of ``text``, ``vector`` or ``item_id``."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, description="Free text, embedded with the collection's encoder.")
    vector: list[float] | None = Field(
        None, description="A raw query vector of the collection's dim."
    )
    item_id: int | None = Field(
        None, ge=1, le=2**63 - 1, description="Search for neighbours of a stored item."
    )
    k: int = Field(
        10, ge=1, le=2**31, description="How many hits to return (at most the server's max_k)."
    )
    offset: int = Field(0, ge=0, le=2**31, description="Skip this many hits (pagination).")
    modalities: list[str] | None = Field(None, description="Only hits of these modalities.")
    where: Where | None = Field(None, description="Metadata filter, e.g. {'year': {'gte': 2020}}.")
    mode: SearchMode = Field(
        "vector",
        description="vector, keyword (captions, text items, searchable fields) or hybrid "
        "(both, fused by reciprocal rank); keyword and hybrid take 'text'.",
    )


class AskRequest(BaseModel):
    """A question answered from the collection's best matches."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(..., min_length=1, description="The question, also the search query.")
    k: int = Field(4, ge=1, le=2**31, description="Items to retrieve (at most the server's max_k).")
    modalities: list[str] | None = Field(None, description="Only items of these modalities.")
    mode: SearchMode = Field("hybrid", description="How the question retrieves items.")
    model: str | None = Field(
        None, description="Generator; default and allowed: the server's 'generator' setting."
    )


class SearchForm(BaseModel):
    """The non-file fields of a multipart search."""

    modality: str | None = None
    k: int = Field(10, ge=1, le=2**31)
    offset: int = Field(0, ge=0, le=2**31)
    modalities: list[str] | None = None
    where: Where | None = None


class SearchHit(BaseModel):
    """One hit: the item, the modality of the vector that matched, and its cosine score."""

    id: int
    uri: str
    modality: str
    score: float
    metadata: dict[str, Any] = {}
    start: float | None = None
    end: float | None = None


class SearchResponse(BaseModel):
    """Hits, best first."""

    results: list[SearchHit]
    took_ms: float


class CollectionCreate(BaseModel):
    """Create a collection bound to an encoder."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    encoder: str | None = Field(None, description="Default: the server's configured encoder.")
    index_spec: str | None = Field(None, description="FAISS index spec; default 'auto'.")
    exist_ok: bool = False
    index_backend: Literal["faiss", "pgvector"] | None = Field(
        None, description="faiss (index files) or pgvector (PostgreSQL catalog); default: setting."
    )


class CollectionOut(BaseModel):
    """A collection and its counts."""

    name: str
    encoder: str
    encoder_version: str = ""
    dim: int
    index_spec: str
    created_at: str | None = None
    items: int = 0
    vectors: int = 0
    by_modality: dict[str, int] = {}
    index_backend: str = "faiss"


class EncoderOut(BaseModel):
    """A registered encoder."""

    name: str
    family: str
    dim: int
    modalities: list[str]
    description: str = ""
    weights_present: bool


class AddPath(BaseModel):
    """Index a file or folder that lies inside the server's configured roots."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(..., min_length=1, max_length=4096)
    modality: str | None = Field(None, description="Force a modality (depth, thermal, imu...).")


class ItemOut(BaseModel):
    """A stored item."""

    id: int
    uri: str
    modality: str
    status: str = "ok"
    size: int | None = None
    mtime: float | None = None
    content_hash: str | None = None
    metadata: dict[str, Any] = {}


class AddResponse(BaseModel):
    """What an add did, and the ids of the items it touched."""

    ids: list[int]
    report: dict[str, Any]


class Health(BaseModel):
    """Liveness / readiness answer."""

    status: str
    checks: dict[str, str] = {}
