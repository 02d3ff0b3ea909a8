"""A changed file that fails to decode keeps the last good vectors of its item searchable."""

from __future__ import annotations

import os
from pathlib import Path

from embedstore.engine import Engine


def test_failed_change_keeps_the_good_vectors(engine: Engine, library: Path) -> None:
    images = library / "images"
    engine.index([images], "c")
    coll = engine.collection("c")
    dog = str(images / "dog.png")
    before = coll.get_item(dog)
    vector = coll.vectors_of(before.id)[0].vector
    good = Path(dog).read_bytes()

    Path(dog).write_bytes(good[: len(good) // 3])  # a truncated PNG: decoding fails
    os.utime(dog, (before.mtime + 10, before.mtime + 10))
    report = engine.index([images], "c")
    assert [f.uri for f in report.failed] == [dog]

    after = coll.get_item(dog)
    assert (after.id, after.status, after.vectors) == (before.id, "ok", 1)
    assert after.error and "cannot decode" in after.error  # the failure is recorded beside it
    assert (after.size, after.content_hash) == (before.size, before.content_hash)
    hits = coll.search(vector[None, :], 1, modalities=["vision"])[0]
    assert hits[0].id == before.id  # still searchable with its last good vectors

    again = engine.index([images], "c")  # the file is tried again, and still fails
    assert [f.uri for f in again.failed] == [dog]
    Path(dog).write_bytes(good)
    os.utime(dog, (before.mtime + 20, before.mtime + 20))
    fixed = engine.index([images], "c")
    assert not fixed.failed
    healed = coll.get_item(dog)
    assert healed.error is None and healed.id == before.id and healed.status == "ok"


def test_a_new_file_that_fails_is_recorded_as_failed(engine: Engine, library: Path) -> None:
    bad = library / "images" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    report = engine.index([library / "images"], "c")
    assert [f.uri for f in report.failed] == [str(bad)]
    item = engine.collection("c").get_item(str(bad))
    assert item.status == "failed" and item.vectors == 0
