"""Commands that need no model start without torch or FAISS (``python -X importtime`` checks).

Each command runs as a real ``python -m cli`` process against a real SQLite catalog with FAISS
index files on disk; ``-X importtime`` lists every module the process imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "faiss", "open_clip", "torchvision", "torchaudio", "PIL")


def imported(importtime_stderr: str) -> set[str]:
    """Top-level package names in ``-X importtime`` output."""
    names = set()
    for line in importtime_stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def run_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDSTORE_")}
    return subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cli", "--data-dir", str(data_dir), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def vectors(seed: int, n: int, dim: int = 64) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    """A data folder with collection ``demo``: 3 pictures, 2 sounds, FAISS Flat files saved."""
    from embedstore.config import Settings
    from embedstore.store import NewItem, NewVector, Store

    data = tmp_path / "catalog"
    with Store.open(Settings(data_dir=data)) as store:
        coll = store.create_collection("demo", "imagebind_test", 64, index_spec="Flat")
        img, snd = vectors(0, 3), vectors(1, 2)
        coll.add_items(
            [
                NewItem(f"/lib/p{i}.jpg", "vision", vectors=[NewVector("vision", img[i])])
                for i in range(3)
            ]
            + [
                NewItem(f"/lib/s{i}.wav", "audio", vectors=[NewVector("audio", snd[i])])
                for i in range(2)
            ]
        )
        assert len(coll.search(img[:1], k=5)[0]) == 5  # loads the indexes; close() saves them
    assert sorted(p.name for p in (data / "indexes").glob("*/*.index")) == [
        "audio.index",
        "vision.index",
    ]
    return data


def test_importing_cli_main_loads_no_model_code() -> None:
    code = f"import sys, cli.main; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["stats"],
        ["stats", "-c", "demo", "--json"],
        ["ls", "-c", "demo", "--json"],
        ["show", "1", "-c", "demo"],
        ["collections", "list", "--json"],
        ["collections", "show", "demo"],
        ["encoders", "--json"],
        ["rm", "/lib/p0.jpg", "-c", "demo"],
    ],
    ids=lambda a: "-".join(a).strip("-"),
)
def test_catalog_commands_import_no_model_code(catalog: Path, args: list[str]) -> None:
    out = run_cli(catalog, *args)
    assert out.returncode == 0, out.stderr[-2000:]
    assert imported(out.stderr) & set(HEAVY) == set()
    if args[0] != "--help":  # the catalog is at the newest migration: Alembic is not needed
        assert "alembic" not in imported(out.stderr)
    if args[0] == "stats":
        assert "5 items" in out.stdout or json.loads(out.stdout)["items"] == 5


def test_encoders_reports_weights_without_torch(catalog: Path) -> None:
    before = {
        r["name"]: r["weights"] for r in json.loads(run_cli(catalog, "encoders", "--json").stdout)
    }
    assert before["imagebind_huge"] == "missing"
    assert before["imagebind_test"] == "present"  # built in: nothing to fetch
    (catalog / "weights").mkdir()
    (catalog / "weights" / "imagebind_huge.pth").write_bytes(b"not read by this command")
    out = run_cli(catalog, "encoders", "--json")
    assert out.returncode == 0, out.stderr[-2000:]
    assert {r["name"]: r["weights"] for r in json.loads(out.stdout)}["imagebind_huge"] == "present"
    assert imported(out.stderr) & set(HEAVY) == set()


def test_rm_leaves_the_index_file_to_the_change_log(catalog: Path) -> None:
    """``rm`` commits the delete and its change-log rows only; the next load replays them."""
    import indexers
    from embedstore.config import Settings
    from embedstore.store import Store

    out = run_cli(catalog, "rm", "/lib/p1.jpg", "4", "-c", "demo")  # a picture and a sound
    assert out.returncode == 0, out.stderr[-2000:]
    assert "removed 2 item(s)" in out.stderr
    vision_file = next((catalog / "indexes").glob("*/vision.index"))
    assert len(indexers.load_index(vision_file)) == 3  # the file still holds the removed vector

    img, snd = vectors(0, 3), vectors(1, 2)
    with Store.open(Settings(data_dir=catalog)) as store:
        coll = store.collection("demo")
        assert not coll.indexes.loaded
        hits = coll.search(img[1:2], k=10)[0]
        assert coll.indexes.loaded
        uris = [h.uri for h in hits]
        assert "/lib/p1.jpg" not in uris and "/lib/s0.wav" not in uris
        assert sorted(uris) == ["/lib/p0.jpg", "/lib/p2.jpg", "/lib/s1.wav"]
        assert {m: len(i) for m, i in coll.indexes.indexes.items()} == {"vision": 2, "audio": 1}
        assert [h.uri for h in coll.search(snd[1:2], k=1)[0]] == ["/lib/s1.wav"]
    # the caught-up index was saved on close: a later process loads it without a replay
    assert len(indexers.load_index(vision_file)) == 2


def test_lazy_commands_list_their_own_help() -> None:
    """``--help`` lists the lazy commands from stored lines: they must be the commands' own."""
    import importlib

    from cli.main import cli

    for name, target in cli.lazy.items():  # type: ignore[attr-defined]
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert cli.lazy_help[name] == command.get_short_help_str(10_000), name  # type: ignore[attr-defined]
