"""The ``languagebind`` recipe reproduces the official LanguageBind processors' outputs."""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from testdata import LANGUAGEBIND_FIXTURES, require_data

from embedstore.errors import InvalidMedia
from embedstore.modalities import load
from embedstore.modalities.languagebind import audio as lb_audio
from embedstore.modalities.languagebind.depth import depth_to_unit
from embedstore.modalities.languagebind.text import tokenize
from embedstore.modalities.languagebind.video import _decode, frame_indices
from embedstore.modalities.sources import DEFAULT_LIMITS

# Tolerances of the issue: images, depth, thermal and video are decoder-bound (the same PIL/PyAV
# decoders give bit-identical pixels here; a different libjpeg may move a pixel by 1/255, 0.015
# after normalisation, so those files are compared at 1e-4 only where the decoder is exact and
# lossless files dominate). Audio: the log-mel of near-silent bins amplifies float32 FFT
# rounding, which differs between CPU kernels (1.8e-3 before, 2e-4 after the 2·std scaling).
PIXEL_ATOL = 1e-4
AUDIO_ATOL = 1e-3


@cache
def _pp() -> dict[str, Any]:
    require_data(
        LANGUAGEBIND_FIXTURES, f"LanguageBind fixtures not found at {LANGUAGEBIND_FIXTURES}"
    )
    return torch.load(LANGUAGEBIND_FIXTURES / "preprocess_io.pt", weights_only=True)


def _cases(kind: str, *, errors: bool = False) -> list[str]:
    if not LANGUAGEBIND_FIXTURES.exists():
        return []
    info = _pp()[f"{kind}_info"]
    return [
        n
        for n, i in info.items()
        if not i["source"].startswith("refs:") and (i.get("status", "ok") == "error") == errors
    ]


def _path(kind: str, name: str) -> Path:
    return LANGUAGEBIND_FIXTURES / _pp()[f"{kind}_info"][name]["source"]


def close(a: torch.Tensor, b: torch.Tensor, atol: float) -> None:
    torch.testing.assert_close(a, b, atol=atol, rtol=0)


def test_text_tokens_match_the_official_tokenizer_exactly() -> None:
    text = _pp()["text"]
    ids, mask = tokenize(text["strings"])
    assert torch.equal(ids, text["input_ids"])
    assert torch.equal(mask, text["attention_mask"])
    assert torch.equal(ids.argmax(dim=-1), torch.as_tensor(text["eos_index_argmax"]))
    one = load("text", text["strings"][2], recipe="languagebind")
    assert torch.equal(one, text["single_string_call_input_ids"][0])


@pytest.mark.parametrize("kind", ["image", "thermal"])
def test_images_and_thermal_match(kind: str) -> None:
    pp = _pp()
    modality = "vision" if kind == "image" else "thermal"
    checked = 0
    for name in _cases(kind):
        x = load(modality, _path(kind, name), recipe="languagebind")
        assert x.shape == (3, 224, 224) and x.dtype == torch.float32
        info = pp[f"{kind}_info"][name]
        if name in pp[kind]:
            close(x, pp[kind][name], PIXEL_ATOL)
            checked += 1
        elif "min" in info:  # output held out: its recorded range still has to agree
            assert abs(float(x.min()) - info["min"]) < 0.02
            assert abs(float(x.max()) - info["max"]) < 0.02
    assert checked >= 1


def test_antialias_false_reproduces_the_pinned_torchvision_resize() -> None:
    pp = _pp()
    x = load("vision", _path("image", "image/0.jpg"), recipe="languagebind", antialias=False)
    close(x, pp["image"]["image/0.jpg#antialias_false"], PIXEL_ATOL)
    for name in _cases("image"):
        info = pp["image_info"][name]
        a = load("vision", _path("image", name), recipe="languagebind")
        b = load("vision", _path("image", name), recipe="languagebind", antialias=False)
        assert abs(float((a - b).abs().max()) - info["antialias_false_max_abs_diff"]) < 0.02


@pytest.mark.parametrize(
    ("kind", "modality"), [("image", "vision"), ("thermal", "thermal"), ("depth", "depth")]
)
def test_files_the_official_processor_rejects_raise_our_error_naming_the_file(
    kind: str, modality: str
) -> None:
    names = _cases(kind, errors=True)
    assert names
    for name in names:
        path = _path(kind, name)
        with pytest.raises(InvalidMedia, match=path.name):
            load(modality, path, recipe="languagebind")


def test_grey_images_convert_when_asked() -> None:
    path = _path("image", "grayscale_small.png")
    x = load("vision", path, recipe="languagebind", convert_rgb=True)
    assert x.shape == (3, 224, 224)
    close(x[0] * 0.26862954 + 0.48145466, x[1] * 0.26130258 + 0.4578275, 1e-5)


def test_depth_matches_including_the_clipped_metres() -> None:
    pp = _pp()
    for name in _cases("depth"):
        x = load("depth", _path("depth", name), recipe="languagebind")
        if name in pp["depth"]:
            close(x, pp["depth"][name], PIXEL_ATOL)
    from PIL import Image

    raw = np.asarray(Image.open(_path("depth", "depth_mm_u16_320x240.png")))
    close(depth_to_unit(raw), pp["depth"]["depth_mm_u16_320x240.png#depthnorm_channel0"], 0.0)


def test_video_matches_and_samples_the_official_frames() -> None:
    pp = _pp()
    for name in _cases("video"):
        info = pp["video_info"][name]
        path = _path("video", name)
        idx = frame_indices(info["num_frames_in_file"])[0]
        assert idx == info["sampled_frame_indices"]
        groups, n, _ = _decode(path, DEFAULT_LIMITS, 8, 1)
        assert n == info["num_frames_in_file"]
        digests = [hashlib.sha256(f.tobytes()).hexdigest() for f in groups[0]]
        assert digests == info["decoded_frame_sha256"]
        item = load("video", path, recipe="languagebind")
        assert item.clips.shape == (1, 3, 8, 224, 224)
        assert item.starts[0] == 0.0 and item.ends[0] == pytest.approx(item.duration)
        if name in pp["video"]:
            close(item.clips[0], pp["video"][name], PIXEL_ATOL)
            flipped = load("video", path, recipe="languagebind", flip=True)
            assert torch.equal(flipped.clips[0], item.clips[0].flip(-1))
    assert frame_indices(5) == [[0, 0, 1, 1, 2, 2, 3, 4]]


def test_video_clips_per_video_give_time_ranges() -> None:
    item = load(
        "video",
        LANGUAGEBIND_FIXTURES / "assets/video/0.mp4",
        recipe="languagebind",
        clips_per_video=3,
        audio=False,
    )
    assert item.clips.shape == (3, 3, 8, 224, 224)
    assert item.starts[0] == 0.0 and item.ends[-1] == pytest.approx(item.duration)
    assert item.ends[0] == pytest.approx(item.starts[1])


def test_audio_matches_with_the_recorded_random_starts() -> None:
    pp = _pp()
    checked = 0
    for name in _cases("audio"):
        info = pp["audio_info"][name]
        starts = info["random_chunk_starts"] or None
        x = load("audio", _path("audio", name), recipe="languagebind", chunk_starts=starts)
        assert x.shape == (3, 112, 1036)
        if name in pp["audio"]:
            close(x, pp["audio"][name], AUDIO_ATOL)
            checked += 1
    assert checked == 3
    from embedstore.modalities.audio import read_waveform

    w, _ = read_waveform(_path("audio", "mono_16k_12s_int16.wav"))
    mel = lb_audio.fbank(w - w.mean())
    close(mel, pp["audio"]["mono_16k_12s_int16.wav#fbank"], AUDIO_ATOL * 2 * lb_audio.STD)


def test_audio_default_starts_are_deterministic_middles_and_short_clips_tile() -> None:
    assert lb_audio.default_starts(1198) == [27, 82, 136]  # middles of 0..53, 54..107, 108..162
    assert lb_audio.chunk_groups(1037)[2].tolist() == [0]  # an empty group becomes [0]
    path = _path("audio", "mono_16k_12s_int16.wav")
    a = load("audio", path, recipe="languagebind")
    close(a, load("audio", path, recipe="languagebind"), AUDIO_ATOL)  # float32 FFT: not bitwise
    mel = torch.arange(10.0)[:, None].expand(10, 2)
    tiled = lb_audio.chunks(mel, target=23)
    assert tiled.shape == (3, 2, 23) and tiled[0, 0].tolist() == [*range(10), *range(10), 0, 1, 2]
    with pytest.raises(ValueError, match="chunk_starts"):
        lb_audio.chunks(torch.zeros(1100, 2), target=1036, starts=[0, 1, 100])


def test_too_short_audio_raises_our_error_naming_the_file() -> None:
    path = _path("audio", "mono_16k_0p02s_int16.wav")
    with pytest.raises(InvalidMedia, match="mono_16k_0p02s_int16.wav: audio too short"):
        load("audio", path, recipe="languagebind")
