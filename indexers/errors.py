"""Exceptions of the indexers package (the store translates them into embedstore errors)."""

from __future__ import annotations


class IndexError_(Exception):  # noqa: N801 - trailing underscore avoids shadowing the builtin
    """Base class of every error an index raises on purpose."""


class InvalidSpec(IndexError_):
    """A FAISS index factory string that FAISS cannot build."""


class InvalidVectors(IndexError_):
    """Vectors or ids of the wrong shape, dtype or dimension, or duplicate ids."""


class UnsupportedOperation(IndexError_):
    """The index cannot do this (e.g. train with too few points)."""


class NotTrained(UnsupportedOperation):
    """The index needs training before it can hold vectors natively."""
