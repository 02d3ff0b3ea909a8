"""Training pairs for binding: a CSV/JSONL manifest or a folder of files that share a stem."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedstore.errors import InvalidInput
from embedstore.manifests import iter_rows

ANCHOR_KEYS = ("anchor",)
TARGET_KEYS = ("target",)


@dataclass(frozen=True, slots=True)
class Pair:
    """One anchor item and the target item that should embed next to it.

    A value is a file path, or the caption itself when that side's modality is ``text``.
    """

    anchor: Path | str
    target: Path | str


def caption_of(path: Path) -> str:
    """The caption in a text file: its first non-empty line (later lines may hold translations)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise InvalidInput(f"{path}: cannot read caption: {e}", field="pairs") from e
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    raise InvalidInput(f"{path}: caption file is empty", field="pairs")


def _value(raw: str, modality: str, base: Path, where: str) -> Path | str:
    raw = raw.strip()
    if not raw:
        raise InvalidInput(f"{where}: empty value", field="pairs")
    if modality == "text":
        p = Path(raw).expanduser()
        p = p if p.is_absolute() else base / p
        return caption_of(p) if p.suffix == ".txt" and p.is_file() else raw
    p = Path(raw).expanduser()
    p = p if p.is_absolute() else base / p
    if not p.is_file():
        raise InvalidInput(f"{where}: file not found: {p}", field="pairs")
    return p


def _pick(row: dict[str, str], names: Sequence[str], where: str) -> str:
    for n in names:
        if n in row and row[n] is not None:
            return str(row[n])
    raise InvalidInput(
        f"{where}: missing column {' or '.join(repr(n) for n in names)}; got {sorted(row)}",
        field="pairs",
    )


def _rows(path: Path) -> list[tuple[str, dict[str, str]]]:
    if path.suffix.lower() not in (".csv", ".jsonl", ".ndjson"):
        raise InvalidInput(f"{path}: pairs must be a .csv, .jsonl file or a folder", field="pairs")
    return [(f"{path}:{i}", row) for i, row in iter_rows(path, field="pairs")]


def read_manifest(path: Path, anchor_modality: str, modality: str) -> list[Pair]:
    """Pairs from a CSV (header) or JSONL file with ``anchor`` and ``target`` columns.

    A column may also be named after its modality (``vision``, ``audio``, ...). Relative paths are
    relative to the manifest's folder. For ``text``, a value is the caption, or a ``.txt`` file.
    """
    base = path.parent
    pairs = []
    for where, row in _rows(path):
        a = _pick(row, (*ANCHOR_KEYS, anchor_modality), where)
        t = _pick(row, (*TARGET_KEYS, modality), where)
        pairs.append(
            Pair(_value(a, anchor_modality, base, where), _value(t, modality, base, where))
        )
    return pairs


def read_folder(root: Path, anchor_modality: str, modality: str) -> list[Pair]:
    """Pairs from files in one folder tree that share a stem (``dog.png`` + ``dog.wav``).

    Modalities are guessed from extensions; a ``text`` side is the first line of ``X.txt``.
    """
    from embedstore.modalities import guess_modality

    groups: dict[Path, dict[str, Path]] = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        m = guess_modality(p)
        if m in (anchor_modality, modality):
            groups.setdefault(p.with_suffix(""), {}).setdefault(m, p)
    pairs = []
    for files in groups.values():
        if anchor_modality in files and modality in files:
            a, t = files[anchor_modality], files[modality]
            pairs.append(
                Pair(
                    caption_of(a) if anchor_modality == "text" else a,
                    caption_of(t) if modality == "text" else t,
                )
            )
    return pairs


def read_pairs(source: Path | str, anchor_modality: str, modality: str) -> list[Pair]:
    """Pairs from a manifest file or a folder; raises `InvalidInput` when there are none."""
    source = Path(source).expanduser()
    if source.is_dir():
        pairs = read_folder(source, anchor_modality, modality)
    elif source.is_file():
        pairs = read_manifest(source, anchor_modality, modality)
    else:
        raise InvalidInput(f"{source}: no such pairs file or folder", field="pairs")
    if not pairs:
        raise InvalidInput(
            f"{source}: no ({anchor_modality}, {modality}) pairs found", field="pairs"
        )
    return pairs


def split_pairs(
    n: int, val_fraction: float, seed: int = 0, *, min_val: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded shuffle of ``range(n)`` into train and validation indices."""
    if not 0 <= val_fraction < 1:
        raise InvalidInput(
            f"val_fraction must be in [0, 1), got {val_fraction}", field="val_fraction"
        )
    order = np.random.default_rng(seed).permutation(n)
    n_val = 0 if val_fraction == 0 else max(min_val, round(n * val_fraction))
    if n_val >= n:
        raise InvalidInput(
            f"{n} pairs are too few for a validation split of {val_fraction}", field="val_fraction"
        )
    return np.sort(order[n_val:]), np.sort(order[:n_val])
