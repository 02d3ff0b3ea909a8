"""Reading manifests of pairs (CSV/TSV with a header, or JSON Lines) row by row."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from embedstore.errors import InvalidInput


def iter_rows(path: Path, *, field: str = "manifest") -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, row)``; ``.csv``/``.tsv`` have a header, anything else is JSON Lines.

    A line that is not a JSON object raises `InvalidInput` naming ``path:line``.
    """
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
            for i, row in enumerate(reader, start=2):
                yield i, row
        return
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InvalidInput(f"{path}:{i}: invalid JSON ({e.msg})", field=field) from e
        if not isinstance(row, dict):
            raise InvalidInput(f"{path}:{i}: expected a JSON object", field=field)
        yield i, row
