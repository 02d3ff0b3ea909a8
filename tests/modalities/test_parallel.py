"""decode_many: worker processes, errors in the middle of a batch, and the per-task time budget."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tolerances import assert_audio_close

from embedstore import modalities
from embedstore.errors import InvalidMedia, UnsupportedMediaType
from embedstore.modalities import DecodeTask, VideoItem, decode_many


def _batch(assets: Path, tmp_path: Path, video: Path) -> list[DecodeTask]:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes((assets / "dog_image.jpg").read_bytes()[:5000])
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    return [
        DecodeTask("bird", "vision", assets / "bird_image.jpg"),
        DecodeTask("call", "audio", assets / "bird_audio.wav"),
        DecodeTask("broken", "vision", bad),
        DecodeTask("notes", "vision", notes),
        DecodeTask("caption", "text", "a dog on the grass"),
        DecodeTask("clip", "video", video, {"clips_per_video": 2}),
        DecodeTask("car", "vision", (assets / "car_image.jpg").read_bytes()),
    ]


@pytest.mark.parametrize("workers", [0, 2])
def test_decode_many_yields_every_task_once_with_errors_in_place(
    assets: Path, tmp_path: Path, video_file: Path, workers: int
) -> None:
    tasks = _batch(assets, tmp_path, video_file)
    results = dict((task.key, value) for task, value in decode_many(tasks, workers))
    assert set(results) == {t.key for t in tasks}
    # the same libjpeg and integer resize in the worker: exact (tests/tolerances.py)
    assert torch.equal(results["bird"], modalities.load("vision", assets / "bird_image.jpg"))
    assert_audio_close(results["call"], modalities.load("audio", assets / "bird_audio.wav"))
    assert isinstance(results["broken"], InvalidMedia) and "broken.jpg" in str(results["broken"])
    assert results["broken"].uri is not None and results["broken"].uri.endswith("broken.jpg")
    assert isinstance(results["notes"], UnsupportedMediaType)
    assert results["caption"].shape == (77,)
    assert isinstance(results["clip"], VideoItem) and results["clip"].clips.shape == (
        2,
        3,
        2,
        224,
        224,
    )
    assert results["clip"].audio is not None and results["clip"].starts == pytest.approx(
        [0.0, 4.0], abs=0.05
    )
    assert results["car"].shape == (3, 224, 224)


def test_a_task_over_its_time_budget_is_killed_and_the_pool_goes_on(
    assets: Path, video_file: Path
) -> None:
    tasks = [
        DecodeTask("slow", "video", video_file),  # far more than 10 ms of decoding
        DecodeTask("after", "vision", assets / "dog_image.jpg"),
        DecodeTask("more", "vision", assets / "car_image.jpg"),
    ]
    results = dict((t.key, v) for t, v in decode_many(tasks, 1, timeout_s=0.01))
    assert isinstance(results["slow"], InvalidMedia)
    assert "pets.mp4: decoding took longer than 0.01 s" in str(results["slow"])
    # the replacement worker may still be starting when the next budgets run; allow that
    results = dict((t.key, v) for t, v in decode_many(tasks[1:], 1, timeout_s=60))
    assert all(v.shape == (3, 224, 224) for v in results.values())


def test_results_stream_lazily_from_a_generator(assets: Path) -> None:
    def tasks():
        for i in range(6):
            yield DecodeTask(i, "vision", assets / ("bird_image.jpg" if i % 2 else "dog_image.jpg"))

    keys = [task.key for task, value in decode_many(tasks(), 2) if isinstance(value, torch.Tensor)]
    assert sorted(keys) == list(range(6))
