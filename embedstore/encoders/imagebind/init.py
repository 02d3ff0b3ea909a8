"""Random initialisation of an ImageBind model (the official scheme), optionally seeded."""

from __future__ import annotations

import math

import torch
from torch import nn


@torch.no_grad()
def init_weights(model: nn.Module, seed: int | None = None) -> None:
    """Initialise every parameter; with ``seed`` the result is identical on every machine.

    Trunk linears are Xavier-uniform with zero biases, LayerNorms are (1, 0), bias_k/bias_v are
    Xavier-normal, cls tokens and position embeddings N(0, 1/D) (text: N(0, 0.02^2) tokens and
    N(0, 0.01^2) positions, IMU positions N(0, 0.01^2)); stems and head projections use
    PyTorch's default uniform(+-1/sqrt(fan_in)).
    """
    gen = torch.Generator(device="cpu")
    if seed is not None:
        gen.manual_seed(seed)
    else:  # follow the global RNG, so torch.manual_seed() makes construction reproducible
        gen.manual_seed(int(torch.randint(0, 2**62, (), device="cpu")))
    for name, p in model.named_parameters():
        dim = p.shape[-1] if p.ndim else 1
        value = torch.empty(p.shape, dtype=torch.float32, device="cpu")
        if name.endswith("log_logit_scale"):
            value.fill_(math.log(1 / 0.07))
        elif name.endswith(("bias_k", "bias_v")):
            nn.init.xavier_normal_(value.view(1, -1), generator=gen)
        elif p.ndim == 1:
            is_norm = ".norm" in name or "pre_transformer_layer" in name or "heads." in name
            value.fill_(1.0 if is_norm and name.endswith("weight") else 0.0)
        elif name.endswith("token_embedding.weight"):
            value.normal_(0.0, 0.02, generator=gen)
        elif name.endswith("text.pos_embed") or name.endswith("imu.pos_embed"):
            value.normal_(0.0, 0.01, generator=gen)
        elif name.endswith(("cls_token", "pos_embed")):
            value.normal_(0.0, dim**-0.5, generator=gen)
        elif "modality_trunks" in name:
            nn.init.xavier_uniform_(value, generator=gen)
        else:
            fan_in = math.prod(p.shape[1:])
            bound = 1.0 / math.sqrt(fan_in)
            value.uniform_(-bound, bound, generator=gen)
        p.copy_(value)
