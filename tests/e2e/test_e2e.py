"""End to end: the service under uvicorn, driven by the Bird simulator over HTTP,
with call state in a real Redis. What a caller hears and whom they reach."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from service.cli.demo import (
    AGENTS,
    BILLING,
    BUSINESS_BILLING,
    OPEN,
    TECH,
    demo_calls,
    loopback_settings,
    simulator_for,
)
from service.core.state import Phase
from service.graphs.loader import load_directory
from service.runtime import keys
from service.runtime.clock import PinnedClock
from service.runtime.serving import bind, serve, url_of
from service.runtime.store import CallStore
from service.server.app import create_app
from service.sim import HANGUP, AgentScript, BirdSimulator, CallerScript, Transcript
from service.sim.transcript import CALLER_HUNG_UP
from tests.paths import SHIPPED_GRAPHS

GRAPHS = load_directory(SHIPPED_GRAPHS, "support-line")
NUMBER = "+31970102030"


@dataclass
class Stack:
    sim: BirdSimulator
    store: CallStore
    service_url: str
    token: str

    async def admin(self, method: str, path: str, body: Any = None) -> httpx.Response:
        """A request to the service's operator API with the admin token."""
        async with httpx.AsyncClient(base_url=self.service_url) as http:
            headers = {"Authorization": f"Bearer {self.token}"}
            return await http.request(method, path, json=body, headers=headers)

    async def call(self, script: CallerScript) -> tuple[str, Transcript]:
        call_id = await self.sim.place_inbound_call(script)
        return call_id, await self.sim.wait_ended(call_id, timeout_s=30)

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
    **sim_options: Any,
) -> AsyncIterator[Stack]:
    """The service and the simulator on loopback, sharing the test Redis. Graphs
    come from ``graphs_dir`` (reloadable) or the shipped ones; ``service_options``
    are settings of the service."""
    service_sock, bird_sock = bind(), bind()
    token = secrets.token_urlsafe(24)
    settings = loopback_settings(
        url_of(service_sock), url_of(bird_sock), ivr_admin_token=token, **(service_options or {})
    )
    options: dict[str, Any] = {"agents": AGENTS, "time_scale": 0.002}
    options.update(sim_options)
    sim = simulator_for(settings, **options)
    graphs = load_directory(graphs_dir, "support-line") if graphs_dir else GRAPHS
    app = create_app(settings, redis=redis, graphs=graphs, graphs_dir=graphs_dir,
                     graph_clock=PinnedClock(at))  # fmt: skip
    try:
        async with serve(sim.app, sock=bird_sock), serve(app, sock=service_sock) as running:
            store = CallStore(redis, ended_ttl_s=settings.call_ttl_s)
            yield Stack(sim, store, running.url, token)
    finally:
        await sim.aclose()


def agents(billing: AgentScript) -> Mapping[str, AgentScript]:
    return {**AGENTS, BILLING: billing}


@pytest.mark.parametrize("demo", demo_calls(NUMBER), ids=lambda d: d.script.name)
async def test_the_demo_calls_end_where_the_graph_says(redis: Redis, demo: Any) -> None:
    async with stack(redis, at=demo.at) as s:
        call_id, transcript = await s.call(demo.script)
        assert demo.problems(transcript) == []
        s.assert_every_request_was_valid()
        stored = await s.store.load(call_id)
        assert stored is not None
        assert stored.ended
        assert 0 < await redis.ttl(keys.call(call_id)) <= 90_000


async def test_billing_with_an_account_number_reaches_billing(redis: Redis) -> None:
    async with stack(redis) as s:
        call_id, transcript = await s.call(
            CallerScript("one", "+31612345678", NUMBER, ("1", "1234567#"))
        )
    assert transcript.texts("heard") == [
        "Thanks for calling Acme.",
        "For billing press 1. For a technician press 2.",
        "Please enter your account number, followed by the hash key.",
    ]
    assert transcript.texts("pressed") == ["1", "1234567#"]
    assert transcript.reached == BILLING
    assert s.commands_to(call_id) == ["answerCall", "say", "gather", "gather", "bridge"]
    stored = await s.store.load(call_id)
    assert stored is not None
    assert stored.outcome == "transferred"
    assert stored.vars == {"account": "1234567"}


async def test_a_business_account_is_put_through_to_business_billing(redis: Redis) -> None:
    async with stack(redis) as s:
        _, transcript = await s.call(CallerScript("biz", "+31612345678", NUMBER, ("1", "912345#")))
    assert transcript.reached == BUSINESS_BILLING


async def test_a_bad_account_number_is_asked_again(redis: Redis) -> None:
    async with stack(redis) as s:
        _, transcript = await s.call(
            CallerScript("typo", "+31612345678", NUMBER, ("1", "12#", "7654321#"))
        )
    assert "That is not a valid account number. Account numbers have six to eight digits." in (
        transcript.texts("heard")
    )
    assert transcript.reached == BILLING


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
    async with stack(redis, duplicate_deliveries=True, replay_stale=True) as s:
        call_id, transcript = await s.call(CallerScript("dup", "+31612345678", NUMBER, ("9", "2")))
        s.assert_every_request_was_valid()
    assert transcript.reached == TECH
    assert s.commands_to(call_id) == [
        "answerCall", "say", "gather", "say", "gather", "bridge",
    ]  # fmt: skip
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


@pytest.mark.parametrize("behavior", ["no-answer", "busy", "failed"])
async def test_an_agent_who_does_not_answer_takes_on_failure(redis: Redis, behavior: str) -> None:
    unavailable = AgentScript(behavior)  # type: ignore[arg-type]
    async with stack(redis, agents=agents(unavailable)) as s:
        call_id, transcript = await s.call(
            CallerScript("nobody", "+31612345678", NUMBER, ("1", "123456#"))
        )
        s.assert_every_request_was_valid()
        stored = await s.store.load(call_id)
    assert transcript.reached is None
    assert transcript.texts("heard")[-3:] == [
        "All our agents are busy. Please leave a message after the tone.",
        "(beep)",
        "Thank you. Goodbye.",
    ]
    assert s.commands_to(call_id) == [
        "answerCall", "say", "gather", "gather", "bridge", "say", "record", "say", "hangupCall",
    ]  # fmt: skip
    assert stored is not None
    assert (stored.node, stored.outcome) == ("thanks", "hangup_node")


async def test_bridge_uses_the_ring_timeout_and_notification_url_of_the_graph(
    redis: Redis,
) -> None:
    async with stack(redis) as s:
        call_id, _ = await s.call(CallerScript("one", "+31612345678", NUMBER, ("1", "123456#")))
    (bridge,) = [r for r in s.sim.requests_for(call_id) if r.operation == "bridge"]
    assert bridge.body["to"] == BILLING
    assert bridge.body["ringTimeout"] == 20
    assert bridge.body["hangupAfterBridge"] is True
    assert bridge.body["notification"]["url"].endswith("/webhooks/bird")


async def test_the_default_graph_answers_numbers_no_graph_lists(redis: Redis) -> None:
    async with stack(redis) as s:
        _, transcript = await s.call(
            CallerScript("other number", "+31612345678", "+31100000000", ("2",))
        )
    assert transcript.reached == TECH
