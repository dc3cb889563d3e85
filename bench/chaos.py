"""A reproducible chaos run: the whole service on one machine, with Bird on a bad day.

``python -m bench.chaos --calls 1000 --seed 1`` starts

- one real Redis (``EmbeddedRedis(append_only=True)``), restarted mid-run (its AOF keeps
  the data);
- two ``ivr serve`` worker processes (``REDIS_URL`` = that Redis, ``LOG_FORMAT=json`` to
  files, ``BIRD_TIMEOUT_S`` low), one of them SIGKILLed mid-run and replaced by a new
  process on the same port, as a replacement pod would be;
- in this process: the Bird simulator with seeded faults (API errors, 429s, answers too
  late though performed, requests never answered, GETs too; deliveries duplicated and
  delayed at random, so that they arrive out of order) and a round-robin HTTP proxy in
  front of the two workers (both have the proxy's URL as ``PUBLIC_BASE_URL``, since
  Bird's signature covers the URL; a worker that is down gets a 502, and the simulator's
  delivery retries go to the other one);

places scripted inbound calls on an always-open line (a graph written to a temporary
directory: a menu, a collect, transfers to agents who answer, do not answer or are busy,
voicemail, hang-ups), waits until every call has ended or nothing has happened for
longer than any timer of the service, and reports the faults injected and three numbers
with their exact definitions (:data:`DEFINITIONS`): double actions, stuck calls, lost
calls; and the calls the service gave up on, and the time to the first prompt. Every
call counted in one of them gets an evidence file (its transcript, what the simulator
recorded, the service's state and its log lines). Exit 1 when any of the three is not 0.

The same seed gives the same callers, scenarios, arrival times and fault streams (see
``service.sim.faults``). The streams are named by the order in which the simulator
creates calls, bridge legs included, so under concurrency a caller may draw another
stream from one run to the next, and how many requests there are depends on the service:
fault counts move by a few percent between two runs of one seed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import structlog
from redis.asyncio import Redis
from starlette.types import ASGIApp, Receive, Scope, Send

from service.core import actions
from service.graphs.loader import load_directory
from service.runtime import keys, logs, outbox, timers
from service.runtime.redis_server import EmbeddedRedis
from service.runtime.serving import bind, serve, url_of
from service.runtime.settings import Settings
from service.runtime.store import CallStore, StoredCall, connect
from service.server.app import create_app
from service.sim import (
    HANGUP,
    AgentScript,
    BirdSimulator,
    CallerScript,
    DeliveryAttempt,
    Faults,
    RecordedRequest,
)
from service.sim.calls import SimCall
from service.sim.faults import (
    DELIVERY_DELAYED,
    DELIVERY_DUPLICATE,
    DELIVERY_REPLAY,
    DROPPED_NOT_PERFORMED,
    DROPPED_PERFORMED,
    ERROR_500,
    ERROR_503,
    RATE_LIMITED,
    SLOW,
)
from service.sim.transcript import HEARD, RECORDED, Transcript

ROOT = Path(__file__).resolve().parent.parent

# -- the line: an always-open graph (``ivr serve`` has no pinned clock) ---------------

GRAPH_ID = "chaos-line"
NUMBER = "+31970000000"
SALES = "+31201110001"  # answers
SUPPORT = "+31201110002"  # never answers
BILLING = "+31201110003"  # busy
GOODBYE = "Goodbye."
THANKS = "Thank you. Goodbye."

GRAPH: dict[str, Any] = {
    "id": GRAPH_ID,
    "description": "The chaos bench's line: open at any hour.",
    "numbers": [NUMBER],
    "locale": "en-US",
    "start": "welcome",
    "nodes": {
        "welcome": {"type": "say", "say": "Thanks for calling.", "next": "menu"},
        "menu": {
            "type": "menu",
            "say": "For sales press 1. For support press 2. For billing press 3.",
            "options": {"1": "account", "2": "support", "3": "billing"},
            "timeout_s": 3,
            "max_attempts": 2,
            "invalid": {"say": "Sorry, that is not an option."},
            "no_input": {"say": "Sorry, I did not hear a choice."},
            "on_failure": "goodbye",
        },
        "account": {
            "type": "collect",
            "say": "Enter your account number, then hash.",
            "var": "account",
            "min_digits": 4,
            "max_digits": 6,
            "end_key": "#",
            "timeout_s": 3,
            "max_attempts": 2,
            "invalid": {"say": "That is not an account number."},
            "no_input": {"say": "I did not hear a number."},
            "next": "account-check",
            "on_failure": "sales",
        },
        "account-check": {
            "type": "branch",
            "cases": [{"var": "vars.account", "op": "exists", "next": "sales"}],
            "default": "sales",
        },
        "sales": {"type": "transfer", "to": SALES, "ring_timeout_s": 10, "on_failure": "busy"},
        "support": {"type": "transfer", "to": SUPPORT, "ring_timeout_s": 10, "on_failure": "busy"},
        "billing": {"type": "transfer", "to": BILLING, "ring_timeout_s": 10, "on_failure": "busy"},
        "busy": {
            "type": "say",
            "say": "Nobody can take your call. Leave a message after the tone.",
            "next": "voicemail",
        },
        "voicemail": {
            "type": "voicemail",
            "max_length_s": 10,
            "end_key": "#",
            "beep": True,
            "next": "thanks",
        },
        "thanks": {"type": "hangup", "say": THANKS},
        "goodbye": {"type": "hangup", "say": GOODBYE},
    },
}

AGENTS: dict[str, AgentScript] = {
    SALES: AgentScript("answer", answer_after_s=3.0, talk_s=100.0),
    SUPPORT: AgentScript("no-answer"),
    BILLING: AgentScript("busy"),
}


@dataclass(frozen=True)
class Scenario:
    """A kind of caller, and where the script and the graph say the call ends."""

    name: str
    inputs: tuple[str, ...]
    weight: int
    reached: str | None = None
    """The agent the caller must reach (None: must reach nobody)."""
    voicemail: bool = False
    """Whether the caller must have left a message."""
    last_heard: str | None = None
    """What the caller must hear last (None: not checked)."""
    ended_by: str = "api"
    """Who ends the call in Bird (``hangupSource``): ``callee`` (the agent hung up after
    the bridge), ``api`` (the service hung up) or ``caller``."""
    outcomes: frozenset[str] = frozenset()
    """The service's outcomes (``CallState.outcome``) that fit."""
    hangup_after_s: float | None = None


TRANSFERRED = frozenset({"transferred"})
HANGUP_NODE = frozenset({"hangup_node"})

SCENARIOS: tuple[Scenario, ...] = (
    Scenario("sales", ("1", "1234#"), 4, reached=SALES, ended_by="callee", outcomes=TRANSFERRED),
    Scenario(
        "sales after a wrong key and a short account number",
        ("7", "1", "12#", "123456#"),
        1,
        reached=SALES,
        ended_by="callee",
        outcomes=TRANSFERRED,
    ),
    Scenario(
        "sales after two bad account numbers (collect on_failure)",
        ("1", "1#", "2#"),
        1,
        reached=SALES,
        ended_by="callee",
        outcomes=TRANSFERRED,
    ),
    Scenario(
        "support does not answer: voicemail",
        ("2",),
        2,
        voicemail=True,
        last_heard=THANKS,
        outcomes=HANGUP_NODE,
    ),
    Scenario(
        "billing is busy: voicemail",
        ("3",),
        1,
        voicemail=True,
        last_heard=THANKS,
        outcomes=HANGUP_NODE,
    ),
    Scenario("silent: the menu gives up", (), 1, last_heard=GOODBYE, outcomes=HANGUP_NODE),
    Scenario(
        "hangs up during the menu",
        (HANGUP,),
        1,
        ended_by="caller",
        outcomes=frozenset({"ended_by_caller"}),
    ),
    Scenario(
        "impatient: hangs up 8 s after the answer, wherever it is",
        ("1", "1234#"),
        1,
        ended_by="caller",
        outcomes=frozenset({"ended_by_caller", "transferred"}),
        hangup_after_s=8.0,
        reached=None,
    ),
)


def graph_actions() -> list[actions.Action]:
    """Every command the chaos graph can make the service send (for its timers)."""
    found: list[actions.Action] = [actions.Answer(), actions.Hangup()]
    for node in GRAPH["nodes"].values():
        prompts = [
            node.get("say"),
            *(p.get("say") for p in (node.get("invalid"), node.get("no_input")) if p),
        ]
        for text in filter(None, prompts):
            found.append(actions.Speak(actions.Say(text)))
        if node["type"] in ("menu", "collect"):
            digits = node.get("max_digits", 1)
            found.append(actions.Gather(actions.Say(node["say"]), digits, node["timeout_s"], "#"))
        elif node["type"] == "transfer":
            found.append(actions.Bridge(node["to"], None, node["ring_timeout_s"]))
        elif node["type"] == "voicemail":
            found.append(actions.Record(node["max_length_s"], node["end_key"], True, False))
    return found


def service_quiet_s(bird_timeout_s: float) -> float:
    """Longer than anything the service may still have due on a live call: its longest
    outcome window on this graph (after which it reads the call back), its lease on a
    command being sent, its hang-up retries, and a claimed timer's lease (a worker that
    died holding it), plus a few requests' timeouts."""
    windows = [outbox.outcome_window_s(action) for action in graph_actions()]
    longest = max([*windows, outbox.LEASE_S, outbox.HANGUP_RETRY_CAP_S, outbox.RETRY_HORIZON_S])
    return longest + timers.CLAIM_LEASE_S + 2 * timers.POLL_EVERY_S + 3 * bird_timeout_s


# -- configuration ----------------------------------------------------------------------


def chaos_faults(seed: int, bird_timeout_s: float) -> Faults:
    """20 % of API requests faulted (and of GETs): 8 % 500/503, 4 % 429, 4 % answered
    only after the service's timeout though performed, 4 % never answered (half of them
    performed); half of the deliveries sent twice; every delivery delayed at random."""
    return Faults(
        seed=seed,
        api_error=0.08,
        api_rate_limited=0.04,
        api_slow=0.04,
        api_dropped=0.04,
        get_error=0.08,
        get_rate_limited=0.04,
        get_slow=0.04,
        get_dropped=0.04,
        dropped_performed=0.5,
        slow_answer_s=bird_timeout_s + 1.0,
        drop_hold_s=bird_timeout_s + 3.0,
        delivery_duplicate=0.5,
        delivery_delay_s=4.0,
    )


@dataclass(frozen=True)
class ChaosConfig:
    calls: int = 1000
    seed: int = 1
    place_over_s: float | None = None
    """Calls arrive at random over this many real seconds (default: calls / 7)."""
    time_scale: float = 0.3
    """Real seconds per simulated second (prompts, key presses, agents, voicemails)."""
    bird_timeout_s: float = 2.0
    """The service's BIRD_TIMEOUT_S (``ivr serve`` takes whole seconds)."""
    faults: Faults | None = None
    """Default: :func:`chaos_faults` for the seed."""
    workers: Literal["process", "inprocess"] = "process"
    """``process``: two ``ivr serve`` processes; ``inprocess``: two apps in this process
    (for the test suite: no SIGKILL then, and the service's clock may run faster)."""
    kill_worker: bool = True
    replace_after_s: float = 2.0
    restart_redis: bool = True
    service_clock_speed: float = 1.0
    """In process only: the service's clock runs this many times faster than the wall
    clock, so that its real-time margins (15 s) fit in a short test."""
    quiet_s: float | None = None
    """Default: :func:`service_quiet_s` (divided by the clock speed)."""
    max_wait_s: float = 900.0
    answer_timeout_real_s: float = 60.0
    """How long an inbound call rings unanswered before the caller gives up (real s)."""
    delivery_attempts: int = 14
    delivery_retry_s: float = 0.5
    """The simulator's first delivery retry after this many real seconds, doubling
    each time: 14 attempts span more than an hour, like Bird's."""
    out_dir: Path | None = None

    @property
    def placing_s(self) -> float:
        return self.place_over_s if self.place_over_s is not None else self.calls / 7

    @property
    def fault_plan(self) -> Faults:
        return self.faults or chaos_faults(self.seed, self.bird_timeout_s)

    @property
    def quiet_period_s(self) -> float:
        if self.quiet_s is not None:
            return self.quiet_s
        return service_quiet_s(self.bird_timeout_s) / self.service_clock_speed


# -- the proxy in front of the workers ----------------------------------------------------

BAD_GATEWAY = b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: application/json\r\ncontent-length: "


def _without_connection(head: bytes, replacement: bytes | None = None) -> bytes:
    """An HTTP head without its ``Connection`` header (``replacement`` in its place)."""
    lines = [line for line in head.split(b"\r\n") if not line.lower().startswith(b"connection:")]
    if replacement is not None:
        lines.insert(1, replacement)
    return b"\r\n".join(lines)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


class Proxy:
    """A round-robin HTTP/1.1 proxy in front of the workers, on plain asyncio streams
    (cheap: the simulator shares this process). Each request goes to the next worker
    on a new connection; a worker that refuses the connection, or closes it without a
    whole answer (it was killed), gets the client a 502, and Bird delivers again."""

    def __init__(self, upstreams: Sequence[str], timeout_s: float = 30.0) -> None:
        self.upstreams = list(upstreams)
        self.timeout_s = timeout_s
        self._turn = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self.forwarded: Counter[str] = Counter()
        self.bad_gateway: Counter[str] = Counter()
        self.bad_gateway_reasons: Counter[str] = Counter()
        self.in_flight: Counter[str] = Counter()

    @contextlib.asynccontextmanager
    async def serving(self, sock: socket.socket) -> AsyncIterator[None]:
        server = await asyncio.start_server(self._serve_client, sock=sock)
        try:
            yield
        finally:
            server.close()
            for writer in list(self._writers):
                writer.close()
            await server.wait_closed()

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = _content_length(head)
                body = await reader.readexactly(length) if length else b""
                writer.write(await self._forward(head[:-4], body))
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _forward(self, head: bytes, body: bytes) -> bytes:
        upstream = self.upstreams[self._turn % len(self.upstreams)]
        self._turn += 1
        host, _, port = upstream.removeprefix("http://").partition(":")
        self.in_flight[upstream] += 1
        try:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, int(port)), timeout=2.0
                )
            except (OSError, TimeoutError) as exc:
                return self._bad(upstream, f"connect: {type(exc).__name__}")
            try:
                writer.write(_without_connection(head, b"Connection: close") + b"\r\n\r\n" + body)
                await writer.drain()
                raw = await asyncio.wait_for(reader.read(), timeout=self.timeout_s)
            except (OSError, TimeoutError) as exc:
                return self._bad(upstream, f"no answer: {type(exc).__name__}")
            finally:
                writer.close()
            answer_head, found, answer_body = raw.partition(b"\r\n\r\n")
            if not found or len(answer_body) < _content_length(answer_head):
                return self._bad(upstream, "closed before a whole answer")
            self.forwarded[upstream] += 1
            return _without_connection(answer_head) + b"\r\n\r\n" + answer_body
        finally:
            self.in_flight[upstream] -= 1

    def _bad(self, upstream: str, reason: str) -> bytes:
        self.bad_gateway[upstream] += 1
        self.bad_gateway_reasons[reason] += 1
        body = json.dumps({"error": "bad_gateway", "reason": reason}).encode()
        return BAD_GATEWAY + str(len(body)).encode() + b"\r\n\r\n" + body


class Stopwatch:
    """Wraps the simulator's app and notes when each POST arrives (wall clock), so that
    a request the simulator recorded can be given its time (:meth:`times`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.arrivals: dict[str, list[float]] = defaultdict(list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            self.arrivals[scope["path"]].append(time.time())
        await self.app(scope, receive, send)

    def times(self, requests: Sequence[RecordedRequest]) -> list[float | None]:
        """When each recorded request arrived: the simulator records the requests of
        one path in the order they arrive."""
        queues = {path: deque(times) for path, times in self.arrivals.items()}
        found: list[float | None] = []
        for request in requests:
            queue = queues.get(request.path)
            found.append(queue.popleft() if request.method == "POST" and queue else None)
        return found


# -- workers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    access_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    workspace_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    channel_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    signing_key: str = field(default_factory=lambda: secrets.token_urlsafe(24))


@dataclass(frozen=True)
class Wiring:
    keys: Keys
    redis_url: str
    bird_url: str
    proxy_url: str
    graphs_dir: Path
    out_dir: Path
    bird_timeout_s: float

    def env(self) -> dict[str, str]:
        """The environment of an ``ivr serve`` worker."""
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("BIRD_", "IVR_", "REDIS_", "LOG_", "PUBLIC_", "WEBHOOK_"))
        }
        return {
            **inherited,
            "BIRD_ACCESS_KEY": self.keys.access_key,
            "BIRD_WORKSPACE_ID": self.keys.workspace_id,
            "BIRD_CHANNEL_ID": self.keys.channel_id,
            "BIRD_SIGNING_KEY": self.keys.signing_key,
            "PUBLIC_BASE_URL": self.proxy_url,
            "BIRD_API_URL": self.bird_url,
            "REDIS_URL": self.redis_url,
            "IVR_GRAPHS_DIR": str(self.graphs_dir),
            "IVR_DEFAULT_GRAPH": GRAPH_ID,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "info",
            "BIRD_TIMEOUT_S": str(math.ceil(self.bird_timeout_s)),
        }

    def settings(self) -> Settings:
        """The settings of an in-process worker (what :meth:`env` says, as Settings)."""
        return Settings(
            bird_access_key=self.keys.access_key,
            bird_workspace_id=self.keys.workspace_id,
            bird_channel_id=self.keys.channel_id,
            bird_signing_key=self.keys.signing_key,
            public_base_url=self.proxy_url,
            redis_url=self.redis_url,
            bird_api_url=self.bird_url,
            ivr_graphs_dir=self.graphs_dir,
            ivr_default_graph=GRAPH_ID,
            bird_timeout_s=self.bird_timeout_s,
            # The service's clock may run fast in process: new calls must not look old.
            new_call_max_age_s=3600,
        )


class Worker(Protocol):
    name: str
    port: int
    log_files: list[Path]

    async def start(self) -> None: ...
    async def kill(self) -> None: ...
    async def stop(self) -> None: ...


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _spawn(
    argv: list[str], env: Mapping[str, str], out: Path, err: Path
) -> subprocess.Popen[bytes]:
    with out.open("ab") as stdout, err.open("ab") as stderr:
        return subprocess.Popen(  # noqa: S603 - our own CLI, fixed argv
            argv, cwd=ROOT, env=dict(env), stdout=stdout, stderr=stderr, start_new_session=True
        )


def _reap(process: subprocess.Popen[bytes], timeout_s: float) -> int:
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


class ProcessWorker:
    """``ivr serve`` as a process: what a pod runs."""

    def __init__(self, name: str, port: int, wiring: Wiring) -> None:
        self.name = name
        self.port = port
        self._wiring = wiring
        self._process: subprocess.Popen[bytes] | None = None
        self.log_files: list[Path] = []
        self.incarnation = 0

    async def start(self) -> None:
        self.incarnation += 1
        suffix = "" if self.incarnation == 1 else f"-{self.incarnation}"
        out = self._wiring.out_dir / f"worker-{self.name}{suffix}.log"
        err = self._wiring.out_dir / f"worker-{self.name}{suffix}.stderr"
        self.log_files.append(out)
        argv = [
            sys.executable,
            "-m",
            "service",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        self._process = _spawn(argv, self._wiring.env(), out, err)
        await _wait_ready(f"http://127.0.0.1:{self.port}", self._process, err)

    async def kill(self) -> None:
        """SIGKILL: no drain, no goodbye."""
        if self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(_reap, self._process, 5.0)
            self._process = None

    async def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            await asyncio.to_thread(_reap, self._process, 10.0)
            self._process = None


async def _wait_ready(url: str, process: subprocess.Popen[bytes], err: Path) -> None:
    deadline = time.monotonic() + 60.0
    async with httpx.AsyncClient(trust_env=False, timeout=2.0) as http:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                tail = await asyncio.to_thread(_tail, err)
                raise RuntimeError(f"worker on {url} exited with {process.returncode}:\n{tail}")
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(url + "/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"worker on {url} not ready within 60 s")


def _tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class InProcessWorker:
    """The same app in this process (the test suite's chaos run)."""

    def __init__(self, name: str, port: int, wiring: Wiring, clock: Callable[[], float]) -> None:
        self.name = name
        self.port = port
        self._wiring = wiring
        self._clock = clock
        self._stack: contextlib.AsyncExitStack | None = None
        self.log_files: list[Path] = []

    async def start(self) -> None:
        settings = self._wiring.settings()
        graphs = load_directory(self._wiring.graphs_dir, GRAPH_ID)
        stack = contextlib.AsyncExitStack()
        redis = connect(self._wiring.redis_url)
        stack.push_async_callback(redis.aclose)
        app = create_app(
            settings,
            redis=redis,
            graphs=graphs,
            graphs_dir=self._wiring.graphs_dir,
            clock=self._clock,
        )
        await stack.enter_async_context(serve(app, sock=bind("127.0.0.1", self.port)))
        self._stack = stack

    async def kill(self) -> None:
        raise NotImplementedError("an in-process worker cannot be SIGKILLed")

    async def stop(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None


def fast_clock(speed: float) -> Callable[[], float]:
    start = time.time()
    if speed == 1.0:
        return time.time
    return lambda: start + (time.time() - start) * speed


# -- the run ---------------------------------------------------------------------------


@dataclass
class Placed:
    index: int
    call_id: str
    scenario: Scenario
    at: float
    """Seconds since the first call was placed."""


@dataclass
class Incident:
    what: str
    at: float
    """Seconds since the first call was placed."""
    detail: dict[str, Any] = field(default_factory=dict)


SIM_EVENTS = frozenset({"delivery gave up", "simulator task failed"})
"""What the simulator logs (everything else in this process's log is a worker's)."""


class LogBook:
    """Every structured log line of this process (the simulator's; in process, the
    workers' too), as a dict."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def __call__(self, event_dict: MutableMapping[str, Any]) -> None:
        self.lines.append(json.loads(json.dumps(dict(event_dict), default=str)))


@dataclass
class Observed:
    """What the run left behind, for :func:`analyse`."""

    config: ChaosConfig
    placed: list[Placed]
    sim: BirdSimulator
    stopwatch: Stopwatch
    proxy: Proxy
    states: dict[str, StoredCall | None]
    timers_due: dict[str, float | None]
    incidents: list[Incident]
    worker_logs: dict[str, list[dict[str, Any]]]
    worker_errors: list[str]
    bench_logs: list[dict[str, Any]]
    live_samples: list[int]
    loop_lags: list[float]
    duration_s: float
    waited: str
    out_dir: Path
    revision: dict[str, Any] = field(default_factory=dict)


def pick_scenarios(seed: int, calls: int) -> list[Scenario]:
    rng = random.Random(f"{seed}/scenarios")
    weights = [s.weight for s in SCENARIOS]
    return rng.choices(SCENARIOS, weights=weights, k=calls)


def arrival_times(seed: int, calls: int, over_s: float) -> list[float]:
    rng = random.Random(f"{seed}/arrivals")
    return sorted(rng.uniform(0.0, over_s) for _ in range(calls))


def service_revision() -> dict[str, Any]:
    """The commit the workers run, and the files of service/ changed in the working
    tree (read-only git; None outside a git checkout)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "service"],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "changed": None}
    return {"commit": head, "changed": [line[3:] for line in status]}


def _write_graph(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{GRAPH_ID}.json").write_text(json.dumps(GRAPH, indent=2))


def prepare_out(out_dir: Path | None, prefix: str) -> Path:
    """A run's output folder: ``out_dir`` cleared of an earlier run's logs and
    evidence, or a new temporary one named ``prefix...``."""
    if out_dir is None:
        return Path(tempfile.mkdtemp(prefix=prefix))
    out = out_dir
    out.mkdir(parents=True, exist_ok=True)
    for old in [*out.glob("worker-*.log"), *out.glob("worker-*.stderr"), *out.glob("evidence/*")]:
        old.unlink()
    return out


async def run(config: ChaosConfig) -> Report:
    """One chaos run, from nothing to the report."""
    out = prepare_out(config.out_dir, f"ivr-chaos-seed{config.seed}-")
    revision = await asyncio.to_thread(service_revision)
    graphs_dir = out / "graphs"
    _write_graph(graphs_dir)
    saved_logging = structlog.get_config()
    book = LogBook()
    logs.configure(log_format="json", level="info", sink=book, quiet=True)
    server = EmbeddedRedis(append_only=True)
    await asyncio.to_thread(server.start)
    try:
        observed = await _run_with(config, server, graphs_dir, out, book)
        observed.revision = revision
    finally:
        await asyncio.to_thread(server.stop)
        structlog.configure(**saved_logging)
    return analyse(observed)


async def _run_with(
    config: ChaosConfig, server: EmbeddedRedis, graphs_dir: Path, out: Path, book: LogBook
) -> Observed:
    keys_ = Keys()
    bird_sock, proxy_sock = bind(), bind()
    ports = [free_port(), free_port()]
    proxy = Proxy([f"http://127.0.0.1:{port}" for port in ports])
    wiring = Wiring(
        keys_,
        server.url,
        url_of(bird_sock),
        url_of(proxy_sock),
        graphs_dir,
        out,
        config.bird_timeout_s,
    )
    sim = BirdSimulator(
        access_key=keys_.access_key,
        workspace_id=keys_.workspace_id,
        channel_id=keys_.channel_id,
        signing_key=keys_.signing_key,
        subscription_url=wiring.proxy_url + "/webhooks/bird",
        agents=AGENTS,
        time_scale=config.time_scale,
        answer_timeout_s=config.answer_timeout_real_s / config.time_scale,
        answer_timeout_min_real_s=config.answer_timeout_real_s,
        max_attempts=config.delivery_attempts,
        retry_delay_s=config.delivery_retry_s / config.time_scale,
        faults=config.fault_plan,
    )
    stopwatch = Stopwatch(sim.app)
    workers: list[Worker]
    if config.workers == "process":
        workers = [
            ProcessWorker(name, port, wiring) for name, port in zip("ab", ports, strict=True)
        ]
    else:
        clock = fast_clock(config.service_clock_speed)
        workers = [InProcessWorker(n, p, wiring, clock) for n, p in zip("ab", ports, strict=True)]
    redis = connect(server.url)
    try:
        async with serve(stopwatch, sock=bird_sock), proxy.serving(proxy_sock):
            try:
                await asyncio.gather(*(worker.start() for worker in workers))
                chaos = _Chaos(config, sim, proxy, workers, server)
                await chaos.place_calls()
                waited = await chaos.wait_until_quiet()
                placed = [p.call_id for p in chaos.placed]
                states, due = await _read_service(redis, placed, keys_.channel_id)
            finally:
                sim.release_held_requests()
                await asyncio.gather(*(worker.stop() for worker in workers))
        await sim.aclose()
    finally:
        await redis.aclose()
    worker_logs, worker_errors = _read_worker_logs(workers, out, book)
    return Observed(
        config=config,
        placed=chaos.placed,
        sim=sim,
        stopwatch=stopwatch,
        proxy=proxy,
        states=states,
        timers_due=due,
        incidents=chaos.incidents,
        worker_logs=worker_logs,
        worker_errors=worker_errors,
        bench_logs=book.lines,
        live_samples=chaos.live_samples,
        loop_lags=chaos.lags,
        duration_s=time.monotonic() - chaos.started,
        waited=waited,
        out_dir=out,
    )


class _Chaos:
    """Places the calls, and does the damage on schedule."""

    def __init__(
        self,
        config: ChaosConfig,
        sim: BirdSimulator,
        proxy: Proxy,
        workers: list[Worker],
        server: EmbeddedRedis,
    ) -> None:
        self.config = config
        self.sim = sim
        self.proxy = proxy
        self.workers = workers
        self.server = server
        self.placed: list[Placed] = []
        self.incidents: list[Incident] = []
        self.live_samples: list[int] = []
        self.started = time.monotonic()
        self._tasks: list[asyncio.Task[None]] = []
        self._watchers: list[asyncio.Task[None]] = []
        self.lags: list[float] = []

    def now(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def live(self) -> int:
        return sum(1 for p in self.placed if not self.sim.calls[p.call_id].ended)

    async def place_calls(self) -> None:
        config = self.config
        scenarios = pick_scenarios(config.seed, config.calls)
        arrivals = arrival_times(config.seed, config.calls, config.placing_s)
        kill_at = int(config.calls * 0.35) if config.kill_worker else -1
        restart_at = int(config.calls * 0.65) if config.restart_redis else -1
        self._watchers = [
            asyncio.create_task(self._sample_live()),
            asyncio.create_task(self._watch_lag()),
        ]
        self.started = time.monotonic()
        for index, (scenario, at) in enumerate(zip(scenarios, arrivals, strict=True)):
            delay = self.started + at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if index == kill_at:
                self._tasks.append(asyncio.create_task(self._kill_and_replace(self.workers[0])))
            if index == restart_at:
                self._tasks.append(asyncio.create_task(self._restart_redis()))
            script = CallerScript(
                name=scenario.name,
                from_number=f"+3161{index:07d}",
                to_number=NUMBER,
                inputs=scenario.inputs,
                hangup_after_s=scenario.hangup_after_s,
                voicemail_s=6.0,
            )
            call_id = await self.sim.place_inbound_call(script)
            self.placed.append(Placed(index, call_id, scenario, self.now()))
        await asyncio.gather(*self._tasks)

    async def _sample_live(self) -> None:
        while True:
            self.live_samples.append(self.live())
            await asyncio.sleep(0.25)

    async def _watch_lag(self) -> None:
        """How late this process's event loop wakes up: the simulator and the proxy
        share it, so a late loop is the bench itself delaying Bird."""
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.1)
            self.lags.append(max(0.0, time.monotonic() - before - 0.1))

    async def _kill_and_replace(self, worker: Worker) -> None:
        cut = self.proxy.in_flight[f"http://127.0.0.1:{worker.port}"]
        await worker.kill()
        self.incidents.append(
            Incident(
                "worker-sigkill",
                self.now(),
                {
                    "worker": worker.name,
                    "port": worker.port,
                    "deliveries_in_flight": cut,
                    "live_calls": self.live(),
                },
            )
        )
        await asyncio.sleep(self.config.replace_after_s)
        begun = self.now()
        await worker.start()
        self.incidents.append(
            Incident(
                "worker-replaced",
                self.now(),
                {
                    "worker": worker.name,
                    "port": worker.port,
                    "down_s": round(self.now() - begun + self.config.replace_after_s, 2),
                    "live_calls": self.live(),
                },
            )
        )

    async def _restart_redis(self) -> None:
        begun = self.now()
        await asyncio.to_thread(self.server.restart)
        self.incidents.append(
            Incident(
                "redis-restart",
                begun,
                {
                    "down_s": round(self.now() - begun, 2),
                    "live_calls": self.live(),
                    "append_only": True,
                },
            )
        )

    async def wait_until_quiet(self) -> str:
        """Until every call has ended and its deliveries are answered, or nothing has
        happened (no request, no delivery attempt) for the quiet period."""
        quiet_s, deadline = self.config.quiet_period_s, time.monotonic() + self.config.max_wait_s
        activity, since = (-1, -1), time.monotonic()
        try:
            while True:
                roots = [self.sim.calls[p.call_id] for p in self.placed]
                if all(root.settled.is_set() for root in roots):
                    return "every call ended and every delivery was answered"
                now = (len(self.sim.requests), len(self.sim.deliveries))
                if now != activity:
                    activity, since = now, time.monotonic()
                elif time.monotonic() - since >= quiet_s:
                    live = sum(1 for root in roots if not root.ended)
                    return f"quiet for {quiet_s:.0f} s with {live} call(s) still live"
                if time.monotonic() > deadline:
                    return f"stopped after --max-wait-s {self.config.max_wait_s:.0f} s"
                await asyncio.sleep(0.5)
        finally:
            for watcher in self._watchers:
                watcher.cancel()


async def _read_service(
    redis: Redis, call_ids: Iterable[str], channel_id: str
) -> tuple[dict[str, StoredCall | None], dict[str, float | None]]:
    """Each call's state and pending command in Redis, and when its timer is due."""
    store = CallStore(redis, ended_ttl_s=3600, channel_id=channel_id)
    states: dict[str, StoredCall | None] = {}
    due: dict[str, float | None] = {}
    for call_id in call_ids:
        states[call_id] = await store.load_call(call_id)
        score = await redis.zscore(keys.timers(channel_id), call_id)
        due[call_id] = float(score) / 1000 if score is not None else None
    return states, due


def _read_worker_logs(
    workers: Sequence[Worker], out: Path, book: LogBook
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """Log lines by call id (each with ``worker``), and anything a worker wrote that is
    not a log line (tracebacks)."""
    by_call: dict[str, list[dict[str, Any]]] = defaultdict(list)
    errors: list[str] = []
    sources: list[tuple[str, list[dict[str, Any]]]] = []
    for worker in workers:
        for path in worker.log_files:
            lines: list[dict[str, Any]] = []
            for raw in path.read_text(errors="replace").splitlines():
                try:
                    lines.append(json.loads(raw))
                except ValueError:
                    errors.append(f"{path.name}: {raw}")
            sources.append((path.stem, lines))
    if not sources:  # in process: the workers logged here
        sources.append(("in-process", [ln for ln in book.lines if ln["event"] not in SIM_EVENTS]))
    for path in sorted(out.glob("worker-*.stderr")):
        text = path.read_text(errors="replace").strip()
        if text:
            errors += [f"{path.name}: {line}" for line in text.splitlines()]
    for name, lines in sources:
        for line in lines:
            call_id = line.get("call_id")
            if call_id:
                by_call[str(call_id)].append({"worker": name, **line})
    for lines in by_call.values():
        lines.sort(key=lambda line: str(line.get("timestamp", "")))
    return dict(by_call), errors


# -- the analysis ----------------------------------------------------------------------

OVERLOADED_LAG_S = 1.0
"""A bench event loop this late means the bench itself, not the service, delayed Bird."""
PROMPT_OPERATIONS = frozenset({"say", "playback", "gather", "record"})
COMMAND_OPERATIONS = PROMPT_OPERATIONS | {"bridge"}

DEFINITIONS: dict[str, str] = {
    "double_actions": (
        "calls on which Bird really performed (the simulator carried the request out, "
        "whether or not its answer reached the service) more than one answer; or more "
        "than one bridge (every call of this graph asks for at most one transfer, so a "
        "second bridge is one agent rung twice for one ask, or the caller put through to "
        "a second agent); or a prompt command (say, playback, gather, record) that Bird "
        "took while another prompt command it had taken on that call had not finished "
        "(neither its completion event nor the call's end had happened yet)"
    ),
    "stuck": (
        "calls still live in the simulator at the end of the run (after the quiet "
        "period, longer than any timer of the service) on which nothing plays and "
        "nothing is pending: every command Bird took on the call has finished, no agent "
        "leg rings or talks, no delivery of the call is being sent or retried"
    ),
    "lost": (
        "calls, not stuck, that the service never answered (a worker was up all along: "
        "the other one while one was killed; Redis was away for well under a second; the "
        "caller rings for 60 s); or that the service hung up with outcome bird_refused "
        "while the caller was still on the line (Bird stayed reachable: about 80 % of "
        "its requests succeed and it retries deliveries for an hour); or that ended "
        "other than where their script and graph say: reached another agent than the "
        "expected one (or one when none was expected), no voicemail recorded when "
        "expected, a last prompt other than the expected one, or ended by another party "
        "(hangupSource) than expected; or still live, something playing or pending, "
        "when the run stopped"
    ),
    "given_up": (
        "calls whose state in Redis ended with outcome bird_refused (the service gave "
        "the call up and hung up rather than leave the caller in silence), by the reason "
        "its last bird_command_failed log line gives; whether or not the caller had "
        "already hung up"
    ),
    "first_prompt": (
        "real seconds from the simulator placing the call (it starts ringing) to the "
        "start of the first prompt the caller hears, over the calls that heard one; the "
        "simulator's own times (prompts, delivery delays) are scaled by time_scale, the "
        "service's timeouts and retries are not"
    ),
    "state_disagreements": (
        "diagnostic, not one of the three: calls whose state in Redis is missing, still "
        "live although Bird's call has ended, or whose outcome does not fit what Bird "
        "shows (e.g. bird_refused for a caller who had hung up first)"
    ),
}


@dataclass
class CallVerdict:
    call_id: str
    index: int
    scenario: str
    double: list[str] = field(default_factory=list)
    stuck: bool = False
    lost: list[str] = field(default_factory=list)
    given_up: str | None = None
    disagreements: list[str] = field(default_factory=list)
    first_prompt_s: float | None = None

    @property
    def noteworthy(self) -> bool:
        return bool(self.double or self.stuck or self.lost or self.given_up or self.disagreements)


@dataclass
class Report:
    data: dict[str, Any]
    verdicts: list[CallVerdict]

    @property
    def ok(self) -> bool:
        return bool(self.data["ok"])


def _ts(value: str | datetime | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return round(ordered[rank - 1], 3)


def _family(call: SimCall) -> list[SimCall]:
    members = [call]
    for child in call.children:
        members += _family(child)
    return members


class Evidence:
    """What the simulator recorded, indexed by call: the requests (with when they
    arrived), the deliveries, and when each command Bird took finished."""

    def __init__(self, sim: BirdSimulator, stopwatch: Stopwatch) -> None:
        self.sim = sim
        times = stopwatch.times(sim.requests)
        self.requests: dict[str, list[tuple[float | None, RecordedRequest]]] = defaultdict(list)
        for at, request in zip(times, sim.requests, strict=True):
            if request.call_id is not None:
                self.requests[request.call_id].append((at, request))
        self.finished: dict[str, float] = {}
        self.deliveries: dict[str, list[DeliveryAttempt]] = defaultdict(list)
        for attempt in sim.deliveries:
            payload = attempt.payload.get("payload", {})
            self.deliveries[payload.get("parentId") or attempt.call_id].append(attempt)
            command = payload.get("command")
            if isinstance(command, dict) and command.get("id"):
                moment = _ts(payload.get("updatedAt"))  # when it happened, however late sent
                if moment is not None:
                    self.finished.setdefault(str(command["id"]), moment)

    def commands(self, call_id: str) -> list[tuple[float | None, str, str | None]]:
        """(when the request arrived, operation, command id) of each command Bird took."""
        found = []
        for at, request in self.requests.get(call_id, []):
            if not request.performed or request.operation not in COMMAND_OPERATIONS:
                continue
            answer = request.response
            command = answer.get("command") if isinstance(answer, dict) else None
            if not isinstance(command, dict):  # only a bridge's answer wraps its command
                command = answer if isinstance(answer, dict) else {}
            command_id = command.get("id")
            found.append((at, str(request.operation), str(command_id) if command_id else None))
        return found

    def double_actions(self, call: SimCall) -> list[str]:
        found = []
        answers = self.sim.performed(call.id, "answer")
        if answers > 1:
            found.append(f"{answers} answers performed")
        bridges = self.sim.performed(call.id, "bridge")
        if bridges > 1:
            found.append(f"{bridges} bridges performed")
        connected = [leg.to_number for leg in call.children if leg.answered]
        if len(connected) > 1:
            found.append(f"put through to {len(connected)} agents")
        ended_at = _ts(call.ended_at) or math.inf
        prompts = [
            (at, command_id)
            for at, operation, command_id in self.commands(call.id)
            if operation in PROMPT_OPERATIONS and at is not None
        ]
        overlaps = 0
        for index, (at, _) in enumerate(prompts):
            for before, before_id in prompts[:index]:
                finished = min(self.finished.get(before_id or "", ended_at), ended_at)
                if before <= at < finished:
                    overlaps += 1
                    break
        if overlaps:
            found.append(f"{overlaps} prompt command(s) taken while another had not finished")
        return found

    def stuck(self, call: SimCall) -> bool:
        if call.ended or not call.answered:
            return False
        family = _family(call)
        unfinished = [
            operation
            for _, operation, command_id in self.commands(call.id)
            if command_id is None or command_id not in self.finished
        ]
        legs_live = [leg for leg in family[1:] if leg.started and not leg.ended]
        pending = sum(member.pending_deliveries for member in family)
        return not unfinished and not legs_live and pending == 0


def analyse(observed: Observed) -> Report:
    evidence = Evidence(observed.sim, observed.stopwatch)
    verdicts = [judge(observed, evidence, placed) for placed in observed.placed]
    for verdict in verdicts:
        if verdict.given_up is not None:
            verdict.given_up = abandon_reason(observed.worker_logs.get(verdict.call_id, []))
    data = _report(observed, verdicts)
    _write_evidence(observed, evidence, verdicts)
    (observed.out_dir / "report.json").write_text(json.dumps(data, indent=2) + "\n")
    if observed.worker_errors:
        (observed.out_dir / "worker-output-not-json.txt").write_text(
            "\n".join(observed.worker_errors) + "\n"
        )
    return Report(data, verdicts)


def judge(observed: Observed, evidence: Evidence, placed: Placed) -> CallVerdict:
    """Everything the run says about one call (:data:`DEFINITIONS`)."""
    sim, scenario = observed.sim, placed.scenario
    call = sim.calls[placed.call_id]
    transcript = sim.transcript(call.id)
    verdict = CallVerdict(call.id, placed.index, scenario.name)
    heard = [entry for entry in transcript.entries if entry.kind == HEARD]
    if heard:
        verdict.first_prompt_s = round(heard[0].at * observed.config.time_scale, 3)
    verdict.double = evidence.double_actions(call)
    verdict.stuck = evidence.stuck(call)
    stored = observed.states.get(call.id)
    outcome = str(stored.state.outcome) if stored and stored.state.outcome else None
    if outcome == "bird_refused":
        verdict.given_up = "bird_refused"
    if not verdict.stuck:
        if not call.answered:
            verdict.lost.append(f"never answered (Bird: {call.status}, by {call.hangup_source})")
        elif not call.ended:
            verdict.lost.append(f"still live when the run stopped (Bird: {call.status})")
        else:
            if outcome == "bird_refused" and transcript.hangup_source == "api":
                verdict.lost.append("hung up by the service as bird_refused")
            verdict.lost += ended_elsewhere(transcript, scenario)
    verdict.disagreements = _disagreements(stored, call, scenario, transcript)
    return verdict


def ended_elsewhere(transcript: Transcript, scenario: Scenario) -> list[str]:
    """How an ended call's end differs from what its script and the graph say."""
    found = []
    if scenario.hangup_after_s is None and transcript.reached != scenario.reached:
        found.append(f"reached {transcript.reached}, expected {scenario.reached}")
    if scenario.voicemail and not transcript.texts(RECORDED):
        found.append("no voicemail recorded")
    heard = transcript.texts(HEARD)
    if scenario.last_heard is not None and (not heard or heard[-1] != scenario.last_heard):
        found.append(f"last heard {heard[-1:]}, expected {scenario.last_heard!r}")
    if transcript.hangup_source != scenario.ended_by:
        found.append(f"ended by {transcript.hangup_source}, expected {scenario.ended_by}")
    return found


def _disagreements(
    stored: StoredCall | None, call: SimCall, scenario: Scenario, transcript: Transcript
) -> list[str]:
    if stored is None:
        return ["no state in Redis"]
    state, found = stored.state, []
    if call.ended and not state.ended:
        pending = stored.pending.status if stored.pending else None
        found.append(
            f"Bird's call ended ({call.status}) but the state is {state.phase} at "
            f"{state.node} (pending: {pending})"
        )
    outcome = str(state.outcome) if state.outcome else None
    if outcome == "bird_refused":
        if transcript.hangup_source != "api":
            found.append(f"outcome bird_refused, but the {transcript.hangup_source} hung up first")
    elif state.ended and outcome not in scenario.outcomes:
        found.append(f"outcome {outcome}, expected {sorted(scenario.outcomes)}")
    return found


def abandon_reason(lines: Sequence[Mapping[str, Any]]) -> str:
    """Why the service gave a call up, from its log lines."""
    failed = [line for line in lines if line.get("event") == "bird_command_failed"]
    abandoned = [line for line in lines if line.get("event") == "call_abandoned"]
    if abandoned:  # the failure that led to it, not a later one of the hang-up
        moment = str(abandoned[0].get("timestamp", ""))
        failed = [line for line in failed if str(line.get("timestamp", "")) <= moment]
    if not failed:
        return str(abandoned[0].get("reason")) if abandoned else "no log line says"
    last = failed[-1]
    action = last.get("action")
    if "gave_up_after_s" in last:
        return (
            f"{action}: not taken within the retry horizon ({outbox.RETRY_HORIZON_S:g} s, "
            "counted from when the command was decided)"
        )
    error = str(last.get("error", ""))
    if error == "no outcome after resending":
        return f"{action}: no outcome after resending ({last.get('attempts')} attempts)"
    code = error.split(":")[0]
    return f"{action}: refused: {code}"


FAULT_LABELS = {
    ERROR_500: "500, not performed",
    ERROR_503: "503, not performed",
    RATE_LIMITED: "429 rate_limited, not performed",
    SLOW: "performed, answered after the service's timeout",
    DROPPED_PERFORMED: "performed, never answered",
    DROPPED_NOT_PERFORMED: "not performed, never answered",
}


def _faults(sim: BirdSimulator) -> dict[str, Any]:
    """Every fault the simulator injected, by kind, and out of how many requests."""
    injected: dict[str, Counter[str]] = {"api": Counter(), "get": Counter()}
    eligible: Counter[str] = Counter()
    for request in sim.requests:
        kind = "get" if request.method == "GET" else "api"
        if request.fault is not None:
            injected[kind][request.fault] += 1
        if not request.rejected:
            eligible[kind] += 1
    originals = {a.request_id for a in sim.deliveries if a.kind == "original"}
    found: dict[str, Any] = {}
    for kind in ("api", "get"):
        total = sum(injected[kind].values())
        found[kind] = {
            "injected": {fault: injected[kind][fault] for fault in FAULT_LABELS},
            "total": total,
            "requests": eligible[kind],
            "share": round(total / eligible[kind], 3) if eligible[kind] else None,
        }
    found["delivery"] = {
        DELIVERY_DUPLICATE: sim.fault_counts[DELIVERY_DUPLICATE],
        DELIVERY_DELAYED: sim.fault_counts[DELIVERY_DELAYED],
        DELIVERY_REPLAY: sim.fault_counts[DELIVERY_REPLAY],
        "deliveries": len(originals),
    }
    return found


def _report(observed: Observed, verdicts: list[CallVerdict]) -> dict[str, Any]:
    config, sim, proxy = observed.config, observed.sim, observed.proxy
    faults = _faults(sim)
    infrastructure: dict[str, Any] = {
        incident.what: {"at_s": incident.at, **incident.detail} for incident in observed.incidents
    }
    infrastructure["proxy-502"] = {
        "count": sum(proxy.bad_gateway.values()),
        "by_reason": dict(proxy.bad_gateway_reasons),
    }
    faults["infrastructure"] = infrastructure
    attempts: dict[str, list[DeliveryAttempt]] = defaultdict(list)
    for attempt in sim.deliveries:
        attempts[attempt.request_id].append(attempt)
    failing = [tries for tries in attempts.values() if not any(a.ok for a in tries)]
    faults["delivery_retries"] = {
        "attempts_failed": sum(1 for a in sim.deliveries if not a.ok),
        "failed_by_answer": dict(
            Counter(
                str(a.status_code) if a.status_code is not None else (a.error or "?").split(":")[0]
                for a in sim.deliveries
                if not a.ok
            )
        ),
        "deliveries_given_up": sum(1 for t in failing if len(t) >= config.delivery_attempts),
        "deliveries_still_retrying_at_end": sum(
            1 for t in failing if len(t) < config.delivery_attempts
        ),
    }
    doubles = [v for v in verdicts if v.double]
    stuck = [v for v in verdicts if v.stuck]
    lost = [v for v in verdicts if v.lost]
    given_up = [v for v in verdicts if v.given_up]
    disagreeing = [v for v in verdicts if v.disagreements]
    firsts = [v.first_prompt_s for v in verdicts if v.first_prompt_s is not None]
    lags = observed.loop_lags
    placing = observed.live_samples[: max(1, int(config.placing_s * 4))]
    log_events: Counter[str] = Counter(
        f"{line.get('level')} {line.get('event')}"
        for lines in observed.worker_logs.values()
        for line in lines
        if line.get("level") in ("warning", "error")
    )
    data: dict[str, Any] = {
        "run": {
            "seed": config.seed,
            "service_revision": observed.revision,
            "calls": len(observed.placed),
            "workers": "2 ivr serve processes"
            if config.workers == "process"
            else "2 in-process apps",
            "placed_over_s": round(config.placing_s, 1),
            "time_scale": config.time_scale,
            "bird_timeout_s": config.bird_timeout_s,
            "service_clock_speed": config.service_clock_speed,
            "faults": config.fault_plan.describe(),
            "duration_s": round(observed.duration_s, 1),
            "ended_because": observed.waited,
            "quiet_period_s": round(config.quiet_period_s, 1),
            "live_calls_peak": max(observed.live_samples, default=0),
            "live_calls_mean_while_placing": round(sum(placing) / max(1, len(placing)), 1),
            "bench_loop_lag_s": {
                "p99": percentile(lags, 99),
                "max": round(max(lags, default=0), 3),
            },
            "bench_overloaded": max(lags, default=0.0) > OVERLOADED_LAG_S,
            "requests_to_bird": len(sim.requests),
            "delivery_attempts": len(sim.deliveries),
            "out_dir": str(observed.out_dir),
        },
        "faults": faults,
        "double_actions": _section(
            doubles, "double_actions", [r for v in doubles for r in v.double]
        ),
        "stuck": _section(stuck, "stuck", []),
        "lost": _section(lost, "lost", [r for v in lost for r in v.lost]),
        "given_up": _section(given_up, "given_up", [v.given_up or "" for v in given_up]),
        "first_prompt_s": {
            "p50": percentile(firsts, 50),
            "p99": percentile(firsts, 99),
            "max": max(firsts, default=None),
            "calls": len(firsts),
            "definition": DEFINITIONS["first_prompt"],
        },
        "state_disagreements": _section(
            disagreeing, "state_disagreements", [r for v in disagreeing for r in v.disagreements]
        ),
        "scenarios": {
            s.name: {
                "placed": sum(1 for v in verdicts if v.scenario == s.name),
                "lost_or_stuck": sum(
                    1 for v in verdicts if v.scenario == s.name and (v.lost or v.stuck)
                ),
            }
            for s in SCENARIOS
        },
        "rejected_by_bird": dict(
            Counter(f"{r.operation} {r.status} {r.code}" for r in sim.requests if r.rejected)
        ),
        "service_log_warnings_and_errors": dict(log_events.most_common()),
        "worker_output_not_json": len(observed.worker_errors),
        "simulator_errors": sum(
            1 for line in observed.bench_logs if line.get("event") == "simulator task failed"
        ),
    }
    data["ok"] = not (doubles or stuck or lost)
    return data


def _section(calls: list[CallVerdict], key: str, reasons: list[str]) -> dict[str, Any]:
    return {
        "calls": len(calls),
        "definition": DEFINITIONS[key],
        "by_reason": dict(Counter(_category(r) for r in reasons).most_common()),
        "call_ids": [v.call_id for v in calls],
    }


def _category(reason: str) -> str:
    """A reason without its particulars (numbers), to count reasons."""
    return " ".join(
        "N" if any(c.isdigit() for c in word) and not word.startswith(("+", "(")) else word
        for word in reason.split()
    )


def _write_evidence(observed: Observed, evidence: Evidence, verdicts: list[CallVerdict]) -> None:
    directory = observed.out_dir / "evidence"
    directory.mkdir(exist_ok=True)
    for verdict in verdicts:
        if verdict.noteworthy:
            text = describe_call(observed, evidence, verdict)
            (directory / f"{verdict.call_id}.txt").write_text(text)


def describe_call(observed: Observed, evidence: Evidence, verdict: CallVerdict) -> str:
    """One call's evidence: the verdict, the transcript, what the simulator recorded
    (requests with their faults, deliveries with their attempts), the service's state
    in Redis and its log lines."""
    sim = observed.sim
    call = sim.calls[verdict.call_id]
    lines = [
        f"call {verdict.call_id} (#{verdict.index}, {verdict.scenario})",
        f"double actions: {verdict.double}",
        f"stuck: {verdict.stuck}",
        f"lost: {verdict.lost}",
        f"given up: {verdict.given_up}",
        f"state disagreements: {verdict.disagreements}",
        "",
        sim.transcript(call.id).render(),
        "",
        "--- requests to Bird (simulator; arrival time for POSTs) ---",
    ]
    for member in _family(call):
        for at, request in evidence.requests.get(member.id, []):
            when = datetime.fromtimestamp(at).strftime("%H:%M:%S.%f")[:-3] if at else " " * 12
            lines.append(
                f"  {when} {member.party:<6} {request.method:<5} {request.operation:<11} -> "
                f"{request.status} {request.code or ''} fault={request.fault} "
                f"performed={request.performed}"
            )
    lines.append("--- deliveries (simulator; updatedAt is when the event happened) ---")
    for attempt in evidence.deliveries.get(call.id, []):
        payload = attempt.payload.get("payload", {})
        command = payload.get("command") or {}
        what = f"{command.get('command')} {command.get('status')}" if command else ""
        lines.append(
            f"  {payload.get('updatedAt')} {str(payload.get('id', ''))[:8]} "
            f"{payload.get('status')} {what} {attempt.kind} #{attempt.attempt} -> "
            f"{attempt.status_code} {attempt.error or ''}".rstrip()
        )
    stored = observed.states.get(call.id)
    lines.append("--- the service's state (Redis, at the end) ---")
    if stored is None:
        lines.append("  none")
    else:
        lines.append(f"  {stored.state.to_json()}")
        lines.append(f"  pending: {stored.pending.to_json() if stored.pending else None}")
        lines.append(f"  timer due: {observed.timers_due.get(call.id)}")
    lines.append("--- the service's log lines (worker-a-2 is worker a's replacement) ---")
    for line in observed.worker_logs.get(call.id, []):
        lines.append("  " + json.dumps(line, separators=(",", ":")))
    return "\n".join(lines) + "\n"


# -- the printed report ----------------------------------------------------------------


def render(report: Report) -> str:
    data = report.data
    run_, faults = data["run"], data["faults"]
    lag = run_["bench_loop_lag_s"]
    out = [
        f"chaos run, seed {run_['seed']}: {run_['calls']} calls placed over "
        f"{run_['placed_over_s']:.0f} s (peak {run_['live_calls_peak']} live at once), "
        f"{run_['workers']} behind a round-robin proxy, one Redis with AOF; "
        f"{run_['duration_s']:.0f} s in all",
        f"  time_scale {run_['time_scale']}, BIRD_TIMEOUT_S {run_['bird_timeout_s']:g}; "
        f"ended because {run_['ended_because']}",
        f"  the bench's own event loop (simulator, proxy) was late by p99 {_num(lag['p99'])} s, "
        f"max {_num(lag['max'])} s"
        + (
            "  -- OVERLOADED: the bench itself delayed Bird, the numbers are not the service's"
            if run_["bench_overloaded"]
            else ""
        ),
        f"  service at commit {run_['service_revision'].get('commit')}, files of service/ "
        f"changed in the working tree: {run_['service_revision'].get('changed')}",
        f"  logs, evidence/<call id>.txt and report.json in {run_['out_dir']}",
        "",
        f"{'faults injected':<58}{'commands':>10}{'GETs':>10}",
    ]
    api, get = faults["api"], faults["get"]
    for fault, label in FAULT_LABELS.items():
        out.append(
            f"  {fault + ': ' + label:<56}{api['injected'][fault]:>10}{get['injected'][fault]:>10}"
        )
    out.append(
        f"  {'all API faults (share of the requests Bird would take)':<56}"
        f"{api['total']:>10}{get['total']:>10}"
    )
    out.append(f"  {'':<56}{_pct(api['share']):>10}{_pct(get['share']):>10}")
    delivery = faults["delivery"]
    out.append(
        f"  {'delivery-duplicate: a delivery sent twice':<56}{delivery[DELIVERY_DUPLICATE]:>10}"
        f"   of {delivery['deliveries']} deliveries"
    )
    out.append(
        f"  {'delivery-delayed: delayed at random (reordered)':<56}{delivery[DELIVERY_DELAYED]:>10}"
    )
    for what, detail in faults["infrastructure"].items():
        out.append(f"  {_incident(what, detail)}")
    retries = faults["delivery_retries"]
    out.append(
        f"  delivery attempts that failed (Bird retried them): {retries['attempts_failed']} "
        f"{retries['failed_by_answer']}; deliveries Bird gave up: "
        f"{retries['deliveries_given_up']}"
    )
    out.append("")
    for key, title in (
        ("double_actions", "double actions"),
        ("stuck", "stuck calls"),
        ("lost", "lost calls"),
        ("given_up", "given up (bird_refused)"),
        ("state_disagreements", "state disagreements"),
    ):
        section = data[key]
        out.append(f"{title:<24}{section['calls']:>6}   {_wrap(section['definition'], 33)}")
        for name, count in section["by_reason"].items():
            out.append(f"{count:>30}   {name}")
    first = data["first_prompt_s"]
    out.append(
        f"{'first prompt p50/p99':<24}{_num(first['p50']):>6} / {_num(first['p99'])} s, max "
        f"{_num(first['max'])} s over {first['calls']} calls"
    )
    out.append(f"{'':<33}{_wrap(first['definition'], 33)}")
    if data["rejected_by_bird"]:
        refused = ", ".join(f"{name}: {n}" for name, n in data["rejected_by_bird"].items())
        out.append(f"requests Bird refused by its own checks (not faults): {refused}")
    if data["worker_output_not_json"] or data["simulator_errors"]:
        out.append(
            f"worker output that is not a log line: {data['worker_output_not_json']} lines; "
            f"simulator task errors: {data['simulator_errors']}"
        )
    out.append("")
    out.append(
        f"{'OK' if report.ok else 'NOT OK'}: double {data['double_actions']['calls']}, "
        f"stuck {data['stuck']['calls']}, lost {data['lost']['calls']} "
        f"(given up {data['given_up']['calls']}) of {run_['calls']} calls"
    )
    return "\n".join(out)


def _incident(what: str, detail: Mapping[str, Any]) -> str:
    if what == "worker-sigkill":
        return (
            f"worker-sigkill: worker {detail['worker']} SIGKILLed at {detail['at_s']:.1f} s "
            f"({detail['deliveries_in_flight']} deliveries in flight, "
            f"{detail['live_calls']} live calls)"
        )
    if what == "worker-replaced":
        return (
            f"worker-replaced: a new worker {detail['worker']} on the same port ready at "
            f"{detail['at_s']:.1f} s ({detail['down_s']:.1f} s without it)"
        )
    if what == "redis-restart":
        return (
            f"redis-restart: at {detail['at_s']:.1f} s, AOF on, down {detail['down_s']:.2f} s "
            f"({detail['live_calls']} live calls)"
        )
    if what == "proxy-502":
        return f"proxy-502: {detail['count']} answers 502 {detail['by_reason']}"
    return f"{what}: {dict(detail)}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


def _wrap(text: str, indent: int, width: int = 112) -> str:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width - indent:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    return ("\n" + " " * indent).join(lines)


def summarize(reports: Sequence[Mapping[str, Any]]) -> str:
    """One line per run (``--summarize``): what bench/README.md shows."""
    head = (
        "| seed | calls | peak live | API faults (share) | GET faults | deliveries doubled / "
        "delayed | double | stuck | lost | given up | first prompt p50 / p99 | run |"
    )
    lines = [head, "|" + "---|" * 12]
    for data in reports:
        run_, faults = data["run"], data["faults"]
        api, get, delivery = faults["api"], faults["get"], faults["delivery"]
        first = data["first_prompt_s"]
        lines.append(
            f"| {run_['seed']} | {run_['calls']} | {run_['live_calls_peak']} "
            f"| {api['total']} ({_pct(api['share'])}) | {get['total']} ({_pct(get['share'])}) "
            f"| {delivery[DELIVERY_DUPLICATE]} / {delivery[DELIVERY_DELAYED]} "
            f"| {data['double_actions']['calls']} | {data['stuck']['calls']} "
            f"| {data['lost']['calls']} | {data['given_up']['calls']} "
            f"| {_num(first['p50'])} / {_num(first['p99'])} s | {run_['duration_s']:.0f} s |"
        )
    return "\n".join(lines)


# -- the command -----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description="A reproducible chaos run of the service (see bench/README.md).",
    )
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--place-over-s", type=float, help="arrivals spread over (calls / 7)")
    parser.add_argument("--time-scale", type=float, default=ChaosConfig.time_scale)
    parser.add_argument("--bird-timeout-s", type=int, default=2, help="BIRD_TIMEOUT_S (2)")
    parser.add_argument("--workers", choices=("process", "inprocess"), default="process")
    parser.add_argument("--no-kill", action="store_true", help="do not SIGKILL a worker")
    parser.add_argument("--no-redis-restart", action="store_true")
    parser.add_argument("--quiet-s", type=float, help="quiet period (the service's timers)")
    parser.add_argument("--max-wait-s", type=float, default=ChaosConfig.max_wait_s)
    parser.add_argument("--out", type=Path, help="logs, evidence, report.json (a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument(
        "--summarize", type=Path, nargs="+", metavar="REPORT", help="tabulate report.json files"
    )
    args = parser.parse_args(argv)
    if args.summarize:
        print(summarize([json.loads(path.read_text()) for path in args.summarize]))
        return 0
    config = ChaosConfig(
        calls=args.calls,
        seed=args.seed,
        place_over_s=args.place_over_s,
        time_scale=args.time_scale,
        bird_timeout_s=float(args.bird_timeout_s),
        workers=args.workers,
        kill_worker=not args.no_kill and args.workers == "process",
        restart_redis=not args.no_redis_restart,
        quiet_s=args.quiet_s,
        max_wait_s=args.max_wait_s,
        out_dir=args.out,
    )
    report = asyncio.run(run(config))
    print(render(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.data, indent=2) + "\n")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
