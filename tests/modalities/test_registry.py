"""The modality registry: names, guessing by extension, and adding a modality."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from embedstore import modalities
from embedstore.errors import InvalidInput, UnknownModality
from embedstore.modalities import Modality, get_modality, guess_modality, list_modalities


def test_all_built_in_modalities_are_registered() -> None:
    assert {"vision", "text", "audio", "video", "depth", "thermal", "imu"} <= set(list_modalities())


def test_unknown_modality_lists_the_known_names() -> None:
    with pytest.raises(UnknownModality, match="known: .*audio.*vision"):
        get_modality("smell")
    with pytest.raises(UnknownModality):
        modalities.load("smell", b"x")


@pytest.mark.parametrize(
    "name, expected",
    [
        ("a.jpg", "vision"), ("b.JPEG", "vision"), ("c.png", "vision"), ("d.webp", "vision"),
        ("e.bmp", "vision"), ("f.gif", "vision"), ("g.tif", "vision"), ("h.tiff", "vision"),
        ("a.wav", "audio"), ("b.mp3", "audio"), ("c.flac", "audio"), ("d.ogg", "audio"),
        ("e.m4a", "audio"), ("f.opus", "audio"),
        ("a.mp4", "video"), ("b.mkv", "video"), ("c.webm", "video"), ("d.mov", "video"),
        ("e.AVI", "video"), ("notes.txt", "text"), ("README.md", "text"),
        ("scan.npy", None), ("depth_0001.bin", None), ("imu.csv", None), ("noext", None),
    ],
)  # fmt: skip
def test_guess_modality_by_extension(name: str, expected: str | None) -> None:
    assert guess_modality(Path("/data") / name) == expected


def test_a_new_modality_is_one_registration() -> None:
    def load_bytes(source: bytes, limits: object, *, scale: float = 1.0) -> torch.Tensor:
        return torch.tensor(list(source), dtype=torch.float32) * scale

    modalities.register_modality(Modality("bytes_test", load_bytes, frozenset({".bytes_test"})))
    try:
        assert "bytes_test" in list_modalities()
        assert guess_modality("x.bytes_test") == "bytes_test"
        assert modalities.load("bytes_test", b"\x01\x02", scale=2.0).tolist() == [2.0, 4.0]
        with pytest.raises(
            InvalidInput, match="unknown option 'colour' for bytes_test; options: scale"
        ):
            modalities.load("bytes_test", b"\x01", colour="red")
    finally:
        from embedstore.modalities.registry import _REGISTRY

        _REGISTRY.pop("bytes_test")
