"""OpenCLIP encoders: the tiny seeded one, and a named model from a local checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tolerances import SAME_CPU

from embedstore.encoders import create_encoder, get_encoder_info
from embedstore.errors import UnsupportedModality, WeightsNotFound


def token_ids(n: int) -> torch.Tensor:
    ids = torch.zeros(n, 77, dtype=torch.long)
    ids[:, 0] = 49406
    ids[:, 1] = torch.arange(n) + 320
    ids[:, 2] = 49407
    return ids


@pytest.fixture(scope="module")
def tiny():  # type: ignore[no-untyped-def]
    return create_encoder("openclip_test", device="cpu")


def test_openclip_test_embeds_images_clips_and_text(tiny) -> None:  # type: ignore[no-untyped-def]
    images = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    v = tiny.encode("vision", images)  # 224 px in, resized to the model's 64 px
    t = tiny.encode("text", token_ids(2))
    assert v.shape == (3, 32) and t.shape == (2, 32) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    still = images.unsqueeze(2).expand(-1, -1, 2, -1, -1)
    np.testing.assert_allclose(tiny.encode("vision", still), v, atol=1e-5)
    with pytest.raises(UnsupportedModality, match="audio"):
        tiny.encode("audio", torch.zeros(1, 3, 1, 128, 204))


def test_openclip_test_is_deterministic(tiny) -> None:  # type: ignore[no-untyped-def]
    again = create_encoder("openclip_test", device="cpu")
    ids = token_ids(2)
    np.testing.assert_allclose(tiny.encode("text", ids), again.encode("text", ids), **SAME_CPU)
    assert tiny.version == again.version == "openclip_test:seed0/fp32"


def test_named_model_loads_a_local_checkpoint(tmp_path: Path) -> None:
    import open_clip

    from embedstore.encoders.openclip import TEST_CONFIG

    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "EmbedstoreTiny.json").write_text(json.dumps(TEST_CONFIG))
    open_clip.add_model_config(tmp_path / "configs")
    reference = open_clip.create_model("EmbedstoreTiny").eval()
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.save(reference.state_dict(), weights / "openclip_EmbedstoreTiny.pt")

    info = get_encoder_info("openclip:EmbedstoreTiny")
    assert (info.dim, info.family, info.modalities) == (32, "openclip", {"vision", "text"})
    assert info.weights_present(weights)
    enc = create_encoder("openclip:EmbedstoreTiny", device="cpu", weights_dir=weights)
    ids = token_ids(2)
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(reference.encode_text(ids), dim=-1)
    np.testing.assert_allclose(enc.encode("text", ids), expected.numpy(), atol=1e-6)

    with pytest.raises(WeightsNotFound, match="never downloaded.*EMBEDSTORE_WEIGHTS_PATH"):
        create_encoder("openclip:EmbedstoreTiny", device="cpu", weights_dir=tmp_path / "empty")
