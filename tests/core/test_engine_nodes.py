"""The engine's node types fed event sequences on small graphs: what the caller hears,
which node the call goes to, what is kept in ``vars``, what is asked of the service."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from service.core import actions, engine, events
from service.core.actions import Action
from service.core.engine import Transition
from service.core.events import Event, LegStatus
from service.core.graph import Graph
from service.core.state import Direction, Phase
from service.graphs.loader import parse
from tests.core.test_engine import said

CALLER = "+31612345678"
CALLED = "+31970102030"
CALL_ID = "call-7"
# Monday 2024-01-08 12:00 UTC: open for every hours node that does not care.
NOON = datetime(2024, 1, 8, 12, 0, tzinfo=UTC).timestamp()


def graph_of(nodes: dict[str, Any], start: str = "entry") -> Graph:
    return parse(
        {
            "id": "nodes-test",
            "locale": "en-GB",
            "voice": "female",
            "start": start,
            "nodes": nodes,
        },
        "nodes-test.json",
    )


def bye(text: str) -> dict[str, Any]:
    return {"type": "hangup", "say": text}


def begin(
    graph: Graph,
    *,
    direction: Direction = Direction.INBOUND,
    variables: dict[str, str] | None = None,
    now: float = NOON,
) -> Transition:
    return engine.begin(
        graph,
        call_id=CALL_ID,
        caller=CALLER,
        called=CALLED,
        now=now,
        direction=direction,
        variables=variables,
    )


def trace(
    graph: Graph,
    *sequence: Event,
    variables: dict[str, str] | None = None,
    now: float = NOON,
) -> list[Transition]:
    """Every transition of a call that is answered and then fed ``sequence``."""
    begun = begin(graph, variables=variables, now=now)
    transitions = [engine.step(graph, begun.state, events.CallAnswered(), now)]
    for event in sequence:
        transitions.append(engine.step(graph, transitions[-1].state, event, now))
    return transitions


def run(
    graph: Graph,
    *sequence: Event,
    variables: dict[str, str] | None = None,
    now: float = NOON,
) -> tuple[Transition, list[Action]]:
    """The last transition and every action taken since the call was answered."""
    transitions = trace(graph, *sequence, variables=variables, now=now)
    return transitions[-1], [action for t in transitions for action in t.actions]


def say(text: str) -> actions.Say:
    """A prompt with the test graphs' defaults."""
    return actions.Say(text, locale="en-GB", voice="female")


# -- collect -----------------------------------------------------------------------------


def collect_graph(**fields: Any) -> Graph:
    node: dict[str, Any] = {
        "type": "collect",
        "say": "Enter your PIN, {{caller}}.",
        "var": "pin",
        "min_digits": 4,
        "max_digits": 6,
        "invalid": {"say": "That PIN is not valid."},
        "no_input": {"say": "I heard nothing."},
        "next": "thanks",
        "on_failure": "failed",
    }
    node.update(fields)
    for name in [k for k, v in node.items() if v is None]:
        del node[name]
    return graph_of(
        {
            "entry": node,
            "thanks": bye("Thanks, PIN {{vars.pin}}."),
            "failed": bye("Sorry, goodbye."),
        }
    )


PIN_PROMPT = say(f"Enter your PIN, {CALLER}.")


def test_collect_gathers_with_its_limits_and_the_rendered_prompt() -> None:
    transition = trace(collect_graph(end_key="*", timeout_s=7))[-1]
    assert transition.actions == (actions.Gather(PIN_PROMPT, 6, 7, "*"),)
    assert transition.state.node == "entry"
    assert transition.state.phase == Phase.GATHERING


def test_collect_ends_with_hash_after_five_seconds_by_default() -> None:
    transition = trace(collect_graph())[-1]
    assert transition.actions == (actions.Gather(PIN_PROMPT, 6, 5, "#"),)


@pytest.mark.parametrize("digits", ["1234", "12345", "123456", "000000"])
def test_collect_stores_valid_input_and_goes_to_next(digits: str) -> None:
    transition, taken = run(collect_graph(), events.DigitsCollected(digits))
    assert transition.state.vars == {"pin": digits}
    assert transition.state.node == "thanks"
    assert said(transition.actions) == [f"Thanks, PIN {digits}."]
    assert said(taken) == [PIN_PROMPT.text, f"Thanks, PIN {digits}."]


@pytest.mark.parametrize(
    ("fields", "digits"),
    [
        pytest.param({}, "123", id="too short"),
        pytest.param({}, "1", id="one digit of four"),
        pytest.param({}, "1234567", id="too long"),
        pytest.param({"pattern": "[1-9][0-9]*"}, "0123", id="pattern"),
        pytest.param({"pattern": "[0-9]{4}"}, "12345", id="pattern matches a part only"),
        pytest.param({"pattern": "[0-9]+"}, "12*4", id="a star in the input"),
    ],
)
def test_collect_plays_invalid_and_asks_again(fields: dict[str, Any], digits: str) -> None:
    graph = collect_graph(**fields)
    transition, _ = run(graph, events.DigitsCollected(digits))
    assert said(transition.actions) == ["That PIN is not valid."]
    assert transition.state.phase == Phase.PROMPTING
    assert transition.state.attempts == 1
    assert "pin" not in transition.state.vars
    transition = engine.step(graph, transition.state, events.PromptFinished(), NOON)
    assert transition.actions == (actions.Gather(PIN_PROMPT, 6, 5, "#"),)
    transition = engine.step(graph, transition.state, events.DigitsCollected("4321"), NOON)
    assert transition.state.node == "thanks"
    assert transition.state.vars == {"pin": "4321"}


def test_collect_with_a_pattern_accepts_what_matches() -> None:
    transition, _ = run(collect_graph(pattern="[1-9][0-9]*"), events.DigitsCollected("90210"))
    assert transition.state.vars == {"pin": "90210"}
    assert transition.state.node == "thanks"


@pytest.mark.parametrize(
    "silence", [events.DigitsCollected(""), events.DigitsCollected("1234", ok=False)]
)
def test_collect_plays_no_input_on_silence(silence: events.DigitsCollected) -> None:
    graph = collect_graph()
    transition, _ = run(graph, silence)
    assert said(transition.actions) == ["I heard nothing."]
    assert transition.state.attempts == 1
    assert "pin" not in transition.state.vars
    transition = engine.step(graph, transition.state, events.PromptFinished(), NOON)
    assert transition.actions == (actions.Gather(PIN_PROMPT, 6, 5, "#"),)


def test_collect_without_retry_prompts_asks_again_at_once() -> None:
    graph = collect_graph(invalid=None, no_input=None)
    transition, _ = run(graph, events.DigitsCollected("12"))
    assert transition.actions == (actions.Gather(PIN_PROMPT, 6, 5, "#"),)
    assert transition.state.attempts == 1
    transition = engine.step(graph, transition.state, events.DigitsCollected(""), NOON)
    assert transition.actions == (actions.Gather(PIN_PROMPT, 6, 5, "#"),)
    assert transition.state.attempts == 2


def test_collect_goes_to_on_failure_after_max_attempts_without_storing() -> None:
    transition, taken = run(
        collect_graph(max_attempts=3),
        events.DigitsCollected("12"),  # too short
        events.PromptFinished(),
        events.DigitsCollected(""),  # silence
        events.PromptFinished(),
        events.DigitsCollected("1234567"),  # too long: third try
        events.PromptFinished(),  # the invalid prompt, then on_failure
    )
    assert said(taken) == [
        PIN_PROMPT.text,
        "That PIN is not valid.",
        PIN_PROMPT.text,
        "I heard nothing.",
        PIN_PROMPT.text,
        "That PIN is not valid.",
        "Sorry, goodbye.",
    ]
    assert transition.state.node == "failed"
    assert "pin" not in transition.state.vars


def test_collect_without_prompts_goes_to_on_failure_at_the_last_try() -> None:
    transition, _ = run(
        collect_graph(max_attempts=1, invalid=None, no_input=None), events.DigitsCollected("1")
    )
    assert transition.state.node == "failed"
    assert said(transition.actions) == ["Sorry, goodbye."]
    assert transition.state.vars == {}


def test_collect_takes_a_single_digit_when_min_digits_is_not_given() -> None:
    graph = collect_graph(min_digits=None, max_digits=3)
    transition, _ = run(graph, events.DigitsCollected("7"))
    assert transition.state.vars == {"pin": "7"}
    assert transition.state.node == "thanks"
    # ... but nothing at all is no input, not an empty value
    transition, _ = run(graph, events.DigitsCollected(""))
    assert said(transition.actions) == ["I heard nothing."]
    assert transition.state.vars == {}


def test_collect_notes_give_the_length_of_the_input_never_the_digits() -> None:
    transitions = trace(
        collect_graph(),
        events.DigitsCollected("975"),  # too short
        events.PromptFinished(),
        events.DigitsCollected("864208"),
    )
    notes = [note for t in transitions for note in t.notes]
    assert transitions[-1].state.vars == {"pin": "864208"}
    logged = repr(notes)
    assert "975" not in logged
    assert "864208" not in logged
    (invalid,) = [n for n in notes if n.event == "collect_invalid"]
    assert invalid.fields["input"] == "3 digits"
    (collected,) = [n for n in notes if n.event == "input_collected"]
    assert collected.fields["var"] == "pin"
    assert collected.fields["length"] == 6


# -- branch ------------------------------------------------------------------------------


def branch_graph(*cases: dict[str, Any]) -> Graph:
    return graph_of(
        {
            "entry": {"type": "branch", "cases": list(cases), "default": "other"},
            "first": bye("First."),
            "second": bye("Second."),
            "other": bye("Other."),
        }
    )


def test_branch_takes_the_first_case_that_holds() -> None:
    graph = branch_graph(
        {"var": "vars.tier", "op": "eq", "value": "gold", "next": "first"},
        {"var": "vars.tier", "op": "exists", "next": "second"},
    )
    transition, _ = run(graph, variables={"tier": "gold"})
    assert transition.state.node == "first"
    assert said(transition.actions) == ["First."]
    transition, _ = run(graph, variables={"tier": "silver"})
    assert transition.state.node == "second"
    assert said(transition.actions) == ["Second."]


def test_branch_takes_default_when_no_case_holds() -> None:
    graph = branch_graph(
        {"var": "vars.tier", "op": "eq", "value": "gold", "next": "first"},
        {"var": "caller", "op": "matches", "value": r"\+1.*", "next": "second"},
    )
    transition, _ = run(graph, variables={"tier": "silver"})
    assert transition.state.node == "other"
    assert said(transition.actions) == ["Other."]
    assert [n.fields.get("case") for n in transition.notes if n.event == "branch_taken"] == [
        "default"
    ]


UNSET: dict[str, str] = {}
BRANCH_CASES: list[Any] = [
    # eq / ne on text, on the caller's and called numbers
    pytest.param({"tier": "gold"}, "vars.tier", "eq", "gold", True, id="eq text"),
    pytest.param({"tier": "Gold"}, "vars.tier", "eq", "gold", False, id="eq is case-sensitive"),
    pytest.param(UNSET, "caller", "eq", CALLER, True, id="eq caller"),
    pytest.param(UNSET, "called", "eq", "+31201234567", False, id="eq called other"),
    pytest.param(UNSET, "called", "ne", "+31201234567", True, id="ne called"),
    pytest.param({"tier": "gold"}, "vars.tier", "ne", "gold", False, id="ne same"),
    # numbers on both sides compare as numbers
    pytest.param({"pin": "007"}, "vars.pin", "eq", 7, True, id="'007' eq 7"),
    pytest.param({"pin": "007"}, "vars.pin", "eq", "7", True, id="'007' eq '7'"),
    pytest.param({"pin": "007"}, "vars.pin", "ne", 7, False, id="'007' ne 7"),
    pytest.param({"amount": "12.50"}, "vars.amount", "eq", 12.5, True, id="'12.50' eq 12.5"),
    pytest.param({"pin": "007"}, "vars.pin", "eq", "seven", False, id="'007' eq 'seven'"),
    pytest.param({"flag": "true"}, "vars.flag", "eq", True, True, id="'true' eq true"),
    pytest.param(
        {"account": "12345678901234567"},
        "vars.account",
        "eq",
        "12345678901234568",
        False,
        id="long account numbers that differ in the last digit",
    ),
    # in
    pytest.param({"tier": "gold"}, "vars.tier", "in", ["silver", "gold"], True, id="in"),
    pytest.param({"tier": "bronze"}, "vars.tier", "in", ["silver", "gold"], False, id="not in"),
    pytest.param({"choice": "02"}, "vars.choice", "in", [1, 2, 3], True, id="in numbers"),
    pytest.param(UNSET, "called", "in", [CALLED, "+31201234567"], True, id="called in"),
    # matches: the whole value
    pytest.param(UNSET, "caller", "matches", r"\+316\d{8}", True, id="caller matches"),
    pytest.param(UNSET, "caller", "matches", r"\+316", False, id="matches a prefix only"),
    pytest.param(UNSET, "called", "matches", r"\+3197.*", True, id="called matches"),
    pytest.param({"pin": "1234"}, "vars.pin", "matches", r"\d{4}", True, id="var matches"),
    # lt / le / gt / ge need numbers
    pytest.param({"amount": "9.5"}, "vars.amount", "lt", 10, True, id="9.5 lt 10"),
    pytest.param({"amount": "10"}, "vars.amount", "lt", 10, False, id="10 lt 10"),
    pytest.param({"amount": "10"}, "vars.amount", "le", 10, True, id="10 le 10"),
    pytest.param({"amount": "100"}, "vars.amount", "gt", 20, True, id="100 gt 20 (not text)"),
    pytest.param({"amount": "20"}, "vars.amount", "gt", 20, False, id="20 gt 20"),
    pytest.param({"amount": "20"}, "vars.amount", "ge", 20, True, id="20 ge 20"),
    pytest.param({"amount": "ten"}, "vars.amount", "lt", 100, False, id="text lt number"),
    pytest.param({"amount": "ten"}, "vars.amount", "ge", 0, False, id="text ge number"),
    pytest.param(UNSET, "caller", "gt", 0, False, id="a phone number is text, not a number"),
    # exists
    pytest.param({"tier": ""}, "vars.tier", "exists", None, True, id="exists empty"),
    pytest.param(UNSET, "vars.tier", "exists", None, False, id="exists unset"),
    pytest.param(UNSET, "caller", "exists", None, True, id="caller exists"),
    # an unset variable matches nothing but ne
    pytest.param(UNSET, "vars.tier", "eq", "", False, id="unset eq ''"),
    pytest.param(UNSET, "vars.tier", "ne", "gold", True, id="unset ne"),
    pytest.param(UNSET, "vars.tier", "in", ["", "gold"], False, id="unset in"),
    pytest.param(UNSET, "vars.tier", "matches", ".*", False, id="unset matches"),
    pytest.param(UNSET, "vars.amount", "lt", 100, False, id="unset lt"),
    pytest.param(UNSET, "vars.amount", "ge", -100, False, id="unset ge"),
]


@pytest.mark.parametrize(("variables", "var", "op", "value", "holds"), BRANCH_CASES)
def test_branch_operators(
    variables: dict[str, str], var: str, op: str, value: Any, holds: bool
) -> None:
    case: dict[str, Any] = {"var": var, "op": op, "next": "first"}
    if op != "exists":
        case["value"] = value
    transition, _ = run(branch_graph(case), variables=variables)
    assert transition.state.node == ("first" if holds else "other")


def test_branch_sees_a_value_collected_in_the_same_call() -> None:
    graph = graph_of(
        {
            "entry": {
                "type": "collect",
                "say": "Your account number?",
                "var": "account",
                "max_digits": 8,
                "next": "route",
                "on_failure": "other",
            },
            "route": {
                "type": "branch",
                "cases": [{"var": "vars.account", "op": "ge", "value": 5000, "next": "first"}],
                "default": "other",
            },
            "first": bye("Business line."),
            "other": bye("Consumer line."),
        }
    )
    transition, _ = run(graph, events.DigitsCollected("00012"))
    assert said(transition.actions) == ["Consumer line."]
    transition, _ = run(graph, events.DigitsCollected("5000"))
    assert said(transition.actions) == ["Business line."]


# -- set ---------------------------------------------------------------------------------


def test_set_renders_templates_into_vars() -> None:
    graph = graph_of(
        {
            "entry": {
                "type": "set",
                "vars": {
                    "greeting": "Hello {{caller}}",
                    "copy": "{{vars.name}}!",
                    "where": "{{called}}/{{call_id}}",
                    "blank": "[{{vars.nobody}}]",
                    "fixed": "gold",
                    "name": "{{vars.name}} Smith",
                },
                "next": "speak",
            },
            "speak": bye("{{vars.greeting}}, {{vars.name}}."),
        }
    )
    transition, _ = run(graph, variables={"name": "Ann"})
    assert transition.state.vars == {
        "greeting": f"Hello {CALLER}",
        "copy": "Ann!",
        "where": f"{CALLED}/{CALL_ID}",
        "blank": "[]",
        "fixed": "gold",
        "name": "Ann Smith",
    }
    assert said(transition.actions) == [f"Hello {CALLER}, Ann Smith."]


def test_set_then_branch_run_in_one_transition_without_waiting() -> None:
    graph = graph_of(
        {
            "entry": {
                "type": "collect",
                "say": "Your member number?",
                "var": "member",
                "max_digits": 6,
                "next": "tag",
                "on_failure": "other",
            },
            "tag": {"type": "set", "vars": {"account": "acc-{{vars.member}}"}, "next": "route"},
            "route": {
                "type": "branch",
                "cases": [
                    {"var": "vars.account", "op": "matches", "value": "acc-9.*", "next": "first"}
                ],
                "default": "other",
            },
            "first": {"type": "say", "say": "Gold line for {{vars.account}}.", "next": "done"},
            "other": bye("Standard line."),
            "done": bye("Bye."),
        }
    )
    transition, _ = run(graph, events.DigitsCollected("9123"))
    assert transition.actions == (actions.Speak(say("Gold line for acc-9123.")),)
    assert transition.state.node == "first"
    assert transition.state.vars == {"member": "9123", "account": "acc-9123"}
    assert [n.event for n in transition.notes] == [
        "input_collected",
        "node_entered",
        "vars_set",
        "node_entered",
        "branch_taken",
        "node_entered",
    ]


# -- hours -------------------------------------------------------------------------------

AMS = "Europe/Amsterdam"


def hours_graph(timezone: str, weekly: dict[str, list[str]], holidays: list[str]) -> Graph:
    node: dict[str, Any] = {
        "type": "hours",
        "timezone": timezone,
        "weekly": weekly,
        "open": "open",
        "closed": "closed",
    }
    if holidays:
        node["holidays"] = holidays
    return graph_of({"entry": node, "open": bye("We are open."), "closed": bye("We are closed.")})


def utc(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timestamp()


def local(moment: float, timezone: str) -> str:
    return datetime.fromtimestamp(moment, ZoneInfo(timezone)).strftime("%a %H:%M %Z")


OFFICE = {"mon": ["09:00-12:00", "13:00-17:30"], "tue": ["09:00-17:30"]}
FRIDAY_NIGHT = {"fri": ["22:00-02:00"]}
NINE_TO_FIVE = {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")}

HOURS_CASES: list[Any] = [
    pytest.param("UTC", OFFICE, [], "2024-01-08 10:15", "Mon 10:15 UTC", True, id="inside"),
    pytest.param("UTC", OFFICE, [], "2024-01-08 09:00", "Mon 09:00 UTC", True, id="at start"),
    pytest.param("UTC", OFFICE, [], "2024-01-08 08:59", "Mon 08:59 UTC", False, id="before"),
    pytest.param("UTC", OFFICE, [], "2024-01-08 12:00", "Mon 12:00 UTC", False, id="at end"),
    pytest.param("UTC", OFFICE, [], "2024-01-08 12:30", "Mon 12:30 UTC", False, id="lunch"),
    pytest.param("UTC", OFFICE, [], "2024-01-08 13:00", "Mon 13:00 UTC", True, id="2nd range"),
    pytest.param("UTC", OFFICE, [], "2024-01-08 17:30", "Mon 17:30 UTC", False, id="2nd end"),
    pytest.param("UTC", OFFICE, [], "2024-01-10 10:00", "Wed 10:00 UTC", False, id="no ranges"),
    pytest.param("UTC", FRIDAY_NIGHT, [], "2024-01-05 23:00", "Fri 23:00 UTC", True, id="Fri"),
    pytest.param("UTC", FRIDAY_NIGHT, [], "2024-01-06 01:00", "Sat 01:00 UTC", True, id="Sat"),
    pytest.param("UTC", FRIDAY_NIGHT, [], "2024-01-06 02:00", "Sat 02:00 UTC", False, id="2:00"),
    pytest.param("UTC", FRIDAY_NIGHT, [], "2024-01-05 21:59", "Fri 21:59 UTC", False, id="21:59"),
    pytest.param(
        "UTC", OFFICE, ["2024-01-08"], "2024-01-08 10:15", "Mon 10:15 UTC", False, id="holiday"
    ),
    pytest.param(
        "UTC", OFFICE, ["2024-01-08"], "2024-01-09 10:15", "Tue 10:15 UTC", True, id="day after"
    ),
    # Europe/Amsterdam is UTC+1 in winter (CET) and UTC+2 in summer (CEST)
    pytest.param(AMS, NINE_TO_FIVE, [], "2024-01-08 08:30", "Mon 09:30 CET", True, id="winter"),
    pytest.param(AMS, NINE_TO_FIVE, [], "2024-01-08 07:30", "Mon 08:30 CET", False, id="w early"),
    pytest.param(AMS, NINE_TO_FIVE, [], "2024-01-08 15:30", "Mon 16:30 CET", True, id="w late"),
    pytest.param(AMS, NINE_TO_FIVE, [], "2024-07-01 07:30", "Mon 09:30 CEST", True, id="summer"),
    pytest.param(AMS, NINE_TO_FIVE, [], "2024-07-01 06:30", "Mon 08:30 CEST", False, id="s early"),
    pytest.param(AMS, NINE_TO_FIVE, [], "2024-07-01 15:30", "Mon 17:30 CEST", False, id="s late"),
]


@pytest.mark.parametrize(
    ("timezone", "weekly", "holidays", "when", "clock", "is_open"), HOURS_CASES
)
def test_hours_routes_by_the_clock_given_to_step(
    timezone: str,
    weekly: dict[str, list[str]],
    holidays: list[str],
    when: str,
    clock: str,
    is_open: bool,
) -> None:
    moment = utc(when)
    assert local(moment, timezone) == clock, "the case's local time is wrong"
    graph = hours_graph(timezone, weekly, holidays)
    # The call started long before (a Sunday night): only the step's clock counts.
    begun = begin(graph, now=utc("2024-01-07 23:00"))
    transition = engine.step(graph, begun.state, events.CallAnswered(), moment)
    assert transition.state.node == ("open" if is_open else "closed")
    assert said(transition.actions) == ["We are open." if is_open else "We are closed."]


def test_hours_is_checked_when_the_call_reaches_it() -> None:
    graph = graph_of(
        {
            "entry": {"type": "say", "say": "Welcome.", "next": "when"},
            "when": {
                "type": "hours",
                "timezone": "UTC",
                "weekly": {"mon": ["09:00-17:00"]},
                "open": "open",
                "closed": "closed",
            },
            "open": bye("We are open."),
            "closed": bye("We are closed."),
        }
    )
    answered = trace(graph, now=utc("2024-01-08 16:59"))[-1]  # the welcome plays at 16:59
    assert said(answered.actions) == ["Welcome."]
    transition = engine.step(
        graph, answered.state, events.PromptFinished(), utc("2024-01-08 17:00")
    )
    assert transition.state.node == "closed"


# -- voicemail ---------------------------------------------------------------------------


def voicemail_graph(**fields: Any) -> Graph:
    node: dict[str, Any] = {"type": "voicemail", "next": "thanks"}
    node.update(fields)
    return graph_of({"entry": node, "thanks": bye("Thanks for your message.")})


def test_voicemail_plays_its_prompt_then_records() -> None:
    graph = voicemail_graph(
        say="Leave a message, {{caller}}.",
        max_length_s=60,
        end_key="*",
        beep=False,
        transcribe=True,
    )
    answered = trace(graph)[-1]
    assert answered.actions == (actions.Speak(say(f"Leave a message, {CALLER}.")),)
    assert answered.state.phase == Phase.PROMPTING
    transition = engine.step(graph, answered.state, events.PromptFinished(), NOON)
    assert transition.actions == (actions.Record(60, "*", False, True),)
    assert transition.state.phase == Phase.RECORDING


def test_voicemail_defaults() -> None:
    transition, _ = run(voicemail_graph(say="Speak now."), events.PromptFinished())
    assert transition.actions == (actions.Record(120, "#", True, False),)


def test_voicemail_without_prompt_records_at_once() -> None:
    answered = trace(voicemail_graph())[-1]
    assert answered.actions == (actions.Record(120, "#", True, False),)
    assert answered.state.phase == Phase.RECORDING


def test_a_finished_recording_is_kept_and_the_call_goes_on() -> None:
    transition, _ = run(
        voicemail_graph(say="Speak now."),
        events.PromptFinished(),
        events.RecordingFinished("rec-1", duration_s=12.5),
    )
    assert transition.state.recordings == ("rec-1",)
    assert transition.state.node == "thanks"
    assert said(transition.actions) == ["Thanks for your message."]


@pytest.mark.parametrize(
    "finished",
    [
        events.RecordingFinished(None, ok=False),
        events.RecordingFinished("rec-2", ok=False),
        events.RecordingFinished(None),
    ],
)
def test_a_failed_recording_keeps_no_id_but_the_call_goes_on(
    finished: events.RecordingFinished,
) -> None:
    transition, _ = run(voicemail_graph(), finished)
    assert transition.state.recordings == ()
    assert transition.state.node == "thanks"
    assert said(transition.actions) == ["Thanks for your message."]


def test_a_recording_reported_while_the_prompt_plays_is_ignored() -> None:
    graph = voicemail_graph(say="Speak now.")
    answered = trace(graph)[-1]
    transition = engine.step(graph, answered.state, events.RecordingFinished("rec-x"), NOON)
    assert transition.actions == ()
    assert transition.state == answered.state


# -- http --------------------------------------------------------------------------------


def http_graph(**fields: Any) -> Graph:
    node: dict[str, Any] = {
        "type": "http",
        "url": "https://crm.example.com/customers/{{caller}}",
        "next": "found",
        "on_error": "error",
    }
    node.update(fields)
    return graph_of(
        {
            "entry": node,
            "found": {"type": "say", "say": "Hello {{vars.name}}.", "next": "done"},
            "error": bye("We could not find you."),
            "done": bye("Bye."),
        }
    )


def test_http_asks_for_the_rendered_request() -> None:
    graph = http_graph(
        url="https://crm.example.com/customers/{{caller}}?line={{called}}&pin={{vars.pin}}",
        method="POST",
        headers={"Authorization": "Bearer {{vars.token}}", "X-Call": "{{call_id}}", "X-A": "b"},
        body={
            "caller": "{{caller}}",
            "nested": {"items": ["{{vars.pin}}", 3, True, None, {"deep": "{{call_id}}"}]},
            "count": 5,
            "unset": "<{{vars.nobody}}>",
        },
        timeout_ms=1500,
    )
    answered = trace(graph, variables={"pin": "1234", "token": "t-9"})[-1]
    assert answered.actions == (
        actions.HttpRequest(
            method="POST",
            url=f"https://crm.example.com/customers/{CALLER}?line={CALLED}&pin=1234",
            headers={"Authorization": "Bearer t-9", "X-Call": CALL_ID, "X-A": "b"},
            body={
                "caller": CALLER,
                "nested": {"items": ["1234", 3, True, None, {"deep": CALL_ID}]},
                "count": 5,
                "unset": "<>",
            },
            timeout_ms=1500,
        ),
    )
    assert answered.state.phase == Phase.REQUESTING
    assert answered.state.node == "entry"


def test_http_defaults_to_a_get_without_body_and_two_seconds() -> None:
    answered = trace(http_graph())[-1]
    assert answered.actions == (
        actions.HttpRequest("GET", f"https://crm.example.com/customers/{CALLER}", {}, None, 2000),
    )


ANSWER = {
    "customer": {
        "name": "Ann",
        "code": "007",
        "tier": 42,
        "score": 4.5,
        "vip": True,
        "address": {"zip": "1234AB", "city": "Utrecht"},
        "tags": ["a", "b"],
    },
    "orders": [{"id": "o-1"}, {"id": "o-2"}],
}
SAVE = {
    "name": "$.customer.name",
    "code": "customer.code",
    "tier": "customer.tier",
    "score": "customer.score",
    "vip": "customer.vip",
    "address": "customer.address",
    "tags": "customer.tags",
    "last_order": "orders[1].id",
}


@pytest.mark.parametrize("status", [200, 201, 299])
def test_a_2xx_json_answer_saves_each_path_and_goes_to_next(status: int) -> None:
    transition, _ = run(
        http_graph(save=SAVE),
        events.HttpResponded(status, json.dumps(ANSWER).encode()),
        variables={"pin": "1234"},
    )
    saved = dict(transition.state.vars)
    assert json.loads(saved.pop("address")) == {"zip": "1234AB", "city": "Utrecht"}
    assert json.loads(saved.pop("tags")) == ["a", "b"]
    assert json.loads(saved.pop("vip")) is True
    assert saved == {
        "pin": "1234",
        "name": "Ann",
        "code": "007",
        "tier": "42",
        "score": "4.5",
        "last_order": "o-2",
    }
    assert transition.state.node == "found"
    assert said(transition.actions) == ["Hello Ann."]


def test_a_2xx_answer_with_nothing_to_save_goes_to_next() -> None:
    transition, _ = run(http_graph(), events.HttpResponded(200, b'{"ok": true}'))
    assert transition.state.node == "found"
    assert transition.state.vars == {}


HTTP_ERRORS: list[Any] = [
    pytest.param(events.HttpResponded(None, error="timed out after 2000 ms"), id="timeout"),
    pytest.param(events.HttpResponded(None, error="ConnectError: refused"), id="error"),
    pytest.param(events.HttpResponded(None), id="no answer"),
    pytest.param(events.HttpResponded(404, json.dumps(ANSWER).encode()), id="404"),
    pytest.param(events.HttpResponded(500, json.dumps(ANSWER).encode()), id="500"),
    pytest.param(events.HttpResponded(302, json.dumps(ANSWER).encode()), id="302"),
    pytest.param(events.HttpResponded(199, json.dumps(ANSWER).encode()), id="199"),
    pytest.param(events.HttpResponded(200, b"<html>hi</html>"), id="not JSON"),
    pytest.param(events.HttpResponded(200, b""), id="empty body"),
    pytest.param(events.HttpResponded(200, b"\xff\xfe{"), id="not UTF-8"),
    pytest.param(
        events.HttpResponded(200, b'{"customer": {"name": "Bob"}}'), id="one path missing"
    ),
    pytest.param(
        events.HttpResponded(200, b'{"customer": [{"name": "Bob", "tier": 1}]}'),
        id="list instead of object",
    ),
    pytest.param(events.HttpResponded(200, b'["Bob", 1]'), id="list answer"),
]


@pytest.mark.parametrize("answer", HTTP_ERRORS)
def test_http_errors_go_to_on_error_and_save_nothing(answer: events.HttpResponded) -> None:
    graph = http_graph(save={"name": "customer.name", "tier": "customer.tier"})
    transition, _ = run(graph, answer, variables={"name": "caller's own"})
    assert transition.state.node == "error"
    assert transition.state.vars == {"name": "caller's own"}
    assert said(transition.actions) == ["We could not find you."]
    (failed,) = [n for n in transition.notes if n.event == "http_failed"]
    assert failed.fields["next"] == "error"


def test_an_answer_after_the_call_moved_on_is_ignored() -> None:
    graph = http_graph(save={"name": "customer.name"})
    answered = run(graph, events.HttpResponded(None, error="timed out after 2000 ms"))[0]
    assert answered.state.node == "error"
    late = engine.step(graph, answered.state, events.HttpResponded(200, b'{"customer": {}}'), NOON)
    assert late.actions == ()
    assert late.state == answered.state
    assert [n.event for n in late.notes] == ["event_ignored"]


def test_an_answer_after_the_caller_hung_up_is_ignored() -> None:
    graph = http_graph(save={"name": "customer.name"})
    ended = run(graph, events.CallEnded("completed", "caller"))[0]
    assert ended.state.ended
    late = engine.step(
        graph, ended.state, events.HttpResponded(200, b'{"customer": {"name": "Ann"}}'), NOON
    )
    assert late.actions == ()
    assert late.state == ended.state


def test_an_answer_before_the_request_is_ignored() -> None:
    graph = graph_of(
        {
            "entry": {"type": "say", "say": "One moment.", "next": "lookup"},
            "lookup": {
                "type": "http",
                "url": "https://crm.example.com/x",
                "next": "done",
                "on_error": "done",
            },
            "done": bye("Bye."),
        }
    )
    answered = trace(graph)[-1]
    stray = engine.step(graph, answered.state, events.HttpResponded(200, b"{}"), NOON)
    assert stray.actions == ()
    assert stray.state == answered.state


# -- templates in every text -------------------------------------------------------------


def test_every_text_is_a_template() -> None:
    graph = graph_of(
        {
            "entry": {
                "type": "say",
                "say": "Hi {{vars.name}}, you called {{ called }} from {{caller}} ({{call_id}}).",
                "next": "music",
            },
            "music": {
                "type": "say",
                "play": [
                    "https://cdn.example.com/{{vars.lang}}/welcome.wav",
                    "https://cdn.example.com/{{vars.nobody}}jingle.wav",
                ],
                "next": "menu",
            },
            "menu": {
                "type": "menu",
                "say": "{{vars.name}}, press 1.",
                "locale": "nl-NL",
                "voice": "male",
                "options": {"1": "agent"},
                "invalid": {"say": "Not an option, {{vars.name}}."},
                "on_failure": "agent",
            },
            "agent": {
                "type": "transfer",
                "to": "{{vars.agent}}",
                "from": "{{called}}",
                "on_failure": "bye",
            },
            "bye": bye("Bye {{vars.name}}{{vars.nobody}}{{unknown}}."),
        }
    )
    _, taken = run(
        graph,
        events.PromptFinished(),
        events.PromptFinished(),
        events.DigitsCollected("9"),
        events.PromptFinished(),
        events.DigitsCollected("1"),
        events.AgentUnavailable("leg-2", "busy"),
        variables={"name": "Ann", "lang": "nl", "agent": "sip:desk@pbx.example.com"},
    )
    assert taken == [
        actions.Speak(say(f"Hi Ann, you called {CALLED} from {CALLER} ({CALL_ID}).")),
        actions.Speak(
            actions.Play(
                (
                    "https://cdn.example.com/nl/welcome.wav",
                    "https://cdn.example.com/jingle.wav",
                )
            )
        ),
        actions.Gather(actions.Say("Ann, press 1.", "nl-NL", "male"), 1, 5, None),
        actions.Speak(say("Not an option, Ann.")),
        actions.Gather(actions.Say("Ann, press 1.", "nl-NL", "male"), 1, 5, None),
        actions.Bridge("sip:desk@pbx.example.com", CALLED, 30, False),
        actions.Speak(say("Bye Ann.")),
    ]


def test_unset_variables_render_as_empty_text() -> None:
    graph = graph_of(
        {
            "entry": {"type": "say", "say": "Hello {{vars.name}}!", "next": "agent"},
            "agent": {"type": "transfer", "to": "+3120{{vars.ext}}1234567", "on_failure": "bye"},
            "bye": bye("Bye."),
        }
    )
    transition, taken = run(graph, events.PromptFinished())
    assert said(taken) == ["Hello !"]
    assert transition.actions == (actions.Bridge("+31201234567", None, 30, False),)


# -- outbound calls ----------------------------------------------------------------------


def outbound_graph() -> Graph:
    return graph_of(
        {
            "entry": {
                "type": "branch",
                "cases": [{"var": "vars.amount", "op": "gt", "value": 100, "next": "large"}],
                "default": "small",
            },
            "large": bye("{{vars.name}}, you owe {{vars.amount}} euro. Please call us."),
            "small": bye("{{vars.name}}, a small amount is due."),
        }
    )


def test_an_outbound_call_is_not_answered_by_us_and_starts_when_they_answer() -> None:
    graph = outbound_graph()
    begun = begin(
        graph, direction=Direction.OUTBOUND, variables={"name": "Ann", "amount": "250.75"}
    )
    assert begun.actions == (actions.Dial(),)  # Bird dials; nothing is answered by us
    assert begun.state.phase == Phase.ANSWERING
    assert begun.state.node is None
    assert begun.state.vars == {"name": "Ann", "amount": "250.75"}
    transition = engine.step(graph, begun.state, events.CallAnswered(), NOON)
    assert transition.state.node == "large"
    assert said(transition.actions) == ["Ann, you owe 250.75 euro. Please call us."]


@pytest.mark.parametrize("status", ["no-answer", "busy", "failed"])
def test_an_outbound_call_not_answered_ends_without_any_action(status: LegStatus) -> None:
    graph = outbound_graph()
    begun = begin(graph, direction=Direction.OUTBOUND, variables={"name": "Ann", "amount": "5"})
    transition = engine.step(graph, begun.state, events.CallEnded(status), NOON + 30)
    assert transition.actions == ()
    assert transition.state.ended
    assert transition.state.outcome == f"not_answered_{status}"
    assert transition.state.node is None
    assert transition.state.ended_at == NOON + 30
    # A late answer report changes nothing.
    late = engine.step(graph, transition.state, events.CallAnswered(), NOON + 31)
    assert late.actions == ()
    assert late.state == transition.state


def test_an_inbound_call_ended_before_it_connected_is_not_an_unanswered_outbound_call() -> None:
    graph = outbound_graph()
    begun = begin(graph)
    transition = engine.step(graph, begun.state, events.CallEnded("completed", "caller"), NOON)
    assert transition.actions == ()
    assert transition.state.outcome == "ended_by_caller"


# -- the step guard ----------------------------------------------------------------------


def looping_collect(**retry: Any) -> Graph:
    """A collect whose failure exit is itself: only the caller (or the guard) ends it."""
    return graph_of(
        {
            "entry": {
                "type": "collect",
                "say": "Your PIN?",
                "var": "pin",
                "min_digits": 4,
                "max_digits": 4,
                "max_attempts": 3,
                "next": "thanks",
                "on_failure": "entry",
                **retry,
            },
            "thanks": bye("Thanks."),
        }
    )


def test_the_step_guard_counts_re_prompts_of_collect() -> None:
    graph = looping_collect()
    transition = trace(graph)[-1]
    assert transition.state.steps == 1
    tries = 0
    while not transition.state.ended:
        transition = engine.step(graph, transition.state, events.DigitsCollected(""), NOON)
        tries += 1
        assert tries <= engine.MAX_STEPS, "the step guard never fired"
    # every silent try asked again (200 steps in all); the next one is over the limit
    assert tries == engine.MAX_STEPS
    assert transition.state.outcome == "step_limit"
    assert transition.actions == (actions.Hangup(),)
    assert transition.state.steps == engine.MAX_STEPS + 1


def test_the_step_guard_counts_re_prompts_after_a_retry_prompt() -> None:
    graph = looping_collect(invalid={"say": "Four digits, please."})
    transition = trace(graph)[-1]
    tries = 0
    while not transition.state.ended:
        transition = engine.step(graph, transition.state, events.DigitsCollected("1"), NOON)
        assert said(transition.actions) == ["Four digits, please."]
        transition = engine.step(graph, transition.state, events.PromptFinished(), NOON)
        tries += 1
        assert tries <= engine.MAX_STEPS, "the step guard never fired"
    assert tries == engine.MAX_STEPS
    assert transition.state.outcome == "step_limit"
    assert transition.actions == (actions.Hangup(),)
