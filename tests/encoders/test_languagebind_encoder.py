"""The LanguageBind encoders load hub-style checkpoint folders and embed like the official towers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from testdata import LANGUAGEBIND_FIXTURES, require_data

from embedstore.encoders import create_encoder, get_encoder_info, list_encoders
from embedstore.errors import ChecksumMismatch, WeightsNotFound

# the official outputs are float32; our towers reproduce them to < 3e-7 (LoRA merged: < 2e-7
# more), so 1e-5 on unit vectors is the fixtures' README tolerance with a wide margin
ATOL = 1e-5
FOLDERS = {
    "image": "LanguageBind_Image",
    "video": "LanguageBind_Video_FT",
    "depth": "LanguageBind_Depth",
    "thermal": "LanguageBind_Thermal",
}


def _io(tower: str) -> dict[str, Any]:
    return torch.load(LANGUAGEBIND_FIXTURES / f"tiny_a_{tower}_io.pt", weights_only=True)


def hub_folder(weights_dir: Path, tower: str, *, safetensors: bool = False) -> Path:
    """A checkpoint folder as the hub ships it: config.json plus the official state dict."""
    require_data(
        LANGUAGEBIND_FIXTURES, f"LanguageBind fixtures not found at {LANGUAGEBIND_FIXTURES}"
    )
    folder = weights_dir / "languagebind" / FOLDERS[tower]
    folder.mkdir(parents=True)
    shutil.copy(LANGUAGEBIND_FIXTURES / f"tiny_a_{tower}_config.json", folder / "config.json")
    state = torch.load(LANGUAGEBIND_FIXTURES / f"tiny_a_{tower}_state_dict.pt", weights_only=True)
    if safetensors:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, folder / "model.safetensors")
    else:
        torch.save(state, folder / "pytorch_model.bin")
    return folder


def test_registry_lists_the_family() -> None:
    names = {e.name for e in list_encoders() if e.family == "languagebind"}
    assert {
        "languagebind",
        "languagebind_test",
        "languagebind_image",
        "languagebind_video",
        "languagebind_video_v15",
        "languagebind_video_huge_v15",
        "languagebind_audio",
        "languagebind_depth",
        "languagebind_thermal",
    } <= names
    assert get_encoder_info("languagebind_video_huge_v15").dim == 1024
    assert get_encoder_info("languagebind").dim == 768


@pytest.mark.parametrize("safetensors", [False, True])
def test_one_tower_from_a_local_folder_matches_the_official_outputs(
    tmp_path: Path, safetensors: bool
) -> None:
    hub_folder(tmp_path, "depth", safetensors=safetensors)  # LoRA: merged at load
    enc = create_encoder("languagebind_depth", device="cpu", weights_dir=tmp_path)
    assert enc.modalities == {"text", "depth"} and enc.dim == 16
    io = _io("depth")
    np.testing.assert_allclose(
        enc.encode("depth", io["pixel_values"]),
        io["image_embeds_normalized"].numpy(),
        atol=ATOL,
        rtol=0,
    )
    np.testing.assert_allclose(
        enc.encode("text", io["input_ids"]), io["text_embeds_normalized"].numpy(), atol=ATOL, rtol=0
    )
    assert all(getattr(m, "merged", True) for m in enc.towers.modules())


def test_video_clips_go_through_the_video_tower(tmp_path: Path) -> None:
    folder = hub_folder(tmp_path, "video")
    enc = create_encoder("languagebind_video", device="cpu", weights_path=folder)
    io = _io("video")
    np.testing.assert_allclose(
        enc.encode("vision", io["pixel_values"]),
        io["image_embeds_normalized"].numpy(),
        atol=ATOL,
        rtol=0,
    )


def test_languagebind_uses_the_checkpoints_present(tmp_path: Path) -> None:
    hub_folder(tmp_path, "image")
    hub_folder(tmp_path, "depth")  # both tiny towers project to 16-d, like the hub's 768-d ones
    enc = create_encoder("languagebind", device="cpu", weights_dir=tmp_path)
    assert enc.modalities == {"text", "vision", "depth"}
    for tower, modality in (("image", "vision"), ("depth", "depth")):
        io = _io(tower)
        got = enc.encode(modality, io["pixel_values"])
        np.testing.assert_allclose(got, io["image_embeds_normalized"].numpy(), atol=ATOL, rtol=0)
    io = _io("image")  # text comes from the Image checkpoint
    np.testing.assert_allclose(
        enc.encode("text", io["input_ids"]), io["text_embeds_normalized"].numpy(), atol=ATOL, rtol=0
    )


def test_offline_without_checkpoints_names_the_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants as hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)  # read at import time
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(WeightsNotFound) as err:
        create_encoder("languagebind_thermal", device="cpu", weights_dir=tmp_path / "w")
    assert str(tmp_path / "w" / "languagebind" / "LanguageBind_Thermal") in str(err.value)
    assert "huggingface.co/LanguageBind/LanguageBind_Thermal" in str(err.value)
    with pytest.raises(WeightsNotFound, match="LanguageBind_Audio_FT"):
        create_encoder("languagebind", device="cpu", weights_dir=tmp_path / "w")


def test_a_checkpoint_that_does_not_fit_its_config_is_refused(tmp_path: Path) -> None:
    folder = hub_folder(tmp_path, "thermal")
    config = json.loads((folder / "config.json").read_text())
    config["vision_config"]["num_hidden_layers"] = 2
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ChecksumMismatch, match="pytorch_model.bin does not match"):
        create_encoder("languagebind_thermal", device="cpu", weights_dir=tmp_path)


def test_languagebind_test_is_deterministic_and_unit_norm() -> None:
    a = create_encoder("languagebind_test", device="cpu")
    b = create_encoder("languagebind_test", device="cpu")
    x = torch.randn(2, 3, 8, 224, 224, generator=torch.Generator().manual_seed(0))
    va, vb = a.encode("vision", x), b.encode("vision", x)
    assert np.array_equal(va, vb)
    np.testing.assert_allclose(np.linalg.norm(va, axis=1), 1.0, atol=1e-6)
    assert a.encode("audio", torch.zeros(0, 3, 112, 1036)).shape == (0, 32)
