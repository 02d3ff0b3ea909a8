"""Vision, text and audio reproduce the official ImageBind preprocessing (preprocess_io.pt)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tolerances import AUDIO_ATOL, assert_audio_close

from embedstore import modalities
from embedstore.errors import InvalidMedia
from embedstore.modalities.text import tokenize


@pytest.fixture(scope="module")
def reference(imagebind_fixtures: Path) -> dict:
    return torch.load(imagebind_fixtures / "preprocess_io.pt", weights_only=True)


VISION_FILES = [
    "bird_image.jpg",
    "car_image.jpg",
    "dog_image.jpg",
    "portrait_tall.png",
    "panorama_wide.jpg",
    "grayscale_small.png",
    "rgba_transparent.png",
]
AUDIO_FILES = [
    "bird_audio.wav",
    "car_audio.wav",
    "dog_audio.wav",
    "mono_44k1_5s_int16.wav",
    "stereo_48k_3s_float32.wav",
    "mono_16k_0p5s_int16.wav",
    "mono_16k_0p5s_float32.wav",
    "mono_16k_12s_int16.wav",
]


def test_the_reference_lists_exactly_these_files(reference: dict) -> None:
    assert sorted(reference["vision"]) == sorted(VISION_FILES)
    assert sorted(reference["audio"]) == sorted(AUDIO_FILES)


@pytest.mark.parametrize("name", VISION_FILES)
def test_vision_matches_the_official_transform(
    reference: dict, imagebind_fixtures: Path, name: str
) -> None:
    path = imagebind_fixtures / reference["vision_info"][name]["source"]
    got = modalities.load("vision", path)
    assert got.shape == (3, 224, 224) and got.dtype == torch.float32
    if name.endswith(".png"):
        # exact on every CPU: Pillow resizes 8-bit pixels in fixed-point integers, and the
        # normalisation is one correctly rounded float32 operation per element (tolerances.py)
        assert torch.equal(got, reference["vision"][name])
    else:  # a different libjpeg may move JPEG pixels by 1/255 (~0.015 normalised)
        torch.testing.assert_close(got, reference["vision"][name], atol=0.02, rtol=0)


def test_vision_from_bytes_equals_from_path(assets: Path) -> None:
    path = assets / "dog_image.jpg"
    # the same decoded uint8 pixels through the same exact transform: bit for bit
    assert torch.equal(
        modalities.load("vision", path.read_bytes()), modalities.load("vision", path)
    )


def test_text_matches_the_official_tokenizer(reference: dict) -> None:
    text = reference["text"]
    tokens = tokenize(text["strings"])
    assert tokens.dtype == torch.int64
    assert torch.equal(tokens, text["tokens"])
    assert torch.equal(tokens.argmax(dim=1), torch.as_tensor(text["eos_index_argmax"]))


def test_text_load_returns_one_row_and_reads_utf8_files(reference: dict, tmp_path: Path) -> None:
    text = reference["text"]
    one = modalities.load("text", text["strings"][5])
    assert one.shape == (77,) and torch.equal(one, text["tokens"][5])
    caption = tmp_path / "caption.txt"
    caption.write_text(text["strings"][7], encoding="utf-8")
    assert torch.equal(modalities.load("text", caption), text["tokens"][7])


@pytest.mark.parametrize("name", AUDIO_FILES)
def test_audio_matches_the_official_transform(
    reference: dict, imagebind_fixtures: Path, name: str
) -> None:
    path = imagebind_fixtures / reference["audio_info"][name]["source"]
    got = modalities.load("audio", path)
    assert got.shape == (3, 1, 128, 204) and got.dtype == torch.float32
    assert_audio_close(got, reference["audio"][name])  # FFT rounding differs between CPUs


def test_audio_independent_clips_option_differs_only_where_clips_overlap(
    reference: dict, imagebind_fixtures: Path
) -> None:
    path = imagebind_fixtures / "assets" / "car_audio.wav"
    fixed = modalities.load("audio", path, independent_clips=True)
    official = reference["audio"]["car_audio.wav"]
    # the first clip is cut before any mean is subtracted in place: the same input either way
    assert_audio_close(fixed[:1], official[:1])
    # the later clips overlap samples the official code has already shifted: they differ by far
    # more than FFT rounding (measured 1.4e-2), yet only in the frames straddling the edge of
    # the shifted samples (every frame loses its own DC offset, which hides a uniform shift)
    for k in (1, 2):
        diff = (fixed[k] - official[k]).abs()
        assert 5 * AUDIO_ATOL < diff.max() < 0.1, k
        frames = (diff > AUDIO_ATOL).any(dim=1).flatten().nonzero().flatten().tolist()
        assert 0 < len(frames) <= 4, (k, frames)


def test_audio_shorter_than_one_fbank_window_is_rejected(imagebind_fixtures: Path) -> None:
    with pytest.raises(InvalidMedia, match="mono_16k_0p02s_int16.wav: audio too short"):
        modalities.load("audio", imagebind_fixtures / "inputs" / "mono_16k_0p02s_int16.wav")


@pytest.mark.parametrize("name", ["bird_audio.wav", "stereo_48k_3s_float32.wav"])
def test_audio_float32_rounding_is_well_inside_the_tolerance(
    reference: dict, imagebind_fixtures: Path, name: str
) -> None:
    """The tolerance is grounded: our float32 log-mels sit within half of it from float64 ones.

    Two float32 runs on different CPUs each deviate from the exact value by at most this much,
    so they agree within AUDIO_ATOL. The resampler runs in float32 in both, as in the recipe.
    """
    from embedstore.modalities import audio

    wave, rate = audio.read_waveform(imagebind_fixtures / reference["audio_info"][name]["source"])
    at16k = audio.resample(wave, rate)
    single = audio.waveform_to_clips(at16k, audio.SAMPLE_RATE)
    double = audio.waveform_to_clips(at16k.double(), audio.SAMPLE_RATE)
    worst = float((single.double() - double).abs().max())
    assert 0 < worst <= AUDIO_ATOL / 2  # 2.1e-4 measured: float32 does round, and not more
