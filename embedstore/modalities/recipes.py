"""Preprocessing recipes: which family's official transforms the loaders reproduce.

``imagebind`` is the default (the modules of this package). Another family registers its loaders
per modality under its recipe name; its module is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from embedstore.errors import InvalidConfig, UnsupportedModality
from embedstore.modalities.registry import Loader

DEFAULT_RECIPE = "imagebind"
_RECIPES: dict[str, dict[str, Loader]] = {}
_LAZY: dict[str, str] = {"languagebind": "embedstore.modalities.languagebind"}
# encoder family -> its recipe; families not listed use the default
FAMILY_RECIPES: dict[str, str] = {"languagebind": "languagebind"}


def register_recipe(recipe: str, modality: str, loader: Loader) -> None:
    """Use ``loader(source, limits, **options)`` for ``modality`` under ``recipe``."""
    _RECIPES.setdefault(recipe, {})[modality] = loader


def list_recipes() -> list[str]:
    """Every known recipe name, the default included."""
    return sorted({DEFAULT_RECIPE, *_RECIPES, *_LAZY})


def recipe_for_encoder(name: str) -> str | None:
    """The recipe of the registered encoder ``name``'s family; None means the default."""
    from embedstore.encoders.registry import get_encoder_info
    from embedstore.errors import EmbedstoreError

    try:
        family = get_encoder_info(name).family
    except EmbedstoreError:
        return None
    return FAMILY_RECIPES.get(family)


def recipe_of(encoder: Any) -> str | None:
    """The recipe of a built encoder's family (a bound encoder: its base encoder's)."""
    while getattr(encoder, "family", "") == "bound" and hasattr(encoder, "base"):
        encoder = encoder.base
    return FAMILY_RECIPES.get(getattr(encoder, "family", ""))


def recipe_loader(recipe: str, modality: str) -> Loader:
    """The loader of ``modality`` under ``recipe``; errors name what is known."""
    if recipe not in _RECIPES and recipe in _LAZY:
        importlib.import_module(_LAZY[recipe])
    if recipe not in _RECIPES:
        raise InvalidConfig(
            f"Unknown preprocessing recipe {recipe!r}; known: {', '.join(list_recipes())}",
            field="recipe",
        )
    loaders = _RECIPES[recipe]
    if modality not in loaders:
        raise UnsupportedModality(
            f"The {recipe} recipe has no {modality!r} preprocessing; it has "
            f"{', '.join(sorted(loaders))}",
            field="modality",
        )
    return loaders[modality]
