"""The Starlette application: routes, and the resources they share.

``create_app`` takes everything from outside as arguments (settings, a Redis
client, the graphs, the transport to Bird), so that tests and the demo build the
same app the service runs.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import httpx
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from service import webhooks
from service.bird.client import BirdClient
from service.calls import CallHandler
from service.graphs import GraphSet
from service.settings import Settings
from service.store import CallStore

log = structlog.get_logger("app")


@dataclass
class Resources:
    settings: Settings
    redis: Redis
    graphs: GraphSet
    client: BirdClient | None = None
    handler: CallHandler | None = None


def create_app(
    settings: Settings,
    *,
    redis: Redis,
    graphs: GraphSet,
    bird_transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    resources = Resources(settings=settings, redis=redis, graphs=graphs)

    def handler() -> CallHandler:
        if resources.handler is None:
            raise RuntimeError("the application has not started (lifespan not run)")
        return resources.handler

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        client = BirdClient(
            base_url=settings.bird_api_url,
            access_key=settings.bird_access_key,
            workspace_id=settings.bird_workspace_id,
            channel_id=settings.bird_channel_id,
            transport=bird_transport,
            timeout=httpx.Timeout(settings.bird_timeout_s, connect=3.0),
        )
        resources.client = client
        resources.handler = CallHandler(
            store=CallStore(redis, ended_ttl_s=settings.call_ttl_s),
            client=client,
            graphs=lambda: resources.graphs,
            notification_url=settings.webhook_url,
            new_call_max_age_s=settings.new_call_max_age_s,
            clock=clock,
        )
        log.info(
            "service_started", graphs=sorted(graphs.graphs), default_graph=graphs.default,
            bird_api_url=settings.bird_api_url, webhook_url=settings.webhook_url,
        )  # fmt: skip
        try:
            yield
        finally:
            await client.aclose()
            log.info("service_stopped")

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            await redis.ping()
            checks["redis"] = "ok"
        except (RedisError, OSError) as exc:
            checks["redis"] = f"unreachable: {exc}"
        checks["graphs"] = (
            f"{len(resources.graphs.graphs)} loaded" if resources.graphs.graphs else "none"
        )
        ready = checks["redis"] == "ok" and bool(resources.graphs.graphs)
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    webhook = webhooks.make_endpoint(settings, handler, clock)
    return Starlette(
        routes=[
            Route("/webhooks/bird", webhook, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
