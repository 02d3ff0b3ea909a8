"""Object storage inputs (``s3://bucket/prefix``) read through pyarrow's file systems.

An object URI is listed, hashed and read like a local path: the walk lists the objects under
the prefix (their size and last-modified time are the file state the incremental plan compares),
the plan hashes the changed ones (SHA-256 of the bytes, streamed), and the decoders get the
bytes. Items keep the ``s3://bucket/key`` URI.

The endpoint: ``endpoint`` (``Settings.s3_endpoint_url``, env ``EMBEDSTORE_S3_ENDPOINT_URL``),
else the AWS SDK's own ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``, else AWS. Credentials and
region come from the AWS SDK's usual chain (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``,
``AWS_PROFILE``, ``~/.aws``, instance roles; ``AWS_REGION`` / ``AWS_DEFAULT_REGION``). Tested
against an S3-compatible server on loopback; ``gs://`` goes through pyarrow's GCS file system
and is not tested here.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlparse

from embedstore.errors import (
    EmbedstoreError,
    InvalidInput,
    PathNotAllowed,
    PayloadTooLarge,
    Unavailable,
)
from embedstore.modalities.sources import NamedBytes

SCHEMES = ("s3", "gs")
READ_CHUNK = 1 << 20  # bytes per read while hashing
_CACHE: dict[tuple[str, str, str | None, str | None], Any] = {}
_LOCK = threading.Lock()


def is_object_uri(path: object) -> bool:
    """Whether ``path`` is an object storage URI (``s3://...``, ``gs://...``)."""
    scheme, sep, _ = str(path).partition("://")
    return bool(sep) and scheme.lower() in SCHEMES


def split(uri: str) -> tuple[str, str, str]:
    """``s3://bucket/a/b`` -> ``("s3", "bucket", "a/b")``; an ``InvalidInput`` without a bucket."""
    scheme, _, rest = uri.partition("://")
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise InvalidInput(f"{uri!r}: no bucket in the URI", field="paths")
    return scheme.lower(), bucket, key.strip("/")


def endpoint_of(endpoint: str | None) -> str | None:
    """The S3 endpoint to use: the given one, else ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``."""
    return (
        endpoint
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None
    )


def filesystem(uri: str, endpoint: str | None = None) -> Any:
    """The pyarrow file system for ``uri``'s bucket (one per bucket and endpoint, reused)."""
    scheme, bucket, _ = split(uri)
    ep = endpoint_of(endpoint) if scheme == "s3" else None
    who = os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")  # new credentials
    key = (scheme, bucket, ep, who)
    with _LOCK:
        fs = _CACHE.get(key)
        if fs is None:
            fs = _CACHE[key] = _make(uri, scheme, ep)
        return fs


def _make(uri: str, scheme: str, endpoint: str | None) -> Any:
    try:
        from pyarrow import fs
    except ImportError as e:  # pragma: no cover - pyarrow comes with the [scale] extra
        raise InvalidInput(
            f"{uri}: object storage paths need pyarrow: pip install 'embedstore[scale]'",
            field="paths",
        ) from e
    if scheme == "s3" and endpoint:  # a custom endpoint (MinIO, Ceph, a local test server)
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        return fs.S3FileSystem(
            endpoint_override=parsed.netloc + parsed.path.rstrip("/"),
            scheme=parsed.scheme or "https",
            region=region or "us-east-1",
        )
    try:  # AWS or GCS: pyarrow resolves the bucket's region
        return fs.FileSystem.from_uri(uri)[0]
    except OSError as e:
        raise storage_error(uri, e, endpoint) from e


def _path(uri: str) -> str:
    _, bucket, key = split(uri)
    return f"{bucket}/{key}" if key else bucket


def storage_error(uri: str, err: OSError, endpoint: str | None = None) -> EmbedstoreError:
    """The project's error for a failed object storage call, naming ``uri``."""
    text = " ".join(str(err).split())
    if isinstance(err, FileNotFoundError) or "NO_SUCH_KEY" in text:
        return InvalidInput(f"{uri}: no such object", field="paths")
    if "NO_SUCH_BUCKET" in text:
        return InvalidInput(f"{uri}: no such bucket", field="paths")
    if any(s in text for s in ("ACCESS_DENIED", "INVALID_ACCESS_KEY_ID", "SIGNATURE", "403")):
        hint = "" if _has_credentials() else "; no AWS credentials found (AWS_ACCESS_KEY_ID/"
        hint = hint and hint + "AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials)"
        return PathNotAllowed(f"{uri}: access denied by the object store{hint} ({text})")
    if "NETWORK_CONNECTION" in text or "curlCode" in text:
        where = endpoint_of(endpoint) or "the default endpoint"
        return Unavailable(f"{uri}: cannot reach the object store at {where} ({text})")
    return Unavailable(f"{uri}: object storage error ({text})")


def _has_credentials() -> bool:
    env = ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE")
    files = [os.environ.get("AWS_SHARED_CREDENTIALS_FILE") or "~/.aws/credentials"]
    return any(os.environ.get(v) for v in env) or any(
        os.path.isfile(os.path.expanduser(f)) for f in files
    )


# -- listing -----------------------------------------------------------------------------------
def list_objects(
    uri: str, endpoint: str | None = None
) -> tuple[str | None, list[tuple[str, str, int, float]]]:
    """``(prefix, [(uri, rel, size, mtime), ...])`` of the object or the objects under a prefix.

    ``prefix`` is the prefix's URI as the items' URIs start (None for a single object).

    Names with a part starting with ``.`` are left out, as the local walk does. A URI that is
    neither an object nor a prefix with objects is an ``InvalidInput`` (no bucket, no objects).
    """
    from pyarrow import fs as pafs

    fs = filesystem(uri, endpoint)
    scheme, bucket, key = split(uri)
    path = _path(uri)
    try:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            one = f"{scheme}://{path}"
            return None, [(one, key.rsplit("/", 1)[-1], int(info.size), _mtime(info))]
        if info.type == pafs.FileType.NotFound and key:
            if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
                raise InvalidInput(f"{uri}: no such bucket", field="paths")
            raise InvalidInput(f"{uri}: no object and no prefix with objects", field="paths")
        found = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    except OSError as e:
        raise storage_error(uri, e, endpoint) from e
    out = []
    prefix = f"{scheme}://{path}".rstrip("/")
    for f in sorted(found, key=lambda f: f.path):
        rel = f.path[len(path) :].lstrip("/")
        if f.type != pafs.FileType.File or any(p.startswith(".") for p in rel.split("/")):
            continue
        out.append((f"{prefix}/{rel}", rel, int(f.size), _mtime(f)))
    return prefix, out


def _mtime(info: Any) -> float:
    ns = info.mtime_ns
    return float(ns) / 1e9 if ns is not None else 0.0


def missing(uris: Iterable[str], endpoint: str | None = None) -> set[str]:
    """The URIs among ``uris`` with no object behind them (pruning, moves)."""
    from pyarrow import fs as pafs

    by_fs: dict[int, tuple[Any, list[str]]] = {}
    for uri in uris:
        fs = filesystem(uri, endpoint)
        by_fs.setdefault(id(fs), (fs, []))[1].append(uri)
    gone: set[str] = set()
    for fs, group in by_fs.values():
        try:
            infos = fs.get_file_info([_path(u) for u in group])
        except OSError as e:
            raise storage_error(group[0], e, endpoint) from e
        gone.update(u for u, i in zip(group, infos) if i.type == pafs.FileType.NotFound)
    return gone


# -- reading -----------------------------------------------------------------------------------
def _chunks(uri: str, endpoint: str | None) -> Iterator[bytes]:
    fs = filesystem(uri, endpoint)
    try:
        with fs.open_input_stream(_path(uri)) as f:
            while chunk := f.read(READ_CHUNK):
                yield chunk
    except OSError as e:
        raise storage_error(uri, e, endpoint) from e


def hash_object(uri: str, endpoint: str | None = None) -> str:
    """SHA-256 of an object's bytes, hex (streamed)."""
    h = hashlib.sha256()
    for chunk in _chunks(uri, endpoint):
        h.update(chunk)
    return h.hexdigest()


def read_object(uri: str, endpoint: str | None = None, max_bytes: int | None = None) -> NamedBytes:
    """An object's bytes, named by its URI for the decoders' messages."""
    out = bytearray()
    for chunk in _chunks(uri, endpoint):
        out += chunk
        if max_bytes is not None and len(out) > max_bytes:
            raise PayloadTooLarge(f"{uri}: more than {max_bytes} bytes (max_file_bytes)")
    return NamedBytes(out, name=uri)
