"""Bound encoders: a trained tower plus the base encoder it was aligned to, saved as a folder.

A bound-encoder folder holds ``config.json`` and either ``tower.pt`` (the full tower, official
ImageBind keys) or ``adapters.pt`` (LoRA adapters only, applied to a reproducible base tower).
``create_encoder("bound:/path/to/dir")`` (or ``bound:NAME`` for ``<data_dir>/bound/NAME``) loads
it: the bound modality goes through the new tower, every other modality through the base encoder,
so a collection indexed with the new modality is searchable from all the others.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from embedstore.bind.lora import LoRAConfig, apply_lora, lora_state_dict
from embedstore.bind.tower import build_tower, load_tower_weights, tower_state_dict
from embedstore.encoders.base import Encoder, as_batch, resolve_device, resolve_dtype
from embedstore.encoders.imagebind.model import ImageBindModel
from embedstore.encoders.registry import (
    EncoderInfo,
    create_encoder,
    get_encoder_info,
    register_encoder,
    register_encoder_prefix,
)
from embedstore.errors import InvalidConfig, UnknownEncoder

if TYPE_CHECKING:
    from embedstore.config import Settings

FORMAT = "embedstore.bound/1"
CONFIG_FILE = "config.json"
TOWER_FILE = "tower.pt"
ADAPTERS_FILE = "adapters.pt"


def bound_dir(name_or_path: str | Path, settings: Settings | None = None) -> Path:
    """``bound:`` names: an existing folder path, else ``<data_dir>/bound/<name>``.

    The data folder is ``settings.data_dir`` (``--data-dir``, ``EMBEDSTORE_DATA_DIR`` or the
    config file); without ``settings`` the process's settings are loaded.
    """
    p = Path(name_or_path).expanduser()
    if p.is_dir() or os.sep in str(name_or_path) or str(name_or_path).startswith("."):
        return p.resolve()
    if settings is None:
        from embedstore.config import load_settings

        settings = load_settings()
    return settings.data_dir / "bound" / str(name_or_path)


def read_config(path: Path) -> dict[str, Any]:
    """The ``config.json`` of a bound-encoder folder; `UnknownEncoder` when it is not one."""
    file = path / CONFIG_FILE
    if not file.is_file():
        raise UnknownEncoder(
            f"{path} is not a bound encoder (no {CONFIG_FILE}); create one with: embedstore bind",
            field="encoder",
        )
    try:
        config = json.loads(file.read_text())
    except json.JSONDecodeError as e:
        raise InvalidConfig(f"{file}: invalid JSON: {e}", field="encoder") from e
    if config.get("format") != FORMAT:
        raise InvalidConfig(f"{file}: format is {config.get('format')!r}, expected {FORMAT!r}")
    return dict(config)


def save_bound(
    out_dir: Path,
    model: ImageBindModel,
    config: dict[str, Any],
    *,
    adapters_only: bool = False,
    tower: torch.nn.Module | None = None,
) -> Path:
    """Write ``config.json`` and the tower (or only its adapters, read from ``tower``)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    modality = config["modality"]
    if adapters_only:
        state = lora_state_dict(tower if tower is not None else model)
        if not state:
            raise InvalidConfig("adapters-only saving needs a LoRA tower", field="save_adapters")
        prefix = "model."
        state = {k.removeprefix(prefix): v.detach().cpu() for k, v in state.items()}
        torch.save(state, out_dir / ADAPTERS_FILE)
        config = config | {"weights": None, "adapters": ADAPTERS_FILE}
    else:
        state = {k: v.detach().cpu() for k, v in tower_state_dict(model, modality).items()}
        torch.save(state, out_dir / TOWER_FILE)
        config = config | {"weights": TOWER_FILE, "adapters": None, "lora_merged": True}
    (out_dir / CONFIG_FILE).write_text(json.dumps({"format": FORMAT} | config, indent=2) + "\n")
    return out_dir


def _base_tower(config: dict[str, Any], base: Encoder) -> ImageBindModel:
    modality = config["modality"]
    model = build_tower(modality, config["tower"], seed=config.get("seed", 0))
    init = config.get("init", "scratch")
    if init == "base":
        base_model = getattr(base, "model", None)
        if not isinstance(base_model, ImageBindModel):
            raise InvalidConfig(f"base encoder {base.name!r} has no ImageBind {modality} tower")
        load_tower_weights(model, modality, base_model)
    elif init != "scratch":
        load_tower_weights(model, modality, Path(init))
    return model


def load_tower(path: Path, config: dict[str, Any], base: Encoder) -> ImageBindModel:
    """Rebuild the trained tower of a bound folder (full weights, or base tower + adapters)."""
    modality = config["modality"]
    if config.get("weights"):
        model = build_tower(modality, config["tower"], seed=None)
        load_tower_weights(model, modality, path / config["weights"])
        return model
    model = _base_tower(config, base)
    lora = config.get("lora") or {}
    apply_lora(model, LoRAConfig(lora["rank"], lora["alpha"], tuple(lora["targets"])))
    state = torch.load(path / config["adapters"], map_location="cpu", weights_only=True)
    missing = set(state) - set(model.state_dict())
    if missing:
        raise InvalidConfig(f"{path / config['adapters']}: unexpected keys {sorted(missing)[:3]}")
    model.load_state_dict(state, strict=False)
    return model


class BoundEncoder(Encoder):
    """A base encoder with one modality replaced (or added) by a contrastively bound tower."""

    family = "bound"

    def __init__(
        self, path: Path, *, device: str = "auto", precision: str = "fp32", **base_kwargs: Any
    ) -> None:
        self.path = path
        config = read_config(path)
        self.config = config
        self.name = f"bound:{path}"
        self.bound_modality = str(config["modality"])
        self.device = resolve_device(device)
        self.precision = precision
        self.base = create_encoder(
            config["base_encoder"], device=device, precision=precision, **base_kwargs
        )
        self.dim = self.base.dim
        tower = load_tower(path, config, self.base)
        self.tower = tower.to(device=self.device, dtype=resolve_dtype(precision)).eval()
        if tower.out_embed_dim != self.dim:
            raise InvalidConfig(
                f"{path}: tower dimension {tower.out_embed_dim} != base dimension {self.dim}"
            )
        self.modalities = self.base.modalities | {self.bound_modality}
        stamp = int((path / CONFIG_FILE).stat().st_mtime)
        self.version = f"{self.name}@{stamp}+{self.base.version}"

    def encode(self, modality: str, batch: torch.Tensor) -> np.ndarray:
        """The bound tower for its modality, the base encoder for every other one."""
        self.check_modality(modality)
        if modality != self.bound_modality:
            return self.base.encode(modality, batch)
        batch = as_batch(modality, batch, (2, 3, 4, 5, 6), self.name)
        with torch.inference_mode():
            return self.tower.embed(modality, batch.to(self.device)).float().cpu().numpy()


def load_bound_encoder(
    path: str | Path, settings: Settings | None = None, **kwargs: Any
) -> BoundEncoder:
    """Load a bound-encoder folder (kwargs: device, precision, weights_path/dir for the base)."""
    if settings is not None:
        kwargs["settings"] = settings
    return BoundEncoder(bound_dir(path, settings), **kwargs)


def bound_info(rest: str, settings: Settings | None = None) -> EncoderInfo:
    """Registry resolver for ``bound:<path or name>`` (names live in the settings' data folder)."""
    path = bound_dir(rest, settings)
    config = read_config(path)
    base = get_encoder_info(config["base_encoder"], settings)

    def factory(settings: Settings | None = None, **kwargs: Any) -> Encoder:
        return load_bound_encoder(path, settings, **kwargs)

    return EncoderInfo(
        name=f"bound:{rest}",
        family="bound",
        dim=base.dim,
        modalities=base.modalities | {config["modality"]},
        description=f"{config['modality']} bound to {config['base_encoder']} "
        f"({config.get('anchor_modality')}) from {path}",
        weights_file=base.weights_file,  # the base model's checkpoint (the tower is in the folder)
        factory=factory,
    )


def register_bound_encoder(
    name: str, path: str | Path, *, replace: bool = False, settings: Settings | None = None
) -> EncoderInfo:
    """Register a bound-encoder folder under a plain name, usable as ``create_encoder(name)``."""
    folder = bound_dir(path, settings)
    info = bound_info(str(folder), settings)

    def factory(settings: Settings | None = None, **kwargs: Any) -> Encoder:
        return load_bound_encoder(folder, settings, **kwargs)

    register_encoder(
        name,
        family="bound",
        dim=info.dim,
        modalities=info.modalities,
        description=info.description,
        replace=replace,
    )(factory)
    return get_encoder_info(name)


register_encoder_prefix("bound", bound_info)
