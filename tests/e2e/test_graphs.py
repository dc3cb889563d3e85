"""End to end: graph versions under reload, the admin API, and outbound calls
through the Bird simulator."""

from __future__ import annotations

import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis

from service.cli.demo import ANN, DAN, DEMO_PACE
from service.core.state import Phase
from service.sim import AgentScript, CalleeScript, CallerScript
from tests.e2e.test_e2e import NUMBER, stack
from tests.paths import SHIPPED_GRAPHS

V1_PROMPT = "Please enter your account number, followed by the hash key."
V2_PROMPT = "Type your customer number, then the hash key."


def graphs_dir(tmp_path: Path) -> Path:
    """A copy of the shipped graphs and queues, the queues at the demo's pace (a caller
    waiting for an agent who has just had a call waits seconds, not a wrap-up)."""
    directory = tmp_path / "graphs"
    directory.mkdir()
    for name in ("support-line.json", "appointment-reminder.json", "schema.json",
                 "queues.json", "queues.schema.json"):  # fmt: skip
        shutil.copy(SHIPPED_GRAPHS / name, directory / name)
    queues = json.loads((directory / "queues.json").read_text())
    for settings in queues["queues"].values():
        settings.update(DEMO_PACE)
    (directory / "queues.json").write_text(json.dumps(queues, indent=2))
    return directory


def edit_support_line(directory: Path, prompt: str) -> None:
    path = directory / "support-line.json"
    document = json.loads(path.read_text())
    document["nodes"]["account-number"]["say"] = prompt
    path.write_text(json.dumps(document, indent=2))


async def test_a_reload_leaves_calls_in_progress_on_their_version(
    redis: Redis, tmp_path: Path
) -> None:
    directory = graphs_dir(tmp_path)
    # Slower time: the first caller stays silent at the menu long enough for a reload.
    async with stack(redis, graphs_dir=directory, time_scale=0.05, seated=(ANN,)) as s:
        before = (await s.admin("GET", "/admin/graphs")).json()
        v1 = {g["id"]: g["version"] for g in before["graphs"]}["support-line"]
        early = await s.sim.place_inbound_call(
            CallerScript("early", "+31612345678", NUMBER, ("_", "1", "123456#"))
        )
        await s.sim.wait_for(early, "heard", "For billing, press 1")

        edit_support_line(directory, V2_PROMPT)
        reloaded = await s.admin("POST", "/admin/graphs/reload")
        assert reloaded.status_code == 200, reloaded.text
        v2 = reloaded.json()["versions"]["support-line"]
        assert v2 != v1
        assert reloaded.json()["changed"] == {"support-line": {"from": v1, "to": v2}}

        late = await s.sim.place_inbound_call(
            CallerScript("late", "+31687654321", NUMBER, ("1", "123456#"))
        )
        early_transcript = await s.sim.wait_ended(early, timeout_s=60)
        late_transcript = await s.sim.wait_ended(late, timeout_s=60)
        early_state = await s.store.load(early)
        late_state = await s.store.load(late)
    assert V1_PROMPT in early_transcript.texts("heard")
    assert V2_PROMPT not in early_transcript.texts("heard")
    assert V2_PROMPT in late_transcript.texts("heard")
    assert early_state is not None
    assert late_state is not None
    assert (early_state.graph_version, late_state.graph_version) == (v1, v2)
    assert early_transcript.reached == late_transcript.reached == ANN.address


async def test_a_reload_meeting_an_invalid_graph_keeps_the_last_good_one(
    redis: Redis, tmp_path: Path
) -> None:
    directory = graphs_dir(tmp_path)
    async with stack(redis, graphs_dir=directory, seated=(DAN,)) as s:
        good = (await s.admin("GET", "/admin/graphs")).json()
        broken = json.loads((directory / "support-line.json").read_text())
        broken["nodes"]["main-menu"]["options"]["3"] = "nowhere"
        (directory / "support-line.json").write_text(json.dumps(broken))
        refused = await s.admin("POST", "/admin/graphs/reload")
        assert refused.status_code == 422
        assert refused.json()["reloaded"] is False
        assert refused.json()["problems"] == [
            f"{directory / 'support-line.json'}: /nodes/main-menu/options/3: "
            "exit names 'nowhere', which is not a node"
        ]
        listed = (await s.admin("GET", "/admin/graphs")).json()
        assert [g["version"] for g in listed["graphs"]] == [g["version"] for g in good["graphs"]]
        assert listed["load_errors"] == refused.json()["problems"]
        # Calls still run on the last good graph.
        _, transcript = await s.call(CallerScript("after", "+31612345678", NUMBER, ("2",)))
        assert transcript.reached == DAN.address


async def test_the_admin_api_needs_the_token(redis: Redis) -> None:
    async with stack(redis) as s:
        s.token = "wrong-token-wrong-token"
        refused = await s.admin("GET", "/admin/graphs")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert (await s.admin("POST", "/calls", {})).status_code == 401


REMINDER = {"name": "Ann", "date": "1 December", "time": "10:00"}


async def test_an_outbound_call_reaches_the_callee_takes_their_key_and_ends_as_the_graph_says(
    redis: Redis,
) -> None:
    callee = "+31611111111"
    confirms = CalleeScript("confirms", AgentScript("answer", answer_after_s=3), inputs=("1",))
    async with stack(redis, callees={callee: confirms}) as s:
        placed = await s.admin(
            "POST", "/calls", {"to": callee, "graph": "appointment-reminder", "vars": REMINDER}
        )
        assert placed.status_code == 202, placed.text
        call_id = placed.json()["call_id"]
        transcript = await s.sim.wait_ended(call_id, timeout_s=30)
        stored = await s.store.load(call_id)
        s.assert_every_request_was_valid()
        (create,) = [r for r in s.sim.requests if r.operation == "createCall"]
    assert transcript.texts("pressed") == ["1"]
    assert transcript.texts("heard") == [
        "Hello Ann, this is Acme. You have an appointment on 1 December at 10:00. "
        "To confirm it, press 1 or say yes. To reschedule, press 2 or say reschedule.",
        "Thank you, your appointment on 1 December is confirmed. Goodbye.",
    ]
    assert create.body["to"] == callee
    assert create.body["notification"]["url"].startswith(s.service_url + "/webhooks/bird?ref=")
    assert stored is not None
    assert (stored.direction, stored.node, stored.outcome) == ("outbound", "confirmed",
                                                                "hangup_node")  # fmt: skip


async def test_an_outbound_callee_who_wants_to_reschedule_reaches_a_person(redis: Redis) -> None:
    callee = "+31622222222"
    reschedules = CalleeScript("reschedules", inputs=("2",))
    async with stack(redis, callees={callee: reschedules}) as s:
        placed = await s.admin(
            "POST", "/calls", {"to": callee, "graph": "appointment-reminder", "vars": REMINDER}
        )
        transcript = await s.sim.wait_ended(placed.json()["call_id"], timeout_s=30)
    assert transcript.reached == "+31201234580"


@pytest.mark.parametrize("behavior", ["no-answer", "busy", "failed"])
async def test_an_outbound_call_nobody_takes_ends_and_is_logged(
    redis: Redis, behavior: str
) -> None:
    callee = "+31633333333"
    away = CalleeScript("away", AgentScript(behavior))  # type: ignore[arg-type]
    async with stack(redis, callees={callee: away}) as s:
        placed = await s.admin(
            "POST", "/calls", {"to": callee, "graph": "appointment-reminder", "vars": REMINDER}
        )
        call_id = placed.json()["call_id"]
        transcript = await s.sim.wait_ended(call_id, timeout_s=30)
        stored = await s.store.load(call_id)
        sent = [r.operation for r in s.sim.requests_for(call_id) if r.method != "GET"]
    assert transcript.texts("heard") == []
    assert stored is not None
    assert stored.phase == Phase.ENDED
    assert stored.outcome == f"not_answered_{behavior}"
    assert sent == []  # nothing but the create (which has no call id in its path)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"graph": "appointment-reminder", "vars": REMINDER}, "/to: required"),
        ({"to": "0612345678", "graph": "appointment-reminder", "vars": REMINDER},
         "/to: '0612345678' is not an E.164 number"),
        ({"to": "+31611111111", "graph": "nope", "vars": REMINDER},
         "/graph: 'nope' is not a loaded graph (loaded: appointment-reminder, support-line)"),
        ({"to": "+31611111111", "graph": "appointment-reminder"}, "/vars/name: required by"),
        ({"to": "+31611111111", "graph": "appointment-reminder", "vars": {**REMINDER, "x": []}},
         "/vars/x: [] is not a string or a number"),
        ({"to": "+31611111111", "graph": "appointment-reminder", "vars": REMINDER, "when": 1},
         "/when: unknown field"),
        ({"to": "+31611111111", "graph": "appointment-reminder", "vars": REMINDER,
          "scheduled_for": "2020-01-01T10:00:00+00:00"},
         "/scheduled_for: '2020-01-01T10:00:00+00:00' is in the past"),
        ({"to": "+31611111111", "graph": "appointment-reminder", "vars": REMINDER,
          "scheduled_for": "tomorrow"}, "/scheduled_for: 'tomorrow' is not an ISO-8601"),
        ({"to": "+31611111111", "graph": "appointment-reminder", "vars": REMINDER,
          "from": "me"}, "/from: 'me' is not an E.164 number"),
    ],
)  # fmt: skip
async def test_bad_outbound_requests_get_422_with_the_reasons(
    redis: Redis, body: dict[str, object], problem: str
) -> None:
    async with stack(redis) as s:
        answer = await s.admin("POST", "/calls", body)
        created = [r for r in s.sim.requests if r.operation == "createCall"]
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_request"
    assert any(p.startswith(problem) for p in answer.json()["problems"]), answer.json()
    assert created == []


async def test_a_scheduled_outbound_call_is_passed_to_bird(redis: Redis) -> None:
    callee = "+31644444444"
    later = datetime.now(UTC) + timedelta(hours=2)
    async with stack(redis, callees={callee: CalleeScript(inputs=("1",))}) as s:
        placed = await s.admin("POST", "/calls", {
            "to": callee, "graph": "appointment-reminder", "vars": REMINDER,
            "scheduled_for": later.isoformat()})  # fmt: skip
        assert placed.status_code == 202, placed.text
        (create,) = [r for r in s.sim.requests if r.operation == "createCall"]
    assert abs(datetime.fromisoformat(create.body["scheduledFor"]) - later) < timedelta(seconds=1)
    assert placed.json()["call_id"] == str(uuid.UUID(placed.json()["call_id"]))
