"""The one translation of our errors to HTTP answers: ``{"detail": ..., "type": ClassName}``."""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import JSONResponse

from embedstore.errors import EmbedstoreError, Unauthorized

logger = logging.getLogger("embedstore.api.app")


def error_response(exc: EmbedstoreError, method: str, path: str) -> JSONResponse:
    """The answer to ``exc`` raised while serving ``method path`` (server faults are logged)."""
    if exc.status_code >= 500 and exc.status_code not in (503, 504):
        logger.error("%s %s failed", method, path, exc_info=exc)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    body = {"detail": str(exc) or type(exc).__name__, "type": type(exc).__name__}
    if exc.field:
        body["field"] = exc.field
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


async def embedstore_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's exception handler for every ``EmbedstoreError``."""
    assert isinstance(exc, EmbedstoreError)
    return error_response(exc, request.method, request.url.path)
