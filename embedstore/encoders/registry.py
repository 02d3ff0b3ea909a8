"""The encoder registry: register a factory with its metadata, list it, create it by name.

Importing this module needs neither torch nor numpy. A family whose module imports torch can be
*declared* (`declare_encoder`: its metadata plus the module that registers its factory), so that
listing encoders and checking names cost no model import; the module is imported by
`create_encoder`, and its `register_encoder` must then agree with the declaration.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from dataclasses import replace as _with
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from embedstore.errors import UnknownEncoder

if TYPE_CHECKING:
    from embedstore.config import Settings
    from embedstore.encoders.base import Encoder


class EncoderFactory(Protocol):
    """Builds an encoder; every factory takes these keyword arguments."""

    def __call__(
        self,
        *,
        device: str = "auto",
        precision: str = "fp32",
        weights_path: Path | None = None,
        weights_dir: Path | None = None,
    ) -> Encoder: ...


@dataclass(frozen=True)
class EncoderInfo:
    """What the registry knows about an encoder without building it."""

    name: str
    family: str
    dim: int
    modalities: frozenset[str]
    description: str = ""
    weights_file: str | None = None
    factory: Callable[..., Encoder] | None = field(default=None, repr=False, compare=False)
    module: str | None = field(default=None, repr=False, compare=False)
    """For a declared encoder: the module whose import registers ``factory``."""

    def weights_present(
        self, weights_dir: Path | str | None = None, settings: Settings | None = None
    ) -> bool:
        """True when no weights are needed or ``weights_file`` exists in the weights folder."""
        if self.weights_file is None:
            return True
        return (default_weights_dir(weights_dir, settings) / self.weights_file).is_file()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly view (for ``embedstore encoders --json`` and ``GET /encoders``)."""
        return {
            "name": self.name,
            "family": self.family,
            "dim": self.dim,
            "modalities": sorted(self.modalities),
            "description": self.description,
            "weights_file": self.weights_file,
        }


F = TypeVar("F", bound=Callable[..., "Encoder"])
_ENCODERS: dict[str, EncoderInfo] = {}
# prefix ("openclip") -> resolver(suffix) -> EncoderInfo with a factory, for names like "openclip:ViT-B-32"
_PREFIXES: dict[str, Callable[..., EncoderInfo]] = {}
# Prefixes registered by modules outside this package, imported on first use so that
# ``embedstore.encoders`` itself needs only torch and numpy.
_LAZY_PREFIXES: dict[str, str] = {
    "bound": "embedstore.bind.bound",
    "openclip": "embedstore.encoders.openclip",
}


def default_weights_dir(
    weights_dir: Path | str | None = None, settings: Settings | None = None
) -> Path:
    """The weights folder: the argument, else ``settings.resolved_weights_dir``.

    Without ``settings`` the process's settings are read (``load_settings()``: environment and
    config file), the only place the environment is consulted.
    """
    if weights_dir is not None:
        return Path(weights_dir).expanduser()
    return _settings(settings).resolved_weights_dir


def _settings(settings: Settings | None) -> Settings:
    if settings is not None:
        return settings
    from embedstore.config import load_settings  # lazy: keeps pydantic out of the import path

    return load_settings()


def register_encoder(
    name: str,
    *,
    family: str,
    dim: int,
    modalities: Iterable[str],
    description: str = "",
    weights_file: str | None = None,
    replace: bool = False,
) -> Callable[[F], F]:
    """Decorator: register ``factory(*, device, precision, weights_path, weights_dir)`` as ``name``."""

    def decorate(factory: F) -> F:
        info = EncoderInfo(
            name, family, dim, frozenset(modalities), description, weights_file, factory
        )
        old = _ENCODERS.get(name)
        if old is not None and old.factory is None and old.module is not None:
            if _with(old, module=None) != info:
                raise ValueError(f"Encoder {name!r} is registered unlike its declaration: {old}")
        elif old is not None and not replace:
            raise ValueError(f"Encoder {name!r} is registered already")
        _ENCODERS[name] = info
        return factory

    return decorate


def declare_encoder(
    name: str,
    *,
    module: str,
    family: str,
    dim: int,
    modalities: Iterable[str],
    description: str = "",
    weights_file: str | None = None,
) -> None:
    """Declare ``name`` without importing ``module``, whose `register_encoder` supplies the factory.

    The metadata is listed at once (``embedstore encoders`` imports no model code); the first
    `create_encoder` imports ``module``, whose registration must repeat this metadata.
    """
    if name in _ENCODERS:
        raise ValueError(f"Encoder {name!r} is registered already")
    _ENCODERS[name] = EncoderInfo(
        name, family, dim, frozenset(modalities), description, weights_file, module=module
    )


def register_encoder_prefix(prefix: str, resolver: Callable[..., EncoderInfo]) -> None:
    """Resolve names ``<prefix>:<rest>`` with ``resolver(rest)`` (e.g. ``openclip:ViT-B-32``).

    A resolver with a ``settings`` parameter also receives the caller's `Settings` (``bound:NAME``
    looks in the data folder).
    """
    _PREFIXES[prefix] = resolver


def list_encoders() -> list[EncoderInfo]:
    """Every registered encoder, sorted by name (prefix families are not enumerated)."""
    return [_ENCODERS[k] for k in sorted(_ENCODERS)]


def get_encoder_info(name: str, settings: Settings | None = None) -> EncoderInfo:
    """The registered info for ``name``; raises `UnknownEncoder` listing the known names.

    ``settings`` reach prefix resolvers that need them (``bound:NAME``: the data folder).
    """
    if name in _ENCODERS:
        return _ENCODERS[name]
    prefix, sep, rest = name.partition(":")
    if sep and rest and prefix not in _PREFIXES and prefix in _LAZY_PREFIXES:
        importlib.import_module(_LAZY_PREFIXES[prefix])
    if sep and prefix in _PREFIXES and rest:
        resolver = _PREFIXES[prefix]
        if "settings" in inspect.signature(resolver).parameters:
            return resolver(rest, settings=settings)
        return resolver(rest)
    known = ", ".join(sorted(_ENCODERS))
    prefixes = ", ".join(f"{p}:<model>" for p in sorted({*_PREFIXES, *_LAZY_PREFIXES}))
    raise UnknownEncoder(
        f"Unknown encoder {name!r}; known encoders: {known}"
        + (f" (and {prefixes})" if prefixes else ""),
        field="encoder",
    )


def create_encoder(
    name: str,
    *,
    device: str = "auto",
    precision: str = "fp32",
    weights_path: Path | str | None = None,
    weights_dir: Path | str | None = None,
    settings: Settings | None = None,
) -> Encoder:
    """Build a fresh encoder by name (nothing is cached here; the engine caches).

    The factory gets ``weights_dir`` resolved (the argument, else ``settings``'), and
    ``settings`` itself when it takes a ``settings`` parameter (download mirrors, checksums).
    """
    info = get_encoder_info(name, settings)
    if info.factory is None and info.module is not None:
        importlib.import_module(info.module)  # registers the declared factory
        info = get_encoder_info(name, settings)
    if info.factory is None:
        raise UnknownEncoder(f"Encoder {name!r} has no factory (declared by {info.module})")
    kwargs: dict[str, Any] = {
        "device": device,
        "precision": precision,
        "weights_path": Path(weights_path).expanduser() if weights_path is not None else None,
        "weights_dir": default_weights_dir(weights_dir, settings),
    }
    if _takes(info.factory, "settings"):
        kwargs["settings"] = _settings(settings)
    return info.factory(**kwargs)


def _takes(func: Callable[..., Any], name: str) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return name in params
