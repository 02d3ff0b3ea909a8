"""The three ways ``benchmarks.ann`` builds and searches one index spec: raw FAISS, indexers, store.

Each builder returns a ``Built``: timed build, index size, a search-parameter setter and a search
returning row ids (positions in ``xb``) so recall is computed the same way for all three.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import rss_mb

HNSW_EF_CONSTRUCTION = 200
NPROBES = (1, 2, 4, 8, 16, 32, 64, 128)
EF_SEARCH = (16, 32, 64, 128, 256)


def default_specs(n: int, dim: int) -> list[str]:
    """Flat, IVF-Flat, HNSW32 and IVF-PQ sized for ``n`` vectors of ``dim``."""
    nlist = 1 << max(4, int(np.log2(max(16.0, 4 * np.sqrt(n)))))  # power of two near 4 sqrt(n)
    nlist = min(nlist, max(16, n // 39))  # FAISS wants >= 39 training points per centroid
    m = next(m for m in range(max(1, dim // 8), 0, -1) if dim % m == 0)
    pq = f"PQ{m}" if n >= 256 * 39 else f"PQ{m}x4"  # 8-bit codebooks need ~10k training points
    return ["Flat", f"IVF{nlist},Flat", "HNSW32", f"IVF{nlist},{pq}"]


def _nlist(spec: str) -> int:
    head = spec.split(",")[0]
    digits = "".join(ch for ch in head[3:] if ch.isdigit())
    return int(digits) if digits else 1


def param_sweep(
    spec: str, params: dict[str, tuple[int, ...]] | None = None
) -> list[tuple[str | None, int | None]]:
    """(parameter, value) pairs to sweep for ``spec``: nprobe for IVF, efSearch for HNSW."""
    params = params or {}
    if spec.startswith("IVF"):
        values = tuple(p for p in params.get("nprobe") or NPROBES if p <= _nlist(spec))
        return [("nprobe", v) for v in values]
    if "HNSW" in spec:
        return [("efSearch", v) for v in params.get("efSearch") or EF_SEARCH]
    return [(None, None)]


class Built:
    """A built index: timings, size, and search over row ids."""

    def __init__(
        self,
        layer: str,
        spec: str,
        search: Callable[[np.ndarray, int], np.ndarray],
        set_param: Callable[[str, int], None],
        build_s: float,
        index_mb: float,
        rss_delta_mb: float,
        close: Callable[[], None] = lambda: None,
    ) -> None:
        self.layer, self.spec = layer, spec
        self.search = search
        self._set_param = set_param
        self.build_s, self.index_mb, self.rss_delta_mb = build_s, index_mb, rss_delta_mb
        self.close = close

    def set_param(self, name: str | None, value: int | None) -> None:
        """Set a search-time parameter (no-op for ``None``)."""
        if name is not None and value is not None:
            self._set_param(name, value)


def _faiss_size_mb(index: Any) -> float:
    import faiss

    return len(faiss.serialize_index(index)) / 2**20


def build_faiss(spec: str, xb: np.ndarray, ef_construction: int = HNSW_EF_CONSTRUCTION) -> Built:
    """The reference: ``faiss.index_factory`` with inner product."""
    import faiss

    rss0, t0 = rss_mb(), time.perf_counter()
    index = faiss.index_factory(xb.shape[1], spec, faiss.METRIC_INNER_PRODUCT)
    ps = faiss.ParameterSpace()
    if "HNSW" in spec:
        ps.set_index_parameter(index, "efConstruction", ef_construction)
    if not index.is_trained:
        index.train(xb)
    index.add(xb)
    build_s = time.perf_counter() - t0

    def search(q: np.ndarray, k: int) -> np.ndarray:
        return index.search(q, k)[1]

    def set_param(name: str, value: int) -> None:
        ps.set_index_parameter(index, name, value)

    return Built("faiss", spec, search, set_param, build_s, _faiss_size_mb(index), rss_mb() - rss0)


def build_indexers(spec: str, xb: np.ndarray, ef_construction: int = HNSW_EF_CONSTRUCTION) -> Built:
    """Our wrapper: ``indexers.create_index`` + ``add`` with ids = row numbers."""
    import indexers

    rss0, t0 = rss_mb(), time.perf_counter()
    index = indexers.create_index(spec, xb.shape[1], n=len(xb))
    if "HNSW" in spec:
        index.set_params(f"efConstruction={ef_construction}")  # type: ignore[union-attr]
    if not index.is_trained:
        index.train(xb)
    index.add(np.arange(len(xb), dtype=np.int64), xb)
    build_s = time.perf_counter() - t0
    rss = rss_mb() - rss0
    with tempfile.TemporaryDirectory() as tmp:
        index.save(Path(tmp) / "index")
        size = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 2**20

    def search(q: np.ndarray, k: int) -> np.ndarray:
        return np.asarray(index.search(q, k)[1])

    def set_param(name: str, value: int) -> None:
        index.set_params(f"{name}={value}")  # type: ignore[union-attr]

    return Built("indexers", spec, search, set_param, build_s, size, rss)


def build_store(
    spec: str, xb: np.ndarray, ef_construction: int = HNSW_EF_CONSTRUCTION
) -> list[Built]:
    """A store collection (SQLite in a temp dir) with one item per vector, searched three ways.

    ``store``: ``Collection.search`` (hits with their database rows); ``store_ids``:
    ``Collection.search_ids`` (ids and scores, like FAISS); ``store_faiss``: raw FAISS on the
    collection's own FAISS object with the same search parameters, so the store's overhead is
    measured on the very same index (same recall), not on a second build.
    """
    from embedstore.store import NewItem, NewVector, Store

    tmp = Path(tempfile.mkdtemp(prefix="embedstore-ann-"))
    store = Store(f"sqlite:///{tmp / 'bench.db'}", tmp / "indexes")
    rss0, t0 = rss_mb(), time.perf_counter()
    coll = store.create_collection("bench", "bench", xb.shape[1], index_spec=spec)
    item_ids: list[int] = []
    chunk = 5000
    for s in range(0, len(xb), chunk):
        items = [
            NewItem(f"row:{i}", "vision", f"h{i}", 0, 0.0, {}, [NewVector("vision", xb[i])])
            for i in range(s, min(len(xb), s + chunk))
        ]
        item_ids += coll.add_items(items)
    if spec.upper().startswith("IVF"):  # retrain on a sample of everything (not the first chunk)
        coll.reindex(min_recall=0.0)  # the benchmark measures recall itself
    coll.search(xb[:1], 1)  # the index is built or caught up lazily: include that in build time
    build_s = time.perf_counter() - t0
    row_of = np.full(max(item_ids) + 1, -1, dtype=np.int64)
    row_of[np.asarray(item_ids)] = np.arange(len(item_ids))
    index = coll.indexes.indexes["vision"]
    vids = index.ids()  # one vector per item, allocated in row order
    row_of_vector = np.full(int(vids.max()) + 2, -1, dtype=np.int64)
    row_of_vector[vids] = np.arange(len(vids))

    def search(q: np.ndarray, k: int) -> np.ndarray:
        hits = coll.search(q, k)
        out = np.full((len(q), k), -1, dtype=np.int64)
        for i, row in enumerate(hits):
            ids = [h.id for h in row[:k]]
            out[i, : len(ids)] = row_of[ids]
        return out

    def search_ids(q: np.ndarray, k: int) -> np.ndarray:
        return np.asarray(row_of_vector[coll.search_ids(q, k, modality="vision")[1]])

    def search_faiss(q: np.ndarray, k: int) -> np.ndarray:
        raw = index._index  # type: ignore[union-attr]
        params = index._params(None, None, None, k)  # type: ignore[union-attr]
        return np.asarray(row_of_vector[raw.search(q, k, params=params)[1]])

    def set_param(name: str, value: int) -> None:
        for live in coll.indexes.indexes.values():  # the collection's FaissIndex per modality
            if hasattr(live, "set_params"):
                live.set_params(f"{name}={value}")

    def close() -> None:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)

    coll.flush()
    size = sum(p.stat().st_size for p in (tmp / "indexes").rglob("*") if p.is_file()) / 2**20
    rss = rss_mb() - rss0
    return [
        Built("store", spec, search, set_param, build_s, size, rss),
        Built("store_ids", spec, search_ids, set_param, build_s, size, rss),
        Built("store_faiss", spec, search_faiss, set_param, build_s, size, rss, close),
    ]


def store_available() -> bool:
    """Whether ``embedstore.store`` (the catalog layer) can be imported here."""
    try:
        from embedstore.store import Store  # noqa: F401
    except ImportError:
        return False
    return True


LAYERS: dict[str, Callable[[str, np.ndarray, int], Built | list[Built]]] = {
    "faiss": build_faiss,
    "indexers": build_indexers,
    "store": build_store,
}
