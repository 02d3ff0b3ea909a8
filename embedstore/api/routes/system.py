"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from embedstore.api.deps import StateDep
from embedstore.api.schemas import Health

router = APIRouter()
metrics_router = APIRouter()


@router.get("/healthz", response_model=Health, summary="Liveness")
def healthz() -> Health:
    """200 while the process serves requests."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health, "description": "Not ready"}},
    summary="Readiness",
)
async def readyz(state: StateDep) -> JSONResponse:
    """200 when the catalog answers; 503 (naming the failed check) otherwise."""
    checks: dict[str, str] = {}
    try:
        await run_in_threadpool(state.engine.store.collections)
        checks["store"] = "ok"
    except Exception as e:  # readiness reports, it does not raise
        checks["store"] = f"error: {type(e).__name__}"
    loaded = sorted(getattr(state.engine, "_encoders", {}))
    checks["encoders_loaded"] = ",".join(loaded) or "none (loaded on first query)"
    ok = checks["store"] == "ok"
    body = Health(status="ready" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@metrics_router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
    summary="Prometheus metrics",
)
def metrics(state: StateDep) -> Response:
    """Request counts, latencies and encoder batch sizes in Prometheus text format."""
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
