"""Decoding and official ImageBind preprocessing, one module per modality.

``load(modality, source, **options)`` returns one item's tensor (or a ``VideoItem``). A new
modality is one module that calls ``register_modality`` plus one import line below.
"""

from __future__ import annotations

import inspect
from typing import Any

from embedstore.errors import InvalidInput

# The built-in modalities: importing a module registers it. One line per modality.
from embedstore.modalities import audio, depth, imu, text, thermal, video, vision  # noqa: E402,F401,I001  # noqa: E402,F401,I001
from embedstore.modalities.parallel import DecodeTask, decode_many
from embedstore.modalities.recipes import DEFAULT_RECIPE, list_recipes, recipe_loader
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
    modality: str,
    source: Source,
    *,
    limits: DecodeLimits | None = None,
    recipe: str | None = None,
    **options: Any,
) -> Any:
    """Decode and preprocess one item of ``modality`` from a path, bytes or (text) a ``str``.

    ``recipe`` picks whose official preprocessing to reproduce: ``imagebind`` (the default) or an
    encoder family's own (``languagebind``).
    """
    spec = get_modality(modality)
    if recipe not in (None, DEFAULT_RECIPE):
        spec = Modality(modality, recipe_loader(recipe, modality), spec.extensions)
    _check_options(spec, options, source)
    with decoding(source, modality):
        return spec.load(source, limits or DEFAULT_LIMITS, **options)


def _check_options(spec: Modality, options: dict[str, Any], source: Source) -> None:
    params = inspect.signature(spec.load).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InvalidInput(
            f"{describe(source)}: unknown option {unknown[0]!r} for {spec.name}; "
            f"options: {', '.join(allowed) or 'none'}",
            field=unknown[0],
        )


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
    "list_recipes",
    "load",
    "register_modality",
]
