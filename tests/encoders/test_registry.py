"""The encoder registry and the registered tiny encoders, used the way the engine uses them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tolerances import SAME_CPU

from embedstore.encoders import (
    Encoder,
    create_encoder,
    get_encoder_info,
    list_encoders,
    register_encoder,
)
from embedstore.errors import InvalidConfig, InvalidInput, UnknownEncoder, UnsupportedModality

MODALITIES = {"vision", "text", "audio", "depth", "thermal", "imu"}


def batches(n: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.zeros(n, 77, dtype=torch.long)
    ids[:, 0] = 49406
    ids[:, 1] = torch.arange(n) + 320
    ids[:, 2] = 49407
    return {
        "vision": torch.randn(n, 3, 224, 224, generator=g),
        "text": ids,
        "audio": torch.randn(n, 3, 1, 128, 204, generator=g),
        "depth": torch.randn(n, 1, 224, 224, generator=g),
        "thermal": torch.randn(n, 1, 224, 224, generator=g),
        "imu": torch.randn(n, 6, 2000, generator=g),
    }


def test_list_encoders_describes_the_builtin_encoders() -> None:
    infos = {i.name: i for i in list_encoders()}
    assert {"imagebind_huge", "imagebind_test", "openclip_test", "openclip_vit_b_32"} <= set(infos)
    huge = infos["imagebind_huge"]
    assert (huge.family, huge.dim, huge.modalities) == ("imagebind", 1024, frozenset(MODALITIES))
    assert huge.weights_file == "imagebind_huge.pth"
    assert infos["imagebind_test"].dim == 64 and infos["imagebind_test"].weights_file is None
    assert infos["openclip_vit_b_32"].modalities == {"vision", "text"}
    assert huge.as_dict()["modalities"] == sorted(MODALITIES)


def test_weights_present_looks_in_the_weights_dir(tmp_path: Path) -> None:
    huge = get_encoder_info("imagebind_huge")
    assert not huge.weights_present(tmp_path)
    (tmp_path / "imagebind_huge.pth").write_bytes(b"x")
    assert huge.weights_present(tmp_path)
    assert get_encoder_info("imagebind_test").weights_present(tmp_path)


def test_unknown_encoder_names_the_known_ones() -> None:
    with pytest.raises(UnknownEncoder, match="imagebind_huge.*imagebind_test"):
        get_encoder_info("imagebind_giant")
    with pytest.raises(UnknownEncoder, match="openclip:<model>"):
        create_encoder("nope", device="cpu")
    with pytest.raises(UnknownEncoder, match="OpenCLIP model 'NoSuchNet'"):
        get_encoder_info("openclip:NoSuchNet")


def test_a_registered_family_is_created_by_name() -> None:
    class Constant(Encoder):
        def __init__(self, **kwargs: Any) -> None:
            self.name, self.dim, self.version = "constant", 3, "1"
            self.modalities = frozenset({"text"})
            self.device = torch.device("cpu")

        def encode(self, modality: str, batch: torch.Tensor) -> np.ndarray:
            self.check_modality(modality)
            return np.tile(np.float32([1, 0, 0]), (len(batch), 1))

    register_encoder("constant_for_test", family="demo", dim=3, modalities=["text"], replace=True)(
        Constant
    )
    enc = create_encoder("constant_for_test")
    assert enc.encode("text", torch.zeros(2, 77)).shape == (2, 3)
    with pytest.raises(ValueError, match="registered already"):
        register_encoder("constant_for_test", family="demo", dim=3, modalities=["text"])(Constant)
    with pytest.raises(UnsupportedModality, match="constant.*'vision'"):
        enc.encode("vision", torch.zeros(1, 3, 224, 224))


def test_imagebind_test_embeds_every_modality_deterministically() -> None:
    a = create_encoder("imagebind_test", device="cpu")
    b = create_encoder("imagebind_test", device="cpu")
    assert a is not b  # nothing is cached here
    assert (a.name, a.dim, a.modalities, a.version) == (
        "imagebind_test",
        64,
        frozenset(MODALITIES),
        "imagebind_test:seed0/fp32",
    )
    for modality, batch in batches().items():
        va, vb = a.encode(modality, batch), b.encode(modality, batch)
        assert va.dtype == np.float32 and va.shape == (2, 64), modality
        np.testing.assert_allclose(np.linalg.norm(va, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(va, vb, **SAME_CPU)  # two seeded models, one CPU
        assert not np.allclose(va[0], va[1]), modality


def test_vision_takes_images_and_single_clips() -> None:
    enc = create_encoder("imagebind_test", device="cpu")
    images = batches(3)["vision"]
    clips = torch.stack([images, images.flip(0)], dim=2)  # (3, 3, 2, 224, 224): one clip per item
    assert enc.encode("vision", clips).shape == (3, 64)
    still = images.unsqueeze(2).expand(-1, -1, 2, -1, -1)
    np.testing.assert_allclose(enc.encode("vision", still), enc.encode("vision", images), atol=1e-5)


def test_audio_clips_are_averaged_per_item() -> None:
    enc = create_encoder("imagebind_test", device="cpu")
    audio = batches(2)["audio"]
    per_clip = enc.encode("audio", audio.flatten(0, 1))  # 4-D: one clip per row
    mean = per_clip.reshape(2, 3, -1).mean(axis=1)
    mean /= np.linalg.norm(mean, axis=1, keepdims=True)
    np.testing.assert_allclose(enc.encode("audio", audio), mean, atol=1e-5)


def test_bad_batches_raise_our_errors() -> None:
    enc = create_encoder("imagebind_test", device="cpu")
    with pytest.raises(InvalidInput, match="imu"):
        enc.encode("imu", torch.zeros(2, 3, 2000))
    with pytest.raises(InvalidInput, match="torch.Tensor"):
        enc.encode("text", [[1, 2]])  # type: ignore[arg-type]
    with pytest.raises(UnsupportedModality):
        enc.encode("smell", torch.zeros(1, 4))
    with pytest.raises(InvalidConfig, match="precision"):
        create_encoder("imagebind_test", device="cpu", precision="fp8")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_on_cpu_stays_close_to_fp32(precision: str) -> None:
    full = create_encoder("imagebind_test", device="cpu")
    low = create_encoder("imagebind_test", device="cpu", precision=precision)
    assert low.version.endswith(precision)
    for modality, batch in batches().items():
        cos = (full.encode(modality, batch) * low.encode(modality, batch)).sum(axis=1)
        assert cos.min() >= 0.999, (modality, cos)


@pytest.mark.parametrize("name", ["imagebind_test", "openclip_test"])
def test_an_empty_batch_gives_an_empty_matrix(name: str) -> None:
    enc = create_encoder(name, device="cpu")
    out = enc.encode("text", torch.zeros(0, 77, dtype=torch.long))
    assert out.shape == (0, enc.dim) and out.dtype == np.float32
