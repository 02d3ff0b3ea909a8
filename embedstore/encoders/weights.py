"""Finding, downloading (resumable, checksummed) and verifying model weight files."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from embedstore.encoders.registry import default_weights_dir
from embedstore.errors import ChecksumMismatch, WeightsNotFound

log = logging.getLogger(__name__)
CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightsSource:
    """Where a weights file comes from: its cache file name, download URL and sha256 (if known)."""

    file_name: str
    url: str | None = None
    sha256: str | None = None

    def with_overrides(self, url: str | None = None, sha256: str | None = None) -> WeightsSource:
        """This source with a mirror URL and/or a sha256 from the settings, when given."""
        return WeightsSource(
            self.file_name, url or self.url, (sha256 or self.sha256 or "").lower() or None
        )


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_fingerprint(path: Path) -> str:
    """A cheap identity of a large file: sha256 over its size and first and last MiB."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        digest.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        digest.update(f.read(1 << 20))
    return digest.hexdigest()[:12]


def verify_sha256(path: Path, expected: str | None) -> None:
    """Raise `ChecksumMismatch` when ``expected`` is set and differs from the file's sha256."""
    if expected is None:
        return
    actual = sha256_file(path)
    if actual != expected.lower():
        raise ChecksumMismatch(
            f"{path}: sha256 {actual} does not match the expected {expected}; "
            "delete the file and download it again",
            field="weights_path",
        )


def _where_hint(source: WeightsSource, target: Path) -> str:
    return (
        f"Download it yourself and put it at {target} (EMBEDSTORE_WEIGHTS_DIR / --weights-dir sets "
        f"the folder), or point EMBEDSTORE_WEIGHTS_PATH / --weights-path at the file."
    )


def resolve_weights(
    source: WeightsSource,
    *,
    weights_path: Path | None = None,
    weights_dir: Path | None = None,
    download: bool = True,
    progress: bool = True,
) -> Path:
    """The weights file: ``weights_path``, else the cached copy, else a fresh download."""
    if weights_path is not None:
        if not weights_path.is_file():
            raise WeightsNotFound(
                f"Weights file {weights_path} (weights_path / EMBEDSTORE_WEIGHTS_PATH) does not exist",
                field="weights_path",
            )
        return weights_path
    target = default_weights_dir(weights_dir) / source.file_name
    if target.is_file():
        return target
    url = source.url
    if not download or not url:
        raise WeightsNotFound(f"{source.file_name} not found. {_where_hint(source, target)}")
    try:
        return download_file(url, target, sha256=source.sha256, progress=progress)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise WeightsNotFound(
            f"{source.file_name} not found in {target.parent} and the download from {url} failed "
            f"({e}). {_where_hint(source, target)}",
            field="weights_path",
        ) from e


def reachable(url: str, timeout: float = 3.0) -> bool:
    """True when a TCP connection to ``url``'s host and port opens within ``timeout`` seconds.

    A cheap probe before a large download: offline (no route, no DNS, a refused port) it answers
    in at most ``timeout`` instead of waiting out the download's own timeout.
    """
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        return False
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def download_file(
    url: str, target: Path, *, sha256: str | None = None, progress: bool = True, timeout: float = 30
) -> Path:
    """Download ``url`` to ``target`` via ``target.part``, resuming with an HTTP Range request.

    The part file is renamed only after the size (and ``sha256``, when given) checks out; a
    checksum failure deletes the part file and raises `ChecksumMismatch`.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "embedstore"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not have:  # 416: the part file is already complete
            raise
        log.info("%s: server reports %s complete", url, part)
        response = None
    if response is not None:
        with response:
            if have and response.status != 206:
                have = 0  # the server ignored the range: start over
            length = response.headers.get("Content-Length")
            total = have + int(length) if length is not None else None
            _copy(response, part, have, total, progress, target.name)
        if total is not None and part.stat().st_size != total:
            raise OSError(f"incomplete download of {url}: {part.stat().st_size} of {total} bytes")
    try:
        verify_sha256(part, sha256)
    except ChecksumMismatch:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, target)
    return target


def _copy(
    response: object, part: Path, have: int, total: int | None, progress: bool, label: str
) -> None:
    from tqdm import tqdm  # lazy: only needed for downloads

    read = response.read  # type: ignore[attr-defined]
    with (
        part.open("ab" if have else "wb") as f,
        tqdm(
            total=total,
            initial=have,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=label,
            file=sys.stderr,
            disable=not progress,
        ) as bar,
    ):
        while chunk := read(CHUNK):
            f.write(chunk)
            bar.update(len(chunk))
