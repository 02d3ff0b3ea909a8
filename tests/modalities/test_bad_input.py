"""Broken, empty, mislabelled and oversized files raise our own errors naming the file."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from embedstore import modalities
from embedstore.errors import InvalidMedia, PayloadTooLarge, UnsupportedMediaType
from embedstore.modalities import DecodeLimits


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _png_header(width: int, height: int) -> bytes:
    """A PNG signature and an IHDR chunk (valid CRC) claiming ``width`` x ``height`` RGB pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunks = b""
    for kind, body in ((b"IHDR", ihdr), (b"IEND", b"")):
        chunks += (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )
    return b"\x89PNG\r\n\x1a\n" + chunks


@pytest.mark.parametrize("modality, name", [("vision", "a.jpg"), ("audio", "a.wav"), ("video", "a.mp4"),
                                            ("depth", "a.png"), ("thermal", "a.png"), ("imu", "a.csv"),
                                            ("text", "a.txt")])  # fmt: skip
def test_empty_files_are_invalid(tmp_path: Path, modality: str, name: str) -> None:
    path = _write(tmp_path, name, b"")
    with pytest.raises(InvalidMedia, match=f"{name}: file is empty"):
        modalities.load(modality, path)


@pytest.mark.parametrize("modality", ["vision", "audio", "video", "depth", "imu"])
def test_missing_files_are_invalid(tmp_path: Path, modality: str) -> None:
    with pytest.raises(InvalidMedia, match="nope.bin: cannot read file"):
        modalities.load(modality, tmp_path / "nope.bin")


def test_truncated_jpeg(assets: Path, tmp_path: Path) -> None:
    data = (assets / "bird_image.jpg").read_bytes()
    path = _write(tmp_path, "cut.jpg", data[: len(data) // 2])
    with pytest.raises(InvalidMedia, match="cut.jpg: cannot decode image: image file is truncated"):
        modalities.load("vision", path)
    with pytest.raises(InvalidMedia, match="cut_header.jpg"):
        modalities.load("vision", _write(tmp_path, "cut_header.jpg", data[:100]))


def test_text_renamed_to_png_is_unsupported(tmp_path: Path) -> None:
    path = _write(tmp_path, "notes.png", b"shopping list: eggs, milk\n" * 10)
    with pytest.raises(UnsupportedMediaType, match="notes.png: not an image"):
        modalities.load("vision", path)


def test_png_claiming_huge_dimensions_is_refused_before_decoding(tmp_path: Path) -> None:
    path = _write(tmp_path, "bomb.png", _png_header(100_000, 100_000))
    with pytest.raises(PayloadTooLarge, match="bomb.png"):
        modalities.load("vision", path)


def test_pixel_limit_is_configurable(assets: Path) -> None:
    with pytest.raises(
        PayloadTooLarge, match=r"640x855 = 547200 pixels exceeds the limit of 100000"
    ):
        modalities.load(
            "vision", assets / "bird_image.jpg", limits=DecodeLimits(max_pixels=100_000)
        )


def test_file_size_limit(assets: Path) -> None:
    with pytest.raises(
        PayloadTooLarge, match="bird_audio.wav: 882078 bytes exceeds the limit of 1000"
    ):
        modalities.load(
            "audio", assets / "bird_audio.wav", limits=DecodeLimits(max_file_bytes=1000)
        )


def test_audio_duration_limit(assets: Path) -> None:
    with pytest.raises(PayloadTooLarge, match="5 s of audio exceeds the limit of 2 s"):
        modalities.load("audio", assets / "car_audio.wav", limits=DecodeLimits(max_duration_s=2))


def test_wav_cut_inside_its_header(assets: Path, tmp_path: Path) -> None:
    data = (assets / "bird_audio.wav").read_bytes()
    with pytest.raises(InvalidMedia, match="cut.wav: not an audio file we can read"):
        modalities.load("audio", _write(tmp_path, "cut.wav", data[:30]))


def test_wav_cut_inside_its_samples_decodes_what_is_there(assets: Path, tmp_path: Path) -> None:
    data = (assets / "bird_audio.wav").read_bytes()
    got = modalities.load("audio", _write(tmp_path, "half.wav", data[: len(data) // 2]))
    assert got.shape == (3, 1, 128, 204)


def test_text_renamed_to_wav(tmp_path: Path) -> None:
    with pytest.raises(InvalidMedia, match="song.wav: not an audio file"):
        modalities.load("audio", _write(tmp_path, "song.wav", b"la la la " * 50))


def test_truncated_mp4(video_file: Path, tmp_path: Path) -> None:
    data = video_file.read_bytes()
    path = _write(tmp_path, "cut.mp4", data[: len(data) // 2])
    with pytest.raises(InvalidMedia, match="cut.mp4: not a video file we can read"):
        modalities.load("video", path)


def test_audio_file_given_as_video(assets: Path) -> None:
    with pytest.raises(InvalidMedia, match="dog_audio.wav: no video stream"):
        modalities.load("video", assets / "dog_audio.wav")


def test_invalid_utf8_text_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidMedia, match="latin1.txt: not UTF-8 text"):
        modalities.load("text", _write(tmp_path, "latin1.txt", "caf\xe9".encode("latin-1")))


def test_depth_garbage_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(
        UnsupportedMediaType, match="scan.bin: not a PNG/TIFF/JPEG image, .npy array or ViSP"
    ):
        modalities.load("depth", _write(tmp_path, "scan.bin", b"\x01\x02\x03" * 33))


def test_imu_with_the_wrong_number_of_channels(tmp_path: Path) -> None:
    path = _write(tmp_path, "imu.csv", b"1,2,3,4,5\n" * 20)
    with pytest.raises(InvalidMedia, match="imu.csv: expected 6 channels"):
        modalities.load("imu", path)
    with pytest.raises(InvalidMedia, match="words.csv: cannot decode IMU data"):
        modalities.load("imu", _write(tmp_path, "words.csv", b"a,b,c,d,e,f\nx,y,z,u,v,w\n"))
