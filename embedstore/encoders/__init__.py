"""Encoders: one file (or package) per model family, registered by name.

Importing this package needs only torch and numpy. Adding a family is one new module that
calls `register_encoder` plus one import line below.
"""

from embedstore.encoders.base import Encoder, resolve_device, resolve_dtype
from embedstore.encoders.registry import (
    EncoderInfo,
    create_encoder,
    default_weights_dir,
    get_encoder_info,
    list_encoders,
    register_encoder,
    register_encoder_prefix,
)

# built-in families (importing registers them)
from embedstore.encoders import imagebind  # noqa: E402, F401  isort: skip
from embedstore.encoders import openclip  # noqa: E402, F401  isort: skip
from embedstore.encoders.languagebind import catalog as _lb  # noqa: E402, F401  isort: skip

__all__ = [
    "Encoder",
    "EncoderInfo",
    "create_encoder",
    "default_weights_dir",
    "get_encoder_info",
    "list_encoders",
    "register_encoder",
    "register_encoder_prefix",
    "resolve_device",
    "resolve_dtype",
]
