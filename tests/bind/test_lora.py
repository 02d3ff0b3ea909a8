"""LoRA: zero-initialised adapters change nothing; merged == unmerged; adapters save and reload."""

from __future__ import annotations

import pytest
import torch

from embedstore.bind import (
    LoRAConfig,
    LoRALinear,
    apply_lora,
    has_lora,
    lora_state_dict,
    merge_lora,
)
from embedstore.bind.lora import base_state_dict
from embedstore.errors import InvalidConfig
from tests.bind.conftest import random_tokens


def perturb(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("lora_B"):
                p.normal_(0, 0.05)


def test_fresh_adapters_compute_exactly_what_the_base_computes(text_tower):
    ids = random_tokens(8)
    before = text_tower(ids)
    added = apply_lora(text_tower, LoRAConfig(rank=4, alpha=8))
    assert added == 4  # in_proj, out_proj, fc1, fc2 of the one block
    assert torch.allclose(text_tower(ids), before, atol=1e-6)


def test_only_adapters_train(text_tower):
    apply_lora(text_tower, LoRAConfig(rank=2, targets=("fc1", "fc2")))
    trainable = {n for n, p in text_tower.named_parameters() if p.requires_grad}
    assert trainable and all(n.endswith(("lora_A", "lora_B")) for n in trainable)
    assert not any("in_proj" in n for n in trainable)


def test_merged_equals_unmerged_and_keeps_official_keys(text_tower):
    keys = set(text_tower.state_dict())
    ids = random_tokens(8)
    base = text_tower(ids)
    apply_lora(text_tower, LoRAConfig(rank=4, alpha=16))
    perturb(text_tower)
    unmerged = text_tower(ids)
    assert (unmerged - base).abs().max() > 1e-3  # the adapters do something
    merged_count = merge_lora(text_tower)
    assert merged_count == 4 and not has_lora(text_tower)
    assert set(text_tower.state_dict()) == keys
    assert torch.allclose(text_tower(ids), unmerged, atol=1e-5)


def test_adapters_alone_reload_onto_a_fresh_base(text_tower):
    from embedstore.bind.tower import ModalityTower, build_tower

    ids = random_tokens(4)
    apply_lora(text_tower, LoRAConfig(rank=4))
    perturb(text_tower)
    expected = text_tower(ids)
    adapters = lora_state_dict(text_tower)
    assert adapters and all(k.endswith(("lora_A", "lora_B")) for k in adapters)
    assert "model.modality_trunks.text.blocks.0.attn.in_proj_weight" in base_state_dict(text_tower)
    config = {"out_embed_dim": 16, "text_embed_dim": 32, "text_num_blocks": 1, "text_num_heads": 2}
    fresh = ModalityTower(build_tower("text", config, seed=0), "text")
    apply_lora(fresh, LoRAConfig(rank=4))
    fresh.load_state_dict(adapters, strict=False)
    assert torch.allclose(fresh(ids), expected, atol=1e-6)


def test_lora_linear_exposes_the_effective_weight():
    base = torch.nn.Linear(6, 5)
    layer = LoRALinear(base, rank=2, alpha=4)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(3, 6)
    direct = torch.nn.functional.linear(x, layer.weight, layer.bias)
    assert torch.allclose(layer(x), direct, atol=1e-5)


def test_bad_lora_settings_are_rejected(text_tower):
    with pytest.raises(InvalidConfig, match="rank"):
        LoRAConfig(rank=0)
    with pytest.raises(InvalidConfig, match="qkv"):
        LoRAConfig(targets=("qkv",))
    with pytest.raises(InvalidConfig, match="No LoRA target"):
        apply_lora(torch.nn.Sequential(torch.nn.Linear(2, 2)), LoRAConfig())
