"""The device decode path (run on CPU here) against the exact path: photos, fallbacks, errors, audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from testdata import VISP
from tolerances import assert_same_float32

from embedstore import modalities
from embedstore.config import Settings, load_settings
from embedstore.errors import EmbedstoreError, InvalidConfig, InvalidMedia, PayloadTooLarge
from embedstore.modalities import gpu_decode
from embedstore.modalities.sources import DecodeLimits

PHOTOS = ["bird_image.jpg", "car_image.jpg", "dog_image.jpg"]
ONE_LEVEL = 1 / 255 / min(0.26130258, 0.26862954, 0.27577711) + 1e-5  # one 8-bit step, normalised


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(
        torch.nn.functional.cosine_similarity(a.double().flatten(), b.double().flatten(), 0)
    )


def _close(fast: torch.Tensor, exact: torch.Tensor) -> None:
    assert fast.shape == exact.shape == (3, 224, 224) and fast.dtype == exact.dtype == torch.float32
    assert (fast - exact).abs().max() <= ONE_LEVEL
    assert _cos(fast, exact) >= 0.9999


def test_reference_photos_stay_within_one_level_of_the_exact_path(assets: Path) -> None:
    files = [assets / n for n in PHOTOS]
    batch = gpu_decode.load_image_batch(files, "cpu")
    assert batch.shape == (3, 3, 224, 224) and batch.dtype == torch.float32
    for fast, path in zip(batch, files):
        _close(fast, modalities.load("vision", path))


def test_embeddings_of_both_paths_agree(assets: Path) -> None:
    from embedstore.encoders import create_encoder

    files = [assets / n for n in PHOTOS]
    encoder = create_encoder("imagebind_test", device="cpu")
    exact = encoder.encode("vision", torch.stack([modalities.load("vision", p) for p in files]))
    fast = encoder.encode("vision", gpu_decode.load_image_batch(files, "cpu"))
    cos = (torch.from_numpy(exact) * torch.from_numpy(fast)).sum(1)
    assert cos.min() >= gpu_decode.COSINE_BAR


def _layouts(src: Path, folder: Path) -> dict[str, Path]:
    """``src`` as JPEG 4:4:4, 4:2:2, 4:2:0, grey, and grey whose header declares 2x2 sampling."""
    img = Image.open(src).convert("RGB")
    out = {}
    for name, code in (("444", 0), ("422", 1), ("420", 2)):
        out[name] = folder / f"{name}.jpg"
        img.save(out[name], quality=90, subsampling=code)
    out["grey"] = folder / "grey.jpg"
    img.convert("L").save(out["grey"], quality=90)
    data = bytearray(out["grey"].read_bytes())
    sof = data.index(b"\xff\xc0")
    data[sof + 11] = 0x22  # one component: the factor changes nothing in the scan
    out["grey2x2"] = folder / "grey2x2.jpg"
    out["grey2x2"].write_bytes(bytes(data))
    return out


def test_only_layouts_the_device_decoder_gets_right_take_it(assets: Path, tmp_path: Path) -> None:
    files = _layouts(assets / "dog_image.jpg", tmp_path)
    taken = {name: gpu_decode.device_layout(Image.open(path)) for name, path in files.items()}
    assert taken == {"444": True, "422": True, "420": True, "grey": True, "grey2x2": False}
    for path in files.values():  # the exact path decodes the odd one alike
        exact = modalities.load("vision", path)
        _close(gpu_decode.load_image_batch([path], "cpu")[0], exact)
    assert torch.equal(  # Pillow decodes both to the same 8-bit pixels: an exact transform
        modalities.load("vision", files["grey"]), modalities.load("vision", files["grey2x2"])
    )


@pytest.mark.data(VISP, "Debian package visp-images-data is not installed")
def test_visp_photos_grey_and_colour(tmp_path: Path) -> None:
    files = sorted(p for p in VISP.rglob("*") if p.suffix in (".jpg", ".jpeg"))
    assert any(Image.open(p).mode == "L" for p in files)  # grey JPEGs take the fast path too
    for fast, path in zip(gpu_decode.load_images(files, "cpu"), files):
        assert isinstance(fast, torch.Tensor)
        _close(fast, modalities.load("vision", path))


def test_grayscale_jpeg_becomes_three_channels(assets: Path, tmp_path: Path) -> None:
    path = tmp_path / "grey.jpg"
    Image.open(assets / "dog_image.jpg").convert("L").save(path, quality=90)
    (fast,) = gpu_decode.load_images([path], "cpu")
    assert isinstance(fast, torch.Tensor)
    _close(fast, modalities.load("vision", path))
    red, green = fast[0] * 0.26862954 + 0.48145466, fast[1] * 0.26130258 + 0.4578275
    torch.testing.assert_close(red, green, atol=1e-6, rtol=0)  # the grey value in every channel


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_pillow(
    assets: Path, tmp_path: Path, orientation: int
) -> None:
    path = tmp_path / f"o{orientation}.jpg"
    img = Image.open(assets / "car_image.jpg")  # 640 x 360: a rotation changes the crop
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, quality=90, exif=exif.tobytes())
    for flag in (True, False):
        (fast,) = gpu_decode.load_images([path], "cpu", exif=flag)
        assert isinstance(fast, torch.Tensor)
        _close(fast, modalities.load("vision", path, exif=flag))


def test_small_images_are_upscaled_and_exact_sizes_skip_the_resize(
    assets: Path, tmp_path: Path
) -> None:
    small, exact_fit = tmp_path / "small.jpg", tmp_path / "fit.jpg"
    photo = Image.open(assets / "bird_image.jpg")
    photo.resize((120, 160)).save(small, quality=95)
    photo.resize((224, 300)).save(exact_fit, quality=95)
    for path in (small, exact_fit):
        (fast,) = gpu_decode.load_images([path], "cpu")
        assert isinstance(fast, torch.Tensor)
        _close(fast, modalities.load("vision", path))


def test_non_jpeg_and_cmyk_files_take_the_exact_path(
    assets: Path, imagebind_fixtures: Path, tmp_path: Path
) -> None:
    png = imagebind_fixtures / "inputs" / "portrait_tall.png"
    misnamed = tmp_path / "really_a_png.jpg"
    misnamed.write_bytes(png.read_bytes())
    cmyk = tmp_path / "cmyk.jpg"
    Image.open(assets / "dog_image.jpg").convert("CMYK").save(cmyk, quality=90)
    files = [png, misnamed, cmyk, assets / "car_image.jpg"]
    results = gpu_decode.load_images(files, "cpu")
    for got, path in zip(results[:3], files[:3]):
        assert isinstance(got, torch.Tensor)
        assert torch.equal(got, modalities.load("vision", path))  # bit-exact: the same code
    assert isinstance(results[3], torch.Tensor)


def test_broken_files_give_errors_naming_them_and_the_batch_goes_on(
    assets: Path, tmp_path: Path
) -> None:
    data = (assets / "dog_image.jpg").read_bytes()
    truncated, garbage, empty = tmp_path / "cut.jpg", tmp_path / "junk.jpg", tmp_path / "empty.jpg"
    truncated.write_bytes(data[: len(data) // 2])
    garbage.write_bytes(data[:600] + bytes(4000))
    empty.write_bytes(b"")
    missing = tmp_path / "missing.jpg"
    files = [
        assets / "bird_image.jpg",
        truncated,
        garbage,
        empty,
        missing,
        assets / "car_image.jpg",
    ]
    results = gpu_decode.load_images(files, "cpu")
    assert isinstance(results[0], torch.Tensor) and isinstance(results[5], torch.Tensor)
    _close(results[0], modalities.load("vision", files[0]))
    for got, path in zip(results[1:5], files[1:5]):
        with pytest.raises(EmbedstoreError) as exact:
            modalities.load("vision", path)
        assert type(got) is type(exact.value), path  # the exact path's error, e.g. InvalidMedia
        assert str(got) == str(exact.value) and str(path) in str(got)
    assert isinstance(results[1], InvalidMedia) and results[1].uri == str(truncated)
    with pytest.raises(InvalidMedia, match="cut.jpg"):
        gpu_decode.load_image_batch([truncated], "cpu")


def test_truncated_jpegs_never_reach_the_batch_decoder(
    assets: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # nvjpeg decodes a cut JPEG without an error (on an H200: a tensor, grey below the cut), so
    # a file that does not end with the end-of-image marker takes the exact path, which says why
    data = (assets / "dog_image.jpg").read_bytes()
    cut, padded = tmp_path / "cut.jpg", tmp_path / "padded.jpg"
    cut.write_bytes(data[:5000])
    padded.write_bytes(data + bytes(64))  # zero padding after the marker is common and harmless
    seen: list[int] = []
    decode = gpu_decode._decode_jpegs

    def spy(datas: list[bytes], device: torch.device) -> list[torch.Tensor | None]:
        seen.extend(len(d) for d in datas)
        return decode(datas, device)

    monkeypatch.setattr(gpu_decode, "_decode_jpegs", spy)
    got_cut, got_padded = gpu_decode.load_images([cut, padded], "cpu")
    assert seen == [len(data) + 64]
    assert isinstance(got_cut, InvalidMedia) and "cut.jpg" in str(got_cut)
    assert isinstance(got_padded, torch.Tensor)
    _close(got_padded, modalities.load("vision", assets / "dog_image.jpg"))


def test_the_pixel_limit_is_enforced_before_decoding(assets: Path) -> None:
    (got,) = gpu_decode.load_images(
        [assets / "dog_image.jpg"], "cpu", DecodeLimits(max_pixels=1000)
    )
    assert isinstance(got, PayloadTooLarge) and "dog_image.jpg" in str(got)


def test_bytes_sources_work_too(assets: Path) -> None:
    data = (assets / "dog_image.jpg").read_bytes()
    (got,) = gpu_decode.load_images([data], "cpu")
    assert isinstance(got, torch.Tensor)
    _close(got, modalities.load("vision", data))


@pytest.mark.parametrize(
    "size",
    [
        (256, 864),
        (300, 600),
        (300, 601),
        (864, 256),
        (640, 360),
        (150, 400),
        (400, 150),
        (224, 500),
        (500, 224),
        (230, 231),
        (120, 90),
        (1000, 1000),
    ],
)
def test_resize_follows_pillows_pass_order(size: tuple[int, int]) -> None:
    """Noise is the worst case: the wrong pass order moves a quarter of the values by up to 12 levels."""
    from embedstore.modalities.transforms import image_to_tensor

    w, h = size
    rng = np.random.default_rng(w * 10_000 + h)
    pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    exact = image_to_tensor(Image.fromarray(pixels))
    fast = gpu_decode.resize_crop_normalize(torch.from_numpy(pixels).permute(2, 0, 1)[None])[0]
    diff = (fast - exact).abs()
    assert fast.shape == exact.shape == (3, 224, 224)
    assert diff.max() <= 2 * ONE_LEVEL  # Pillow's fixed-point weights vs float32
    assert (diff > 1e-6).float().mean() < 0.01


def test_images_of_one_size_are_resized_in_chunks(
    assets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gpu_decode, "MAX_RESIZE_PIXELS", 1)  # one image per resize call
    files = [assets / "car_image.jpg"] * 3
    batch = gpu_decode.load_image_batch(files, "cpu")
    assert_same_float32(batch[0], batch[2])  # float resizes of one image in separate calls


# -- audio -------------------------------------------------------------------------------------
AUDIO = ["bird_audio.wav", "car_audio.wav", "dog_audio.wav"]
INPUT_AUDIO = ["mono_16k_0p5s_int16.wav", "stereo_48k_3s_float32.wav", "mono_44k1_5s_int16.wav"]


def test_audio_fbank_on_the_device_equals_the_exact_path(
    assets: Path, imagebind_fixtures: Path
) -> None:
    files = [assets / n for n in AUDIO] + [imagebind_fixtures / "inputs" / n for n in INPUT_AUDIO]
    results = gpu_decode.load_audios(files, "cpu")
    for got, path in zip(results, files):
        exact = modalities.load("audio", path)
        assert isinstance(got, torch.Tensor) and got.shape == exact.shape == (3, 1, 128, 204)
        torch.testing.assert_close(got, exact, atol=1e-5, rtol=0)


def test_resample_on_matches_the_cached_kernel() -> None:
    wave = torch.randn(2, 44100, generator=torch.Generator().manual_seed(0))
    from embedstore.modalities.audio import resample

    assert_same_float32(gpu_decode.resample_on(wave, 44100), resample(wave, 44100))


def test_audio_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "noise.wav"
    bad.write_bytes(b"RIFF" + bytes(40))
    (got,) = gpu_decode.load_audios([bad], "cpu")
    assert isinstance(got, InvalidMedia) and "noise.wav" in str(got)


# -- when it is used ---------------------------------------------------------------------------
def test_the_measured_deviation_passes_the_bar() -> None:
    assert gpu_decode.MEASURED_MIN_COSINE >= gpu_decode.COSINE_BAR == 0.995


@pytest.mark.parametrize(
    ("mode", "device", "expected"),
    [
        ("auto", "cpu", None),
        ("auto", "cuda", "cuda"),
        ("auto", "cuda:1", "cuda:1"),
        ("on", "cpu", "cpu"),
        ("on", "cuda", "cuda"),
        ("off", "cuda", None),
        ("off", "cpu", None),
    ],
)
def test_decode_device_follows_the_setting(mode: str, device: str, expected: str | None) -> None:
    assert gpu_decode.decode_device(mode, device) == expected


def test_decode_device_rejects_unknown_modes() -> None:
    with pytest.raises(ValueError, match="gpu_decode"):
        gpu_decode.decode_device("sometimes", "cuda")


def test_the_setting_comes_from_env_and_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().gpu_decode == "auto"
    monkeypatch.setenv("EMBEDSTORE_GPU_DECODE", "off")
    assert load_settings().gpu_decode == "off"
    assert load_settings(gpu_decode="on").gpu_decode == "on"
    monkeypatch.setenv("EMBEDSTORE_GPU_DECODE", "maybe")
    with pytest.raises(InvalidConfig):
        load_settings()


# -- on a GPU ----------------------------------------------------------------------------------
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.gpu
@needs_cuda
def test_nvjpeg_path_stays_within_the_bar(assets: Path, tmp_path: Path) -> None:
    grey = tmp_path / "grey.jpg"
    Image.open(assets / "dog_image.jpg").convert("L").save(grey, quality=90)
    files = [assets / n for n in PHOTOS] + [grey]
    batch = gpu_decode.load_image_batch(files, "cuda")
    assert batch.device.type == "cuda" and batch.shape == (4, 3, 224, 224)
    for fast, path in zip(batch.cpu(), files):
        exact = modalities.load("vision", path)
        assert _cos(fast, exact) >= gpu_decode.COSINE_BAR
        assert (fast - exact).abs().mean() < 0.01  # nvjpeg's IDCT moves a few levels at most


@pytest.mark.gpu
@needs_cuda
def test_every_jpeg_layout_decodes_on_cuda_like_the_exact_path(
    assets: Path, tmp_path: Path
) -> None:
    files = _layouts(assets / "car_image.jpg", tmp_path)
    batch = gpu_decode.load_image_batch(list(files.values()), "cuda")
    for fast, (name, path) in zip(batch.cpu(), files.items()):
        exact = modalities.load("vision", path)
        # nvjpeg upsamples 4:2:x chroma without libjpeg-turbo's smoothing: pixel cosine 0.99986
        # and mean |diff| 0.0074 on this photo at 4:2:0 (H200); 4:4:4 and grey match to 1e-5
        assert _cos(fast, exact) >= 0.999, name
        assert (fast - exact).abs().mean() < 0.01, name


@pytest.mark.gpu
@needs_cuda
def test_fbank_on_cuda_matches_the_exact_path(assets: Path) -> None:
    for name in AUDIO:
        got = gpu_decode.load_audio(assets / name, "cuda")
        assert got.device.type == "cuda"
        exact = modalities.load("audio", assets / name)
        # cuFFT and CUDA reductions differ from the CPU in the last bits and the log of quiet
        # mel bins amplifies that: cosine 0.99974 at worst here, max |diff| 0.62 over 27 real
        # sounds (H200), while their embeddings agree to 0.99998
        assert _cos(got.cpu(), exact) >= 0.999
        assert (got.cpu() - exact).abs().max() <= 1.0
