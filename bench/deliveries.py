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
    before = int((await redis.info("stats"))["total_commands_processed"])
    started = time.perf_counter()
    for batch in batches:
        for delivery in batch:
            await handler.handle(delivery)
    elapsed = time.perf_counter() - started
    after = int((await redis.info("stats"))["total_commands_processed"])
    total = calls * len(batches[0])
    print(f"deliveries: {total / elapsed:,.0f}/s sequential, one worker "
          f"({elapsed / total * 1e3:.2f} ms each); "
          f"{(after - before - 1) / total:.2f} Redis commands per delivery "
          "(2 round trips: HMGET, then EVALSHA running HGET, HSET, EXPIRE)")  # fmt: skip
    await bird_calls.aclose()
    await redis.aclose()


def main(calls: int = 500) -> None:
    logs.configure(quiet=True)
    with redis_url_or_embedded(os.environ.get("REDIS_URL")) as url:
        asyncio.run(run(url, calls))


if __name__ == "__main__":
    main()
