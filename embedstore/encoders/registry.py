"""The encoder registry: register a factory with its metadata, list it, create it by name."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from embedstore.encoders.base import Encoder
from embedstore.errors import UnknownEncoder


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

    def weights_present(self, weights_dir: Path | str | None = None) -> bool:
        """True when no weights are needed or ``weights_file`` exists in ``weights_dir``."""
        if self.weights_file is None:
            return True
        return (default_weights_dir(weights_dir) / self.weights_file).is_file()

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


F = TypeVar("F", bound=Callable[..., Encoder])
_ENCODERS: dict[str, EncoderInfo] = {}
# prefix ("openclip") -> resolver(suffix) -> EncoderInfo with a factory, for names like "openclip:ViT-B-32"
_PREFIXES: dict[str, Callable[[str], EncoderInfo]] = {}
# Prefixes registered by modules outside this package, imported on first use so that
# ``embedstore.encoders`` itself needs only torch and numpy.
_LAZY_PREFIXES: dict[str, str] = {"bound": "embedstore.bind.bound"}


def default_weights_dir(weights_dir: Path | str | None = None) -> Path:
    """The weights folder: the argument, else ``$EMBEDSTORE_WEIGHTS_DIR``, else ``<data_dir>/weights``."""
    if weights_dir is not None:
        return Path(weights_dir).expanduser()
    env = os.environ.get("EMBEDSTORE_WEIGHTS_DIR")
    if env:
        return Path(env).expanduser()
    data = os.environ.get("EMBEDSTORE_DATA_DIR")
    if data:
        return Path(data).expanduser() / "weights"
    from embedstore.config import default_data_dir  # lazy: keeps pydantic out of the import path

    return default_data_dir() / "weights"


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
        if name in _ENCODERS and not replace:
            raise ValueError(f"Encoder {name!r} is registered already")
        _ENCODERS[name] = EncoderInfo(
            name, family, dim, frozenset(modalities), description, weights_file, factory
        )
        return factory

    return decorate


def register_encoder_prefix(prefix: str, resolver: Callable[[str], EncoderInfo]) -> None:
    """Resolve names ``<prefix>:<rest>`` with ``resolver(rest)`` (e.g. ``openclip:ViT-B-32``)."""
    _PREFIXES[prefix] = resolver


def list_encoders() -> list[EncoderInfo]:
    """Every registered encoder, sorted by name (prefix families are not enumerated)."""
    return [_ENCODERS[k] for k in sorted(_ENCODERS)]


def get_encoder_info(name: str) -> EncoderInfo:
    """The registered info for ``name``; raises `UnknownEncoder` listing the known names."""
    if name in _ENCODERS:
        return _ENCODERS[name]
    prefix, sep, rest = name.partition(":")
    if sep and rest and prefix not in _PREFIXES and prefix in _LAZY_PREFIXES:
        importlib.import_module(_LAZY_PREFIXES[prefix])
    if sep and prefix in _PREFIXES and rest:
        return _PREFIXES[prefix](rest)
    known = ", ".join(sorted(_ENCODERS))
    prefixes = ", ".join(f"{p}:<model>" for p in sorted(_PREFIXES))
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
) -> Encoder:
    """Build a fresh encoder by name (nothing is cached here; the engine caches)."""
    info = get_encoder_info(name)
    assert info.factory is not None, f"encoder {name!r} has no factory"
    return info.factory(
        device=device,
        precision=precision,
        weights_path=Path(weights_path).expanduser() if weights_path is not None else None,
        weights_dir=Path(weights_dir).expanduser() if weights_dir is not None else None,
    )
