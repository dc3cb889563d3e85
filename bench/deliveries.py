"""Deliveries per second through CallHandler, with a real Redis and an in-process Bird."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

from service.bird.deliveries import Delivery, parse_delivery
from service.graphs.loader import load_directory
from service.runtime import logs
from service.runtime.redis_server import redis_url_or_embedded
from service.runtime.store import connect
from tests.support import RecordingBird, call_delivery, handler_for, recording_bird_calls


def deliveries_for(call_id: str, t0: float) -> list[Delivery]:
    def command(name: str, at: float, **result: str) -> Delivery:
        outcome = {"id": str(uuid.uuid4()), "command": name, "status": "completed"}
        body = call_delivery(call_id, "ongoing", updated=at, command={**outcome, "result": result})
        return parse_delivery(body)

    return [
        parse_delivery(call_delivery(call_id, "starting", updated=t0)),
        parse_delivery(call_delivery(call_id, "ongoing", updated=t0 + 1)),
        command("say", t0 + 2),
        command("gather", t0 + 3, keys="1"),
        parse_delivery(call_delivery(call_id, "completed", updated=t0 + 4, hangupSource="caller")),
    ]


async def run(redis_url: str, calls: int) -> None:
    redis = connect(redis_url)
    bird = RecordingBird()
    bird_calls = recording_bird_calls(bird)
    graphs = load_directory(Path("ivr_graphs"), "support-line")
    handler = handler_for(redis, bird_calls, graphs)
    t0 = time.time()
    batches = [deliveries_for(str(uuid.uuid4()), t0) for _ in range(calls)]
    await redis.config_resetstat()
    started = time.perf_counter()
    for batch in batches:
        for delivery in batch:
            await handler.handle(delivery)
    elapsed = time.perf_counter() - started
    stats = await redis.info("commandstats")
    total = calls * len(batches[0])
    # Commands run inside a script count in commandstats too: the round trips are
    # the commands the client sent (HMGET to load, EVALSHA to commit or acknowledge).
    sent = {name: int(stats.get(f"cmdstat_{name}", {}).get("calls", 0))
            for name in ("hmget", "evalsha", "get", "set")}  # fmt: skip
    commands = sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")
    print(f"deliveries: {total / elapsed:,.0f}/s sequential, one worker "
          f"({elapsed / total * 1e3:.2f} ms each); "
          f"{sum(sent.values()) / total:.2f} Redis round trips and "
          f"{commands / total:.2f} Redis commands per delivery ({sent})")  # fmt: skip
    await bird_calls.aclose()
    await redis.aclose()


def main(calls: int = 500) -> None:
    logs.configure(quiet=True)
    with redis_url_or_embedded(os.environ.get("REDIS_URL")) as url:
        asyncio.run(run(url, calls))


if __name__ == "__main__":
    main()
