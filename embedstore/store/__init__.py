"""The catalog (SQLAlchemy) and one FAISS index per (collection, modality)."""

from embedstore.store.collection import Collection
from embedstore.store.filters import Filter
from embedstore.store.store import Store
from embedstore.store.types import CollectionInfo, FileState, ItemInfo, NewItem, NewVector

__all__ = [
    "Collection",
    "CollectionInfo",
    "FileState",
    "Filter",
    "ItemInfo",
    "NewItem",
    "NewVector",
    "Store",
]
