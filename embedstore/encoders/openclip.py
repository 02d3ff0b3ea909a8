"""The OpenCLIP family (vision and text): ``openclip:<model>`` with a local checkpoint.

Inputs are the same tensors ``embedstore.modalities.load`` gives ImageBind: images (B,3,224,224)
normalised with the CLIP mean/std and CLIP token ids (B,77). They are resized, re-normalised or
re-cut here when a model expects another image size, mean/std or context length. Nothing is ever
downloaded: the checkpoint is a local file (``weights_path`` or ``<weights_dir>/<weights_file>``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from embedstore.encoders.base import (
    Encoder,
    as_batch,
    strict_fp32,
)
from embedstore.encoders.registry import (
    EncoderInfo,
    default_weights_dir,
    register_encoder,
    register_encoder_prefix,
)
from embedstore.errors import UnknownEncoder, WeightsNotFound

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CONTEXT = 77
EOT = 49407
TEST_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 1, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


class OpenCLIPEncoder(Encoder):
    """Wraps an ``open_clip`` model: ``encode_image`` for vision, ``encode_text`` for text."""

    family = "openclip"

    def __init__(
        self,
        name: str,
        model: torch.nn.Module,
        *,
        version: str,
        dim: int,
        device: str = "auto",
        precision: str = "fp32",
        text: bool = True,
    ) -> None:
        from open_clip.model import get_model_preprocess_cfg

        self.model = self._place(name, model, version=version, device=device, precision=precision)
        self.dim = dim
        self.modalities = frozenset({"vision", "text"} if text else {"vision"})
        cfg = get_model_preprocess_cfg(model)
        size = cfg.get("size", 224)
        self.image_size = (size, size) if isinstance(size, int) else tuple(size)
        mean = torch.tensor(cfg.get("mean", CLIP_MEAN), dtype=torch.float32)
        std = torch.tensor(cfg.get("std", CLIP_STD), dtype=torch.float32)
        # x_model = (x_clip * clip_std + clip_mean - mean) / std = x_clip * a + b
        a = torch.tensor(CLIP_STD) / std
        b = (torch.tensor(CLIP_MEAN) - mean) / std
        self._renorm = (
            None
            if torch.allclose(a, torch.ones(3)) and torch.allclose(b, torch.zeros(3))
            else (
                a.view(1, 3, 1, 1).to(self.device),
                b.view(1, 3, 1, 1).to(self.device),
            )
        )
        self.context_length = int(getattr(model, "context_length", CONTEXT))

    def _images(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, torch.float32)
        if self._renorm is not None:
            x = x * self._renorm[0] + self._renorm[1]
        if tuple(x.shape[-2:]) != self.image_size:
            x = F.interpolate(x, size=self.image_size, mode="bicubic", antialias=True)
        return x.to(self.dtype)

    def _tokens(self, ids: torch.Tensor) -> torch.Tensor:
        ids = ids.to(self.device, torch.long)
        n = self.context_length
        if ids.shape[1] > n:  # keep an end-of-text token in the window
            lost = ids[:, n - 1 :].eq(EOT).any(dim=1) & ~ids[:, : n - 1].eq(EOT).any(dim=1)
            ids = ids[:, :n].clone()
            ids[lost, n - 1] = EOT
        elif ids.shape[1] < n:
            ids = F.pad(ids, (0, n - ids.shape[1]))
        return ids

    def encode(self, modality: str, batch: torch.Tensor) -> np.ndarray:
        """Images (B,3,H,W), single clips (B,3,T,H,W: frames averaged) or token ids (B,77)."""
        self.check_modality(modality)
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        model: Any = self.model
        with torch.inference_mode(), strict_fp32(self.device, self.precision):
            if modality == "text":
                ids = as_batch(modality, batch, (2,), self.name)
                emb = model.encode_text(self._tokens(ids))
            else:
                x = as_batch(modality, batch, (4, 5), self.name)
                if x.ndim == 5:  # single clips: embed every frame, average per clip
                    b, _, t = x.shape[:3]
                    frames = x.transpose(1, 2).flatten(0, 1)
                    emb = F.normalize(model.encode_image(self._images(frames)).float(), dim=-1)
                    emb = emb.view(b, t, -1).mean(dim=1)
                else:
                    emb = model.encode_image(self._images(x))
            return F.normalize(emb.float(), dim=-1).cpu().numpy()


def _uses_clip_tokenizer(cfg: dict[str, Any]) -> bool:
    text = cfg.get("text_cfg", {})
    return not text.get("hf_tokenizer_name") and "hf_model_name" not in text


def _openclip_info(
    model_name: str, name: str | None = None, weights_file: str | None = None
) -> EncoderInfo:
    import open_clip

    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        raise UnknownEncoder(
            f"Unknown OpenCLIP model {model_name!r}; see open_clip.list_models()", field="encoder"
        )
    name = name or f"openclip:{model_name}"
    weights_file = weights_file or f"openclip_{model_name}.pt"
    text = _uses_clip_tokenizer(cfg)
    return EncoderInfo(
        name=name,
        family="openclip",
        dim=int(cfg["embed_dim"]),
        modalities=frozenset({"vision", "text"} if text else {"vision"}),
        description=f"OpenCLIP {model_name} from a local checkpoint",
        weights_file=weights_file,
        factory=_named_factory(model_name, name, weights_file, int(cfg["embed_dim"]), text),
    )


def _named_factory(
    model_name: str, name: str, weights_file: str, dim: int, text: bool
) -> Callable[..., OpenCLIPEncoder]:
    def factory(
        *,
        device: str = "auto",
        precision: str = "fp32",
        weights_path: Path | None = None,
        weights_dir: Path | None = None,
    ) -> OpenCLIPEncoder:
        import open_clip

        path = weights_path or default_weights_dir(weights_dir) / weights_file
        if not path.is_file():
            raise WeightsNotFound(
                f"{name}: checkpoint {path} not found (OpenCLIP weights are never downloaded). Put "
                f"the model's open_clip checkpoint there (EMBEDSTORE_WEIGHTS_DIR sets the folder), "
                f"or point EMBEDSTORE_WEIGHTS_PATH / --weights-path at it.",
                field="weights_path",
            )
        model = open_clip.create_model(
            model_name, pretrained=str(path), pretrained_image=False, pretrained_text=False
        )
        version = f"{name}:{path.name}:{path.stat().st_size}"
        return OpenCLIPEncoder(
            name, model, version=version, dim=dim, device=device, precision=precision, text=text
        )

    return factory


register_encoder_prefix("openclip", _openclip_info)


@register_encoder(
    "openclip_vit_b_32",
    family="openclip",
    dim=512,
    modalities=("vision", "text"),
    description="OpenCLIP ViT-B-32 (GELU; e.g. the LAION-2B checkpoint) from a local file",
    weights_file="openclip_vit_b_32.pt",
)
def openclip_vit_b_32(**kwargs: Any) -> OpenCLIPEncoder:
    """ViT-B-32 with a local checkpoint (OpenAI's weights need ``openclip:ViT-B-32-quickgelu``)."""
    info = _openclip_info("ViT-B-32", "openclip_vit_b_32", "openclip_vit_b_32.pt")
    assert info.factory is not None
    encoder = info.factory(**kwargs)
    assert isinstance(encoder, OpenCLIPEncoder)
    return encoder


@register_encoder(
    "openclip_test",
    family="openclip",
    dim=TEST_CONFIG["embed_dim"],
    modalities=("vision", "text"),
    description="Tiny seeded random OpenCLIP (32-d, 64 px images) for tests; no weights",
)
def openclip_test(
    *,
    device: str = "auto",
    precision: str = "fp32",
    weights_path: Path | None = None,
    weights_dir: Path | None = None,
) -> OpenCLIPEncoder:
    """A deterministic random-init CLIP; its 64 px input exercises the resize path."""
    import open_clip

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = open_clip.CLIP(**TEST_CONFIG)
    if weights_path is not None:
        model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
    return OpenCLIPEncoder(
        "openclip_test",
        model,
        version="openclip_test:seed0"
        if weights_path is None
        else f"openclip_test:{weights_path.name}",
        dim=TEST_CONFIG["embed_dim"],
        device=device,
        precision=precision,
    )
