"""The LanguageBind encoders in the registry; the factories import the model code when called."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from embedstore.encoders.languagebind.presets import CHECKPOINTS
from embedstore.encoders.registry import register_encoder

FAMILY = "languagebind"
ALL_TOWERS = {
    "image": "image",
    "video": "video",
    "audio": "audio",
    "depth": "depth",
    "thermal": "thermal",
}
MODALITY = {
    "image": "vision",
    "video": "vision",
    "audio": "audio",
    "depth": "depth",
    "thermal": "thermal",
}
# encoder name -> (towers {kind: preset}, description)
NAMED: dict[str, tuple[dict[str, str], str]] = {
    "languagebind": (
        ALL_TOWERS,
        "LanguageBind (hub checkpoints present: Image, Video_FT, Audio_FT, Depth, Thermal); text "
        "from the Image checkpoint; 768-d",
    ),
    **{
        f"languagebind_{preset}": (
            {CHECKPOINTS[preset].kind: preset},
            f"LanguageBind {CHECKPOINTS[preset].folder} (hub) with its own text tower",
        )
        for preset in CHECKPOINTS
    },
}


def _factory(name: str, towers: dict[str, str]) -> Callable[..., Any]:
    def factory(
        *,
        device: str = "auto",
        precision: str = "fp32",
        weights_path: Path | None = None,
        weights_dir: Path | None = None,
    ) -> Any:
        from embedstore.encoders.languagebind.encoder import build_hub

        return build_hub(
            name,
            towers,
            device=device,
            precision=precision,
            weights_path=weights_path,
            weights_dir=weights_dir,
            require_all=name != "languagebind",
        )

    factory.__doc__ = f"{name}: the hub checkpoints {', '.join(towers.values())}"
    return factory


for _name, (_towers, _description) in NAMED.items():
    register_encoder(
        _name,
        family=FAMILY,
        dim=max(CHECKPOINTS[p].projection_dim for p in _towers.values()),
        modalities=("text", *sorted({MODALITY[k] for k in _towers})),
        description=_description,
        # what `embedstore encoders` checks (the text tower's checkpoint; the Hugging Face cache
        # and model.safetensors are found at load time too)
        weights_file=f"languagebind/{CHECKPOINTS[next(iter(_towers.values()))].folder}/pytorch_model.bin",
    )(_factory(_name, _towers))


@register_encoder(
    "languagebind_test",
    family=FAMILY,
    dim=32,
    modalities=("text", "vision", "audio", "depth", "thermal"),
    description="Tiny seeded random LanguageBind (five 32-d towers, real input sizes) for tests; "
    "no weights",
)
def languagebind_test(
    *,
    device: str = "auto",
    precision: str = "fp32",
    weights_path: Path | None = None,
    weights_dir: Path | None = None,
) -> Any:
    """Five tiny towers with seeded random weights (image, video, audio, depth, thermal)."""
    from embedstore.encoders.languagebind.encoder import build_test

    return build_test(device=device, precision=precision)
