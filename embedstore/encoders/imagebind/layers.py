"""Transformer building blocks of ImageBind, with parameter names that match the official checkpoint.

Attention runs through `torch.nn.functional.scaled_dot_product_attention` (fused kernels on GPU),
batch-first, with the packed ``in_proj_weight``/``in_proj_bias`` layout of `nn.MultiheadAttention`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Multi-head self-attention with packed q/k/v projection and optional learned extra key/value."""

    def __init__(self, dim: int, heads: int, *, bias_kv: bool = False) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        self.bias_k: nn.Parameter | None = None
        self.bias_v: nn.Parameter | None = None
        if bias_kv:
            self.bias_k = nn.Parameter(torch.empty(1, 1, dim))
            self.bias_v = nn.Parameter(torch.empty(1, 1, dim))
        self.out_proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        *,
        causal: bool = False,
        query: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend over ``x`` (N, L, D); ``query`` (N, Q, D) restricts the output to those rows."""
        n, length, dim = x.shape
        h = self.heads
        hd = dim // h
        if query is None:
            qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
            q, k, v = qkv.view(n, length, 3, h, hd).permute(2, 0, 3, 1, 4).unbind(0)
        else:
            w_q, w_kv = self.in_proj_weight.split([dim, 2 * dim])
            b_q, b_kv = self.in_proj_bias.split([dim, 2 * dim])
            q = F.linear(query, w_q, b_q).view(n, -1, h, hd).transpose(1, 2)
            kv = F.linear(x, w_kv, b_kv)
            k, v = kv.view(n, length, 2, h, hd).permute(2, 0, 3, 1, 4).unbind(0)
        if self.bias_k is not None and self.bias_v is not None:
            bk = self.bias_k.to(k.dtype).view(1, h, 1, hd).expand(n, h, 1, hd)
            bv = self.bias_v.to(v.dtype).view(1, h, 1, hd).expand(n, h, 1, hd)
            k = torch.cat([k, bk], dim=2)
            v = torch.cat([v, bv], dim=2)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)
        out = out.transpose(1, 2).reshape(n, -1, dim)
        return self.out_proj(out)


class Mlp(nn.Module):
    """Linear(D, 4D) -> exact GELU -> Linear(4D, D)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the two projections."""
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm residual block: ``x + attn(norm_1(x))``, then ``x + mlp(norm_2(x))`` (eps 1e-6)."""

    def __init__(self, dim: int, heads: int, *, bias_kv: bool = False, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.attn = Attention(dim, heads, bias_kv=bias_kv)
        self.norm_1 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, dim * mlp_ratio)
        self.norm_2 = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: torch.Tensor, *, causal: bool = False) -> torch.Tensor:
        """Transform every token of ``x`` (N, L, D)."""
        x = x + self.attn(self.norm_1(x), causal=causal)
        return x + self.mlp(self.norm_2(x))

    def forward_rows(
        self, x: torch.Tensor, rows: torch.Tensor, *, causal: bool = False
    ) -> torch.Tensor:
        """Compute only the output at position ``rows[i]`` of each item (N, D); exact per token."""
        n, length, _ = x.shape
        y = self.norm_1(x)
        pick = torch.arange(n, device=x.device)
        sel = x[pick, rows].unsqueeze(1)
        mask = None
        if causal:
            mask = (torch.arange(length, device=x.device)[None, :] <= rows[:, None]).view(
                n, 1, 1, length
            )
        out = sel + self.attn(y, query=y[pick, rows].unsqueeze(1), mask=mask)
        out = out + self.mlp(self.norm_2(out))
        return out.squeeze(1)


class Trunk(nn.Module):
    """A stack of blocks; vision adds a LayerNorm before the first block."""

    def __init__(
        self, dim: int, depth: int, heads: int, *, pre_norm: bool = False, bias_kv: bool = False
    ) -> None:
        super().__init__()
        self.pre_transformer_layer = nn.Sequential(
            nn.LayerNorm(dim, eps=1e-6) if pre_norm else nn.Identity()
        )
        self.blocks = nn.ModuleList(Block(dim, heads, bias_kv=bias_kv) for _ in range(depth))

    def forward(self, x: torch.Tensor, *, causal: bool = False) -> torch.Tensor:
        """The full (N, L, D) output sequence."""
        x = self.pre_transformer_layer(x)
        for block in self.blocks:
            x = block(x, causal=causal)
        return x

    def forward_pooled(
        self, x: torch.Tensor, rows: torch.Tensor, *, causal: bool = False
    ) -> torch.Tensor:
        """Only the tokens the head reads, (N, D): the last block computes just those rows."""
        x = self.pre_transformer_layer(x)
        for block in self.blocks[:-1]:
            x = block(x, causal=causal)
        if len(self.blocks) == 0:
            return x[torch.arange(x.shape[0], device=x.device), rows]
        last: Block = self.blocks[-1]  # type: ignore[assignment]
        return last.forward_rows(x, rows, causal=causal)
