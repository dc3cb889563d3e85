"""The load bench's floor app (``bench/load.py``): what a webhook costs at the least on
the service's server stack, measured the same way as ``ivr serve``.

For every delivery to ``POST /webhooks/bird`` it verifies the HMAC signature
(``service.bird.signature``, over ``PUBLIC_BASE_URL``'s URL), makes one Redis round
trip (``SET`` of the call's last status), sends Bird the command the service would
send for that delivery of the bench's script, if any (one httpx ``POST``, awaited
before answering, as the service does), and answers ``204``. No graph, no state
machine, no logging, no metrics. ``GET /readyz`` answers 200.

Served by :func:`service.runtime.serving.serve` (uvicorn with the service's flags and
HTTP protocol) on the event loop ``ivr serve`` runs on, in its own process, like the
worker::

    python -m bench.load_floor --host 127.0.0.1 --port 8090

with ``BIRD_SIGNING_KEY``, ``PUBLIC_BASE_URL``, ``BIRD_API_URL``, ``BIRD_ACCESS_KEY``,
``BIRD_WORKSPACE_ID``, ``BIRD_CHANNEL_ID`` and ``REDIS_URL`` in the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from typing import Any

import httpx
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from service.bird import signature
from service.runtime import serving
from service.runtime.serving import bind, serve

WELCOME = "Thanks for calling."
MENU = "For sales press 1."
AGENT = "+31201110001"
KEPT_S = 90_000
MAX_AGE_S = 90_000.0


def command_for(payload: dict[str, Any], webhook_url: str) -> tuple[str, dict[str, Any] | None]:
    """The command the service sends Bird for this delivery of the bench's call ("":
    none): the load line's graph (welcome, a one-key menu, a transfer) by hand."""
    if payload.get("parentId"):
        return "", None
    command = payload.get("command")
    if command is None:
        status = payload.get("status")
        if status == "starting":
            return "answer", None
        if status == "ongoing":
            return "say", {"text": WELCOME, "locale": "en-US"}
        return "", None
    if command.get("status") != "completed":
        return "", None
    if command.get("command") == "say":
        prompt = {"text": MENU, "locale": "en-US"}
        return "gather", {"maxNumKeys": 1, "timeout": 5, "input": "dtmf", "say": prompt}
    result = command.get("result") or {}
    if command.get("command") == "gather" and result.get("keys") == "1":
        body = {
            "to": AGENT,
            "ringTimeout": 30,
            "hangupAfterBridge": True,
            "notification": {"url": webhook_url},
        }
        return "bridge", body
    return "", None


def create_floor_app(
    *, signing_key: str, public_base_url: str, redis: Redis, bird: httpx.AsyncClient
) -> Starlette:
    webhook_url = public_base_url + "/webhooks/bird"

    async def webhook(request: Request) -> Response:
        body = await request.body()
        query = request.url.query
        try:
            signature.verify(
                signing_key=signing_key,
                signature=request.headers.get(signature.SIGNATURE_HEADER),
                timestamp=request.headers.get(signature.TIMESTAMP_HEADER),
                url=public_base_url + request.url.path + (f"?{query}" if query else ""),
                body=body,
                now=time.time(),
                max_age_s=MAX_AGE_S,
            )
        except signature.SignatureError as exc:
            return JSONResponse({"error": "unauthorized", "reason": exc.reason}, status_code=401)
        payload = json.loads(body)["payload"]
        call_id = payload.get("parentId") or payload["id"]
        name, options = command_for(payload, webhook_url)
        state = json.dumps({"status": payload.get("status"), "did": name})
        await redis.set(f"floor:call:{call_id}", state, ex=KEPT_S)
        if name:
            answer = await bird.post(f"/{call_id}/{name}", json=options)
            answer.raise_for_status()
        return Response(status_code=204)

    async def ready(request: Request) -> Response:
        return Response(status_code=200)

    routes = [
        Route("/webhooks/bird", webhook, methods=["POST"]),
        Route("/readyz", ready, methods=["GET"]),
    ]
    return Starlette(routes=routes)


async def run(host: str, port: int) -> None:
    env = os.environ
    redis = Redis.from_url(env["REDIS_URL"])
    calls = f"/workspaces/{env['BIRD_WORKSPACE_ID']}/channels/{env['BIRD_CHANNEL_ID']}/calls"
    bird = httpx.AsyncClient(
        base_url=env["BIRD_API_URL"] + calls,
        headers={"Authorization": f"AccessKey {env['BIRD_ACCESS_KEY']}"},
        timeout=httpx.Timeout(10.0, connect=3.0),
    )
    app = create_floor_app(
        signing_key=env["BIRD_SIGNING_KEY"],
        public_base_url=env["PUBLIC_BASE_URL"],
        redis=redis,
        bird=bird,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with serve(app, sock=bind(host, port)):
            await stop.wait()
    finally:
        await bird.aclose()
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    # The same event loop as `ivr serve` (uvloop's when the service runs on it).
    run_like_the_service = getattr(serving, "run", asyncio.run)
    run_like_the_service(run(args.host, args.port))


if __name__ == "__main__":
    main()
