"""The ImageBind speed levers on CPU: compiled blocks, CUDA-graph padding, SDPA kernels, settings.

The model is the official tiny ImageBind (``../shared/fixtures/imagebind``), so each lever is
checked against the official code's outputs as well as against our eager path.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from testdata import require_data
from tolerances import SAME_CPU, assert_same_float32

from cli.main import cli
from embedstore.config import Settings, load_settings
from embedstore.encoders import create_encoder
from embedstore.encoders.cuda_graphs import GraphRunner, bucket_for, pad_rows, unpad_rows
from embedstore.encoders.imagebind import ImageBindEncoder
from embedstore.encoders.imagebind.encoder import GRAPHABLE, load_checkpoint
from embedstore.encoders.levers import Levers, levers_from_settings
from embedstore.errors import InvalidConfig

# every case of the reference fixtures the encoder takes as is (video clips are folded elsewhere)
CASES = ["vision", "vision_252", "text", "audio", "depth", "thermal", "imu"]
# the fixture tolerance of test_imagebind_encoder: our fp32 path against the official outputs
REFERENCE_ATOL = 1e-5


@pytest.fixture
def tiny_model(imagebind_fixtures: Path, tiny_a_config: dict[str, Any]):  # type: ignore[no-untyped-def]
    """A fresh official tiny model per test (compiled blocks change a model in place)."""
    return load_checkpoint(tiny_a_config, imagebind_fixtures / "tiny_a_state_dict.pt")


def encoder(model: Any, **levers: Any) -> ImageBindEncoder:
    return ImageBindEncoder(
        "tiny_a", model, version="tiny_a", device="cpu", levers=Levers(**levers)
    )


@pytest.mark.slow  # inductor generates and compiles C++ for the blocks: ~20-40 s on 2 cores
def test_compiled_blocks_give_the_eager_embeddings(tiny_model, tiny_a_io) -> None:  # type: ignore[no-untyped-def]
    from torch._dynamo.utils import counters

    compiler = any(shutil.which(c) for c in ("g++", "c++", "clang++"))
    require_data(compiler, "torch.compile on CPU needs a C++ compiler (apt-get install g++)")
    ref = tiny_a_io["imu"]
    eager = encoder(tiny_model).encode("imu", ref["input"])
    enc = encoder(tiny_model, compile_mode="default", compile_towers=frozenset({"imu"}))
    trunks: Any = enc.model.modality_trunks
    assert all(b._compiled_call_impl is not None for b in trunks["imu"].blocks)
    assert all(b._compiled_call_impl is None for b in trunks["vision"].blocks)  # only the chosen
    before = counters["stats"]["unique_graphs"]
    got = enc.encode("imu", ref["input"])
    assert counters["stats"]["unique_graphs"] > before  # the compiled code ran, not eager
    # Inductor fuses the layer norms, softmax and GELU into generated C++ loops that sum in
    # another order (vectorised partial sums); the matmuls stay oneDNN/BLAS calls. Only the order
    # of float32 sums changes, so the same-CPU bound of tolerances.SAME_CPU holds.
    torch.testing.assert_close(torch.from_numpy(got), torch.from_numpy(eager), **SAME_CPU)
    np.testing.assert_allclose(got, ref["output_normalized"].numpy(), atol=REFERENCE_ATOL, rtol=0)


def test_cuda_graphs_on_without_cuda_is_a_clear_error(tiny_model) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidConfig, match="cuda_graphs=on needs a CUDA device") as err:
        encoder(tiny_model, cuda_graphs="on")
    assert err.value.field == "cuda_graphs"
    settings = Settings(device="cpu", cuda_graphs="on")
    with pytest.raises(InvalidConfig, match="'cpu'"):
        create_encoder("imagebind_test", device="cpu", settings=settings)


def test_the_cli_refuses_cuda_graphs_on_a_cpu(tmp_path: Path) -> None:
    from PIL import Image

    gradient = np.arange(64 * 64 * 3, dtype=np.uint32).reshape(64, 64, 3) % 256
    Image.fromarray(gradient.astype(np.uint8)).save(tmp_path / "one.png")
    args = ["--device", "cpu", "--cuda-graphs", "on", "index", str(tmp_path)]
    result = CliRunner().invoke(cli, [*args, "-c", "c", "--encoder", "imagebind_test"])
    assert result.exit_code == 4, result.output  # InvalidConfig is bad input
    assert "cuda_graphs=on needs a CUDA device" in result.output


def test_cuda_graphs_auto_runs_eagerly_without_cuda(tiny_model, tiny_a_io) -> None:  # type: ignore[no-untyped-def]
    plain = encoder(tiny_model)
    auto = encoder(tiny_model, cuda_graphs="auto")
    assert auto.graphs is None
    for case in ("vision", "depth", "imu"):
        ref = tiny_a_io[case]
        got = torch.from_numpy(auto.encode(ref["modality"], ref["input"]))
        assert_same_float32(got, torch.from_numpy(plain.encode(ref["modality"], ref["input"])))


def test_pad_rows_keeps_the_batch_and_zeroes_the_rest(tiny_a_io) -> None:  # type: ignore[no-untyped-def]
    x = tiny_a_io["imu"]["input"]  # (3, 6, 2000) real IMU windows
    padded = pad_rows(x, 8)
    assert padded.shape == (8, 6, 2000) and padded.dtype == x.dtype
    assert torch.equal(padded[:3], x)  # a copy: exact
    assert not padded[3:].any()
    # a captured input buffer is refilled in place; the rows of an earlier, larger batch go
    buffer = pad_rows(torch.ones(8, 6, 2000), 8)
    assert pad_rows(x[:2], 8, out=buffer) is buffer
    assert torch.equal(buffer[:2], x[:2]) and not buffer[2:].any()
    with pytest.raises(ValueError, match="cannot pad 3 rows down to 2"):
        pad_rows(x, 2)
    with pytest.raises(ValueError, match="does not hold"):
        pad_rows(x, 8, out=torch.zeros(8, 6, 1000))


def test_unpad_rows_returns_exactly_the_batch_rows_as_their_own_tensor() -> None:
    static_out = torch.randn(8, 32, generator=torch.Generator().manual_seed(0))
    rows = unpad_rows(static_out, 3)
    assert torch.equal(rows, static_out[:3])
    static_out.zero_()  # the next replay overwrites the graph's output buffer
    assert rows.abs().sum() > 0


def test_bucket_for_picks_the_smallest_captured_size_that_holds_the_batch() -> None:
    sizes = Levers(batch_size=32).capture_sizes()
    assert sizes == (1, 2, 4, 8, 16, 32)
    assert Levers(batch_size=48).capture_sizes() == (1, 2, 4, 8, 16, 32, 48)
    assert Levers(graph_batches=(64, 8, 64)).capture_sizes() == (8, 64)
    assert [bucket_for(n, sizes) for n in (1, 3, 4, 17, 32, 33)] == [1, 4, 4, 32, 32, 32]
    with pytest.raises(ValueError, match="at least one row"):
        bucket_for(0, sizes)


def test_a_padded_batch_gives_the_rows_of_the_unpadded_one(tiny_model, tiny_a_io) -> None:  # type: ignore[no-untyped-def]
    # what a graph captured at n + 5 rows computes for a batch of n: items never interact (attention
    # and layer norms are per item), only the GEMM blocking of more rows may reorder sums
    with torch.inference_mode():
        for case in ("vision", "audio", "depth", "thermal", "imu"):
            ref = tiny_a_io[case]
            x = ref["input"].flatten(0, 1) if case == "audio" else ref["input"]
            alone = tiny_model.encode_items(ref["modality"], x)
            padded = tiny_model.encode_items(ref["modality"], pad_rows(x, x.shape[0] + 5))
            assert_same_float32(unpad_rows(padded, x.shape[0]), alone)


def test_a_graph_runner_calls_the_model_directly_off_cuda(tiny_model, tiny_a_io) -> None:  # type: ignore[no-untyped-def]
    calls: list[int] = []

    def forward(modality: str, x: torch.Tensor) -> torch.Tensor:
        calls.append(x.shape[0])
        return tiny_model.encode_items(modality, x)

    runner = GraphRunner(forward, sizes=(4,), towers=GRAPHABLE)
    with torch.inference_mode():
        out = runner("imu", tiny_a_io["imu"]["input"])
    assert calls == [3] and out.shape == (3, 32) and runner.captured() == []


@pytest.mark.parametrize("backend", ["flash", "math"])
def test_sdpa_kernels_match_the_official_outputs(tiny_model, tiny_a_io, backend: str) -> None:  # type: ignore[no-untyped-def]
    # the official code projects q, k and v through nn.MultiheadAttention; ours packs them in one
    # matmul (already fused) and runs the chosen SDPA kernel: same fixture tolerance either way
    enc = encoder(tiny_model, sdpa_backend=backend)
    for case in CASES:
        ref = tiny_a_io[case]
        got = enc.encode(ref["modality"], ref["input"])
        want = ref["output_normalized"].numpy()
        np.testing.assert_allclose(got, want, atol=REFERENCE_ATOL, rtol=0, err_msg=case)


@pytest.mark.parametrize("backend", ["cudnn", "efficient"])
def test_cuda_only_sdpa_kernels_are_refused_on_cpu(tiny_model, backend: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidConfig, match=f"sdpa_backend={backend} has no kernel") as err:
        encoder(tiny_model, sdpa_backend=backend)
    assert err.value.field == "sdpa_backend"


def test_levers_come_from_settings_env_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not levers_from_settings(None).active
    monkeypatch.setenv("EMBEDSTORE_COMPILE_MODE", "max-autotune")
    monkeypatch.setenv("EMBEDSTORE_COMPILE_TOWERS", "vision, depth")
    monkeypatch.setenv("EMBEDSTORE_CUDA_GRAPH_BATCHES", "64,8")
    levers = levers_from_settings(load_settings(sdpa_backend="cudnn", batch_size=64))
    assert levers.compile_mode == "max-autotune" and levers.sdpa_backend == "cudnn"
    assert levers.compile_towers == {"vision", "depth"} and levers.capture_sizes() == (8, 64)
    assert levers.graph_towers == {"vision", "depth", "thermal", "imu"}
    assert levers.compiled_towers(["vision", "text", "depth"]) == ["vision", "depth"]
    with pytest.raises(InvalidConfig, match="compile_mode"):
        load_settings(compile_mode="fast")


@pytest.mark.parametrize(
    ("levers", "field", "message"),
    [
        ({"compile_mode": "default", "compile_towers": frozenset({"lidar"})}, "compile_towers", "lidar"),
        ({"cuda_graphs": "auto", "graph_towers": frozenset({"text"})}, "cuda_graph_towers", "no fixed shape"),
        ({"cuda_graphs": "auto", "compile_mode": "max-autotune"}, "compile_mode", "captures CUDA graphs itself"),
    ],
)  # fmt: skip
def test_impossible_levers_name_their_setting(
    tiny_model,  # type: ignore[no-untyped-def]
    levers: dict[str, Any],
    field: str,
    message: str,
) -> None:
    with pytest.raises(InvalidConfig, match=message) as err:
        encoder(tiny_model, **levers)
    assert err.value.field == field
    with pytest.raises(InvalidConfig, match="cuda_graph_batches") as err:
        Levers(graph_batches=(0, 8))
