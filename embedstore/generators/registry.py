"""The generator registry: names (and ``prefix:rest`` families) -> factories, like the encoders'."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from embedstore.errors import UnknownGenerator
from embedstore.generators.base import Generator


@dataclass(frozen=True)
class GeneratorInfo:
    """What the registry knows about a generator without building it."""

    name: str
    family: str
    description: str = ""
    factory: Callable[..., Generator] | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view."""
        return {"name": self.name, "family": self.family, "description": self.description}


F = TypeVar("F", bound=Callable[..., Generator])
_GENERATORS: dict[str, GeneratorInfo] = {}
_PREFIXES: dict[str, Callable[[str], GeneratorInfo]] = {}


def register_generator(
    name: str, *, family: str, description: str = "", replace: bool = False
) -> Callable[[F], F]:
    """Decorator: register ``factory(*, device, precision)`` as generator ``name``."""

    def decorate(factory: F) -> F:
        if name in _GENERATORS and not replace:
            raise ValueError(f"Generator {name!r} is registered already")
        _GENERATORS[name] = GeneratorInfo(name, family, description, factory)
        return factory

    return decorate


def register_generator_prefix(prefix: str, resolver: Callable[[str], GeneratorInfo]) -> None:
    """Resolve names ``<prefix>:<rest>`` with ``resolver(rest)`` (e.g. ``llava:/models/llava``)."""
    _PREFIXES[prefix] = resolver


def list_generators() -> list[GeneratorInfo]:
    """Every registered generator by name (prefix families are not enumerated)."""
    return [_GENERATORS[k] for k in sorted(_GENERATORS)]


def get_generator_info(name: str) -> GeneratorInfo:
    """The info for ``name``; UnknownGenerator lists what is known."""
    if name in _GENERATORS:
        return _GENERATORS[name]
    prefix, sep, rest = name.partition(":")
    if sep and rest and prefix in _PREFIXES:
        return _PREFIXES[prefix](rest)
    known = ", ".join([*sorted(_GENERATORS), *(f"{p}:<folder or hub id>" for p in _PREFIXES)])
    raise UnknownGenerator(f"Unknown generator {name!r}; known: {known}", field="model")


def create_generator(name: str, *, device: str = "cpu", precision: str = "auto") -> Generator:
    """Build a generator by name (the engine caches it)."""
    info = get_generator_info(name)
    assert info.factory is not None, f"generator {name!r} has no factory"
    return info.factory(device=device, precision=precision)
