"""Decoding and official ImageBind preprocessing, one module per modality.

``load(modality, source, **options)`` returns one item's tensor (or a ``VideoItem``). A new
modality is one module that calls ``register_modality`` plus one import line below.
"""

from __future__ import annotations

from typing import Any

from embedstore.errors import InvalidInput

# The built-in modalities: importing a module registers it. One line per modality.
from embedstore.modalities import audio, depth, imu, text, thermal, video, vision  # noqa: E402,F401,I001  # noqa: E402,F401,I001
from embedstore.modalities.parallel import DecodeTask, decode_many
from embedstore.modalities.registry import (
    Modality,
    get_modality,
    guess_modality,
    list_modalities,
    register_modality,
)
from embedstore.modalities.sources import DEFAULT_LIMITS, DecodeLimits, Source, decoding, describe
from embedstore.modalities.video import VideoItem


def load(
    modality: str, source: Source, *, limits: DecodeLimits | None = None, **options: Any
) -> Any:
    """Decode and preprocess one item of ``modality`` from a path, bytes or (text) a ``str``."""
    spec = get_modality(modality)
    with decoding(source, modality):
        try:
            return spec.load(source, limits or DEFAULT_LIMITS, **options)
        except TypeError as e:
            if "unexpected keyword argument" in str(e):
                raise InvalidInput(f"{describe(source)}: bad option for {modality}: {e}") from e
            raise


__all__ = [
    "DecodeTask",
    "VideoItem",
    "decode_many",
    "DecodeLimits",
    "Modality",
    "Source",
    "get_modality",
    "guess_modality",
    "list_modalities",
    "load",
    "register_modality",
]
