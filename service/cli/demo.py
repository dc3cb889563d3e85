"""``ivr demo``: a small call center on one machine, with nothing to configure.

Starts a real embedded Redis, the Bird simulator and the service on free loopback
ports, seats three agents through the agents API (``PUT /agents/{id}``), then places
ten calls: eight callers of the support line a few seconds apart (the first billing
caller says "billing" rather than press 1) and two outbound appointment reminders
through ``POST /calls``, one confirmed by a person, one taken by an answering
machine, which records the reminder's message after its beep. Billing callers
queue for Ann and hear their place in line; the technician's callers are offered to
Cyd first, who misses them and is put on break, then to Dan; a technician's caller
who finds Dan busy asks to be called back, and is, by Dan, in their turn. At the end it prints
each call's transcript with the service's log lines for it, and what the call center
did: who waited how long, which agent took whom, the agents and the queues as
``GET /agents`` and ``GET /queues`` show them, and what the service's ``GET /metrics``
counted meanwhile (calls started and ended, deliveries, requests to Bird, offers
missed). Exits 0 when every call ended where
its graph says and the call center did what is described above.

Nothing of the environment is read: whatever ``REDIS_URL`` and ``IVR_GRAPHS_DIR`` say
(a shell set up for production), the demo keeps its state in its own embedded Redis,
gone when it ends, and runs the shipped graphs (:func:`shipped_graphs`).

Time: the service's queue clocks (wrap-up, the pause after a missed offer, how often
a position is announced) run on the real clock, so the simulator does too
(``time_scale`` 1: its seconds are the service's), and the queues of
``queues.json`` run with the shorter times of :data:`DEMO_PACE` so that it all fits
in about a minute. Graphs see a pinned clock (:class:`PinnedClock`: a Tuesday
morning, Christmas Day for the caller who gets voicemail) that runs on from there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import sys
import uuid
from collections import defaultdict
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import structlog
from prometheus_client.parser import text_string_to_metric_families

from service.core.graph import GraphSet
from service.core.line import callback_id
from service.core.queues import queues_of
from service.graphs.loader import GraphError, load_directory
from service.runtime import logs
from service.runtime.clock import PinnedClock
from service.runtime.redis_server import EmbeddedRedis
from service.runtime.serving import bind, serve, url_of
from service.runtime.settings import Settings
from service.runtime.store import connect
from service.runtime.style import Style
from service.server.app import create_app
from service.sim import (
    AgentScript,
    BirdSimulator,
    CalleeScript,
    CallerScript,
    MachineScript,
    Transcript,
)
from service.sim.transcript import OFFER_ANSWERED, OFFER_MISSED

GRAPH = "support-line"
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
OPEN = datetime(2026, 12, 1, 10, 0, tzinfo=AMSTERDAM)  # a Tuesday morning
HOLIDAY = datetime(2026, 12, 25, 11, 0, tzinfo=AMSTERDAM)  # Christmas Day

# The simulator's seconds are real seconds: the service's queue clocks are (see above).
TIME_SCALE = 1.0
# The queues of queues.json, with these times instead, so that the demo takes a minute:
# an unanswered phone rings 6 s, an agent wraps up for 2 s after a call and rests 3 s
# after a missed offer, hold audio comes in 5 s segments, a place is told at most
# every 10 s.
DEMO_PACE: Mapping[str, Any] = {
    "ring_timeout_s": 6,
    "wrap_up_s": 2,
    "no_answer_delay_s": 3,
    "hold_segment_s": 5,
    "announce_every_s": 10,
}
# And per queue: the support queue offers its callback to whoever has to wait at all
# (queues.json: once the expected wait is over two minutes).
DEMO_QUEUE_PACE: Mapping[str, Mapping[str, Any]] = {"support": {"callback_after_s": 0}}
# How long (real seconds) the calls may take, all together.
CALLS_TIMEOUT_S = 150.0


@dataclass(frozen=True)
class DemoAgent:
    """An agent of the demo: as ``PUT /agents/{id}`` creates them, and how their
    phone (a number of the simulator) answers each offer."""

    id: str
    name: str
    address: str
    queues: tuple[str, ...]
    script: AgentScript

    def body(self) -> dict[str, Any]:
        """The body of ``PUT /agents/{id}``."""
        return {
            "name": self.name,
            "address": self.address,
            "queues": {queue: {"level": 1} for queue in self.queues},
            "status": "available",
        }


ANN = DemoAgent("ann", "Ann", "+31201234567", ("billing",),
                AgentScript("answer", answer_after_s=2.0, talk_s=5.0))  # fmt: skip
CYD = DemoAgent("cyd", "Cyd", "+31201234568", ("support",), AgentScript("no-answer"))
# Dan's second call is a long one: the technician's caller who comes next finds him
# busy and asks to be called back.
DAN_TALKS = (5.0, 15.0, 5.0)
DAN = DemoAgent("dan", "Dan", "sip:dan@pbx.example.com", ("support",), AgentScript.sequence(
    *(AgentScript("answer", answer_after_s=2.0, talk_s=talk) for talk in DAN_TALKS)
))  # fmt: skip
# Seated in this order: Cyd is idle longer than Dan, so the support queue (fewest calls
# first, then the longest idle) offers her its first caller.
CENTER: tuple[DemoAgent, ...] = (ANN, CYD, DAN)
# The simulator's scripts of the agents' phones, by address.
AGENTS: Mapping[str, AgentScript] = {agent.address: agent.script for agent in CENTER}


@dataclass(frozen=True)
class DemoCall:
    """A scripted caller of the support line, placed ``after_s`` seconds into the
    demo (graphs seeing ``at``), and where their call must end."""

    script: CallerScript
    expect_reached: str | None
    expect_last_heard: str | None = None
    at: datetime = OPEN
    after_s: float = 0.0
    queue: str | None = None
    """The queue they wait in, if any."""
    expect_heard: tuple[str, ...] = ()
    """Prompts they must have heard, each the start of one (in any order)."""
    expect_offers: tuple[tuple[str, str], ...] | None = None
    """``(agent address, outcome)`` of every offer made to them, in order."""
    placed_after: tuple[str, str] | None = None
    """Placed once the service logged this event (the second) for the earlier demo call
    of this name (the first), instead of at ``after_s``."""
    called_back_by: str | None = None
    """The agent the follow-up call of their callback must reach."""

    def problems(self, transcript: Transcript) -> list[str]:
        found = []
        if not transcript.ended:
            found.append("the call did not end")
        if transcript.reached != self.expect_reached:
            found.append(f"reached {transcript.reached!r}, expected {self.expect_reached!r}")
        heard = transcript.texts("heard")
        if self.expect_last_heard and (not heard or self.expect_last_heard not in heard[-1]):
            found.append(f"last heard {heard[-1:]!r}, expected {self.expect_last_heard!r}")
        found += [
            f"did not hear {text!r}"
            for text in self.expect_heard
            if not any(prompt.startswith(text) for prompt in heard)
        ]
        offers = tuple(transcript.offer_outcomes())
        if self.expect_offers is not None and offers != self.expect_offers:
            found.append(f"offers {offers!r}, expected {self.expect_offers!r}")
        return found


def demo_calls(number: str) -> list[DemoCall]:
    """The demo's callers, in the order they are placed."""
    return [
        DemoCall(
            CallerScript("Christmas Day: voicemail", "+31655544433", number, (), voicemail_s=6),
            None,
            expect_last_heard="Thank you. Goodbye.",
            at=HOLIDAY,
        ),
        DemoCall(
            CallerScript(
                "billing, said aloud: Ann is free",
                "+31687654321",
                number,
                ("say:billing please", "12345678#"),
            ),
            ANN.address,
            queue="billing",
            expect_offers=((ANN.address, OFFER_ANSWERED),),
        ),
        DemoCall(
            CallerScript(
                "straight to a technician: Cyd misses it, Dan takes it",
                "+31612345678",
                number,
                ("2", "_"),  # silence, should a callback be offered
            ),
            DAN.address,
            after_s=1,
            queue="support",
            expect_offers=((CYD.address, OFFER_MISSED), (DAN.address, OFFER_ANSWERED)),
        ),
        DemoCall(
            CallerScript("silence until the menu gives up", "+31611122233", number, ()),
            None,
            expect_last_heard="Goodbye.",
            after_s=2,
        ),
        DemoCall(
            CallerScript("billing: next in line", "+31622233344", number, ("1", "23456789#")),
            ANN.address,
            after_s=5,
            queue="billing",
            expect_heard=("You are next in line.",),
            expect_offers=((ANN.address, OFFER_ANSWERED),),
        ),
        DemoCall(
            CallerScript("billing: number 2 in line", "+31633344455", number, ("1", "34567890#")),
            ANN.address,
            after_s=6,
            queue="billing",
            expect_heard=("You are number 2 in line.",),
            expect_offers=((ANN.address, OFFER_ANSWERED),),
        ),
        DemoCall(
            CallerScript(
                MISSED_AGAIN,
                "+31644455566",
                number,
                ("9", "2", "_"),
            ),
            DAN.address,
            after_s=8,
            queue="support",
            expect_offers=((CYD.address, OFFER_MISSED), (DAN.address, OFFER_ANSWERED)),
        ),
        DemoCall(
            CallerScript(
                "a technician, but Dan is busy: asks to be called back",
                CALLED_BACK,
                number,
                ("2", "1"),
            ),
            None,
            expect_last_heard="Goodbye.",
            queue="support",
            expect_heard=("You are next in line.", "Thank you. We will call you back"),
            expect_offers=(),
            placed_after=(MISSED_AGAIN, "answered"),
            called_back_by=DAN.address,
        ),
    ]


MISSED_AGAIN = "a wrong key, then a technician: Cyd misses again and goes on break"
REMINDED = "+31611111111"
MACHINE = "+31622222222"
"""The number of the second reminder: an answering machine takes it."""
CALLED_BACK = "+31655566677"
CALLEES = {
    REMINDED: CalleeScript("confirms", AgentScript("answer", answer_after_s=3), ("1",)),
    CALLED_BACK: CalleeScript("called back", AgentScript("answer", answer_after_s=2), ("1",)),
    MACHINE: CalleeScript(
        "answering machine",
        AgentScript("answer", answer_after_s=2),
        machine=MachineScript("Hi, this is Bo. Leave a message after the tone."),
    ),
}
REMINDER_VARS = {"name": "Ann", "date": "1 December", "time": "10:00"}
REMINDER_AFTER_S = 3.0
REMINDERS = 2
"""Outbound calls the demo places (``POST /calls``): the appointment reminders, one
confirmed by a person, one taken by an answering machine."""
CALLS = len(demo_calls("+31970102030")) + REMINDERS


def banner(number: str) -> str:
    """The demo's first line: what it does, with ``number`` the support line's."""
    callers = len(demo_calls(number))
    return (f"ivr demo: {callers + REMINDERS} calls: {callers} to {number} ({GRAPH}) and "
            f"{REMINDERS} outbound reminders (one reaches an answering machine); {len(CENTER)} "
            "agents. About a minute.")  # fmt: skip


class _LogBook:
    """Keeps every log line, rendered for the console and as its event, under its call id."""

    def __init__(self) -> None:
        self.lines: dict[str, list[str]] = defaultdict(list)
        self.events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._render = structlog.dev.ConsoleRenderer(colors=False, sort_keys=False)
        self._news = asyncio.Event()

    def __call__(self, event_dict: MutableMapping[str, Any]) -> None:
        line = dict(event_dict)
        key = str(line.pop("call_id", None) or "")
        line.pop("timestamp", None)
        self.events[key].append(dict(line))
        self.lines[key].append(str(self._render(None, "", line)))
        self._news.set()
        self._news = asyncio.Event()

    def of(self, call_id: str, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events.get(call_id, []) if e.get("event") == event]

    async def wait_for(self, call_id: str, event: str, timeout_s: float = 30.0) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                while not self.of(call_id, event):
                    await self._news.wait()
        except TimeoutError:
            raise TimeoutError(f"call {call_id} logged no {event} within {timeout_s:g} s") from None

    def call_with(self, event: str, **fields: Any) -> str | None:
        """The call whose log has ``event`` with these ``fields``, if any."""
        for call_id, lines in self.events.items():
            for line in lines:
                if line.get("event") == event and all(line.get(k) == v for k, v in fields.items()):
                    return call_id
        return None

    async def wait_for_call_with(self, event: str, timeout_s: float, **fields: Any) -> str:
        try:
            async with asyncio.timeout(timeout_s):
                while (found := self.call_with(event, **fields)) is None:
                    await self._news.wait()
        except TimeoutError:
            raise TimeoutError(f"no call logged {event} {fields} within {timeout_s:g} s") from None
        return found


def loopback_settings(service_url: str, bird_url: str, **overrides: Any) -> Settings:
    """Service settings for a service and a simulator side by side on loopback,
    with fresh random keys."""
    values: dict[str, Any] = {
        "bird_access_key": secrets.token_urlsafe(24),
        "bird_workspace_id": str(uuid.uuid4()),
        "bird_channel_id": str(uuid.uuid4()),
        "bird_signing_key": secrets.token_urlsafe(24),
        "public_base_url": service_url,
        "bird_api_url": bird_url,
        "ivr_default_graph": GRAPH,
        "log_format": "console",
    }
    values.update(overrides)
    return Settings(**values)


def simulator_for(settings: Settings, **options: Any) -> BirdSimulator:
    """A Bird simulator that accepts this service's keys and delivers to its webhook."""
    return BirdSimulator(
        access_key=settings.bird_access_key,
        workspace_id=settings.bird_workspace_id,
        channel_id=settings.bird_channel_id,
        signing_key=settings.bird_signing_key,
        subscription_url=settings.webhook_url,
        **options,
    )


def paced(
    graphs: GraphSet,
    pace: Mapping[str, Any] = DEMO_PACE,
    per_queue: Mapping[str, Mapping[str, Any]] = DEMO_QUEUE_PACE,
) -> GraphSet:
    """The graphs with their queues running at ``pace`` and ``per_queue`` (settings
    of queues.json)."""
    queues = {
        name: replace(queue, **{**pace, **per_queue.get(name, {})})
        for name, queue in queues_of(graphs).items()
    }
    return replace(
        graphs,
        graphs={gid: replace(graph, queues=queues) for gid, graph in graphs.graphs.items()},
        queues=queues,
    )


def shipped_graphs() -> Path:
    """The graphs this project ships (``ivr_graphs/``, beside the ``service`` package in a
    checkout; else the working directory's, as in the Docker image), whatever
    ``IVR_GRAPHS_DIR`` says: the demo's calls are scripted for them."""
    beside = Path(__file__).resolve().parents[2] / "ivr_graphs"
    return beside if (beside / f"{GRAPH}.json").is_file() else Path("ivr_graphs")


def _load_graphs() -> GraphSet:
    directory = shipped_graphs()
    try:
        graphs = load_directory(directory, GRAPH)
    except GraphError as exc:
        raise SystemExit(
            f"ivr demo: cannot load the shipped graphs in {directory} (run it from the "
            f"project's root):\n{exc}"
        ) from None
    missing = sorted({q for agent in CENTER for q in agent.queues} - set(queues_of(graphs)))
    if missing:
        raise SystemExit(f"ivr demo: {directory}/queues.json has no queue {', '.join(missing)}")
    return graphs


# -- running it --------------------------------------------------------------------


@dataclass
class _Placed:
    index: int
    title: str
    call_id: str
    demo: DemoCall | None = None  # None: the outbound reminder
    transcript: Transcript | None = None
    follow_up: str | None = None  # the call that called them back
    follow_up_transcript: Transcript | None = None


@dataclass
class _Run:
    placed: list[_Placed] = field(default_factory=list)
    busiest: dict[str, Any] | None = None
    busiest_waiting: int = 0
    busiest_at: float = 0.0
    agents: list[dict[str, Any]] = field(default_factory=list)
    queues: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


class _Admin:
    """The service's operator API, with the admin token."""

    def __init__(self, settings: Settings) -> None:
        self._http = httpx.AsyncClient(
            base_url=settings.public_base_url,
            headers={"Authorization": f"Bearer {settings.ivr_admin_token}"},
            timeout=10.0,
        )

    async def __call__(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self._http.request(method, path, json=body)

    async def aclose(self) -> None:
        await self._http.aclose()


async def _seat(admin: _Admin, run: _Run, out: Style) -> None:
    print(out.bold("Agents, seated through the agents API:"))
    for agent in CENTER:
        answer = await admin("PUT", f"/agents/{agent.id}", agent.body())
        status = answer.status_code
        shown = out.ok(str(status)) if status in (200, 201) else out.error(str(status))
        print(f"  PUT /agents/{agent.id} {json.dumps(agent.body())} -> {shown}")
        if answer.status_code not in (200, 201):
            run.failures.append(f"PUT /agents/{agent.id} answered {answer.status_code}: "
                                f"{answer.text}")  # fmt: skip
    print()


async def _watch(admin: _Admin, run: _Run, stop: asyncio.Event) -> None:
    """Read ``GET /queues`` now and then; keep the board with the most callers in line."""
    started = asyncio.get_running_loop().time()
    while not stop.is_set():
        try:
            answer = await admin("GET", "/queues")
        except httpx.HTTPError:
            answer = None
        if answer is not None and answer.status_code == 200:
            board = answer.json()
            waiting = sum(len(q.get("waiting", [])) for q in board["queues"].values())
            if waiting > run.busiest_waiting:
                run.busiest, run.busiest_waiting = board, waiting
                run.busiest_at = asyncio.get_running_loop().time() - started
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=0.5)


async def _place_later(
    sim: BirdSimulator, book: _LogBook, call: DemoCall, ids: Mapping[str, asyncio.Future[str]]
) -> str:
    """Place ``call`` at its time, or once the earlier call it waits for got that far."""
    if call.placed_after is not None:
        name, event = call.placed_after
        await book.wait_for(await ids[name], event, CALLS_TIMEOUT_S)
    else:
        await asyncio.sleep(call.after_s)
    call_id = await sim.place_inbound_call(call.script)
    ids[call.script.name].set_result(call_id)
    return call_id


async def _called_back(sim: BirdSimulator, book: _LogBook, queue: str, number: str) -> str:
    """The follow-up call of ``number``'s callback in ``queue``, once it has ended."""
    callback = callback_id(queue, number)
    call_id = await book.wait_for_call_with("callback_placed", CALLS_TIMEOUT_S, callback=callback)
    await sim.wait_ended(call_id, CALLS_TIMEOUT_S)
    return call_id


async def _remind_later(admin: _Admin, delay_s: float, to: str = REMINDED) -> str:
    """An appointment reminder placed through the operator API, as a back office would."""
    await asyncio.sleep(delay_s)
    request = {"to": to, "graph": "appointment-reminder", "vars": REMINDER_VARS}
    answer = await admin("POST", "/calls", request)
    if answer.status_code != 202:
        raise RuntimeError(f"POST /calls answered {answer.status_code}: {answer.text}")
    return str(answer.json()["call_id"])


async def _play(sim: BirdSimulator, admin: _Admin, book: _LogBook, clock: PinnedClock,
                calls: Sequence[DemoCall], out: Style) -> _Run:  # fmt: skip
    run = _Run()
    await _seat(admin, run, out)
    index = 0
    # Callers at another moment first: each is placed once the graph has read the
    # clock for the previous one; then it is a Tuesday morning for everyone else.
    for call in [c for c in calls if c.at != OPEN]:
        index += 1
        clock.pin(call.at)
        call_id = await sim.place_inbound_call(call.script)
        run.placed.append(_Placed(index, call.script.name, call_id, call))
        await book.wait_for(call_id, "hours_checked")
    clock.pin(OPEN)
    stop = asyncio.Event()
    watching = asyncio.create_task(_watch(admin, run, stop))
    now = [c for c in calls if c.at == OPEN]
    loop = asyncio.get_running_loop()
    ids: dict[str, asyncio.Future[str]] = {c.script.name: loop.create_future() for c in now}
    placing = [asyncio.create_task(_place_later(sim, book, c, ids)) for c in now]
    reminding = asyncio.create_task(_remind_later(admin, REMINDER_AFTER_S))
    machine = asyncio.create_task(_remind_later(admin, REMINDER_AFTER_S, MACHINE))
    try:
        for call, call_id in zip(now, await asyncio.gather(*placing), strict=True):
            index += 1
            run.placed.append(_Placed(index, call.script.name, call_id, call))
        index += 1
        reminder = f"outbound appointment reminder (POST /calls to {REMINDED})"
        run.placed.append(_Placed(index, reminder, await reminding))
        index += 1
        reminder = f"outbound appointment reminder to an answering machine ({MACHINE})"
        run.placed.append(_Placed(index, reminder, await machine))
        ends = [sim.wait_ended(p.call_id, CALLS_TIMEOUT_S) for p in run.placed]
        for placed, transcript in zip(run.placed, await asyncio.gather(*ends), strict=True):
            placed.transcript = transcript
        for placed in run.placed:
            if placed.demo is not None and placed.demo.called_back_by is not None:
                queue, number = placed.demo.queue or "", placed.demo.script.from_number
                placed.follow_up = await _called_back(sim, book, queue, number)
                placed.follow_up_transcript = sim.transcript(placed.follow_up)
    finally:
        stop.set()
        await watching
    run.agents = (await admin("GET", "/agents")).json()["agents"]
    run.queues = (await admin("GET", "/queues")).json()["queues"]
    run.failures += _problems(run, book)
    return run


def _problems(run: _Run, book: _LogBook) -> list[str]:
    found: list[str] = []
    for placed in run.placed:
        transcript = placed.transcript
        assert transcript is not None
        if placed.demo is not None:
            found += [f"call {placed.index}: {p}" for p in placed.demo.problems(transcript)]
            agent = placed.demo.called_back_by
            back = placed.follow_up_transcript
            if agent is not None and (back is None or back.reached != agent):
                reached = back.reached if back is not None else None
                found.append(f"call {placed.index}: called back to {reached!r}, "
                             f"expected {agent!r}")  # fmt: skip
            continue
        if transcript.machine:
            message = transcript.machine_recorded
            if not message or "with a reminder of your appointment" not in message[-1]:
                found.append(f"call {placed.index}: the machine did not record the reminder's "
                             f"message: it recorded {message!r}")  # fmt: skip
            continue
        heard = transcript.texts("heard")
        if not heard or "is confirmed" not in heard[-1]:
            found.append(f"call {placed.index}: the reminder was not confirmed: heard {heard!r}")
    status = {agent["id"]: agent["status"] for agent in run.agents}
    expected = {ANN.id: "available", CYD.id: "on_break", DAN.id: "available"}
    if {k: status.get(k) for k in expected} != expected:
        found.append(f"agents' status {status}, expected {expected}")
    if not any(book.of(p.call_id, "agent_on_break") for p in run.placed):
        found.append("no agent_on_break in the service's log")
    return found


# -- printing it ---------------------------------------------------------------------


def _print_call(placed: _Placed, book: _LogBook, out: Style) -> None:
    demo, transcript = placed.demo, placed.transcript
    assert transcript is not None
    when = f"{demo.at:%a %d %b %H:%M %Z}" if demo is not None else f"{OPEN:%a %d %b %H:%M %Z}"
    if demo is not None and demo.placed_after is not None:
        earlier, event = demo.placed_after
        when += f", placed once {earlier!r} was {event}"
    elif demo is not None and demo.at == OPEN:
        when += f", placed at +{demo.after_s:g} s"
    elif demo is None:
        when += f", placed at +{REMINDER_AFTER_S:g} s"
    print(out.info(f"=== Call {placed.index}: {placed.title} ({when}) ==="))
    print(transcript.render())
    print(out.dim("--- service log ---"))
    for line in book.lines.pop(placed.call_id, []):
        print(f"  {line}")
    if placed.follow_up is not None and placed.follow_up_transcript is not None:
        print(out.info(f"--- called back in their turn: the follow-up call {placed.follow_up} ---"))
        print(placed.follow_up_transcript.render())
        print(out.dim("--- service log ---"))
        for line in book.lines.pop(placed.follow_up, []):
            print(f"  {line}")
    print()


def _board_line(run: _Run, board: Mapping[str, Any]) -> str:
    """``billing: call 6 ringing ann, call 7 number 2; support: nobody``."""
    index = {p.call_id: p.index for p in run.placed}
    parts = []
    for name, queue in board["queues"].items():
        people = []
        for caller in queue.get("waiting", []):
            who = f"call {index.get(caller['call_id'], '?')}"
            if caller.get("ringing"):
                people.append(f"{who} ringing {caller.get('agent_id')}")
            else:
                people.append(f"{who} number {caller['position']}")
        parts.append(f"{name}: {', '.join(people) or 'nobody waiting'}")
    return "; ".join(parts)


def _print_summary(run: _Run, book: _LogBook, out: Style) -> None:
    print(out.info("=== The service's other log lines (no one call's: agents, start and stop) ==="))
    for line in book.lines.pop("", []):
        print(f"  {line}")
    print()
    print(out.info("=== The call center ==="))
    print(out.bold("Callers in line (the service's log; a wait runs from joining the line "
                   "until an agent answered):"))  # fmt: skip
    for placed in run.placed:
        demo, transcript = placed.demo, placed.transcript
        if demo is None or demo.queue is None or transcript is None:
            continue
        answered = book.of(placed.follow_up or placed.call_id, "answered")
        if placed.follow_up is not None and answered:
            done = (f"asked to be called back, called back {answered[-1]['waited_s']:4.1f} s "
                    f"after joining, taken by {answered[-1]['agent_id']}")  # fmt: skip
        elif answered:
            done = f"waited {answered[-1]['waited_s']:4.1f} s, taken by {answered[-1]['agent_id']}"
        else:
            done = out.warning("never taken")
        for missed in book.of(placed.call_id, "missed"):
            agent = missed["agent_id"]
            done += f"; {agent} missed it"
            if any(e["agent_id"] == agent for e in book.of(placed.call_id, "agent_on_break")):
                done += " and was put on break"
        places = [t.split(". ")[0] + "." for t in transcript.texts("heard") if " in line." in t]
        if places:
            done += "; heard " + ", ".join(f'"{text}"' for text in places)
        print(f"  call {placed.index} ({demo.queue}){' ' * (8 - len(demo.queue))}{done}")
    if run.busiest is not None:
        print(out.bold(f"The longest line (GET /queues, {run.busiest_at:.0f} s in):") + " "
              + _board_line(run, run.busiest))  # fmt: skip
    print(out.bold("Agents at the end (GET /agents):"))
    for agent in run.agents:
        queues = ",".join(agent.get("queues", {}))
        print(f"  {agent['id']:<4} {queues:<8} {agent['status']:<10} {agent['state']:<8} "
              f"calls {agent.get('calls_today', 0)}, talked {agent.get('talk_s_today', 0):.0f} s, "
              f"missed in a row {agent.get('missed_in_a_row', 0)}")  # fmt: skip
    print(out.bold("Queues today (GET /queues):"))
    for name, queue in run.queues.items():
        today = queue.get("today", {})
        counts = ", ".join(
            f"{key} {today.get(key, 0)}" for key in ("joined", "answered", "handled", "abandoned")
        )
        handle = today.get("average_handle_s")
        average = f", average call {handle:.0f} s" if isinstance(handle, int | float) else ""
        print(f"  {name:<8} {counts}{average}")
    print()


# -- what GET /metrics counted -------------------------------------------------------

Counted = dict[tuple[str, tuple[tuple[str, str], ...]], float]
"""Samples of ``GET /metrics``: (name, sorted labels) -> value."""


async def _scrape(service_url: str) -> Counted:
    """The service's ``GET /metrics`` (no token: counts only)."""
    async with httpx.AsyncClient(timeout=10.0) as http:
        answer = await http.get(service_url + "/metrics")
    answer.raise_for_status()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def _since(before: Counted, after: Counted) -> Counted:
    """What the counters counted between two scrapes."""
    return {key: value - before.get(key, 0.0) for key, value in after.items()
            if key[0].endswith("_total") and value != before.get(key, 0.0)}  # fmt: skip


def _by(counted: Counted, name: str, *labels: str) -> dict[str, float]:
    """``name``'s counts by these labels' values (joined by a space), in name order."""
    found: dict[str, float] = defaultdict(float)
    for (metric, series), value in counted.items():
        if metric == name:
            named = dict(series)
            found[" ".join(named.get(label) or "-" for label in labels)] += value
    return dict(sorted(found.items()))


def _print_metrics(counted: Counted, played: _Run, out: Style) -> None:
    follow_ups = sum(p.follow_up is not None for p in played.placed)
    print(out.info("=== Metrics (GET /metrics: what the service counted during the demo) ==="))
    rows = [
        ("calls started", _by(counted, "ivr_calls_started_total", "graph", "direction"),
         f"the {len(played.placed)} calls and {follow_ups} follow-up call"),
        ("calls ended", _by(counted, "ivr_calls_ended_total", "outcome"), ""),
        ("deliveries", _by(counted, "ivr_webhook_deliveries_total", "outcome"),
         "webhooks from Bird, by what the service did"),
        ("Bird requests", _by(counted, "ivr_bird_requests_total", "command"), ""),
        ("Bird errors", {r: v for r, v in _by(counted, "ivr_bird_requests_total", "result").items()
                         if r != "2xx"}, "not 2xx"),
        ("offers missed", _by(counted, "ivr_offers_missed_total", "queue"), ""),
        ("agent events", _by(counted, "ivr_agent_events_total", "event"), ""),
        ("timers fired", _by(counted, "ivr_timers_fired_total", "kind"), ""),
        ("retried", _by(counted, "ivr_commands_retried_total", "action"), "commands sent again"),
    ]  # fmt: skip
    for title, counts, note in rows:
        parts = ", ".join(f"{key} {value:g}" for key, value in counts.items())
        shown = f"  {title:<14} {sum(counts.values()):>4g}"
        shown += f"  {parts}" if parts else ""
        print(shown + (f"  ({note})" if note else ""))
    print()


async def run() -> int:
    graphs = _load_graphs()
    number = graphs.graphs[GRAPH].numbers[0]
    book = _LogBook()
    logs.configure(log_format="console", level="info", sink=book, quiet=True)
    service_sock, bird_sock = bind(), bind()
    settings = loopback_settings(
        url_of(service_sock), url_of(bird_sock), ivr_admin_token=secrets.token_urlsafe(24)
    )
    sim = simulator_for(settings, agents=AGENTS, callees=CALLEES, time_scale=TIME_SCALE)
    clock = PinnedClock(OPEN)
    calls = demo_calls(number)
    out, err = Style(sys.stdout), Style(sys.stderr)
    pace = ", ".join(f"{key} {value}" for key, value in DEMO_PACE.items())
    print(out.bold(banner(number)))
    print(f"Queues: those of queues.json, with the demo's pace: {pace}.\n")
    # Its own Redis, whatever REDIS_URL says: the demo's agents and calls are no one's.
    with EmbeddedRedis() as embedded:
        redis = connect(embedded.url)
        app = create_app(settings, redis=redis, graphs=paced(graphs), graph_clock=clock)
        admin = _Admin(settings)
        try:
            async with serve(sim.app, sock=bird_sock), serve(app, sock=service_sock):
                before = await _scrape(settings.public_base_url)
                played = await _play(sim, admin, book, clock, calls, out)
                counted = _since(before, await _scrape(settings.public_base_url))
        except (TimeoutError, RuntimeError, httpx.HTTPError) as exc:
            print(err.error("ivr demo: FAILED"), f"  {exc or type(exc).__name__}", sep="\n",
                  file=sys.stderr)  # fmt: skip
            return 1
        finally:
            await admin.aclose()
            await sim.aclose()
            await redis.aclose()
    for placed in played.placed:
        _print_call(placed, book, out)
    _print_summary(played, book, out)
    _print_metrics(counted, played, out)
    failures = played.failures
    rejected = [r for r in sim.requests if not r.accepted]
    failures += [f"Bird simulator rejected {r.method} {r.path}: {r.problems}" for r in rejected]
    if failures:
        print(err.error("ivr demo: FAILED"), *failures, sep="\n  ", file=sys.stderr)
        return 1
    print(out.ok(f"ivr demo: all {len(played.placed)} calls ended where their graph says; "
                 f"{len(sim.requests)} requests to Bird, all valid."))  # fmt: skip
    return 0
