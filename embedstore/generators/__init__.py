"""Generators: vision-language models that caption media and answer questions (``[llava]`` extra).

Importing this package is cheap: ``transformers`` loads only when a generator is built.
"""

from embedstore.generators import llava as _llava  # noqa: F401  (registers the family)
from embedstore.generators.base import Generator, Prompt
from embedstore.generators.registry import (
    GeneratorInfo,
    create_generator,
    get_generator_info,
    list_generators,
    register_generator,
    register_generator_prefix,
)

__all__ = [
    "Generator",
    "GeneratorInfo",
    "Prompt",
    "create_generator",
    "get_generator_info",
    "list_generators",
    "register_generator",
    "register_generator_prefix",
]
