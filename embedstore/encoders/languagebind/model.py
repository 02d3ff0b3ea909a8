"""`LanguageBindModel`: one hub tower (text + one modality) with the official state-dict keys."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from embedstore.encoders.languagebind.config import TowerConfig, parse_config
from embedstore.encoders.languagebind.lora import LoraLinear, merge_lora
from embedstore.encoders.languagebind.text import TextTransformer
from embedstore.encoders.languagebind.vision import VisionTransformer

# Buffers in checkpoints saved with transformers 4.30 (always 0..n-1); newer ones drop them.
POSITION_IDS = ("text_model.embeddings.position_ids", "vision_model.embeddings.position_ids")


class LanguageBindModel(nn.Module):
    """A CLIP-style dual encoder: ``text_model``, ``vision_model``, two projections, ``logit_scale``."""

    def __init__(self, cfg: TowerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.logit_scale = nn.Parameter(torch.tensor(cfg.logit_scale_init))
        self.text_model = TextTransformer(cfg.text)
        self.vision_model = VisionTransformer(cfg.vision)
        self.visual_projection = nn.Linear(
            cfg.vision.transformer.width, cfg.projection_dim, bias=False
        )
        self.text_projection = nn.Linear(cfg.text.transformer.width, cfg.projection_dim, bias=False)

    @classmethod
    def from_config(cls, config: dict[str, Any] | TowerConfig) -> LanguageBindModel:
        """Build the tower a hub ``config.json`` (a dict, keys as the hub writes them) describes."""
        return cls(config if isinstance(config, TowerConfig) else parse_config(config))

    @property
    def kind(self) -> str:
        """image, video, audio, depth or thermal."""
        return self.cfg.kind

    @property
    def dim(self) -> int:
        """Size of the shared embedding space (``projection_dim``)."""
        return self.cfg.projection_dim

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """Load official keys; the ``position_ids`` buffers may be present or absent."""
        state = dict(state_dict)
        expected = {
            "text_model.embeddings.position_ids": self.cfg.text.context_length,
            "vision_model.embeddings.position_ids": self.cfg.vision.positions,
        }
        for key in POSITION_IDS:
            ids = state.get(key)
            n = expected[key]
            if ids is not None and not ids.is_meta:
                m = int(ids.shape[-1])
                if not torch.equal(ids.reshape(-1).long().cpu(), torch.arange(m)):
                    raise RuntimeError(f"{key} is not 0..{m - 1}")
            if ids is None or not ids.is_meta:
                state[key] = torch.arange(n)[None]  # absent (newer transformers): the same values
        self._match_lora(state)
        return super().load_state_dict(state, strict=strict, assign=assign)

    def _match_lora(self, state: dict[str, Any]) -> None:
        """Shape the vision encoder's LoRA like the checkpoint: the keys decide, not the config.

        Hub configs of LoRA towers (Depth, Thermal, Video) do not record the rank; it is read
        from each ``lora_A`` (r, in), alpha from the config. Projections without LoRA keys lose
        their adapter; the peft nesting follows the keys too.
        """
        prefix = "vision_model.encoder."
        peft = any(k.startswith(prefix + "base_model.model.") for k in state)
        self.vision_model.set_peft_layout(peft)
        alpha = self.cfg.vision.lora_alpha
        for name, module in self.vision_model.encoder.named_modules():
            if isinstance(module, LoraLinear):
                a = state.get(f"{prefix}{name}.lora_A.default.weight")
                module.set_rank(int(a.shape[0]) if a is not None else 0, alpha)

    def reset_buffers(self) -> None:
        """Refill the ``position_ids`` buffers (after ``to_empty``)."""
        with torch.no_grad():
            for module in (self.text_model.embeddings, self.vision_model.embeddings):
                ids = cast(torch.Tensor, module.position_ids)
                module.position_ids = torch.arange(int(ids.shape[-1]), device=ids.device)[None]

    def merge_lora(self) -> int:
        """Fold every unmerged LoRA update into its base weight; returns the layers merged."""
        return merge_lora(self)

    def embed_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """L2-normalised float32 (B, E) text embeddings.

        Only the pooled row (the first largest id) is used, and the text tower is causal, so
        columns after the last pooled position in the batch are dropped and the padding mask
        (which changes padding rows only) is not needed: same result, less work.
        """
        self.text_model.check(input_ids)
        ids = input_ids.to(self.text_projection.weight.device, torch.long)
        if ids.shape[0] == 0:
            return torch.zeros(0, self.dim)
        keep = int(ids.argmax(dim=-1).max()) + 1
        pooled = self.text_model(ids[:, :keep])
        return F.normalize(self.text_projection(pooled).float(), dim=-1)

    def embed_modality(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """L2-normalised float32 (B, E) embeddings of images, clips (B,3,T,H,W) or spectrograms."""
        w = self.visual_projection.weight
        pooled = self.vision_model(pixel_values.to(w.device, w.dtype))
        return F.normalize(self.visual_projection(pooled).float(), dim=-1)

    def forward_all(
        self,
        input_ids: torch.Tensor,
        pixel_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """Both towers with every intermediate, named like the reference fixtures."""
        out: dict[str, Any] = {}
        self.text_model.check(input_ids)
        text = self.text_model(input_ids, attention_mask, collect=out)
        image = self.vision_model(pixel_values, collect=out)
        out["text_embeds"] = self.text_projection(text)
        out["image_embeds"] = self.visual_projection(image)
        out["text_embeds_normalized"] = out["text_embeds"] / out["text_embeds"].norm(
            dim=-1, keepdim=True
        )
        out["image_embeds_normalized"] = out["image_embeds"] / out["image_embeds"].norm(
            dim=-1, keepdim=True
        )
        scale = self.logit_scale.exp()
        out["logits_per_text"] = (
            out["text_embeds_normalized"] @ out["image_embeds_normalized"].T * scale
        )
        out["logits_per_image"] = out["logits_per_text"].T
        return out
