"""The validator: every rule has a broken example reported at its JSON path, and good
graphs (the shipped ones, loops through a menu, variables set on one branch) pass."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bench.validator import chain
from service.core.graph import TERMINAL_TYPES, BranchNode, CollectNode, Graph, MenuNode, Node
from service.core.jsonpath import parse as parse_json_path
from service.graphs.loader import GraphError, graph_files, load_file, parse
from service.graphs.validator import check
from tests.paths import ROOT, ivr

SHIPPED = graph_files(ROOT / "ivr_graphs")
BYE = {"type": "hangup", "say": "Goodbye."}
DEAD_END = "no path from here reaches hangup, transfer, queue, voicemail or callback"
NO_LOOP = "(every loop must pass through a menu or collect)"


def graph(start: str = "a", **nodes: Any) -> dict[str, Any]:
    """A graph document answering one number (so that only the nodes can be wrong)."""
    return {"id": "g", "numbers": ["+31201111111"], "start": start, "nodes": nodes}


def say(text: str, next_: str) -> dict[str, Any]:
    return {"type": "say", "say": text, "next": next_}


def problems(document: dict[str, Any]) -> list[str]:
    return [str(p) for p in check(parse(document, "g.json"))]


def checked(built: Graph) -> list[str]:
    return [str(p) for p in check(built)]


def with_node(built: Graph, node: Node) -> Graph:
    """``built`` with one node swapped: for mistakes the schema already refuses."""
    return replace(built, nodes={**built.nodes, node.id: node})


# -- graphs that are fine ----------------------------------------------------


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_graph_passes(path: Path) -> None:
    found = check(parse(json.loads(path.read_text()), str(path)))
    assert [str(p) for p in found if p.severity == "error"] == []
    assert load_file(path).warnings == tuple(found)


def test_a_graph_using_every_node_type_well_has_no_problems() -> None:
    document = graph(
        start="hours",
        hours={
            "type": "hours",
            "timezone": "Europe/Amsterdam",
            "weekly": {"mon": ["09:00-17:30"], "fri": ["22:00-02:00", "00:00-24:00"]},
            "holidays": ["2026-12-25", "2028-02-29"],
            "open": "welcome",
            "closed": "closed",
        },
        closed={"type": "voicemail", "say": "We are closed.", "next": "bye"},
        welcome=say("Hello {{caller}}, you called {{ called }}.", "menu"),
        menu={
            "type": "menu",
            "say": "1 account, 2 agent, 3 call back, 9 repeat.",
            "options": {"1": "account", "2": "queue", "3": "callback", "9": "welcome"},
            "invalid": {"say": "Not an option."},
            "no_input": {"play": ["https://audio.example.com/{{call_id}}.wav"]},
            "on_failure": "bye",
        },
        account={
            "type": "collect",
            "say": "Your account number?",
            "var": "account",
            "min_digits": 4,
            "max_digits": 8,
            "pattern": "[0-9]{4,8}",
            "next": "lookup",
            "on_failure": "menu",
        },
        lookup={
            "type": "http",
            "url": "https://crm.example.com/accounts/{{vars.account}}",
            "method": "POST",
            "headers": {"Authorization": "Bearer {{vars.account}}"},
            "body": {"caller": "{{caller}}", "ids": ["{{vars.account}}", 1, None]},
            "save": {"name": "$.customer.name", "tier": "customer.tier", "agent": "agents[0].to"},
            "next": "route",
            "on_error": "queue",
        },
        route={
            "type": "branch",
            "cases": [
                {"var": "vars.tier", "op": "eq", "value": "gold", "next": "vip"},
                {"var": "vars.name", "op": "matches", "value": "A.*", "next": "vip"},
                {"var": "caller", "op": "exists", "next": "greet"},
            ],
            "default": "greet",
        },
        vip={"type": "set", "vars": {"greeting": "Welcome back, {{vars.name}}."}, "next": "greet"},
        greet=say("{{vars.greeting}} Connecting you.", "agent"),
        agent={
            "type": "transfer",
            "to": "{{vars.agent}}",
            "from": "{{called}}",
            "on_failure": "queue",
        },
        queue={
            "type": "queue",
            "queue": "support",
            "priority": 9,
            "record": True,
            "on_timeout": "callback",
            "on_no_agents": "callback",
            "on_callback": "callback",
        },
        callback={"type": "callback", "queue": "support", "say": "We call back.", "next": "bye"},
        bye=BYE,
    )
    assert problems(document) == []


def test_a_loop_through_a_menu_is_fine() -> None:
    document = graph(
        a=say("Welcome.", "menu"),
        menu={
            "type": "menu",
            "say": "Press 9 to hear this again.",
            "options": {"9": "a", "1": "bye"},
            "on_failure": "menu",
        },
        bye=BYE,
    )
    assert problems(document) == []


def test_a_variable_set_on_one_branch_may_be_read_after_the_join() -> None:
    document = graph(
        a={
            "type": "branch",
            "cases": [{"var": "caller", "op": "matches", "value": r"\+31.*", "next": "dutch"}],
            "default": "join",
        },
        dutch={"type": "set", "vars": {"lang": "nl"}, "next": "join"},
        join=say("Language: {{vars.lang}}.", "bye"),
        bye=BYE,
    )
    assert problems(document) == []


def test_exists_may_test_a_variable_before_it_is_set() -> None:
    document = graph(
        a={
            "type": "branch",
            "cases": [{"var": "vars.seen", "op": "exists", "next": "bye"}],
            "default": "mark",
        },
        mark={"type": "set", "vars": {"seen": "yes"}, "next": "menu"},
        menu={"type": "menu", "say": "Press 1.", "options": {"1": "a"}, "on_failure": "bye"},
        bye=BYE,
    )
    assert problems(document) == []


# -- rule 1: reachability ----------------------------------------------------


def test_an_unreachable_node_is_reported() -> None:
    document = graph(a=BYE, orphan=say("Nobody hears me.", "a"))
    assert problems(document) == [
        "g.json: /nodes/orphan: unreachable: no path from start (a) leads here"
    ]


# -- rule 2: dead ends -------------------------------------------------------


def test_nodes_from_which_no_call_can_end_are_dead_ends() -> None:
    document = graph(
        a={"type": "menu", "say": "Press 1.", "options": {"1": "b"}, "on_failure": "a"},
        b=say("You pressed 1.", "a"),
    )
    assert problems(document) == [
        f"g.json: /nodes/a: {DEAD_END}",
        f"g.json: /nodes/b: {DEAD_END}",
    ]


def test_the_dead_end_message_names_every_terminal_type() -> None:
    assert all(kind in DEAD_END for kind in TERMINAL_TYPES)


def test_a_node_that_can_still_reach_a_terminal_is_no_dead_end() -> None:
    document = graph(
        a={"type": "menu", "say": "Press 1.", "options": {"1": "b", "2": "bye"}, "on_failure": "a"},
        b=say("You pressed 1.", "a"),
        bye=BYE,
    )
    assert problems(document) == []


# -- rule 3: loops -----------------------------------------------------------


def test_a_loop_that_never_waits_for_the_caller_is_reported_where_it_closes() -> None:
    document = graph(
        a=say("Hello.", "b"),
        b={
            "type": "branch",
            "cases": [{"var": "caller", "op": "eq", "value": "+31201234567", "next": "a"}],
            "default": "bye",
        },
        bye=BYE,
    )
    assert problems(document) == [
        "g.json: /nodes/b/cases/0/next: loop that never waits for the caller: a -> b -> a "
        f"{NO_LOOP}"
    ]


def test_a_node_looping_on_itself_is_reported() -> None:
    document = graph(
        a={"type": "http", "url": "https://api.example.com/ping", "next": "bye", "on_error": "a"},
        bye=BYE,
    )
    assert problems(document) == [
        f"g.json: /nodes/a/on_error: loop that never waits for the caller: a -> a {NO_LOOP}"
    ]


def test_a_transfer_retrying_itself_loops_without_the_caller() -> None:
    document = graph(
        a={"type": "transfer", "to": "+31201234567", "on_failure": "sorry"},
        sorry=say("Busy, trying again.", "a"),
    )
    assert problems(document) == [
        f"g.json: /nodes/sorry/next: loop that never waits for the caller: a -> sorry -> a "
        f"{NO_LOOP}"
    ]


def test_a_region_of_loops_is_reported_once_naming_its_other_nodes() -> None:
    document = graph(
        a=say("One.", "b"),
        b={
            "type": "branch",
            "cases": [{"var": "caller", "op": "eq", "value": "+31201234567", "next": "a"}],
            "default": "c",
        },
        c={"type": "set", "vars": {"x": "1"}, "next": "d"},
        d={
            "type": "branch",
            "cases": [{"var": "vars.x", "op": "eq", "value": "1", "next": "a"}],
            "default": "bye",
        },
        bye=BYE,
    )
    assert problems(document) == [
        f"g.json: /nodes/b/cases/0/next: loop that never waits for the caller: a -> b -> a "
        f"{NO_LOOP}; other such loops here also pass through c, d"
    ]


def test_a_waiting_node_without_its_failure_exit_is_reported() -> None:
    built = parse(
        graph(
            a={"type": "menu", "say": "Press 1.", "options": {"1": "bye"}, "on_failure": "bye"},
            bye=BYE,
        ),
        "g.json",
    )
    menu = built.nodes["a"]
    assert isinstance(menu, MenuNode)
    without = replace(menu, exits={"options/1": "bye"}, on_failure="")
    assert checked(with_node(built, without)) == [
        "g.json: /nodes/a/on_failure: a menu needs on_failure: where the call goes after "
        "max_attempts bad or empty tries"
    ]


# -- rule 4: variables -------------------------------------------------------


def test_a_variable_read_before_the_set_that_sets_it_is_an_error() -> None:
    document = graph(
        a=say("Hello {{vars.name}}.", "b"),
        b={"type": "set", "vars": {"name": "Ann"}, "next": "bye"},
        bye=BYE,
    )
    assert problems(document) == [
        "g.json: /nodes/a/say: vars.name is not set on any path from start to here"
    ]


def test_a_collected_variable_is_not_set_on_the_failure_path() -> None:
    document = graph(
        a={
            "type": "collect",
            "say": "Your PIN?",
            "var": "pin",
            "max_digits": 4,
            "next": "ok",
            "on_failure": "failed",
        },
        ok={"type": "hangup", "say": "PIN {{vars.pin}} noted."},
        failed={"type": "hangup", "say": "No PIN {{vars.pin}}."},
    )
    assert problems(document) == [
        "g.json: /nodes/failed/say: vars.pin is not set on any path from start to here"
    ]


def test_saved_http_answers_are_not_set_on_the_error_path() -> None:
    document = graph(
        a={
            "type": "http",
            "url": "https://api.example.com/x",
            "save": {"name": "$.name"},
            "next": "ok",
            "on_error": "failed",
        },
        ok={"type": "hangup", "say": "Hi {{vars.name}}."},
        failed={"type": "hangup", "say": "Sorry {{vars.name}}."},
    )
    assert problems(document) == [
        "g.json: /nodes/failed/say: vars.name is not set on any path from start to here"
    ]


def test_every_kind_of_read_is_checked_at_its_exact_path() -> None:
    document = graph(
        a={
            "type": "menu",
            "play": ["https://audio.example.com/{{vars.p}}.wav"],
            "options": {"1": "lookup"},
            "invalid": {"say": "{{vars.i}}"},
            "no_input": {"say": "{{vars.n}}"},
            "on_failure": "q",
        },
        lookup={
            "type": "http",
            "url": "https://api.example.com/{{vars.u}}",
            "headers": {"Authorization": "Bearer {{vars.token}}", "X/Y~Z": "{{vars.h}}"},
            "body": {"customer": {"id": "{{vars.id}}"}, "list": ["x", "{{vars.l}}"]},
            "next": "check",
            "on_error": "q",
        },
        check={
            "type": "branch",
            "cases": [{"var": "vars.tier", "op": "eq", "value": "gold", "next": "s"}],
            "default": "s",
        },
        s={"type": "set", "vars": {"out": "{{vars.v}}"}, "next": "t"},
        t={"type": "transfer", "to": "+31201234567", "from": "{{vars.f}}", "on_failure": "q"},
        q={"type": "queue", "queue": "support", "on_timeout": "bye", "on_no_agents": "bye"},
        bye={"type": "hangup", "say": "Bye {{vars.bye}} {{vars.out}}."},
    )
    unset = "is not set on any path from start to here"
    assert problems(document) == [
        f"g.json: /nodes/a/invalid/say: vars.i {unset}",
        f"g.json: /nodes/a/no_input/say: vars.n {unset}",
        f"g.json: /nodes/a/play/0: vars.p {unset}",
        f"g.json: /nodes/bye/say: vars.bye {unset}",
        f"g.json: /nodes/check/cases/0/var: vars.tier {unset}",
        f"g.json: /nodes/lookup/body/customer/id: vars.id {unset}",
        f"g.json: /nodes/lookup/body/list/1: vars.l {unset}",
        f"g.json: /nodes/lookup/headers/Authorization: vars.token {unset}",
        f"g.json: /nodes/lookup/headers/X~1Y~0Z: vars.h {unset}",
        f"g.json: /nodes/lookup/url: vars.u {unset}",
        f"g.json: /nodes/s/vars/out: vars.v {unset}",
        f"g.json: /nodes/t/from: vars.f {unset}",
    ]


def test_set_values_are_rendered_with_the_variables_of_entry() -> None:
    document = graph(
        a={"type": "set", "vars": {"first": "Ann", "full": "{{vars.first}} Lee"}, "next": "b"},
        b={"type": "hangup", "say": "Bye {{vars.full}}."},
    )
    assert problems(document) == [
        "g.json: /nodes/a/vars/full: vars.first is not set on any path from start to here"
    ]


def test_unknown_template_names_are_errors() -> None:
    document = graph(a={"type": "hangup", "say": "Hi {{name}}, {{vars.a.b}}, {{caller}}."})
    use = "use caller, called, call_id, amd or vars.NAME"
    assert problems(document) == [
        f"g.json: /nodes/a/say: unknown template name {{{{name}}}}: {use}",
        f"g.json: /nodes/a/say: unknown template name {{{{vars.a.b}}}}: {use}",
    ]


def test_exists_on_a_variable_no_node_sets_is_a_warning() -> None:
    document = graph(
        a={
            "type": "branch",
            "cases": [{"var": "vars.vip", "op": "exists", "next": "bye"}],
            "default": "bye",
        },
        bye=BYE,
    )
    assert problems(document) == [
        "g.json: /nodes/a/cases/0/var: warning: vars.vip is set on no path from start: "
        "this case is never true"
    ]


def test_variables_set_but_never_read_are_warnings_where_they_are_set() -> None:
    document = graph(
        a={
            "type": "collect",
            "say": "PIN?",
            "var": "pin",
            "max_digits": 4,
            "next": "b",
            "on_failure": "bye",
        },
        b={"type": "set", "vars": {"lang": "nl"}, "next": "c"},
        c={
            "type": "http",
            "url": "https://api.example.com/x",
            "save": {"name": "$.name"},
            "next": "bye",
            "on_error": "bye",
        },
        bye=BYE,
    )
    assert problems(document) == [
        "g.json: /nodes/a/var: warning: vars.pin is set here but never read",
        "g.json: /nodes/b/vars/lang: warning: vars.lang is set here but never read",
        "g.json: /nodes/c/save/name: warning: vars.name is set here but never read",
    ]


def test_a_transfer_to_a_variable_not_always_set_may_render_empty() -> None:
    document = graph(
        a={
            "type": "branch",
            "cases": [{"var": "caller", "op": "eq", "value": "+31201234567", "next": "pick"}],
            "default": "agent",
        },
        pick={"type": "set", "vars": {"agent": "+31207654321"}, "next": "agent"},
        agent={"type": "transfer", "to": "{{vars.agent}}", "on_failure": "bye"},
        bye=BYE,
    )
    assert problems(document) == [
        "g.json: /nodes/agent/to: warning: may render empty: vars.agent is not set on every "
        "path from start to here"
    ]


# -- rule 5: settings that cannot work ---------------------------------------


def collect_graph(**fields: Any) -> dict[str, Any]:
    pin = {
        "type": "collect",
        "say": "PIN?",
        "var": "pin",
        "max_digits": 4,
        "next": "ok",
        "on_failure": "bye",
    }
    return graph(
        start="pin", pin={**pin, **fields}, ok={"type": "hangup", "say": "{{vars.pin}}"}, bye=BYE
    )


def test_collect_min_digits_above_max_digits() -> None:
    assert problems(collect_graph(min_digits=6)) == [
        "g.json: /nodes/pin/min_digits: min_digits 6 is more than max_digits 4"
    ]


def test_collect_pattern_that_is_not_a_regex() -> None:
    built = parse(collect_graph(pattern="[0-9]+"), "g.json")
    pin = built.nodes["pin"]
    assert isinstance(pin, CollectNode)
    broken = with_node(built, replace(pin, pattern="[0-9"))
    assert checked(broken) == [
        "g.json: /nodes/pin/pattern: not a valid regular expression: "
        "unterminated character set at position 0"
    ]


def test_collect_end_key_that_is_a_digit_is_a_warning() -> None:
    assert problems(collect_graph(end_key="5")) == [
        "g.json: /nodes/pin/end_key: warning: end_key '5' is a digit: the caller cannot enter 5 "
        "as part of vars.pin"
    ]


def test_branch_matches_that_is_not_a_regex() -> None:
    document = graph(
        a={
            "type": "branch",
            "cases": [{"var": "caller", "op": "matches", "value": r"\+31.*", "next": "bye"}],
            "default": "bye",
        },
        bye=BYE,
    )
    built = parse(document, "g.json")
    branch = built.nodes["a"]
    assert isinstance(branch, BranchNode)
    case = replace(branch.cases[0], value=r"(\+31")
    assert checked(with_node(built, replace(branch, cases=(case,)))) == [
        "g.json: /nodes/a/cases/0/value: not a valid regular expression: "
        "missing ), unterminated subpattern at position 0"
    ]


def hours_graph(**fields: Any) -> dict[str, Any]:
    hours = {
        "type": "hours",
        "timezone": "Europe/Amsterdam",
        "weekly": {"mon": ["09:00-17:00"]},
        "open": "bye",
        "closed": "bye",
    }
    return graph(start="open", open={**hours, **fields}, bye=BYE)


@pytest.mark.parametrize("zone", ["Mars/Base", "America", "../etc", "europe/amsterdam"])
def test_hours_time_zone_that_is_not_iana(zone: str) -> None:
    assert problems(hours_graph(timezone=zone)) == [
        f"g.json: /nodes/open/timezone: {zone!r} is not an IANA time zone (like Europe/Amsterdam)"
    ]


def test_hours_ranges_that_are_empty_or_past_the_day() -> None:
    weekly = {"mon": ["09:00-17:00", "18:00-18:00"], "sat": ["22:00-02:00", "20:00-24:30"]}
    assert problems(hours_graph(weekly=weekly)) == [
        "g.json: /nodes/open/weekly/mon/1: empty range: 18:00-18:00 starts and ends at the same "
        "time (a whole day is 00:00-24:00)",
        "g.json: /nodes/open/weekly/sat/1: 24:30 is not a time of day: 24:00 ends a day",
    ]


def test_hours_holidays_that_are_not_real_dates() -> None:
    holidays = ["2026-12-25", "2026-02-30", "2027-13-01"]
    assert problems(hours_graph(holidays=holidays)) == [
        "g.json: /nodes/open/holidays/1: '2026-02-30' is not a real date",
        "g.json: /nodes/open/holidays/2: '2027-13-01' is not a real date",
    ]


def test_hours_without_weekly_ranges_is_a_warning() -> None:
    assert problems(hours_graph(weekly={"mon": []})) == [
        "g.json: /nodes/open/weekly: warning: no weekly opening hours: the line is always closed"
    ]


def test_http_save_paths_must_be_of_the_supported_syntax() -> None:
    document = graph(
        lookup={
            "type": "http",
            "url": "https://api.example.com/x",
            "save": {"name": "$..name", "ok": "$.customer.name"},
            "next": "bye",
            "on_error": "bye",
        },
        bye={"type": "hangup", "say": "{{vars.name}} {{vars.ok}}"},
        start="lookup",
    )
    assert problems(document) == [
        "g.json: /nodes/lookup/save/name: unsupported JSON path '$..name': recursive descent (..) "
        "is not supported (write like $.customer.items[0].id)"
    ]


def test_a_graph_answering_no_number_is_a_warning() -> None:
    document = {**graph(a=BYE), "numbers": []}
    assert problems(document) == [
        "g.json: /numbers: warning: answers no number: only reachable as IVR_DEFAULT_GRAPH or "
        "for outbound calls"
    ]
    del document["numbers"]
    assert [p.path for p in check(parse(document, "g.json"))] == ["/numbers"]


# -- parse_json_path ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("$", ()),
        ("status", ("status",)),
        ("$.customer.name", ("customer", "name")),
        ("customer.items[0].id", ("customer", "items", 0, "id")),
        ("$[2]", (2,)),
        ("$.rows[1][10]", ("rows", 1, 10)),
        ("order-id.line_2", ("order-id", "line_2")),
    ],
)
def test_json_paths_of_the_supported_syntax(path: str, steps: tuple[str | int, ...]) -> None:
    assert parse_json_path(path) == steps


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("", "empty path"),
        ("$..name", "recursive descent (..) is not supported"),
        ("a.*", "wildcards (*) are not supported"),
        ("a[*]", "wildcards (*) are not supported"),
        ("a[?(@.x)]", "filters are not supported"),
        ("a['b']", "quoted keys are not supported: write .key"),
        ("a[-1]", "expected [index] with a whole number at character 2"),
        ("a[0:2]", "expected [index] with a whole number at character 2"),
        ("[0]", "must start with $ or a key, not '['"),
        ("a.", "ends with '.'"),
        ("$a", "unexpected 'a' at character 2"),
        ("a b", "unexpected ' ' at character 2"),
        ("a.$b", "expected a key (letters, digits, _ or -) at character 3"),
    ],
)
def test_json_paths_outside_the_syntax_say_why(path: str, reason: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(reason) + "$"):
        parse_json_path(path)


# -- the whole picture: sorted, all at once, through load_file and the CLI ----


def test_all_problems_come_at_once_sorted_by_path_then_message() -> None:
    document = graph(
        a=say("Hi {{vars.x}} {{nope}}.", "b"),
        b={"type": "set", "vars": {"x": "1"}, "next": "a"},
        z=BYE,
    )
    found = check(parse(document, "g.json"))
    assert [(p.path, p.severity) for p in found] == [
        ("/nodes/a", "error"),  # dead end
        ("/nodes/a/say", "error"),  # unknown name {{nope}} (vars.x may be set: the loop)
        ("/nodes/b", "error"),  # dead end
        ("/nodes/b/next", "error"),  # the loop
        ("/nodes/z", "error"),  # unreachable
    ]
    assert found == sorted(found, key=lambda p: (p.path, p.message))


def test_load_file_refuses_errors_and_keeps_warnings(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**graph(a=BYE, b=BYE), "numbers": []}))
    with pytest.raises(GraphError) as caught:
        load_file(broken)
    assert [str(p) for p in caught.value.problems] == [
        f"{broken}: /nodes/b: unreachable: no path from start (a) leads here",
        f"{broken}: /numbers: warning: answers no number: only reachable as IVR_DEFAULT_GRAPH or "
        "for outbound calls",
    ]
    fine = tmp_path / "fine.json"
    fine.write_text(json.dumps({**graph(a=BYE), "numbers": []}))
    assert [p.path for p in load_file(fine).warnings] == ["/numbers"]


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return ivr("validate", str(path))


def test_ivr_validate_rejects_a_broken_graph_with_file_and_json_paths(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    document = graph(
        a={
            "type": "collect",
            "say": "PIN?",
            "var": "pin",
            "max_digits": 4,
            "next": "ok",
            "on_failure": "failed",
        },
        ok={"type": "set", "vars": {"unused": "{{vars.pin}}"}, "next": "bye"},
        failed={"type": "hangup", "say": "No PIN {{vars.pin}}."},
        bye=BYE,
    )
    broken.write_text(json.dumps(document))
    result = validate(broken)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{broken}: /nodes/failed/say: vars.pin is not set on any path from start to here",
        f"{broken}: /nodes/ok/vars/unused: warning: vars.unused is set here but never read",
        "1 error, 1 warning in 1 file",
    ]


def test_ivr_validate_accepts_a_graph_with_only_warnings(tmp_path: Path) -> None:
    fine = tmp_path / "fine.json"
    fine.write_text(json.dumps({**graph(a=BYE), "numbers": []}))
    result = validate(fine)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{fine}: ok (id g, 1 nodes")


def test_a_long_loop_that_never_waits_is_one_problem_at_the_exit_that_closes_it() -> None:
    loops = [p for p in check(parse(chain(2_000, looping=True), "chain.json"))
             if "loop that never waits" in p.message]  # fmt: skip
    assert [p.path for p in loops] == ["/nodes/n2000/next"]
    assert loops[0].message.startswith("loop that never waits for the caller: n0 -> n1 -> n2")
