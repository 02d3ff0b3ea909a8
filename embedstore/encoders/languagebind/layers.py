"""The pre-norm transformer layer shared by the text and modality towers (CLIP layout and names)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from embedstore.encoders.languagebind.config import TransformerConfig
from embedstore.encoders.languagebind.lora import LoraLinear


def activation(name: str) -> nn.Module:
    """The MLP activation named by ``hidden_act`` (``gelu`` is the exact erf GELU)."""
    if name == "gelu":
        return nn.GELU()
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return nn.GELU(approximate="tanh")
    return QuickGELU()


class QuickGELU(nn.Module):
    """CLIP's ``x·sigmoid(1.702x)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head attention with separate ``q/k/v/out_proj`` Linears (each may carry LoRA)."""

    def __init__(self, width: int, heads: int, lora_r: int = 0, lora_alpha: float = 1.0) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = width // heads
        # key order of the official checkpoints: k, v, q, out
        self.k_proj = LoraLinear(width, width, lora_r, lora_alpha)
        self.v_proj = LoraLinear(width, width, lora_r, lora_alpha)
        self.q_proj = LoraLinear(width, width, lora_r, lora_alpha)
        self.out_proj = LoraLinear(width, width, lora_r, lora_alpha)

    def forward(
        self, x: torch.Tensor, *, causal: bool = False, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Attend over ``x`` (N, L, D); ``mask`` is additive, broadcast to (N, heads, L, L)."""
        n, length, width = x.shape
        h, hd = self.heads, self.head_dim
        q = self.q_proj(x).view(n, length, h, hd).transpose(1, 2)
        k = self.k_proj(x).view(n, length, h, hd).transpose(1, 2)
        v = self.v_proj(x).view(n, length, h, hd).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        return self.out_proj(out.transpose(1, 2).reshape(n, length, width))


class MLP(nn.Module):
    """``fc2(act(fc1(x)))``."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.fc1 = nn.Linear(cfg.width, cfg.mlp)
        self.act = activation(cfg.act)
        self.fc2 = nn.Linear(cfg.mlp, cfg.width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class EncoderLayer(nn.Module):
    """``x + Attn(LN1(x))`` then ``x + MLP(LN2(x))``; video layers run a temporal block first.

    The temporal block (``num_frames`` > 0) adds ``temporal_embedding`` to the residual stream
    (when there is more than one frame), then ``x + temporal_attn(temporal_layer_norm1(x))`` over
    each token position's frames. ``spatial_lora`` / ``temporal_lora`` say which attention carries
    the (r, alpha) adapter.
    """

    def __init__(
        self,
        cfg: TransformerConfig,
        *,
        num_frames: int = 0,
        lora: tuple[int, float] = (0, 1.0),
        lora_on_temporal: bool = False,
    ) -> None:
        super().__init__()
        self.num_frames = num_frames
        if num_frames:
            self.temporal_embedding = nn.Parameter(torch.empty(1, num_frames, cfg.width))
        spatial = (0, 1.0) if lora_on_temporal else lora
        self.self_attn = Attention(cfg.width, cfg.heads, *spatial)
        self.layer_norm1 = nn.LayerNorm(cfg.width, eps=cfg.eps)
        self.mlp = MLP(cfg)
        self.layer_norm2 = nn.LayerNorm(cfg.width, eps=cfg.eps)
        if num_frames:
            temporal = lora if lora_on_temporal else (0, 1.0)
            self.temporal_attn = Attention(cfg.width, cfg.heads, *temporal)
            self.temporal_layer_norm1 = nn.LayerNorm(cfg.width, eps=cfg.eps)

    def temporal(self, x: torch.Tensor) -> torch.Tensor:
        """The temporal sub-block on (B·T, N, D) hidden states, frames of a video consecutive."""
        t = self.num_frames
        bt, n, d = x.shape
        b = bt // t
        if t != 1:
            x = (x.view(b, t, n, d) + self.temporal_embedding.view(1, t, 1, d)).view(bt, n, d)
        y = x.view(b, t, n, d).transpose(1, 2).reshape(b * n, t, d)
        y = self.temporal_attn(self.temporal_layer_norm1(y))
        return x + y.view(b, n, t, d).transpose(1, 2).reshape(bt, n, d)

    def forward(
        self, x: torch.Tensor, *, causal: bool = False, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        if self.num_frames:
            x = self.temporal(x)
        x = x + self.self_attn(self.layer_norm1(x), causal=causal, mask=mask)
        return x + self.mlp(self.layer_norm2(x))


class Encoder(nn.Module):
    """A stack of `EncoderLayer` under ``layers`` (the official ``encoder.layers.{i}``)."""

    def __init__(self, layers: list[EncoderLayer]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)


class PeftWrapped(nn.Module):
    """The ``base_model.model`` nesting peft adds to a LoRA'd encoder's keys."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.model = inner
