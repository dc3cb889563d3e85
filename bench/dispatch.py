"""Dispatch cost per offer: 1,000 callers waiting, with 20, 200 and 2,000 agents.

Each round makes one offer (``Line.dispatch``: one EVALSHA), and takes it back
(``Line.take_back``) so that the line stays the same size for the next round. The
cost must not grow with the number of agents: choosing an agent reads the head of
a sorted set per tier level, never the agents one by one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

from redis.asyncio import Redis

from service.core.queues import Agent, Membership, Queue
from service.runtime.agents import Agents
from service.runtime.line import Line
from service.runtime.redis_server import redis_url_or_embedded
from service.runtime.store import connect

CALLERS = 1_000
ROUNDS = 2_000


class Clock:
    """The line's clock, moved by hand while the callers join."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def measure(redis: Redis, agents_count: int, strategy: str) -> tuple[float, float]:
    """(ms per offer, Redis commands run per offer) for one line of that size."""
    channel = uuid.uuid4().hex
    name = f"bench-{uuid.uuid4().hex[:8]}"
    clock = Clock(time.time() - CALLERS)
    line = Line(redis, channel_id=channel, clock=clock)
    agents = Agents(redis, channel_id=channel)
    await line.configure({name: Queue(name=name, strategy=strategy)})  # type: ignore[arg-type]
    for index in range(agents_count):
        level = 1 + index % 3
        member = {name: Membership(level=level, position=index + 1)}
        agent = Agent(id=f"{name}-a{index}", name=f"a{index}", address=f"+3161{index:07d}",
                      queues=member)  # fmt: skip
        await agents.put(agent, status="available")
    for index in range(CALLERS):  # a second apart, in three priorities
        await line.ask(f"{name}-c{index}", name, index % 3)
        clock.now += 1
    await redis.config_resetstat()
    started = time.perf_counter()
    for _ in range(ROUNDS):
        offer = await line.dispatch(name)
        assert offer is not None
        await line.take_back(offer.offer, drop_caller=False)
    elapsed = time.perf_counter() - started
    stats = await redis.info("commandstats")
    ran = sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info",))
    return elapsed / ROUNDS * 1000, ran / ROUNDS


async def run(redis_url: str) -> None:
    redis = connect(redis_url)
    print(f"dispatch: {CALLERS} callers waiting; each round one offer made and taken back")
    for strategy in ("longest-idle", "random"):
        for count in (20, 200, 2_000):
            ms, commands = await measure(redis, count, strategy)
            print(f"  {strategy:>12}, {count:>5} agents: {ms:.3f} ms per offer and take-back, "
                  f"2 round trips, {commands:.1f} Redis commands")  # fmt: skip
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    with redis_url_or_embedded(os.environ.get("REDIS_URL")) as url:
        asyncio.run(run(url))


if __name__ == "__main__":
    main()
