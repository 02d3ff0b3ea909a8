"""The embed step overlaps batch preparation with the model (ingest/overlap.py), on the CPU here.

The next batch is collated while the model runs the previous one; the items and their vectors
are those of embedding every file on its own; a broken file fails alone; an encoder error ends
the run with every thread and decode process it started gone.
"""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from ingest_media import make_library, make_video, many_images
from tolerances import SAME_CPU

from embedstore import modalities
from embedstore.encoders import create_encoder
from embedstore.encoders.base import Encoder
from embedstore.engine import Engine
from embedstore.ingest.overlap import Staged, Stager
from embedstore.ingest.pipeline import Embedder, Slot
from embedstore.ingest.plan import Group
from embedstore.ingest.walk import walk
from embedstore.modalities import VideoItem

ENC = "imagebind_test"
WAIT_S = 60.0  # only a pipeline that never stages the next batch waits this long (then fails)


class Hooked(Encoder):
    """``imagebind_test`` with a hook run before each model call (the call's index, modality)."""

    def __init__(self, hook: Any) -> None:
        self.inner = create_encoder(ENC, device="cpu")
        self.name, self.dim, self.modalities = ENC, self.inner.dim, self.inner.modalities
        self.version, self.device = self.inner.version, self.inner.device
        self.hook, self.calls = hook, 0

    def encode(self, modality: str, batch: torch.Tensor) -> np.ndarray:
        self.calls += 1
        self.hook(self.calls, modality)
        return self.inner.encode(modality, batch)


def _images(library: Path) -> list[tuple[Group, torch.Tensor]]:
    entries, _ = walk([library])
    return [
        (Group(f"h{i}", e), modalities.load("vision", Path(e.uri)))
        for i, e in enumerate(entries)
        if e.modality == "vision"
    ]


def test_the_next_batch_is_staged_while_the_model_runs(engine: Engine, tmp_path: Path) -> None:
    staged: list[Staged] = []
    second = threading.Event()
    overlapped: list[bool] = []

    def on_staged(batch: Staged) -> None:
        staged.append(batch)
        if len(staged) == 2:
            second.set()

    def hook(call: int, modality: str) -> None:
        if call == 1:  # the first batch is in the model: the second must get collated meanwhile
            overlapped.append(second.wait(WAIT_S))

    enc = Hooked(hook)
    finished: list[Slot] = []
    embedder = Embedder(engine, enc, 2, finished.extend, on_staged=on_staged)
    items = _images(many_images(tmp_path / "lib", 5))
    assert len(items) == 5  # batches of 2, 2 and 1
    try:
        for group, tensor in items:
            embedder.add(group, "vision", tensor)
        embedder.flush()
    finally:
        embedder.close()
    assert overlapped == [True]
    assert [b.tensor.shape[0] for b in staged] == [2, 2, 1] and enc.calls == 3
    for b in staged:  # one contiguous tensor per batch, on the model's device (CPU: no event)
        assert b.tensor.is_contiguous() and b.ready is None
    want = {g.leader.uri: t for g, t in items}
    assert sorted(s.group.leader.uri for s in finished) == sorted(want)
    for slot in finished:  # the vector of that file's own batch of one
        alone = enc.inner.encode("vision", want[slot.group.leader.uri][None])[0]
        torch.testing.assert_close(
            torch.from_numpy(slot.vectors[0]), torch.from_numpy(alone), **SAME_CPU
        )
    assert embedder.stats.batches == 3 and embedder.stats.items == 5


def test_stager_on_the_cpu_stacks_into_one_tensor() -> None:
    rows = [torch.full((3, 4), float(i)) for i in range(3)]
    batch, ready = Stager("cpu").stage(rows)
    assert ready is None and batch.is_contiguous()
    assert torch.equal(batch, torch.stack(rows))  # a copy: exact


def _reference(enc: Encoder, path: Path, modality: str) -> list[tuple[str, np.ndarray]]:
    """(modality, vector) of each piece of one file, each embedded in a batch of its own."""
    item = modalities.load(modality, path)
    if isinstance(item, VideoItem):
        pieces = [("vision", clip) for clip in item.clips] + [("audio", item.audio)]
    else:
        pieces = [(modality, item)]
    return [(m, enc.encode(m, x[None])[0]) for m, x in pieces]


@pytest.mark.slow
def test_mixed_folder_gives_the_items_and_vectors_of_files_embedded_alone(
    engine: Engine, tmp_path: Path
) -> None:
    library = make_library(tmp_path / "lib")
    (library / "clips").mkdir()
    make_video(library / "clips" / "dog.mp4", seconds=2.5)
    report = engine.index([library], "media", encoder=ENC)  # batches of 4 (the engine fixture)
    assert (report.added, report.failed) == (10, ())
    coll = engine.collection("media")
    enc = engine.encoder(ENC)
    entries, _ = walk([library])
    assert {i.uri for i in coll.list_items(limit=100)} == {e.uri for e in entries}
    for e in entries:
        item = coll.get_item(e.uri)
        assert item.modality == e.modality
        assert item.metadata["name"] == Path(e.uri).name and item.metadata["size"] == e.size
        got = [(v.modality, v.vector) for v in coll.vectors_of(item.id)]
        want = _reference(enc, Path(e.uri), e.modality)
        assert [m for m, _ in got] == [m for m, _ in want], e.uri
        for (_, g), (_, w) in zip(got, want):  # another batch, same float32 computation
            torch.testing.assert_close(torch.from_numpy(g), torch.from_numpy(w), **SAME_CPU)
    video = coll.get_item(str(library / "clips" / "dog.mp4"))
    assert video.metadata["clips"] > 1  # its clips and its sound track ran in separate batches


def test_a_broken_file_fails_alone_in_its_batch(engine: Engine, tmp_path: Path) -> None:
    library = make_library(tmp_path / "lib", size=64)
    (library / "images" / "cut.png").write_bytes(
        (library / "images" / "dog.png").read_bytes()[:200]
    )
    report = engine.index([library / "images"], "media", encoder=ENC)  # 4 images: one batch
    assert report.added == 3
    assert [Path(f.uri).name for f in report.failed] == ["cut.png"]
    assert report.failed[0].reason.startswith(str(library / "images" / "cut.png"))
    assert engine.encoded_items == 3


def _embedstore_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate() if t.name.startswith("embedstore-"))


def test_an_encoder_error_ends_the_run_and_every_thread(engine: Engine, tmp_path: Path) -> None:
    def hook(call: int, modality: str) -> None:
        if call == 2:
            raise RuntimeError("the encoder broke on its second batch")

    engine.use_encoder(Hooked(hook))
    library = make_library(tmp_path / "lib")
    before = set(threading.enumerate())
    assert _embedstore_threads() == []
    with pytest.raises(RuntimeError, match="second batch"):
        engine.index([library], "media", encoder=ENC)
    assert set(threading.enumerate()) == before
    assert _embedstore_threads() == [] and multiprocessing.active_children() == []
    # the batch that ran is committed; the rest is embedded by the next run
    first = engine.collection("media").info().items
    assert 0 < first < 9
    engine.use_encoder(create_encoder(ENC, device="cpu"))
    report = engine.index([library], "media")
    assert report.added == 9 - first and report.unchanged == first


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_cuda_batches_reach_the_model_through_a_side_stream(
    engine: Engine, tmp_path: Path
) -> None:
    from testdata import ASSETS

    from embedstore.modalities.gpu_parallel import decode_many_on_device
    from embedstore.modalities.parallel import DecodeTask

    enc = create_encoder(ENC, device="cuda")
    items = _images(many_images(tmp_path / "lib", 5))  # PNGs: host tensors (pinned copies)
    tasks = [DecodeTask(n, "vision", ASSETS / f"{n}_image.jpg") for n in ("dog", "car", "bird")]
    entries, _ = walk([ASSETS / f"{n}_image.jpg" for n in ("dog", "car", "bird")])
    by_name = {Path(e.uri).name.split("_")[0]: e for e in entries}
    for task, result in decode_many_on_device(tasks, 0, device="cuda", batch_size=3):
        assert isinstance(result, torch.Tensor) and result.device.type == "cuda"
        items.append((Group(f"j{task.key}", by_name[task.key]), result))  # on the decode stream
    staged: list[Staged] = []
    finished: list[Slot] = []
    embedder = Embedder(engine, enc, 2, finished.extend, on_staged=staged.append)
    busy = torch.randn(8192, 8192, device="cuda")
    for _ in range(50):  # about a second of work queued on the default stream, the model's
        busy = busy @ busy / 64
    try:  # batches: host + host, host + host, host + device, device + device
        for group, tensor in items:
            embedder.add(group, "vision", tensor)
        embedder.flush()
    finally:
        embedder.close()
    assert [b.tensor.shape[0] for b in staged] == [2, 2, 2, 2]
    assert all(b.ready is not None and b.tensor.device.type == "cuda" for b in staged)
    want = {g.leader.uri: t for g, t in items}
    assert sorted(s.group.leader.uri for s in finished) == sorted(want)
    for slot in finished:  # the same float32 kernels on one GPU, another batch size
        alone = enc.encode("vision", want[slot.group.leader.uri][None].cuda())[0]
        torch.testing.assert_close(
            torch.from_numpy(slot.vectors[0]), torch.from_numpy(alone), **SAME_CPU
        )
