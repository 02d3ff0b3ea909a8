"""Plain result types shared by the store, the CLI and the API."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)  # not frozen: a frozen init costs 2.5x, and search builds k per query
class SearchResult:
    """One search hit: an item, the modality of the vector that matched, and its score."""

    id: int
    uri: str
    modality: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    start: float | None = None
    end: float | None = None
    segment: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "uri": self.uri,
            "modality": self.modality,
            "score": self.score,
            "metadata": self.metadata,
        }
        if self.start is not None or self.end is not None:
            out["start"] = self.start
            out["end"] = self.end
        return out


@dataclass(frozen=True, slots=True)
class Failure:
    """A file that could not be indexed, and why."""

    uri: str
    reason: str


@dataclass(frozen=True, slots=True)
class IndexReport:
    """What one ``index`` run did."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    moved: int = 0
    deduplicated: int = 0
    failed: tuple[Failure, ...] = ()
    seconds: float = 0.0
    skipped: tuple[str, ...] = ()  # "skipping PATH: outside ROOT" for links that lead out

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": self.added,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "removed": self.removed,
            "moved": self.moved,
            "deduplicated": self.deduplicated,
            "failed": [{"uri": f.uri, "reason": f.reason} for f in self.failed],
            "seconds": round(self.seconds, 3),
            "skipped": list(self.skipped),
        }
