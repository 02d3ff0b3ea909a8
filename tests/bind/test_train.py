"""The training loop: loss falls, recall beats chance, and resuming continues exactly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from embedstore.bind import TrainConfig, ValidationSet, chance_recall, train_tower
from embedstore.bind.train import CHECKPOINT, evaluate
from tests.bind.conftest import random_tokens

N = 32


def anchors(n: int = N, dim: int = 16) -> torch.Tensor:
    return F.normalize(torch.randn(n, dim, generator=torch.Generator().manual_seed(1)), dim=-1)


def in_sample(tower: torch.nn.Module, ids: torch.Tensor, a: torch.Tensor) -> dict[str, float]:
    return evaluate(tower, ValidationSet(ids, a, torch.arange(len(a))), ks=(1, 5))


def test_loss_falls_and_in_sample_recall_beats_chance(text_tower):
    ids, a = random_tokens(N), anchors()
    before = in_sample(text_tower, ids, a)
    config = TrainConfig(epochs=8, batch_size=16, lr=3e-3, warmup=0.0)
    result = train_tower(text_tower, ids, a, config, progress=False)
    losses = [h["loss"] for h in result.history]
    after = in_sample(text_tower, ids, a)
    assert losses[-1] < 0.8 * losses[0]
    assert after["recall@1"] >= 4 * chance_recall(N)[1]
    assert after["recall@5"] > before["recall@5"]
    assert result.step == 8 * 2


def test_validation_recall_is_reported_each_epoch(text_tower):
    ids, a = random_tokens(N), anchors()
    val = ValidationSet(ids[:8], a[:8], torch.arange(8))
    result = train_tower(
        text_tower, ids, a, TrainConfig(epochs=2, batch_size=16), val=val, progress=False
    )
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert {"recall@1", "recall@5", "recall@10", "anchor_recall@1"} <= set(result.history[-1])


def test_resume_continues_where_it_stopped(tmp_path):
    from embedstore.bind.tower import ModalityTower, build_tower, tower_config

    def fresh() -> ModalityTower:
        config = tower_config("text", dim=16, width=32, layers=1, heads=2)
        return ModalityTower(build_tower("text", config, seed=0), "text")

    ids, a = random_tokens(N), anchors()
    straight = fresh()
    train_tower(straight, ids, a, TrainConfig(epochs=3, batch_size=16), progress=False)

    config = TrainConfig(epochs=3, batch_size=16)
    stopped = train_tower(
        fresh(), ids, a, config, checkpoint_dir=tmp_path, progress=False, max_steps=3
    )  # stops in the middle of epoch 2
    state = torch.load(tmp_path / CHECKPOINT, weights_only=False)
    assert (state["epoch"], state["batch"], state["step"]) == (1, 1, 3) == (1, 1, stopped.step)
    resumed = fresh()
    result = train_tower(
        resumed, ids, a, config, checkpoint_dir=tmp_path, resume=True, progress=False
    )
    assert result.resumed_from == 3 and result.step == 6
    for (name, p), q in zip(straight.named_parameters(), resumed.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-5), name


def test_bf16_autocast_trains_on_cpu(text_tower):
    ids, a = random_tokens(N), anchors()
    result = train_tower(
        text_tower, ids, a, TrainConfig(epochs=1, batch_size=16, precision="bf16"), progress=False
    )
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in result.history)
    assert next(text_tower.parameters()).dtype == torch.float32  # master weights stay fp32


@pytest.mark.gpu
def test_cuda_trains_with_bf16_autocast(text_tower):
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    ids, a = random_tokens(N), anchors()
    result = train_tower(
        text_tower,
        ids,
        a,
        TrainConfig(epochs=4, batch_size=16, lr=3e-3),
        device="cuda",
        progress=False,
    )
    assert result.history[-1]["loss"] < result.history[0]["loss"]
