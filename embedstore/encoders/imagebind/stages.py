"""ImageBind's per-modality preprocessors (stem + cls + position embedding), heads and postprocessors.

Module and attribute names follow the official ``state_dict`` layout so checkpoints load strictly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

TEXT_CONTEXT = 77
TEXT_VOCAB = 49408
IMU_WINDOW = 8
IMU_CHANNELS = 6


class PadToVideo(nn.Module):
    """(N,3,H,W) images get a time axis; a single frame is repeated to ``frames`` frames."""

    def __init__(self, frames: int) -> None:
        super().__init__()
        self.frames = frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return (N, 3, T, H, W)."""
        if x.ndim == 4:
            x = x.unsqueeze(2)
        if x.shape[2] == 1:
            x = x.expand(-1, -1, self.frames, -1, -1)
        return x


class PatchStem(nn.Module):
    """A patch projection (conv or linear), flattened to tokens, with an optional LayerNorm."""

    def __init__(self, proj: nn.Module, norm_dim: int | None = None) -> None:
        super().__init__()
        self.proj = proj
        self.norm_layer = nn.LayerNorm(norm_dim) if norm_dim else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, ...) -> (N, P, D) tokens, row-major over the patch grid."""
        return self.tokens(self.proj(x))

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """The projection's output (N, D, *grid) or (N, P, D) as (N, P, D) tokens."""
        if x.ndim > 3:
            x = x.flatten(2).transpose(1, 2)
        if self.norm_layer is not None:
            x = self.norm_layer(x)
        return x


class PosEmbed(nn.Module):
    """Holds a learned (1, 1 + P, D) position embedding."""

    def __init__(self, length: int, dim: int) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.empty(1, length, dim))


def resize_pos_embed(pos: torch.Tensor, patches: int) -> torch.Tensor:
    """Bicubic-resize the square patch grid of ``pos`` (1, 1+P, D) to ``patches`` tokens."""
    stored = pos.shape[1] - 1
    if patches == stored:
        return pos
    side = math.isqrt(stored)
    if side * side != stored or math.isqrt(patches) ** 2 != patches:
        raise ValueError(f"cannot resize a {stored}-patch position embedding to {patches} patches")
    cls, grid = pos[:, :1], pos[:, 1:]
    dim = pos.shape[-1]
    grid = grid.float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, scale_factor=math.sqrt(patches / stored), mode="bicubic")
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, dim).to(pos.dtype)
    return torch.cat([cls, grid], dim=1)


class TokenPreprocessor(nn.Module):
    """Stem -> prepend cls -> add position embedding; used by vision, audio, depth, thermal, imu."""

    def __init__(
        self,
        stem_name: str,
        stem: PatchStem,
        dim: int,
        patches: int,
        *,
        pos_helper: bool = True,
        resizable: bool = False,
    ) -> None:
        super().__init__()
        self.stem_name = stem_name
        self.resizable = resizable
        if pos_helper:
            self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
            self.add_module(stem_name, stem)
            self.pos_embedding_helper = PosEmbed(1 + patches, dim)
        else:
            self.pos_embed = nn.Parameter(torch.empty(1, 1 + patches, dim))
            self.cls_token = nn.Parameter(torch.empty(1, 1, dim))
            self.add_module(stem_name, stem)

    def position_embedding(self) -> torch.Tensor:
        """The stored (1, 1+P, D) position embedding."""
        if hasattr(self, "pos_embedding_helper"):
            return self.pos_embedding_helper.pos_embed
        return self.pos_embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, ...) input -> (N, 1+P, D) tokens."""
        return self.assemble(getattr(self, self.stem_name)(x))

    def assemble(self, tokens: torch.Tensor) -> torch.Tensor:
        """Patch tokens (N, P, D) -> cls prepended and the position embedding added."""
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = torch.cat([cls, tokens], dim=1)
        pos = self.position_embedding()
        if self.resizable:
            pos = resize_pos_embed(pos, tokens.shape[1] - 1)
        return tokens + pos


class ImuPatches(nn.Module):
    """(N, 6, 2000) -> (N, 250, 48): windows of 8 samples, channel-major features (c*8 + k)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Cut the time axis into non-overlapping windows."""
        n, c, t = x.shape
        return x.reshape(n, c, t // IMU_WINDOW, IMU_WINDOW).permute(0, 2, 1, 3).flatten(2)


class TextPreprocessor(nn.Module):
    """Token embedding + learned position embedding; the causal mask buffer is kept for the checkpoint."""

    mask: torch.Tensor

    def __init__(self, dim: int, context: int = TEXT_CONTEXT, vocab: int = TEXT_VOCAB) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.empty(1, context, dim))
        mask = torch.full((context, context), float("-inf")).triu_(1)
        self.register_buffer("mask", mask)
        self.token_embedding = nn.Embedding(vocab, dim)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(N, L <= 77) ids -> (N, L, D); a shorter L uses the first L positions."""
        return self.token_embedding(ids) + self.pos_embed[:, : ids.shape[1]]


class SelectToken(nn.Module):
    """Take one token of (N, L, D)."""

    def __init__(self, index: int = 0) -> None:
        super().__init__()
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return (N, D)."""
        return x[:, self.index]


class TokenHead(nn.Sequential):
    """LayerNorm -> take token 0 [-> Dropout] -> Linear without bias."""

    def __init__(self, dim: int, out_dim: int, *, dropout: bool = False) -> None:
        layers: list[nn.Module] = [nn.LayerNorm(dim, eps=1e-6), SelectToken(0)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers.append(nn.Linear(dim, out_dim, bias=False))
        super().__init__(*layers)

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        """Apply the head to already-selected tokens (N, D) (LayerNorm is per token)."""
        return self[-1](self[0](pooled))


class TextHead(nn.Module):
    """Take the token at argmax(ids) (the first end-of-text), then LayerNorm -> Linear."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, out_dim, bias=False))

    def forward(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """(N, L, D) trunk output and (N, L) ids -> (N, E)."""
        rows = ids.argmax(dim=-1)
        return self.project(x[torch.arange(x.shape[0], device=x.device), rows])

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        """Apply the head to the pooled tokens (N, D)."""
        return self.proj(pooled)


class Normalize(nn.Module):
    """L2 normalisation over the last dimension."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x / max(|x|, 1e-12)``."""
        return F.normalize(x, dim=-1)


class LogitScale(nn.Module):
    """Multiply by ``min(exp(log_logit_scale), 100)``; learnable (text) or a fixed buffer."""

    log_logit_scale: torch.Tensor

    def __init__(self, init: float, *, learnable: bool) -> None:
        super().__init__()
        value = torch.tensor(math.log(init), dtype=torch.float32)
        if learnable:
            self.log_logit_scale = nn.Parameter(value)
        else:
            self.register_buffer("log_logit_scale", value)

    def scale(self) -> torch.Tensor:
        """The effective scale."""
        return self.log_logit_scale.exp().clamp(max=100)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale ``x``."""
        return x * self.scale()
