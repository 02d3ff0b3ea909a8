"""The same reference checks on CUDA (skipped on machines without a GPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from embedstore.encoders.imagebind import ImageBindEncoder
from embedstore.encoders.imagebind.encoder import load_checkpoint

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]
CASES = ["vision", "vision_252", "text", "audio", "depth", "thermal", "imu"]


@pytest.mark.parametrize(
    ("precision", "min_cos"), [("fp32", 0.99999), ("bf16", 0.999), ("fp16", 0.999)]
)
def test_cuda_embeddings_match_the_official_cpu_outputs(
    imagebind_fixtures: Path,
    tiny_a_config: dict[str, Any],
    tiny_a_io: dict[str, Any],
    precision: str,
    min_cos: float,
) -> None:
    model = load_checkpoint(tiny_a_config, imagebind_fixtures / "tiny_a_state_dict.pt")
    enc = ImageBindEncoder("tiny_a", model, version="tiny_a", device="cuda", precision=precision)
    for case in CASES:
        ref = tiny_a_io[case]
        got = enc.encode(ref["modality"], ref["input"])
        want = ref["output_normalized"].numpy()
        assert (got * want).sum(axis=1).min() >= min_cos, (case, precision)
        if precision == "fp32":
            np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
