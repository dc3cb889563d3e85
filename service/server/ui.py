"""The supervisor page, and the two endpoints only it needs.

* ``GET /admin/ui`` (with ``/admin/ui/app.js`` and ``/admin/ui/app.css``): a static page,
  no build step and nothing fetched from elsewhere (the files are package data of
  ``service.server``, under ``ui/``). It holds no data, so it is served without the
  token: it asks for the admin token, keeps it in the tab's ``sessionStorage`` and calls
  the JSON API with it (``Authorization: Bearer``), every two seconds: ``GET
  /admin/calls`` (and a chosen call's ``GET /admin/calls/{id}``), ``GET /queues``, ``GET
  /agents``, ``GET /admin/graphs`` with each graph's diagram, and ``GET /admin/errors``.
* ``GET /admin/graphs/{graph_id}/diagram.svg?traffic=today|all|none`` (token): the
  version of the graph served now as SVG (``service.graphs.render.svg``), with its
  traffic counts of today (UTC, the default), of all time, or none. 404 for a graph not
  served, 400 for another ``traffic``, 503 while Redis is unreachable.
* ``GET /admin/errors`` (token): the latest warning and error log lines of every replica
  (``service.runtime.errors``), newest first, at most 100.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.core.traffic import NodeTraffic
from service.graphs import render
from service.runtime import errors, traffic
from service.runtime.line import today
from service.runtime.registry import Registry
from service.server.auth import Endpoint, require_token
from service.server.unavailable import store_failed

log = structlog.get_logger("ui")

TRAFFIC_CHOICES = ("today", "all", "none")

# The page runs only its own script and style, reads only this service, and draws
# diagrams from blob: URLs (fetched with the token, shown as images); its icon is empty
# (a data: URL), so that the browser asks for no /favicon.ico.
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# A diagram opened on its own: its inline style, nothing else.
SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
}


def asset(name: str) -> bytes:
    """One file of the page, as installed with the package."""
    return (resources.files("service.server") / "ui" / name).read_bytes()


def _static(name: str) -> Endpoint:
    """An endpoint answering one file of the page (read once, here)."""
    body, media_type = asset(name), ASSETS[name]

    async def serve(_: Request) -> Response:
        return Response(body, media_type=media_type, headers=PAGE_HEADERS)

    return serve


def _unavailable(what: str, exc: Exception) -> Response:
    return store_failed(exc, event="ui_api_failed", store="the call store", what=what)


def routes(
    token: str | None,
    redis: Redis,
    registry: Registry,
    channel_id: str,
    clock: Callable[[], float],
) -> list[Route]:
    """The page's routes: the page and its files (no token), the diagrams and the
    recent errors (behind ``token``)."""

    async def diagram(request: Request) -> Response:
        graph_id = str(request.path_params["graph_id"])
        choice = request.query_params.get("traffic", "today")
        if choice not in TRAFFIC_CHOICES:
            reason = f"traffic is one of {', '.join(TRAFFIC_CHOICES)}, not {choice!r}"
            return JSONResponse({"error": "bad_request", "reason": reason}, status_code=400)
        graph = registry.current.graphs.get(graph_id)
        if graph is None:
            served = ", ".join(sorted(registry.current.graphs)) or "none"
            reason = f"no graph {graph_id!r} is served (served: {served})"
            return JSONResponse({"error": "not_found", "reason": reason}, status_code=404)
        counts: dict[str, NodeTraffic] | None = None
        caption = f"{graph.id} · version {graph.version}"
        try:
            if choice == "today":
                day = today(clock())
                counts = await traffic.read_traffic_day(redis, graph.id, graph.version, day)
                caption += f" · today ({day}, UTC): {_calls(graph.start, counts)}"
            elif choice == "all":
                counts = await traffic.read_traffic(redis, graph.id, graph.version)
                caption += f" · all time: {_calls(graph.start, counts)}"
        except (RedisError, OSError) as exc:
            return _unavailable("diagram", exc)
        return Response(
            render.svg(graph, counts, caption=caption),
            media_type="image/svg+xml",
            headers={
                "Content-Security-Policy": SVG_POLICY,
                "X-Content-Type-Options": "nosniff",
                "Cache-Control": "no-store",
            },
        )

    async def recent_errors(_: Request) -> Response:
        try:
            found = await errors.read_recent_errors(redis, channel_id, errors.SHOWN)
        except (RedisError, OSError) as exc:
            return _unavailable("errors", exc)
        return JSONResponse({"errors": found})

    return [
        Route("/admin/ui", _static("index.html"), methods=["GET"]),
        Route("/admin/ui/app.js", _static("app.js"), methods=["GET"]),
        Route("/admin/ui/app.css", _static("app.css"), methods=["GET"]),
        Route(
            "/admin/graphs/{graph_id}/diagram.svg",
            require_token(token, diagram),
            methods=["GET"],
        ),
        Route("/admin/errors", require_token(token, recent_errors), methods=["GET"]),
    ]


def _calls(start: str, counts: dict[str, NodeTraffic]) -> str:
    """How many calls the counts are of (those that entered the start node)."""
    entered = counts[start].entered if start in counts else 0
    return f"{entered} call" if entered == 1 else f"{entered} calls"
