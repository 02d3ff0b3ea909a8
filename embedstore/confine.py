"""Confinement of file reads to folders: resolved-path checks shared by the walk and the readers."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from embedstore.errors import PathNotAllowed


def inside(path: str, root: str) -> bool:
    """True when the resolved ``path`` is ``root`` or lies under it (both already resolved)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def inside_any(path: str, roots: Iterable[str]) -> bool:
    """True when the resolved ``path`` lies inside one of ``roots``."""
    return any(inside(path, r) for r in roots)


def opened_path(fd: int, source: Path | str) -> str:
    """The resolved path of the file behind ``fd`` (Linux: ``/proc/self/fd``; else the name now)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(source)


def check_opened(fd: int, source: Path | str, roots: Iterable[str]) -> None:
    """Refuse (``PathNotAllowed``) an opened file that lies outside ``roots``.

    Checked on the open descriptor, not on the name, so a symlink or a folder swapped in between
    the walk and the read cannot lead the reader out of the roots.
    """
    if not inside_any(opened_path(fd, source), roots):
        raise PathNotAllowed(f"{source}: the file opened lies outside the indexed folders")
