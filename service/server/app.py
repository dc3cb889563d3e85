"""The Starlette application: routes, and the resources they share.

``create_app`` takes everything from outside as arguments (settings, a Redis
client, the graphs, the transports to Bird and to lookups), so that tests and
the demo build the same app the service runs.

Routes: ``POST /webhooks/bird`` (Bird), ``GET /healthz``, ``GET /readyz``, and
behind the ``IVR_ADMIN_TOKEN`` bearer token: ``GET /admin/graphs``,
``POST /admin/graphs/reload``, ``POST /calls``, ``GET /agents``,
``GET|PUT|DELETE /agents/{id}``, ``PUT /agents/{id}/status``, ``GET /queues`` and
``GET /queues/{name}`` (docs/agents.md), ``GET /admin/calls`` and
``GET /admin/calls/{id}`` (docs/tracing.md). ``GET /metrics`` (Prometheus, no token:
counts only) is ``service.server.metrics``. The supervisor page, ``GET /admin/ui``,
and what only it reads, ``GET /admin/graphs/{id}/diagram.svg`` and ``GET
/admin/errors``, are ``service.server.ui``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from service.bird.commands import BirdCalls
from service.core.graph import GraphSet
from service.core.queues import Agent, AgentStatus
from service.runtime import errors, metrics
from service.runtime.agents import Agents
from service.runtime.board import Board
from service.runtime.calls import CallHandler
from service.runtime.line import Line
from service.runtime.lookups import fetcher
from service.runtime.ratelimit import RateLimiter
from service.runtime.registry import Registry
from service.runtime.settings import Settings
from service.runtime.store import CallStore
from service.runtime.timers import TimerLoop
from service.server import agents as agents_api
from service.server import calls as calls_api
from service.server import metrics as metrics_api
from service.server import openapi, outbound, ui, webhooks
from service.server import queues as queues_api
from service.server.auth import by_method, require_token

log = structlog.get_logger("app")


Direct = Callable[[Scope, Receive, Send], Coroutine[Any, Any, None]]


class App(Starlette):
    """The service's Starlette app, with the ``POST``s of ``direct`` (path: ASGI app)
    taken straight to their app: Bird's deliveries, nearly every request the service
    gets, skip the seven layers of Starlette's middleware and routing (together about
    6 % of a delivery's CPU time at saturation, py-spy). The app answers as its route
    would; the route stays, for the routing (its other methods: 405) and the schema."""

    def __init__(self, *, direct: dict[str, Direct], **options: Any) -> None:
        super().__init__(**options)
        self._direct = direct

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Coroutine[Any, Any, None]:
        """The request's coroutine: this is no coroutine of its own, that a request
        would go through again each time it resumes."""
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            direct = self._direct.get(scope["path"])
            if direct is not None and not self.debug:
                scope["app"] = self
                return direct(scope, receive, send)
        return super().__call__(scope, receive, send)


@dataclass
class Resources:
    settings: Settings
    registry: Registry
    handler: CallHandler | None = None
    agents: Agents | None = None
    line: Line | None = None


def create_app(
    settings: Settings,
    *,
    redis: Redis,
    graphs: GraphSet,
    graphs_dir: Path | None = None,
    bird_transport: httpx.AsyncBaseTransport | None = None,
    lookup_transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], float] = time.time,
    graph_clock: Callable[[], float] | None = None,
    store_alive: Callable[[], bool] | None = None,
    agents_seed: Sequence[tuple[Agent, AgentStatus]] = (),
) -> App:
    """``agents_seed``: agents to create at start-up (``IVR_AGENTS_FILE``, read by the
    caller so that a bad file stops the service before it starts)."""
    registry = Registry(redis, graphs, directory=graphs_dir, clock=clock)
    resources = Resources(settings=settings, registry=registry)

    def handler() -> CallHandler:
        if resources.handler is None:
            raise RuntimeError("the application has not started (lifespan not run)")
        return resources.handler

    def agents() -> Agents:
        if resources.agents is None:
            raise RuntimeError("the application has not started (lifespan not run)")
        return resources.agents

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        bird = BirdCalls.for_channel(
            base_url=settings.bird_api_url,
            access_key=settings.bird_access_key,
            workspace_id=settings.bird_workspace_id,
            channel_id=settings.bird_channel_id,
            transport=bird_transport,
            timeout=httpx.Timeout(settings.bird_timeout_s, connect=3.0),
            throttle=RateLimiter(
                redis, settings.bird_workspace_id, clock=clock, limits=settings.bird_limits_per_s
            ),
            observe=metrics.bird_request,
        )
        lookups = httpx.AsyncClient(transport=lookup_transport, follow_redirects=False)
        channel = settings.bird_channel_id
        resources.line = line = Line(redis, channel_id=channel, clock=clock)
        resources.agents = agents = Agents(redis, channel_id=channel, clock=clock)
        resources.handler = CallHandler(
            store=CallStore(
                redis, ended_ttl_s=settings.call_ttl_s, channel_id=settings.bird_channel_id
            ),
            redis=redis,
            bird=bird,
            registry=registry,
            fetch=fetcher(lookups),
            notification_url=settings.webhook_url,
            new_call_max_age_s=settings.new_call_max_age_s,
            clock=clock,
            graph_clock=graph_clock,
            line=line,
        )
        calls = resources.handler

        async def prepare_line() -> None:
            """Write the queues' settings for the line's scripts and seed the agents,
            as soon as Redis answers (the service starts without it: /readyz says)."""
            while True:
                try:
                    await line.configure(registry.queues)
                    for agent, status in agents_seed:
                        await calls.dispatch(await agents.put(agent, status=status))
                    return
                except (RedisError, OSError) as exc:
                    log.warning("line_not_prepared", error=str(exc), retry_in_s=2)
                    await asyncio.sleep(2)

        preparing = asyncio.create_task(prepare_line())
        refresher = asyncio.create_task(registry.keep_published())
        follower = asyncio.create_task(registry.follow())
        # IVR_GRAPHS_WATCH_S: reload a directory changed in place (a ConfigMap volume).
        watching = asyncio.create_task(registry.watch(settings.ivr_graphs_watch_s))
        # Any replica fires any call's due timer (service.runtime.timers).
        timers = TimerLoop(
            redis, resources.handler.fire_timer, channel_id=settings.bird_channel_id, clock=clock
        )
        timing = asyncio.create_task(timers.run())
        # This process's warnings and errors, to every replica's page (GET /admin/errors).
        flushing = asyncio.create_task(errors.RECENT.keep_flushing(redis, channel))
        log.info(
            "service_started",
            graphs={g.id: g.version for g in registry.current.graphs.values()},
            default_graph=registry.current.default,
            bird_api_url=settings.bird_api_url,
            webhook_url=settings.webhook_url,
            admin_api="on" if settings.ivr_admin_token else "off",
        )
        try:
            yield
        finally:
            preparing.cancel()
            refresher.cancel()
            follower.cancel()
            watching.cancel()
            timing.cancel()
            flushing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flushing  # its last flush
            await bird.aclose()
            await lookups.aclose()
            log.info("service_stopped")

    async def healthz(_: Request) -> Response:
        """Liveness: this process works. With an embedded Redis (a part of this
        process) that is down, it does not: 503, so that a supervisor restarts it."""
        if store_alive is not None and not store_alive():
            return JSONResponse(
                {"status": "failing", "reason": "the embedded Redis is not running"},
                status_code=503,
            )
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        checks: dict[str, str] = {}
        try:
            await redis.ping()
            checks["redis"] = "ok"
        except (RedisError, OSError) as exc:
            checks["redis"] = f"unreachable: {exc}"
        loaded = len(registry.current.graphs)
        checks["graphs"] = f"{loaded} loaded" if loaded else "none loaded"
        ready = checks["redis"] == "ok" and loaded > 0
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    async def list_graphs(_: Request) -> Response:
        return JSONResponse(registry.describe())

    async def reload_graphs(_: Request) -> Response:
        try:
            result = await registry.reload()
            if result.ok and resources.line is not None:
                await resources.line.configure(registry.queues)
        except (RedisError, OSError) as exc:
            log.warning("graphs_not_reloaded", error=str(exc))
            reason = "Redis does not answer: the graphs were not reloaded everywhere; try again"
            return JSONResponse({"error": "unavailable", "reason": reason}, status_code=503)
        body = {
            "reloaded": result.ok,
            "changed": {k: {"from": a, "to": b} for k, (a, b) in result.changed.items()},
            "problems": [str(p) for p in result.problems],
            "versions": {g.id: g.version for g in registry.current.graphs.values()},
        }
        return JSONResponse(body, status_code=200 if result.ok else 422)

    token = settings.ivr_admin_token
    agent_api = agents_api.make_endpoints(agents, handler, registry)
    agent_endpoint = by_method(
        get=agent_api.get_agent, put=agent_api.put_agent, delete=agent_api.delete_agent
    )
    list_calls, get_call = calls_api.make_endpoints(redis, settings, clock)
    queue_api = queues_api.make_endpoints(Board(redis, clock=clock), registry, clock)
    webhook = webhooks.BirdWebhook(settings, handler, clock)
    app = App(
        direct={webhooks.PATH: webhook},
        routes=[
            Route(webhooks.PATH, webhook.endpoint, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/openapi.json", openapi.make_endpoint(), methods=["GET"]),
            Route(
                "/metrics",
                metrics_api.make_endpoint(settings, redis, registry, clock),
                methods=["GET"],
            ),
            Route("/admin/graphs", require_token(token, list_graphs), methods=["GET"]),
            Route("/admin/graphs/reload", require_token(token, reload_graphs), methods=["POST"]),
            Route(
                "/calls",
                require_token(
                    token,
                    outbound.make_endpoint(
                        handler, lambda: registry, clock, settings.max_body_bytes
                    ),
                ),
                methods=["POST"],
            ),
            Route("/agents", require_token(token, agent_api.list_agents), methods=["GET"]),
            Route(
                "/agents/{agent_id}",
                require_token(token, agent_endpoint),
                methods=["GET", "PUT", "DELETE"],
            ),
            Route(
                "/agents/{agent_id}/status",
                require_token(token, agent_api.set_status),
                methods=["PUT"],
            ),
            Route("/queues", require_token(token, queue_api.list_queues), methods=["GET"]),
            Route("/queues/{name}", require_token(token, queue_api.get_queue), methods=["GET"]),
            Route("/admin/calls", require_token(token, list_calls), methods=["GET"]),
            Route("/admin/calls/{call_id}", require_token(token, get_call), methods=["GET"]),
            *ui.routes(token, redis, registry, settings.bird_channel_id, clock),
        ],
        lifespan=lifespan,
    )
    app.state.registry = registry
    return app
