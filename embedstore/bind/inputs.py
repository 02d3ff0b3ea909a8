"""Decoding the two sides of the pairs once: anchor embeddings (cached on disk) and target tensors."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from embedstore.bind.pairs import Pair
from embedstore.encoders.base import Encoder
from embedstore.errors import EmbedstoreError, InvalidInput
from embedstore.types import Failure

log = logging.getLogger(__name__)
Value = Path | str


@dataclass
class PairData:
    """Decoded pairs: target tensors, the distinct anchors' embeddings, and each pair's anchor row."""

    targets: torch.Tensor
    anchors: torch.Tensor
    anchor_index: torch.Tensor
    pairs: list[Pair]
    failed: list[Failure] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.targets.shape[0])


def _key(value: Value) -> str:
    if isinstance(value, Path):
        st = value.stat()
        return f"{value.resolve()}\0{st.st_size}\0{st.st_mtime_ns}"
    return f"text\0{value}"


def fingerprint(*parts: str) -> str:
    """A short sha256 over ``parts``: names cache files after what they hold."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\1")
    return h.hexdigest()[:16]


def decode(
    modality: str, values: Sequence[Value], failed: list[Failure], recipe: str | None = None
) -> tuple[list[int], list[torch.Tensor]]:
    """``modalities.load`` each value (``recipe``: an encoder family's preprocessing); failures
    go to ``failed`` and are skipped."""
    from embedstore.modalities import load

    ok, items = [], []
    for i, v in enumerate(values):
        try:
            item = load(modality, v, recipe=recipe)
        except EmbedstoreError as e:
            failed.append(Failure(str(v), str(e)))
            log.warning("skipping %s: %s", v, e)
            continue
        if not isinstance(item, torch.Tensor):
            raise InvalidInput(f"{v}: {modality} does not decode to one tensor", field="modality")
        ok.append(i)
        items.append(item)
    return ok, items


def embed_anchors(
    encoder: Encoder,
    modality: str,
    values: Sequence[Value],
    *,
    batch_size: int = 32,
    cache_dir: Path | None = None,
    failed: list[Failure] | None = None,
) -> tuple[list[int], np.ndarray]:
    """Embed each distinct anchor once with the frozen encoder; the result is cached on disk.

    Returns the indices of ``values`` that decoded and their float32 (n, dim) embeddings.
    """
    failed = failed if failed is not None else []
    cache = None
    if cache_dir is not None:
        name = fingerprint(encoder.name, encoder.version, modality, *map(_key, values))
        cache = cache_dir / f"anchors-{name}.npz"
        if cache.is_file():
            data = np.load(cache)
            failed += [Failure(**f) for f in json.loads(str(data["failed"]))]
            return data["ok"].tolist(), data["emb"]
    from embedstore.modalities.recipes import recipe_of

    ok, items = decode(modality, values, failed, recipe_of(encoder))  # the base family's recipe
    embs = [
        encoder.encode(modality, torch.stack(items[s : s + batch_size]))
        for s in range(0, len(items), batch_size)
    ]
    emb = np.concatenate(embs) if embs else np.zeros((0, encoder.dim), np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        mine = json.dumps([{"uri": f.uri, "reason": f.reason} for f in failed])
        np.savez(cache, ok=np.asarray(ok, dtype=np.int64), emb=emb, failed=np.asarray(mine))
    return ok, emb


def decode_targets(
    modality: str, values: Sequence[Value], *, cache_dir: Path | None = None, failed: list[Failure]
) -> tuple[list[int], torch.Tensor]:
    """Preprocess every target once (cached as one tensor file when ``cache_dir`` is given)."""
    cache = None
    if cache_dir is not None:
        cache = cache_dir / f"targets-{fingerprint(modality, *map(_key, values))}.pt"
        if cache.is_file():
            data = torch.load(cache, weights_only=True)
            failed += [Failure(u, r) for u, r in data["failed"]]
            return data["ok"].tolist(), data["items"]
    mine: list[Failure] = []
    ok, items = decode(modality, values, mine)
    failed += mine
    if not items:
        raise InvalidInput(f"none of the {len(values)} {modality} targets could be decoded")
    stacked = torch.stack(items)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {"ok": torch.tensor(ok), "items": stacked, "failed": [(f.uri, f.reason) for f in mine]},
            cache,
        )
    return ok, stacked


def prepare(
    pairs: Sequence[Pair],
    encoder: Encoder,
    anchor_modality: str,
    modality: str,
    *,
    batch_size: int = 32,
    cache_dir: Path | None = None,
    cache_targets: bool = True,
    on_stage: Callable[[str], None] | None = None,
) -> PairData:
    """Embed the distinct anchors once, preprocess the targets, and drop pairs that failed."""
    failed: list[Failure] = []
    distinct: dict[Value, int] = {}
    for p in pairs:
        distinct.setdefault(p.anchor, len(distinct))
    anchor_values = list(distinct)
    if on_stage:
        on_stage(f"embedding {len(anchor_values)} {anchor_modality} anchors with {encoder.name}")
    ok_a, emb = embed_anchors(
        encoder,
        anchor_modality,
        anchor_values,
        batch_size=batch_size,
        cache_dir=cache_dir,
        failed=failed,
    )
    row_of = {anchor_values[i]: r for r, i in enumerate(ok_a)}
    if on_stage:
        on_stage(f"preprocessing {len(pairs)} {modality} targets")
    ok_t, targets = decode_targets(
        modality,
        [p.target for p in pairs],
        cache_dir=cache_dir if cache_targets else None,
        failed=failed,
    )
    keep = [(j, i) for j, i in enumerate(ok_t) if pairs[i].anchor in row_of]
    if len(keep) < 2:
        raise InvalidInput(f"only {len(keep)} usable pairs after decoding; need at least 2")
    rows = torch.tensor([j for j, _ in keep])
    kept = [pairs[i] for _, i in keep]
    index = torch.tensor([row_of[p.anchor] for p in kept])
    return PairData(targets[rows], torch.from_numpy(emb), index, kept, failed)
