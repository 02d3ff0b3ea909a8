"""Our LanguageBind towers reproduce the official tiny towers at every exposed stage."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest
import torch
from testdata import LANGUAGEBIND_FIXTURES, require_data

from embedstore.encoders.languagebind import LanguageBindModel
from embedstore.encoders.languagebind.presets import CHECKPOINTS, hub_config
from embedstore.errors import InvalidConfig, InvalidInput

TOWERS = ["image", "video", "video_v15", "audio", "depth", "thermal"]
# Tolerances from the fixtures' README §1.2: float64 re-runs of the official model differ from
# its float32 outputs by up to 1.9e-7 on normalised embeddings, 7.8e-7 on pooled outputs and
# 2.4e-6 on hidden states (magnitudes up to ~5); float32 reorderings (fused attention) stay
# well inside 1e-5 / 3e-5, while every deliberate mistake the README lists moves them further.
EMBED_ATOL = 1e-5
HIDDEN_ATOL = 3e-5


@cache
def _load(tower: str) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, Any]]:
    require_data(
        LANGUAGEBIND_FIXTURES, f"LanguageBind fixtures not found at {LANGUAGEBIND_FIXTURES}"
    )
    root = LANGUAGEBIND_FIXTURES
    cfg = json.loads((root / f"tiny_a_{tower}_config.json").read_text())
    state = torch.load(root / f"tiny_a_{tower}_state_dict.pt", weights_only=True)
    io = torch.load(root / f"tiny_a_{tower}_io.pt", weights_only=True)
    return cfg, state, io


def _model(tower: str) -> LanguageBindModel:
    cfg, state, _ = _load(tower)
    model = LanguageBindModel.from_config(cfg)
    model.load_state_dict(state, strict=True)
    return model.eval()


def close(actual: Any, expected: Any, atol: float) -> None:
    torch.testing.assert_close(actual, expected, atol=atol, rtol=0)


@pytest.mark.parametrize("tower", TOWERS)
def test_state_dict_keys_and_shapes_are_the_official_ones(tower: str) -> None:
    _, state, _ = _load(tower)
    ours = _model(tower).state_dict()
    assert list(ours) == list(state)  # the same keys in the same order, position_ids included
    assert all(torch.equal(ours[k], v) for k, v in state.items())


@pytest.mark.parametrize("tower", ["image", "video"])
def test_strict_load_with_and_without_position_ids_and_rejects_other_keys(tower: str) -> None:
    cfg, state, _ = _load(tower)
    without = {k: v for k, v in state.items() if not k.endswith("position_ids")}
    LanguageBindModel.from_config(cfg).load_state_dict(without, strict=True)
    missing = dict(state)
    key = next(k for k in state if "layers.1.self_attn.q_proj.weight" in k and "vision" in k)
    missing.pop(key)
    with pytest.raises(RuntimeError, match="q_proj"):
        LanguageBindModel.from_config(cfg).load_state_dict(missing, strict=True)
    bad_ids = dict(state)
    bad_ids["text_model.embeddings.position_ids"] = state[
        "text_model.embeddings.position_ids"
    ].flip(-1)
    with pytest.raises(RuntimeError, match="position_ids"):
        LanguageBindModel.from_config(cfg).load_state_dict(bad_ids, strict=True)


@pytest.mark.parametrize("tower", TOWERS)
def test_outputs_and_intermediates_match_the_official_tower(tower: str) -> None:
    _, _, io = _load(tower)
    model = _model(tower)
    with torch.no_grad():
        out = model.forward_all(io["input_ids"], io["pixel_values"], io["attention_mask"])
    for key in (
        "text_embeddings",
        "text_last_hidden_state",
        "vision_embeddings",
        "pre_layrnorm",
        "vision_last_hidden_state",
        "patch_embeds",
    ):
        close(out[key], io[key], HIDDEN_ATOL)
    for key in ("text_hidden_states", "vision_hidden_states"):
        assert len(out[key]) == len(io[key])
        for a, b in zip(out[key], io[key], strict=True):
            close(a, b, HIDDEN_ATOL)
    for key in (
        "text_pooled_output",
        "vision_pooled_output",
        "text_embeds",
        "image_embeds",
        "text_embeds_normalized",
        "image_embeds_normalized",
    ):
        close(out[key], io[key], EMBED_ATOL)
    scale = float(model.logit_scale.detach().exp())
    close(out["logits_per_text"], io["logits_per_text"], EMBED_ATOL * scale)
    assert torch.equal(out["text_eos_index"], io["text_eos_index"])


@pytest.mark.parametrize("tower", TOWERS)
def test_embed_text_and_embed_modality_match_within_1e5(tower: str) -> None:
    _, _, io = _load(tower)
    model = _model(tower)
    with torch.no_grad():
        text = model.embed_text(io["input_ids"], io["attention_mask"])
        text_nomask = model.embed_text(io["input_ids"])
        mod = model.embed_modality(io["pixel_values"])
    assert text.dtype == mod.dtype == torch.float32
    close(text, io["text_embeds_normalized"], EMBED_ATOL)
    close(text_nomask, io["text_embeds_normalized"], EMBED_ATOL)
    close(mod, io["image_embeds_normalized"], EMBED_ATOL)
    close(mod.norm(dim=-1), torch.ones(len(mod)), 1e-6)


def _hooked(model: LanguageBindModel, io: dict[str, Any]) -> dict[str, list[torch.Tensor]]:
    seen: dict[str, list[torch.Tensor]] = {"q": [], "tin": [], "tout": []}
    hooks = []
    for layer in model.vision_model.encoder.layers:
        video = hasattr(layer, "temporal_attn")
        attn = layer.temporal_attn if video else layer.self_attn
        hooks.append(attn.q_proj.register_forward_hook(lambda m, a, o: seen["q"].append(o)))
        if video:
            hooks.append(
                layer.temporal_layer_norm1.register_forward_hook(
                    lambda m, a, o: seen["tin"].append(a[0])
                )
            )
            hooks.append(
                layer.temporal_attn.register_forward_hook(lambda m, a, o: seen["tout"].append(o))
            )
    with torch.no_grad():
        model.embed_modality(io["pixel_values"])
    for h in hooks:
        h.remove()
    return seen


@pytest.mark.parametrize("tower", TOWERS)
def test_lora_targets_and_temporal_block_match(tower: str) -> None:
    """The (LoRA'd) q_proj of the targeted attention, and the temporal block's input and output."""
    _, _, io = _load(tower)
    seen = _hooked(_model(tower), io)
    for a, b in zip(seen["q"], io["lora_target_q_proj_output"], strict=True):
        close(a, b, HIDDEN_ATOL)
    if "temporal_input" in io:
        for a, b in zip(seen["tin"], io["temporal_input"], strict=True):
            close(a, b, HIDDEN_ATOL)
        for a, b in zip(seen["tout"], io["temporal_attn_output"], strict=True):
            close(a, b, HIDDEN_ATOL)


@pytest.mark.parametrize("tower", ["video", "depth", "thermal"])
def test_merged_lora_stays_within_tolerance_and_matters(tower: str) -> None:
    _, state, io = _load(tower)
    model = _model(tower)
    assert model.merge_lora() == 4 * len(model.vision_model.encoder.layers)
    assert model.merge_lora() == 0
    with torch.no_grad():
        merged = model.embed_modality(io["pixel_values"])
    close(merged, io["image_embeds_normalized"], EMBED_ATOL)
    # the LoRA term is not negligible: dropping it moves the embeddings far beyond the tolerance
    cfg, _, _ = _load(tower)
    plain = LanguageBindModel.from_config(cfg)
    plain.load_state_dict(state, strict=True)
    for m in plain.modules():
        if hasattr(m, "merged"):
            m.merged = True
    with torch.no_grad():
        assert (plain.embed_modality(io["pixel_values"]) - merged).abs().max() > 1e-2


def test_wrapper_outputs_scale_modalities_by_their_own_logit_scale() -> None:
    require_data(LANGUAGEBIND_FIXTURES, "LanguageBind fixtures missing")
    wrapper = torch.load(LANGUAGEBIND_FIXTURES / "tiny_a_wrapper_io.pt", weights_only=True)
    outputs = wrapper["outputs"]
    assert set(outputs) == {"video", "audio", "thermal", "depth", "image", "language"}
    for tower in ("video", "audio", "thermal", "depth", "image"):
        model = _model(tower)
        with torch.no_grad():
            emb = model.embed_modality(_load(tower)[2]["pixel_values"]) * model.logit_scale.exp()
        close(emb, outputs[tower], EMBED_ATOL * float(model.logit_scale.detach().exp()))
    with torch.no_grad():
        lang = _model("image").embed_text(_load("image")[2]["input_ids"])
    close(lang, outputs["language"], EMBED_ATOL)


def test_official_probes_are_rejected_with_our_errors() -> None:
    image, video = _model("image"), _model("video")
    with pytest.raises(InvalidInput, match="takes"):
        image.embed_modality(torch.zeros(1, 3, 48, 48))
    with pytest.raises(InvalidInput):
        image.embed_modality(torch.zeros(1, 1, 32, 32))
    with pytest.raises(InvalidInput, match="exactly 3 frames"):
        video.embed_modality(torch.zeros(1, 3, 4, 32, 32))
    with pytest.raises(InvalidInput, match="at most 77"):
        image.embed_text(torch.zeros(1, 78, dtype=torch.long))
    _, _, io = _load("image")
    frames = io["pixel_values"][:1, :, None].expand(1, 3, 2, 32, 32)
    with torch.no_grad():  # a 5-D input to an image tower averages its frames after the LN
        close(image.embed_modality(frames), io["image_embeds_normalized"][:1], EMBED_ATOL)
    _, _, vio = _load("video")
    flat = vio["pixel_values"].transpose(1, 2).flatten(0, 1)  # (B·T, 3, H, W): one output per image
    with torch.no_grad():
        assert video.embed_modality(flat).shape == (flat.shape[0], video.dim)
    with pytest.raises(InvalidConfig, match="model_type"):
        LanguageBindModel.from_config({"model_type": "CLIPModel"})


# README §3 of the fixtures: the hub checkpoints' key counts (incl. the two position_ids) and
# parameter counts, from the official classes on the meta device.
FULL = {
    "image": (592, 427_616_513),
    "video": (856, 528_623_873),
    "video_lora": (1048, 531_769_601),
    "video_v15": (856, 528_631_041),
    "video_huge_v15": (1264, 1_196_407_041),
    "audio": (592, 427_960_577),
    "audio_lora": (784, 431_182_081),
    "depth": (784, 428_009_729),
    "thermal": (784, 428_009_729),
}


@pytest.mark.parametrize("name", sorted(FULL))
def test_full_size_configs_build_on_meta_with_the_official_counts(name: str) -> None:
    with torch.device("meta"):
        model = LanguageBindModel.from_config(hub_config(CHECKPOINTS[name]))
    keys, params = FULL[name]
    assert len(model.state_dict()) == keys
    assert sum(p.numel() for p in model.parameters()) == params


@pytest.mark.parametrize("tower", ["video", "depth", "thermal"])
def test_lora_rank_and_placement_come_from_the_keys(tower: str) -> None:
    """Hub configs of LoRA towers record no rank: the checkpoint's keys decide (README §3)."""
    cfg, state, io = _load(tower)
    hub_like = json.loads(json.dumps(cfg))
    hub_like["vision_config"]["lora_r"] = 0
    model = LanguageBindModel.from_config(hub_like)
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        close(
            model.eval().embed_modality(io["pixel_values"]),
            io["image_embeds_normalized"],
            EMBED_ATOL,
        )
    # LoRA on q and v only: the other projections lose their adapters, loading stays strict
    partial = {
        k: v for k, v in state.items() if not (".lora_" in k and ("k_proj" in k or "out_proj" in k))
    }
    model = LanguageBindModel.from_config(cfg)
    model.load_state_dict(partial, strict=True)
    assert sum(1 for k in model.state_dict() if ".lora_A." in k) == sum(
        1 for k in partial if ".lora_A." in k
    )
    # and a checkpoint without LoRA loads into a LoRA config with the plain key layout
    image_cfg, image_state, _ = _load("image")
    lora_cfg = json.loads(json.dumps(image_cfg))
    lora_cfg["vision_config"]["lora_r"] = 4
    LanguageBindModel.from_config(lora_cfg).load_state_dict(image_state, strict=True)


@pytest.mark.parametrize("tower", ["image", "video_v15"])
def test_text_without_attention_mask_matches_the_official_extras(tower: str) -> None:
    """Without the padding mask only the padding rows change; the pooled row does not."""
    _, _, io = _load(tower)
    model = _model(tower)
    out: dict[str, Any] = {}
    with torch.no_grad():
        pooled = model.text_model(io["input_ids"], None, collect=out)
    extras = io["extras"]
    close(
        out["text_last_hidden_state"],
        extras["text_last_hidden_state_without_attention_mask"],
        HIDDEN_ATOL,
    )
    close(pooled, extras["text_pooled_output_without_attention_mask"], EMBED_ATOL)
    close(model.text_projection(pooled), extras["get_text_features"], EMBED_ATOL)
