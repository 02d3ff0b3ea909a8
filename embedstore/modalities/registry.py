"""The modality registry: a dict of ``Modality`` records filled by the built-in modules."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embedstore.errors import UnknownModality

Loader = Callable[..., Any]


@dataclass(frozen=True)
class Modality:
    """A decodable kind of input: a name, a loader and the file extensions it may be guessed from."""

    name: str
    load: Loader
    extensions: frozenset[str] = field(default_factory=frozenset)
    description: str = ""


_REGISTRY: dict[str, Modality] = {}


def register_modality(modality: Modality) -> Modality:
    """Add (or replace) a modality; returns it so modules can keep a reference."""
    _REGISTRY[modality.name] = modality
    return modality


def get_modality(name: str) -> Modality:
    """The registered modality called ``name``; raises ``UnknownModality`` listing the known names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(list_modalities())
        raise UnknownModality(
            f"Unknown modality {name!r}; known: {known}", field="modality"
        ) from None


def list_modalities() -> list[str]:
    """Names of the registered modalities, sorted."""
    return sorted(_REGISTRY)


def guess_modality(path: str | Path) -> str | None:
    """The modality implied by a file extension (vision, audio, video, text only), else None."""
    suffix = Path(path).suffix.lower()
    if not suffix:
        return None
    for modality in _REGISTRY.values():
        if suffix in modality.extensions:
            return modality.name
    return None
