"""``index_paths_ray``: the incremental indexing run as a Ray Data job (``embedstore[scale]``).

The plan is the same as :func:`embedstore.ingest.run.index_paths` (unchanged files are never
read, duplicates are embedded once, renamed files keep their vectors, failures are recorded with
their reasons); only the work moves onto Ray:

- hashing the changed files: Ray tasks, a batch of paths each (a run with at most one batch of
  changed files hashes them in the driver);
- decoding: CPU tasks calling :func:`embedstore.modalities.load`, a batch of files each;
- embedding: a pool of encoder actors (the registry's ``Encoder``, loaded once per actor, one
  GPU each when the cluster has GPUs), batches per (modality, dtype and shape);
- writing: the driver commits each finished block into the catalog in one transaction, in a
  writer thread, so a killed job keeps every committed block and the next run resumes after it.

Paths are the driver's local paths (shared storage such as NFS when the workers are on other
machines) or object storage URIs (``s3://bucket/prefix``): the driver lists the objects, the
hash and decode tasks read them through pyarrow's file systems (:mod:`embedstore.ingest.objects`;
the S3 endpoint travels with the tasks, credentials come from each worker's AWS environment).
Known pitfalls and how they are handled:

- stage fusion: Ray Data fuses a task stage into the next actor stage when their resource
  requests match, which would decode inside the model actor; the decode stage asks for
  :data:`DECODE_MEMORY` bytes of memory and the actors do not, so the stages stay apart;
- a small ``/dev/shm``: a local cluster's object store is sized to fit it (Ray would fall back to
  a slow disk-backed store otherwise);
- worker memory: every process that imports torch costs ~0.3 GB (CPU build) to ~0.8 GB (CUDA);
  decode tasks reserve :data:`DECODE_MEMORY` so Ray does not start more than fit;
- fork after torch: Ray starts its workers as fresh processes, never forks the driver, and the
  decode tasks decode inline (no process pool inside a task);
- leftover actors: the dataset is consumed to the end (or its iterator closed), which ends the
  actor pool, and a local cluster this call started is shut down when it returns.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedstore.errors import EmbedstoreError, InvalidInput
from embedstore.ingest.pipeline import Writer, metadata_of
from embedstore.ingest.plan import Plan, hash_all_threads, hash_file
from embedstore.ingest.run import (
    IndexOptions,
    _count,
    _Counts,
    _failure_row,
    index_paths,
    supported_groups,
)
from embedstore.ingest.walk import FileEntry
from embedstore.types import Failure, IndexReport

if TYPE_CHECKING:
    from embedstore.engine import Engine
    from embedstore.store import Collection, NewItem

DECODE_MEMORY = 512 * 1024**2  # bytes a decode task reserves (a worker with torch and a batch)
HASH_BATCH = 256
OBJECT_STORE_FRACTION = 0.5  # of /dev/shm for a local cluster's object store
OBJECT_STORE_MAX = 2 * 1024**3
STARTUP_TRIES = 3  # local cluster start-ups, when Ray's own wait for its raylet runs out


def _reason(err: BaseException) -> str:
    text = str(err) if isinstance(err, EmbedstoreError) else f"{type(err).__name__}: {err}"
    return " ".join(text.split()) or type(err).__name__


# -- connecting --------------------------------------------------------------------------------
def connect(address: str | None, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address`` or start a local one; True when this call started it."""
    try:
        import ray
    except ImportError as e:  # pragma: no cover - depends on the extra
        raise InvalidInput(
            "--engine ray needs Ray Data: pip install 'embedstore[scale]'", field="engine"
        ) from e
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
        return False
    shm = shutil.disk_usage("/dev/shm").total if os.path.isdir("/dev/shm") else 0
    store = int(min(OBJECT_STORE_MAX, max(shm * OBJECT_STORE_FRACTION, 256 * 1024**2)))
    for attempt in range(STARTUP_TRIES):
        try:
            ray.init(
                num_cpus=num_cpus or os.cpu_count() or 1,
                object_store_memory=store,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
            return True
        except Exception as e:  # Ray waits 30 s for its raylet: too short on a loaded machine
            ray.shutdown()
            if "timed out during startup" not in str(e) or attempt + 1 == STARTUP_TRIES:
                raise
    return True


# -- hashing as tasks --------------------------------------------------------------------------
def _hash_batch(
    batch: dict[str, np.ndarray], roots: tuple[str, ...], endpoint: str | None = None
) -> dict[str, np.ndarray]:
    """A Ray task: SHA-256 of each file of a batch (``!reason`` where it cannot be read)."""
    out = []
    for uri in batch["uri"]:
        try:
            out.append(hash_file(str(uri), roots, endpoint))
        except OSError as err:
            out.append("!" + (err.strerror or str(err)))
        except EmbedstoreError as err:  # outside the walked folders; an object store's refusal
            out.append("?" + str(err))
    return {"i": batch["i"], "hash": np.asarray(out, dtype=object)}


def ray_hash_all(
    entries: Sequence[FileEntry], roots: tuple[str, ...], endpoint: str | None = None
) -> list[str | Exception]:
    """SHA-256 of each file, computed by Ray tasks (an OSError where a file cannot be read)."""
    import ray.data

    if not entries:
        return []
    rows = [{"i": i, "uri": e.uri} for i, e in enumerate(entries)]
    ds: Any = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // HASH_BATCH)))
    ds = ds.map_batches(
        _hash_batch, fn_kwargs={"roots": roots, "endpoint": endpoint}, batch_size=HASH_BATCH
    )
    found: dict[int, str] = {}
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        found.update(zip(batch["i"].tolist(), batch["hash"].tolist()))
    out: list[str | Exception] = []
    for i in range(len(rows)):
        h = found[i]
        if h[:1] == "?":
            out.append(EmbedstoreError(h[1:]))
        else:
            out.append(OSError(h[1:]) if h.startswith("!") else h)
    return out


# -- decoding tasks and encoder actors ---------------------------------------------------------
def decode_batch(
    batch: dict[str, np.ndarray],
    limits: Any,
    encoder_modalities: Sequence[str],
    recipe: str | None = None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """A Ray task: files -> one row per piece to embed (video: its clips and sound track).

    An object storage URI is read here (``endpoint``: S3's) and its bytes decoded.
    """
    from embedstore.ingest import objects
    from embedstore.modalities import VideoItem, load

    cols: dict[str, list[Any]] = {c: [] for c in _PIECE_COLS}

    def row(key: int, piece: int, n: int, mod: str, seg: int, s: Any, e: Any, t: Any) -> None:
        arr = np.ascontiguousarray(t.numpy() if hasattr(t, "numpy") else t)
        if arr.dtype.kind not in "iu":  # text pieces are token ids and stay integers
            arr = arr.astype(np.float32, copy=False)
        for c, v in zip(
            _PIECE_COLS,
            (key, piece, n, mod, seg, _num(s), _num(e), arr.tobytes(),
             json.dumps([arr.dtype.str, arr.shape]), "", "{}"),
        ):  # fmt: skip
            cols[c].append(v)

    for key, uri, modality in zip(batch["key"], batch["uri"], batch["modality"]):
        try:
            source: Any = Path(str(uri))
            if objects.is_object_uri(uri):
                cap = limits.max_file_bytes if limits else None
                source = objects.read_object(str(uri), endpoint, cap)
            item = load(str(modality), source, limits=limits, recipe=recipe)
        except Exception as err:  # recorded as the file's failure reason
            row(int(key), 0, 0, str(modality), 0, None, None, np.zeros(0, np.float32))
            cols["error"][-1] = _reason(err)
            continue
        pieces: list[tuple[str, int, float | None, float | None, Any]]
        if isinstance(item, VideoItem):
            pieces = [
                ("vision", i, s, e, item.clips[i])
                for i, (s, e) in enumerate(zip(item.starts, item.ends))
            ]
            if item.audio is not None and "audio" in encoder_modalities:
                pieces.append(("audio", 0, 0.0, float(item.duration), item.audio))
            meta = json.dumps({"duration": float(item.duration), "clips": len(item.starts)})
        else:
            pieces, meta = [(str(modality), 0, None, None, item)], "{}"
        for i, (mod, seg, s, e, t) in enumerate(pieces):
            row(int(key), i, len(pieces), mod, seg, s, e, t)
            cols["meta"][-1] = meta
    return {c: np.asarray(v, dtype=object) for c, v in cols.items()}


_PIECE_COLS: tuple[str, ...] = (
    *("key", "piece", "n", "modality", "segment", "start", "end", "data", "shape"),
    *("error", "meta"),
)


def _num(x: Any) -> float:
    return float("nan") if x is None else float(x)


class EncodeActor:
    """A Ray Data actor: the collection's encoder, loaded once, embedding batches of pieces."""

    def __init__(self, settings: dict[str, Any], encoder: str, threads: int) -> None:
        import torch

        from embedstore.config import Settings
        from embedstore.encoders import create_encoder

        s = Settings(**settings)
        if threads > 0:
            torch.set_num_threads(threads)
        self.encoder = create_encoder(
            encoder,
            device=s.resolved_device(),
            precision=s.precision,
            weights_path=s.weights_path if encoder == s.encoder else None,
            weights_dir=s.resolved_weights_dir,
        )
        self.dim = int(self.encoder.dim)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        import torch

        n = len(batch["key"])
        vectors = np.zeros((n, self.dim), dtype=np.float32)
        errors = [str(e) for e in batch["error"]]
        groups: dict[tuple[str, str], list[int]] = {}
        for i in range(n):
            if not errors[i]:
                groups.setdefault((str(batch["modality"][i]), str(batch["shape"][i])), []).append(i)
        for (modality, shape), rows in groups.items():
            dtype, dims = json.loads(shape)
            try:
                x = torch.from_numpy(
                    np.stack([np.frombuffer(batch["data"][i], dtype).reshape(dims) for i in rows])
                )
                with torch.inference_mode():
                    out = self.encoder.encode(modality, x)
                vectors[rows] = np.asarray(out, dtype=np.float32)
            except Exception as err:  # the files of this batch fail with the reason
                for i in rows:
                    errors[i] = _reason(err)
        out_cols = {c: batch[c] for c in _PIECE_COLS if c not in ("data", "shape", "error")}
        return {**out_cols, "error": np.asarray(errors, dtype=object), "vector": vectors}


# -- the job -----------------------------------------------------------------------------------
def index_paths_ray(
    engine: Engine,
    coll: Collection,
    paths: Sequence[Path | str],
    options: IndexOptions,
    *,
    address: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> IndexReport:
    """Walk, plan against the catalog (hashing on Ray), then decode and embed on Ray.

    The cluster is joined (or a local one started) only when there is something to embed, or
    more than :data:`HASH_BATCH` changed files to hash (fewer are one task's work: the driver
    hashes them in threads instead of waiting for a worker to start); a run over unchanged
    files reads nothing and starts nothing.
    """
    from embedstore.ingest import objects

    # the driver's endpoint goes to every task (workers on other machines lack its environment)
    options = dataclasses.replace(options, s3_endpoint=objects.endpoint_of(options.s3_endpoint))
    cluster = _Cluster(address)

    def hash_all(entries: Sequence[FileEntry], roots: tuple[str, ...]) -> list[str | Exception]:
        if len(entries) <= HASH_BATCH:
            return hash_all_threads(entries, roots, options.s3_endpoint)
        cluster.join()
        return ray_hash_all(entries, roots, options.s3_endpoint)

    try:
        embed = functools.partial(_embed_ray, cluster=cluster)
        return index_paths(
            engine, coll, paths, options, progress=progress, embed=embed, hash_all=hash_all
        )
    finally:
        cluster.close()


class _Cluster:
    """Joins the Ray cluster on first use; shuts down a local one it started."""

    def __init__(self, address: str | None) -> None:
        self.address, self.joined, self.started = address, False, False

    def join(self) -> None:
        """Connect now, once."""
        if not self.joined:
            self.started = connect(self.address, num_cpus=None)
            self.joined = True

    def close(self) -> None:
        """Shut down the local cluster this run started, if any."""
        if self.started:
            import ray

            ray.shutdown()


def _embed_ray(
    engine: Engine,
    coll: Collection,
    plan: Plan,
    c: _Counts,
    writer: Writer,
    options: IndexOptions,
    decoder: Any = None,
    *,
    cluster: _Cluster | None = None,
) -> None:
    """Decode tasks -> encoder actors -> committed blocks (the ``embed`` step of ``_run_plan``)."""
    from embedstore.encoders import get_encoder_info
    from embedstore.modalities.recipes import recipe_for_encoder

    supported = supported_groups(engine, coll, plan, c, writer)
    if not supported:
        return
    if cluster is not None:
        cluster.join()
    import ray
    import ray.data

    info = get_encoder_info(coll.encoder, engine.settings)
    bs = options.batch_size
    rows = [
        {"key": i, "uri": g.leader.uri, "modality": g.leader.modality}
        for i, g in enumerate(supported)
    ]
    cpus = int(ray.cluster_resources().get("CPU", 1))
    gpus = int(ray.cluster_resources().get("GPU", 0))
    settings = engine.settings.model_dump(mode="json")
    actor_args: dict[str, Any]
    if gpus:
        actors, actor_args = gpus, {"num_gpus": 1, "num_cpus": 1}
        threads = 0
    else:  # CPU only: one actor with the cores the decode tasks leave
        actors = 1
        threads = max(1, cpus - max(1, options.workers))
        actor_args = {"num_cpus": threads}
    ds: Any = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // bs)))
    ds = ds.map_batches(
        decode_batch,
        fn_kwargs={
            "limits": options.limits,
            "encoder_modalities": tuple(info.modalities),
            "recipe": recipe_for_encoder(info.name),  # the family's preprocessing (LanguageBind)
            "endpoint": options.s3_endpoint,
        },
        batch_size=bs,
        num_cpus=1,
        memory=DECODE_MEMORY,
        compute=ray.data.TaskPoolStrategy(size=max(1, options.workers)) if not gpus else None,
    )
    ds = ds.map_batches(
        EncodeActor,
        fn_constructor_kwargs={"settings": settings, "encoder": info.name, "threads": threads},
        batch_size=bs,
        compute=ray.data.ActorPoolStrategy(size=actors),
        **actor_args,
    )
    assembler = _Assembler(supported, plan, c, writer)
    it = ds.iter_batches(batch_size=None, batch_format="numpy")
    try:
        for batch in it:
            assembler.add(batch)
            assembler.flush()
    finally:
        close = getattr(it, "close", None)
        if callable(close):
            close()
    assembler.finish()


class _Assembler:
    """Collects the pieces of each file as blocks arrive; finished files go to the writer."""

    def __init__(self, groups: Sequence[Any], plan: Plan, c: _Counts, writer: Writer) -> None:
        self.groups, self.plan, self.c, self.writer = groups, plan, c, writer
        self.pieces: dict[int, dict[int, tuple[Any, ...]]] = {}
        self.failed: set[int] = set()
        self.ready: list[NewItem] = []

    def add(self, batch: dict[str, np.ndarray]) -> None:
        for j in range(len(batch["key"])):
            key = int(batch["key"][j])
            if key in self.failed:
                continue
            err = str(batch["error"][j])
            if err:
                self._fail(key, err)
                continue
            got = self.pieces.setdefault(key, {})
            got[int(batch["piece"][j])] = (
                str(batch["modality"][j]),
                int(batch["segment"][j]),
                _opt(batch["start"][j]),
                _opt(batch["end"][j]),
                np.asarray(batch["vector"][j], dtype=np.float32),
                str(batch["meta"][j]),
            )
            if len(got) == int(batch["n"][j]):
                self._done(key, self.pieces.pop(key))

    def _fail(self, key: int, reason: str) -> None:
        self.failed.add(key)
        self.pieces.pop(key, None)
        g = self.groups[key]
        group = [g.leader, *g.followers]
        self.writer.put([], [_failure_row(e, reason, g.content_hash) for e in group])
        self.c.failed.extend(Failure(e.uri, reason) for e in group)

    def _done(self, key: int, pieces: dict[int, tuple[Any, ...]]) -> None:
        from embedstore.store import NewItem, NewVector

        g = self.groups[key]
        order = [pieces[i] for i in sorted(pieces)]
        vecs = [NewVector(m, v, segment=seg, start=s, end=e) for m, seg, s, e, v, _ in order]
        extra = json.loads(order[0][5]) if order else {}
        for e in [g.leader, *g.followers]:
            self.ready.append(
                NewItem(
                    e.uri,
                    g.leader.modality,
                    g.content_hash,
                    e.size,
                    e.mtime,
                    metadata_of(e, extra),
                    vecs,
                )
            )
            _count(self.c, self.plan, e.uri)
        self.c.deduplicated += len(g.followers)

    def flush(self) -> None:
        """Hand the finished files of this block to the writer (one transaction)."""
        if self.ready:
            self.writer.put(list(self.ready))
            self.ready.clear()

    def finish(self) -> None:
        """After the last block: files with missing pieces fail (none expected)."""
        for key in list(self.pieces):
            self._fail(key, "the Ray job lost some of this file's pieces")
        self.flush()


def _opt(x: Any) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x
