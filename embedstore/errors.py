"""The one exception hierarchy of embedstore.

Every error knows its HTTP status and its CLI exit code; the CLI (``cli.main``) and the
HTTP API (``embedstore.api.app``) translate them in exactly one place each.
"""

from __future__ import annotations


class EmbedstoreError(Exception):
    """Base class of every error embedstore raises on purpose."""

    status_code: int = 500
    exit_code: int = 1

    def __init__(self, message: str = "", *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return self.message


# -- 400 ---------------------------------------------------------------------------------------
class BadRequest(EmbedstoreError):
    """The request is malformed (query too long, bad filter syntax, bad pagination)."""

    status_code = 400
    exit_code = 2


class InvalidQuery(BadRequest):
    """A search query or metadata filter could not be understood."""


# -- 401 / 403 ---------------------------------------------------------------------------------
class Unauthorized(EmbedstoreError):
    """A missing or wrong API key."""

    status_code = 401
    exit_code = 7


class PathNotAllowed(EmbedstoreError):
    """A server-side path outside the configured roots (``..`` or a symlink escape)."""

    status_code = 403
    exit_code = 7


# -- 404 ---------------------------------------------------------------------------------------
class NotFound(EmbedstoreError):
    """Something named by the caller does not exist."""

    status_code = 404
    exit_code = 3


class CollectionNotFound(NotFound):
    """No collection of that name."""


class CollectionReplaced(CollectionNotFound):
    """A write found its collection gone: dropped, or replaced by ``reindex --encoder`` (whose
    new collection has the name, other ids and another encoder) while the write waited."""


class ItemNotFound(NotFound):
    """No item with that id or URI."""


# -- 409 ---------------------------------------------------------------------------------------
class Conflict(EmbedstoreError):
    """The request contradicts what is stored."""

    status_code = 409
    exit_code = 5


class CollectionExists(Conflict):
    """A collection of that name exists already."""


class DimensionMismatch(Conflict):
    """A vector's dimension differs from its collection's."""


class EncoderMismatch(Conflict):
    """A collection was built with another encoder (vectors from two spaces never mix)."""


# -- 413 / 415 ---------------------------------------------------------------------------------
class PayloadTooLarge(EmbedstoreError):
    """An upload, a JSON body or a decoded medium exceeds a configured limit."""

    status_code = 413
    exit_code = 4


class UnsupportedMediaType(EmbedstoreError):
    """A file type embedstore cannot decode."""

    status_code = 415
    exit_code = 4


# -- 422 ---------------------------------------------------------------------------------------
class InvalidInput(EmbedstoreError):
    """Well-formed input that names something impossible."""

    status_code = 422
    exit_code = 4


class UnknownEncoder(InvalidInput):
    """No registered encoder of that name."""


class UnknownModality(InvalidInput):
    """No registered modality of that name."""


class UnknownGenerator(InvalidInput):
    """No registered generator (captioning / answering model) of that name."""


class UnsupportedModality(InvalidInput):
    """The encoder cannot embed this modality."""


class InvalidMedia(InvalidInput):
    """A file could not be decoded (corrupt, truncated, empty, too large, too slow)."""

    def __init__(self, message: str = "", *, uri: str | None = None, field: str | None = None):
        super().__init__(message, field=field)
        self.uri = uri


class InvalidConfig(InvalidInput):
    """A setting or a config file is invalid."""


# -- 503 ---------------------------------------------------------------------------------------
class Unavailable(EmbedstoreError):
    """A resource the request needs is not available on this server."""

    status_code = 503
    exit_code = 6


class RequestTimeout(Unavailable):
    """A request got no answer within the server's ``request_timeout_s``."""

    status_code = 504


class WeightsNotFound(Unavailable):
    """Model weights are missing and cannot be downloaded; the message says where to put them."""


class ChecksumMismatch(Unavailable):
    """A downloaded or supplied weights file does not match its published checksum."""


# -- internal ----------------------------------------------------------------------------------
class IndexOperationUnsupported(EmbedstoreError):
    """An index cannot do this in place (e.g. remove from HNSW); callers fall back to a rebuild."""


__all__ = [
    name for name, obj in globals().items() if isinstance(obj, type) and issubclass(obj, Exception)
]
