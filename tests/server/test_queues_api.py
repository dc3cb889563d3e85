"""``GET /queues`` over real HTTP with real calls in line: callers waiting and ringing,
agents by state and status, and today's counters as calls are answered, handled and
abandoned."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime

import pytest
from redis.asyncio import Redis

from service.runtime.line import today
from tests.server.test_agents_api import Service, running_service


@pytest.fixture
async def service(redis: Redis) -> AsyncIterator[Service]:
    async with running_service(redis) as made:
        yield made


def empty_board(day: str, strategy: str) -> dict[str, object]:
    return {
        "strategy": strategy,
        "waiting": [],
        "callbacks_pending": 0,
        "longest_wait_s": 0.0,
        "agents": {
            "total": 0,
            "by_state": {"idle": 0, "offered": 0, "in_call": 0, "wrap_up": 0, "cooldown": 0},
            "by_status": {"offline": 0, "available": 0, "on_break": 0},
        },
        "today": {
            "day": day, "joined": 0, "answered": 0, "abandoned": 0, "timed_out": 0,
            "no_agents": 0, "callback": 0, "handled": 0, "callbacks_requested": 0,
            "callbacks_connected": 0, "callbacks_failed": 0,
            "average_wait_s": None, "average_handle_s": None,
        },
    }  # fmt: skip


async def test_every_current_queue_is_shown_with_the_time(service: Service) -> None:
    before = time.time()
    answer = await service.http.get("/queues")
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"queues", "at"}
    at = datetime.fromisoformat(body["at"].replace("Z", "+00:00")).timestamp()
    assert before - 0.01 <= at <= time.time()
    assert body["at"].endswith("Z")
    day = today(at)
    assert body["queues"] == {
        service.queue: empty_board(day, "longest-idle"),
        service.other: empty_board(day, "top-down"),
    }
    one = (await service.http.get(f"/queues/{service.other}")).json()
    assert one.pop("name") == service.other
    assert one.pop("at").endswith("Z")
    assert one == empty_board(day, "top-down")


async def test_an_unknown_queue_is_404_and_every_queue_endpoint_needs_the_token(
    service: Service,
) -> None:
    unknown = await service.http.get("/queues/nope")
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": "not_found",
        "reason": f"no queue 'nope' (known: {service.queue}, {service.other})",
    }
    for path in ("/queues", f"/queues/{service.queue}", "/queues/nope"):
        answer = await service.http.get(path, headers={"authorization": ""})
        assert answer.status_code == 401
        assert answer.json()["error"] == "unauthorized"


async def test_callers_agents_and_todays_counters(service: Service) -> None:
    await service.put_agent("bob", status="available", address="+31612340001")
    await service.put_agent("ann", status="on_break", address="+31612340002")
    await service.put_agent("cat", address="+31612340003")  # offline
    first = await service.call_in()  # bob's phone rings for them
    second = await service.call_in()  # waits
    board = await service.board()
    assert [(c["call_id"], c["position"], c["priority"], c["ringing"], c["agent_id"])
            for c in board["waiting"]] == [
        (first, 1, 0, True, service.agent_id("bob")),
        (second, 2, 0, False, None),
    ]  # fmt: skip
    assert all(0 <= c["waited_s"] < 5 for c in board["waiting"])
    assert board["longest_wait_s"] == board["waiting"][0]["waited_s"]
    assert board["agents"] == {
        "total": 3,
        "by_state": {"idle": 2, "offered": 1, "in_call": 0, "wrap_up": 0, "cooldown": 0},
        "by_status": {"offline": 1, "available": 1, "on_break": 1},
    }
    assert board["today"]["joined"] == 2

    # bob answers and talks; the caller still waiting hangs up.
    await service.agent_leg(first, "+31612340001", "ringing", "ongoing")
    await service.hang_up(second)
    board = await service.board()
    assert board["waiting"] == []
    assert board["longest_wait_s"] == 0.0
    assert board["agents"]["by_state"]["in_call"] == 1
    assert board["today"]["answered"] == 1
    assert board["today"]["abandoned"] == 1
    assert 0 <= board["today"]["average_wait_s"] < 5
    assert board["today"]["average_handle_s"] is None  # nobody has finished a call yet

    talk_started = time.time()
    await service.agent_leg(first, "+31612340001", "completed")
    talked = time.time() - talk_started
    board = await service.board()
    assert board["agents"]["by_state"] == {
        "idle": 2, "offered": 0, "in_call": 0, "wrap_up": 1, "cooldown": 0,
    }  # fmt: skip
    today_ = board["today"]
    assert (today_["joined"], today_["answered"], today_["abandoned"], today_["handled"]) == (
        2, 1, 1, 1,
    )  # fmt: skip
    assert 0 <= today_["average_handle_s"] <= talked + 1
    assert (await service.agent("bob"))["calls_today"] == 1


async def test_a_caller_offered_an_agent_who_is_released_is_shown_waiting_again(
    service: Service,
) -> None:
    await service.put_agent("bob", status="available", address="+31612340001")
    await service.put_agent("ann", status="on_break", address="+31612340002")
    first = await service.call_in()
    second = await service.call_in()
    await service.hang_up(first)  # bob is released, and offered to the caller waiting
    board = await service.board()
    assert [(c["call_id"], c["position"], c["ringing"], c["agent_id"])
            for c in board["waiting"]] == [(second, 1, True, service.agent_id("bob"))]  # fmt: skip
    assert board["today"]["abandoned"] == 1
