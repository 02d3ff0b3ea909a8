"""Encoders: one file (or package) per model family, registered by name.

Importing this package loads no model code (no torch): the built-in families are declared in
`embedstore.encoders.builtin` and imported by `create_encoder`. Adding a family is one new module
that calls `register_encoder` (plus a `declare_encoder` line in ``builtin.py`` for a built-in).
``Encoder``, ``resolve_device`` and ``resolve_dtype`` load torch on first access.
"""

from typing import TYPE_CHECKING, Any

from embedstore.encoders import builtin  # noqa: F401  declares the built-in encoders
from embedstore.encoders.languagebind import catalog as _lb  # noqa: F401  no torch
from embedstore.encoders.registry import (
    EncoderInfo,
    create_encoder,
    declare_encoder,
    default_weights_dir,
    get_encoder_info,
    list_encoders,
    register_encoder,
    register_encoder_prefix,
)

if TYPE_CHECKING:
    from embedstore.encoders.base import Encoder, resolve_device, resolve_dtype

_TORCH_NAMES = ("Encoder", "resolve_device", "resolve_dtype")


def __getattr__(name: str) -> Any:
    if name in _TORCH_NAMES:
        from embedstore.encoders import base

        return getattr(base, name)
    raise AttributeError(f"module 'embedstore.encoders' has no attribute {name!r}")


__all__ = [
    "Encoder",
    "EncoderInfo",
    "create_encoder",
    "declare_encoder",
    "default_weights_dir",
    "get_encoder_info",
    "list_encoders",
    "register_encoder",
    "register_encoder_prefix",
    "resolve_device",
    "resolve_dtype",
]
