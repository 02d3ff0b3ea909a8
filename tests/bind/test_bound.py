"""Bound encoders end to end: bind, load by ``bound:`` name, adapters-only folders, store search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from embedstore.bind import (
    BoundEncoder,
    LoRAConfig,
    TowerSpec,
    TrainConfig,
    bind,
    merge_lora,
    register_bound_encoder,
)
from embedstore.encoders import create_encoder, get_encoder_info
from embedstore.errors import InvalidConfig, UnknownEncoder
from embedstore.modalities import load
from tests.bind.conftest import COLOURS

TINY = TowerSpec(width=32, layers=1, heads=2)


@pytest.fixture(scope="module")
def bound_text(library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A scratch text tower bound to imagebind_test's image space on the six captioned images."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("bound") / "captions"
    result = bind(
        library,
        modality="text",
        anchor_modality="vision",
        base_encoder="imagebind_test",
        out_dir=out,
        tower=TINY,
        train=TrainConfig(epochs=10, batch_size=6, lr=5e-3, warmup=0.0),
        val_fraction=0,
        device="cpu",
        progress=False,
    )
    assert result.pairs == 6 and result.train_pairs == 6
    losses = [h["loss"] for h in result.history]
    assert losses[-1] < losses[0]
    return result.path


def wav_batch(library: Path, *names: str) -> torch.Tensor:
    return torch.stack([load("audio", library / f"{n}.wav") for n in names])


def captions(*names: str) -> torch.Tensor:
    return torch.stack([load("text", f"A {n} square.") for n in names])


def test_bound_folder_loads_by_path_and_by_name(bound_text: Path, library: Path):
    assert {p.name for p in bound_text.iterdir()} >= {"config.json", "tower.pt"}
    enc = create_encoder(f"bound:{bound_text}", device="cpu")
    assert isinstance(enc, BoundEncoder) and enc.dim == 64 and "text" in enc.modalities
    emb = enc.encode("text", captions("red", "blue"))
    assert emb.shape == (2, 64) and np.allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    base = create_encoder("imagebind_test", device="cpu")
    image = load("vision", library / "red.png").unsqueeze(0)
    assert np.allclose(enc.encode("vision", image), base.encode("vision", image), atol=1e-6)
    info = register_bound_encoder("test-captions", bound_text, replace=True)
    assert info.family == "bound" and get_encoder_info("test-captions").dim == 64
    again = create_encoder("test-captions", device="cpu").encode("text", captions("red"))
    assert np.allclose(again, emb[:1], atol=1e-6)


def test_captions_find_their_images_in_sample(bound_text: Path, library: Path):
    names = list(COLOURS)
    enc = create_encoder(f"bound:{bound_text}", device="cpu")
    texts = enc.encode("text", captions(*names))
    images = enc.encode(
        "vision", torch.stack([load("vision", library / f"{n}.png") for n in names])
    )
    top1 = (texts @ images.T).argmax(axis=1)
    assert (top1 == np.arange(6)).mean() >= 0.5  # chance is 1/6


def test_a_bound_tower_can_start_another_binding(bound_text: Path, library: Path, tmp_path: Path):
    first = create_encoder(f"bound:{bound_text}", device="cpu").encode("text", captions("red"))
    result = bind(
        library, modality="text", base_encoder="imagebind_test", out_dir=tmp_path / "again",
        tower=TowerSpec(init=str(bound_text)), train=TrainConfig(epochs=1, batch_size=6, lr=1e-9),
        val_fraction=0, device="cpu", progress=False,
    )  # fmt: skip
    again = create_encoder(result.encoder, device="cpu").encode("text", captions("red"))
    assert np.allclose(again, first, atol=1e-4)  # a vanishing learning rate keeps the weights


def test_unknown_bound_folder_is_a_clear_error(tmp_path: Path):
    with pytest.raises(UnknownEncoder, match="not a bound encoder"):
        create_encoder(f"bound:{tmp_path}", device="cpu")


def test_lora_adapters_only_folder_matches_the_merged_tower(library: Path, tmp_path: Path):
    result = bind(
        library,
        modality="audio",
        base_encoder="imagebind_test",
        out_dir=tmp_path / "lora",
        tower=TowerSpec(init="base"),
        lora=LoRAConfig(rank=2, alpha=4),
        train=TrainConfig(epochs=2, batch_size=6, lr=1e-2),
        val_fraction=0,
        save_adapters_only=True,
        device="cpu",
        progress=False,
    )
    assert {p.name for p in result.path.iterdir()} >= {"config.json", "adapters.pt"}
    assert not (result.path / "tower.pt").exists()
    enc = create_encoder(result.encoder, device="cpu")
    assert isinstance(enc, BoundEncoder)
    batch = wav_batch(library, "red", "green", "blue")
    unmerged = enc.encode("audio", batch)
    base = create_encoder("imagebind_test", device="cpu").encode("audio", batch)
    assert np.abs(unmerged - base).max() > 1e-4  # the adapters moved the tower
    merge_lora(enc.tower)
    assert np.allclose(enc.encode("audio", batch), unmerged, atol=1e-5)


def test_adapters_only_needs_lora(library: Path, tmp_path: Path):
    with pytest.raises(InvalidConfig, match="LoRA"):
        bind(library, modality="audio", base_encoder="imagebind_test", out_dir=tmp_path,
             save_adapters_only=True, device="cpu")  # fmt: skip


def test_store_indexes_and_searches_with_a_bound_encoder(bound_text: Path, library: Path, settings):
    from embedstore.engine import Engine

    engine = Engine(settings)
    report = engine.index(
        [library], "shapes", encoder=f"bound:{bound_text}", include=["*.png", "*.txt"]
    )
    assert report.added == 12 and not report.failed
    assert engine.collection("shapes").info().by_modality == {"text": 6, "vision": 6}
    hits = engine.search("shapes", text="A red square.", k=3, modalities=["vision"])
    assert [h.modality for h in hits] == ["vision"] * 3
    assert sum(h.uri.endswith("red.png") for h in hits) == 1
    texts = engine.search("shapes", file=library / "red.png", k=3, modalities=["text"])
    assert texts and all(h.uri.endswith(".txt") for h in texts)
    engine.close()
