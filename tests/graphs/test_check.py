"""One truthful check (service.graphs.check): ``ivr validate`` and the service's loader
are one function, every problem of every file comes in one run, the rules run on graphs
that fail the schema without reporting what the broken parts cause, and schema errors
are in plain words."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from service.core.graph import RUNNABLE_TYPES, Problem
from service.graphs import check, schema
from service.graphs.check import check_paths, read_graph, rule_problems
from service.graphs.loader import GraphError, load_directory, load_file, parse
from tests.paths import SHIPPED_GRAPHS
from tests.test_fuzz import node_documents

BYE = {"type": "hangup", "say": "Goodbye."}
NUMBER = "+31201111111"


def write(directory: Path, name: str, document: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(json.dumps(document))
    return path


def graph(graph_id: str = "g", number: str = NUMBER, **nodes: Any) -> dict[str, Any]:
    return {"id": graph_id, "numbers": [number], "start": "a", "nodes": nodes or {"a": BYE}}


def said(document: Any, file: str = "g.json") -> list[str]:
    """Every problem of a document as ``ivr validate`` prints them (no queues)."""
    reading = read_graph(document, file)
    return [str(p) for p in [*reading.structure, *rule_problems(reading)]]


def refused(directory: Path, default: str | None = None) -> list[Problem]:
    with pytest.raises(GraphError) as caught:
        load_directory(directory, default)
    return caught.value.problems


# -- validate says what the service does --------------------------------------------------


def test_validate_catches_duplicate_ids_and_numbers_the_service_refuses(tmp_path: Path) -> None:
    one = write(tmp_path, "one.json", graph())
    two = write(tmp_path, "two.json", graph())  # the same id (and number)
    three = write(tmp_path, "three.json", graph("three"))  # another id, the same number
    report = check_paths([tmp_path])
    assert [str(p) for p in report.errors] == [
        f"{three}: /numbers/0: {NUMBER} is also answered by {one}",
        f"{two}: /id: id 'g' is also used by {one}",
    ]
    assert report.problems == tuple(refused(tmp_path))
    # Files of one directory named one by one are checked against each other too.
    assert set(check_paths([one, two, three]).problems) == set(report.problems)


def test_graphs_of_different_directories_may_share_ids_and_numbers(tmp_path: Path) -> None:
    one = write(tmp_path / "a", "g.json", graph())
    two = write(tmp_path / "b", "g.json", graph())
    assert check_paths([one, two]).errors == []


def test_validate_refuses_node_types_the_service_cannot_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(check, "RUNNABLE_TYPES", RUNNABLE_TYPES - {"say"})
    write(tmp_path, "g.json", graph(a={"type": "say", "say": "Hi", "next": "b"}, b=BYE))
    report = check_paths([tmp_path])
    assert [p.path for p in report.errors] == ["/nodes/a/type"]
    assert report.problems == tuple(refused(tmp_path))
    assert check_paths([tmp_path], runnable=False).ok


def test_only_the_service_checks_the_default_graph(tmp_path: Path) -> None:
    write(tmp_path, "g.json", graph())
    assert check_paths([tmp_path]).ok
    assert [str(p) for p in refused(tmp_path, "nope")] == [
        f"{tmp_path}: /: IVR_DEFAULT_GRAPH names 'nope', which is not loaded"
    ]
    assert load_directory(tmp_path, "g").default == "g"


def test_a_graph_with_errors_still_counts_for_the_default_and_the_duplicates(
    tmp_path: Path,
) -> None:
    broken = write(tmp_path, "a.json", graph(a={"type": "say", "say": 5, "next": "b"}, b=BYE))
    copy = write(tmp_path, "b.json", graph())
    problems = refused(tmp_path, "g")
    assert [(p.file, p.path) for p in problems] == [
        (str(broken), "/nodes/a/say"),
        (str(copy), "/id"),  # the broken file's id is read: the copy is a duplicate
    ]


def test_the_loader_and_validate_give_the_same_problems(tmp_path: Path) -> None:
    shutil.copytree(SHIPPED_GRAPHS, tmp_path, dirs_exist_ok=True)
    assert check_paths([tmp_path]).problems == ()
    support = json.loads((tmp_path / "support-line.json").read_text())
    support["nodes"]["welcome"]["next"] = "nowhere"
    support["nodes"]["tech"]["priority"] = "high"
    write(tmp_path, "support-line.json", support)
    queues = json.loads((tmp_path / "queues.json").read_text())
    del queues["queues"]["billing"]
    write(tmp_path, "queues.json", queues)
    write(tmp_path, "copy.json", {**support, "id": "appointment-reminder"})
    report = check_paths([tmp_path])
    assert len(report.errors) > 4
    assert tuple(refused(tmp_path)) == report.problems
    assert {Path(p.file).name for p in report.errors} == {"support-line.json", "copy.json"}


def test_a_queues_file_and_the_graphs_naming_its_queues_in_one_run(tmp_path: Path) -> None:
    queue_node = {"type": "queue", "on_timeout": "bye", "on_no_agents": "bye"}
    using = write(
        tmp_path,
        "g.json",
        graph(
            a={
                "type": "menu",
                "say": "1 or 2",
                "options": {"1": "x", "2": "y"},
                "on_failure": "bye",
            },
            x={**queue_node, "queue": "broken"},  # its settings fail the schema: not checked
            y={**queue_node, "queue": "missing"},
            bye=BYE,
        ),
    )
    queues = write(tmp_path, "queues.json", {"queues": {"broken": {"ring_timeout_s": 1}}})
    assert [str(p) for p in check_paths([tmp_path]).problems] == [
        f"{queues}: /queues/broken/ring_timeout_s: 1 is less than the minimum of 3",
        f"{using}: /nodes/y/queue: queue 'missing' is not in queues.json (its queues: broken)",
    ]


# -- every problem of a file in one run ----------------------------------------------------


def test_a_schema_error_an_unknown_target_and_an_unreachable_node_in_one_run(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "g.json",
        graph(
            a={"type": "say", "say": "Hi", "timeout_s": 5, "next": "menu"},  # no such field
            menu={"type": "menu", "say": "Pick", "options": {"1": "nowhere"}, "on_failure": "bye"},
            orphan={"type": "hangup"},
            bye=BYE,
        ),
    )
    expected = [
        f"{path}: /nodes/a: unknown field 'timeout_s'",
        f"{path}: /nodes/menu/options/1: exit names 'nowhere', which is not a node",
        f"{path}: /nodes/orphan: unreachable: no path from start (a) leads here",
    ]
    assert [str(p) for p in check_paths([path]).problems] == expected
    with pytest.raises(GraphError) as caught:
        load_file(path)
    assert [str(p) for p in caught.value.problems] == expected


def test_parse_lists_the_schema_start_and_exits_at_once() -> None:
    with pytest.raises(GraphError) as caught:
        parse({**graph(a={"type": "say", "say": 5, "next": "zz"}), "start": "b"}, "g.json")
    assert [str(p) for p in caught.value.problems] == [
        "g.json: /nodes/a/say: 5 is not a string",
        "g.json: /start: start names 'b', which is not a node",
        "g.json: /nodes/a/next: exit names 'zz', which is not a node",
    ]


def test_other_nodes_problems_show_beside_a_node_that_fails_the_schema() -> None:
    document = graph(
        a={"type": "say", "say": 5, "next": "pin"},  # fails the schema
        pin={"type": "collect", "say": "PIN?", "var": "pin", "min_digits": 6, "max_digits": 4,
             "next": "hi", "on_failure": "bye"},  # min above max
        hi={"type": "say", "say": "Hello {{nope}} {{vars.pin}} {{vars.nobody}}", "next": "bye"},
        bye=BYE,
    )  # fmt: skip
    assert said(document) == [
        "g.json: /nodes/a/say: 5 is not a string",
        "g.json: /nodes/hi/say: unknown template name {{nope}}: use caller, called, call_id, amd "
        "or vars.NAME",
        "g.json: /nodes/hi/say: vars.nobody is not set on any path from start to here",
        "g.json: /nodes/pin/min_digits: min_digits 6 is more than max_digits 4",
    ]


# -- no false reports caused by a broken node ----------------------------------------------


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        # An exit that cannot be read may lead anywhere: nothing after it is unreachable,
        # nothing before it a dead end.
        ({"type": "say", "say": "Hi", "next": 5}, "/nodes/a/next: 5 is not a string"),
        ({"type": "say", "say": "Hi"}, "/nodes/a: needs 'next'"),
        # A node of no known type may set any variable and take the exits it names.
        (
            {"type": "colect", "say": "PIN?", "var": "pin", "max_digits": 4, "next": "b",
             "on_failure": "c"},
            "/nodes/a/type: 'colect' is not one of say, menu, collect, branch, set, hours, "
            "transfer, queue, voicemail, callback, http, pause or hangup",
        ),
        (5, "/nodes/a: 5 is not an object"),
        # A var that cannot be read: the node may set any variable.
        (
            {"type": "collect", "say": "PIN?", "var": 5, "max_digits": 4, "next": "b",
             "on_failure": "c"},
            "/nodes/a/var: 5 is not a string",
        ),
    ],
)  # fmt: skip
def test_a_broken_node_causes_no_other_report(broken: Any, problem: str) -> None:
    document = graph(
        a=broken, b={"type": "say", "say": "You typed {{vars.pin}}", "next": "c"}, c=BYE
    )
    assert said(document) == [f"g.json: {problem}"]


def test_what_a_field_that_fails_the_schema_reads_still_counts_as_read() -> None:
    document = graph(
        a={"type": "set", "vars": {"name": "Ann"}, "next": "b"},
        b={"type": "collect", "say": "PIN?", "var": "pin", "max_digits": 4, "next": "c",
           "on_failure": "c", "invalid": {"say": "Not you, {{vars.name}}?", "beep": True}},
        c={"type": "hangup", "say": "Bye {{vars.pin}}"},
    )  # fmt: skip
    assert said(document) == ["g.json: /nodes/b/invalid: unknown field 'beep'"]


def test_an_unknown_start_makes_no_node_unreachable_but_loops_are_still_loops() -> None:
    document = {
        **graph(a=BYE, b={"type": "say", "say": "Again", "next": "b"}),
        "start": "zz",
    }
    assert said(document) == [
        "g.json: /start: start names 'zz', which is not a node",
        "g.json: /nodes/b/next: loop that never waits for the caller: b -> b (every loop must "
        "pass through a menu or collect)",
    ]


def test_a_queue_node_that_fails_the_schema_is_checked_by_what_can_be_read(
    tmp_path: Path,
) -> None:
    node = {"type": "queue", "queue": "support", "on_timeout": "bye", "on_no_agents": "bye"}
    write(tmp_path, "queues.json", {"queues": {"support": {"callback_after_s": 60}}})
    write(tmp_path, "g.json", graph(a={**node, "priority": 99}, bye=BYE))
    # Its priority fails the schema; it also lacks the on_callback its queue needs.
    assert [p.path for p in check_paths([tmp_path]).problems] == [
        "/nodes/a/priority",
        "/nodes/a",
    ]
    # An on_callback that cannot be read is not reported missing.
    write(tmp_path, "g.json", graph(a={**node, "on_callback": 5}, bye=BYE))
    assert [p.path for p in check_paths([tmp_path]).problems] == ["/nodes/a/on_callback"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(node_documents())
def test_the_rules_run_on_any_document_without_failing(document: Any) -> None:
    reading = read_graph(document, "fuzz.json")
    for problem in [*reading.structure, *rule_problems(reading)]:
        assert str(problem).startswith("fuzz.json: /")


# -- schema errors in plain words -----------------------------------------------------------


def _keyword_values(document: Any, keyword: str) -> set[str]:
    found: set[str] = set()
    if isinstance(document, dict):
        for key, value in document.items():
            if key == keyword and isinstance(value, str):
                found.add(value)
            found |= _keyword_values(value, keyword)
    elif isinstance(document, list):
        for item in document:
            found |= _keyword_values(item, keyword)
    return found


def test_every_pattern_and_format_of_the_schemas_has_plain_words() -> None:
    for document in (schema.schema(), schema.queues_schema()):
        assert _keyword_values(document, "pattern") <= set(schema.PATTERN_WORDS)
        assert _keyword_values(document, "format") <= set(schema.FORMAT_WORDS)


def hours(**fields: Any) -> dict[str, Any]:
    node = {"type": "hours", "timezone": "UTC", "weekly": {}, "open": "a", "closed": "a"}
    return graph(a={**node, **fields})


def collect(**fields: Any) -> dict[str, Any]:
    node = {"type": "collect", "var": "x", "max_digits": 4, "next": "a", "on_failure": "a"}
    return graph(a={**node, **fields})


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({**graph(), "numbers": ["0612345"]},
         "/numbers/0: '0612345' is not an E.164 number (+ and 7-15 digits, the first not 0)"),
        ({**graph(), "id": "Front Desk"}, "/id: 'Front Desk' is not a graph id (lowercase "
         "letters, digits and '-', starting with a letter or digit)"),
        ({**graph(), "start": "A"}, "/start: 'A' is not a node id (lowercase letters, digits, "
         "'_' and '-', starting with a letter or digit)"),
        ({**graph(), "params": ["1st"]}, "/params/0: '1st' is not a variable name (letters, "
         "digits and '_', not starting with a digit)"),
        (graph(a={"type": "transfer", "to": "0201234567", "on_failure": "a"}),
         "/nodes/a/to: '0201234567' is not an E.164 number (+ and 7-15 digits, the first not "
         "0), a sip: or sips: URI (sip:user@host) or a template ({{vars.NAME}})"),
        (graph(a={"type": "hangup", "play": ["http://a.example/x.wav"]}),
         "/nodes/a/play/0: 'http://a.example/x.wav' is not an https:// URL"),
        (graph(a={"type": "menu", "say": "x", "options": {"10": "a"}, "on_failure": "a"}),
         "/nodes/a/options: '10' is not a single key (0-9, * or #)"),
        (graph(a={"type": "queue", "queue": "Sales Team", "on_timeout": "a",
                  "on_no_agents": "a"}),
         "/nodes/a/queue: 'Sales Team' is not a queue name (1-63 lowercase letters, digits, "
         "'_' and '-', starting with a letter or digit)"),
        (graph(a={"type": "branch", "cases": [{"var": "account", "op": "exists", "next": "a"}],
                  "default": "a"}),
         "/nodes/a/cases/0/var: 'account' is not caller, called, call_id, amd or vars.NAME"),
        (hours(weekly={"mon": ["9:00-17:00"]}), "/nodes/a/weekly/mon/0: '9:00-17:00' is not a "
         "time range HH:MM-HH:MM (like 09:00-17:30; 24:00 only as its end)"),
        (hours(holidays=["25-12-2026"]), "/nodes/a/holidays/0: '25-12-2026' is not a date "
         "YYYY-MM-DD"),
        (graph(a={"type": "http", "url": "ftp://x", "next": "a", "on_error": "a"}),
         "/nodes/a/url: 'ftp://x' is not an http:// or https:// URL, or a template starting "
         "with {{"),
        (collect(pattern="[0-9"), "/nodes/a/pattern: '[0-9' is not a regular expression: "
         "unterminated character set at position 0"),
        (collect(end_key="x"), "/nodes/a/end_key: 'x' is not one of #, *, 0, 1, 2, 3, 4, 5, 6, "
         "7, 8 or 9"),
        (collect(max_digits="4"), "/nodes/a/max_digits: '4' is not an integer"),
        (collect(var="x", nxt="a"), "/nodes/a: unknown field 'nxt' (did you mean 'next'?)"),
        ({**graph(), "numbers": [NUMBER, NUMBER]}, f"/numbers: lists '{NUMBER}' more than once"),
        ({**graph(), "locale": "english"}, "/locale: 'english' is not a locale of Bird's "
         "text-to-speech (like en-US or nl-NL; ivr_graphs/schema.json lists them)"),
        (graph(a={"type": "say", "next": "a"}), "/nodes/a: needs 'say' or 'play'"),
        (graph(a={"type": "branch", "cases": [{"var": "caller", "op": "eq", "next": "a"}],
                  "default": "a"}),
         "/nodes/a/cases/0: needs 'value'"),
        (graph(a={"type": "branch", "cases": [{"var": "caller", "op": "exists", "value": 1,
                                               "next": "a"}], "default": "a"}),
         "/nodes/a/cases/0: 'value' is not allowed with op 'exists'"),
        (graph(a={"type": "set", "vars": {}, "next": "a"}), "/nodes/a/vars: must not be empty"),
    ],
)  # fmt: skip
def test_schema_errors_are_in_plain_words(document: Any, expected: str) -> None:
    assert f"g.json: {expected}" in [str(p) for p in schema.problems("g.json", document)]


RAW = re.compile(r"does not match|is not of type|should not be valid|Additional properties|"
                 r"is a required property|is not one of \[|should be non-empty|\^\[")  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(node_documents())
def test_no_schema_error_quotes_a_regular_expression_or_jsonschema(document: Any) -> None:
    for problem in schema.problems("g.json", document):
        assert not RAW.search(problem.message), problem
