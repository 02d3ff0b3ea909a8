"""decode_many's transport: shared buffers reused across results, queued tasks after a kill."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import Counter
from multiprocessing import reduction
from pathlib import Path

import numpy as np
import pytest
import torch
from tolerances import assert_audio_close, assert_same_float32

from embedstore import modalities
from embedstore.errors import InvalidMedia
from embedstore.modalities import DecodeTask, decode_many, parallel

shared_only = pytest.mark.skipif(not parallel._SHARED, reason="memfd and fd passing are Linux-only")


def _send(out: parallel._Outbox, conn, slot: int, arrays: list[np.ndarray]) -> bool:  # type: ignore[no-untyped-def]
    header, fd = out.write(slot, arrays)
    conn.send(header)
    if fd is not None:
        reduction.send_handle(conn, fd, os.getpid())
        os.close(fd)
    return fd is not None


@shared_only
def test_arrays_cross_through_shared_buffers_that_grow_and_are_reused() -> None:
    parent, child = mp.Pipe()
    out, inbox = parallel._Outbox(), parallel._Inbox()
    rng = np.random.default_rng(0)
    small: list[np.ndarray] = [rng.random((3, 224, 224), dtype=np.float32), np.arange(77)]
    big = [rng.random((2, 3, 2, 224, 224), dtype=np.float32)]  # over the first 1 MiB buffer
    strided = [rng.random((224, 224, 3), dtype=np.float32).transpose(2, 0, 1)]
    sent_fd, got = [], []
    steps: list[tuple[int, list[np.ndarray]]] = [
        (0, small),
        (1, small),
        (0, big),
        (1, strided),
        (0, small),
    ]
    for slot, arrays in steps:
        sent_fd.append(_send(out, child, slot, arrays))
        received = inbox.read(parent, parent.recv())
        assert [a.dtype for a in received] == [a.dtype for a in arrays]
        assert all(np.array_equal(a, b) for a, b in zip(received, arrays, strict=True))
        got.append(received)
    assert sent_fd == [True, True, True, False, False]  # a new fd only when a buffer grows
    # what was read is a copy: later results written into the same buffers leave it alone
    assert np.array_equal(got[0][0], small[0]) and np.array_equal(got[2][0], big[0])
    inbox.close()
    parent.close()
    child.close()


def test_inline_headers_carry_the_arrays_themselves() -> None:
    arrays = [np.ones((2, 2), dtype=np.float32)]
    assert parallel._Inbox().read(None, ("inline", arrays)) == arrays  # type: ignore[arg-type]


def test_decoded_items_from_workers_equal_the_in_process_decode(
    assets: Path, video_file: Path
) -> None:
    tasks = [
        DecodeTask(name, "vision", assets / f"{name}_image.jpg") for name in ("bird", "car", "dog")
    ]
    tasks += [
        DecodeTask("call", "audio", assets / "bird_audio.wav"),
        DecodeTask("clip", "video", video_file, {"clips_per_video": 2}),
    ]
    results = dict((t.key, v) for t, v in decode_many(tasks * 2, 1, timeout_s=120))
    for t in tasks:
        exact = modalities.load(t.modality, t.source, **t.options)
        if t.key == "clip":
            assert_same_float32(results["clip"].clips, exact.clips)
            assert_audio_close(results["clip"].audio, exact.audio)
        elif t.modality == "audio":
            assert_audio_close(results[t.key], exact)
        else:  # JPEGs: the same libjpeg and integer resize, an exact transform
            assert torch.equal(results[t.key], exact), t.key


def test_tasks_queued_behind_a_killed_worker_are_decoded_once(
    assets: Path, video_file: Path
) -> None:
    tasks = [DecodeTask("slow", "video", video_file)] + [
        DecodeTask(i, "vision", assets / "dog_image.jpg") for i in range(4)
    ]
    pairs = [(t.key, v) for t, v in decode_many(tasks, 1, timeout_s=0.01)]
    assert Counter(k for k, _ in pairs) == Counter(t.key for t in tasks)  # none lost or doubled
    assert isinstance(dict(pairs)["slow"], InvalidMedia)
