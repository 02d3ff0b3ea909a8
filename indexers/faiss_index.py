"""FaissIndex: one wrapper for every FAISS index factory spec, keyed by our int64 ids."""

from __future__ import annotations

import logging
import math
import os
import uuid
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from indexers.base import (
    FORMAT_VERSION,
    Metric,
    as_ids,
    as_queries,
    as_vectors,
    atomic_savez,
    brute_force,
    contains,
    empty_result,
    sorted_union,
)
from indexers.errors import InvalidSpec, InvalidVectors, UnsupportedOperation
from indexers.exact import ExactIndex

EF_CONSTRUCTION = 200  # FAISS defaults to 40: recall@10 drops ~6 points on 1024-d embeddings
EF_SEARCH = 64
RECALL_TARGET = 0.95  # what tune() aims for: recall@10 against exact search
NPROBE_STEPS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
EF_STEPS = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
FILTERED_EF_CAP = 1024  # the widest efSearch a filter widens to

log = logging.getLogger(__name__)

_METRICS = {"ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}


def build_faiss(spec: str, dim: int, metric: Metric) -> Any:
    """``faiss.index_factory`` with our error type."""
    try:
        return faiss.index_factory(dim, spec, _METRICS[metric])
    except (RuntimeError, KeyError) as e:
        first = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
        raise InvalidSpec(f"index spec {spec!r} (dim {dim}, metric {metric}): {first}") from e


class FaissIndex:
    """Any FAISS index factory spec with add/remove/search/save/load/train keyed by our ids.

    IVF indexes take ids natively; everything else is wrapped in ``IndexIDMap2``. Indexes that
    cannot remove (HNSW) keep tombstones that an ``IDSelector`` filters at query time; callers
    rebuild them when :attr:`needs_compaction`. Until an index that needs training is trained,
    added vectors wait in an exact buffer that serves searches.
    """

    exact_threshold = 4096  # filtered searches over at most this many ids are brute-forced

    def __init__(self, spec: str, dim: int, metric: Metric = "ip", *, use_gpu: bool | None = None):
        self.spec, self.dim, self.metric = spec, dim, metric
        self.meta: dict[str, Any] = {}
        self._setup(build_faiss(spec, dim, metric))
        self._ids = np.empty(0, dtype=np.int64)  # sorted ids inside the faiss index
        self._dead = np.empty(0, dtype=np.int64)  # sorted tombstones (subset of _ids)
        self._pending = ExactIndex(dim, metric)  # vectors added before training
        self.use_gpu = faiss.get_num_gpus() > 0 if use_gpu is None else use_gpu
        self._gpu: Any = None

    def _setup(self, index: Any, wrapped: bool | None = None) -> None:
        ivf = faiss.try_extract_index_ivf(index)
        if wrapped is None:
            if ivf is not None:
                if ivf.ntotal == 0:
                    ivf.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
                self._index = index
            else:
                self._index = faiss.IndexIDMap2(index)
        else:
            self._index = index
        self._ivf = ivf
        inner = self._index if ivf is not None else faiss.downcast_index(self._index.index)
        self._hnsw = inner if isinstance(inner, faiss.IndexHNSW) else None
        if self._hnsw is not None and self._hnsw.ntotal == 0:
            self._hnsw.hnsw.efConstruction = EF_CONSTRUCTION
        for part in (inner, ivf):  # polysemous training costs minutes and we never use it
            if part is not None and hasattr(part, "do_polysemous_training"):
                part.do_polysemous_training = False
        self.nprobe = min(ivf.nlist, max(8, ivf.nlist // 16)) if ivf is not None else 0
        self.ef_search = EF_SEARCH
        self._param_cache: dict[tuple[int, int], Any] = {}
        self._can_remove = self._probe_remove()
        self._params_ok = not isinstance(inner, faiss.IndexPQ)

    def _probe_remove(self) -> bool:
        try:
            self._index.remove_ids(faiss.IDSelectorBatch(np.empty(0, dtype=np.int64)))
            return True
        except RuntimeError:
            return False

    # -- properties ----------------------------------------------------------------------------
    @property
    def is_trained(self) -> bool:
        """Whether the FAISS index is trained (vectors added before that wait in a buffer)."""
        return bool(self._index.is_trained)

    @property
    def min_training_points(self) -> int:
        """The fewest training vectors FAISS accepts for this spec (one per centroid)."""
        n = self._ivf.nlist if self._ivf is not None else 1
        return max(n, 256 if "PQ" in self.spec.upper() else 1)

    @property
    def supports_remove(self) -> bool:
        """False when removal only tombstones (HNSW)."""
        return self._can_remove

    @property
    def tombstones(self) -> int:
        """Number of removed vectors still physically in the index."""
        return len(self._dead)

    @property
    def needs_compaction(self) -> bool:
        """True when tombstones exceed a fifth of the index: rebuild it from the source."""
        return len(self._dead) > max(1000, len(self._ids) // 5)

    def __len__(self) -> int:
        return len(self._ids) - len(self._dead) + len(self._pending)

    def ids(self) -> np.ndarray:
        """Sorted ids of the live vectors."""
        live = (
            np.setdiff1d(self._ids, self._dead, assume_unique=True)
            if len(self._dead)
            else self._ids
        )
        return sorted_union(live.copy(), self._pending.ids()) if len(self._pending) else live.copy()

    # -- mutation ------------------------------------------------------------------------------
    def train(self, sample: np.ndarray) -> None:
        """Train the quantisers on ``sample`` and move buffered vectors into the index."""
        if self.is_trained:
            return
        x = as_vectors(sample, self.dim, "training sample")
        if len(x) < self.min_training_points:
            raise UnsupportedOperation(
                f"index {self.spec!r} needs at least {self.min_training_points} training vectors, got {len(x)}"
            )
        try:
            self._index.train(x)
        except RuntimeError as e:
            raise UnsupportedOperation(f"training {self.spec!r} failed: {e}") from e
        if len(self._pending):
            ids = self._pending.ids()
            vectors = self._pending.reconstruct(ids)
            self._pending = ExactIndex(self.dim, self.metric)
            self.add(ids, vectors)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors under new ``ids``."""
        x = as_vectors(vectors, self.dim)
        ids = as_ids(ids, len(x))
        if not len(ids):
            return
        if len(np.unique(ids)) != len(ids) or contains(self._ids, ids).any():
            raise InvalidVectors("ids: duplicate ids (remove them first)")
        if not self.is_trained:
            self._pending.add(ids, x)
            return
        self._index.add_with_ids(x, ids)
        self._ids = sorted_union(self._ids, ids)
        self._gpu = None

    def remove(self, ids: np.ndarray) -> int:
        """Remove ``ids`` (tombstoned where the index cannot remove); returns how many were live."""
        ids = np.unique(as_ids(ids))
        n = self._pending.remove(ids) if len(self._pending) else 0
        present = ids[contains(self._ids, ids)]
        if len(self._dead):
            present = present[~contains(self._dead, present)]
        if not len(present):
            return n
        if self._can_remove:
            self._index.remove_ids(faiss.IDSelectorBatch(present))
            self._ids = np.setdiff1d(self._ids, present, assume_unique=True)
        else:
            self._dead = np.union1d(self._dead, present)
        self._gpu = None
        return n + len(present)

    def set_params(self, params: str) -> None:
        """Set search-time knobs, e.g. ``"nprobe=32,efSearch=128"`` (FAISS ParameterSpace syntax)."""
        for part in filter(None, (p.strip() for p in params.split(","))):
            key, _, value = part.partition("=")
            if key == "nprobe" and self._ivf is not None:
                self.nprobe = int(value)
            elif key == "efSearch" and self._hnsw is not None:
                self.ef_search = int(value)
            elif key == "efConstruction" and self._hnsw is not None:
                self._hnsw.hnsw.efConstruction = int(value)
            else:
                try:
                    faiss.ParameterSpace().set_index_parameter(self._index, key, float(value))
                except (RuntimeError, ValueError) as e:
                    raise UnsupportedOperation(
                        f"parameter {part!r} does not apply to {self.spec!r}"
                    ) from e

    def add_tuned(
        self,
        ids: np.ndarray,
        vectors: np.ndarray,
        *,
        target: float = RECALL_TARGET,
        k: int = 10,
        holdout: int = 200,
        margin: float = 0.01,
        seed: int = 0,
    ) -> dict[str, Any]:
        """Add vectors, tuning ``nprobe``/``efSearch`` on the way (see :meth:`tune`).

        A random ``holdout`` of them is added last: before that, they are queries the index has
        never seen (a stored vector finds itself and its graph neighbours too easily to measure
        HNSW recall), with exact top-k over the rest as the truth. The knob aims ``margin`` above
        ``target`` to absorb the sample's noise. Returns what ``tune`` chose.
        """
        x = as_vectors(vectors, self.dim)
        ids = as_ids(ids, len(x))
        if not self._tunable or not self.is_trained or len(ids) < 10 * holdout:
            self.add(ids, x)
            return {}
        out = np.zeros(len(ids), dtype=bool)
        out[np.random.default_rng(seed).choice(len(ids), holdout, replace=False)] = True
        self.add(ids[~out], x[~out])
        truth = ids[~out][faiss.knn(x[out], x[~out], k, metric=_METRICS[self.metric])[1]]
        chosen = self.tune(x[out], truth, target=min(1.0, target + margin))
        self.add(ids[out], x[out])
        return chosen

    @property
    def _tunable(self) -> bool:
        return self._ivf is not None or self._hnsw is not None

    def tune(
        self, queries: np.ndarray, truth: np.ndarray, *, target: float = RECALL_TARGET
    ) -> dict[str, Any]:
        """Set the cheapest ``nprobe`` (IVF) or ``efSearch`` (HNSW) reaching ``target`` recall.

        ``truth`` holds the exact top-k ids of each query. Where recall stops improving below the
        target (quantised codes), the knob stops there. Returns what was chosen (empty when the
        index has no such knob).
        """
        if not self._tunable or not self.is_trained:
            return {}
        q = as_queries(queries, self.dim)
        k = truth.shape[1]
        if self._ivf is not None:
            knob, steps = "nprobe", [v for v in NPROBE_STEPS if v <= self._ivf.nlist]
        else:
            knob, steps = "efSearch", list(EF_STEPS)
        chosen, best = steps[-1] if steps else 1, -1.0
        for i, value in enumerate(steps):
            if knob == "nprobe":
                found = self.search(q, k, nprobe=value)[1]
            else:
                found = self.search(q, k, ef_search=value)[1]
            recall = float(np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth)]))
            if recall >= target:
                chosen, best = value, recall
                break
            if recall < best + 0.002 and i:  # no longer improving: keep the previous step
                chosen = steps[i - 1]
                break
            best = recall
        if knob == "nprobe":
            self.nprobe = int(chosen)
        else:
            self.ef_search = int(chosen)
        self._param_cache.clear()
        return {"knob": knob, "value": int(chosen), "recall": round(best, 4), "target": target}

    # -- search --------------------------------------------------------------------------------
    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        nprobe: int | None = None,
        ef_search: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query, best first; ``allowed`` restricts the ids; -1 pads."""
        q = as_queries(queries, self.dim)
        if not self.is_trained:
            return self._pending.search(q, k, allowed=allowed)
        if allowed is not None:
            allowed = np.unique(as_ids(allowed))
            allowed = allowed[contains(self._ids, allowed)]
            if len(self._dead):
                allowed = allowed[~contains(self._dead, allowed)]
            if len(allowed) <= max(self.exact_threshold, k) or not self._params_ok:
                return self._search_subset(q, k, allowed)
            sel: Any = faiss.IDSelectorBatch(allowed)
            nprobe, ef_search = self._filtered_knobs(len(allowed), nprobe, ef_search)
        elif len(self._dead):
            inner_sel = faiss.IDSelectorBatch(self._dead)
            sel = faiss.IDSelectorNot(inner_sel)
        else:
            sel = None
        n_live = len(allowed) if allowed is not None else len(self._ids) - len(self._dead)
        if sel is None and self.use_gpu and self._ivf is None and self._hnsw is None:
            scores, ids = self._search_gpu(q, k)
        else:
            params = self._params(sel, nprobe, ef_search, k)
            scores, ids = self._index.search(q, k, params=params)
        if not n_live:
            return scores, ids
        last = min(k, n_live) - 1
        if len(q) == 1 and ids[0, last] >= 0:  # the common case, without array temporaries
            return scores, ids
        short = ids[:, last] < 0
        if short.any():  # the approximate search missed filtered ids: finish those rows exactly
            subset = allowed if allowed is not None else self.ids()
            scores[short], ids[short] = self._search_subset(q[short], k, subset)
        return scores, ids

    def _filtered_knobs(
        self, n_allowed: int, nprobe: int | None, ef_search: int | None
    ) -> tuple[int | None, int | None]:
        """``nprobe``/``efSearch`` widened by 1 / the filter's selectivity (capped): the knobs are
        tuned unfiltered, and a filter passing a fraction ``s`` of the vectors leaves about ``s``
        of the candidates they visit (100k x 1024, 10 % filter: recall@10 0.92 at the tuned
        efSearch)."""
        live = max(len(self._ids) - len(self._dead), 1)
        widen = live / max(n_allowed, 1)
        if widen <= 1.0:
            return nprobe, ef_search
        if self._ivf is not None:
            base = nprobe or self.nprobe
            return min(self._ivf.nlist, max(base, math.ceil(base * widen))), ef_search
        if self._hnsw is not None:
            base = ef_search or self.ef_search
            return nprobe, min(max(base, FILTERED_EF_CAP), math.ceil(base * widen))
        return nprobe, ef_search

    def _params(self, sel: Any, nprobe: int | None, ef_search: int | None, k: int) -> Any:
        if not self._params_ok:
            return None
        if sel is None:  # the common case: reuse one parameter object per setting
            key = (nprobe or self.nprobe, max(ef_search or self.ef_search, k))
            cached = self._param_cache.get(key)
            if cached is None:
                cached = self._param_cache[key] = self._new_params(None, *key, k)
            return cached
        return self._new_params(sel, nprobe or self.nprobe, ef_search or self.ef_search, k)

    def _new_params(self, sel: Any, nprobe: int, ef_search: int, k: int) -> Any:
        if self._ivf is not None:
            params: Any = faiss.SearchParametersIVF()
            params.nprobe = nprobe
        elif self._hnsw is not None:
            params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]
            params.efSearch = max(ef_search, k)
        else:
            params = faiss.SearchParameters()
        if sel is not None:
            params.sel = sel
        return params

    def _search_gpu(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        try:
            if self._gpu is None:
                self._gpu = faiss.index_cpu_to_all_gpus(self._index)
            return self._gpu.search(q, k)  # type: ignore[no-any-return]
        except (RuntimeError, AttributeError) as e:  # pragma: no cover - needs a GPU
            log.warning("GPU search unavailable for %s, using the CPU: %s", self.spec, e)
            self.use_gpu = False
            return self._index.search(q, k)  # type: ignore[no-any-return]

    def _search_subset(
        self, q: np.ndarray, k: int, ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        if not len(ids):
            return empty_result(len(q), k, self.metric)
        vectors = self.reconstruct(ids)
        return brute_force(q, ids, vectors, k, self.metric)

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The stored (possibly compressed, so approximate) vectors of ``ids``."""
        ids = as_ids(ids)
        if not contains(self._ids, ids).all():
            raise InvalidVectors("reconstruct: unknown ids")
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        for start in range(0, len(ids), 65536):
            chunk = ids[start : start + 65536]
            out[start : start + len(chunk)] = self._index.reconstruct_batch(chunk)
        return out

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: Path | str) -> None:
        """Write the index atomically: the FAISS data to a fresh companion file, then the header.

        FAISS writes its own file straight from C++ (serialising into a numpy buffer first costs
        ten times more); the header file, renamed last, names the companion it goes with, so a
        crash at any point leaves the previous pair or the new one, never a mix.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        companion = _write_companion(self._index, path)
        header = {"kind": "faiss", "format": FORMAT_VERSION, "spec": self.spec, "dim": self.dim}
        header |= {"metric": self.metric, "meta": self.meta, "nprobe": self.nprobe}
        header |= {"ef_search": self.ef_search, "faiss_file": companion}
        pending_ids = self._pending.ids()
        try:
            atomic_savez(
                path,
                header,
                ids=self._ids,
                dead=self._dead,
                pending_ids=pending_ids,
                pending_x=self._pending.reconstruct(pending_ids),
            )
        except BaseException:
            (path.parent / companion).unlink(missing_ok=True)
            raise
        for stale in companions(path):
            if stale.name != companion:
                stale.unlink(missing_ok=True)

    @classmethod
    def from_arrays(
        cls, header: dict[str, Any], arrays: Any, folder: Path | None = None
    ) -> FaissIndex:
        """Rebuild from what :meth:`save` wrote (``folder``: where its companion file lies)."""
        self = cls.__new__(cls)
        self.spec, self.dim, self.metric = header["spec"], int(header["dim"]), header["metric"]
        self.meta = dict(header.get("meta", {}))
        if "faiss_file" in header:
            raw = faiss.read_index(str(Path(folder or ".") / header["faiss_file"]))
        else:  # format written before companion files: the index inline
            raw = faiss.deserialize_index(np.asarray(arrays["index"]))
        self._setup(raw, wrapped=True)
        self.nprobe, self.ef_search = int(header["nprobe"]), int(header["ef_search"])
        self._ids = np.asarray(arrays["ids"], dtype=np.int64)
        self._dead = np.asarray(arrays["dead"], dtype=np.int64)
        self._pending = ExactIndex(self.dim, self.metric)
        if len(arrays["pending_ids"]):
            self._pending.add(arrays["pending_ids"], arrays["pending_x"])
        self.use_gpu, self._gpu = faiss.get_num_gpus() > 0, None
        return self


def companions(path: Path | str) -> list[Path]:
    """The FAISS data files written beside the index file ``path``."""
    path = Path(path)
    return sorted(path.parent.glob(f"{path.name}.*.faiss"))


def _write_companion(index: Any, path: Path) -> str:
    name = f"{path.name}.{uuid.uuid4().hex[:16]}.faiss"
    tmp = path.with_name(f".{name}.tmp")
    try:
        faiss.write_index(index, str(tmp))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path.with_name(name))
    finally:
        tmp.unlink(missing_ok=True)
    return name
