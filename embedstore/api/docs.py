"""The OpenAPI schema and its documentation pages, behind the API key unless ``public_docs``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.routing import APIRoute

DOCS_URLS: dict[str, Any] = {"docs_url": None, "redoc_url": None, "openapi_url": None}
"""``FastAPI(**DOCS_URLS)`` turns the built-in (unauthenticated) pages off."""


def mount_docs(app: FastAPI, dependencies: Sequence[Any]) -> None:
    """Serve ``/openapi.json``, ``/docs`` and ``/redoc`` with ``dependencies`` (the key check)."""
    deps = list(dependencies)

    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs")

    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - ReDoc")

    for path, endpoint in (("/openapi.json", openapi), ("/docs", swagger), ("/redoc", redoc)):
        app.router.routes.append(
            APIRoute(path, endpoint, methods=["GET"], dependencies=deps, include_in_schema=False)
        )
