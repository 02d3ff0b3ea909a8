"""Manifests of (query, target) pairs and a disk cache of their embeddings for ``benchmarks.recall``.

A manifest is JSONL or CSV with the fields ``query``, ``query_modality``, ``target``,
``target_modality`` and an optional ``label``. For ``text`` the value is the text itself; any
other value is a file path, relative to the manifest's folder unless absolute.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedstore.errors import InvalidInput
from embedstore.manifests import iter_rows

FIELDS = ("query", "query_modality", "target", "target_modality")

Key = tuple[str, str]  # (modality, source): text, or an absolute file path


@dataclass(frozen=True, slots=True)
class Pair:
    """One manifest row: a query item, the item it should retrieve, and an optional class label."""

    query: Key
    target: Key
    label: str | None = None


def _rows(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    return iter_rows(path, field="manifest")


def read_manifest(path: Path) -> list[Pair]:
    """Parse and check a manifest; bad rows raise `InvalidInput` naming the file, line and field."""
    if not path.is_file():
        raise InvalidInput(f"Manifest {path} does not exist", field="manifest")
    pairs = []
    for line, row in _rows(path):
        for name in FIELDS:
            if not str(row.get(name) or "").strip():
                raise InvalidInput(f"{path}:{line}: missing field {name!r}", field=name)
        keys = []
        for side in ("query", "target"):
            modality, source = str(row[f"{side}_modality"]).strip(), str(row[side])
            if modality != "text":
                file = Path(source).expanduser()
                file = file if file.is_absolute() else path.parent / file
                if not file.is_file():
                    raise InvalidInput(
                        f"{path}:{line}: {side} file {file} does not exist", field=side
                    )
                source = str(file.resolve())
            keys.append((modality, source))
        label = str(row["label"]).strip() if row.get("label") not in (None, "") else None
        pairs.append(Pair(keys[0], keys[1], label))
    if not pairs:
        raise InvalidInput(f"Manifest {path} has no rows", field="manifest")
    return pairs


def content_hash(key: Key) -> str:
    """SHA-256 of the item's bytes (the text for ``text``), with the modality folded in."""
    modality, source = key
    h = hashlib.sha256(modality.encode() + b"\0")
    if modality == "text":
        h.update(source.encode("utf-8"))
    else:
        with open(source, "rb") as f:
            h.update(hashlib.file_digest(f, "sha256").digest())
    return h.hexdigest()


class EmbeddingCache:
    """Embeds items with one encoder, batched per modality, caching each vector as ``.npy`` on disk.

    The cache key is the encoder name, precision and weights file (if any) plus the item's content
    hash, so a rerun with another index spec loads every vector and never builds the model.
    """

    def __init__(
        self,
        cache_dir: Path,
        encoder: str,
        *,
        device: str = "auto",
        precision: str = "fp32",
        batch_size: int = 32,
        weights_dir: Path | None = None,
    ) -> None:
        self.encoder_name, self.device, self.precision = encoder, device, precision
        self.batch_size, self.weights_dir = batch_size, weights_dir
        self.dir = cache_dir / re.sub(
            r"[^A-Za-z0-9_.-]+", "_", f"{encoder}-{precision}{self._weights_tag()}"
        )
        self.hits = 0
        self.encoded = 0
        self._encoder: Any = None

    def _weights_tag(self) -> str:
        from embedstore.encoders import default_weights_dir, get_encoder_info

        info = get_encoder_info(self.encoder_name)
        if not info.weights_file:
            return ""
        file = default_weights_dir(self.weights_dir) / info.weights_file
        st = file.stat() if file.is_file() else None
        return f"-{st.st_size}-{int(st.st_mtime)}" if st else ""

    @property
    def encoder(self) -> Any:
        """The encoder, built on first use (never when everything is cached)."""
        if self._encoder is None:
            from embedstore.encoders import create_encoder

            self._encoder = create_encoder(
                self.encoder_name,
                device=self.device,
                precision=self.precision,
                weights_dir=self.weights_dir,
            )
        return self._encoder

    def embed(self, keys: Iterable[Key]) -> dict[Key, np.ndarray]:
        """A unit vector for every key: from the cache, else decoded and encoded in batches."""
        out: dict[Key, np.ndarray] = {}
        missing: dict[str, list[tuple[Key, Path]]] = defaultdict(list)
        for key in dict.fromkeys(keys):
            file = self.dir / key[0] / f"{content_hash(key)}.npy"
            if file.is_file():
                out[key] = np.load(file)
                self.hits += 1
            else:
                missing[key[0]].append((key, file))
        for modality, todo in missing.items():
            for s in range(0, len(todo), self.batch_size):
                chunk = todo[s : s + self.batch_size]
                vectors = self._encode(modality, [k for k, _ in chunk])
                for (key, file), vec in zip(chunk, vectors, strict=True):
                    file.parent.mkdir(parents=True, exist_ok=True)
                    np.save(file, vec)
                    out[key] = vec
                self.encoded += len(chunk)
        return out

    def _encode(self, modality: str, keys: list[Key]) -> np.ndarray:
        import torch

        from embedstore import modalities
        from embedstore.modalities.recipes import recipe_for_encoder

        recipe = recipe_for_encoder(self.encoder_name)  # the family's own preprocessing
        # LanguageBind's processor rejects non-RGB pictures (Tux Paint stamps are RGBA): convert
        # them as ImageBind's loader does, so both families see the same pixels
        options: dict[str, Any] = (
            {"convert_rgb": True} if recipe and modality in ("vision", "thermal") else {}
        )
        items = [
            modalities.load(
                modality, k[1] if modality == "text" else Path(k[1]), recipe=recipe, **options
            )
            for k in keys
        ]
        if modality == "video":  # one vector per video: the mean of its clips' vectors
            vecs = np.stack([self.encoder.encode("vision", it.clips).mean(axis=0) for it in items])
            return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return np.asarray(self.encoder.encode(modality, torch.stack(items)), dtype=np.float32)


TUXPAINT = Path("/usr/share/tuxpaint/stamps")


def tuxpaint_manifest(
    out: Path, root: Path = TUXPAINT, limit: int | None = 200, seed: int = 0
) -> Path:
    """Write a manifest from Debian's ``tuxpaint-stamps-default``: caption/sound <-> photo pairs.

    Each stamp ``X.png`` with a caption ``X.txt`` gives text->vision and vision->text rows, and
    with a sound ``X.ogg``/``X.wav`` audio->vision rows; the label is the stamp's folder name.
    """
    if not root.is_dir():
        raise InvalidInput(
            f"{root} not found; install it with: apt-get install tuxpaint-stamps-default"
        )
    stamps = [p for p in sorted(root.rglob("*.png")) if p.with_suffix(".txt").is_file()]
    if limit is not None and limit < len(stamps):
        pick = np.random.default_rng(seed).permutation(len(stamps))[:limit]
        stamps = [stamps[i] for i in sorted(pick)]
    rows = []
    for png in stamps:
        caption = png.with_suffix(".txt").read_text(encoding="utf-8").splitlines()[0].strip()
        label = png.parent.name
        rows.append(("text", caption, "vision", str(png), label))
        rows.append(("vision", str(png), "text", caption, label))
        sound = next(
            (s for s in (png.with_suffix(".ogg"), png.with_suffix(".wav")) if s.is_file()), None
        )
        if sound is not None:
            rows.append(("audio", str(sound), "vision", str(png), label))
    keys = ("query_modality", "query", "target_modality", "target", "label")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(dict(zip(keys, r, strict=True))) + "\n" for r in rows))
    return out
