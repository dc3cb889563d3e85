"""The app's own health endpoints, over real HTTP on loopback."""

from __future__ import annotations

import httpx
from redis.asyncio import Redis

from service.graphs.loader import load_directory
from service.runtime.serving import bind, serve, url_of
from service.server.app import create_app
from tests.paths import SHIPPED_GRAPHS
from tests.support import settings

GRAPHS = load_directory(SHIPPED_GRAPHS, "support-line")


async def test_health_fails_while_the_embedded_redis_is_down(redis: Redis) -> None:
    alive = [True]
    sock = bind()
    app = create_app(settings(url_of(sock)), redis=redis, graphs=GRAPHS,
                     store_alive=lambda: alive[0])  # fmt: skip
    async with serve(app, sock=sock) as running, httpx.AsyncClient(base_url=running.url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        alive[0] = False
        down = await http.get("/healthz")
        alive[0] = True
        again = await http.get("/healthz")
    assert down.status_code == 503
    assert down.json()["reason"] == "the embedded Redis is not running"
    assert again.status_code == 200


async def test_health_with_an_external_redis_is_about_this_process_only(redis: Redis) -> None:
    sock = bind()
    app = create_app(settings(url_of(sock)), redis=redis, graphs=GRAPHS)
    async with serve(app, sock=sock) as running, httpx.AsyncClient(base_url=running.url) as http:
        health, ready = await http.get("/healthz"), await http.get("/readyz")
    assert health.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"redis": "ok", "graphs": "2 loaded"}}
