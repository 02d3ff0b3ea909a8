"""The search page: static HTML, CSS and JavaScript modules from the package, served at ``/``."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
STATIC_PREFIX = "/static"

#: The page talks only to this origin; media and thumbnails arrive as blobs fetched with the key.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

router = APIRouter()


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    """The search page (no key needed: it holds no data; its API calls send the key)."""
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> FileResponse:
    """The page's icon, also where browsers look for it by default."""
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")


def mount_page(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files under ``/static``."""
    app.include_router(router)
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="static")
