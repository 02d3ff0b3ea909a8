"""A walk never leaves its roots: links out are skipped and reported, loops end, reads re-check."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from embedstore.engine import Engine
from embedstore.errors import PathNotAllowed
from embedstore.ingest import walk
from embedstore.ingest.plan import hash_file
from embedstore.modalities import DecodeLimits, load


@pytest.fixture
def outside(tmp_path: Path, library: Path) -> Path:
    """A folder beside the library holding a real image (a secret the walk must not reach)."""
    out = tmp_path / "outside"
    out.mkdir()
    shutil.copy(library / "images" / "car.png", out / "secret.png")
    (out / "secret.txt").write_text("do not index me\n")
    return out


def test_links_out_are_skipped_and_reported(library: Path, outside: Path) -> None:
    (library / "sub").mkdir()
    os.symlink("../../outside", library / "sub" / "out")  # a folder link leading out
    os.symlink(outside / "secret.png", library / "images" / "secret.png")  # a file link out
    skipped: list[str] = []
    entries, _ = walk([library], on_skip=skipped.append)
    assert all(os.path.realpath(e.uri).startswith(str(library) + os.sep) for e in entries)
    assert not any("secret" in e.uri or "/out/" in e.uri for e in entries)
    assert sorted(skipped) == [
        f"skipping {library}/images/secret.png: outside {library}",
        f"skipping {library}/sub/out: outside {library}",
    ]


def test_links_inside_are_followed_once(library: Path, tmp_path: Path) -> None:
    hidden = library / ".private" / "deep"
    hidden.mkdir(parents=True)
    shutil.copy(library / "images" / "dog.png", hidden / "cat.png")
    os.symlink(".private/deep", library / "cats")  # only reachable through the link: followed
    os.symlink("images", library / "alias")  # a second way to the same folder: walked once
    os.symlink("images/dog.png", library / "dog_link.png")  # a second name for a file: once
    entries, _ = walk([library], include=["*.png"])
    assert sorted(e.rel for e in entries) == [
        "cats/cat.png",
        "images/bird.png",
        "images/car.png",
        "images/dog.png",
    ]


def test_loops_end(library: Path) -> None:
    (library / "sub").mkdir()
    os.symlink("..", library / "sub" / "loop")  # back to the root
    os.symlink(".", library / "images" / "self")
    entries, _ = walk([library])
    assert len(entries) == 9  # 3 images, 3 sounds, 3 captions: each once
    assert len({e.uri for e in entries}) == 9


def test_walk_within_fences_files_by_resolved_path(library: Path, outside: Path) -> None:
    os.symlink(outside, library / "out")  # a link out: skipped by the walk itself
    skipped: list[str] = []
    entries, _ = walk([library], within=[library / "images"], on_skip=skipped.append)
    assert {e.rel for e in entries} == {"images/bird.png", "images/car.png", "images/dog.png"}
    assert any(s.startswith(f"skipping {library}/sounds/dog.wav: outside ") for s in skipped)


def test_reads_check_the_opened_file(library: Path, outside: Path) -> None:
    """A file or a folder swapped for a link after the walk is refused when opened."""
    roots = (str(library),)
    dog = library / "images" / "dog.png"
    assert load("vision", dog, limits=DecodeLimits(roots=roots)).shape == (3, 224, 224)
    dog.unlink()
    os.symlink(outside / "secret.png", dog)  # the file swapped for a link out
    with pytest.raises(PathNotAllowed):
        load("vision", dog, limits=DecodeLimits(roots=roots))
    with pytest.raises(PathNotAllowed):
        hash_file(str(dog), roots)
    shutil.rmtree(library / "sounds")
    os.symlink(outside, library / "sounds")  # a folder on the way swapped for a link out
    with pytest.raises(PathNotAllowed):
        load("text", library / "sounds" / "secret.txt", limits=DecodeLimits(roots=roots))


def test_a_link_swapped_between_walk_and_read_is_not_embedded(
    engine: Engine, library: Path, outside: Path
) -> None:
    dog = library / "images" / "dog.png"
    swapped: list[bool] = []

    def swap(done: int, total: int) -> None:  # called after the walk and the hashing
        if not swapped:
            dog.unlink()
            os.symlink(outside / "secret.png", dog)
            swapped.append(True)

    report = engine.index([library / "images"], "c", progress=swap)
    assert swapped
    assert [f.uri for f in report.failed] == [str(dog)]
    assert "outside the indexed folders" in report.failed[0].reason
    coll = engine.collection("c")
    assert coll.get_item(str(dog)).vectors == 0  # recorded as failed, nothing embedded
    assert all("secret" not in i.uri for i in coll.list_items())


def test_index_reports_links_out(engine: Engine, library: Path, outside: Path) -> None:
    os.symlink(outside, library / "images" / "out")
    report = engine.index([library / "images"], "c")
    assert report.added == 3
    assert report.skipped == (f"skipping {library}/images/out: outside {library}/images",)
    assert report.to_dict()["skipped"] == list(report.skipped)


def test_prune_removes_items_indexed_through_a_link_out(
    engine: Engine, library: Path, outside: Path
) -> None:
    from embedstore.store import NewItem

    images = library / "images"
    engine.index([images], "c")
    os.symlink(outside, images / "out")
    coll = engine.collection("c")
    dog = coll.get_item(str(images / "dog.png"))
    leaked = str(images / "out" / "secret.png")  # as a walk that followed links out stored it
    coll.add_items(
        [NewItem(leaked, "vision", "h", 1, 1.0, {}, coll.vectors_of(dog.id))]
    )  # fmt: skip
    report = engine.index([images], "c", prune=True)
    assert report.removed == 1
    assert sorted(i.uri for i in coll.list_items()) == sorted(
        str(images / n) for n in ("bird.png", "car.png", "dog.png")
    )
