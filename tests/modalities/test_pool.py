"""DecodePool: one set of decode workers shared by concurrent jobs, a crashed worker replaced."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from waiting import process_gone, until

from embedstore import modalities
from embedstore.errors import InvalidMedia, PayloadTooLarge
from embedstore.modalities import DecodeTask
from embedstore.modalities.pool import DecodePool
from embedstore.modalities.sources import DecodeLimits

PHOTOS = ("bird_image.jpg", "car_image.jpg", "dog_image.jpg")


@pytest.fixture
def pool() -> Iterator[DecodePool]:
    p = DecodePool(2)
    yield p
    p.close()


def test_concurrent_jobs_get_their_own_results(pool: DecodePool, assets: Path) -> None:
    # two jobs of 12 tasks each, the same pictures under different keys: a result delivered to
    # the wrong job, or twice, or never, shows up in the keys
    expected = {name: modalities.load("vision", assets / name) for name in PHOTOS}
    gate = threading.Event()
    results: dict[str, list[tuple[Any, Any]]] = {}

    def job(tag: str) -> None:
        def tasks() -> Iterator[DecodeTask]:
            for i in range(12):
                if i == 3:
                    assert gate.wait(60)  # both jobs are open before either gets further
                yield DecodeTask((tag, i), "vision", assets / PHOTOS[i % 3])

        results[tag] = list(pool.decode(tasks()))

    threads = [threading.Thread(target=job, args=(tag,)) for tag in ("a", "b")]
    for t in threads:
        t.start()
    until(lambda: pool.open_jobs() == 2, "both jobs open")
    gate.set()
    for t in threads:
        t.join(120)
    assert pool.starts == 1 and pool.peak_jobs == 2
    for tag in ("a", "b"):
        keys = sorted(task.key for task, _ in results[tag])
        assert keys == [(tag, i) for i in range(12)]
        for task, value in results[tag]:
            # the same libjpeg and integer resize in the worker: exact (tests/tolerances.py)
            assert torch.equal(value, expected[PHOTOS[task.key[1] % 3]]), task.key
    assert pool.open_jobs() == 0


def test_a_killed_worker_fails_its_task_and_is_replaced(assets: Path) -> None:
    pool = DecodePool(1)
    try:
        # the worker is up: one task answered
        assert list(pool.decode([DecodeTask(0, "vision", assets / PHOTOS[0])]))[0][0].key == 0
        (pid,) = pool.pids()
        # stopped, the worker cannot answer what it is sent: the kill comes while it holds it
        os.kill(pid, signal.SIGSTOP)
        tasks = [DecodeTask(i, "vision", assets / PHOTOS[i % 3]) for i in range(1, 5)]
        got: list[tuple[DecodeTask, Any]] = []
        job = threading.Thread(target=lambda: got.extend(pool.decode(tasks)))
        job.start()
        until(lambda: pool.in_flight() == 2, "two tasks sent to the stopped worker")
        os.kill(pid, signal.SIGKILL)
        job.join(120)
        results = {task.key: value for task, value in got}
        assert sorted(results) == [1, 2, 3, 4]
        assert isinstance(results[1], InvalidMedia)
        assert "decoder process died (exit code -9)" in str(results[1])
        assert results[1].uri is not None and results[1].uri.endswith(PHOTOS[1])
        for key in (2, 3, 4):  # queued behind it: decoded by the replacement
            assert torch.equal(results[key], modalities.load("vision", assets / PHOTOS[key % 3]))
        assert pool.replaced == 1 and pool.starts == 1 and pool.pids() != [pid]
    finally:
        pool.close()


def test_a_job_closed_early_leaves_the_pool_usable(pool: DecodePool, assets: Path) -> None:
    tasks = [DecodeTask(i, "vision", assets / PHOTOS[i % 3]) for i in range(10)]
    first = pool.decode(tasks)
    next(first)
    first.close()  # type: ignore[attr-defined]  # queued tasks dropped, late results discarded
    assert pool.open_jobs() == 0
    again = sorted(t.key for t, v in pool.decode(tasks[:4]) if isinstance(v, torch.Tensor))
    assert again == [0, 1, 2, 3]


def test_close_ends_every_worker_and_later_tasks_fail(assets: Path) -> None:
    pool = DecodePool(2)
    list(pool.decode([DecodeTask(0, "vision", assets / PHOTOS[0])]))
    pids = pool.pids()
    assert len(pids) == 2
    pool.close()
    assert pool.pids() == [] and not pool.started
    assert not [p for p in multiprocessing.active_children() if p.pid in pids]
    until(lambda: all(process_gone(pid) for pid in pids), "the workers exit")
    ((task, late),) = list(pool.decode([DecodeTask(1, "vision", assets / PHOTOS[1])]))
    assert isinstance(late, InvalidMedia) and "decode pool was closed" in str(late)


def test_each_job_decodes_under_its_own_limits(pool: DecodePool, assets: Path) -> None:
    # the same workers serve both jobs: the limits travel with each task, not with the worker
    photo = assets / PHOTOS[0]
    strict = DecodeLimits(max_pixels=100)
    ((_, refused),) = list(pool.decode([DecodeTask(0, "vision", photo)], limits=strict))
    ((_, decoded),) = list(pool.decode([DecodeTask(1, "vision", photo)]))
    assert isinstance(refused, PayloadTooLarge) and "exceeds the limit of 100" in str(refused)
    assert torch.equal(decoded, modalities.load("vision", photo))
    assert pool.starts == 1


def test_a_task_over_its_budget_is_killed_and_the_pool_goes_on(
    assets: Path, video_file: Path
) -> None:
    pool = DecodePool(1)
    try:
        slow = [DecodeTask("slow", "video", video_file)]  # far more than 10 ms of decoding
        ((_, late),) = list(pool.decode(slow, timeout_s=0.01))
        assert isinstance(late, InvalidMedia)
        assert "pets.mp4: decoding took longer than 0.01 s" in str(late)
        assert pool.replaced == 1
        after = [DecodeTask(i, "vision", assets / PHOTOS[i]) for i in range(3)]
        results = dict((t.key, v) for t, v in pool.decode(after, timeout_s=60))
        assert all(results[i].shape == (3, 224, 224) for i in range(3))
    finally:
        pool.close()


def test_a_worker_that_dies_while_idle_is_replaced(pool: DecodePool, assets: Path) -> None:
    list(pool.decode([DecodeTask(0, "vision", assets / PHOTOS[0])]))
    victim = pool.pids()[0]
    os.kill(victim, signal.SIGKILL)
    until(lambda: pool.replaced == 1, "the dead worker is replaced")
    assert victim not in pool.pids() and len(pool.pids()) == 2
    tasks = [DecodeTask(i, "vision", assets / PHOTOS[i % 3]) for i in range(6)]
    assert all(isinstance(v, torch.Tensor) for _, v in pool.decode(tasks))
