"""The CLIP text tower: token + position embedding, causal pre-norm layers, final LayerNorm."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from embedstore.encoders.languagebind.config import TextConfig
from embedstore.encoders.languagebind.layers import Encoder, EncoderLayer
from embedstore.errors import InvalidInput


class TextEmbeddings(nn.Module):
    """``token_embedding[ids] + position_embedding[0:L]``."""

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        width = cfg.transformer.width
        # saved by the official checkpoints (transformers 4.30); always 0..L-1, unused here
        self.register_buffer("position_ids", torch.arange(cfg.context_length)[None])
        self.token_embedding = nn.Embedding(cfg.vocab_size, width)
        self.position_embedding = nn.Embedding(cfg.context_length, width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.token_embedding(ids) + self.position_embedding.weight[: ids.shape[1]]


class TextTransformer(nn.Module):
    """``text_model`` of a tower; pools the row at the first largest id (the first end-of-text)."""

    def __init__(self, cfg: TextConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.embeddings = TextEmbeddings(cfg)
        self.encoder = Encoder(
            [EncoderLayer(cfg.transformer) for _ in range(cfg.transformer.layers)]
        )
        self.final_layer_norm = nn.LayerNorm(cfg.transformer.width, eps=cfg.transformer.eps)

    def check(self, ids: torch.Tensor) -> None:
        """Raise `InvalidInput` for ids that are not (B, L <= context) integers inside the vocabulary."""
        if ids.ndim != 2 or ids.dtype.is_floating_point:
            raise InvalidInput(
                f"input_ids must be integer (B, L), got {tuple(ids.shape)} {ids.dtype}",
                field="input_ids",
            )
        if ids.shape[1] > self.cfg.context_length:
            raise InvalidInput(
                f"input_ids have {ids.shape[1]} tokens; this text tower takes at most "
                f"{self.cfg.context_length}",
                field="input_ids",
            )
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.cfg.vocab_size):
            raise InvalidInput(
                f"input_ids outside the vocabulary 0..{self.cfg.vocab_size - 1}", field="input_ids"
            )

    def forward(
        self,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        collect: dict[str, Any] | None = None,
    ) -> torch.Tensor:
        """Pooled (B, D) text features; ``collect`` receives the intermediates when given."""
        x = self.embeddings(ids)
        length = ids.shape[1]
        mask = None
        if attention_mask is not None or collect is not None:
            low = torch.finfo(x.dtype).min
            mask = torch.full((length, length), low, dtype=x.dtype, device=x.device).triu_(1)
            if attention_mask is not None:
                pad = (attention_mask == 0).to(x.device)[:, None, None, :]
                mask = mask + torch.zeros_like(pad, dtype=x.dtype).masked_fill_(pad, low)
        hidden = [x]
        for layer in self.encoder.layers:
            x = layer(x, causal=mask is None, mask=mask)
            hidden.append(x)
        x = self.final_layer_norm(x)
        eos = ids.argmax(dim=-1)  # the first largest id: the first end-of-text token
        pooled = x[torch.arange(x.shape[0], device=x.device), eos.to(x.device)]
        if collect is not None:
            collect.update(
                text_embeddings=hidden[0],
                text_hidden_states=hidden,
                text_last_hidden_state=x,
                text_pooled_output=pooled,
                text_eos_index=eos,
            )
        return pooled
