"""Depth, thermal and IMU loaders on real recordings (ViSP RGB-D frames, seglearn smartwatch IMU)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from testdata import VISP as VISP_IMAGES
from testdata import require_data
from tolerances import assert_same_float32

from embedstore import modalities
from embedstore.modalities.depth import depth_to_disparity

VISP = VISP_IMAGES / "mbt-depth" / "castel" / "castel"
needs_visp = pytest.mark.data(
    VISP, "Debian package visp-images-data is not installed (apt-get install visp-images-data)"
)


def _seglearn_watch() -> dict:
    spec = importlib.util.find_spec("seglearn")
    require_data(
        spec is not None and bool(spec.submodule_search_locations),
        "PyPI package seglearn is not installed (pip install --no-deps seglearn)",
    )
    assert spec is not None and spec.submodule_search_locations
    path = Path(spec.submodule_search_locations[0]) / "data" / "watch_dataset.npy"
    return np.load(path, allow_pickle=True).item()  # the package's own trusted data file


def _visp_depth_mm(index: int = 0) -> np.ndarray:
    return np.fromfile(VISP / f"depth_image_{index:04d}.bin", dtype="<u2", offset=8).reshape(
        480, 640
    )


# -- depth --------------------------------------------------------------------------------------
@needs_visp
def test_visp_bin_png16_and_npy_depth_agree(tmp_path: Path) -> None:
    from_bin = modalities.load("depth", VISP / "depth_image_0000.bin")
    assert from_bin.shape == (1, 224, 224) and from_bin.dtype == torch.float32
    mm = _visp_depth_mm()
    Image.fromarray(mm).save(tmp_path / "depth.png")  # 16-bit PNG in millimetres
    np.save(tmp_path / "depth.npy", mm.astype(np.float32) / 1000)  # float metres
    assert_same_float32(modalities.load("depth", tmp_path / "depth.png"), from_bin)
    torch.testing.assert_close(modalities.load("depth", tmp_path / "depth.npy"), from_bin)


@needs_visp
def test_visp_depth_gives_plausible_disparity() -> None:
    got = modalities.load("depth", VISP / "depth_image_0005.bin")
    disparity = got * 0.0295 + 0.0418  # undo the standardisation: normalised disparity in [0, 1]
    assert disparity.min() >= -1e-6 and disparity.max() <= 1 + 1e-6
    mm = _visp_depth_mm(5)
    assert (mm == 0).any()  # invalid pixels exist in the real frame and map to disparity 0
    assert (disparity.abs() < 1e-6).any()


def test_disparity_of_a_plane_two_metres_away(tmp_path: Path) -> None:
    np.save(tmp_path / "wall.npy", np.full((300, 400), 2.0, dtype=np.float32))
    got = modalities.load("depth", tmp_path / "wall.npy")
    expected = (0.075 * 518.857901 / 2.0 / 75.0 - 0.0418) / 0.0295
    torch.testing.assert_close(got, torch.full((1, 224, 224), expected), atol=1e-4, rtol=0)
    scaled = modalities.load(
        "depth", tmp_path / "wall.npy", depth_scale=0.5
    )  # stored in half metres
    assert scaled.mean() > got.mean()


def test_depth_to_disparity_marks_invalid_as_far() -> None:
    d = depth_to_disparity(np.array([[0.0, np.nan, 1.0, 100.0]], dtype=np.float32))
    np.testing.assert_allclose(
        d, [[0.0, 0.0, 0.075 * 518.857901, 0.075 * 518.857901 / 50]], rtol=1e-6
    )


# -- thermal ------------------------------------------------------------------------------------
@needs_visp
def test_thermal_8bit_grey_frame() -> None:
    got = modalities.load("thermal", VISP / "image_0000.pgm")
    assert got.shape == (1, 224, 224) and got.min() >= 0 and got.max() <= 1
    assert got.std() > 0.05


def test_thermal_16bit_png_and_tiff_match_8bit(assets: Path, tmp_path: Path) -> None:
    grey = np.asarray(Image.open(assets / "dog_image.jpg").convert("L"))
    Image.fromarray(grey).save(tmp_path / "t8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "t16.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "t16.tiff")
    eight = modalities.load("thermal", tmp_path / "t8.png")
    for name in ("t16.png", "t16.tiff"):
        sixteen = modalities.load("thermal", tmp_path / name)
        assert sixteen.shape == (1, 224, 224)
        assert (sixteen - eight).abs().max() < 2 / 255


def test_thermal_minmax_stretches_raw_radiometric_frames(assets: Path, tmp_path: Path) -> None:
    grey = np.asarray(Image.open(assets / "car_image.jpg").convert("L")).astype(np.uint16)
    Image.fromarray(51000 + grey * 4).save(tmp_path / "raw.png")  # narrow band of a 16-bit range
    flat = modalities.load("thermal", tmp_path / "raw.png")
    stretched = modalities.load("thermal", tmp_path / "raw.png", scaling="minmax")
    assert flat.std() < 0.02 and stretched.std() > 0.1


# -- IMU ----------------------------------------------------------------------------------------
@pytest.mark.data
def test_imu_real_smartwatch_recording_csv_and_npy(tmp_path: Path) -> None:
    watch = _seglearn_watch()
    rec = watch["X"][0]  # (1333, 6) at 50 Hz: ax ay az gx gy gz
    np.save(tmp_path / "rec.npy", rec)
    np.savetxt(tmp_path / "rec.csv", rec, delimiter=",", header="ax,ay,az,gx,gy,gz", comments="")
    from_npy = modalities.load("imu", tmp_path / "rec.npy", sample_rate=50)
    from_csv = modalities.load("imu", tmp_path / "rec.csv", sample_rate=50)
    assert from_npy.shape == (6, 2000) and from_npy.dtype == torch.float32
    torch.testing.assert_close(from_npy, from_csv)
    # 26.7 s at 50 Hz -> 200 Hz, the central 10 s kept: sample k of the window is at 8.33 s + k/200
    start = (round(1333 * 4) - 2000) // 2
    np.testing.assert_allclose(
        from_npy[:, ::4][:, 1:-1].numpy(), rec[start // 4 + 1 : start // 4 + 499].T, atol=0.6
    )


@pytest.mark.data
def test_imu_rate_from_a_time_column_and_short_recordings(tmp_path: Path) -> None:
    rec = _seglearn_watch()["X"][3][:150]  # 3 s at 50 Hz
    times = np.arange(len(rec)) * 20.0  # milliseconds
    np.savetxt(tmp_path / "short.csv", np.column_stack([times, rec]), delimiter=",")
    got = modalities.load("imu", tmp_path / "short.csv", time_scale=0.001)
    assert got.shape == (6, 2000)
    assert got[:, 600:].abs().sum() == 0  # 3 s of 10 s: zero padded after 600 samples
    stretched = modalities.load("imu", tmp_path / "short.csv", columns=[1, 2, 3, 4, 5, 6])
    assert stretched.shape == (6, 2000) and stretched[:, -1].abs().sum() > 0
