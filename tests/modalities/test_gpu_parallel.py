"""decode_many_on_device: JPEGs in device batches (CPU here), the rest in decode_many workers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch
from tolerances import assert_audio_close, assert_same_float32

from embedstore import modalities
from embedstore.errors import InvalidMedia
from embedstore.modalities import DecodeTask
from embedstore.modalities.gpu_parallel import decode_many_on_device, takes

ONE_LEVEL = 1 / 255 / 0.26130258 + 1e-5


def _tasks(assets: Path, fixtures: Path, tmp_path: Path) -> list[DecodeTask]:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes((assets / "dog_image.jpg").read_bytes()[:5000])
    return [
        DecodeTask("bird", "vision", assets / "bird_image.jpg"),
        DecodeTask("car", "vision", assets / "car_image.jpg", {"exif": False}),
        DecodeTask("dog", "vision", assets / "dog_image.jpg"),
        DecodeTask("png", "vision", fixtures / "inputs" / "portrait_tall.png"),
        DecodeTask("call", "audio", assets / "bird_audio.wav"),
        DecodeTask("broken", "vision", broken),
        DecodeTask("caption", "text", "a dog on the grass"),
    ]


def test_takes_only_jpeg_image_paths(assets: Path) -> None:
    jpg = assets / "dog_image.jpg"
    assert takes(DecodeTask(1, "vision", jpg))
    assert takes(DecodeTask(1, "vision", str(jpg).upper().replace("DOG_IMAGE.JPG", "x.JPEG")))
    assert takes(DecodeTask(1, "vision", jpg, {"exif": False}))
    assert not takes(DecodeTask(1, "vision", jpg, {"fast": True}))
    assert not takes(DecodeTask(1, "vision", jpg.read_bytes()))
    assert not takes(DecodeTask(1, "vision", assets / "x.png"))
    assert not takes(DecodeTask(1, "depth", jpg))


@pytest.mark.parametrize("workers", [0, 1])
def test_every_task_comes_back_once(
    assets: Path, imagebind_fixtures: Path, tmp_path: Path, workers: int
) -> None:
    tasks = _tasks(assets, imagebind_fixtures, tmp_path)
    pairs = list(decode_many_on_device(tasks, workers, device="cpu", batch_size=2))
    results = {t.key: r for t, r in pairs}
    assert len(pairs) == len(tasks) and set(results) == {t.key for t in tasks}
    for key, name in (("bird", "bird_image.jpg"), ("dog", "dog_image.jpg")):
        exact = modalities.load("vision", assets / name)
        assert (results[key] - exact).abs().max() <= ONE_LEVEL
    exact_car = modalities.load("vision", assets / "car_image.jpg", exif=False)
    assert (results["car"] - exact_car).abs().max() <= ONE_LEVEL
    png = imagebind_fixtures / "inputs" / "portrait_tall.png"
    assert torch.equal(results["png"], modalities.load("vision", png))  # exact: 8-bit PNG
    assert_audio_close(results["call"], modalities.load("audio", assets / "bird_audio.wav"))
    assert isinstance(results["broken"], InvalidMedia) and "broken.jpg" in str(results["broken"])
    assert results["caption"].shape == (77,)
    assert all(results[k].device == torch.device("cpu") for k in ("bird", "png", "call"))


def test_stopping_early_shuts_the_workers_down(
    assets: Path, imagebind_fixtures: Path, tmp_path: Path
) -> None:
    tasks = _tasks(assets, imagebind_fixtures, tmp_path) * 3
    t0 = time.monotonic()
    gen = decode_many_on_device(tasks, 1, device="cpu", batch_size=1)
    next(gen)
    gen.close()
    assert time.monotonic() - t0 < 60


def test_no_jpeg_and_no_other_tasks(assets: Path) -> None:
    assert list(decode_many_on_device([], 1, device="cpu")) == []
    only = [DecodeTask(0, "vision", assets / "car_image.jpg")]
    ((task, result),) = decode_many_on_device(only, 1, device="cpu")
    assert task.key == 0 and result.shape == (3, 224, 224)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_results_are_ready_while_the_default_stream_is_busy(
    assets: Path, imagebind_fixtures: Path, tmp_path: Path
) -> None:
    from embedstore.modalities import gpu_decode

    tasks = _tasks(assets, imagebind_fixtures, tmp_path)
    busy = torch.randn(8192, 8192, device="cuda")
    for _ in range(50):  # queue a second of work on the default stream, as the model does
        busy = busy @ busy / 64
    got = dict((t.key, r) for t, r in decode_many_on_device(tasks, 1, device="cuda", batch_size=2))
    for name in ("bird", "dog"):
        assert got[name].device.type == "cuda"
        want = gpu_decode.load_image_batch([assets / f"{name}_image.jpg"], "cuda")[0]
        assert_same_float32(got[name].cpu(), want.cpu())  # the same kernels, other batches
    assert got["png"].device.type == "cuda"
    assert torch.equal(
        got["png"].cpu(),
        modalities.load("vision", imagebind_fixtures / "inputs" / "portrait_tall.png"),
    )
    assert isinstance(got["broken"], InvalidMedia)
    torch.cuda.synchronize()
