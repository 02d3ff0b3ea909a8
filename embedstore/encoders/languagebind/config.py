"""The hub ``config.json`` of a LanguageBind tower, read into the few numbers that shape the network."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from embedstore.errors import InvalidConfig

TOWER_TYPES = {
    "LanguageBindImage": "image",
    "LanguageBindVideo": "video",
    "LanguageBindAudio": "audio",
    "LanguageBindDepth": "depth",
    "LanguageBindThermal": "thermal",
}
ACTIVATIONS = ("gelu", "quick_gelu", "gelu_new", "gelu_pytorch_tanh")


@dataclass(frozen=True)
class TransformerConfig:
    """Width, depth, heads, MLP size, activation and LayerNorm epsilon of one transformer stack."""

    width: int
    layers: int
    heads: int
    mlp: int
    act: str = "gelu"
    eps: float = 1e-5


@dataclass(frozen=True)
class TextConfig:
    """The CLIP text tower: vocabulary, context length and its transformer."""

    vocab_size: int
    context_length: int
    transformer: TransformerConfig


@dataclass(frozen=True)
class VisionConfig:
    """The modality tower: patch grid, frames, temporal attention, LoRA and preprocessing keys."""

    transformer: TransformerConfig
    patch_size: int
    grid: tuple[int, int]  # patches along height and width
    num_frames: int = 1
    add_time_attn: bool = False
    clip_type: str = "vl"  # "vl" (one class token, 2-D patches) or "vl_new" (per-frame, 3-D conv)
    tube_size: int = 1
    lora_r: int = 0
    lora_alpha: float = 1.0
    num_mel_bins: int = 0
    target_length: int = 0
    max_depth: float = 10.0
    audio_mean: float = -4.2677393
    audio_std: float = 4.5689974
    audio_sample_rate: int = 16000

    @property
    def input_size(self) -> tuple[int, int]:
        """(H, W) of the one input size the tower accepts."""
        return self.grid[0] * self.patch_size, self.grid[1] * self.patch_size

    @property
    def positions(self) -> int:
        """Rows of the position table: the grid plus the class token."""
        return self.grid[0] * self.grid[1] + 1


@dataclass(frozen=True)
class TowerConfig:
    """One hub checkpoint: a text tower, one modality tower and the shared projection size."""

    kind: str  # image, video, audio, depth, thermal
    text: TextConfig
    vision: VisionConfig
    projection_dim: int
    logit_scale_init: float = 2.6592


def _need(section: dict[str, Any], key: str, where: str) -> Any:
    if key not in section or section[key] is None:
        raise InvalidConfig(f"LanguageBind config: {where}.{key} is missing", field=key)
    return section[key]


def _transformer(section: dict[str, Any], where: str) -> TransformerConfig:
    act = str(section.get("hidden_act", "quick_gelu"))
    if act not in ACTIVATIONS:
        raise InvalidConfig(
            f"LanguageBind config: {where}.hidden_act {act!r} is not one of {', '.join(ACTIVATIONS)}",
            field="hidden_act",
        )
    width = int(_need(section, "hidden_size", where))
    heads = int(_need(section, "num_attention_heads", where))
    if width % heads:
        raise InvalidConfig(
            f"LanguageBind config: {where}.hidden_size {width} is not divisible by "
            f"num_attention_heads {heads}",
            field="num_attention_heads",
        )
    return TransformerConfig(
        width=width,
        layers=int(_need(section, "num_hidden_layers", where)),
        heads=heads,
        mlp=int(_need(section, "intermediate_size", where)),
        act=act,
        eps=float(section.get("layer_norm_eps", 1e-5)),
    )


def _image_size(value: Any) -> tuple[int, int]:
    if isinstance(value, list | tuple):
        return int(value[0]), int(value[-1])
    return int(value), int(value)


def parse_config(config: dict[str, Any]) -> TowerConfig:
    """Read a tower's ``config.json`` (as the hub writes it) into a `TowerConfig`."""
    if not isinstance(config, dict):
        raise InvalidConfig("LanguageBind config must be a dict (the checkpoint's config.json)")
    model_type = config.get("model_type")
    if model_type not in TOWER_TYPES:
        raise InvalidConfig(
            f"LanguageBind config: model_type {model_type!r} is not one of {', '.join(TOWER_TYPES)}",
            field="model_type",
        )
    kind = TOWER_TYPES[model_type]
    text_cfg = _need(config, "text_config", "config")
    vis_cfg = _need(config, "vision_config", "config")
    text = TextConfig(
        vocab_size=int(_need(text_cfg, "vocab_size", "text_config")),
        context_length=int(text_cfg.get("max_position_embeddings", 77)),
        transformer=_transformer(text_cfg, "text_config"),
    )
    patch = int(_need(vis_cfg, "patch_size", "vision_config"))
    mel = int(vis_cfg.get("num_mel_bins") or 0)
    target = int(vis_cfg.get("target_length") or 0)
    if kind == "audio":
        if mel <= 0 or target <= 0:
            raise InvalidConfig(
                "LanguageBind config: an audio tower needs vision_config.num_mel_bins and "
                "target_length",
                field="num_mel_bins",
            )
        height, width = mel, target
    else:
        height, width = _image_size(_need(vis_cfg, "image_size", "vision_config"))
    video = kind == "video"
    add_time = bool(vis_cfg.get("add_time_attn", False))
    if video and not add_time:
        raise InvalidConfig(
            "LanguageBind config: a video tower without add_time_attn cannot run (the official "
            "class builds no embeddings then)",
            field="add_time_attn",
        )
    if add_time and not video:
        raise InvalidConfig(
            f"LanguageBind config: add_time_attn on a {kind} tower (temporal MLP) is not supported",
            field="add_time_attn",
        )
    clip_type = str(vis_cfg.get("clip_type") or "vl")
    if clip_type not in ("vl", "vl_new"):
        raise InvalidConfig(
            f"LanguageBind config: clip_type {clip_type!r} is not 'vl' or 'vl_new'",
            field="clip_type",
        )
    tube = int(vis_cfg.get("tube_size") or 1)
    if tube != 1:
        raise InvalidConfig("LanguageBind config: only tube_size 1 is supported", field="tube_size")
    vision = VisionConfig(
        transformer=_transformer(vis_cfg, "vision_config"),
        patch_size=patch,
        grid=(height // patch, width // patch),
        num_frames=int(vis_cfg.get("num_frames") or 1) if video else 1,
        add_time_attn=add_time,
        clip_type=clip_type if video else "vl",
        tube_size=tube,
        lora_r=int(vis_cfg.get("lora_r") or 0),
        lora_alpha=float(vis_cfg.get("lora_alpha") or 1.0),
        num_mel_bins=mel,
        target_length=target,
        max_depth=float(vis_cfg.get("max_depth") or 10.0),
        audio_mean=float(vis_cfg.get("audio_mean", -4.2677393)),
        audio_std=float(vis_cfg.get("audio_std", 4.5689974)),
        audio_sample_rate=int(vis_cfg.get("audio_sample_rate") or 16000),
    )
    return TowerConfig(
        kind=kind,
        text=text,
        vision=vision,
        projection_dim=int(_need(config, "projection_dim", "config")),
        logit_scale_init=float(config.get("logit_scale_init_value", 2.6592)),
    )
