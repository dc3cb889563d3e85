"""The call center bench (bench/callcenter.py): agent routing's acceptance run in the
normal suite (two ``ivr serve`` processes, one SIGKILLed; 50 callers, 5 agents), and its
detectors seeing what they are there to see, fed made-up records."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from bench.callcenter import (
    DEFINITIONS,
    OUTCOMES,
    QUEUE,
    TIMEOUT_NODE,
    VERDICTS,
    Announcement,
    CallerRecord,
    CenterConfig,
    Leg,
    Records,
    Snapshot,
    Span,
    classify,
    judge,
    parse_announcement,
    records_from_json,
    records_to_json,
    render,
    run,
)

T0 = 1_800_000_000.0


async def test_the_call_center_run_breaks_no_rule_of_agent_routing(tmp_path: Path) -> None:
    config = CenterConfig(callers=50, agents=5, seed=1, out_dir=tmp_path)
    report = await run(config)
    data = report.data
    shown = render(report)

    assert set(data["verdicts"]) == set(VERDICTS)
    for name, verdict in data["verdicts"].items():
        assert verdict["definition"] == DEFINITIONS[name]
    counts = {name: verdict["count"] for name, verdict in data["verdicts"].items()}
    assert counts == dict.fromkeys(VERDICTS, 0), shown
    assert report.ok

    outcomes = data["outcomes"]
    assert outcomes["none of them"] == 0, shown
    assert sum(outcomes[name] for name in OUTCOMES) == 50
    # Callers who are chosen while they listen to the callback offer keep their agent
    # waiting (A7: the gather is not cut short), and callbacks take an agent longer.
    assert outcomes["connected"] >= 20, shown
    assert outcomes["abandoned"] >= 1, shown
    # Some callers asked for a callback, and every one of them was called back.
    callbacks = data["callbacks"]
    assert outcomes["called_back"] >= 1, shown
    assert callbacks["callback"] == callbacks["callback_requested"] == outcomes["called_back"]
    assert callbacks["callback_connected"] == outcomes["called_back"], shown
    assert callbacks["follow_up_agent_legs"] >= outcomes["called_back"], shown
    run_ = data["run"]
    assert {"worker-sigkill", "worker-replaced"} <= set(run_["incidents"])
    assert run_["ended_because"] == "every call ended and every delivery was answered"
    assert run_["duration_s"] < 90
    assert run_["simulator_errors"] == 0, shown
    # The verdicts had something to judge.
    examined = data["examined"]
    assert examined["fifo"]["connected_callers"] == outcomes["connected"]
    assert examined["fifo"]["callers_ahead_in_line_at_a_choice"] > 0
    assert examined["announcement_position"]["heard"] > 30
    # Two callers hang up while their first offer rings: Bird leaves the legs ringing (A11).
    assert examined["agent_double_offer"]["legs_left_ringing_after_the_caller_hung_up"] >= 1
    by_role = {agent["role"]: agent for agent in data["agents"].values()}
    dan = by_role["misses, then on break"]
    assert dan["put_on_break"] == 1, shown
    # Two misses in a row put him on break; an offer whose caller hung up is no miss.
    assert dan["offers"] <= config.queue.max_no_answer + config.ring_hangups, shown
    assert data["offers"]["missed_by_reason"].get("busy", 0) >= 1
    assert json.loads((tmp_path / "report.json").read_text()) == data
    saved = records_from_json(json.loads((tmp_path / "records.json").read_text()))
    assert judge(saved) == []


# -- the detectors, on made-up records ------------------------------------------------


def caller(
    index: int,
    *,
    joined: float,
    priority: int = 0,
    gone: float | None = None,
    offers: tuple[tuple[float, float], ...] = (),
    dispatched: tuple[float, float] | None = None,
) -> CallerRecord:
    return CallerRecord(
        call_id=f"call-{index}",
        index=index,
        priority=priority,
        queue=QUEUE,
        joined=T0 + joined,
        in_line_from=T0 + joined + 0.01,
        gone=Span(T0 + gone - 0.1, T0 + gone, "log") if gone is not None else None,
        offers=[Span(T0 + a, T0 + b, "log") for a, b in offers],
        logged_offers=[Span(T0 + a, T0 + b, "log") for a, b in offers],
        dispatched=Span(T0 + dispatched[0], T0 + dispatched[1], "log")
        if dispatched is not None
        else None,
        outcome="connected" if dispatched is not None else "abandoned",
    )


def leg(
    call: str, agent: str, requested: float, ended: float, answered: float | None = None
) -> Leg:
    return Leg(
        leg_id=f"leg-{call}-{requested}",
        call_id=call,
        agent=agent,
        offer=None,
        requested=T0 + requested,
        ringing=T0 + requested + 0.01,
        answered=T0 + answered if answered is not None else None,
        ended=T0 + ended,
    )


def records(
    callers: Sequence[CallerRecord],
    legs: Sequence[Leg] = (),
    announcements: Sequence[Announcement] = (),
    snapshots: Sequence[Snapshot] = (),
) -> Records:
    return Records(
        callers={c.call_id: c for c in callers},
        legs=list(legs),
        announcements=list(announcements),
        snapshots=list(snapshots),
        leftovers=[],
        end=T0 + 100,
    )


def verdicts(found: Records) -> dict[str, int]:
    counts = dict.fromkeys(VERDICTS, 0)
    for violation in judge(found):
        counts[violation.verdict] += 1
    return {name: n for name, n in counts.items() if n}


def test_the_detectors_see_an_agent_offered_two_callers_and_a_caller_two_agents() -> None:
    a = caller(1, joined=0, gone=6.05, dispatched=(5, 5.05))  # answered at 6 s
    b = caller(2, joined=1, gone=10.05, dispatched=(9, 9.05))  # answered at 10 s
    clean = records(
        [a, b],
        [leg("call-1", "+31205550001", 5.1, 12, 6), leg("call-2", "+31205550002", 9.1, 12, 10)],
    )
    assert verdicts(clean) == {}
    # Ann's phone rings for call 2 while she still talks to call 1.
    doubled_agent = records(
        [a, b],
        [leg("call-1", "+31205550001", 5.1, 12, 6), leg("call-2", "+31205550001", 9.1, 12, 10)],
    )
    assert verdicts(doubled_agent) == {"agent_double_offer": 1}
    # Call 1's second leg is requested while its first still rings.
    doubled_caller = records(
        [a, b],
        [
            leg("call-1", "+31205550001", 5.1, 8.1),
            leg("call-1", "+31205550003", 8.0, 12, 9),
            leg("call-2", "+31205550002", 9.1, 12, 10),
        ],
    )
    assert verdicts(doubled_caller) == {"caller_double_offer": 1}
    # Redis holds two agents for one caller.
    sample = Snapshot(
        T0 + 6, {}, {"call-1": 0}, {"ann": ("in_call", "call-1"), "bob": ("offered", "call-1")}
    )
    assert verdicts(records([a, b], snapshots=[sample])) == {"caller_double_offer": 1}


def test_the_detectors_see_a_caller_put_through_before_one_who_waited_longer() -> None:
    early = caller(1, joined=0, gone=30)  # waits, never offered, hangs up at 30 s
    late = caller(2, joined=1, gone=8, dispatched=(5, 5.05))  # chosen at 5 s
    assert verdicts(records([early, late])) == {"fifo": 1}
    # Not a violation: the early caller's own offer was in progress then...
    ringing = caller(1, joined=0, gone=30, offers=((4.9, 7.9),))
    assert verdicts(records([ringing, late])) == {}
    # ... or she had left the line, or the line did not hold her yet (her joining was
    # late: a worker died on the way), or she joined after the other caller.
    assert verdicts(records([caller(1, joined=0, gone=4), late])) == {}
    not_yet = replace(early, in_line_from=T0 + 5.5)
    assert verdicts(records([not_yet, late])) == {}
    assert verdicts(records([caller(1, joined=1.5, gone=30), late])) == {}
    # A caller of a higher priority waiting while a lower one is put through.
    vip = caller(3, joined=2, priority=5, gone=30)
    assert verdicts(records([vip, late])) == {"priority_order": 1}


def test_the_detectors_see_a_wrong_position_and_one_said_while_the_offer_rings() -> None:
    ahead = caller(1, joined=0, gone=20)
    x = caller(2, joined=1, gone=30)

    def heard(at: float, position: int, decided: float | None = None) -> Announcement:
        text = "You are next in line." if position == 1 else f"You are number {position} in line."
        when = T0 + (decided if decided is not None else at - 0.01)
        return Announcement("call-2", T0 + at, position, text, when, True)

    assert verdicts(records([ahead, x], announcements=[heard(5, 2)])) == {}
    assert verdicts(records([ahead, x], announcements=[heard(5, 1)])) == {
        "announcement_position": 1
    }
    assert verdicts(records([ahead, x], announcements=[heard(5, 3)])) == {
        "announcement_position": 1
    }
    # Right if true at any moment between deciding and hearing: the caller ahead left at 20.
    assert verdicts(records([ahead, x], announcements=[heard(20.05, 1, decided=19.9)])) == {}
    # Heard while an agent leg of the caller was live.
    ringing = leg("call-2", "+31205550001", 4.5, 7.5)
    assert verdicts(records([ahead, x], [ringing], [heard(5, 2)])) == {
        "announcement_while_offered": 1
    }
    # Logged while the service held an offer for the caller.
    x.announced = [(T0 + 6, 2)]
    x.logged_offers = [Span(T0 + 4.4, T0 + 7.6, "log")]
    assert verdicts(records([ahead, x])) == {"announcement_while_offered": 1}


def test_the_detectors_count_callbacks_in_line_and_their_follow_up_calls_legs() -> None:
    # Call 1 waited from 0 and left for a callback at 3: the callback keeps her place.
    left = caller(1, joined=0, gone=3)
    place = CallerRecord(
        "cb:1", 1, 0, kind="callback", joined=T0, in_line_from=T0 + 3,
        gone=Span(T0 + 19.9, T0 + 20, "log"),
    )  # fmt: skip
    x = caller(2, joined=1, gone=30)

    def heard(at: float, position: int) -> Announcement:
        text = "You are next in line." if position == 1 else f"You are number {position} in line."
        return Announcement("call-2", T0 + at, position, text, T0 + at - 0.01, True)

    # Ahead of call 2 while she waited, and as a callback (until its follow-up call's
    # agent answered at 20)...
    for at in (2, 5):
        assert verdicts(records([left, place, x], announcements=[heard(at, 2)])) == {}
        assert verdicts(records([left, place, x], announcements=[heard(at, 1)])) == {
            "announcement_position": 1
        }
    assert verdicts(records([left, place, x], announcements=[heard(21, 1)])) == {}
    # ... but neither judged for fifo (follow-up calls are left out) nor for outcome.
    late = caller(3, joined=2, gone=8, dispatched=(5, 5.05))
    assert verdicts(records([left, place, late])) == {}
    # A follow-up call's leg rings an agent who talks to another caller...
    follow_up = replace(leg("follow-1", "+31205550001", 9.1, 12, 10), callback_of="call-1")
    talking = leg("call-3", "+31205550001", 5.1, 10, 6)
    assert verdicts(records([left, place, late], [talking, follow_up])) == {"agent_double_offer": 1}
    # ... or is requested while a leg of its caller's own call is still live.
    still = leg("call-1", "+31205550002", 1.1, 9.5, 2)
    assert verdicts(records([left, place, late], [still, follow_up])) == {"caller_double_offer": 1}


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({"agent_answered": True, "service_outcome": "agent_connected"}, "connected"),
        ({"hangup_source": "caller", "service_outcome": "ended_by_caller"}, "abandoned"),
        ({"service_outcome": "hangup_node", "service_node": TIMEOUT_NODE}, "timed_out"),
        (
            {"left_for": "callback", "service_outcome": "hangup_node", "called_back": "connected"},
            "called_back",
        ),
        ({"left_for": "callback", "service_outcome": "hangup_node"}, None),
        ({"left_for": "callback", "called_back": "no follow-up call reached an agent"}, None),
        ({"service_outcome": "hangup_node", "service_node": "closed"}, None),
        ({"agent_answered": True, "service_outcome": "ended_by_caller"}, None),
        ({"ended": False}, None),
        ({"service_outcome": None}, None),
    ],
)
def test_outcomes_are_classified(facts: dict[str, object], expected: str | None) -> None:
    given: dict[str, object] = {
        "ended": True,
        "hangup_source": "api",
        "agent_answered": False,
        "service_outcome": "hangup_node",
        "service_node": None,
        "left_for": None,
        **facts,
    }
    outcome, problems = classify(**given)  # type: ignore[arg-type]
    assert outcome == expected
    assert bool(problems) == (expected is None)


def test_announcements_are_read_and_records_survive_json() -> None:
    assert parse_announcement("You are next in line. The expected wait is about 3 minutes.") == 1
    assert parse_announcement("You are number 12 in line.") == 12
    assert parse_announcement("All our agents are busy.") is None
    made = records(
        [caller(1, joined=0, gone=12, dispatched=(5, 5.05))],
        [leg("call-1", "+31205550001", 5.1, 12, 6)],
        [Announcement("call-1", T0 + 1, 1, "You are next in line.", T0 + 0.9, True)],
        [Snapshot(T0 + 2, {"call-1": 5}, {}, {"ann": ("idle", "")})],
    )
    again = records_from_json(json.loads(json.dumps(records_to_json(made))))
    assert again == made
