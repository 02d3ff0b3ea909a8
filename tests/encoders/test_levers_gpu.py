"""The speed levers on CUDA: graph replays, compiled blocks and SDPA kernels give eager's embeddings.

Skipped on machines without a GPU (``benchmarks/gpu_check.sh`` runs them with ``-m gpu``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from embedstore.encoders.imagebind import ImageBindEncoder
from embedstore.encoders.imagebind.encoder import load_checkpoint
from embedstore.encoders.levers import Levers

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]
# fp32 on CUDA without TF32 (strict_fp32): a graph replay runs the very kernels of eager, but a
# padded batch or another SDPA kernel may pick other cuBLAS/attention kernels, which sum in
# another order; the CUDA reference test allows 1e-4 against the CPU outputs, so does this one
CUDA_FP32_ATOL = 1e-4
CASES = ["vision", "audio", "depth", "thermal", "imu"]


def tiny(fixtures: Path, config: dict[str, Any], **levers: Any) -> ImageBindEncoder:
    model = load_checkpoint(config, fixtures / "tiny_a_state_dict.pt")
    return ImageBindEncoder(
        "tiny_a", model, version="tiny_a", device="cuda", levers=Levers(**levers)
    )


def test_cuda_graph_replays_give_the_eager_rows(
    imagebind_fixtures: Path, tiny_a_config: dict[str, Any], tiny_a_io: dict[str, Any]
) -> None:
    eager = tiny(imagebind_fixtures, tiny_a_config)
    graphs = tiny(
        imagebind_fixtures,
        tiny_a_config,
        cuda_graphs="on",
        graph_towers=frozenset(CASES),
        graph_batches=(2, 4),
    )
    assert graphs.graphs is not None
    for case in CASES:
        x = tiny_a_io[case]["input"]
        want = eager.encode(case, x)
        for _ in range(2):  # capture, then a replay
            got = graphs.encode(case, x)  # 3 items padded to 4; audio: 9 clips as 4 + 4 + 1
            np.testing.assert_allclose(got, want, atol=CUDA_FP32_ATOL, rtol=0, err_msg=case)
        one = graphs.encode(case, x[:1])  # padded to 2
        np.testing.assert_allclose(one, want[:1], atol=CUDA_FP32_ATOL, rtol=0, err_msg=case)
    sizes = {(m, size) for m, _, _, size in graphs.graphs.captured()}
    assert {("vision", 4), ("vision", 2), ("audio", 4), ("audio", 2)} <= sizes


def test_compiled_blocks_and_sdpa_kernels_on_cuda(
    imagebind_fixtures: Path, tiny_a_config: dict[str, Any], tiny_a_io: dict[str, Any]
) -> None:
    eager = tiny(imagebind_fixtures, tiny_a_config)
    variants: list[dict[str, Any]] = [
        {"compile_mode": "default", "compile_towers": frozenset({"vision", "imu"})},
        {"sdpa_backend": "efficient"},
        {"sdpa_backend": "cudnn"},
        {"sdpa_backend": "math"},
    ]
    for levers in variants:
        enc = tiny(imagebind_fixtures, tiny_a_config, **levers)
        for case in ["vision", "text", "imu"]:
            ref = tiny_a_io[case]
            got = enc.encode(ref["modality"], ref["input"])
            want = eager.encode(ref["modality"], ref["input"])
            np.testing.assert_allclose(got, want, atol=CUDA_FP32_ATOL, rtol=0, err_msg=str(levers))
