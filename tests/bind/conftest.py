"""A tiny paired media library (real PNG, WAV and caption files) and a seeded text tower."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 200, 40),
    "blue": (30, 40, 220),
    "yellow": (230, 220, 30),
    "purple": (140, 30, 160),
    "orange": (240, 140, 20),
}


@pytest.fixture(autouse=True)
def _few_threads() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<colour>.png`` + ``<colour>.wav`` (a tone per colour) + ``<colour>.txt`` caption."""
    root = tmp_path_factory.mktemp("library")
    rng = np.random.default_rng(0)
    for i, (name, rgb) in enumerate(COLOURS.items()):
        pixels = np.clip(np.array(rgb) + rng.normal(0, 20, (96, 96, 3)), 0, 255).astype(np.uint8)
        pixels[24 + 8 * i : 48 + 8 * i, 20:70] = 255 - np.array(rgb, dtype=np.uint8)
        Image.fromarray(pixels).save(root / f"{name}.png")
        t = np.arange(int(16000 * 0.6)) / 16000
        tone = 0.4 * np.sin(2 * np.pi * (220 * (i + 1)) * t) + 0.01 * rng.standard_normal(t.size)
        sf.write(root / f"{name}.wav", tone.astype(np.float32), 16000, subtype="PCM_16")
        (root / f"{name}.txt").write_text(f"A {name} square.\nfr.utf8=Un carré.\n")
    return root


@pytest.fixture
def text_tower():  # type: ignore[no-untyped-def]
    """A 1-block, 32-wide ImageBind text tower into a 16-d space (seeded)."""
    from embedstore.bind.tower import ModalityTower, build_tower, tower_config

    model = build_tower("text", tower_config("text", dim=16, width=32, layers=1, heads=2), seed=0)
    return ModalityTower(model, "text")


def random_tokens(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` distinct CLIP-style token rows: start, a few word ids, end-of-text, zero padding."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(n, 77, dtype=torch.long)
    ids[:, 0] = 49406
    ids[:, 1:6] = torch.randint(300, 5000, (n, 5), generator=g)
    ids[:, 6] = 49407
    return ids
