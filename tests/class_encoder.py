"""``classes_test``: a deterministic test encoder whose vectors carry meaning (the class).

Self-retrieval proves little above the model layer: a file finds itself with a score near 1
whatever the store, the filters or the routing do. This encoder embeds every input as its
membership of three classes (dog, car, bird: the reference photos and recordings in
``../shared``), from the input's content as the real loaders decode it:

- vision: a 4x4 thumbnail and the colour histograms, against each class's reference photo;
- audio: the mean log-mel spectrum over the clip's frames (where a clip starts does not matter),
  against each class's reference recording;
- text: which class word the token ids hold.

So a caption, a sound and a picture of one class land together, and a search can be asserted
across modalities: the caption finds its picture, the sound (another excerpt) finds its picture.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image
from testdata import ASSETS, require_data

from embedstore import modalities
from embedstore.encoders import registry
from embedstore.encoders.base import Encoder
from embedstore.modalities import audio
from embedstore.modalities.text import tokenize

NAME = "classes_test"
CLASSES = ("dog", "car", "bird")
SHARPNESS = 20.0  # softmax temperature: nearly one class per input, still graded
_PAD = (0.0 - audio.MEAN) / audio.STD  # a padded (empty) fbank frame after normalisation


def _unit(x: torch.Tensor) -> torch.Tensor:
    x = x.flatten().double()
    x = x - x.mean()
    return x / x.norm()


def image_feature(x: torch.Tensor) -> torch.Tensor:
    """(3, 224, 224) normalised pixels -> layout (4x4 thumbnail) and colour (histograms)."""
    thumb = _unit(torch.nn.functional.adaptive_avg_pool2d(x[None], 4))
    hist = torch.cat([torch.histc(x[c], bins=16, min=-2.0, max=2.7) for c in range(3)]).double()
    return torch.cat([thumb, hist / hist.norm()]) / 2**0.5


def sound_feature(x: torch.Tensor) -> torch.Tensor:
    """(3, 1, 128, 204) log-mel clips -> the mean spectrum of the frames that hold sound."""
    frames = x[:, 0].permute(0, 2, 1).reshape(-1, x.shape[2])
    real = ~torch.isclose(frames, torch.full_like(frames, _PAD), atol=1e-6).all(dim=1)
    return _unit(frames[real].mean(dim=0))


@functools.cache
def _references() -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Each class's photo and sound features and its word's token id (computed once)."""
    photos = [image_feature(modalities.load("vision", ASSETS / f"{c}_image.jpg")) for c in CLASSES]
    sounds = [sound_feature(modalities.load("audio", ASSETS / f"{c}_audio.wav")) for c in CLASSES]
    words = [int(tokenize([c])[0, 1]) for c in CLASSES]  # the BPE id after <start>
    return torch.stack(photos), torch.stack(sounds), words


class ClassEncoder(Encoder):
    """Embeds vision, audio and text as soft class membership (dim 3, unit rows)."""

    family = "test"

    def __init__(self, **_: Any) -> None:
        require_data(ASSETS, f"reference assets not found at {ASSETS}")
        self.name, self.dim, self.version = NAME, len(CLASSES), f"{NAME}:1"
        self.modalities = frozenset({"vision", "audio", "text"})
        self.device = torch.device("cpu")
        self.photos, self.sounds, self.words = _references()

    def similarities(self, modality: str, item: torch.Tensor) -> torch.Tensor:
        """Cosine to each class's reference (vision, audio) or 1 per class word held (text)."""
        if modality == "vision":
            return self.photos @ image_feature(item)
        if modality == "audio":
            return self.sounds @ sound_feature(item)
        held = set(item.tolist())
        return torch.tensor([float(w in held) for w in self.words], dtype=torch.float64)

    def encode(self, modality: str, batch: torch.Tensor) -> np.ndarray:
        self.check_modality(modality)
        sims = torch.stack([self.similarities(modality, item) for item in batch])
        return (
            torch.nn.functional.normalize(torch.softmax(SHARPNESS * sims, dim=1), dim=1)
            .to(torch.float32)
            .numpy()
        )


@pytest.fixture
def class_encoder(monkeypatch: pytest.MonkeyPatch) -> str:
    """Register ``classes_test`` for one test (the registry is left as it was)."""
    info = registry.EncoderInfo(
        NAME, "test", len(CLASSES), frozenset({"vision", "audio", "text"}), factory=ClassEncoder
    )
    monkeypatch.setitem(registry._ENCODERS, NAME, info)
    return NAME


def other_sound(name: str, path: Path, start_s: float = 1.5) -> Path:
    """One second of ``name``'s reference recording from ``start_s`` (the library holds 0-1 s)."""
    data, rate = soundfile.read(ASSETS / f"{name}_audio.wav", dtype="float32", always_2d=True)
    soundfile.write(path, data.mean(axis=1)[int(start_s * rate) : int((start_s + 1) * rate)], rate)
    return path


def other_photo(name: str, path: Path) -> Path:
    """``name``'s reference photo mirrored (the library holds it upright, at 96x96)."""
    with Image.open(ASSETS / f"{name}_image.jpg") as im:
        im.convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(path)
    return path
