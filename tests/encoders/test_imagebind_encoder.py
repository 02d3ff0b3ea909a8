"""The ImageBind encoder on the official tiny weights: checkpoint loading and precisions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from embedstore.encoders.imagebind import ImageBindEncoder
from embedstore.encoders.imagebind.encoder import load_checkpoint

CASES = ["vision", "vision_video", "vision_252", "text", "audio", "depth", "thermal", "imu"]


@pytest.fixture(scope="module")
def checkpoint_model(imagebind_fixtures: Path, tiny_a_config: dict[str, Any]):  # type: ignore[no-untyped-def]
    return load_checkpoint(tiny_a_config, imagebind_fixtures / "tiny_a_state_dict.pt")


def encoder_input(case: str, x: torch.Tensor) -> torch.Tensor:
    return x.flatten(0, 1) if case == "vision_video" else x  # the encoder takes single clips


def expected(case: str, ref: dict[str, Any]) -> torch.Tensor:
    if case == "vision_video":
        return torch.nn.functional.normalize(ref["postprocessor_output"], dim=-1)
    return ref["output_normalized"]


def test_checkpoint_loading_copies_the_weights_exactly(
    checkpoint_model,
    tiny_a_state: dict[str, torch.Tensor],  # type: ignore[no-untyped-def]
) -> None:
    state = checkpoint_model.state_dict()
    assert list(state) == list(tiny_a_state)
    assert all(torch.equal(state[k], v) for k, v in tiny_a_state.items())


def test_fp32_encoder_matches_the_official_outputs(checkpoint_model, tiny_a_io) -> None:  # type: ignore[no-untyped-def]
    enc = ImageBindEncoder("tiny_a", checkpoint_model, version="tiny_a", device="cpu")
    for case in CASES:
        ref = tiny_a_io[case]
        got = enc.encode(ref["modality"], encoder_input(case, ref["input"]))
        np.testing.assert_allclose(got, expected(case, ref).numpy(), atol=1e-5, rtol=0)


def test_images_use_a_2d_patch_kernel_equal_to_the_3d_stem(checkpoint_model, tiny_a_io) -> None:  # type: ignore[no-untyped-def]
    images = tiny_a_io["vision"]["input"]
    fast = checkpoint_model.image_tokens(images)
    official = checkpoint_model.preprocess("vision", images)  # frames repeated, Conv3d
    assert fast is not None and fast.shape == official.shape
    torch.testing.assert_close(fast, official, atol=1e-5, rtol=1e-5)  # rounding only
    clips = tiny_a_io["vision_video"]["input"].flatten(0, 1)
    assert checkpoint_model.image_tokens(clips) is None  # real clips keep the 3-D kernel


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_cosine_to_the_official_fp32(
    imagebind_fixtures: Path,
    tiny_a_config,
    tiny_a_io,
    precision: str,  # type: ignore[no-untyped-def]
) -> None:
    model = load_checkpoint(tiny_a_config, imagebind_fixtures / "tiny_a_state_dict.pt")
    enc = ImageBindEncoder("tiny_a", model, version="tiny_a", device="cpu", precision=precision)
    for case in CASES:
        ref = tiny_a_io[case]
        got = enc.encode(ref["modality"], encoder_input(case, ref["input"]))
        cos = (got * expected(case, ref).numpy()).sum(axis=1)
        assert cos.min() >= 0.999, (case, precision, cos)
