"""The load bench (issue 12, ``make load``): one ``ivr serve`` worker driven by N
concurrent scripted calls, and a floor app measured the same way in the same run.

This process holds a load generator and a minimal fast fake Bird
(:mod:`bench.load_bird`: raw asyncio protocols, keep-alive both ways, uvloop when
installed). It starts:

- a real Redis: ``EmbeddedRedis`` (a ``redis-server`` child of this process), or
  ``REDIS_URL`` when set;
- **the worker**: ``python -m service serve`` (the ``ivr serve`` CLI) as its own process,
  with ``REDIS_URL``, ``BIRD_API_URL`` = the fake Bird, ``PUBLIC_BASE_URL`` = its own
  URL, the bench's line in a temporary ``IVR_GRAPHS_DIR`` (welcome, a one-key menu, a
  transfer to an agent), ``LOG_FORMAT=json`` at ``info`` to a file;
- then, the worker stopped, **the floor app** (:mod:`bench.load_floor`: verify the HMAC,
  one Redis round trip, one httpx POST to Bird where the service sends a command, answer
  204) on the same server stack, as its own process, driven the same way.

On a machine of two cores or more the app under test is pinned to core 0 and this
process (with the embedded Redis, its child) to the others.

For each level of live calls (``--levels``, default 50, 200, 500, 1000, 2000) N call
slots each play calls back to back (:class:`bench.load_bird.Pace`: a ``--call-s`` call,
most of it the agent talking), their first calls started evenly over one call length
(the ramp), so that N calls are live from then on; the figures are taken over the
``--duration`` that follows; then no new call starts and the live ones play out (the
drain, up to ``drain_s`` past one call length; a call still running then is cut and
counted as not played out). Calls that did not play out are hung up by their callers
before the next level, and the app is let settle (idle) between phases. Then a
closed-loop saturation run (``--saturation``: so many calls at once, back to back with
no pause at all) finds the most deliveries a second the app answers.

Figures, per app and level (all in :data:`DEFINITIONS`); ``--json FILE`` holds every
one, a table goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import resource
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from bench.load_bird import COMMANDS, DELIVERIES, ZERO_PACE, FakeBird, LoadCall, LoopLag, Pace
from bench.load_floor import AGENT, MENU, WELCOME
from service.runtime import keys
from service.runtime.redis_server import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
GRAPH_ID = "load-line"
NUMBER = "+31970000000"
# Bird's POST limit the worker is given (LoadRun.env): far above what it can send.
BIRD_POST_PER_S = 100_000
GRAPH: dict[str, Any] = {
    "id": GRAPH_ID,
    "description": "The load bench's line: open at any hour; welcome, a menu, a transfer.",
    "numbers": [NUMBER],
    "locale": "en-US",
    "start": "welcome",
    "nodes": {
        "welcome": {"type": "say", "say": WELCOME, "next": "menu"},
        "menu": {
            "type": "menu",
            "say": MENU,
            "options": {"1": "sales"},
            "timeout_s": 5,
            "on_failure": "goodbye",
        },
        "sales": {"type": "transfer", "to": AGENT, "ring_timeout_s": 30, "on_failure": "goodbye"},
        "goodbye": {"type": "hangup", "say": "Goodbye."},
    },
}

DEFINITIONS: dict[str, str] = {
    "live": "calls live (started, not ended) in the fake Bird, mean of samples over the window",
    "offered_per_s": "deliveries that became due (first attempts) in the window, per second",
    "answered_per_s": "delivery attempts answered 2xx in the window, per second",
    "http_503": "delivery attempts answered 503 in the window (Bird retries them)",
    "failures": "other delivery attempts in the window: another non-2xx status, no whole "
    "answer within 10 s, or a connection error",
    "w2c_ms": "webhook to command: from the moment a delivery that causes a command is due "
    "(retries included) to the arrival of that command at the fake Bird; p50 / p99 over "
    "the deliveries due in the window",
    "http_ms": "a delivery attempt's own HTTP latency (written to answered), p50 / p99",
    "cpu_ms_per_delivery": "the app process's CPU time (user + system, /proc/PID/stat) over "
    "the window, divided by the deliveries answered 2xx",
    "app_cpu_pct": "the app process's CPU time over the window, in % of one core",
    "redis_cmds_per_delivery": "Redis commands run (INFO commandstats: commands inside "
    "scripts included, the bench's own INFO left out) over the window, per delivery "
    "answered",
    "redis_round_trips_per_delivery": "request batches Redis read from its clients "
    "(INFO stats total_reads_processed: one per round trip, a pipeline or script call is "
    "one), the bench's own left out, per delivery answered",
    "redis_cpu_us_per_delivery": "Redis's CPU (INFO cpu) over the window per delivery",
    "nominal_per_s": "the deliveries a second N calls of the pace ask for when every delivery "
    "is answered at once (N * 11 / the call's length); each call waits for its deliveries' "
    "answers, so a slow app stretches the calls and gets fewer (offered_per_s)",
    "bytes_per_call": "Redis used_memory after the ramp (N calls live, none ended yet) less "
    "before it, divided by the calls started meanwhile; bytes_per_call_without_client_buffers "
    "leaves out the growth of the clients' buffers (INFO mem_clients_normal)",
    "call_keys": "the Redis keys of one call in the talking stage: MEMORY USAGE of each key "
    "whose name holds its id, and the bytes of its field in shared hashes",
    "loop_lag_ms": "the bench's own event loop: how late a 50 ms sleep wakes, p99 / max",
    "bench_cpu_pct": "the bench process's CPU (load generator and fake Bird) in % of a core",
    "redis_cpu_pct": "Redis's CPU (INFO cpu) in % of a core",
    "others_cpu_pct": "the CPU the machine spent on anything else (/proc/stat busy time less "
    "the app's, the bench's and Redis's), in % of a core: other programs disturbing the run",
    "pool_wait_ms": "p99 wait of a delivery for a free keep-alive connection of the pool",
}


# -- the apps under test ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class App:
    """An app under test as its own process: ``ivr`` (the worker) or ``floor``."""

    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log: Path
    cores: set[int] | None
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(  # noqa: S603 - our own CLI, fixed argv
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    async def start(self) -> None:
        self.process = self._spawn()
        if self.cores is not None:  # before it starts any worker, which inherit it
            with contextlib.suppress(OSError):
                os.sched_setaffinity(self.process.pid, self.cores)
        deadline = time.monotonic() + 60.0
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-20:])
                    raise RuntimeError(
                        f"{self.name} exited with {self.process.returncode}:\n{tail}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(self.url + "/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready within 60 s")

    def cpu_s(self) -> float:
        """The user + system CPU seconds so far of the process and of its live
        children (``ivr serve --workers N``'s workers), with what its children that
        ended had spent."""
        assert self.process is not None
        ticks = 0
        for pid in _tree(self.process.pid):
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])
                if pid == self.process.pid:
                    ticks += int(fields[13]) + int(fields[14])  # children waited for
        return ticks / os.sysconf("SC_CLK_TCK")

    def libraries(self) -> dict[str, bool]:
        """Whether uvloop's and httptools' native code is loaded in the process: the
        event loop and HTTP parser it may run on (/proc/PID/maps)."""
        assert self.process is not None
        maps = Path(f"/proc/{self.process.pid}/maps").read_text()
        return {"uvloop": "/uvloop/" in maps, "httptools": "/httptools/" in maps}

    def rss_bytes(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    async def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.process.wait, 15.0)
        except subprocess.TimeoutExpired:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)
        self.process = None


async def _cut(slots: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel the call slots and wait until they are gone."""
    for task in slots:
        task.cancel()
    await asyncio.gather(*slots, return_exceptions=True)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (/proc/PID/task/TID/children)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(child) for child in (task / "children").read_text().split()]
    return found


@dataclass(frozen=True)
class Wiring:
    redis_url: str
    bird_url: str
    workdir: Path
    signing_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    access_key: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    workspace_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    channel_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def env(self, port: int) -> dict[str, str]:
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("BIRD_", "IVR_", "REDIS_", "LOG_", "PUBLIC_", "WEBHOOK_"))
        }
        return {
            **inherited,
            "BIRD_ACCESS_KEY": self.access_key,
            "BIRD_WORKSPACE_ID": self.workspace_id,
            "BIRD_CHANNEL_ID": self.channel_id,
            "BIRD_SIGNING_KEY": self.signing_key,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "BIRD_API_URL": self.bird_url,
            "REDIS_URL": self.redis_url,
            "IVR_GRAPHS_DIR": str(self.workdir / "graphs"),
            "IVR_DEFAULT_GRAPH": GRAPH_ID,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "info",
            # The worker is measured, not Bird's limits: at Bird's documented 500 POST/s a
            # workspace takes at most 1,375 of this bench's deliveries a second (4 commands
            # in 11), and the service keeps to 90 % of it (1,237/s), short of one worker's
            # saturation. The floor app does not throttle at all.
            "BIRD_POST_PER_S": str(BIRD_POST_PER_S),
        }

    def app(self, name: str, port: int, cores: set[int] | None, workers: int = 1) -> App:
        module = "service" if name == "ivr" else "bench.load_floor"
        argv = [sys.executable, "-m", module]
        argv += ["serve"] if name == "ivr" else []
        argv += ["--host", "127.0.0.1", "--port", str(port)]
        if name == "ivr" and workers > 1:
            argv += ["--workers", str(workers)]
        return App(name, argv, self.env(port), port, self.workdir / f"{name}.log", cores)


# -- what Redis and the processes say -------------------------------------------------


@dataclass(frozen=True)
class RedisSnapshot:
    commands: Counter[str]
    reads: int
    writes: int
    used_memory: int
    client_memory: int
    clients: int
    cpu_s: float

    @property
    def total_commands(self) -> int:
        return sum(self.commands.values())


async def redis_snapshot(redis: Redis) -> RedisSnapshot:
    """One ``INFO all`` (the bench's only request in a window, left out of its figures)."""
    info = await redis.info("all")
    commands = Counter(
        {
            name.removeprefix("cmdstat_"): int(value["calls"])
            for name, value in info.items()
            if name.startswith("cmdstat_") and name != "cmdstat_info"
        }
    )
    return RedisSnapshot(
        commands=commands,
        reads=int(info.get("total_reads_processed", 0)),
        writes=int(info.get("total_writes_processed", 0)),
        used_memory=int(info["used_memory"]),
        client_memory=int(info.get("mem_clients_normal", 0)),
        clients=int(info.get("connected_clients", 0)),
        cpu_s=float(info["used_cpu_sys"]) + float(info["used_cpu_user"]),
    )


async def call_keys(redis: Redis, call_id: str, channel_id: str) -> dict[str, int]:
    """MEMORY USAGE of every key whose name holds ``call_id``, and the bytes of its
    field in the live-calls hash and its member in the timers set."""
    found: dict[str, int] = {}
    async for name in redis.scan_iter(match=f"*{call_id}*", count=5000):
        key = name.decode()
        found[key] = int(await redis.memory_usage(key, samples=0) or 0)
    live_field = await redis.hstrlen(keys.live_calls(channel_id), call_id)
    if live_field:
        found[f"{keys.live_calls(channel_id)} [{call_id} field value]"] = int(live_field)
    if await redis.zscore(keys.timers(channel_id), call_id) is not None:
        found[f"{keys.timers(channel_id)} [member]"] = len(call_id)
    return found


def log_warnings(path: Path, offset: int) -> tuple[dict[str, int], int]:
    """The app's warning and error log lines from ``offset`` on, counted by event and
    error (the worker logs JSON); and the offset of the log's end."""
    found: Counter[str] = Counter()
    with path.open("rb") as log:
        log.seek(offset)
        for line in log:
            if b'"level": "warning"' not in line and b'"level": "error"' not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            detail = entry.get("error") or entry.get("reason") or ""
            found[f"{entry.get('event')}: {str(detail)[:80]}".rstrip(": ")] += 1
        end = log.tell()
    return dict(found.most_common(10)), end


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def machine_busy_s() -> float:
    """CPU seconds all cores of the machine spent busy (not idle, not waiting on I/O)."""
    with contextlib.suppress(OSError):
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        ticks = [int(v) for v in fields]
        idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
        return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    return 0.0


def cpu_self_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- a level ---------------------------------------------------------------------------


@dataclass
class Window:
    start: float
    end: float
    redis0: RedisSnapshot
    redis1: RedisSnapshot
    app_cpu_s: float
    bench_cpu_s: float
    machine_busy_s: float
    live: list[int]

    @property
    def seconds(self) -> float:
        return self.end - self.start


def figures(
    calls: Iterable[LoadCall], window: Window, lags: list[float], bench_snapshots: int
) -> dict[str, Any]:
    """Every figure of a window (:data:`DEFINITIONS`)."""
    start, end = window.start, window.end
    due = answered = http_503 = 0
    failures: Counter[str] = Counter()
    w2c: list[float] = []
    http: list[float] = []
    waits: list[float] = []
    commands = 0
    for call in calls:
        for sent in call.sent:
            if start <= sent.due <= end:
                due += 1
                if sent.first_write:
                    waits.append(sent.first_write - sent.due)
                if sent.expects is not None and sent.command_at:
                    w2c.append(sent.command_at - sent.due)
            if sent.command_at and start <= sent.command_at <= end:
                commands += 1
            for written, done, status in sent.attempts:
                if not start <= done <= end:
                    continue
                if 200 <= status < 300:
                    answered += 1
                    http.append(done - written)
                elif status == 503:
                    http_503 += 1
                else:
                    failures[str(status) if status else "no answer"] += 1
    seconds = window.seconds
    delta = window.redis1.commands - window.redis0.commands
    per = max(answered, 1)
    # The end snapshot's INFO was read (and answered) within the window: the bench's.
    redis_cpu = window.redis1.cpu_s - window.redis0.cpu_s
    reads = window.redis1.reads - window.redis0.reads - bench_snapshots
    return {
        "window_s": round(seconds, 2),
        "live": round(statistics.fmean(window.live), 1) if window.live else 0,
        "offered_per_s": round(due / seconds, 1),
        "answered_per_s": round(answered / seconds, 1),
        "commands_per_s": round(commands / seconds, 1),
        "deliveries_answered": answered,
        "http_503": http_503,
        "failures": sum(failures.values()),
        "failure_kinds": dict(failures),
        "w2c_ms": {
            "p50": ms(percentile(w2c, 50)),
            "p99": ms(percentile(w2c, 99)),
            "max": ms(max(w2c, default=None)),
            "n": len(w2c),
        },
        "http_ms": {
            "p50": ms(percentile(http, 50)),
            "p99": ms(percentile(http, 99)),
            "max": ms(max(http, default=None)),
            "n": len(http),
        },
        "cpu_ms_per_delivery": round(window.app_cpu_s / per * 1000, 3),
        "app_cpu_pct": round(window.app_cpu_s / seconds * 100, 1),
        "redis_cmds_per_delivery": round(sum(delta.values()) / per, 2),
        "redis_commands": dict(delta.most_common()),
        "redis_round_trips_per_delivery": round(reads / per, 2),
        "redis_reply_writes_per_delivery": round(
            (window.redis1.writes - window.redis0.writes - bench_snapshots) / per, 2
        ),
        "redis_cpu_us_per_delivery": round(redis_cpu / per * 1e6, 1),
        "loop_lag_ms": {"p99": ms(percentile(lags, 99)), "max": ms(max(lags, default=None))},
        "bench_cpu_pct": round(window.bench_cpu_s / seconds * 100, 1),
        "redis_cpu_pct": round(redis_cpu / seconds * 100, 1),
        "others_cpu_pct": round(
            max(0.0, window.machine_busy_s - window.app_cpu_s - window.bench_cpu_s - redis_cpu)
            / seconds
            * 100,
            1,
        ),
        "pool_wait_ms": {"p99": ms(percentile(waits, 99)), "max": ms(max(waits, default=None))},
    }


def call_outcomes(calls: Sequence[LoadCall]) -> dict[str, Any]:
    """Whether every call of a level played out: its 11 deliveries taken, its 4 commands."""
    incomplete = [c for c in calls if not c.complete]
    reasons = Counter(c.failure or "unexpected requests or deliveries" for c in incomplete)
    return {
        "started": len(calls),
        "completed": len(calls) - len(incomplete),
        "incomplete": len(incomplete),
        "incomplete_reasons": dict(reasons),
        "deliveries_per_call": sorted({len(c.sent) for c in calls}),
        "commands_per_call": sorted({len(c.commands) for c in calls}),
        "unexpected_requests": sum(len(c.unexpected) for c in calls),
    }


@dataclass
class Bench:
    bird: FakeBird
    app: App
    redis: Redis
    channel_id: str
    lag: LoopLag
    drain_s: float = 120.0
    call_s: float = 0.0

    async def _slots(self, count: int, pace: Pace, ramp_s: float) -> list[asyncio.Task[None]]:
        bird = self.bird

        async def slot(index: int) -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(bird.stopping.wait(), index * ramp_s / count)
            while not bird.stopping.is_set():
                await bird.run_call(pace)

        loop = asyncio.get_running_loop()
        return [loop.create_task(slot(i)) for i in range(count)]

    async def _drain(self, slots: list[asyncio.Task[None]]) -> None:
        self.bird.stopping.set()
        _, pending = await asyncio.wait(slots, timeout=self.call_s + self.drain_s)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self.bird.stopping.clear()

    async def _close(self, calls: list[LoadCall]) -> dict[str, int]:
        """After a level: its calls that did not play out are hung up by their callers,
        then the app is let settle."""
        incomplete = sum(not c.complete for c in calls)
        hung_up = await self.bird.hang_up(calls)
        await self._settle()
        return {"incomplete_hung_up": hung_up, "of": incomplete}

    async def _settle(self, quiet_pct: float = 10.0, limit_s: float = 60.0) -> None:
        """Wait until the app is idle (its CPU under ``quiet_pct`` % over half a second):
        requests the drain gave up on may still be in its queue."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            before = self.app.cpu_s()
            await asyncio.sleep(0.5)
            if (self.app.cpu_s() - before) / 0.5 * 100 < quiet_pct:
                return

    async def _window(self, seconds: float) -> Window:
        redis0 = await redis_snapshot(self.redis)
        cpu0, bench0, busy0 = self.app.cpu_s(), cpu_self_s(), machine_busy_s()
        start = time.perf_counter()
        live: list[int] = []
        while time.perf_counter() - start < seconds:
            live.append(self.bird.live)
            await asyncio.sleep(min(0.25, max(0.0, seconds - (time.perf_counter() - start))))
        end = time.perf_counter()
        cpu1, bench1, busy1 = self.app.cpu_s(), cpu_self_s(), machine_busy_s()
        redis1 = await redis_snapshot(self.redis)
        return Window(start, end, redis0, redis1, cpu1 - cpu0, bench1 - bench0, busy1 - busy0, live)

    async def idle(self, seconds: float) -> dict[str, Any]:
        """What the app costs with no call at all (its timers' polling)."""
        window = await self._window(seconds)
        delta = window.redis1.commands - window.redis0.commands
        return {
            "seconds": round(window.seconds, 2),
            "redis_commands_per_s": round(sum(delta.values()) / window.seconds, 1),
            "redis_round_trips_per_s": round(
                (window.redis1.reads - window.redis0.reads - 1) / window.seconds, 1
            ),
            "app_cpu_pct": round(window.app_cpu_s / window.seconds * 100, 2),
        }

    async def level(self, count: int, pace: Pace, duration_s: float) -> dict[str, Any]:
        """``count`` calls live: ramp over one call length, measure, drain."""
        self.bird.take_finished()
        requests = Counter(self.bird.requests)
        after_end = Counter(self.bird.after_end)
        log_from = self.app.log.stat().st_size
        ramp_s = pace.call_s
        before = await redis_snapshot(self.redis)
        started_before = self.bird.started
        rss_before = self.app.rss_bytes()
        slots = await self._slots(count, pace, ramp_s)
        try:
            await asyncio.sleep(ramp_s)
            after = await redis_snapshot(self.redis)
            with_state = self.bird.started - started_before
            talking = [c for c in self.bird.calls.values() if c.leg_status == "ongoing"]
            sample = talking[0].id if talking else None
            keys_of_one = await call_keys(self.redis, sample, self.channel_id) if sample else {}
            rss_after = self.app.rss_bytes()
            live_at_ramp_end = self.bird.live
            window = await self._window(duration_s)
        except BaseException:  # cancelled (SIGTERM) or failed: cut the calls, no drain
            await _cut(slots)
            raise
        await self._drain(slots)
        calls = self.bird.take_finished()
        closing = await self._close(calls)
        return {
            "level": count,
            "closing": closing,
            "nominal_per_s": round(count * DELIVERIES / pace.call_s, 1),
            "pace_s": {
                "say": pace.say_s,
                "gather": pace.gather_s,
                "ring": pace.ring_s,
                "talk": pace.talk_s,
                "call": pace.call_s,
            },
            **figures(calls, window, self.lag.between(window.start, window.end), 1),
            "calls": call_outcomes(calls),
            "bird_requests": dict(self.bird.requests - requests),
            "requests_on_ended_calls": dict(self.bird.after_end - after_end),
            "app_warnings": log_warnings(self.app.log, log_from)[0],
            "memory": {
                "live_at_ramp_end": live_at_ramp_end,
                "calls_with_state": with_state,
                "used_memory_delta": after.used_memory - before.used_memory,
                "bytes_per_call": round(
                    (after.used_memory - before.used_memory) / max(with_state, 1)
                ),
                "bytes_per_call_without_client_buffers": round(
                    (after.used_memory - after.client_memory)
                    - (before.used_memory - before.client_memory)
                )
                // max(with_state, 1),
                "redis_clients": after.clients,
                "call_keys": keys_of_one,
                "call_keys_total": sum(keys_of_one.values()),
                "app_rss_delta_per_call": round((rss_after - rss_before) / max(with_state, 1)),
            },
        }

    async def saturation(self, count: int, seconds: float, warmup_s: float) -> dict[str, Any]:
        """Closed loop: ``count`` calls at once, back to back, no pause."""
        self.bird.take_finished()
        requests = Counter(self.bird.requests)
        after_end = Counter(self.bird.after_end)
        log_from = self.app.log.stat().st_size
        slots = await self._slots(count, ZERO_PACE, 0.0)
        try:
            await asyncio.sleep(warmup_s)
            window = await self._window(seconds)
        except BaseException:  # cancelled (SIGTERM) or failed: cut the calls, no drain
            await _cut(slots)
            raise
        await self._drain(slots)
        calls = self.bird.take_finished()
        closing = await self._close(calls)
        return {
            "concurrent_calls": count,
            "closing": closing,
            **figures(calls, window, self.lag.between(window.start, window.end), 1),
            "calls": call_outcomes(calls),
            "bird_requests": dict(self.bird.requests - requests),
            "requests_on_ended_calls": dict(self.bird.after_end - after_end),
            "app_warnings": log_warnings(self.app.log, log_from)[0],
        }


# -- the run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadConfig:
    levels: tuple[int, ...] = (50, 200, 500, 1000, 2000)
    call_s: float = 60.0
    duration_s: float = 30.0
    saturation: tuple[int, ...] = (4, 16, 64, 256)
    saturation_s: float = 5.0
    warmup_s: float = 1.0
    apps: tuple[str, ...] = ("ivr", "floor")
    pool_size: int = 256
    idle_s: float = 3.0
    pin: bool = True
    drain_s: float = 120.0
    workers: int = 1  # ivr serve --workers (the floor app is one process)


def quick_config() -> LoadConfig:
    """A short run for the test suite: 20 live calls of 2 s for 2 s, a short saturation."""
    return LoadConfig(
        levels=(20,), call_s=2.0, duration_s=2.0, saturation=(16,), saturation_s=1.5,
        warmup_s=0.5, pool_size=16, idle_s=0.5, drain_s=20.0,
    )  # fmt: skip


def service_fingerprint() -> str:
    """A digest of service/'s Python files as they are now (when an app starts): which
    code was measured, without git."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "service").rglob("*.py")):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        loop = f"uvloop {importlib.metadata.version('uvloop')}"
    except importlib.metadata.PackageNotFoundError:
        loop = "asyncio"
    return {
        "loadavg_at_start": os.getloadavg(),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "bench_event_loop": loop,
        "bench_affinity": sorted(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
    }


def pinning(config: LoadConfig) -> tuple[set[int] | None, set[int] | None]:
    """The app's cores (one a worker) and this process's: the others (None, None: not
    pinned; None for this process when the app takes every core)."""
    if not config.pin or not hasattr(os, "sched_setaffinity"):
        return None, None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < config.workers or (config.workers == 1 and len(cores) < 2):
        return None, None
    rest = set(cores[config.workers :])
    return set(cores[: config.workers]), rest or None


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, str]]:
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield configured, "REDIS_URL"
        return
    with EmbeddedRedis() as embedded:
        yield embedded.url, "embedded"


@contextlib.asynccontextmanager
async def running(app: App) -> AsyncIterator[App]:
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def run(
    config: LoadConfig,
    redis_url: str,
    redis_kind: str,
    workdir: Path,
    app_cores: set[int] | None,
) -> dict[str, Any]:
    """The whole run (``app_cores``: the cores the apps are pinned to, None: not pinned)."""
    task = asyncio.current_task()
    assert task is not None
    with contextlib.suppress(NotImplementedError, RuntimeError):  # SIGTERM: stop the apps too
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    (workdir / "graphs").mkdir(parents=True, exist_ok=True)
    (workdir / "graphs" / f"{GRAPH_ID}.json").write_text(json.dumps(GRAPH, indent=2))
    redis = Redis.from_url(redis_url)
    lag = LoopLag()
    lag.start()
    report: dict[str, Any] = {
        "machine": machine(),
        "config": {
            "levels": list(config.levels), "call_s": config.call_s,
            "duration_s": config.duration_s, "saturation": list(config.saturation),
            "saturation_s": config.saturation_s, "pool_size": config.pool_size,
            "pinned": app_cores is not None, "redis": redis_kind,
            "app_cores": sorted(app_cores) if app_cores else None, "workers": config.workers,
            "deliveries_per_call": DELIVERIES, "commands_per_call": list(COMMANDS),
        },
        "definitions": DEFINITIONS,
        "apps": {},
    }  # fmt: skip
    info = await redis.info("server")
    report["machine"]["redis_version"] = info.get("redis_version")
    pace = Pace.lasting(config.call_s)
    try:
        for name in config.apps:
            # A port first, then the fake Bird (its webhook URL names the port).
            port = free_port()
            bird = FakeBird(
                signing_key="",
                workspace_id="",
                channel_id="",
                webhook_url=f"http://127.0.0.1:{port}/webhooks/bird",
                pool_size=config.pool_size,
            )
            bird_url = await bird.start()
            wiring = Wiring(redis_url, bird_url, workdir)
            bird.signing_key = wiring.signing_key
            bird.workspace_id, bird.channel_id = wiring.workspace_id, wiring.channel_id
            app = wiring.app(name, port, app_cores, config.workers)
            results: dict[str, Any] = {"levels": [], "saturation": []}
            report["apps"][name] = results
            try:
                async with running(app):
                    assert app.process is not None
                    with contextlib.suppress(OSError):
                        results["app_affinity"] = sorted(os.sched_getaffinity(app.process.pid))
                        results["app_native_libraries"] = app.libraries()
                    results["service_fingerprint"] = service_fingerprint()
                    bench = Bench(
                        bird, app, redis, wiring.channel_id, lag, config.drain_s, pace.call_s
                    )
                    results["idle"] = await bench.idle(config.idle_s)
                    for count in config.levels:
                        found = await bench.level(count, pace, config.duration_s)
                        results["levels"].append(found)
                        print(row(name, f"{count} live", found), flush=True)
                    for count in config.saturation:
                        found = await bench.saturation(count, config.saturation_s, config.warmup_s)
                        results["saturation"].append(found)
                        print(row(name, f"max, {count} at once", found), flush=True)
                    results["app_rss_bytes"] = app.rss_bytes()
            finally:
                await bird.close()
            best = max(results["saturation"], key=lambda r: r["answered_per_s"], default=None)
            results["saturation_per_s"] = best["answered_per_s"] if best else None
    finally:
        await lag.stop()
        await redis.aclose()
    return report


# -- output ------------------------------------------------------------------------------

HEADER = (
    "| app | load | live | nominal/s | offered/s | 2xx/s | 503 | other fail "
    "| w2c p50 / p99 ms | http p50 / p99 ms | pool wait p99 ms | CPU ms/deliv | app CPU % "
    "| Redis cmds / RTT per deliv | bytes/call | loop lag p99 ms | bench CPU % | others CPU % |"
)


def _pair(value: dict[str, Any]) -> str:
    return f"{value['p50']} / {value['p99']}"


def row(app: str, load: str, found: dict[str, Any]) -> str:
    memory = found.get("memory", {})
    cells = [
        app,
        load,
        str(found["live"]),
        str(found.get("nominal_per_s", "")),
        str(found["offered_per_s"]),
        str(found["answered_per_s"]),
        str(found["http_503"]),
        str(found["failures"]),
        _pair(found["w2c_ms"]),
        _pair(found["http_ms"]),
        str(found["pool_wait_ms"]["p99"]),
        str(found["cpu_ms_per_delivery"]),
        str(found["app_cpu_pct"]),
        f"{found['redis_cmds_per_delivery']} / {found['redis_round_trips_per_delivery']}",
        str(memory.get("bytes_per_call", "")),
        str(found["loop_lag_ms"]["p99"]),
        str(found["bench_cpu_pct"]),
        str(found["others_cpu_pct"]),
    ]
    return "| " + " | ".join(cells) + " |"


def table(report: dict[str, Any]) -> str:
    lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    for name, results in report["apps"].items():
        for found in results["levels"]:
            lines.append(row(name, f"{found['level']} live", found))
        for found in results["saturation"]:
            lines.append(row(name, f"max, {found['concurrent_calls']} at once", found))
    return "\n".join(lines)


def summary(report: dict[str, Any]) -> str:
    lines = []
    for name, results in report["apps"].items():
        outcomes = [r["calls"] for r in results["levels"] + results["saturation"]]
        started = sum(o["started"] for o in outcomes)
        complete = sum(o["completed"] for o in outcomes)
        lines.append(
            f"{name}: {complete} of {started} calls played out ({DELIVERIES} deliveries, "
            f"{len(COMMANDS)} commands each); saturation {results['saturation_per_s']} "
            f"deliveries/s; idle {results['idle']}"
        )
        for found in results["levels"]:
            keys_of_one = found["memory"]["call_keys"]
            shown = ", ".join(f"{k} {v} B" for k, v in keys_of_one.items()) or "none found"
            lines.append(f"  {found['level']} live: one call's keys: {shown}")
        for found in results["levels"] + results["saturation"]:
            load = found.get("level") or f"max {found.get('concurrent_calls')}"
            if found["app_warnings"] or found["calls"]["incomplete"]:
                lines.append(f"  {load}: calls {found['calls']}; app's warnings "
                             f"{found['app_warnings']}")  # fmt: skip
    return "\n".join(lines)


def complete(report: dict[str, Any]) -> bool:
    """Every call of the service's runs played out, and no delivery failed (503s
    aside). The floor app's own failures are reported, not judged: it is the yardstick
    (with redis-py's default pool it refuses deliveries at 256 calls at once)."""
    for name, results in report["apps"].items():
        if name != "ivr":
            continue
        for found in results["levels"] + results["saturation"]:
            if found["calls"]["incomplete"] or found["failures"]:
                return False
    return True


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--levels", help="live calls per level (50,200,500,1000,2000)")
    parser.add_argument("--duration", type=float, help="seconds measured per level (30)")
    parser.add_argument("--call-s", type=float, help="seconds a call lasts (60)")
    parser.add_argument("--pool", type=int, help="keep-alive connections to the app (256)")
    parser.add_argument("--saturation", help="calls at once of the saturation runs (4,16,64,256)")
    parser.add_argument("--saturation-s", type=float, help="seconds measured per run (5)")
    parser.add_argument("--apps", help="ivr,floor (both)")
    parser.add_argument("--quick", action="store_true", help="a short run (the test's)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument("--workers", type=int, help="ivr serve --workers N, on N cores (1)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    parser.add_argument("--keep", type=Path, help="keep the apps' logs and graph in this folder")
    return parser.parse_args(argv)


def config_of(args: argparse.Namespace) -> LoadConfig:
    config = quick_config() if args.quick else LoadConfig()
    changes: dict[str, Any] = {}
    if args.levels:
        changes["levels"] = tuple(int(v) for v in args.levels.split(","))
    if args.saturation:
        changes["saturation"] = tuple(int(v) for v in args.saturation.split(","))
    if args.apps:
        changes["apps"] = tuple(args.apps.split(","))
    for name in ("duration", "call_s", "saturation_s"):
        value = getattr(args, name)
        if value is not None:
            changes["duration_s" if name == "duration" else name] = value
    if args.pool is not None:
        changes["pool_size"] = args.pool
    if args.no_pin:
        changes["pin"] = False
    if args.workers is not None:
        changes["workers"] = args.workers
    return LoadConfig(**{**config.__dict__, **changes})


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = config_of(args)
    app_cores, bench_cores = pinning(config)
    if bench_cores is not None:
        os.sched_setaffinity(0, bench_cores)  # the embedded Redis, our child, inherits it
    try:
        import uvloop  # optional: the bench's own loop only
    except ImportError:
        runner = asyncio.Runner()
    else:
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    print(HEADER)
    print("|" + "---|" * HEADER.count(" | ") + "---|", flush=True)
    with contextlib.ExitStack() as stack:
        redis_url, kind = stack.enter_context(redis_server())
        if args.keep is not None:
            workdir = args.keep
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ivr-load-")))
        with runner:
            report = runner.run(run(config, redis_url, kind, workdir, app_cores))
    print()
    print(summary(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if complete(report) else 1


if __name__ == "__main__":
    sys.exit(main())
