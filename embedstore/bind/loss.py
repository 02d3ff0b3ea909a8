"""Symmetric InfoNCE at a learnable or fixed temperature, and retrieval recall@k."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class LogitScale(nn.Module):
    """``exp(theta)`` clamped at ``max_scale``; ``theta = ln(1 / temperature)``, learnable or fixed."""

    def __init__(
        self, temperature: float = 0.07, *, learnable: bool = True, max_scale: float = 100.0
    ):
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        theta = torch.tensor(math.log(1.0 / temperature), dtype=torch.float32)
        self.theta = nn.Parameter(theta, requires_grad=learnable)
        self.max_scale = max_scale

    def forward(self) -> torch.Tensor:
        """The current scale (a 0-d tensor)."""
        return self.theta.exp().clamp(max=self.max_scale)

    @property
    def temperature(self) -> float:
        """``1 / scale`` as a float."""
        return float(1.0 / self.forward().detach())


def info_nce(
    z: torch.Tensor,
    anchors: torch.Tensor,
    scale: torch.Tensor | float,
    anchor_ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE between rows of ``z`` (B, E) and their paired ``anchors`` (B, E).

    Both sides are L2-normalised here. ``anchor_ids`` (B,) marks rows that share one anchor (one image
    with several captions): those are all positives instead of false negatives.
    """
    z = F.normalize(z.float(), dim=-1)
    a = F.normalize(anchors.float(), dim=-1)
    logits = scale * z @ a.T
    if anchor_ids is None:
        labels = torch.arange(z.shape[0], device=z.device)
        return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
    same = (anchor_ids[:, None] == anchor_ids[None, :]).float()
    target = same / same.sum(dim=1, keepdim=True)
    return 0.5 * (
        F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target.T.contiguous())
    )


def retrieval_recall(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    positives: torch.Tensor,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[int, float]:
    """Fraction of queries with a positive gallery row in their cosine top k.

    ``positives`` is a (Q, G) boolean matrix, or a (Q,) index of each query's one true row.
    """
    q = F.normalize(queries.float(), dim=-1)
    g = F.normalize(gallery.float(), dim=-1)
    sims = q @ g.T
    if positives.ndim == 1:
        positives = F.one_hot(positives.long(), g.shape[0]).bool()
    best = sims.masked_fill(~positives, float("-inf")).amax(dim=1, keepdim=True)
    rank = ((sims > best) & ~positives).sum(dim=1)  # negatives that beat the best positive
    return {k: float((rank < k).float().mean()) for k in ks}


def chance_recall(n_gallery: int, ks: Sequence[int] = (1, 5, 10)) -> dict[int, float]:
    """Recall@k of a random ranking over ``n_gallery`` candidates with one true match."""
    return {k: min(k, n_gallery) / n_gallery for k in ks}
