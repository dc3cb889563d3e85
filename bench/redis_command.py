"""CPU time of the service's Redis client per command, on one Redis server.

The client is the service's own (``service.runtime.redis_client.connect``: its waiting
pool, timeouts and retries), against a real ``redis-server`` (embedded, on a Unix socket,
unless ``REDIS_URL`` is set), on the event loop ``ivr serve`` runs (uvloop when
installed). It issues the two commands of a webhook delivery's hot path, as
``CallStore`` issues them: ``EVALSHA`` of a small Lua script (``CallStore._run``) and
``HMGET`` of a call's hash (``CallStore.load_call``), each ``--commands`` times, by 1 and
by 16 workers at once (``asyncio.gather``), and prints the CPU time this process spent
(``time.process_time``: redis-server's own CPU is not counted) per command, in
microseconds: the median and the lowest of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence

from redis.asyncio import Redis

from service.runtime import serving
from service.runtime.redis_client import connect
from service.runtime.redis_server import redis_url_or_embedded

COMMANDS = 20_000
CONCURRENCY = (1, 16)
REPEAT = 5

# A call's hash, read back and changed: about what the store's scripts do, smaller.
SCRIPT = """
local version = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
redis.call('HSET', KEYS[1], 'v', version + 1, 'doc', ARGV[1])
return version + 1
"""

Command = Callable[[int], Awaitable[object]]


def commands(redis: Redis, sha: str, prefix: str) -> dict[str, Command]:
    """Each command of the bench, given the index of its worker (its own key)."""

    def evalsha(worker: int) -> Awaitable[object]:
        return redis.evalsha(sha, 1, f"{prefix}:{worker}", "doc")

    def hmget(worker: int) -> Awaitable[object]:
        return redis.hmget(f"{prefix}:{worker}", ["v", "doc", "cmd", "p"])

    return {"EVALSHA": evalsha, "HMGET": hmget}


async def cpu_per_command(command: Command, count: int, concurrency: int) -> float:
    """CPU seconds this process spends per command, ``count`` commands by
    ``concurrency`` workers at once."""
    each = count // concurrency

    async def worker(index: int) -> None:
        for _ in range(each):
            await command(index)

    started = time.process_time()
    await asyncio.gather(*(worker(index) for index in range(concurrency)))
    return (time.process_time() - started) / (each * concurrency)


async def run(url: str, count: int, concurrency: Sequence[int], repeat: int) -> None:
    redis = connect(url)
    prefix = f"bench:redis-command:{uuid.uuid4().hex}"
    sha = str(await redis.script_load(SCRIPT))
    runs = commands(redis, sha, prefix)
    for command in runs.values():  # warm up: connections made, code paths hot
        await cpu_per_command(command, min(count, 2_000), max(concurrency))
    loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
    print(f"redis command: CPU µs per command ({count:,} commands a run, median / lowest "
          f"of {repeat} runs; {loop} loop)")  # fmt: skip
    for name, command in runs.items():
        for workers in concurrency:
            figures = [await cpu_per_command(command, count, workers) for _ in range(repeat)]
            median, lowest = statistics.median(figures) * 1e6, min(figures) * 1e6
            print(f"  {name:>7}, concurrency {workers:>2}: {median:6.1f} µs  ({lowest:.1f})")
    await redis.delete(*(f"{prefix}:{worker}" for worker in range(max(concurrency))))
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commands", type=int, default=COMMANDS, help="commands a run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=list(CONCURRENCY),
                        help="workers issuing commands at once (one run each)")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=REPEAT, help="runs of each")
    args = parser.parse_args()
    with redis_url_or_embedded(os.environ.get("REDIS_URL")) as url:
        serving.run(run(url, args.commands, args.concurrency, args.repeat))


if __name__ == "__main__":
    main()
