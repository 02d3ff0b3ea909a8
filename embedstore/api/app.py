"""``create_app(settings)``: the FastAPI app, its lifespan, middleware and the one error handler."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import torch
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from embedstore.api.batcher import DynamicBatcher
from embedstore.api.deps import ApiState
from embedstore.api.docs import DOCS_URLS, mount_docs
from embedstore.api.errors import embedstore_error
from embedstore.api.limits import BodyLimitMiddleware
from embedstore.api.metrics import Metrics, MetricsMiddleware
from embedstore.api.queries import QueryService
from embedstore.api.routes import ask, collections, items, search, system
from embedstore.api.routes.page import mount_page
from embedstore.api.search_lane import JsonSearchLane
from embedstore.api.security import check_auth_config, require_api_key
from embedstore.config import Settings, load_settings
from embedstore.engine import Engine
from embedstore.errors import EmbedstoreError
from embedstore.runtime import configure_threads

logger = logging.getLogger(__name__)

API_PREFIX = "/v1"


class InternalErrorMiddleware:
    """Any unexpected exception becomes a bare 500 ``internal error``; the traceback goes to the log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def track(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, track)
        except ClientDisconnect:  # nobody is left to answer
            logger.info("%s %s: client disconnected", scope.get("method"), scope.get("path"))
        except Exception:
            logger.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:
                raise
            body = json.dumps({"detail": "internal error", "type": "InternalError"}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
            ]
            await send({"type": "http.response.start", "status": 500, "headers": headers})
            await send({"type": "http.response.body", "body": body})


def _make_state(settings: Settings) -> ApiState:
    engine = Engine(settings)
    metrics = Metrics()

    def encode(encoder: str, modality: str, batch: torch.Tensor) -> np.ndarray:
        return engine.encode(engine.encoder(encoder), modality, batch)

    batcher = DynamicBatcher(
        encode,
        max_batch=settings.batch_size,
        wait_ms=settings.batch_wait_ms,
        observe=metrics.observe_batch,
        busy=engine.model_busy,  # idle model: a query is dispatched at once, no window
    )
    queries = QueryService(engine, batcher, settings, observe_search=metrics.observe_search)
    return ApiState(settings, engine, batcher, queries, metrics)


def _route(routes: list[Any], path: str) -> Any:
    """The route of ``routes`` at ``path`` (None when there is none)."""
    return next((r for r in routes if getattr(r, "path", None) == path), None)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the HTTP API over one engine; ``settings`` default to ``load_settings()``."""
    settings = settings if settings is not None else load_settings()
    check_auth_config(settings)
    state = _make_state(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_threads(settings)  # process-wide thread counts: once, never per request
        await run_in_threadpool(lambda: state.engine.store)  # open (and migrate) the catalog once
        logger.info("embedstore API ready on %s (data dir %s)", settings.host, settings.data_dir)
        try:
            yield
        finally:
            await state.batcher.aclose()
            await state.queries.searcher.aclose()
            await run_in_threadpool(state.engine.close)

    app = FastAPI(
        title="embedstore",
        summary="Multimodal embedding search: text, images, audio, video, depth, thermal, IMU",
        version="1",
        lifespan=lifespan,
        **({} if settings.public_docs else DOCS_URLS),  # else served below, behind the key
    )
    app.state.api = state
    app.state.settings = settings
    app.add_exception_handler(EmbedstoreError, embedstore_error)

    auth = [Depends(require_api_key)]
    if not settings.public_docs:
        mount_docs(app, auth)
    app.include_router(system.router)
    app.include_router(system.metrics_router, dependencies=auth)
    for module in (collections, items, search, ask):
        app.include_router(module.router, prefix=API_PREFIX, dependencies=auth)
        state.metrics.add_routes(module.router.routes, API_PREFIX)
    mount_page(app)

    # Middleware: the last added runs first. Metrics see every answer, 413s included; JSON
    # searches are answered by the innermost layer, inside all the others.
    search_route = _route(search.router.routes, "/collections/{name}/search")
    app.add_middleware(JsonSearchLane, state=state, route=search_route)
    app.add_middleware(InternalErrorMiddleware)
    app.add_middleware(
        BodyLimitMiddleware,
        max_json_bytes=settings.max_json_bytes,
        max_upload_bytes=settings.max_upload_bytes,
    )
    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app
