"""Indexing with the device decode path (``gpu_decode="on"``, here on the CPU device)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from testdata import ASSETS, require_data

from embedstore.config import Settings
from embedstore.engine import Engine


def _index(settings: Settings, mode: str, library: Path) -> tuple[object, dict[str, np.ndarray]]:
    update = {
        "workers": 1,
        "batch_size": 4,
        "gpu_decode": mode,
        "data_dir": settings.data_dir / mode,
    }
    eng = Engine(settings.model_copy(update=update))
    try:
        report = eng.index([library], "photos", encoder="imagebind_test")
        coll = eng.collection("photos")
        vectors = {
            item.uri: coll.vectors_of(item.id)[0].vector
            for item in coll.list_items(limit=100)
            if item.status == "ok"
        }
    finally:
        eng.close()
    return report, vectors


def test_device_decode_indexes_like_the_exact_path(settings: Settings, tmp_path: Path) -> None:
    photos = sorted(ASSETS.glob("*.jpg"))
    require_data(bool(photos), f"no reference photos in {ASSETS}")
    library = tmp_path / "lib"
    library.mkdir()
    for p in photos:
        shutil.copy(p, library / p.name)
    (library / "broken.jpg").write_bytes(photos[0].read_bytes()[:300])  # truncated JPEG
    exact, exact_vectors = _index(settings, "off", library)
    fast, fast_vectors = _index(settings, "on", library)
    assert (fast.added, [f.uri for f in fast.failed]) == (
        exact.added,
        [f.uri for f in exact.failed],
    )
    assert "broken.jpg" in fast.failed[0].uri and len(fast_vectors) == len(photos)
    for uri, v in exact_vectors.items():
        cos = float(
            np.dot(v, fast_vectors[uri]) / np.linalg.norm(v) / np.linalg.norm(fast_vectors[uri])
        )
        assert cos >= 0.999, uri
