"""The hub checkpoints: repository names and their full-size ``config.json`` settings.

`hub_config` writes a config dict with the keys the hub's ``config.json`` uses, so a tower can be
built (e.g. on the meta device) before anything is downloaded; a downloaded ``config.json`` always
takes precedence over these.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

HUB_ORG = "LanguageBind"
VIT_L = {
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
}
VIT_H = {
    "hidden_size": 1280,
    "num_hidden_layers": 32,
    "num_attention_heads": 16,
    "intermediate_size": 5120,
}
TEXT_L = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
}
TEXT_H = {
    "hidden_size": 1024,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "intermediate_size": 4096,
}
MODEL_TYPES = {
    "image": "LanguageBindImage",
    "video": "LanguageBindVideo",
    "audio": "LanguageBindAudio",
    "depth": "LanguageBindDepth",
    "thermal": "LanguageBindThermal",
}


@dataclass(frozen=True)
class Checkpoint:
    """One hub checkpoint: its repository, the tower kind and the settings its config.json holds."""

    repo: str
    kind: str
    vision: dict[str, Any]
    text: dict[str, Any]
    projection_dim: int = 768

    @property
    def folder(self) -> str:
        """The repository's name without the organisation (the local folder name)."""
        return self.repo.split("/", 1)[1]


def _ckpt(name: str, kind: str, *, huge: bool = False, **vision: Any) -> Checkpoint:
    return Checkpoint(
        f"{HUB_ORG}/{name}",
        kind,
        {**(VIT_H if huge else VIT_L), **vision},
        TEXT_H if huge else TEXT_L,
        1024 if huge else 768,
    )


VIDEO: dict[str, Any] = {"num_frames": 8, "add_time_attn": True, "video_decode_backend": "decord"}
AUDIO: dict[str, Any] = {
    "audio_sample_rate": 16000,
    "audio_mean": -4.2677393,
    "audio_std": 4.5689974,
}
CHECKPOINTS: dict[str, Checkpoint] = {
    "image": _ckpt("LanguageBind_Image", "image"),
    "video": _ckpt("LanguageBind_Video_FT", "video", **VIDEO),
    "video_lora": _ckpt("LanguageBind_Video", "video", **VIDEO, lora_r=16, lora_alpha=16),
    "video_v15": _ckpt("LanguageBind_Video_V1.5_FT", "video", **VIDEO, clip_type="vl_new"),
    "video_huge_v15": _ckpt(
        "LanguageBind_Video_Huge_V1.5_FT", "video", huge=True, **VIDEO, clip_type="vl_new"
    ),
    "audio": _ckpt("LanguageBind_Audio_FT", "audio", **AUDIO, num_mel_bins=112, target_length=1036),
    "audio_lora": _ckpt(
        "LanguageBind_Audio",
        "audio",
        **AUDIO,
        num_mel_bins=126,
        target_length=1036,
        lora_r=16,
        lora_alpha=16,
    ),
    "depth": _ckpt("LanguageBind_Depth", "depth", max_depth=10, lora_r=2, lora_alpha=16),
    "thermal": _ckpt("LanguageBind_Thermal", "thermal", lora_r=2, lora_alpha=16),
}


def hub_config(checkpoint: Checkpoint) -> dict[str, Any]:
    """A ``config.json``-shaped dict for ``checkpoint`` (only the keys that shape the network)."""
    common = {"hidden_act": "gelu", "layer_norm_eps": 1e-5, "attention_dropout": 0.0}
    vision = {"image_size": 224, "patch_size": 14, "num_channels": 3, "lora_r": 0, **common}
    vision.update(copy.deepcopy(checkpoint.vision))
    text = {"vocab_size": 49408, "max_position_embeddings": 77, **common, **checkpoint.text}
    return {
        "model_type": MODEL_TYPES[checkpoint.kind],
        "projection_dim": checkpoint.projection_dim,
        "logit_scale_init_value": 2.6592,
        "text_config": text,
        "vision_config": vision,
    }
