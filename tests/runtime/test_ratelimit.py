"""Bird's per-workspace limits shared by replicas through a real Redis."""

from __future__ import annotations

import uuid

from redis.asyncio import Redis

from service.runtime.ratelimit import SHARE, RateLimiter


class Time:
    """A clock that only moves when someone sleeps."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


async def test_replicas_share_the_workspaces_limit_and_wait_for_the_next_second(
    redis: Redis,
) -> None:
    time = Time(1_000_000.25)
    workspace = str(uuid.uuid4())
    replicas = [
        RateLimiter(redis, workspace, clock=time, sleep=time.sleep, limits={"POST": 10})
        for _ in range(2)
    ]
    seconds = []
    for index in range(20):
        await replicas[index % 2]("POST")
        seconds.append(int(time.now))
    per_second = {s: seconds.count(s) for s in sorted(set(seconds))}
    assert list(per_second.values()) == [int(10 * SHARE)] * 2 + [20 - 2 * int(10 * SHARE)]
    assert sum(r.waited for r in replicas) >= 2


async def test_methods_and_workspaces_are_counted_apart(redis: Redis) -> None:
    time = Time(2_000_000.5)
    limits = {"POST": 2, "GET": 2}
    one, two = (
        RateLimiter(redis, str(uuid.uuid4()), clock=time, sleep=time.sleep, limits=limits)
        for _ in range(2)
    )
    for limiter in (one, two):
        await limiter("POST")
        await limiter("GET")
    assert time.now == 2_000_000.5  # nobody waited
    await one("DELETE")  # no limit known for it: goes at once


async def test_without_redis_the_request_goes() -> None:
    gone = Redis.from_url("redis://127.0.0.1:1", socket_connect_timeout=0.2)
    limiter = RateLimiter(gone, "w", limits={"POST": 1})
    await limiter("POST")
    await gone.aclose()


async def test_a_replica_takes_requests_in_blocks_and_replicas_never_pass_the_limit(
    redis: Redis,
) -> None:
    time = Time(3_000_000.0)
    workspace = str(uuid.uuid4())
    limits = {"POST": 500}  # Bird's: 450 a second for this service, blocks of 22
    replicas = [
        RateLimiter(redis, workspace, clock=time, sleep=time.sleep, limits=limits) for _ in range(3)
    ]
    sent: dict[int, int] = {}
    for index in range(1000):
        await replicas[index % 3]("POST")
        sent[int(time.now)] = sent.get(int(time.now), 0) + 1
    # Every second stays within the limit; none is short by more than a block a replica.
    assert all(n <= int(500 * SHARE) for n in sent.values()), sent
    full = list(sent.values())[:-1]
    assert all(n >= int(500 * SHARE) - 3 * 22 for n in full), sent
    # A block a time: about one question to Redis per 22 requests, not one per request.
    asked = sum(r.asked for r in replicas)
    assert asked <= 1000 / 22 + 3 * len(sent) + 3, asked
