"""Other containers and codecs decode to the same shapes: compressed audio, EXIF, alpha."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from embedstore import modalities


def _encode_audio(src: Path, dst: Path, codec: str, rate: int) -> Path:
    """Re-encode a real WAV with PyAV (mp3, aac in m4a, opus)."""
    data, sr = soundfile.read(src, dtype="float32", always_2d=True)
    with av.open(str(dst), "w") as out:
        stream = out.add_stream(codec, rate=rate)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(data[:, :1].T), format="fltp", layout="mono"
        )
        frame.sample_rate = sr
        resampler = av.AudioResampler(format=stream.format.name, layout="mono", rate=rate)
        for chunk in resampler.resample(frame) + resampler.resample(None):
            out.mux(stream.encode(chunk))
        out.mux(stream.encode())
    return dst


@pytest.mark.parametrize(
    "suffix, codec, rate",
    [(".mp3", "libmp3lame", 44100), (".m4a", "aac", 44100), (".opus", "libopus", 48000)],
)
def test_compressed_audio_decodes_close_to_the_wav(
    assets: Path, tmp_path: Path, suffix: str, codec: str, rate: int
) -> None:
    wav = assets / "car_audio.wav"
    path = _encode_audio(wav, tmp_path / f"car{suffix}", codec, rate)
    assert modalities.guess_modality(path) == "audio"
    got = modalities.load("audio", path)
    assert got.shape == (3, 1, 128, 204) and torch.isfinite(got).all()
    # lossy codecs and their encoder delay move the spectrogram a little, not a lot
    assert (got - modalities.load("audio", wav)).abs().mean() < 0.15


@pytest.mark.parametrize("suffix, fmt", [(".flac", "FLAC"), (".ogg", "OGG")])
def test_soundfile_formats(assets: Path, tmp_path: Path, suffix: str, fmt: str) -> None:
    data, sr = soundfile.read(assets / "dog_audio.wav", dtype="int16")
    path = tmp_path / f"dog{suffix}"
    soundfile.write(path, data, sr, format=fmt)
    got = modalities.load("audio", path)
    expected = modalities.load("audio", assets / "dog_audio.wav")
    tol = 0 if fmt == "FLAC" else 0.5  # FLAC is lossless, Vorbis is not
    assert (got - expected).abs().mean() <= tol + 1e-6


def test_exif_orientation_is_applied_by_default_and_can_be_ignored(
    assets: Path, tmp_path: Path
) -> None:
    photo = Image.open(assets / "car_image.jpg")
    exif = photo.getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    path = tmp_path / "rotated.png"
    photo.save(path, exif=exif.tobytes())
    upright = modalities.load("vision", path)
    turned = _png(photo.transpose(Image.Transpose.ROTATE_270), tmp_path)
    assert torch.equal(upright, modalities.load("vision", turned))
    as_stored = modalities.load("vision", path, exif=False)
    assert torch.equal(as_stored, modalities.load("vision", _png(photo, tmp_path)))


def _png(img: Image.Image, tmp_path: Path) -> Path:
    path = tmp_path / f"plain_{img.size[0]}x{img.size[1]}.png"
    img.save(path)
    return path


def test_alpha_is_dropped_by_default_and_composited_on_request(imagebind_fixtures: Path) -> None:
    path = imagebind_fixtures / "inputs" / "rgba_transparent.png"
    dropped = modalities.load("vision", path)
    flat = modalities.load("vision", path, flatten_alpha=True)
    white = modalities.load("vision", _white_png(path))
    assert not torch.equal(dropped, flat)
    torch.testing.assert_close(flat, white)


def _white_png(path: Path) -> bytes:
    import io

    rgba = Image.open(path).convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    buf = io.BytesIO()
    Image.alpha_composite(canvas, rgba).convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


def test_fast_jpeg_decoding_of_a_large_photo_stays_close(assets: Path, tmp_path: Path) -> None:
    big = (
        Image.open(assets / "dog_image.jpg")
        .convert("RGB")
        .resize((2560, 3392), Image.Resampling.BICUBIC)
    )
    big.save(tmp_path / "big.jpg", quality=92)
    exact = modalities.load("vision", tmp_path / "big.jpg")
    fast = modalities.load("vision", tmp_path / "big.jpg", fast=True)
    assert not torch.equal(exact, fast)
    assert (exact - fast).abs().mean() < 0.01 and (exact - fast).abs().max() < 0.1
    small = assets / "car_image.jpg"  # short side 360 < 448: decoded at full size either way
    assert torch.equal(
        modalities.load("vision", small, fast=True), modalities.load("vision", small)
    )
