"""The lean JPEG header reader answers like Pillow, or defers to it."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from testdata import VISP

from embedstore.modalities import gpu_decode
from embedstore.modalities.jpeg_header import read_header
from embedstore.modalities.sources import DEFAULT_LIMITS


def _variants(src: Path, folder: Path) -> list[Path]:
    """``src`` as JPEGs of every kind the device path meets or must refuse."""
    img = Image.open(src).convert("RGB")
    out = []

    def save(name: str, im: Image.Image, **kw: object) -> None:
        out.append(folder / f"{src.stem}-{name}.jpg")
        im.save(out[-1], "JPEG", **kw)

    for name, code in (("444", 0), ("422", 1), ("420", 2)):
        save(name, img, quality=90, subsampling=code)
    save("progressive", img, quality=85, progressive=True)
    save("grey", img.convert("L"), quality=90)
    save("cmyk", img.convert("CMYK"), quality=90)  # Adobe marker: Pillow decides
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        save(f"o{orientation}", img, quality=90, exif=exif.tobytes())
    # Pillow writes big-endian EXIF ("MM"); cameras often write little-endian ("II")
    little = b"II*\x00" + (8).to_bytes(4, "little") + (1).to_bytes(2, "little")
    little += (0x0112).to_bytes(2, "little") + (3).to_bytes(2, "little") + (1).to_bytes(4, "little")
    little += (6).to_bytes(2, "little") + bytes(2) + bytes(4)
    save("le6", img, quality=90, exif=b"Exif\x00\x00" + little)
    grey2x2 = bytearray((folder / f"{src.stem}-grey.jpg").read_bytes())
    sof = grey2x2.index(b"\xff\xc0")
    grey2x2[sof + 11] = 0x22
    out.append(folder / f"{src.stem}-grey2x2.jpg")
    out[-1].write_bytes(bytes(grey2x2))
    return out


def _pillow_probe(path: Path, monkeypatch: pytest.MonkeyPatch, exif: bool) -> object:
    with monkeypatch.context() as m:
        m.setattr(gpu_decode, "read_header", lambda data: None)
        return gpu_decode._probe(path, DEFAULT_LIMITS, exif)


def test_every_variant_gets_pillows_answer(
    assets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = [
        p
        for name in ("bird", "car", "dog")
        for p in _variants(assets / f"{name}_image.jpg", tmp_path)
    ]
    answered = 0
    for path in files:
        answered += read_header(path.read_bytes()) is not None
        for exif in (True, False):
            lean = gpu_decode._probe(path, DEFAULT_LIMITS, exif)
            assert lean == _pillow_probe(path, monkeypatch, exif), (path.name, exif)
    assert answered == len(files) - 3  # the CMYK files go to Pillow


def test_headers_read_right(assets: Path, tmp_path: Path) -> None:
    files = {p.name.split("-")[1]: p for p in _variants(assets / "car_image.jpg", tmp_path)}
    headers = {k: read_header(p.read_bytes()) for k, p in files.items()}
    assert headers["420.jpg"] is not None and (
        headers["420.jpg"].width,
        headers["420.jpg"].height,
    ) == (640, 360)
    assert (
        headers["420.jpg"].sampling == ((2, 2), (1, 1), (1, 1)) and headers["420.jpg"].mode == "RGB"
    )
    assert headers["444.jpg"].sampling == ((1, 1),) * 3  # type: ignore[union-attr]
    assert headers["grey.jpg"].mode == "L"  # type: ignore[union-attr]
    assert headers["grey2x2.jpg"].sampling == ((2, 2),)  # type: ignore[union-attr]
    assert [headers[f"o{k}.jpg"].orientation for k in range(1, 9)] == list(range(1, 9))  # type: ignore[union-attr]
    assert headers["le6.jpg"].orientation == 6  # type: ignore[union-attr]
    assert headers["cmyk.jpg"] is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xd8",
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8\xff\xe0\x00\x10JFIF",
        b"\xff\xd8\xff\xc0\x00\x02",
    ],
)
def test_odd_bytes_defer_to_pillow(data: bytes) -> None:
    assert read_header(data) is None


def test_a_malformed_exif_block_defers_to_pillow(assets: Path, tmp_path: Path) -> None:
    path = next(p for p in _variants(assets / "dog_image.jpg", tmp_path) if p.stem.endswith("o8"))
    data = bytearray(path.read_bytes())
    at = data.index(b"Exif\0\0") + 6
    data[at : at + 2] = b"XX"  # not a TIFF byte order
    assert read_header(bytes(data)) is None


@pytest.mark.data(VISP, "Debian package visp-images-data is not installed")
def test_visp_jpegs_get_pillows_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    files = sorted(p for p in VISP.rglob("*") if p.suffix in (".jpg", ".jpeg"))
    assert files
    for path in files:
        assert gpu_decode._probe(path, DEFAULT_LIMITS, True) == _pillow_probe(
            path, monkeypatch, True
        )
