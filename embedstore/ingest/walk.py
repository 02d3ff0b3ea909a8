"""Walking the inputs: recursive scan with include/exclude globs and modality rules."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from embedstore.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file found by the walk: where it is, its stat, and the modality it will be read as."""

    uri: str
    rel: str
    size: int
    mtime: float
    modality: str


@lru_cache(maxsize=256)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a glob where ``*`` stays within a folder and ``**`` crosses folders."""
    pattern = pattern.strip().removeprefix("./")
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j].replace("\\", "\\\\")
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.S)


def glob_match(rel: str, pattern: str) -> bool:
    """Match a relative POSIX path; a pattern without ``/`` matches the file name anywhere."""
    if "/" not in pattern.strip("/"):
        return bool(glob_regex(pattern).match(rel.rsplit("/", 1)[-1]))
    return bool(glob_regex(pattern.strip("/")).match(rel))


def _scan(root: str) -> Iterable[tuple[str, os.stat_result]]:
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in sorted(entries, key=lambda e: e.name):
            if e.name.startswith("."):
                continue
            try:
                if e.is_dir():
                    stack.append(e.path)
                elif e.is_file():
                    yield e.path, e.stat()
            except OSError:
                continue


def walk(
    paths: Sequence[Path],
    *,
    modality: str | None = None,
    rules: dict[str, str] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> tuple[list[FileEntry], list[str]]:
    """Files under ``paths`` that pass the globs and have a modality, plus the folder roots."""
    from embedstore.modalities import get_modality, guess_modality

    for name in ([modality] if modality else []) + list((rules or {}).values()):
        get_modality(name)
    found: dict[str, FileEntry] = {}
    roots: list[str] = []
    for path in paths:
        top = os.path.abspath(os.path.expanduser(path))
        if os.path.isdir(top):
            roots.append(top)
            files: Iterable[tuple[str, os.stat_result]] = _scan(top)
            base = top
        elif os.path.isfile(top):
            files, base = [(top, os.stat(top))], os.path.dirname(top)
        else:
            raise InvalidInput(f"{str(path)!r} is neither a file nor a folder", field="paths")
        for full, st in files:
            rel = os.path.relpath(full, base).replace(os.sep, "/")
            if include and not any(glob_match(rel, g) for g in include):
                continue
            if any(glob_match(rel, g) for g in exclude):
                continue
            mod = modality or _by_rule(rel, rules) or guess_modality(Path(full))
            if mod is None or full in found:
                continue
            found[full] = FileEntry(full, rel, st.st_size, st.st_mtime, mod)
    return list(found.values()), roots


def _by_rule(rel: str, rules: dict[str, str] | None) -> str | None:
    for pattern, mod in (rules or {}).items():
        if glob_match(rel, pattern):
            return mod
    return None
