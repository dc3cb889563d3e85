"""ivr simulate: the shipped graphs walked offline, as a product team would try them."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from service.core.graph import Graph
from service.graphs.loader import load_file, parse, with_queues
from service.graphs.queues import parse_queues
from service.graphs.simulate import AgentTurn, Simulation, load, parse_agents, simulate
from tests.paths import SHIPPED_GRAPHS, ivr

AMS = ZoneInfo("Europe/Amsterdam")
OPEN = datetime(2026, 12, 1, 10, 0, tzinfo=AMS)  # Tuesday
HOLIDAY = datetime(2026, 12, 25, 10, 0, tzinfo=AMS)
SUPPORT = load(SHIPPED_GRAPHS / "support-line.json")  # with ivr_graphs/queues.json
REMINDER = load_file(SHIPPED_GRAPHS / "appointment-reminder.json")
REMINDER_VARS = {"name": "Ann", "date": "1 December", "time": "10:00"}


def heard(result: Simulation) -> list[str]:
    return [line.text for line in result.lines if line.kind == "hears"]


def shown(result: Simulation, *kinds: str) -> list[tuple[str | None, str, str]]:
    """The transcript's lines (of ``kinds``, or all) as (node, kind, text)."""
    return [(x.node, x.kind, x.shown) for x in result.lines if not kinds or x.kind in kinds]


def test_support_line_in_open_hours_reaches_a_person() -> None:
    result = simulate(SUPPORT, ["1", "4321#", "123456#"], at=OPEN)
    assert result.ok, result.error
    assert result.outcome == "agent_connected"
    assert result.ended_at == "billing"
    assert ("billing", "connected", "to agent agent-1 at +31200000001 after 30 s in line") in (
        shown(result)
    )
    assert result.vars == {"account": "123456"}
    assert "That is not a valid account number. Account numbers have six to eight digits." in (
        heard(result)
    )


def test_support_line_business_accounts_reach_business_billing() -> None:
    result = simulate(SUPPORT, ["1", "9123456#"], at=OPEN)
    assert result.ended_at == "business-billing"


def test_support_line_on_a_holiday_takes_voicemail() -> None:
    result = simulate(SUPPORT, [], at=HOLIDAY)
    assert result.ok, result.error
    assert ("opening-hours", "hours", "closed (Europe/Amsterdam)") in [
        (x.node, x.kind, x.text) for x in result.lines
    ]
    assert [x.node for x in result.lines if x.kind == "records"] == ["voicemail"]
    assert heard(result)[-1] == "Thank you. Goodbye."


def test_support_line_silence_ends_on_failure() -> None:
    result = simulate(SUPPORT, ["_", "_", "_"], at=OPEN)
    assert result.ok, result.error
    assert result.ended_at == "goodbye"
    assert heard(result).count("Sorry, I did not hear a choice.") == 3


def test_nobody_answering_a_transfer_takes_its_on_failure() -> None:
    for agent in ("no-answer", "none"):
        result = simulate(REMINDER, ["2"], at=OPEN, variables=REMINDER_VARS, outbound=True,
                          agent=agent)  # fmt: skip
        assert result.ok, result.error
        assert result.ended_at == "call-back"
        assert ("reschedule", "not-reached", "+31201234580: no-answer") in shown(result)
    busy = simulate(REMINDER, ["2"], at=OPEN, variables=REMINDER_VARS, outbound=True,
                    agent="busy")  # fmt: skip
    assert ("reschedule", "not-reached", "+31201234580: busy") in shown(busy)


def test_support_line_with_nobody_logged_in_takes_voicemail() -> None:
    result = simulate(SUPPORT, ["2"], at=OPEN, agent="none")
    assert result.ok, result.error
    assert shown(result, "line", "leaves") == [
        ("tech", "line", "joins support: nobody is logged in"),
        ("tech", "leaves", "nobody is logged in for the queue: on_no_agents"),
    ]
    assert [x.node for x in result.lines if x.kind == "records"] == ["voicemail"]
    assert result.ended_at == "thanks"


def test_a_script_with_too_few_inputs_fails_loudly() -> None:
    result = simulate(SUPPORT, ["1"], at=OPEN)
    assert not result.ok
    assert result.error == "node account-number asks for input and the script has none left"


def test_a_script_with_inputs_left_over_fails_loudly() -> None:
    result = simulate(SUPPORT, ["2", "5", "7"], at=OPEN)
    assert result.error == "input left over: 5, 7 (the call ended at node tech)"


def test_appointment_reminder_outbound_confirm_and_reschedule() -> None:
    confirmed = simulate(REMINDER, ["1"], at=OPEN, variables=REMINDER_VARS, outbound=True)
    assert confirmed.ok, confirmed.error
    assert heard(confirmed) == [
        "Hello Ann, this is Acme. You have an appointment on 1 December at 10:00. "
        "To confirm it, press 1 or say yes. To reschedule, press 2 or say reschedule.",
        "Thank you, your appointment on 1 December is confirmed. Goodbye.",
    ]
    rescheduled = simulate(REMINDER, ["2"], at=OPEN, variables=REMINDER_VARS, outbound=True)
    assert rescheduled.outcome == "transferred"
    assert rescheduled.ended_at == "reschedule"


def test_params_must_be_given() -> None:
    result = simulate(REMINDER, ["1"], at=OPEN, outbound=True)
    assert result.error == (
        "the graph's params need a value: name, date, time (use --var NAME=VALUE)"
    )


def test_http_nodes_are_answered_from_fixtures() -> None:
    graph = parse(
        {
            "id": "lookup",
            "numbers": ["+31970000001"],
            "start": "ask",
            "nodes": {
                "ask": {"type": "collect", "say": "Account?", "var": "account", "max_digits": 6,
                        "next": "crm", "on_failure": "bye"},
                "crm": {"type": "http", "url": "https://crm.example.com/accounts/{{vars.account}}",
                        "save": {"tier": "$.customer.tier"}, "next": "greet", "on_error": "bye"},
                "greet": {"type": "hangup", "say": "Hello {{vars.tier}} customer."},
                "bye": {"type": "hangup", "say": "Goodbye."},
            },
        },
        "lookup.json",
    )  # fmt: skip
    fixtures = {
        "GET https://crm.example.com/accounts/123456": {"json": {"customer": {"tier": "gold"}}}
    }
    result = simulate(graph, ["123456#"], at=OPEN, fixtures=fixtures)
    assert heard(result)[-1] == "Hello gold customer."
    failing = {"https://crm.example.com/accounts/123456": {"error": "timeout"}}
    assert heard(simulate(graph, ["123456#"], at=OPEN, fixtures=failing))[-1] == "Goodbye."
    missing = simulate(graph, ["123456#"], at=OPEN, fixtures={})
    assert missing.error is not None
    assert "no answer for it in the --http-fixture file" in missing.error


def test_the_command_line_prints_the_transcript_and_exit_codes() -> None:
    ok = ivr("simulate", "ivr_graphs/support-line.json", "--keys", "1,4321#,123456#",
             "--at", "2026-12-01T10:00+01:00")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "billing         connected   to agent agent-1 at +31200000001 after 30 s" in ok.stdout
    assert ok.stdout.splitlines()[-1] == "ended: agent_connected at node billing after 7 steps"
    short = ivr("simulate", "ivr_graphs/support-line.json", "--keys", "1",
                "--at", "2026-12-01T10:00+01:00")  # fmt: skip
    assert short.returncode == 1
    assert short.stderr == (
        "ivr simulate: node account-number asks for input and the script has none left\n"
    )


def test_the_command_line_speaks_json() -> None:
    done = ivr("simulate", "ivr_graphs/support-line.json", "--at", "2026-12-25T10:00+01:00",
               "--json")  # fmt: skip
    data = json.loads(done.stdout)
    assert data["ok"] is True
    assert data["ended_at"] == "thanks"
    assert {"node": "voicemail", "kind": "records", "text": "a voicemail (at most 120 s)"} in (
        data["lines"]
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--at", "christmas"], "--at 'christmas' is not an ISO-8601 date-time"),
        (["--at", "2026-12-25T10:00"], "needs a UTC offset"),
        (["--var", "oops"], "--var 'oops' is not NAME=VALUE"),
        (["--http-fixture", "/no/such/file"], "--http-fixture /no/such/file: No such file"),
        (["--agent", "bogus"], "--agent 'bogus': 'bogus' is not one of answer, no-answer,"),
        (["--agent", "answer:soon"], "--agent 'answer:soon': wait 'soon' is not a number"),
        (["--agent", "answer,none:5"], "offer 2 ('none:5'): none takes no wait"),
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = ivr("simulate", "ivr_graphs/support-line.json", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.splitlines()) == 1
    assert "Traceback" not in done.stderr


# -- queue nodes, walked with scripted agents ------------------------------------

LINE_GRAPH: dict[str, Any] = {
    "id": "help-line",
    "numbers": ["+31970000009"],
    "start": "hi",
    "nodes": {
        "hi": {"type": "say", "say": "Welcome.", "next": "wait"},
        "wait": {"type": "queue", "queue": "help", "on_timeout": "sorry",
                 "on_no_agents": "closed", "on_callback": "later"},
        "sorry": {"type": "hangup", "say": "Sorry, nobody could take your call."},
        "closed": {"type": "hangup", "say": "Nobody is available."},
        "later": {"type": "hangup", "say": "We will call you back."},
    },
}  # fmt: skip
LINE_QUEUES: dict[str, Any] = {
    "queues": {
        "help": {"hold": {"say": "Please hold."}, "hold_segment_s": 20, "ring_timeout_s": 15,
                 "max_wait_s": 300, "callback_after_s": 120, "announce_every_s": 60,
                 "no_agents_grace_s": 60},
    }
}  # fmt: skip
LINE = with_queues(parse(LINE_GRAPH, "help-line.json"), parse_queues(LINE_QUEUES))


def walk(agent: str, keys: tuple[str, ...] = (), graph: Graph = LINE) -> Simulation:
    result = simulate(graph, list(keys), at=OPEN, agent=agent)
    assert result.ok, result.error
    return result


def test_a_caller_in_line_hears_hold_and_their_place_then_an_agent_answers() -> None:
    result = walk("answer")  # the default: an agent is free after 30 s and answers
    assert result.outcome == "agent_connected"
    assert result.ended_at == "wait"
    assert shown(result)[2:] == [
        ("wait", "node", "queue"),
        ("wait", "line", "joins help: number 1 in line, expected wait 30 s"),
        ("wait", "hears", "You are next in line. The expected wait is less than a minute."),
        ("wait", "hold", "Please hold. (for 20 s)"),
        ("wait", "line", "after 20 s in line: number 1 in line, expected wait 10 s"),
        ("wait", "hold", "Please hold. (for 10 s, until an agent is free)"),
        ("wait", "offered", "agent-1 at +31200000001 (rings up to 15 s)"),
        ("wait", "connected", "to agent agent-1 at +31200000001 after 30 s in line"),
    ]
    assert simulate(LINE, [], at=OPEN).lines == result.lines


def test_a_long_wait_announces_better_places_and_offers_a_callback() -> None:
    result = walk("answer:150", ("_",))
    assert heard(result) == [
        "Welcome.",
        # The place and the callback offer, in one prompt when both are due.
        "You are number 3 in line. The expected wait is about 2 minutes. "
        "To be called back when it is your turn, without losing your place, press 1.",
        "You are number 2 in line. The expected wait is about 1 minute.",
        "You are next in line. The expected wait is less than a minute.",
    ]
    assert ("wait", "silence", "pressed nothing within 5 s") in shown(result)
    holds = shown(result, "hold")
    assert len(holds) == 8
    assert holds[-1] == ("wait", "hold", "Please hold. (for 5 s, until an agent is free)")
    assert shown(result, "connected") == [
        ("wait", "connected", "to agent agent-1 at +31200000001 after 150 s in line")
    ]


def test_pressing_1_at_the_callback_offer_takes_on_callback() -> None:
    result = walk("answer:600", ("1",))
    assert ("wait", "presses", "1") in shown(result)
    assert shown(result, "leaves") == [("wait", "leaves", "takes the callback: on_callback")]
    assert result.ended_at == "later"
    assert heard(result)[-1] == "We will call you back."
    assert shown(result, "offered", "connected") == []


def test_a_callback_offer_needs_an_input() -> None:
    result = simulate(LINE, [], at=OPEN, agent="answer:600")
    assert result.error == (
        "node wait asks for input and the script has none left (a callback offer: give "
        "--keys _ to let it pass, 1 to take it)"
    )


def test_agents_who_never_answer_keep_the_caller_on_hold_until_on_timeout() -> None:
    result = walk("no-answer")
    # Offered after 30 s each time, each ringing 15 s: at 30, 75, ... 255 s; the next
    # agent would be free at 300 s, when the caller's max_wait_s is over.
    assert shown(result, "not-reached") == [
        ("wait", "not-reached", f"agent-{n}: no-answer after 15 s") for n in range(1, 7)
    ]
    assert ("wait", "hold", "Please hold. (for 10 s)") in shown(result)
    assert shown(result, "leaves") == [
        ("wait", "leaves", "waited 300 s, the queue's max_wait_s: on_timeout")
    ]
    assert result.ended_at == "sorry"
    assert result.outcome == "hangup_node"
    assert heard(result)[-1] == "Sorry, nobody could take your call."


def test_nobody_logged_in_takes_on_no_agents_at_once() -> None:
    result = walk("none")
    assert shown(result, "line", "leaves", "hold") == [
        ("wait", "line", "joins help: nobody is logged in"),
        ("wait", "leaves", "nobody is logged in for the queue: on_no_agents"),
    ]
    assert result.ended_at == "closed"


def test_agents_logging_out_while_the_caller_waits_take_on_no_agents() -> None:
    result = walk("no-answer,none")
    lines = shown(result, "line", "leaves")
    assert lines[2] == ("wait", "line", "after 65 s in line: number 1 in line, nobody is logged in")
    assert lines[-1] == (
        "wait", "leaves", "nobody logged in for the queue's no_agents_grace_s: on_no_agents"
    )  # fmt: skip
    assert lines[-2] == (
        "wait", "line", "after 125 s in line: number 1 in line, nobody is logged in"
    )  # fmt: skip
    assert result.ended_at == "closed"


def test_successive_offers_follow_the_script() -> None:
    result = walk("busy,no-answer:5,answer:10")
    assert shown(result, "offered", "not-reached", "connected") == [
        ("wait", "offered", "agent-1 at +31200000001 (rings up to 15 s)"),
        ("wait", "not-reached", "agent-1: busy after 2 s"),
        ("wait", "offered", "agent-2 at +31200000002 (rings up to 15 s)"),
        ("wait", "not-reached", "agent-2: no-answer after 15 s"),
        ("wait", "offered", "agent-3 at +31200000003 (rings up to 15 s)"),
        ("wait", "connected", "to agent agent-3 at +31200000003 after 62 s in line"),
    ]


def test_an_agent_free_at_once_is_offered_without_hold() -> None:
    result = walk("answer:0")
    assert shown(result, "hold") == []
    assert shown(result, "connected") == [
        ("wait", "connected", "to agent agent-1 at +31200000001 after 0 s in line")
    ]


def test_a_queue_the_graph_does_not_carry_is_an_error() -> None:
    result = simulate(parse(LINE_GRAPH, "help-line.json"), [], at=OPEN)
    assert result.error == (
        "node wait waits in queue 'help', which the graph's queues do not include (they are: "
        "none; ivr simulate reads the queues.json beside the graph)"
    )


def test_agent_scripts_parse() -> None:
    assert parse_agents("answer") == (AgentTurn("answer", 30.0),)
    assert parse_agents(" no-answer:5 , answer:2.5,none") == (
        AgentTurn("no-answer", 5.0), AgentTurn("answer", 2.5), AgentTurn("none"),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no behaviour: it must be one of answer, no-answer, busy, failed, none"),
        ("maybe", "'maybe' is not one of answer, no-answer, busy, failed, none"),
        ("answer:", "wait '' is not a number of seconds"),
        ("answer:-1", "wait '-1' must be a number of seconds, 0 or more"),
        ("answer:inf", "wait 'inf' must be a number of seconds, 0 or more"),
        ("none:3", "none takes no wait"),
        ("answer,,busy", "offer 2 (''): no behaviour"),
    ],
)
def test_bad_agent_scripts_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        parse_agents(spec)


def test_the_command_line_walks_a_queue_with_the_queues_beside_the_graph(tmp_path: Path) -> None:
    (tmp_path / "help-line.json").write_text(json.dumps(LINE_GRAPH))
    alone = ivr("simulate", str(tmp_path / "help-line.json"), "--at", "2026-12-01T10:00+01:00")
    assert alone.returncode == 1
    assert alone.stderr == (
        f"{tmp_path / 'help-line.json'}: /nodes/wait/queue: queue 'help' is not defined: there "
        "is no queues.json in the graph's directory (docs/queues.md)\n"
    )
    (tmp_path / "queues.json").write_text(json.dumps(LINE_QUEUES))
    done = ivr("simulate", str(tmp_path / "help-line.json"), "--at", "2026-12-01T10:00+01:00",
               "--agent", "no-answer,answer:150", "--keys", "_")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "  wait  not-reached agent-1: no-answer after 15 s\n" in done.stdout
    assert "  wait  silence     pressed nothing within 5 s\n" in done.stdout  # the callback offer
    assert "  wait  connected   to agent agent-2 at +31200000002 after 195 s in line\n" in (
        done.stdout
    )
    assert done.stdout.splitlines()[-1] == "ended: agent_connected at node wait after 2 steps"
