"""The modality tower (``vision_model``): patch embedding, class token(s), pre-LN, layers, pooling.

Image, depth, thermal and audio towers embed 2-D inputs; video towers take (B, 3, T, H, W) clips and
run a temporal block in every layer. ``vl_new`` video towers (V1.5) use a 3-D patch convolution and
one class token per frame.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from embedstore.encoders.languagebind.config import VisionConfig
from embedstore.encoders.languagebind.layers import Encoder, EncoderLayer, PeftWrapped
from embedstore.errors import InvalidInput


class VisionEmbeddings(nn.Module):
    """Patches (conv, no bias), class token(s) in front, the position table added."""

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        width, p = cfg.transformer.width, cfg.patch_size
        self.new = cfg.clip_type == "vl_new"
        if self.new:
            self.class_embedding = nn.Parameter(torch.empty(cfg.num_frames, width))
            self.patch_embedding: nn.Conv2d | nn.Conv3d = nn.Conv3d(
                3, width, (cfg.tube_size, p, p), (cfg.tube_size, p, p), bias=False
            )
        else:
            self.class_embedding = nn.Parameter(torch.empty(width))
            self.patch_embedding = nn.Conv2d(3, width, p, p, bias=False)
        # saved by the official checkpoints (transformers 4.30); always 0..P, unused here
        self.register_buffer("position_ids", torch.arange(cfg.positions)[None])
        self.position_embedding = nn.Embedding(cfg.positions, width)

    def forward(self, x: torch.Tensor, collect: dict[str, Any] | None = None) -> torch.Tensor:
        """(N, 3, H, W) images, or (B, 3, T, H, W) clips for ``vl_new``: (N or B·T, P+1, D)."""
        w = self.patch_embedding.weight
        patches = self.patch_embedding(x.to(w.dtype))
        if collect is not None:
            collect["patch_embeds"] = patches
        if self.new:  # (B, D, T, g, g) -> (B·T, P, D), frame t gets class token t
            b, d, t = patches.shape[:3]
            tokens = patches.flatten(3).permute(0, 2, 3, 1).reshape(b * t, -1, d)
            cls = self.class_embedding.to(tokens.dtype).repeat(b, 1)[:, None, :]
        else:
            tokens = patches.flatten(2).transpose(1, 2)
            cls = self.class_embedding.to(tokens.dtype).expand(tokens.shape[0], 1, -1)
        return torch.cat([cls, tokens], dim=1) + self.position_embedding.weight


class LoraEncoder(nn.Module):
    """A LoRA'd encoder: its layers sit at ``base_model.model.layers`` as peft names them."""

    def __init__(self, layers: list[EncoderLayer]) -> None:
        super().__init__()
        self.base_model = PeftWrapped(Encoder(layers))

    @property
    def layers(self) -> nn.ModuleList:
        return cast(nn.ModuleList, self.base_model.model.layers)


class VisionTransformer(nn.Module):
    """``vision_model`` of a tower: pooled (B, D) features of items, frames averaged after the LN."""

    def __init__(self, cfg: VisionConfig) -> None:
        super().__init__()
        self.cfg = cfg
        tc = cfg.transformer
        self.embeddings = VisionEmbeddings(cfg)
        self.pre_layrnorm = nn.LayerNorm(tc.width, eps=tc.eps)
        frames = cfg.num_frames if cfg.add_time_attn else 0
        lora = (cfg.lora_r, cfg.lora_alpha)
        layers = [
            EncoderLayer(tc, num_frames=frames, lora=lora, lora_on_temporal=cfg.add_time_attn)
            for _ in range(tc.layers)
        ]
        self.encoder: Encoder | LoraEncoder = (
            LoraEncoder(layers) if cfg.lora_r > 0 else Encoder(layers)
        )
        self.post_layernorm = nn.LayerNorm(tc.width, eps=tc.eps)

    def set_peft_layout(self, peft: bool) -> None:
        """Nest the layers as ``encoder.base_model.model.layers`` (peft) or ``encoder.layers``."""
        if peft != isinstance(self.encoder, LoraEncoder):
            layers = [cast(EncoderLayer, m) for m in self.encoder.layers]
            self.encoder = LoraEncoder(layers) if peft else Encoder(layers)

    def _frames(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Check the input size; return what the embeddings take and the frames to average."""
        cfg = self.cfg
        size = cfg.input_size
        if x.ndim not in (4, 5) or x.shape[1] != 3 or tuple(x.shape[-2:]) != size:
            raise InvalidInput(
                f"this LanguageBind tower takes (B, 3, {size[0]}, {size[1]})"
                + (
                    f" or (B, 3, {cfg.num_frames}, {size[0]}, {size[1]})"
                    if cfg.add_time_attn
                    else ""
                )
                + f" inputs, got {tuple(x.shape)}",
                field="pixel_values",
            )
        if cfg.add_time_attn:
            t = cfg.num_frames
            if x.ndim == 5 and x.shape[2] != t:
                raise InvalidInput(
                    f"this LanguageBind video tower takes exactly {t} frames, got {x.shape[2]}",
                    field="pixel_values",
                )
            if x.ndim == 4 and x.shape[0] % t:
                raise InvalidInput(
                    f"a 4-D batch to this video tower must hold a multiple of {t} images, "
                    f"got {x.shape[0]}",
                    field="pixel_values",
                )
            if self.embeddings.new:
                if x.ndim == 4:  # groups of T images become clips, each image pooled on its own
                    x = x.view(-1, t, *x.shape[1:]).transpose(1, 2)
                    return x, 1
                return x, t
        if x.ndim == 5:
            b, c, t = x.shape[:3]
            return x.transpose(1, 2).reshape(b * t, c, *x.shape[-2:]), t
        return x, 1

    def forward(self, x: torch.Tensor, *, collect: dict[str, Any] | None = None) -> torch.Tensor:
        """Pooled (B, D) features: the post-LN class token, averaged over an item's frames."""
        x, frames = self._frames(x)
        h = self.embeddings(x, collect)
        if collect is not None:
            collect["vision_embeddings"] = h
        h = self.pre_layrnorm(h)
        hidden = [h]
        for layer in self.encoder.layers:
            h = layer(h)
            hidden.append(h)
        pooled = self.post_layernorm(h[:, 0, :])
        pooled = pooled.view(-1, frames, pooled.shape[-1]).mean(dim=1)
        if collect is not None:
            collect.update(
                pre_layrnorm=hidden[0],
                vision_hidden_states=hidden,
                vision_last_hidden_state=h,
                vision_pooled_output=pooled,
            )
        return pooled
