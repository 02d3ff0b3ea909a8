"""The service both edges call: one store, cached encoders, query embedding and ingest."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedstore.config import Settings, load_settings
from embedstore.errors import (
    Conflict,
    EncoderMismatch,
    InvalidConfig,
    InvalidInput,
    InvalidQuery,
    UnsupportedMediaType,
    UnsupportedModality,
)
from embedstore.types import IndexReport, SearchResult

if TYPE_CHECKING:
    from embedstore.encoders import Encoder
    from embedstore.generators import Generator
    from embedstore.modalities.pool import DecodePool
    from embedstore.store import Collection, Store

ProgressCallback = Callable[[int, int], None]
"""Called as ``progress(files_done, files_total)`` while indexing."""


class Engine:
    """Opens the store lazily, caches encoders by name, and embeds, indexes and searches."""

    def __init__(self, settings: Settings | None = None, *, store: Store | None = None) -> None:
        self.settings = settings if settings is not None else load_settings()
        self._store = store
        self._encoders: dict[str, Encoder] = {}
        self._generators: dict[str, Generator] = {}
        self._lock = threading.RLock()  # the store; never held while an encoder loads
        self._encoders_lock = threading.Lock()  # the encoder dicts below, held only briefly
        self._load_locks: dict[str, threading.Lock] = {}  # one per encoder name, held while loading
        self._failed: dict[str, tuple[float, BaseException]] = {}  # name -> (when, load error)
        self._weights_owner: str | None = None  # the checkpoint settings.weights_path is
        self._encode_lock = threading.Lock()
        self._pool_lock = threading.Lock()
        self._decode_pool: DecodePool | None = None
        self._retired_pool_starts = 0  # starts of the pools closed or replaced so far
        self.encoded_items = 0
        """How many items went through a model since this engine was made (tests, benchmarks)."""

    # -- resources -------------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        """The catalog, opened on first use."""
        with self._lock:
            if self._store is None:
                from embedstore.store import Store

                self._store = Store.open(self.settings)
            return self._store

    def encoder(self, name: str | None = None) -> Encoder:
        """The encoder called ``name`` (default: the configured one), created once and cached.

        Each name loads under its own lock, outside the store's, so a model being downloaded or
        loaded holds up only the requests that need that model. A failed load is remembered for
        ``encoder_retry_s`` seconds: until then every call raises the same error at once.
        """
        name = name or self.settings.encoder
        enc = self._encoders.get(name)
        if enc is not None:
            return enc
        with self._encoders_lock:
            load_lock = self._load_locks.setdefault(name, threading.Lock())
        with load_lock:
            enc = self._encoders.get(name)
            if enc is not None:
                return enc
            self._raise_recent_failure(name)
            try:
                enc = self._create_encoder(name)
            except Exception as e:
                with self._encoders_lock:
                    self._failed[name] = (time.monotonic(), e)
                raise
            with self._encoders_lock:
                self._failed.pop(name, None)
                self._encoders[name] = enc
            return enc

    def _raise_recent_failure(self, name: str) -> None:
        with self._encoders_lock:
            failed = self._failed.get(name)
            if failed is None:
                return
            when, error = failed
            if time.monotonic() - when >= self.settings.encoder_retry_s:
                del self._failed[name]
                return
        try:  # a copy: re-raising one object would grow its traceback with every request
            again = copy.copy(error).with_traceback(None)
        except Exception:
            again = error
        raise again

    def _create_encoder(self, name: str) -> Encoder:
        from embedstore.encoders import create_encoder
        from embedstore.runtime import configure_threads

        s = self.settings
        configure_threads(s)  # once per process, before the first model runs
        return create_encoder(
            name,
            device=s.resolved_device(),
            precision=s.precision,
            weights_path=self._weights_path_for(name),
            weights_dir=s.resolved_weights_dir,
            settings=s,
        )

    def _weights_path_for(self, name: str) -> Path | None:
        """``weights_path`` is one model's file: the configured encoder's, or else the first one
        this engine loads that needs a weights file (the collection being indexed or searched).

        A second encoder that needs a file while ``weights_path`` belongs to another raises
        `InvalidConfig`: one file cannot be the checkpoint of two models.
        """
        s = self.settings
        if s.weights_path is None:
            return None
        from embedstore.encoders import get_encoder_info

        checkpoint = get_encoder_info(name, s).weights_file  # a bound encoder: its base's
        if name != s.encoder and checkpoint is None:
            return None  # built in (seeded): no checkpoint to point at
        model = checkpoint or name  # encoders sharing a checkpoint (a base, bound:x) share the file
        with self._encoders_lock:
            owner = self._weights_owner
            if owner is None or owner == model:
                self._weights_owner = model
                return s.weights_path
        raise InvalidConfig(
            f"weights_path ({s.weights_path}; --weights-path / EMBEDSTORE_WEIGHTS_PATH) is the "
            f"weights file {owner!r}, but {name!r} needs {model!r} too; put each model's "
            f"file in the weights folder {s.resolved_weights_dir} (--weights-dir) instead",
            field="weights_path",
        )

    def generator(self, name: str | None = None) -> Generator:
        """The (cached) captioning / answering model ``name`` (default: the ``generator`` setting)."""
        name = name or self.settings.generator
        with self._lock:
            if name not in self._generators:
                from embedstore.generators import create_generator

                self._generators[name] = create_generator(
                    name,
                    device=self.settings.resolved_device(),
                    precision=self.settings.generator_precision,
                )
            return self._generators[name]

    def use_encoder(self, encoder: Encoder) -> None:
        """Serve ``encoder`` under its name from now on (a model built in code, not from weights)."""
        with self._encoders_lock:
            self._failed.pop(encoder.name, None)
            self._encoders[encoder.name] = encoder

    def model_busy(self) -> bool:
        """Whether a model call is running now (a query batch or an indexing batch)."""
        return self._encode_lock.locked()

    def encode(self, encoder: Encoder, modality: str, batch: Any) -> np.ndarray:
        """Embed one stacked batch with ``encoder``; the one place model work happens."""
        with self._encode_lock:
            out = encoder.encode(modality, batch)
            self.encoded_items += len(out)
        return np.ascontiguousarray(out, dtype=np.float32)

    def decode_pool(self, *, create: bool = True) -> DecodePool | None:
        """The decode worker pool this engine's adds share (``settings.workers`` processes).

        Made on first use, its workers start with the first add that decodes in it; a pool that
        stopped on an error is replaced here. None with ``workers`` 0, or with ``create=False``
        when there is none yet.
        """
        with self._pool_lock:
            pool = self._decode_pool
            if pool is not None and pool.broken:
                self._retire_pool()
                pool = None
            if pool is None and create and self.settings.workers > 0:
                from embedstore.modalities.pool import DecodePool

                pool = self._decode_pool = DecodePool(self.settings.workers)
            return pool

    @property
    def decode_pool_starts(self) -> int:
        """How many times this engine started a decode pool's workers (tests, benchmarks)."""
        with self._pool_lock:
            live = self._decode_pool.starts if self._decode_pool is not None else 0
            return self._retired_pool_starts + live

    def _retire_pool(self) -> None:
        pool, self._decode_pool = self._decode_pool, None
        if pool is not None:
            self._retired_pool_starts += pool.starts
            pool.close()

    def close(self) -> None:
        """Release the store (index files saved, database and row-cache connections closed), stop
        the decode pool's workers, and drop the cached encoders, so that their memory (GPU memory
        too) can be freed."""
        with self._pool_lock:
            self._retire_pool()
        with self._lock:
            close = getattr(self._store, "close", None)
            if callable(close):
                close()
            self._store = None
        with self._encoders_lock:
            devices = {str(getattr(e, "device", "cpu")) for e in self._encoders.values()}
            self._encoders.clear()
            self._failed.clear()
        if any(d.startswith("cuda") for d in devices):
            import torch

            torch.cuda.empty_cache()

    # -- collections -----------------------------------------------------------------------------
    def collection(self, name: str) -> Collection:
        """The collection called ``name`` (``CollectionNotFound`` if missing)."""
        return self.store.collection(name)

    def create_collection(
        self,
        name: str,
        encoder: str | None = None,
        index_spec: str | None = None,
        exist_ok: bool = False,
        index_backend: str | None = None,
    ) -> Collection:
        """Create a collection bound to ``encoder`` (checked against the registry, not loaded).

        ``index_backend``: ``faiss`` or ``pgvector`` (default: the ``index_backend`` setting).
        """
        from embedstore.encoders import get_encoder_info

        info = get_encoder_info(encoder or self.settings.encoder, self.settings)
        coll = self.store.create_collection(
            name,
            info.name,
            info.dim,
            index_spec=index_spec or self.settings.index_spec,
            exist_ok=exist_ok,
            index_backend=index_backend or self.settings.index_backend,
        )
        if exist_ok:
            self._check_encoder(coll, info.name)
        return coll

    def collection_encoder(self, coll: Collection) -> Encoder:
        """The (cached) encoder a collection was built with (from the collection's row: no
        ``Collection.info()``, which counts the collection's rows)."""
        return self.encoder(coll.encoder)

    @staticmethod
    def _check_encoder(coll: Collection, encoder: str | None) -> None:
        info = coll.info()
        if encoder and encoder != info.encoder:
            raise EncoderMismatch(
                f"Collection {info.name!r} uses encoder {info.encoder!r}, not {encoder!r}; "
                f"index into a new collection or run: embedstore reindex -c {info.name} "
                f"--encoder {encoder}"
            )

    # -- indexing --------------------------------------------------------------------------------
    def index(
        self,
        paths: Iterable[Path | str],
        collection: str,
        *,
        encoder: str | None = None,
        modality: str | None = None,
        modality_rules: Mapping[str, str] | None = None,
        include: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        prune: bool = False,
        progress: ProgressCallback | None = None,
        batch_size: int | None = None,
        workers: int | None = None,
        index_backend: str | None = None,
        engine: str = "local",
        ray_address: str | None = None,
        within: Iterable[Path | str] | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> IndexReport:
        """Index files and folders into ``collection`` (created with ``encoder`` if missing).

        ``engine="ray"`` runs the same incremental indexing as a Ray Data job
        (:mod:`embedstore.ingest.ray_job`, ``pip install 'embedstore[scale]'``) on the cluster
        at ``ray_address`` (None: a local one).

        ``workers=None`` decodes in the engine's shared pool (``decode_pool``: started once,
        reused by every later call until ``close``); a number starts that many processes for
        this call only (0: decode in the calling thread).
        """
        from embedstore.errors import CollectionNotFound, CollectionReplaced
        from embedstore.ingest import IndexOptions, index_paths
        from embedstore.ingest.objects import is_object_uri
        from embedstore.modalities.gpu_decode import decode_device
        from embedstore.modalities.sources import DecodeLimits

        try:
            coll = self.collection(collection)
        except CollectionNotFound:
            coll = self.create_collection(
                collection, encoder=encoder, exist_ok=True, index_backend=index_backend
            )
        self._check_encoder(coll, encoder)
        if index_backend and index_backend != coll.index_backend:
            raise Conflict(
                f"Collection {collection!r} uses index backend {coll.index_backend!r}, "
                f"not {index_backend!r}",
                field="index_backend",
            )
        if engine not in ("local", "ray"):
            raise InvalidInput(f"Unknown engine {engine!r} (use local or ray)", field="engine")
        options = IndexOptions(
            modality=modality,
            rules=dict(modality_rules or {}),
            include=tuple(include or ()),
            exclude=tuple(exclude or ()),
            prune=prune,
            batch_size=batch_size or self.settings.batch_size,
            workers=self.settings.workers if workers is None else workers,
            pool=self.decode_pool() if workers is None and engine == "local" else None,
            limits=DecodeLimits.from_settings(self.settings),
            decode_timeout_s=self.settings.decode_timeout_s,
            decode_device=decode_device(self.settings.gpu_decode, self.settings.resolved_device()),
            within=tuple(str(w) for w in within or ()),  # files outside are skipped, reported
            metadata=dict(metadata or {}),  # written with each item, in its transaction
            s3_endpoint=self.settings.s3_endpoint_url,
        )
        files = [p if is_object_uri(p) else Path(p) for p in paths]  # s3:// URIs stay text
        for attempt in range(3):
            try:
                if engine == "ray":
                    from embedstore.ingest.ray_job import index_paths_ray

                    report = index_paths_ray(
                        self, coll, files, options, address=ray_address, progress=progress
                    )
                else:
                    report = index_paths(self, coll, files, options, progress=progress)
                break
            except CollectionReplaced:
                # reindex --encoder swapped the collection while this run wrote to it: what was
                # written is in the new one; run again there (its encoder embeds the rest)
                if attempt == 2:
                    raise
                coll = self.collection(collection)
                self._check_encoder(coll, encoder)
        if coll.index_backend == "pgvector":
            coll.flush()  # loaded without a live graph: build the HNSW index now, if due
        return report

    # -- queries ---------------------------------------------------------------------------------
    def embed_query(
        self, collection: str | Collection, modality: str, source: str | Path | bytes
    ) -> np.ndarray:
        """Embed one query (text ``str``, a file ``Path`` or raw ``bytes``) as a ``(1, dim)`` vector."""
        from embedstore.modalities import VideoItem, load
        from embedstore.modalities.recipes import recipe_of

        coll = self.collection(collection) if isinstance(collection, str) else collection
        enc = self.collection_encoder(coll)
        item = load(modality, source, recipe=recipe_of(enc))  # the encoder family's preprocessing
        if isinstance(item, VideoItem):
            self._require(enc, "vision")
            clips = self.encode(enc, "vision", item.clips)
            vec = clips.mean(axis=0, keepdims=True)
            return np.asarray(vec / max(float(np.linalg.norm(vec)), 1e-12), dtype=np.float32)
        self._require(enc, modality)
        return self.encode(enc, modality, item.unsqueeze(0))

    @staticmethod
    def _require(enc: Encoder, modality: str) -> None:
        if modality not in enc.modalities:
            raise UnsupportedModality(
                f"Encoder {enc.name!r} cannot embed {modality!r}; it knows: "
                f"{', '.join(sorted(enc.modalities))}"
            )

    def search(
        self,
        collection: str,
        *,
        text: str | None = None,
        file: Path | str | None = None,
        data: bytes | None = None,
        vector: np.ndarray | list[float] | None = None,
        item_id: int | str | None = None,
        modality: str | None = None,
        k: int = 10,
        modalities: Iterable[str] | None = None,
        where: dict[str, Any] | None = None,
        offset: int = 0,
        mode: str = "vector",
    ) -> list[SearchResult]:
        """Search by exactly one of text, file, raw data, vector or a stored item.

        ``mode`` ``keyword`` or ``hybrid`` (text queries only) ranks by the words of captions,
        text items and searchable fields, alone or fused with the vector ranking.
        """
        given = [x is not None for x in (text, file, data, vector, item_id)]
        if sum(given) != 1:
            raise InvalidQuery("Give exactly one of text, file, data, vector or item_id")
        if k < 1:
            raise InvalidQuery(f"k must be at least 1, got {k}", field="k")
        coll = self.collection(collection)
        mods = sorted(set(modalities)) if modalities else None
        if mode != "vector":
            from embedstore.hybrid import check_mode, text_search

            if text is None:
                raise InvalidQuery(
                    f"Search mode {check_mode(mode)!r} needs a text query", field="mode"
                )
            return text_search(
                self, coll, text, mode, k=k, offset=offset, modalities=mods, where=where
            )
        if item_id is not None:
            iid = item_id if isinstance(item_id, int) else coll.get_item(item_id).id
            return coll.similar_to(iid, k, modalities=mods, where=where, offset=offset)
        if vector is not None:
            q = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        elif text is not None:
            q = self.embed_query(coll, "text", text)
        elif file is not None:
            path = Path(file)
            q = self.embed_query(coll, modality or self._guess(path), path)
        else:
            if modality is None:
                raise InvalidInput(
                    "Raw data needs its modality (e.g. vision, audio)", field="modality"
                )
            assert data is not None
            q = self.embed_query(coll, modality, data)
        return coll.search(q, k, modalities=mods, where=where, offset=offset)[0]

    def similar(
        self,
        collection: str,
        item: int | str,
        *,
        k: int = 10,
        modalities: Iterable[str] | None = None,
        where: dict[str, Any] | None = None,
    ) -> list[SearchResult]:
        """Neighbours of a stored item, given by id or URI."""
        return self.search(collection, item_id=item, k=k, modalities=modalities, where=where)

    @staticmethod
    def _guess(path: Path) -> str:
        from embedstore.modalities import guess_modality

        modality = guess_modality(path)
        if modality is None:
            raise UnsupportedMediaType(
                f"Cannot tell the modality of {str(path)!r} from its type; name it (e.g. --modality depth)"
            )
        return modality

    # -- maintenance -----------------------------------------------------------------------------
    def reindex(
        self, collection: str, *, index_spec: str | None = None, encoder: str | None = None
    ) -> Any:
        """Rebuild the index (new spec) or re-embed with another encoder; swap when verified."""
        coll = self.collection(collection)
        if encoder and encoder != coll.info().encoder:
            from embedstore.ingest import reembed_collection

            reembed_collection(self, collection, encoder, index_spec)
        else:
            coll.reindex(index_spec)
        return self.collection(collection).info()

    # -- generators: captions and answers --------------------------------------------------------
    def caption(
        self,
        collection: str,
        model: str | None = None,
        *,
        where: dict[str, Any] | None = None,
        progress: ProgressCallback | None = None,
    ) -> Any:
        """Caption the pictures and videos ``model`` has not captioned yet (a ``CaptionReport``)."""
        from embedstore.captioning import caption_collection

        return caption_collection(self, collection, model, where=where, progress=progress)

    def ask(
        self,
        collection: str,
        question: str,
        *,
        k: int = 4,
        modalities: Iterable[str] | None = None,
        mode: str = "hybrid",
        model: str | None = None,
    ) -> Any:
        """Answer ``question`` from the best ``k`` items (an ``Answer``: text and cited items)."""
        from embedstore.ask import ask

        mods = sorted(set(modalities)) if modalities else None
        return ask(self, collection, question, k=k, modalities=mods, mode=mode, model=model)
