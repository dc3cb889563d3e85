"""ivr simulate: the shipped graphs walked offline, as a product team would try them."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from service.graphs.loader import load_file, parse
from service.graphs.simulate import Simulation, simulate
from tests.paths import SHIPPED_GRAPHS, ivr

AMS = ZoneInfo("Europe/Amsterdam")
OPEN = datetime(2026, 12, 1, 10, 0, tzinfo=AMS)  # Tuesday
HOLIDAY = datetime(2026, 12, 25, 10, 0, tzinfo=AMS)
SUPPORT = load_file(SHIPPED_GRAPHS / "support-line.json")
REMINDER = load_file(SHIPPED_GRAPHS / "appointment-reminder.json")
REMINDER_VARS = {"name": "Ann", "date": "1 December", "time": "10:00"}


def heard(result: Simulation) -> list[str]:
    return [json.loads(line.text) for line in result.lines if line.kind == "hears"]


def test_support_line_in_open_hours_reaches_a_person() -> None:
    result = simulate(SUPPORT, ["1", "4321#", "123456#"], at=OPEN)
    assert result.ok, result.error
    assert result.outcome == "transferred"
    assert result.ended_at == "billing"
    assert ("billing", "reached", "+31201234567") in [
        (x.node, x.kind, x.text) for x in result.lines
    ]
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


def test_nobody_answering_a_transfer_leads_to_voicemail() -> None:
    result = simulate(SUPPORT, ["2"], at=OPEN, agent="no-answer")
    assert result.ok, result.error
    assert result.ended_at == "thanks"
    assert ("tech", "not-reached", "sip:tech@pbx.example.com: no-answer") in [
        (x.node, x.kind, x.text) for x in result.lines
    ]


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
        "To confirm it press 1. To reschedule press 2.",
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
    assert "billing         reached     +31201234567" in ok.stdout
    assert ok.stdout.splitlines()[-1] == "ended: transferred at node billing after 7 steps"
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
    ],
)
def test_bad_arguments_get_one_line_and_exit_2(args: list[str], message: str) -> None:
    done = ivr("simulate", "ivr_graphs/support-line.json", *args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
