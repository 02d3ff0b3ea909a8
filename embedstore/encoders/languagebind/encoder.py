"""The LanguageBind encoder: several hub towers behind one `Encoder`, text from one of them.

Modalities: ``text``; ``vision`` (images through the image tower; clips (B, 3, T, H, W) through the
video tower when one is loaded and T is its frame count); ``audio``, ``depth`` and ``thermal``
through their towers. Inputs are what ``modalities.load(..., recipe="languagebind")`` gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from embedstore.encoders.base import Encoder, as_batch, strict_fp32
from embedstore.encoders.languagebind import hub
from embedstore.encoders.languagebind.model import LanguageBindModel
from embedstore.encoders.languagebind.presets import CHECKPOINTS, Checkpoint, hub_config
from embedstore.errors import InvalidInput, WeightsNotFound

TOWER_MODALITY = {
    "image": "vision",
    "video": "vision",
    "audio": "audio",
    "depth": "depth",
    "thermal": "thermal",
}


class LanguageBindEncoder(Encoder):
    """Embeds text and every modality whose tower is loaded, in the towers' shared space."""

    family = "languagebind"
    recipe = "languagebind"

    def __init__(
        self,
        name: str,
        towers: dict[str, LanguageBindModel],
        *,
        text_from: str,
        version: str,
        device: str = "auto",
        precision: str = "fp32",
    ) -> None:
        dims = {t.dim for t in towers.values()}
        if len(dims) != 1:
            raise InvalidInput(
                f"{name}: towers of different widths {sorted(dims)} cannot share a space"
            )
        self.towers = nn.ModuleDict(towers)
        self._place(name, self.towers, version=version, device=device, precision=precision)
        self.text_tower = text_from
        self.dim = dims.pop()
        self.modalities = frozenset({"text", *(TOWER_MODALITY[k] for k in towers)})

    def input_shapes(self) -> dict[str, tuple[int, ...]]:
        """Per input kind, one item's shape: vision, video (a clip), audio, depth, thermal, text."""
        shapes: dict[str, tuple[int, ...]] = {
            "text": (self._tower(self.text_tower).cfg.text.context_length,)
        }
        for kind in self.towers:
            v = self._tower(kind).cfg.vision
            h, w = v.input_size
            shapes[kind if kind != "image" else "vision"] = (
                (3, v.num_frames, h, w) if kind == "video" else (3, h, w)
            )
        return shapes

    def _tower(self, kind: str) -> LanguageBindModel:
        return self.towers[kind]  # type: ignore[return-value]

    def _vision(self, x: torch.Tensor) -> torch.Tensor:
        video = self._tower("video") if "video" in self.towers else None
        frames = video.cfg.vision.num_frames if video is not None else 0
        if x.ndim == 5 and video is not None and x.shape[2] == frames:
            return video.embed_modality(x)
        if "image" in self.towers:
            return self._tower("image").embed_modality(x)
        assert video is not None
        if x.ndim == 4:  # no image tower: a picture is a still clip
            return video.embed_modality(x[:, :, None].expand(-1, -1, frames, -1, -1))
        raise InvalidInput(
            f"{self.name}: clips must have {frames} frames for the video tower, got {x.shape[2]}",
            field="vision",
        )

    def encode(self, modality: str, batch: torch.Tensor) -> np.ndarray:
        """Token ids (B, L), images (B,3,H,W), clips (B,3,T,H,W) or spectrograms (B,3,M,L)."""
        self.check_modality(modality)
        ndims = (2,) if modality == "text" else (4, 5) if modality == "vision" else (4,)
        batch = as_batch(modality, batch, ndims, self.name)
        if batch.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch.inference_mode(), strict_fp32(self.device, self.precision):
            batch = batch.to(self.device, non_blocking=True)
            if modality == "text":
                emb = self._tower(self.text_tower).embed_text(batch)
            elif modality == "vision":
                emb = self._vision(batch.to(self.dtype))
            else:
                emb = self._tower(modality).embed_modality(batch.to(self.dtype))
            return emb.float().cpu().numpy()


def build_hub(
    name: str,
    kinds: dict[str, str],
    *,
    device: str = "auto",
    precision: str = "fp32",
    weights_path: Path | None = None,
    weights_dir: Path | None = None,
    require_all: bool = True,
) -> LanguageBindEncoder:
    """Load the checkpoints ``kinds`` (tower -> preset name) and wrap them.

    ``weights_path`` is a checkpoint folder (one tower) or a folder of checkpoint folders.
    ``require_all=False`` (the ``languagebind`` encoder) uses the checkpoints that are present
    and downloads all of them only when none is.
    """
    from embedstore.encoders.registry import default_weights_dir

    root = Path(weights_dir) if weights_dir is not None else default_weights_dir()
    ckpts = {kind: CHECKPOINTS[preset] for kind, preset in kinds.items()}
    folders: dict[str, Path] = {}
    if weights_path is not None:
        folders = _from_path(weights_path, ckpts)
    else:
        for kind, ckpt in ckpts.items():
            found = hub.local_folder(ckpt, root)
            if found is not None:
                folders[kind] = found
        if require_all or not folders:
            missing = {k: c for k, c in ckpts.items() if k not in folders}
            try:
                for kind, ckpt in missing.items():
                    folders[kind] = hub.download(ckpt, root)
            except WeightsNotFound as e:
                raise WeightsNotFound(
                    f"{name}: {e.message.split(' Put it here:')[0]}\nPut the checkpoints here:\n"
                    f"{hub.where_to_put([c for k, c in missing.items() if k not in folders], root)}",
                    field="weights_path",
                ) from e
    towers = {kind: hub.load_tower(folder) for kind, folder in folders.items()}
    text_from = next(k for k in ("image", *towers) if k in towers)
    version = name + ":" + ",".join(f"{f.name}@{hub.fingerprint(f)}" for f in folders.values())
    return LanguageBindEncoder(
        name, towers, text_from=text_from, version=version, device=device, precision=precision
    )


def _from_path(path: Path, ckpts: dict[str, Checkpoint]) -> dict[str, Path]:
    if hub.is_checkpoint(path):
        if len(ckpts) != 1:
            raise WeightsNotFound(
                f"{path} is one checkpoint; this encoder needs a folder holding "
                + ", ".join(c.folder for c in ckpts.values()),
                field="weights_path",
            )
        return {next(iter(ckpts)): path}
    found = {k: path / c.folder for k, c in ckpts.items() if hub.is_checkpoint(path / c.folder)}
    if not found:
        raise WeightsNotFound(
            f"{path} (weights_path) holds none of the checkpoint folders:\n"
            + hub.where_to_put(ckpts.values(), path.parent),
            field="weights_path",
        )
    return found


def build_random(
    presets: dict[str, str], *, device: str = "auto", precision: str = "fp32", seed: int = 0
) -> LanguageBindEncoder:
    """Full-size hub towers with seeded random weights, built on the device (benchmarks)."""
    from embedstore.encoders.base import resolve_device

    dev = resolve_device(device)
    generator = torch.Generator(device=dev).manual_seed(seed)
    towers = {}
    for kind, preset in presets.items():
        with torch.device("meta"):
            model = LanguageBindModel.from_config(hub_config(CHECKPOINTS[preset]))
        model = model.to_empty(device=dev)
        model.reset_buffers()
        with torch.no_grad():
            for name, p in model.named_parameters():
                if p.ndim == 1 and name.endswith("weight"):
                    p.fill_(1.0)
                elif p.ndim <= 1 and not name.endswith("class_embedding"):
                    p.zero_()
                else:
                    p.normal_(0.0, 0.02, generator=generator)
        model.merge_lora()
        towers[kind] = model.eval()
    name = "languagebind_random:" + ",".join(presets.values())
    return LanguageBindEncoder(
        name, towers, text_from=next(iter(towers)), version=name, device=device, precision=precision
    )


# -- the tiny seeded test variant --------------------------------------------------------------
TEST_SEED = 0
TEST_DIM = 32
_TEST_VISION = {
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
_TEST_TEXT = {
    "hidden_size": 32,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
TEST_TOWERS: dict[str, dict[str, Any]] = {
    "image": {"patch_size": 32},
    "video": {
        "patch_size": 32,
        "num_frames": 8,
        "add_time_attn": True,
        "lora_r": 2,
        "lora_alpha": 4,
    },
    "audio": {"patch_size": 28, "num_mel_bins": 112, "target_length": 1036},
    "depth": {"patch_size": 32, "max_depth": 10, "lora_r": 2, "lora_alpha": 16},
    "thermal": {"patch_size": 32, "lora_r": 2, "lora_alpha": 16},
}


def test_config(kind: str) -> dict[str, Any]:
    """A hub-shaped config of a tiny tower that takes the real input sizes (224 px, 8 frames)."""
    ckpt = Checkpoint(
        "test/languagebind_test", kind, {**_TEST_VISION, **TEST_TOWERS[kind]}, _TEST_TEXT, TEST_DIM
    )
    return hub_config(ckpt)


def init_tower(model: LanguageBindModel, generator: torch.Generator) -> LanguageBindModel:
    """Seeded values for every tensor (LoRA ``B`` included, so the adapters do something)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("logit_scale"):
                p.fill_(2.6592)
            elif p.ndim == 1 and ("norm" in name or "layrnorm" in name) and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=generator))
    return model


def build_test(
    *, device: str = "auto", precision: str = "fp32", seed: int = TEST_SEED
) -> LanguageBindEncoder:
    """Five tiny towers with seeded random weights (LoRA merged as for the hub checkpoints)."""
    generator = torch.Generator().manual_seed(seed)
    towers = {}
    for kind in TEST_TOWERS:
        with torch.device("meta"):
            model = LanguageBindModel.from_config(test_config(kind))
        model = model.to_empty(device="cpu")
        model.reset_buffers()
        model = init_tower(model, generator)
        model.merge_lora()
        towers[kind] = model.eval()
    return LanguageBindEncoder(
        "languagebind_test",
        towers,
        text_from="image",
        version=f"languagebind_test:seed{seed}",
        device=device,
        precision=precision,
    )
