"""embedstore: a multimodal embedding search engine (ImageBind/OpenCLIP + FAISS + SQL).

Submodules with dependencies (pydantic, torch, faiss, SQLAlchemy) load on first use, so
``import embedstore.encoders`` needs torch and numpy only.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from embedstore.errors import EmbedstoreError
from embedstore.types import Failure, IndexReport, SearchResult

__version__ = "0.1.0"

_LAZY = {
    "Settings": "embedstore.config",
    "load_settings": "embedstore.config",
    "Engine": "embedstore.engine",
    "Store": "embedstore.store",
    "Collection": "embedstore.store",
    "create_encoder": "embedstore.encoders",
    "list_encoders": "embedstore.encoders",
    "create_app": "embedstore.api",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'embedstore' has no attribute {name!r}")


__all__ = [
    "EmbedstoreError",
    "Failure",
    "IndexReport",
    "SearchResult",
    "__version__",
    *_LAZY,
]
