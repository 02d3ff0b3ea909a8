"""Prometheus metrics of one app: request counts, latencies and encoder batch sizes."""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """The metrics of one app, kept in their own registry (never the process-global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.route_templates: dict[int, str] = {}
        """Full path template by ``id(route)``, for routes included under a prefix."""
        self.requests = Counter(
            "embedstore_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "embedstore_http_request_duration_seconds",
            "Time from request start to the end of the response, by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "embedstore_encode_batch_size",
            "Queries embedded together in one encoder call, by encoder and modality.",
            ["encoder", "modality"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.encode_seconds = Histogram(
            "embedstore_encode_batch_duration_seconds",
            "Time of one batched encoder call, by encoder and modality.",
            ["encoder", "modality"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._add_search_metrics()

    def _add_search_metrics(self) -> None:
        self.search_batch_size = Histogram(
            "embedstore_search_batch_size",
            "Queries searched together in one index call.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.search_seconds = Histogram(
            "embedstore_search_batch_duration_seconds",
            "Time of one batched index search (FAISS plus catalog rows).",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def add_routes(self, routes: list[Any], prefix: str = "") -> None:
        """Remember the full path template of routes a router mounts under ``prefix``."""
        for route in routes:
            path = getattr(route, "path", None)
            if path is not None:
                self.route_templates[id(route)] = prefix + path

    def template(self, route: Any) -> str:
        """The path template a request matched (``<unmatched>`` for 404s of unknown paths)."""
        if route is None:
            return "<unmatched>"
        return self.route_templates.get(id(route)) or getattr(route, "path", None) or "<unmatched>"

    def observe_batch(self, key: tuple[str, str], size: int, seconds: float) -> None:
        """Record one batched encoder call (``key`` is ``(encoder, modality)``)."""
        self.batch_size.labels(*key).observe(size)
        self.encode_seconds.labels(*key).observe(seconds)

    def observe_search(self, key: object, size: int, seconds: float) -> None:
        """Record one batched index search."""
        self.search_batch_size.observe(size)
        self.search_seconds.observe(seconds)

    def render(self) -> bytes:
        """The registry in Prometheus text exposition format."""
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Count every HTTP request and time it, labelled by the matched route template."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            template = self.metrics.template(scope.get("route"))
            method = scope.get("method", "")
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.latency.labels(method, template).observe(time.perf_counter() - start)
