"""``GET /metrics``: the service's Prometheus metrics (``service.runtime.metrics``).

Served without the admin token, like ``/healthz``: it holds counts only, labelled by
graph, node, queue, command and outcome, never a phone number or a call id. The
gauges read from Redis (live calls, commands pending, timers due, callers waiting,
agents) are read here, asynchronously, when the scrape comes; counters and
histograms are this process's, or with ``PROMETHEUS_MULTIPROC_DIR`` every worker
process's, added up. The answer is in Prometheus' text format, or OpenMetrics when
the scraper asks for it (``Accept``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from prometheus_client.exposition import choose_encoder
from redis.asyncio import Redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from service.runtime import metrics
from service.runtime.registry import Registry
from service.runtime.settings import Settings


def make_endpoint(
    settings: Settings,
    redis: Redis,
    registry: Registry,
    clock: Callable[[], float] = time.time,
) -> Callable[[Request], Awaitable[Response]]:
    async def metrics_endpoint(request: Request) -> Response:
        state = await metrics.read_state(
            redis, channel_id=settings.bird_channel_id, queues=registry.queues, clock=clock
        )
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        scrape = metrics.registry_for(state, settings.prometheus_multiproc_dir)
        # Rendering reads the worker processes' files in multiprocess mode: off the loop.
        body = await run_in_threadpool(encoder, scrape)
        return Response(body, headers={"Content-Type": content_type})

    return metrics_endpoint
