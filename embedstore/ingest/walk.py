"""Walking the inputs: recursive scan with include/exclude globs and modality rules.

A walk never leaves its roots: symlinks are followed only when they resolve inside the folder
being walked, and each folder is visited once (loops end).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from embedstore.confine import inside
from embedstore.errors import InvalidInput, PathNotAllowed
from embedstore.ingest import objects

log = logging.getLogger(__name__)


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


def _scan(root: str, skip: Callable[[str], None]) -> Iterator[tuple[str, str, os.stat_result]]:
    """``(path, real path, stat)`` of the files under ``root``, hidden names left out.

    Symlinks are followed only when they resolve inside ``root`` (a link leading out is reported
    through ``skip``); each folder is walked once, by ``(st_dev, st_ino)``, and real folders come
    before folders reached through a link, so a file gets its real path when it has one. A file
    reached only through links is yielded once.
    """
    real_root = os.path.realpath(root)
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[tuple[int, int]] = set()
    linked_files: list[tuple[str, str, os.stat_result]] = []
    real: list[tuple[str, str]] = [(root, real_root)]
    linked: list[tuple[str, str]] = []  # folders reached through a link: after the real ones
    while real or linked:
        folder, folder_real = real.pop() if real else linked.pop()
        try:
            st = os.stat(folder)
            entries = list(os.scandir(folder))
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen_dirs:  # a loop, or a link to a folder walked already
            continue
        seen_dirs.add((st.st_dev, st.st_ino))
        for e in sorted(entries, key=lambda e: e.name):
            if e.name.startswith("."):
                continue
            try:
                if e.is_symlink():
                    target = os.path.realpath(e.path)
                    if not inside(target, real_root):
                        skip(f"skipping {e.path}: outside {root}")
                        continue
                    if os.path.isdir(target):
                        linked.append((e.path, target))
                    elif os.path.isfile(target):
                        linked_files.append((e.path, target, os.stat(target)))
                elif e.is_dir(follow_symlinks=False):
                    real.append((e.path, os.path.join(folder_real, e.name)))
                elif e.is_file(follow_symlinks=False):
                    fst = e.stat(follow_symlinks=False)
                    seen_files.add((fst.st_dev, fst.st_ino))
                    yield e.path, os.path.join(folder_real, e.name), fst
            except OSError:
                continue
    for path, target, fst in linked_files:
        if (fst.st_dev, fst.st_ino) not in seen_files:
            seen_files.add((fst.st_dev, fst.st_ino))
            yield path, target, fst


def walk(
    paths: Sequence[Path | str],
    *,
    modality: str | None = None,
    rules: dict[str, str] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    within: Sequence[Path | str] = (),
    on_skip: Callable[[str], None] | None = None,
    endpoint: str | None = None,
) -> tuple[list[FileEntry], list[str]]:
    """Files under ``paths`` that pass the globs and have a modality, plus the folder roots.

    No file outside the folder it was found under is yielded: a symlink leading out is skipped
    and reported to ``on_skip`` (default: the log) as ``skipping PATH: outside ROOT``. With
    ``within``, every file (by its resolved path) must also lie inside one of those folders.
    A path may be an object storage URI (``s3://bucket/prefix``, :mod:`embedstore.ingest.objects`;
    ``endpoint``: the S3 endpoint): its objects are listed, never with ``within``.
    """
    from embedstore.modalities import get_modality, guess_modality

    for name in ([modality] if modality else []) + list((rules or {}).values()):
        get_modality(name)
    skip = on_skip or log.warning
    fences = [os.path.realpath(os.path.expanduser(w)) for w in within]
    found: dict[str, FileEntry] = {}
    roots: list[str] = []
    for path in paths:
        files: Iterable[tuple[str, str, int, float]]
        if objects.is_object_uri(path):
            if fences:
                raise PathNotAllowed(f"{path}: object storage paths are not allowed here")
            prefix, files = objects.list_objects(str(path), endpoint)
            if prefix:
                roots.append(prefix)
        else:
            files = _local(path, fences, skip, roots)
        for full, rel, size, mtime in files:
            if include and not any(glob_match(rel, g) for g in include):
                continue
            if any(glob_match(rel, g) for g in exclude):
                continue
            mod = modality or _by_rule(rel, rules) or guess_modality(Path(rel))
            if mod is None or full in found:
                continue
            found[full] = FileEntry(full, rel, size, mtime, mod)
    return list(found.values()), roots


def _local(
    path: Path | str, fences: list[str], skip: Callable[[str], None], roots: list[str]
) -> Iterator[tuple[str, str, int, float]]:
    """``(path, rel, size, mtime)`` of a local file or the files under a folder (``roots`` += it)."""
    top = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(top):
        roots.append(top)
        files: Iterable[tuple[str, str, os.stat_result]] = _scan(top, skip)
        base = top
    elif os.path.isfile(top):
        files, base = [(top, os.path.realpath(top), os.stat(top))], os.path.dirname(top)
    else:
        raise InvalidInput(f"{str(path)!r} is neither a file nor a folder", field="paths")
    for full, real, st in files:
        if fences and not any(inside(real, f) for f in fences):
            skip(f"skipping {full}: outside {os.pathsep.join(fences)}")
            continue
        yield full, os.path.relpath(full, base).replace(os.sep, "/"), st.st_size, st.st_mtime


def _by_rule(rel: str, rules: dict[str, str] | None) -> str | None:
    for pattern, mod in (rules or {}).items():
        if glob_match(rel, pattern):
            return mod
    return None
