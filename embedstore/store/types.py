"""Input and output records of the store API."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np


@dataclass(slots=True)
class NewVector:
    """One vector of an item: its modality, and for time-based media the segment and its times."""

    modality: str
    vector: np.ndarray
    segment: int = 0
    start: float | None = None
    end: float | None = None


@dataclass(slots=True)
class NewItem:
    """An item to add or replace (by ``uri``) together with all its vectors."""

    uri: str
    modality: str
    content_hash: str | None = None
    size: int = 0
    mtime: float = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)
    vectors: list[NewVector] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    """A collection's settings and counts."""

    name: str
    encoder: str
    encoder_version: str
    dim: int
    index_spec: str
    created_at: datetime
    items: int = 0
    vectors: int = 0
    by_modality: dict[str, int] = field(default_factory=dict)
    failed: int = 0
    index_backend: str = "faiss"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "name": self.name,
            "encoder": self.encoder,
            "encoder_version": self.encoder_version,
            "dim": self.dim,
            "index_spec": self.index_spec,
            "created_at": self.created_at.isoformat(),
            "items": self.items,
            "vectors": self.vectors,
            "by_modality": dict(self.by_modality),
            "failed": self.failed,
            "index_backend": self.index_backend,
        }


@dataclass(frozen=True, slots=True)
class FileState:
    """What the catalog knows about a file, for incremental indexing."""

    id: int
    size: int
    mtime: float
    content_hash: str | None
    status: str


@dataclass(frozen=True, slots=True)
class ItemInfo:
    """One catalog item."""

    id: int
    uri: str
    modality: str
    content_hash: str | None
    size: int
    mtime: float
    metadata: dict[str, Any]
    status: str
    error: str | None
    vectors: int
    created_at: datetime
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "id": self.id,
            "uri": self.uri,
            "modality": self.modality,
            "content_hash": self.content_hash,
            "size": self.size,
            "mtime": self.mtime,
            "metadata": self.metadata,
            "status": self.status,
            "error": self.error,
            "vectors": self.vectors,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }
