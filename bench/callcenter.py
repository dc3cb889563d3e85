"""Agent routing, accepted: a call center on one machine, and what it must never do.

``python -m bench.callcenter --callers 50 --agents 5 --seed 1`` starts

- one real Redis (``EmbeddedRedis``);
- two ``ivr serve`` worker processes behind a round-robin proxy (``bench.chaos``'s
  :class:`~bench.chaos.ProcessWorker` and :class:`~bench.chaos.Proxy`), with a temporary
  ``IVR_GRAPHS_DIR`` (two lines, one at priority 0 and a VIP line at priority 5, both
  waiting in one queue with short settings: :class:`QueueSettings`) and the agents seeded
  from ``IVR_AGENTS_FILE``; one worker is SIGKILLed mid-run and replaced on its port;
- in this process: the Bird simulator at ``time_scale`` 1.0 (``ivr serve`` runs on the
  real clock) in its hard mode (``interrupting_commands``: a bridge cuts the hold audio
  short, A7; ``leave_ringing_legs``: an agent's leg rings on after the caller hung up,
  A11), with scripted agents (:func:`agent_roster`: steady ones, one sometimes busy, one
  who misses his first offers and is put on break, a slow one who sometimes misses) and
  scripted callers placed over a few seconds, some of whom hang up while they wait, two
  while their first offer rings, and a few who press 1 at the callback offer (the line's
  ``on_callback`` goes to a ``callback`` node) and answer the follow-up call to their
  number, pressing 1 (:func:`caller_plans`, :func:`callee_scripts`);
- a sampler that reads the queue's line and the agents' states from Redis every 50 ms.

When every call has ended (the follow-up calls too, no callback pending) and the offers'
leases have passed it judges, from the simulator's records (every agent leg, of the
callers' calls and of the follow-up calls, with its request, ring, answer and end times; what
each caller heard and when), the workers' JSON log lines and the samples, each property
of the acceptance test as its own verdict (:data:`DEFINITIONS`), writes an evidence file
for every violation and exits 1 when any verdict is not 0.

The detectors (:func:`judge`) work on plain records (:class:`Records`), so that the test
suite can feed them made-up ones (tests/bench/test_callcenter.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import random
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bench.chaos import (
    Incident,
    Keys,
    LogBook,
    ProcessWorker,
    Proxy,
    Wiring,
    free_port,
    prepare_out,
)
from service.runtime import keys, logs
from service.runtime.line import OFFER_LEASE_S
from service.runtime.redis_server import EmbeddedRedis
from service.runtime.serving import bind, serve, url_of
from service.runtime.store import CallStore, StoredCall, connect
from service.sim import AgentScript, BirdSimulator, CalleeScript, CallerScript
from service.sim.calls import SimCall
from service.sim.transcript import HEARD

# -- the line: two numbers, one queue ---------------------------------------------------

QUEUE = "support"
GRAPH_ID = "callcenter-line"
VIP_GRAPH_ID = "callcenter-vip"
NUMBER = "+31970000100"
VIP_NUMBER = "+31970000200"
PRIORITY = {NUMBER: 0, VIP_NUMBER: 5}
WAIT_NODE = "wait"
TIMEOUT_NODE = "timeout"
CLOSED_NODE = "closed"
CALLBACK_NODE = "call-back"
BYE_NODE = "bye"
WELCOME = "Thanks for calling."
CALLBACK_SAY = "We will call you back when it is your turn."
CALLBACK_OFFER = "To be called back in your turn, press 1."
TIMEOUT_SAY = "Sorry, nobody could take your call. Goodbye."
CLOSED_SAY = "Nobody is available right now. Goodbye."
AGENT_NUMBER = "+3120555{:04d}"


def line_graph(graph_id: str, number: str) -> dict[str, Any]:
    """A line whose callers wait in :data:`QUEUE` at the number's priority."""
    return {
        "id": graph_id,
        "description": "The call center bench's line: straight into the queue.",
        "numbers": [number],
        "locale": "en-US",
        "start": "welcome",
        "nodes": {
            "welcome": {"type": "say", "say": WELCOME, "next": WAIT_NODE},
            WAIT_NODE: {
                "type": "queue",
                "queue": QUEUE,
                "priority": PRIORITY[number],
                "on_timeout": TIMEOUT_NODE,
                "on_no_agents": CLOSED_NODE,
                "on_callback": CALLBACK_NODE,
            },
            CALLBACK_NODE: {
                "type": "callback",
                "queue": QUEUE,
                "say": CALLBACK_SAY,
                "next": BYE_NODE,
            },
            TIMEOUT_NODE: {"type": "hangup", "say": TIMEOUT_SAY},
            CLOSED_NODE: {"type": "hangup", "say": CLOSED_SAY},
            BYE_NODE: {"type": "hangup", "say": "Goodbye."},
        },
    }


@dataclass(frozen=True)
class QueueSettings:
    """The queue's settings in ``queues.json``: short, so that a run fits in real time."""

    ring_timeout_s: int = 3
    wrap_up_s: int = 1
    max_no_answer: int = 2
    no_answer_delay_s: int = 2
    busy_delay_s: int = 2
    hold_segment_s: int = 5
    announce_every_s: int = 10
    max_wait_s: int = 45
    no_agents_grace_s: int = 60
    callback_after_s: int | None = 100
    """Offer a callback once the expected wait exceeds 100 s: position * 180 s / the
    agents before any call was handled (the callers joining then at position 3 or more
    hear it, once, on joining), position * the average talk time (2-4 s) / the agents
    after (nobody in a run). Offered more (0: every caller, every ``announce_every_s``),
    the offer's gather keeps a chosen caller's bridge waiting (A7: a gather is not cut
    short) while the agent is reserved, and far fewer callers are put through: see
    bench/README.md."""
    callback_retry_s: int = 30
    callback_attempts: int = 2
    """The callees answer: no retry is needed in a run (one would come 30 s later)."""

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "announce_position": True,
            "strategy": "longest-idle",
            "callback_offer": {"say": CALLBACK_OFFER},
        }


# -- who is on the line -------------------------------------------------------------------

ROLES = ("steady", "steady", "sometimes busy", "misses, then on break", "slow, sometimes misses")
"""The roles of the first agents; every further agent is steady."""
SCRIPTED_OFFERS = 40


@dataclass(frozen=True)
class AgentPlan:
    id: str
    number: str
    role: str
    script: AgentScript


def agent_roster(seed: int, count: int, settings: QueueSettings) -> list[AgentPlan]:
    """The agents and their offer scripts (the last offer of a script repeats)."""
    rng = random.Random(f"{seed}/agents")
    names = ("ann", "bob", "cyd", "dan", "eve", "fay", "gus", "hal", "ivy", "jon")

    def talking(after: tuple[float, float] = (1.0, 2.0)) -> AgentScript:
        answer_after = round(rng.uniform(*after), 2)
        return AgentScript(
            "answer", answer_after_s=answer_after, talk_s=round(rng.uniform(2, 4), 2)
        )

    roster = []
    for index in range(count):
        role = ROLES[index] if index < len(ROLES) else "steady"
        offers: list[AgentScript]
        if role == "sometimes busy":
            offers = [
                AgentScript("busy") if k % 4 == 2 else talking() for k in range(SCRIPTED_OFFERS)
            ]
        elif role == "misses, then on break":
            # Never answers: max_no_answer misses in a row must put him on break (an
            # offer whose caller hangs up while it rings is no miss).
            offers = [AgentScript("no-answer")]
        elif role == "slow, sometimes misses":
            offers = [
                AgentScript("no-answer") if k % 5 == 3 else talking((2.0, 2.5))
                for k in range(SCRIPTED_OFFERS)
            ]
        else:
            offers = [talking() for _ in range(SCRIPTED_OFFERS)]
        name = names[index] if index < len(names) else f"agent{index + 1}"
        number = AGENT_NUMBER.format(index + 1)
        roster.append(AgentPlan(name, number, role, AgentScript.sequence(*offers)))
    return roster


@dataclass(frozen=True)
class CallerPlan:
    index: int
    from_number: str
    to_number: str
    at_s: float
    """When the call is placed, in seconds after the first one."""
    hangup_after_s: float | None
    """Seconds after the answer at which the caller hangs up, wherever the call is."""
    calls_back: bool = False
    """Presses 1 at the first callback offer (and answers the follow-up call, pressing 1:
    :func:`callee_scripts`); the other callers stay silent at every offer."""

    @property
    def priority(self) -> int:
        return PRIORITY[self.to_number]


CALLBACK_JOIN_BY_S = 3.5
"""The callers who ask for a callback arrive by then: the first call handled ends no
sooner than 4.2 s (an offer at 1.2 s, answered after 1 s, 2 s of talk), and until then
the expected wait is 180 s per caller ahead (:class:`QueueSettings` ``callback_after_s``)."""
RING_HANGUP_S = 2.0
"""When the callers who hang up while their first offer rings do: the welcome lasts 1.14 s
(the simulator speaks 0.06 s a character), the bridge follows within milliseconds, and no
agent answers sooner than 1 s after their phone starts ringing."""


def caller_plans(config: CenterConfig) -> list[CallerPlan]:
    """The callers, seeded: arrival times, who calls the VIP line, who hangs up when.

    ``ring_hangups`` of the first callers (they find agents free) hang up at
    :data:`RING_HANGUP_S`, while their first offer rings: the agent's leg is left ringing
    (A11) until the service hangs it up. ``impatient_share`` of the others hang up 8-22 s
    after the answer, wherever they are (most of them while they wait in line)."""
    rng = random.Random(f"{config.seed}/callers")
    count = config.callers
    arrivals = sorted(rng.uniform(0.0, config.place_over_s) for _ in range(count))
    arrivals[0] = 0.0
    vip = set(rng.sample(range(count), round(count * config.vip_share)))
    first = list(range(min(config.agents, count)))
    ringing = set(rng.sample(first, min(len(first), config.ring_hangups)))
    later = list(range(len(first), count))
    impatient = set(rng.sample(later, min(len(later), round(count * config.impatient_share))))
    # Callers who ask for a callback: drawn apart (the other draws stay as they were),
    # among those who arrive once every agent is busy, before any call can have been
    # handled (so that they hear the offer on joining), and who do not hang up.
    patient = [
        i
        for i in range(2 * len(first), count)
        if i not in impatient and arrivals[i] <= CALLBACK_JOIN_BY_S
    ]
    calls_back = set(
        random.Random(f"{config.seed}/callbacks").sample(
            patient, min(len(patient), config.callback_callers)
        )
    )
    plans = []
    for index, at in enumerate(arrivals):
        hangup = round(rng.uniform(8.0, 22.0), 1) if index in impatient else None
        plans.append(
            CallerPlan(
                index=index,
                from_number=f"+3162{index:07d}",
                to_number=VIP_NUMBER if index in vip else NUMBER,
                at_s=round(at, 3),
                hangup_after_s=RING_HANGUP_S if index in ringing else hangup,
                calls_back=index in calls_back,
            )
        )
    return plans


def callee_scripts(config: CenterConfig, plans: Sequence[CallerPlan]) -> dict[str, CalleeScript]:
    """The follow-up calls of the callers who asked for a callback: they answer after
    1-2 s and press 1 (every follow-up call to their number, should there be more)."""
    rng = random.Random(f"{config.seed}/callees")
    return {
        plan.from_number: CalleeScript(
            f"caller {plan.index} called back",
            AgentScript("answer", answer_after_s=round(rng.uniform(1.0, 2.0), 2)),
            inputs=("1",),
        )
        for plan in plans
        if plan.calls_back
    }


@dataclass(frozen=True)
class CenterConfig:
    callers: int = 50
    agents: int = 5
    seed: int = 1
    place_over_s: float = 8.0
    vip_share: float = 0.2
    impatient_share: float = 0.16
    ring_hangups: int = 2
    callback_callers: int = 5
    queue: QueueSettings = field(default_factory=QueueSettings)
    kill_at_s: float | None = 20.0
    """Worker a is SIGKILLed this many seconds after the first call (None: never)."""
    replace_after_s: float = 2.0
    time_scale: float = 1.0
    """Real seconds per simulated second: keep it 1.0, ``ivr serve`` runs on the real clock."""
    max_run_s: float = 85.0
    """Give up waiting for the calls to end this many seconds after the first one."""
    sample_every_s: float = 0.05
    bird_timeout_s: float = 2.0
    out_dir: Path | None = None


@dataclass(frozen=True)
class CenterWiring(Wiring):
    """:class:`bench.chaos.Wiring` with this bench's default graph and agents file."""

    agents_file: Path = Path("agents.json")
    default_graph: str = GRAPH_ID

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            "IVR_DEFAULT_GRAPH": self.default_graph,
            "IVR_AGENTS_FILE": str(self.agents_file),
        }


def write_center(directory: Path, settings: QueueSettings, roster: Sequence[AgentPlan]) -> Path:
    """The graphs, ``queues.json`` and the agents file; returns the agents file."""
    directory.mkdir(parents=True, exist_ok=True)
    for graph_id, number in ((GRAPH_ID, NUMBER), (VIP_GRAPH_ID, VIP_NUMBER)):
        (directory / f"{graph_id}.json").write_text(json.dumps(line_graph(graph_id, number)))
    (directory / "queues.json").write_text(json.dumps({"queues": {QUEUE: settings.to_json()}}))
    agents = {
        plan.id: {"name": plan.id, "address": plan.number, "queues": {QUEUE: {}}} for plan in roster
    }
    agents_file = directory.parent / "agents.json"
    agents_file.write_text(json.dumps({"agents": agents}, indent=2))
    return agents_file


# -- the sampler: the line as Redis holds it, every few tens of milliseconds ----------------

PLACE_WEIGHT = 10**13
"""``service.runtime.line.place_score``: priority first, then joined (ms)."""
MAX_PRIORITY = 9


@dataclass(frozen=True)
class Snapshot:
    at: float
    waiting: Mapping[str, int]
    """Call id -> place score, in the queue's waiting set."""
    offered: Mapping[str, int]
    """Call id -> place score, in the queue's ringing set (an offer chosen or ringing)."""
    agents: Mapping[str, tuple[str, str]]
    """Agent id -> (state, call id)."""


class Sampler:
    def __init__(self, redis: Redis, agent_ids: Sequence[str], every_s: float) -> None:
        self._redis = redis
        self._agent_ids = list(agent_ids)
        self._every_s = every_s
        self.snapshots: list[Snapshot] = []
        self.errors = 0
        self._stop = asyncio.Event()

    async def run(self) -> None:
        """Sample until :meth:`stop` (no cancelling: a cancel that lands inside the Redis
        client's own timeouts may come out as a timeout)."""
        while not self._stop.is_set():
            try:
                await self.sample()
            except (RedisError, OSError):  # a sample lost is a gap, not a failed run
                self.errors += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self._every_s)

    def stop(self) -> None:
        self._stop.set()

    async def sample(self) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrange(keys.queue_waiting(QUEUE), 0, -1, withscores=True)
            pipe.zrange(keys.queue_offered(QUEUE), 0, -1, withscores=True)
            for agent_id in self._agent_ids:
                pipe.hmget(keys.agent(agent_id), ["state", "call"])
            results = await pipe.execute()
        at = time.time()
        waiting = {_text(m): int(s) for m, s in results[0]}
        offered = {_text(m): int(s) for m, s in results[1]}
        agents = {
            agent_id: (_text(state), _text(call))
            for agent_id, (state, call) in zip(self._agent_ids, results[2:], strict=True)
        }
        self.snapshots.append(Snapshot(at, waiting, offered, agents))


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)


# -- the run -----------------------------------------------------------------------------


@dataclass
class Observed:
    """What a run left behind, for :func:`build_records`."""

    config: CenterConfig
    plans: list[CallerPlan]
    roster: list[AgentPlan]
    call_ids: list[str]
    """The call id of each plan, in order."""
    follow_ups: dict[str, list[str]]
    """Caller's call id -> the follow-up calls of their callback (Bird's calls to their
    number), in the order they were placed."""
    sim: BirdSimulator
    snapshots: list[Snapshot]
    log_lines: list[dict[str, Any]]
    worker_errors: list[str]
    states: dict[str, StoredCall | None]
    leftovers: list[str]
    incidents: list[Incident]
    started: float
    ended: float
    """Wall clock: the first call placed, and when the records were taken."""
    ended_because: str
    calls_ended: float
    """Wall clock: every call had ended (or the run's time was up)."""
    proxy: Proxy
    out_dir: Path
    sampler_errors: int = 0
    simulator_errors: list[str] = field(default_factory=list)
    """The simulator's own tasks that failed (its log, in this process)."""


async def run(config: CenterConfig) -> Report:
    """One run, from nothing to the report."""
    out = prepare_out(config.out_dir, f"ivr-callcenter-seed{config.seed}-")
    roster = agent_roster(config.seed, config.agents, config.queue)
    agents_file = write_center(out / "graphs", config.queue, roster)
    saved_logging = structlog.get_config()
    book = LogBook()
    logs.configure(log_format="json", level="info", sink=book, quiet=True)
    server = EmbeddedRedis()
    await asyncio.to_thread(server.start)
    try:
        observed = await _run_with(config, server, roster, agents_file, out)
        observed.simulator_errors = [
            str(line.get("task"))
            for line in book.lines
            if line.get("event") == "simulator task failed"
        ]
    finally:
        await asyncio.to_thread(server.stop)
        structlog.configure(**saved_logging)
    return analyse(observed)


async def _run_with(
    config: CenterConfig,
    server: EmbeddedRedis,
    roster: list[AgentPlan],
    agents_file: Path,
    out: Path,
) -> Observed:
    keys_ = Keys()
    bird_sock, proxy_sock = bind(), bind()
    ports = [free_port(), free_port()]
    proxy = Proxy([f"http://127.0.0.1:{port}" for port in ports])
    wiring = CenterWiring(
        keys_,
        server.url,
        url_of(bird_sock),
        url_of(proxy_sock),
        out / "graphs",
        out,
        config.bird_timeout_s,
        agents_file=agents_file,
    )
    scale = config.time_scale
    plans = caller_plans(config)
    sim = BirdSimulator(
        access_key=keys_.access_key,
        workspace_id=keys_.workspace_id,
        channel_id=keys_.channel_id,
        signing_key=keys_.signing_key,
        subscription_url=wiring.proxy_url + "/webhooks/bird",
        agents={plan.number: plan.script for plan in roster},
        callees=callee_scripts(config, plans),
        time_scale=scale,
        answer_timeout_s=30.0 / scale,
        answer_timeout_min_real_s=30.0,
        max_attempts=14,
        retry_delay_s=0.5 / scale,
        interrupting_commands=True,
        leave_ringing_legs=True,
    )
    workers = [ProcessWorker(name, port, wiring) for name, port in zip("ab", ports, strict=True)]
    redis = connect(server.url)
    sampler = Sampler(redis, [plan.id for plan in roster], config.sample_every_s)
    center = _Center(config, sim, proxy, workers, plans)
    try:
        async with serve(sim.app, sock=bird_sock), proxy.serving(proxy_sock):
            try:
                await asyncio.gather(*(worker.start() for worker in workers))
                sampling = asyncio.create_task(sampler.run())
                try:
                    await center.place_calls()
                    waited = await center.wait_all_ended(redis)
                    calls_ended = time.time()
                    await _settle(redis, keys_.channel_id)
                finally:
                    sampler.stop()
                    await asyncio.wait({sampling}, timeout=10.0)
                    sampling.cancel()
                ended = time.time()
                store = CallStore(redis, ended_ttl_s=3600, channel_id=keys_.channel_id)
                follow_ups = follow_up_calls(sim, plans, center.call_ids)
                every_call = center.call_ids + [c for ids in follow_ups.values() for c in ids]
                states = {cid: await store.load_call(cid) for cid in every_call}
                leftovers = await read_leftovers(
                    redis, keys_.channel_id, every_call, [p.id for p in roster]
                )
            finally:
                sim.release_held_requests()
                await asyncio.gather(*(worker.stop() for worker in workers))
        await sim.aclose()
    finally:
        await redis.aclose()
    lines, errors = read_worker_logs(workers, out)
    return Observed(
        config=config,
        plans=plans,
        roster=roster,
        call_ids=center.call_ids,
        follow_ups=follow_ups,
        sim=sim,
        snapshots=sampler.snapshots,
        log_lines=lines,
        worker_errors=errors,
        states=states,
        leftovers=leftovers,
        incidents=center.incidents,
        started=center.started,
        ended=ended,
        ended_because=waited,
        calls_ended=calls_ended,
        proxy=proxy,
        out_dir=out,
        sampler_errors=sampler.errors,
    )


class _Center:
    """Places the callers on schedule, and kills a worker mid-run."""

    def __init__(
        self,
        config: CenterConfig,
        sim: BirdSimulator,
        proxy: Proxy,
        workers: list[ProcessWorker],
        plans: list[CallerPlan],
    ) -> None:
        self.config = config
        self.sim = sim
        self.proxy = proxy
        self.workers = workers
        self.plans = plans
        self.call_ids: list[str] = []
        self.incidents: list[Incident] = []
        self.started = time.time()
        self._kill: asyncio.Task[None] | None = None

    def now(self) -> float:
        return round(time.time() - self.started, 3)

    def live(self) -> int:
        return sum(1 for cid in self.call_ids if not self.sim.calls[cid].ended)

    async def place_calls(self) -> None:
        self.started = time.time()
        if self.config.kill_at_s is not None:
            self._kill = asyncio.create_task(self._kill_and_replace(self.config.kill_at_s))
        for plan in self.plans:
            delay = self.started + plan.at_s - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            script = CallerScript(
                name=f"caller {plan.index}" + (" (VIP)" if plan.priority else ""),
                from_number=plan.from_number,
                to_number=plan.to_number,
                inputs=("1",) if plan.calls_back else (),
                hangup_after_s=plan.hangup_after_s,
            )
            self.call_ids.append(await self.sim.place_inbound_call(script))

    async def _kill_and_replace(self, at_s: float) -> None:
        """SIGKILL worker a at ``at_s``, at a moment it is handling a delivery (waiting up
        to 3 s for one), and start a new process on its port after ``replace_after_s``."""
        await asyncio.sleep(max(0.0, self.started + at_s - time.time()))
        worker = self.workers[0]
        upstream = f"http://127.0.0.1:{worker.port}"
        give_up = time.monotonic() + 3.0
        for _ in range(100_000):  # the proxy counts what it forwards: poll it
            if self.proxy.in_flight[upstream] or time.monotonic() > give_up:
                break
            await asyncio.sleep(0.001)
        cut = self.proxy.in_flight[upstream]
        await worker.kill()
        self.incidents.append(
            Incident(
                "worker-sigkill",
                self.now(),
                {"worker": worker.name, "deliveries_in_flight": cut, "live_calls": self.live()},
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
                    "down_s": round(self.now() - begun + self.config.replace_after_s, 2),
                },
            )
        )

    async def wait_all_ended(self, redis: Redis) -> str:
        """Until every call has ended and its deliveries were answered (its agents' legs
        too), no callback is pending any more and every follow-up call has ended too, or
        the run's time is up."""
        deadline = self.started + self.config.max_run_s
        try:
            while True:
                roots = [self.sim.calls[cid] for cid in self.call_ids]
                roots += [c for c in list(self.sim.calls.values()) if c.party == "callee"]
                if all(root.settled.is_set() for root in roots):
                    with contextlib.suppress(RedisError, OSError):
                        if not await redis.zcard(keys.queue_callbacks(QUEUE)):
                            return "every call ended and every delivery was answered"
                if time.time() > deadline:
                    live = sum(1 for root in roots if not root.ended)
                    pending = await redis.zcard(keys.queue_callbacks(QUEUE))
                    return (
                        f"stopped after {self.config.max_run_s:.0f} s with {live} call(s) live "
                        f"and {pending} callback(s) pending"
                    )
                await asyncio.sleep(0.2)
        finally:
            if self._kill is not None:
                await self._kill


SETTLE_CAP_S = OFFER_LEASE_S + 2.0


async def _settle(redis: Redis, channel_id: str) -> None:
    """Wait until no offer is still ``chosen`` (its lease running) and no timer of an
    offer or a call is left (timers a killed worker had claimed fire again later), at most
    :data:`SETTLE_CAP_S`; then two timer polls more."""
    deadline = time.time() + SETTLE_CAP_S
    while time.time() < deadline:
        timers = await redis.zrange(keys.timers(channel_id), 0, -1)
        pending = [m for m in timers if not _text(m).startswith("agent:")]
        chosen = 0
        async for key in redis.scan_iter(match=keys.offer("*"), count=500):
            chosen += _text(await redis.hget(key, "status")) == "chosen"
        if not pending and not chosen:
            break
        await asyncio.sleep(0.25)
    await asyncio.sleep(1.0)


async def read_leftovers(
    redis: Redis, channel_id: str, call_ids: Sequence[str], agent_ids: Sequence[str]
) -> list[str]:
    """What Redis still holds of the line once every call has ended (:data:`DEFINITIONS`,
    ``leftovers``)."""
    found: list[str] = []
    for name, key in (
        ("waiting", keys.queue_waiting(QUEUE)),
        ("ringing", keys.queue_offered(QUEUE)),
        ("callbacks", keys.queue_callbacks(QUEUE)),
    ):
        for member in await redis.zrange(key, 0, -1):
            found.append(f"call {_text(member)} still in the queue's {name} set ({key})")
    async for key in redis.scan_iter(match=keys.queue_entry(QUEUE, "*"), count=500):
        found.append(f"queue entry {_text(key)} still exists")
    async for key in redis.scan_iter(match=keys.offer("*"), count=500):
        fields = {_text(k): _text(v) for k, v in (await redis.hgetall(key)).items()}
        found.append(f"offer {_text(key)} still exists: {fields}")
    for agent_id in agent_ids:
        state, call = await redis.hmget(keys.agent(agent_id), ["state", "call"])
        if _text(state) in ("offered", "in_call"):
            found.append(f"agent {agent_id} still {_text(state)} (call {_text(call)})")
    placed = set(call_ids)
    for member in await redis.zrange(keys.timers(channel_id), 0, -1):
        text = _text(member)
        if text.startswith(("offer:", "callback:")) or text in placed:
            found.append(f"timer {text} still set")
    for call_id in call_ids:
        ttl = await redis.ttl(keys.call(call_id))
        if ttl == -1:
            found.append(f"call {call_id}: its state has no TTL")
    return found


def follow_up_calls(
    sim: BirdSimulator, plans: Sequence[CallerPlan], call_ids: Sequence[str]
) -> dict[str, list[str]]:
    """Caller's call id -> Bird's calls to their number (the follow-up calls of their
    callback: the service calls nobody else), by when they were placed."""
    number_of = {plan.from_number: cid for plan, cid in zip(plans, call_ids, strict=False)}
    found: dict[str, list[SimCall]] = defaultdict(list)
    for call in list(sim.calls.values()):
        if call.party == "callee" and call.to_number in number_of:
            found[number_of[call.to_number]].append(call)
    return {
        cid: [c.id for c in sorted(calls, key=lambda c: c.created_at.timestamp())]
        for cid, calls in found.items()
    }


def read_worker_logs(
    workers: Sequence[ProcessWorker], out: Path
) -> tuple[list[dict[str, Any]], list[str]]:
    """Every JSON log line of every worker (each with ``worker``: the file's name, and
    ``t``: its timestamp in seconds), and whatever else they wrote (tracebacks)."""
    lines: list[dict[str, Any]] = []
    errors: list[str] = []
    for worker in workers:
        for path in worker.log_files:
            for raw in path.read_text(errors="replace").splitlines():
                try:
                    line = json.loads(raw)
                except ValueError:
                    line = None
                if not isinstance(line, dict) or not isinstance(line.get("timestamp"), str):
                    errors.append(f"{path.name}: {raw}")
                    continue
                stamp = str(line["timestamp"]).replace("Z", "+00:00")
                line["t"] = datetime.fromisoformat(stamp).timestamp()
                line["worker"] = path.stem
                lines.append(line)
    for path in sorted(out.glob("worker-*.stderr")):
        text = path.read_text(errors="replace").strip()
        errors += [f"{path.name}: {raw}" for raw in text.splitlines()]
    lines.sort(key=lambda line: float(line["t"]))
    return lines, errors


# -- records: what the judge reads --------------------------------------------------------

DISPATCH_TO_LOG_S = 0.25
"""The line chooses an offer (the dispatch script) at most this long before the call's
``offered`` log line (the Offered trigger loads, plans and commits the call, then logs)."""
ASK_TO_LOG_S = 0.1
"""The line says a caller's position (the ask script) at most this long before the
``position_announced`` line of the transition that took the answer."""
LOG_SKEW_S = 0.1
"""What a log line's time may lag behind the commit it tells of (two workers, two
processes: their lines about one call may come out of order by this much)."""
JOIN_UNSURE_S = 0.05
"""How far a joined_at taken from a log line (``node_entered``) may be from the exact one
(the place score the samples show), when no sample saw the caller in line."""
LEAVES = ("answered", "abandoned", "timed_out", "left", "callback")
"""The log events of a caller leaving the line (``service.core.engine``)."""


@dataclass(frozen=True)
class Span:
    """A stretch of time, ``[start, end]`` (wall clock), and what says so."""

    start: float
    end: float
    source: str

    def meets(self, lo: float, hi: float) -> bool:
        return self.start <= hi and lo <= self.end


@dataclass(frozen=True)
class Leg:
    """An agent's leg as Bird saw it: one bridge, one offer."""

    leg_id: str
    call_id: str
    agent: str
    """The number it rang."""
    offer: str | None
    """The queue offer its notification URL names (A10)."""
    requested: float
    """When the service's bridge request reached Bird."""
    ringing: float | None
    answered: float | None
    ended: float | None
    left_ringing: bool = False
    """The caller hung up while it rang and Bird left it ringing (A11)."""
    callback_of: str | None = None
    """A leg of a follow-up call (``call_id``): the call id of the caller whose callback
    it serves."""


@dataclass(frozen=True)
class Announcement:
    """A position announcement a caller heard."""

    call_id: str
    heard_at: float
    position: int
    text: str
    decided_at: float
    """When the service decided it: its ``position_announced`` log line, or (that line
    lost with a killed worker) the start of the prompt the caller heard before it."""
    decided_logged: bool


@dataclass
class CallerRecord:
    """One caller, as the judge needs them; or (``kind`` ``callback``) the place a
    caller's callback holds in line after they left it (``call_id``: its ``cb:ID``
    member), which counts for the positions of the others, not for fifo or outcomes."""

    call_id: str
    index: int
    priority: int
    queue: str = QUEUE
    kind: str = "caller"
    joined: float | None = None
    """The place's time (the service's joined_at: the place score); None: never joined."""
    joined_exact: bool = True
    in_line_from: float | None = None
    """By then the line surely held them (seen in a sample, or logged ``joined``)."""
    gone: Span | None = None
    """When the line let them go (answered, hung up, timed out): between ``start`` and
    ``end``; None: never (or never in line)."""
    offers: list[Span] = field(default_factory=list)
    """Offers of their own in progress, from every source: the service's ``offered`` to
    ``missed`` lines, samples showing them in the ringing set, Bird's legs from the bridge
    request to their end, offers taken back."""
    logged_offers: list[Span] = field(default_factory=list)
    """The service's own view: each ``offered`` line to the line that ended that offer."""
    dispatched: Span | None = None
    """For a connected caller: when the line chose the offer that connected them."""
    announced: list[tuple[float, int]] = field(default_factory=list)
    """Each ``position_announced`` line: (time, position)."""
    outcome: str | None = None
    """How the call ended (:data:`OUTCOMES`), None: none of them."""
    outcome_problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the records could not say for sure (a log line lost with a killed worker)."""


@dataclass
class Records:
    callers: dict[str, CallerRecord]
    legs: list[Leg]
    announcements: list[Announcement]
    snapshots: list[Snapshot]
    leftovers: list[str]
    end: float
    """When the records were taken (what has not ended lasts until then)."""


OUTCOMES = ("connected", "timed_out", "abandoned", "called_back")


def classify(
    *,
    ended: bool,
    hangup_source: str | None,
    agent_answered: bool,
    service_outcome: str | None,
    service_node: str | None,
    left_for: str | None,
    called_back: str | None = None,
) -> tuple[str | None, list[str]]:
    """How a caller's call ended (one of :data:`OUTCOMES`), or why it is none of them.
    ``left_for`` is the log event with which the service took them out of the line;
    ``called_back`` what became of the follow-up calls of a caller who left for a
    callback: "connected" (one reached an agent who answered, the service's state says
    agent_connected), else why not."""
    if not ended:
        return None, ["still live at the end of the run"]
    if service_outcome is None:
        return None, ["no state in Redis"]
    if agent_answered:
        if service_outcome == "agent_connected":
            return "connected", []
        return None, [f"an agent answered, but the service says {service_outcome}"]
    if left_for == "callback":
        if called_back == "connected":
            return "called_back", []
        return None, [f"left the line for a callback, but {called_back or 'no follow-up call'}"]
    if hangup_source == "caller":
        if service_outcome == "ended_by_caller":
            return "abandoned", []
        return None, [f"the caller hung up, but the service says {service_outcome}"]
    if service_outcome == "hangup_node" and service_node == TIMEOUT_NODE:
        if left_for not in (None, "timed_out"):
            return None, [f"hung up at {TIMEOUT_NODE}, but the service logged {left_for}"]
        return "timed_out", []
    return None, [
        f"ended by {hangup_source} with service outcome {service_outcome} at {service_node} "
        "(neither connected, timed out, abandoned nor called back)"
    ]


_ANNOUNCED = re.compile(r"You are (?:next|number (\d+)) in line")


def parse_announcement(text: str) -> int | None:
    found = _ANNOUNCED.search(text)
    if found is None:
        return None
    return int(found.group(1)) if found.group(1) else 1


def _when(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


def sim_legs(
    sim: BirdSimulator,
    call_ids: Iterable[str],
    follow_ups: Mapping[str, Sequence[str]] | None = None,
) -> list[Leg]:
    """Every agent leg of the callers' calls and of the follow-up calls of their
    callbacks (``follow_ups``: caller's call id -> follow-up call ids)."""
    legs = []
    served: list[tuple[str, str | None]] = [(cid, None) for cid in call_ids]
    served += [(f, cid) for cid, ids in (follow_ups or {}).items() for f in ids]
    for call_id, callback_of in served:
        for leg in _agent_legs(sim.calls[call_id]):
            url = str((leg.notification or {}).get("url", ""))
            offer = parse_qs(urlsplit(url).query).get("offer", [None])[0]
            legs.append(
                Leg(
                    leg_id=leg.id,
                    call_id=call_id,
                    agent=leg.to_number,
                    offer=offer,
                    requested=leg.created_at.timestamp(),
                    ringing=_when(leg.ringing_at),
                    answered=_when(leg.answered_at),
                    ended=_when(leg.ended_at),
                    left_ringing=leg.left_ringing,
                    callback_of=callback_of,
                )
            )
    return legs


def _agent_legs(call: SimCall) -> list[SimCall]:
    found = []
    for child in call.children:
        if child.party == "agent":
            found.append(child)
        found += _agent_legs(child)
    return found


class _Samples:
    """The samples, indexed by call."""

    def __init__(self, snapshots: Sequence[Snapshot], end: float) -> None:
        self.times = [s.at for s in snapshots]
        self.end = end
        self.where: dict[str, dict[int, str]] = defaultdict(dict)
        self.score: dict[str, int] = {}
        for index, snap in enumerate(snapshots):
            for name, members in (("waiting", snap.waiting), ("offered", snap.offered)):
                for call_id, score in members.items():
                    self.where[call_id][index] = name
                    self.score.setdefault(call_id, score)

    def before(self, index: int) -> float:
        return self.times[index - 1] if index > 0 else self.times[index]

    def after(self, index: int) -> float:
        return self.times[index + 1] if index + 1 < len(self.times) else self.end

    def first_seen(self, call_id: str) -> float | None:
        seen = self.where.get(call_id)
        return self.times[min(seen)] if seen else None

    def last_seen(self, call_id: str) -> float | None:
        seen = self.where.get(call_id)
        return self.times[max(seen)] if seen else None

    def in_last(self, call_id: str) -> bool:
        return bool(self.times) and (len(self.times) - 1) in self.where.get(call_id, {})

    def ringing_runs(self, call_id: str) -> list[tuple[int, int]]:
        """Runs of samples (first, last index) that show the caller in the ringing set."""
        runs: list[tuple[int, int]] = []
        for index in sorted(i for i, w in self.where.get(call_id, {}).items() if w == "offered"):
            if runs and runs[-1][1] == index - 1:
                runs[-1] = (runs[-1][0], index)
            else:
                runs.append((index, index))
        return runs

    def ringing_spans(self, call_id: str) -> list[Span]:
        """Each run, widened to the samples around it (it began and ended in between)."""
        return [Span(self.before(a), self.after(b), "redis") for a, b in self.ringing_runs(call_id)]

    def back_or_gone_after(self, call_id: str, moment: float) -> float | None:
        """The first sample after ``moment`` that shows the caller waiting or out of line."""
        seen = self.where.get(call_id, {})
        for index, at in enumerate(self.times):
            if at > moment and seen.get(index) != "offered":
                return at
        return None

    def absent_after(self, call_id: str, moment: float) -> float | None:
        seen = self.where.get(call_id, {})
        for index, at in enumerate(self.times):
            if at > moment and index not in seen:
                return at
        return None


def build_records(observed: Observed) -> Records:
    """The records of a run: Bird's legs and what callers heard, the workers' log lines
    and the samples, put together per caller."""
    sim, end = observed.sim, observed.ended
    samples = _Samples(observed.snapshots, end)
    legs = sim_legs(sim, observed.call_ids, observed.follow_ups)
    legs_of: dict[str, list[Leg]] = defaultdict(list)
    for leg in legs:
        legs_of[leg.call_id].append(leg)
    lines_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in observed.log_lines:
        if line.get("call_id"):
            lines_of[str(line["call_id"])].append(line)
    callers: dict[str, CallerRecord] = {}
    announcements: list[Announcement] = []
    for plan, call_id in zip(observed.plans, observed.call_ids, strict=True):
        record = _caller(plan, call_id, lines_of[call_id], legs_of[call_id], samples, end)
        call = sim.calls[call_id]
        stored = observed.states.get(call_id)
        left = next((str(ln["event"]) for ln in lines_of[call_id] if ln["event"] in LEAVES), None)
        follow_ups = observed.follow_ups.get(call_id, [])
        called_back = (
            _called_back(follow_ups, legs_of, observed.states) if left == "callback" else None
        )
        record.outcome, record.outcome_problems = classify(
            ended=call.ended,
            hangup_source=call.hangup_source,
            agent_answered=any(leg.answered is not None for leg in legs_of[call_id]),
            service_outcome=str(stored.state.outcome) if stored and stored.state.outcome else None,
            service_node=stored.state.node if stored else None,
            left_for=left,
            called_back=called_back,
        )
        callers[call_id] = record
        announcements += _announcements(sim, call, record)
        booked = next((ln for ln in lines_of[call_id] if ln["event"] == "callback_requested"), None)
        if booked is not None:
            follow_lines = [ln for f in follow_ups for ln in lines_of[f]]
            place = _callback_place(record, booked, follow_lines, samples, end)
            callers[place.call_id] = place
    return Records(callers, legs, announcements, observed.snapshots, observed.leftovers, end)


def _called_back(
    follow_ups: Sequence[str],
    legs_of: Mapping[str, Sequence[Leg]],
    states: Mapping[str, StoredCall | None],
) -> str:
    """ "connected" if a follow-up call reached an agent who answered, else why not."""
    if not follow_ups:
        return "no follow-up call was placed to the caller's number"
    seen = []
    for follow_up in follow_ups:
        stored = states.get(follow_up)
        outcome = str(stored.state.outcome) if stored and stored.state.outcome else None
        answered = any(leg.answered is not None for leg in legs_of.get(follow_up, []))
        if answered and outcome == "agent_connected":
            return "connected"
        seen.append(f"{follow_up}: agent answered {answered}, service outcome {outcome}")
    return "no follow-up call reached an agent (" + "; ".join(seen) + ")"


def _callback_place(
    caller: CallerRecord,
    booked: dict[str, Any],
    follow_lines: list[dict[str, Any]],
    samples: _Samples,
    end: float,
) -> CallerRecord:
    """The place in line of ``caller``'s callback (``cb:ID``): at the caller's place
    (the samples show its score), in line from its booking (the ``callback_requested``
    line, or a sample) until the line let it go (the follow-up call's ``answered`` line,
    or a ``callback_failed`` one: it waits off the line for a retry or is dropped)."""
    member = f"cb:{booked['callback']}"
    record = CallerRecord(member, caller.index, caller.priority, kind="callback")
    score = samples.score.get(member)
    if score is not None:
        record.joined = (score % PLACE_WEIGHT) / 1000
        record.priority = MAX_PRIORITY - score // PLACE_WEIGHT
    else:
        record.joined, record.joined_exact = caller.joined, caller.joined_exact
        record.notes.append("its place from the caller's (no sample saw it)")
    unsure = 0.001 if record.joined_exact and caller.joined_exact else JOIN_UNSURE_S
    if (
        caller.joined is not None
        and record.joined is not None
        and abs(record.joined - caller.joined) > unsure
    ):
        record.notes.append(
            f"not at its caller's place: joined {record.joined}, not {caller.joined}"
        )
    proofs = [float(booked["t"]), samples.first_seen(member)]
    record.in_line_from = min(p for p in proofs if p is not None)
    leaving = ("answered", "callback_failed")
    leave = next((ln for ln in follow_lines if ln["event"] in leaving), None)
    if leave is not None:
        record.gone = Span(float(leave["t"]) - LOG_SKEW_S, float(leave["t"]), "log")
        if leave["event"] == "callback_failed":
            record.notes.append("left the line by a failed follow-up call (a retry: not followed)")
    elif not samples.in_last(member):
        moment = max(filter(None, [samples.last_seen(member), record.in_line_from]))
        record.gone = Span(moment, samples.absent_after(member, moment) or end, "redis")
        record.notes.append("no log line says when it left the line: the samples do")
    return record


def _caller(
    plan: CallerPlan,
    call_id: str,
    lines: list[dict[str, Any]],
    legs: list[Leg],
    samples: _Samples,
    end: float,
) -> CallerRecord:
    record = CallerRecord(call_id, plan.index, plan.priority)

    def first(event: str, **match: Any) -> dict[str, Any] | None:
        for line in lines:
            if line["event"] == event and all(line.get(k) == v for k, v in match.items()):
                return line
        return None

    score = samples.score.get(call_id)
    if score is not None:
        record.joined = (score % PLACE_WEIGHT) / 1000
        seen_priority = MAX_PRIORITY - score // PLACE_WEIGHT
        if seen_priority != plan.priority:
            record.notes.append(f"in line at priority {seen_priority}, not {plan.priority}")
    else:
        entered = first("node_entered", node=WAIT_NODE)
        if entered is not None:
            record.joined, record.joined_exact = float(entered["t"]), False
            record.notes.append("joined_at from its node_entered line (no sample saw it)")
    proofs = [samples.first_seen(call_id)]
    for event in ("joined", "offered"):
        line = first(event)
        proofs.append(float(line["t"]) if line else None)
    known = [p for p in proofs if p is not None]
    record.in_line_from = min(known) if known else None
    leave = next((line for line in lines if line["event"] in LEAVES), None)
    answered_leg = next((leg for leg in legs if leg.answered is not None), None)
    if leave is not None:
        record.gone = Span(float(leave["t"]) - LOG_SKEW_S, float(leave["t"]), "log")
    elif record.in_line_from is not None and not samples.in_last(call_id):
        # The line let them go, but the line that says so was lost (a killed worker):
        # no earlier than Bird's news of it, no later than a sample without them.
        ended = answered_leg.answered if answered_leg else None
        moment = max(filter(None, [ended, samples.last_seen(call_id), record.in_line_from]))
        latest = samples.absent_after(call_id, moment) or end
        record.gone = Span(moment, latest, "bird+redis")
        record.notes.append("no log line says when it left the line: Bird and the samples do")
    for line in lines:
        if line["event"] == "offered":
            record.logged_offers.append(_offer_span(line, lines, legs, samples, end, record))
        elif line["event"] == "offer_taken_back":
            t = float(line["t"])
            record.offers.append(Span(t - DISPATCH_TO_LOG_S, t, "log taken back"))
        elif line["event"] == "position_announced":
            record.announced.append((float(line["t"]), int(line["position"])))
    record.offers += record.logged_offers
    record.offers += samples.ringing_spans(call_id)
    record.offers += [Span(leg.requested, leg.ended or end, "bird") for leg in legs]
    if answered_leg is not None:
        record.dispatched = _dispatched(answered_leg, lines, samples, call_id)
    return record


def _offer_span(
    offered: dict[str, Any],
    lines: list[dict[str, Any]],
    legs: list[Leg],
    samples: _Samples,
    end: float,
    record: CallerRecord,
) -> Span:
    """From an ``offered`` line to the line that ended the offer (``missed``,
    ``answered``, or the caller leaving the line)."""
    offer, start = offered.get("offer"), float(offered["t"])
    for line in lines:
        if float(line["t"]) < start or line is offered:
            continue
        if line["event"] in ("missed", "answered") and line.get("offer") == offer:
            return Span(start, float(line["t"]), "log")
        if line["event"] in LEAVES:
            return Span(start, float(line["t"]), "log")
    leg = next((leg for leg in legs if leg.offer == offer), None)
    ended = leg.ended if leg is not None and leg.ended is not None else start
    back = samples.back_or_gone_after(record.call_id, ended)
    record.notes.append(f"offer {offer}: no log line ends it; Bird's leg and the samples do")
    return Span(start, back or end, "log+bird+redis")


def _dispatched(leg: Leg, lines: list[dict[str, Any]], samples: _Samples, call_id: str) -> Span:
    """When the line chose the offer of ``leg``: up to :data:`DISPATCH_TO_LOG_S` before
    its ``offered`` line (or before Bird got the bridge), narrowed to the samples
    between which the caller moved into the ringing set."""
    line = next(
        (ln for ln in lines if ln["event"] == "offered" and ln.get("offer") == leg.offer), None
    )
    hi = float(line["t"]) if line is not None else leg.requested
    lo = hi - DISPATCH_TO_LOG_S * (1 if line is not None else 2)
    for first, _ in samples.ringing_runs(call_id):
        before, seen = samples.before(first), samples.times[first]
        if first > 0 and before <= hi and seen >= lo:
            narrowed = (max(lo, before), min(hi, seen))
            if narrowed[0] <= narrowed[1]:
                return Span(narrowed[0], narrowed[1], "log+redis" if line else "bird+redis")
    return Span(lo, hi, "log" if line is not None else "bird")


def _announcements(sim: BirdSimulator, call: SimCall, record: CallerRecord) -> list[Announcement]:
    transcript = sim.transcript(call.id)
    t0, scale = call.created_at.timestamp(), sim.time_scale
    found = []
    previous_prompt: float | None = None
    for entry in transcript.entries:
        if entry.kind != HEARD:
            continue
        heard_at = t0 + entry.at * scale
        position = parse_announcement(entry.text)
        if position is not None:
            decided = [t for t, n in record.announced if t <= heard_at + LOG_SKEW_S]
            logged = bool(decided) and dict(record.announced)[decided[-1]] == position
            if logged:
                decided_at = decided[-1]
            else:
                decided_at = previous_prompt if previous_prompt is not None else t0
                record.notes.append(f"announcement heard at {heard_at:.3f}: its log line lost")
            found.append(Announcement(call.id, heard_at, position, entry.text, decided_at, logged))
        previous_prompt = heard_at
    return found


# -- the judge ----------------------------------------------------------------------------

DEFINITIONS: dict[str, str] = {
    "agent_double_offer": (
        "pairs of agent legs to one agent number whose ringing-or-connected times overlap: "
        "Bird's leg from ringingAt to endedAt (a leg not ended when the run stopped lasts "
        "until then), so that one person's phone rang, or they talked, for two callers at "
        "once; the legs of the callers' calls and of the follow-up calls of their callbacks"
    ),
    "caller_double_offer": (
        "pairs of agent legs of one caller's call, or of it and the follow-up calls of her "
        "callback, that were live at once (Bird's leg from the bridge request to endedAt: a "
        "second agent rung for a caller while the first leg still rang or talked); and "
        "samples of Redis in which two agents were offered or in a call for one caller or "
        "one callback"
    ),
    "fifo": (
        "connected callers b put through before a caller a of the same queue and priority "
        "with an earlier place (a smaller joined_at, the place score Redis holds) who was "
        "waiting with no offer of her own in progress at any moment while the line chose "
        "b's offer. When the line chose it: at most 0.25 s before b's offered log line (or "
        "before Bird got the bridge, if that line was lost), narrowed to the two samples "
        "between which b moved into the ringing set. a was waiting: the line surely held "
        "her before that (a sample showed her, or she was logged joined) and she had not "
        "left it (no answered, abandoned or timed_out line, less 0.1 s of log skew, before "
        "it ended). An offer of hers is in progress from the moment it was chosen to her "
        "being back in line: her offered to missed lines, samples showing her in the "
        "ringing set (widened to the samples around them), Bird's agent leg from the "
        "bridge request to its end, and offers taken back (0.25 s before that line). A "
        "caller who left for a callback (her callback line) is out of line from then. "
        "Callbacks (their cb:ID places and follow-up calls) are left out, neither b nor a: "
        "a callback keeps its caller's place (the samples show her score), so that "
        "serving it before callers who joined after her is right"
    ),
    "priority_order": (
        "as fifo, for a caller a of a higher priority (whatever her place's time): "
        "connected callers put through while a caller of a higher priority in the same "
        "queue was waiting with no offer of her own in progress"
    ),
    "outcome": (
        "callers whose call did not end as one of: connected (Bird shows an agent leg of "
        "theirs answered, the service's state says agent_connected), timed out (the "
        "service hung up at the queue's on_timeout node, outcome hangup_node), abandoned "
        "(the caller hung up before any agent answered, outcome ended_by_caller), called "
        "back (the service took them out of the line for a callback, its callback line, "
        "and a follow-up call Bird placed to their number reached an agent who answered, "
        "its state agent_connected; a callback not connected by the end of the run is a "
        "violation, whatever the reason: the callees answer and press 1); or that had not "
        "ended (Bird's call and every agent leg of it, every delivery answered) when the "
        "run stopped"
    ),
    "announcement_position": (
        'position announcements heard ("You are number N in line", "You are next in '
        "line\" for 1) whose N was not the caller's true position at any moment between "
        "0.1 s before the service decided it (its position_announced line; lost with a "
        "killed worker: the start of the prompt heard before it) and the moment the "
        "caller heard it. The true position: 1 + the callers of the same queue ahead of "
        "them (higher priority, or the same priority and an earlier joined_at) who were "
        "in line then (from when the line held them until it let them go, as for fifo; "
        "where a log line was lost, any moment Bird and the samples allow), and the "
        "callbacks ahead of them (at their caller's place, in line from their "
        "callback_requested line until their follow-up call's answered or callback_failed "
        "line), as the service counts them. Follow-up calls hear no announcement"
    ),
    "announcement_while_offered": (
        "position announcements heard while an agent leg of that caller had been "
        "requested and not ended, or after an agent answered them; and position_announced "
        "lines logged while the service held an offer for that caller (0.1 s after its "
        "offered line until 0.1 s before the line that ended it) or after it had let them "
        "out of the line"
    ),
    "leftovers": (
        "once every call had ended and no offer's lease or claimed timer was due any more "
        "(at most 12 s later): members of the queue's waiting, ringing and callbacks sets, "
        "queue entries, offers, agents offered or in a call, timers of offers, of callbacks "
        "or of the calls (follow-up calls included), and call states without a TTL, in Redis"
    ),
}
VERDICTS = tuple(DEFINITIONS)


@dataclass(frozen=True)
class Violation:
    verdict: str
    call_ids: tuple[str, ...]
    detail: str


def judge(records: Records) -> list[Violation]:
    """Every violation of every verdict (:data:`DEFINITIONS`)."""
    return [
        *agent_double_offers(records),
        *caller_double_offers(records),
        *line_order(records, "fifo"),
        *line_order(records, "priority_order"),
        *outcomes(records),
        *announcement_positions(records),
        *announcements_while_offered(records),
        *[Violation("leftovers", (), text) for text in records.leftovers],
    ]


def agent_double_offers(records: Records) -> list[Violation]:
    by_agent: dict[str, list[Leg]] = defaultdict(list)
    for leg in records.legs:
        if leg.ringing is not None:
            by_agent[leg.agent].append(leg)
    found = []
    for agent, legs in sorted(by_agent.items()):
        legs.sort(key=lambda leg: leg.ringing or 0.0)
        for index, first in enumerate(legs):
            first_end = first.ended if first.ended is not None else records.end
            for later in legs[index + 1 :]:
                assert later.ringing is not None
                if later.ringing < first_end:
                    found.append(
                        Violation(
                            "agent_double_offer",
                            (first.call_id, later.call_id),
                            f"agent {agent}: leg {first.leg_id} (call {first.call_id}) rang "
                            f"or talked until {_clock(first_end)}, leg {later.leg_id} (call "
                            f"{later.call_id}) rang from {_clock(later.ringing)}",
                        )
                    )
    return found


def caller_double_offers(records: Records) -> list[Violation]:
    by_call: dict[str, list[Leg]] = defaultdict(list)
    for leg in records.legs:  # a caller's legs and those of their follow-up calls
        by_call[leg.callback_of or leg.call_id].append(leg)
    found = []
    for call_id, legs in sorted(by_call.items()):
        legs.sort(key=lambda leg: leg.requested)
        for index, first in enumerate(legs):
            first_end = first.ended if first.ended is not None else records.end
            for later in legs[index + 1 :]:
                if later.requested < first_end:
                    found.append(
                        Violation(
                            "caller_double_offer",
                            (call_id,),
                            f"call {call_id}: leg to {first.agent} live until "
                            f"{_clock(first_end)}, leg to {later.agent} requested at "
                            f"{_clock(later.requested)}",
                        )
                    )
    for snap in records.snapshots:
        holding: dict[str, list[str]] = defaultdict(list)
        for agent_id, (state, call) in snap.agents.items():
            if state in ("offered", "in_call") and call:
                holding[call].append(f"{agent_id} {state}")
        for call, agents in holding.items():
            if len(agents) > 1:
                found.append(
                    Violation(
                        "caller_double_offer",
                        (call,),
                        f"sample at {_clock(snap.at)}: agents {', '.join(agents)} for call {call}",
                    )
                )
    return found


def _ahead(a: CallerRecord, b: CallerRecord, verdict: str) -> bool:
    """Whether ``a`` surely stood ahead of ``b`` in line, for ``verdict``."""
    if a.queue != b.queue or a.joined is None or b.joined is None:
        return False
    if verdict == "priority_order":
        return a.priority > b.priority
    unsure = 0.0 if a.joined_exact and b.joined_exact else JOIN_UNSURE_S
    return a.priority == b.priority and a.joined < b.joined - unsure


def overtakes(
    records: Records, verdict: str
) -> Iterable[tuple[CallerRecord, CallerRecord, list[Span]]]:
    """For ``fifo`` or ``priority_order``: every connected caller ``b`` and caller ``a``
    who stood ahead of them and was surely in line while the line chose b's offer, with
    a's offers in progress then (none: a violation)."""
    callers = [c for c in records.callers.values() if c.kind == "caller"]
    for b in callers:
        chosen = b.dispatched
        if chosen is None:
            continue
        lo, hi = chosen.start, chosen.end
        for a in callers:
            if a is b or not _ahead(a, b, verdict):
                continue
            if a.in_line_from is None or a.in_line_from > lo:
                continue  # not surely in line yet
            if a.gone is not None and a.gone.start < hi:
                continue  # may have left the line by then
            yield b, a, [span for span in a.offers if span.meets(lo, hi)]


def line_order(records: Records, verdict: str) -> list[Violation]:
    """``fifo`` or ``priority_order``: a connected caller put through while one who stood
    ahead of them waited with no offer of her own in progress."""
    found = []
    for b, a, busy in overtakes(records, verdict):
        if busy:
            continue
        assert b.dispatched is not None
        lo, hi = b.dispatched.start, b.dispatched.end
        found.append(
            Violation(
                verdict,
                (b.call_id, a.call_id),
                f"call {b.call_id} (priority {b.priority}, joined {_clock(b.joined)}) "
                f"was chosen between {_clock(lo)} and {_clock(hi)} ({b.dispatched.source}) "
                f"while call {a.call_id} (priority {a.priority}, joined "
                f"{_clock(a.joined)}, in line since {_clock(a.in_line_from)}, left "
                f"{_clock(a.gone.start) if a.gone else 'never'}) waited with no offer "
                f"in progress",
            )
        )
    return found


def outcomes(records: Records) -> list[Violation]:
    return [
        Violation("outcome", (c.call_id,), f"call {c.call_id}: {'; '.join(c.outcome_problems)}")
        for c in records.callers.values()
        if c.kind == "caller" and c.outcome not in OUTCOMES
    ]


def true_positions(records: Records, x: CallerRecord, moment: float) -> tuple[int, int]:
    """The least and the greatest true position of ``x`` at ``moment`` the records allow."""
    least = most = 1
    for c in records.callers.values():
        if c is x or c.queue != x.queue or c.joined is None or x.joined is None:
            continue
        surely_ahead = _ahead(c, x, "fifo") or _ahead(c, x, "priority_order")
        unsure = 0.0 if c.joined_exact and x.joined_exact else JOIN_UNSURE_S
        maybe_ahead = c.priority > x.priority or (
            c.priority == x.priority and c.joined < x.joined + unsure
        )
        gone_start = c.gone.start if c.gone is not None else math.inf
        gone_end = c.gone.end if c.gone is not None else math.inf
        # A callback is in line from its booking (at its caller's earlier place).
        maybe_from = c.joined
        if c.kind == "callback" and c.in_line_from is not None:
            maybe_from = c.in_line_from - LOG_SKEW_S
        if surely_ahead and c.in_line_from is not None and c.in_line_from <= moment < gone_start:
            least += 1
        if maybe_ahead and maybe_from <= moment < gone_end:
            most += 1
    return least, most


def announcement_checks(records: Records) -> Iterable[tuple[Announcement, list[tuple[int, int]]]]:
    """Every announcement heard, with the caller's true position (least, greatest) at
    each moment of its window at which it may have changed (the first: the window's
    start, the last: when it was heard)."""
    for said in records.announcements:
        x = records.callers.get(said.call_id)
        if x is None:
            continue
        lo, hi = said.decided_at - ASK_TO_LOG_S, said.heard_at
        moments = {lo, hi}
        for c in records.callers.values():
            gone = (c.gone.start, c.gone.end) if c.gone is not None else ()
            for t in (c.joined, c.in_line_from, *gone):
                if t is not None and lo <= t <= hi:
                    moments.add(t)
        yield said, [true_positions(records, x, t) for t in sorted(moments)]


def announcement_positions(records: Records) -> list[Violation]:
    found = []
    for said, ranges in announcement_checks(records):
        if any(least <= said.position <= most for least, most in ranges):
            continue
        shown = sorted({f"{a}" if a == b else f"{a}-{b}" for a, b in ranges})
        found.append(
            Violation(
                "announcement_position",
                (said.call_id,),
                f"call {said.call_id} heard {said.text!r} at {_clock(said.heard_at)} (decided "
                f"{_clock(said.decided_at)}{'' if said.decided_logged else ', log line lost'}); "
                f"its true position then: {', '.join(shown)}",
            )
        )
    return found


def announcements_while_offered(records: Records) -> list[Violation]:
    found = []
    legs_of: dict[str, list[Leg]] = defaultdict(list)
    for leg in records.legs:
        legs_of[leg.call_id].append(leg)
    for said in records.announcements:
        for leg in legs_of[said.call_id]:
            end = leg.ended if leg.ended is not None else records.end
            if leg.requested <= said.heard_at < end:
                found.append(
                    Violation(
                        "announcement_while_offered",
                        (said.call_id,),
                        f"call {said.call_id} heard {said.text!r} at {_clock(said.heard_at)} "
                        f"while its leg to {leg.agent} was live ({_clock(leg.requested)} to "
                        f"{_clock(end)})",
                    )
                )
            elif leg.answered is not None and said.heard_at >= leg.answered:
                found.append(
                    Violation(
                        "announcement_while_offered",
                        (said.call_id,),
                        f"call {said.call_id} heard {said.text!r} at {_clock(said.heard_at)}, "
                        f"after {leg.agent} answered at {_clock(leg.answered)}",
                    )
                )
    for x in records.callers.values():
        for at, position in x.announced:
            for span in x.logged_offers:
                if span.start + LOG_SKEW_S < at < span.end - LOG_SKEW_S:
                    found.append(
                        Violation(
                            "announcement_while_offered",
                            (x.call_id,),
                            f"call {x.call_id}: position {position} announced at {_clock(at)} "
                            f"while its offer was in progress ({_clock(span.start)} to "
                            f"{_clock(span.end)})",
                        )
                    )
            if x.gone is not None and at > x.gone.end + LOG_SKEW_S:
                found.append(
                    Violation(
                        "announcement_while_offered",
                        (x.call_id,),
                        f"call {x.call_id}: position {position} announced at {_clock(at)}, "
                        f"after it left the line ({_clock(x.gone.end)})",
                    )
                )
    return found


def _span(span: Span | None) -> str:
    return "never" if span is None else f"{_clock(span.start)}-{_clock(span.end)} ({span.source})"


def _clock(moment: float | None) -> str:
    if moment is None:
        return "-"
    if math.isinf(moment):
        return "never"
    return datetime.fromtimestamp(moment).strftime("%H:%M:%S.%f")[:-3]


# -- the report ---------------------------------------------------------------------------


@dataclass
class Report:
    data: dict[str, Any]
    violations: list[Violation]

    @property
    def ok(self) -> bool:
        return bool(self.data["ok"])


def analyse(observed: Observed) -> Report:
    records = build_records(observed)
    violations = judge(records)
    data = _report(observed, records, violations)
    _write_evidence(observed, records, violations)
    (observed.out_dir / "report.json").write_text(json.dumps(data, indent=2) + "\n")
    (observed.out_dir / "records.json").write_text(json.dumps(records_to_json(records)) + "\n")
    return Report(data, violations)


def records_to_json(records: Records) -> dict[str, Any]:
    """The records as JSON (``records.json`` of a run: ``--rejudge`` reads it back)."""
    return {
        "callers": [asdict(c) for c in records.callers.values()],
        "legs": [asdict(leg) for leg in records.legs],
        "announcements": [asdict(a) for a in records.announcements],
        "snapshots": [asdict(s) for s in records.snapshots],
        "leftovers": records.leftovers,
        "end": records.end,
    }


def records_from_json(data: Mapping[str, Any]) -> Records:
    def span(raw: Mapping[str, Any] | None) -> Span | None:
        return Span(**raw) if raw is not None else None

    callers = {}
    for raw in data["callers"]:
        fields = dict(raw)
        fields["gone"] = span(fields["gone"])
        fields["dispatched"] = span(fields["dispatched"])
        fields["offers"] = [Span(**o) for o in fields["offers"]]
        fields["logged_offers"] = [Span(**o) for o in fields["logged_offers"]]
        fields["announced"] = [(float(t), int(n)) for t, n in fields["announced"]]
        callers[fields["call_id"]] = CallerRecord(**fields)
    snapshots = [
        Snapshot(
            s["at"], s["waiting"], s["offered"], {k: (v[0], v[1]) for k, v in s["agents"].items()}
        )
        for s in data["snapshots"]
    ]
    return Records(
        callers=callers,
        legs=[Leg(**leg) for leg in data["legs"]],
        announcements=[Announcement(**a) for a in data["announcements"]],
        snapshots=snapshots,
        leftovers=list(data["leftovers"]),
        end=float(data["end"]),
    )


def _report(observed: Observed, records: Records, violations: list[Violation]) -> dict[str, Any]:
    config = observed.config
    by_verdict: dict[str, list[Violation]] = defaultdict(list)
    for violation in violations:
        by_verdict[violation.verdict].append(violation)
    outcome_counts = Counter(
        c.outcome or "none of them" for c in records.callers.values() if c.kind == "caller"
    )
    agents: dict[str, Any] = {}
    for plan in observed.roster:
        legs = [leg for leg in records.legs if leg.agent == plan.number]
        agents[plan.id] = {
            "role": plan.role,
            "number": plan.number,
            "offers": len(legs),
            "rang": sum(1 for leg in legs if leg.ringing is not None),
            "answered": sum(1 for leg in legs if leg.answered is not None),
            "put_on_break": sum(
                1
                for line in observed.log_lines
                if line["event"] == "agent_on_break" and line.get("agent_id") == plan.id
            ),
        }
    missed = Counter(str(ln.get("reason")) for ln in observed.log_lines if ln["event"] == "missed")
    notes = sum(len(c.notes) for c in records.callers.values())
    logged = sum(1 for a in records.announcements if a.decided_logged)
    duration = observed.ended - observed.started
    data: dict[str, Any] = {
        "run": {
            "seed": config.seed,
            "callers": len(observed.call_ids),
            "vip_callers": sum(1 for p in observed.plans if p.priority),
            "impatient_callers": sum(
                1 for p in observed.plans if p.hangup_after_s not in (None, RING_HANGUP_S)
            ),
            "callers_hanging_up_while_offered": sum(
                1 for p in observed.plans if p.hangup_after_s == RING_HANGUP_S
            ),
            "agents": len(observed.roster),
            "placed_over_s": config.place_over_s,
            "time_scale": config.time_scale,
            "simulator": {"interrupting_commands": True, "leave_ringing_legs": True},
            "queue": config.queue.to_json(),
            "workers": "2 ivr serve processes behind a round-robin proxy",
            "duration_s": round(duration, 1),
            "calls_ended_after_s": round(observed.calls_ended - observed.started, 1),
            "ended_because": observed.ended_because,
            "incidents": {i.what: {"at_s": i.at, **i.detail} for i in observed.incidents},
            "proxy_502": sum(observed.proxy.bad_gateway.values()),
            "samples": len(observed.snapshots),
            "sampler_errors": observed.sampler_errors,
            "log_lines": len(observed.log_lines),
            "worker_output_not_json": len(observed.worker_errors),
            "simulator_errors": len(observed.simulator_errors),
            "records_unsure": notes,
            "out_dir": str(observed.out_dir),
        },
        "outcomes": {name: outcome_counts.get(name, 0) for name in (*OUTCOMES, "none of them")},
        "agents": agents,
        "offers": {
            "legs": len(records.legs),
            "answered": sum(1 for leg in records.legs if leg.answered is not None),
            "missed_by_reason": dict(missed),
            "taken_back": sum(1 for ln in observed.log_lines if ln["event"] == "offer_taken_back"),
        },
        "callbacks": {
            "callers_pressing_1": sum(1 for p in observed.plans if p.calls_back),
            **{
                event: sum(1 for ln in observed.log_lines if ln["event"] == event)
                for event in (
                    "callback_offered",
                    "callback",
                    "callback_requested",
                    "callback_placed",
                    "callback_connected",
                    "callback_failed",
                    "callback_call_orphaned",
                )
            },
            "follow_up_calls": sum(len(ids) for ids in observed.follow_ups.values()),
            "follow_up_agent_legs": sum(1 for leg in records.legs if leg.callback_of),
        },
        "announcements": {
            "heard": len(records.announcements),
            "with_their_log_line": logged,
            "logged": sum(len(c.announced) for c in records.callers.values()),
        },
        "examined": _examined(records),
        "verdicts": {
            name: {
                "count": len(by_verdict[name]),
                "definition": DEFINITIONS[name],
                "examples": [v.detail for v in by_verdict[name][:5]],
            }
            for name in VERDICTS
        },
    }
    data["ok"] = not violations
    return data


def _examined(records: Records) -> dict[str, Any]:
    """How much each verdict had to look at (a verdict of 0 over nothing says nothing)."""
    found: dict[str, Any] = {}
    for verdict in ("fifo", "priority_order"):
        cases = list(overtakes(records, verdict))
        sources: Counter[str] = Counter()
        for _, _, busy in cases:
            sources.update({span.source.split()[0] for span in busy})
        found[verdict] = {
            "connected_callers": sum(1 for c in records.callers.values() if c.dispatched),
            "callers_ahead_in_line_at_a_choice": len(cases),
            "of_them_with_an_offer_in_progress_seen_by": dict(sources),
        }
    at_line = 0
    for said in records.announcements:
        x = records.callers.get(said.call_id)
        if x is not None:
            least, most = true_positions(records, x, said.decided_at)
            at_line += least <= said.position <= most
    found["announcement_position"] = {
        "heard": len(records.announcements),
        "true_at_their_log_line": at_line,
        "position_changed_in_window": sum(
            1 for _, ranges in announcement_checks(records) if len(set(ranges)) > 1
        ),
    }
    rang_on = []
    for g in records.legs:
        let_go = records.callers[g.call_id].gone if g.call_id in records.callers else None
        if g.left_ringing and let_go is not None:
            rang_on.append(round((g.ended or records.end) - let_go.end, 2))
    found["agent_double_offer"] = {
        "legs_that_rang": sum(1 for g in records.legs if g.ringing),
        "legs_left_ringing_after_the_caller_hung_up": sum(
            1 for g in records.legs if g.left_ringing
        ),
        "of_them_ringing_on_after_the_hang_up_s": rang_on,
    }
    found["leftovers"] = {"callers": len(records.callers)}
    return found


def _write_evidence(observed: Observed, records: Records, violations: list[Violation]) -> None:
    directory = observed.out_dir / "evidence"
    directory.mkdir(exist_ok=True)
    counts: Counter[str] = Counter()
    lines_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in observed.log_lines:
        if line.get("call_id"):
            lines_of[str(line["call_id"])].append(line)
    for violation in violations:
        counts[violation.verdict] += 1
        text = [
            f"{violation.verdict} #{counts[violation.verdict]}: {violation.detail}",
            f"definition: {DEFINITIONS[violation.verdict]}",
            "",
        ]
        for call_id in violation.call_ids:
            text += describe_call(observed, records, call_id, lines_of.get(call_id, []))
        name = f"{violation.verdict}-{counts[violation.verdict]:03d}.txt"
        (directory / name).write_text("\n".join(text) + "\n")


def describe_call(
    observed: Observed, records: Records, call_id: str, lines: list[dict[str, Any]]
) -> list[str]:
    """One call's evidence: its record, Bird's transcript and legs, the samples that
    show it, and its log lines."""
    record = records.callers.get(call_id)
    out = [f"=== call {call_id}"]
    if record is not None:
        out.append(
            f"caller #{record.index}, priority {record.priority}, joined "
            f"{_clock(record.joined)} ({'exact' if record.joined_exact else 'from a log line'}), "
            f"in line since {_clock(record.in_line_from)}, left {_span(record.gone)}, "
            f"outcome {record.outcome} {record.outcome_problems}"
        )
        for span in record.offers:
            out.append(
                f"  offer in progress {_clock(span.start)} - {_clock(span.end)} ({span.source})"
            )
        for note in record.notes:
            out.append(f"  unsure: {note}")
    if call_id in observed.sim.calls:
        out.append(observed.sim.transcript(call_id).render())
        call = observed.sim.calls[call_id]
        out.append(f"  (transcript times count from {_clock(call.created_at.timestamp())})")
    for leg in records.legs:
        if leg.call_id == call_id:
            out.append(
                f"  leg {leg.leg_id} to {leg.agent} offer {leg.offer}: requested "
                f"{_clock(leg.requested)}, ringing {_clock(leg.ringing)}, answered "
                f"{_clock(leg.answered)}, ended {_clock(leg.ended)}"
            )
    seen = [
        (snap.at, "waiting" if call_id in snap.waiting else "ringing")
        for snap in records.snapshots
        if call_id in snap.waiting or call_id in snap.offered
    ]
    changes = [item for i, item in enumerate(seen) if i == 0 or seen[i - 1][1] != item[1]]
    if seen:
        changes.append(seen[-1])
    out.append("  samples (changes): " + ", ".join(f"{_clock(t)} {w}" for t, w in changes))
    out.append("  --- log lines")
    for line in lines:
        shown = {k: v for k, v in line.items() if k not in ("t", "timestamp", "call_id")}
        out.append(f"  {_clock(float(line['t']))} {json.dumps(shown, separators=(',', ':'))}")
    out.append("")
    return out


def render(report: Report) -> str:
    data = report.data
    run_ = data["run"]
    queue = run_["queue"]
    out = [
        f"call center run, seed {run_['seed']}: {run_['callers']} callers ({run_['vip_callers']} "
        f"at priority 5, {run_['impatient_callers']} who hang up after 8-22 s, "
        f"{run_['callers_hanging_up_while_offered']} while their first offer rings) placed over "
        f"{run_['placed_over_s']:g} s, {run_['agents']} agents, {run_['workers']}, one Redis; "
        f"{run_['duration_s']:.0f} s in all (every call ended after "
        f"{run_['calls_ended_after_s']:.0f} s)",
        f"  queue {QUEUE}: ring {queue['ring_timeout_s']} s, wrap-up {queue['wrap_up_s']} s, "
        f"max_no_answer {queue['max_no_answer']}, hold segments {queue['hold_segment_s']} s, "
        f"announcements every {queue['announce_every_s']} s at most, max wait "
        f"{queue['max_wait_s']} s, callback offered after {queue['callback_after_s']} s of "
        f"expected wait; simulator time_scale {run_['time_scale']}, interrupting "
        "commands (A7) and legs left ringing (A11)",
    ]
    for what, detail in run_["incidents"].items():
        out.append(f"  {what}: {detail}")
    out.append(
        f"  ended because {run_['ended_because']}; proxy 502s {run_['proxy_502']}; "
        f"{run_['samples']} samples of Redis ({run_['sampler_errors']} failed); "
        f"{run_['log_lines']} log lines; {run_['records_unsure']} unsure records; "
        f"{run_['worker_output_not_json']} lines of worker output not a log line; "
        f"{run_['simulator_errors']} simulator task errors"
    )
    out.append(f"  evidence and report.json in {run_['out_dir']}")
    out.append("")
    outcomes_ = ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in data["outcomes"].items())
    out.append(f"outcomes: {outcomes_}")
    for agent_id, agent in data["agents"].items():
        out.append(
            f"  agent {agent_id} ({agent['role']}): {agent['offers']} offers, {agent['rang']} "
            f"rang, {agent['answered']} answered, put on break {agent['put_on_break']} times"
        )
    offers, said = data["offers"], data["announcements"]
    out.append(
        f"offers: {offers['legs']} agent legs, {offers['answered']} answered, missed "
        f"{offers['missed_by_reason']}, {offers['taken_back']} taken back before a bridge"
    )
    cb = data["callbacks"]
    out.append(
        f"callbacks: {cb['callers_pressing_1']} callers press 1 at the offer; "
        f"{cb['callback_offered']} offers, {cb['callback']} left the line for one, "
        f"{cb['callback_requested']} booked, {cb['callback_placed']} follow-up calls placed "
        f"({cb['follow_up_calls']} seen by Bird, {cb['follow_up_agent_legs']} agent legs), "
        f"{cb['callback_connected']} connected, {cb['callback_failed']} failed, "
        f"{cb['callback_call_orphaned']} orphaned"
    )
    out.append(
        f"announcements: {said['heard']} heard ({said['with_their_log_line']} with their log "
        f"line), {said['logged']} logged"
    )
    fifo, said_ = data["examined"]["fifo"], data["examined"]["announcement_position"]
    out.append(
        f"examined: {fifo['connected_callers']} connected callers; at their offers' choice "
        f"{fifo['callers_ahead_in_line_at_a_choice']} callers ahead of them of the same "
        f"priority were in line, each with an offer in progress (seen by "
        f"{fifo['of_them_with_an_offer_in_progress_seen_by']}); "
        f"{said_['true_at_their_log_line']} of {said_['heard']} announcements true at the "
        f"moment of their log line, {said_['position_changed_in_window']} with a position "
        "that changed within their window"
    )
    double = data["examined"]["agent_double_offer"]
    out.append(
        f"  {double['legs_left_ringing_after_the_caller_hung_up']} agent legs left ringing after "
        f"their caller hung up (A11), hung up by the service "
        f"{double['of_them_ringing_on_after_the_hang_up_s']} s after it let the caller go"
    )
    out.append("")
    for name, verdict in data["verdicts"].items():
        title = name.replace("_", " ")
        out.append(f"{title:<28}{verdict['count']:>4}   {_wrap(verdict['definition'], 35)}")
        for example in verdict["examples"]:
            out.append(f"{'':<35}e.g. {example}")
    out.append("")
    counts = ", ".join(f"{name} {v['count']}" for name, v in data["verdicts"].items())
    out.append(f"{'OK' if report.ok else 'NOT OK'}: {counts}")
    return "\n".join(out)


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


# -- the command --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.callcenter",
        description="Agent routing's acceptance run: a call center on one machine "
        "(see bench/README.md).",
    )
    parser.add_argument("--callers", type=int, default=CenterConfig.callers)
    parser.add_argument("--agents", type=int, default=CenterConfig.agents)
    parser.add_argument("--seed", type=int, default=CenterConfig.seed)
    parser.add_argument("--place-over-s", type=float, default=CenterConfig.place_over_s)
    parser.add_argument("--no-kill", action="store_true", help="do not SIGKILL a worker")
    parser.add_argument("--kill-at-s", type=float, default=CenterConfig.kill_at_s)
    parser.add_argument("--max-run-s", type=float, default=CenterConfig.max_run_s)
    parser.add_argument("--out", type=Path, help="logs, evidence, report.json (a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the report here")
    parser.add_argument(
        "--rejudge", type=Path, metavar="RECORDS", help="judge a run's records.json again"
    )
    args = parser.parse_args(argv)
    if args.rejudge:
        violations = judge(records_from_json(json.loads(args.rejudge.read_text())))
        counts = Counter(v.verdict for v in violations)
        for violation in violations:
            print(f"{violation.verdict}: {violation.detail}")
        print(", ".join(f"{name} {counts.get(name, 0)}" for name in VERDICTS))
        return 1 if violations else 0
    config = CenterConfig(
        callers=args.callers,
        agents=args.agents,
        seed=args.seed,
        place_over_s=args.place_over_s,
        kill_at_s=None if args.no_kill else args.kill_at_s,
        max_run_s=args.max_run_s,
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
