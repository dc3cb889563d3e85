"""End to end: the service under uvicorn, driven by the Bird simulator over HTTP,
with call state in a real Redis. What a caller hears and whom they reach."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from service.cli.demo import (
    AGENTS,
    ANN,
    CYD,
    DAN,
    DEMO_PACE,
    OPEN,
    DemoAgent,
    demo_calls,
    loopback_settings,
    paced,
    simulator_for,
)
from service.core.graph import GraphSet
from service.core.state import Phase
from service.graphs.loader import load_directory
from service.runtime import keys
from service.runtime.clock import PinnedClock
from service.runtime.serving import bind, serve, url_of
from service.runtime.store import CallStore
from service.server.app import create_app
from service.sim import HANGUP, AgentScript, BirdSimulator, CallerScript, Transcript
from service.sim.transcript import CALLER_HUNG_UP, OFFER_ANSWERED, OFFER_MISSED
from tests.paths import SHIPPED_GRAPHS

GRAPHS = load_directory(SHIPPED_GRAPHS, "support-line")
NUMBER = "+31970102030"


@dataclass
class Stack:
    sim: BirdSimulator
    store: CallStore
    service_url: str
    token: str
    seated: list[str] = field(default_factory=list)

    async def admin(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """A request to the service's operator API with the admin token."""
        async with httpx.AsyncClient(base_url=self.service_url) as http:
            headers = {"Authorization": f"Bearer {self.token}"}
            return await http.request(method, path, json=body, headers=headers)

    async def call(self, script: CallerScript) -> tuple[str, Transcript]:
        call_id = await self.sim.place_inbound_call(script)
        return call_id, await self.sim.wait_ended(call_id, timeout_s=30)

    async def seat(self, *agents: DemoAgent) -> None:
        """Agents of the demo, created available through the agents API (and removed
        when the stack closes: agents and queues are shared by the whole Redis)."""
        for agent in agents:
            answer = await self.admin("PUT", f"/agents/{agent.id}", agent.body())
            assert answer.status_code in (200, 201), answer.text
            self.seated.append(agent.id)

    async def unseat(self) -> None:
        for agent_id in self.seated:
            await self.admin("PUT", f"/agents/{agent_id}/status", {"status": "offline"})
            await self.admin("DELETE", f"/agents/{agent_id}")
        self.seated.clear()

    def commands_to(self, call_id: str) -> list[str]:
        """What the service asked Bird to do on this call (reads left out)."""
        return [r.operation or "" for r in self.sim.requests_for(call_id) if r.method != "GET"]

    def assert_every_request_was_valid(self) -> None:
        rejected = [(r.method, r.path, r.status, r.problems) for r in self.sim.requests]
        assert [r for r in rejected if not 200 <= r[2] < 300] == []


@contextlib.asynccontextmanager
async def stack(
    redis: Redis,
    at: datetime = OPEN,
    graphs_dir: Path | None = None,
    service_options: Mapping[str, Any] | None = None,
    *,
    seated: Sequence[DemoAgent] = (),
    graphs: GraphSet | None = None,
    **sim_options: Any,
) -> AsyncIterator[Stack]:
    """The service and the simulator on loopback, sharing the test Redis. Graphs
    come from ``graphs_dir`` (reloadable), else ``graphs``, else the shipped ones;
    ``service_options`` are settings of the service; ``seated``: agents of the demo
    to create first (the simulator answers their phones as the demo scripts them)."""
    service_sock, bird_sock = bind(), bind()
    token = secrets.token_urlsafe(24)
    settings = loopback_settings(
        url_of(service_sock), url_of(bird_sock), ivr_admin_token=token, **(service_options or {})
    )
    options: dict[str, Any] = {"agents": AGENTS, "time_scale": 0.002}
    options.update(sim_options)
    sim = simulator_for(settings, **options)
    if graphs_dir is not None:
        graphs = load_directory(graphs_dir, "support-line")
    app = create_app(settings, redis=redis, graphs=graphs or GRAPHS, graphs_dir=graphs_dir,
                     graph_clock=PinnedClock(at))  # fmt: skip
    try:
        async with serve(sim.app, sock=bird_sock), serve(app, sock=service_sock) as running:
            store = CallStore(redis, ended_ttl_s=settings.call_ttl_s)
            made = Stack(sim, store, running.url, token)
            try:
                await made.seat(*seated)
                yield made
            finally:
                await made.unseat()
    finally:
        await sim.aclose()


def in_line(transcript: Transcript) -> list[str]:
    """What the caller heard of their place in line."""
    return [text for text in transcript.texts("heard") if " in line." in text]


@pytest.mark.parametrize(
    "demo", [d for d in demo_calls(NUMBER) if d.queue is None], ids=lambda d: d.script.name
)
async def test_the_demo_calls_that_queue_for_nobody_end_where_the_graph_says(
    redis: Redis, demo: Any
) -> None:
    async with stack(redis, at=demo.at) as s:
        call_id, transcript = await s.call(demo.script)
        assert demo.problems(transcript) == []
        s.assert_every_request_was_valid()
        stored = await s.store.load(call_id)
        assert stored is not None
        assert stored.ended
        assert 0 < await redis.ttl(keys.call(call_id)) <= 90_000


async def test_billing_with_an_account_number_waits_for_a_billing_agent(redis: Redis) -> None:
    async with stack(redis, seated=(ANN,)) as s:
        call_id, transcript = await s.call(
            CallerScript("one", "+31612345678", NUMBER, ("1", "1234567#"))
        )
        stored = await s.store.load(call_id)
    assert transcript.texts("heard") == [
        "Thanks for calling Acme.",
        "For billing, press 1 or say billing. For a technician, press 2.",
        "Please enter your account number, followed by the hash key.",
    ]
    assert transcript.texts("pressed") == ["1", "1234567#"]
    assert transcript.reached == ANN.address
    assert transcript.offer_outcomes() == [(ANN.address, OFFER_ANSWERED)]
    # Ann hangs up; a queue's bridge keeps the caller (A9), so the service ends the call.
    assert s.commands_to(call_id) == [
        "answerCall", "say", "gather", "gather", "bridge", "hangupCall",
    ]  # fmt: skip
    assert stored is not None
    assert (stored.node, stored.outcome) == ("billing", "agent_connected")
    assert stored.vars == {"account": "1234567"}


async def test_business_accounts_are_served_before_callers_who_came_first(redis: Redis) -> None:
    """Ann is busy; a regular caller joins the billing line, then a business account
    (priority 5 on the business-billing queue node): GET /queues shows the business
    caller first."""
    busy_ann = {**AGENTS, ANN.address: AgentScript("answer", answer_after_s=1, talk_s=1500)}
    leaves = 2500.0  # simulated seconds: the waiting callers hang up before Ann is free
    async with stack(redis, seated=(ANN,), agents=busy_ann) as s:
        first = await s.sim.place_inbound_call(
            CallerScript("first", "+31611111101", NUMBER, ("1", "1234567#"))
        )
        await s.sim.wait_for(first, "reached", ANN.address)
        regular = await s.sim.place_inbound_call(
            CallerScript(
                "regular", "+31611111102", NUMBER, ("1", "1234567#"), hangup_after_s=leaves
            )
        )
        await s.sim.wait_for(regular, "heard", "in line")
        business = await s.sim.place_inbound_call(
            CallerScript(
                "business", "+31611111103", NUMBER, ("1", "9123456#"), hangup_after_s=leaves
            )
        )
        await s.sim.wait_for(business, "heard", "in line")
        board = (await s.admin("GET", "/queues/billing")).json()
        transcripts = await s.sim.wait_all_ended([first, regular, business], timeout_s=30)
        stored = await s.store.load(business)
    waiting = [(c["call_id"], c["position"], c["priority"]) for c in board["waiting"]]
    assert waiting == [(business, 1, 5), (regular, 2, 0)]
    assert in_line(transcripts[1])[0].startswith("You are next in line.")
    assert in_line(transcripts[2])[0].startswith("You are next in line.")
    assert stored is not None
    assert (stored.node, stored.outcome) == ("business-billing", "ended_by_caller")


async def test_a_bad_account_number_is_asked_again(redis: Redis) -> None:
    async with stack(redis, seated=(ANN,)) as s:
        _, transcript = await s.call(
            CallerScript("typo", "+31612345678", NUMBER, ("1", "12#", "7654321#"))
        )
    assert "That is not a valid account number. Account numbers have six to eight digits." in (
        transcript.texts("heard")
    )
    assert transcript.reached == ANN.address


async def test_after_hours_callers_leave_a_voicemail_kept_on_the_call(redis: Redis) -> None:
    closed = datetime(2026, 12, 1, 20, 0, tzinfo=OPEN.tzinfo)  # a Tuesday evening
    async with stack(redis, at=closed) as s:
        call_id, transcript = await s.call(CallerScript("late", "+31612345678", NUMBER, ()))
        stored = await s.store.load(call_id)
    assert transcript.texts("heard")[1].startswith("We are closed right now.")
    assert s.commands_to(call_id) == ["answerCall", "say", "say", "record", "say", "hangupCall"]
    (record,) = [r for r in s.sim.requests_for(call_id) if r.operation == "record"]
    assert record.body == {"maxLength": 120, "endKey": "#", "beep": True, "transcribe": False}
    assert stored is not None
    assert len(stored.recordings) == 1
    assert stored.recordings[0] == record.response["recordingId"]


async def test_repeated_and_late_deliveries_change_nothing(redis: Redis) -> None:
    """Every delivery twice, and each previous one again after the next."""
    async with stack(redis, duplicate_deliveries=True, replay_stale=True, seated=(DAN,)) as s:
        call_id, transcript = await s.call(CallerScript("dup", "+31612345678", NUMBER, ("9", "2")))
        s.assert_every_request_was_valid()
    assert transcript.reached == DAN.address
    assert s.commands_to(call_id) == [
        "answerCall", "say", "gather", "say", "gather", "bridge", "hangupCall",
    ]  # fmt: skip
    assert s.sim.performed(call_id, "bridge") == 1
    delivered = [d for d in s.sim.deliveries if d.call_id == call_id]
    assert len(delivered) > 2 * 8  # the repeats really were sent
    assert all(d.ok for d in delivered)


async def test_a_caller_hanging_up_mid_menu_ends_the_call_and_nothing_more_is_sent(
    redis: Redis,
) -> None:
    async with stack(redis) as s:
        call_id, transcript = await s.call(CallerScript("gone", "+31612345678", NUMBER, (HANGUP,)))
        stored = await s.store.load(call_id)
    assert transcript.final_status == "completed"
    assert CALLER_HUNG_UP in transcript.kinds()
    assert transcript.reached is None
    assert s.commands_to(call_id) == ["answerCall", "say", "gather"]
    assert stored is not None
    assert stored.phase == Phase.ENDED
    assert stored.outcome == "ended_by_caller"


async def test_a_caller_hanging_up_while_the_welcome_plays(redis: Redis) -> None:
    async with stack(redis) as s:
        call_id, _ = await s.call(
            CallerScript("early", "+31612345678", NUMBER, (), hangup_after_s=0.5)
        )
        stored = await s.store.load(call_id)
    assert s.commands_to(call_id)[-1] in ("answerCall", "say")
    assert stored is not None
    assert stored.outcome == "ended_by_caller"


@pytest.mark.parametrize("keys", [("1", "123456#"), ("2",)], ids=["billing", "technician"])
async def test_with_nobody_logged_in_callers_leave_a_voicemail(
    redis: Redis, keys: tuple[str, ...]
) -> None:
    async with stack(redis) as s:
        call_id, transcript = await s.call(CallerScript("nobody", "+31612345678", NUMBER, keys))
        s.assert_every_request_was_valid()
        stored = await s.store.load(call_id)
    assert transcript.reached is None
    assert transcript.offers == []
    assert transcript.texts("heard")[-3:] == [
        "Nobody can take your call right now. Please leave a message after the tone.",
        "(beep)",
        "Thank you. Goodbye.",
    ]
    assert stored is not None
    assert (stored.node, stored.outcome) == ("thanks", "hangup_node")
    assert len(stored.recordings) == 1


@pytest.mark.parametrize(
    ("behavior", "status"),
    [("no-answer", "on_break"), ("failed", "on_break"), ("busy", "available")],
)
async def test_a_technician_who_misses_a_caller_is_put_on_break_and_the_next_one_takes_it(
    redis: Redis, behavior: str, status: str
) -> None:
    """Cyd (seated before Dan: the support queue offers her first) misses; with
    max_no_answer 1 that puts her on break (a busy phone is not a miss). The caller
    stays in line and Dan takes them."""
    graphs = paced(GRAPHS, {**DEMO_PACE, "max_no_answer": 1})
    missing = {**AGENTS, CYD.address: AgentScript(behavior)}  # type: ignore[arg-type]
    async with stack(redis, seated=(CYD, DAN), graphs=graphs, agents=missing) as s:
        call_id, transcript = await s.call(CallerScript("tech", "+31612345678", NUMBER, ("2",)))
        cyd = (await s.admin("GET", f"/agents/{CYD.id}")).json()
        dan = (await s.admin("GET", f"/agents/{DAN.id}")).json()
        board = (await s.admin("GET", "/queues/support")).json()
        s.assert_every_request_was_valid()
    missed = OFFER_MISSED if behavior == "no-answer" else behavior
    assert transcript.offer_outcomes() == [(CYD.address, missed), (DAN.address, OFFER_ANSWERED)]
    assert transcript.reached == DAN.address
    assert s.sim.performed(call_id, "bridge") == 2
    assert (cyd["status"], cyd["calls_today"]) == (status, 0)
    assert (dan["status"], dan["calls_today"]) == ("available", 1)
    assert board["waiting"] == []
    assert board["agents"]["by_status"]["on_break"] == (status == "on_break")


async def test_an_offer_rings_the_agent_for_the_queue_s_ring_timeout(redis: Redis) -> None:
    async with stack(redis, seated=(ANN,)) as s:
        call_id, _ = await s.call(CallerScript("one", "+31612345678", NUMBER, ("1", "123456#")))
    (bridge,) = [r for r in s.sim.requests_for(call_id) if r.operation == "bridge"]
    assert bridge.body["to"] == ANN.address
    assert bridge.body["ringTimeout"] == 20  # queues.json: billing
    assert bridge.body["hangupAfterBridge"] is False  # a missed offer keeps the caller (A9)
    assert "/webhooks/bird?offer=" in bridge.body["notification"]["url"]


async def test_the_default_graph_answers_numbers_no_graph_lists(redis: Redis) -> None:
    async with stack(redis, seated=(DAN,)) as s:
        _, transcript = await s.call(
            CallerScript("other number", "+31612345678", "+31100000000", ("2",))
        )
    assert transcript.reached == DAN.address


async def test_callers_arriving_while_the_agent_talks_queue_and_hear_their_place(
    redis: Redis,
) -> None:
    """Three billing callers one after the other, one agent: the first is put through, the
    second hears they are next and the third that they are number 2; each is taken in
    turn (the demo's pace: a 2 s wrap-up; too soon for the third to hear their place
    again: announce_every_s)."""
    talks = {**AGENTS, ANN.address: AgentScript("answer", answer_after_s=2, talk_s=500)}
    async with stack(redis, seated=(ANN,), graphs=paced(GRAPHS), agents=talks) as s:
        call_ids = []
        for n, (kind, text) in enumerate([("reached", ANN.address), ("heard", "in line"),
                                          ("heard", "in line")]):  # fmt: skip
            script = CallerScript(f"billing {n}", f"+3161111120{n}", NUMBER, ("1", "1234567#"))
            call_ids.append(await s.sim.place_inbound_call(script))
            await s.sim.wait_for(call_ids[-1], kind, text)  # then the next one calls
        transcripts = await s.sim.wait_all_ended(call_ids, timeout_s=30)
        ann = (await s.admin("GET", f"/agents/{ANN.id}")).json()
        today = (await s.admin("GET", "/queues/billing")).json()["today"]
    heard = [in_line(t) for t in transcripts]
    assert heard[0] == []
    assert heard[1][0].startswith("You are next in line.")
    assert heard[2][0].startswith("You are number 2 in line.")
    assert [t.reached for t in transcripts] == [ANN.address] * 3
    assert ann["calls_today"] >= 3
    assert (today["joined"], today["answered"], today["handled"]) >= (3, 3, 3)
