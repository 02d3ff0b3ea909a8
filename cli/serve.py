"""``embedstore serve``: the HTTP API under uvicorn."""

from __future__ import annotations

import click

from embedstore.config import Settings


@click.command()
@click.option("--host", help="Address to bind (default from settings: 127.0.0.1).")
@click.option("--port", type=click.IntRange(0, 65535), help="Port (default 8000).")
@click.pass_obj
def serve(settings: Settings, host: str | None, port: int | None) -> None:
    """Serve the HTTP search API.

    \b
        embedstore serve --port 8000
    """
    import uvicorn

    from embedstore.api import create_app

    updates = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings.model_copy(update=updates)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)
