"""queues.json: the shipped file loads, every mistake is reported with its file and JSON
path, defaults are the spec's, and graphs are checked against the queues they name."""

from __future__ import annotations

import json
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from service.core.graph import Prompt, QueueNode
from service.core.queues import (
    DEFAULT_CALLBACK_OFFER,
    DEFAULT_HOLD,
    STRATEGIES,
    Queue,
    queues_of,
)
from service.graphs.loader import GraphError, graph_files, load_directory, parse
from service.graphs.queues import (
    QUEUES_FILE,
    load_queues,
    parse_queues,
    problems,
    queues_document,
    read_queues,
)
from service.graphs.schema import queues_schema
from service.graphs.validator import check_queues
from tests.paths import SHIPPED_GRAPHS, ivr

SHIPPED = SHIPPED_GRAPHS / QUEUES_FILE
FILE = "q.json"


def errors(document: Any) -> list[str]:
    with pytest.raises(GraphError) as caught:
        parse_queues(document, FILE)
    return [str(p) for p in caught.value.problems]


def warnings(**settings: Any) -> list[str]:
    document = {"queues": {"q": settings}}
    return [str(p) for p in problems(parse_queues(document, FILE), FILE, document)]


def queues(**settings: dict[str, Any]) -> dict[str, Queue]:
    return parse_queues({"queues": settings}, FILE)


# -- the shipped file and its schema -------------------------------------------------------


def test_the_shipped_queues_load_without_warnings() -> None:
    loaded, found = read_queues(SHIPPED)
    assert found == []
    assert sorted(loaded) == ["billing", "support"]
    assert loaded["support"].callback_after_s == 120
    assert loaded["billing"].tier_wait_s == 30
    assert not loaded["billing"].offers_callback
    assert json.loads(SHIPPED.read_text())["$schema"] == "./queues.schema.json"


def test_the_packaged_queues_schema_is_the_one_the_file_references() -> None:
    assert queues_schema() == json.loads((SHIPPED_GRAPHS / "queues.schema.json").read_text())


def _editor_validator() -> Draft202012Validator:
    document = json.loads((SHIPPED_GRAPHS / "queues.schema.json").read_text())
    Draft202012Validator.check_schema(document)
    return Draft202012Validator(document, format_checker=FormatChecker())


def test_the_schema_file_accepts_the_shipped_queues_and_rejects_a_broken_one() -> None:
    assert list(_editor_validator().iter_errors(json.loads(SHIPPED.read_text()))) == []
    broken = {"queues": {"q": {"strategy": "ring-all", "hold": {}}}}
    assert len(list(_editor_validator().iter_errors(broken))) == 2


def test_the_schema_has_exactly_the_fields_of_a_queue_with_their_defaults() -> None:
    queue = queues_schema()["$defs"]["queue"]
    model = {f.name: f.default for f in fields(Queue) if f.name != "name"}
    assert set(queue["properties"]) == set(model)
    assert queue["additionalProperties"] is False
    for name, spec in queue["properties"].items():
        assert spec.get("description"), f"{name} has no description for editors"
        if "default" in spec:
            assert spec["default"] == model[name], name
        else:  # prompts and the optional texts: their default is not a JSON value
            assert name in ("hold", "callback_offer", "locale", "voice", "description"), name
    assert queue["properties"]["strategy"]["enum"] == list(STRATEGIES)


def test_graph_files_are_not_the_queues_file_or_its_schema() -> None:
    names = [p.name for p in graph_files(SHIPPED_GRAPHS)]
    assert "queues.json" not in names
    assert "queues.schema.json" not in names
    assert "schema.json" not in names


# -- defaults and parsing ----------------------------------------------------------------


def test_a_queue_that_says_nothing_has_the_spec_defaults() -> None:
    queue = queues(q={})["q"]
    assert queue == Queue(name="q")
    assert (queue.strategy, queue.ring_timeout_s, queue.wrap_up_s, queue.max_no_answer) == (
        "longest-idle", 20, 10, 3,
    )  # fmt: skip
    assert (queue.no_answer_delay_s, queue.busy_delay_s, queue.tier_wait_s) == (30, 30, 0)
    assert (queue.hold, queue.hold_segment_s) == (DEFAULT_HOLD, 20)
    assert (queue.announce_position, queue.announce_every_s, queue.max_wait_s) == (True, 60, 600)
    assert (queue.callback_after_s, queue.callback_offer) == (None, DEFAULT_CALLBACK_OFFER)
    assert (queue.no_agents_grace_s, queue.callback_retry_s, queue.callback_attempts) == (
        60, 300, 3,
    )  # fmt: skip
    assert queue.locale is None
    assert queue.voice is None
    assert queue.description == ""
    assert not any(f.default is MISSING and f.name != "name" for f in fields(Queue))


def test_prompts_become_prompts_and_settings_are_kept() -> None:
    queue = queues(
        q={
            "strategy": "top-down",
            "hold": {"play": ["https://audio.example.com/hold.mp3"], "locale": "nl-NL"},
            "callback_offer": {"say": "Press 1, {{caller}}.", "voice": "anna"},
            "callback_after_s": 0,
            "locale": "nl-NL",
        }
    )["q"]
    assert queue.strategy == "top-down"
    assert queue.hold == Prompt(play=("https://audio.example.com/hold.mp3",), locale="nl-NL")
    assert queue.callback_offer == Prompt(say="Press 1, {{caller}}.", voice="anna")
    assert queue.offers_callback  # 0: offered at once
    assert queue.locale == "nl-NL"


def test_an_empty_file_has_no_queues() -> None:
    assert parse_queues({"queues": {}}, FILE) == {}


def test_the_document_of_queues_parses_back_to_the_same_queues() -> None:
    loaded = load_queues(SHIPPED)
    document = queues_document(loaded)
    assert json.loads(json.dumps(document)) == document  # JSON as is
    assert parse_queues(document) == loaded
    assert queues_document({"q": Queue(name="q")}) == {"queues": {"q": {}}}


# -- mistakes, each at its path --------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([], "q.json: /: [] is not an object"),
        ({}, "q.json: /: needs 'queues'"),
        ({"queues": {}, "agents": []}, "q.json: /: unknown field 'agents'"),
        (
            {"queues": {"Sales Team": {}}},
            "q.json: /queues: 'Sales Team' is not a queue name (1-63 lowercase letters, digits, "
            "'_' and '-', starting with a letter or digit)",
        ),
        ({"queues": {"q": []}}, "q.json: /queues/q: [] is not an object"),
        (
            {"queues": {"q": {"max_wait": 60}}},
            "q.json: /queues/q: unknown field 'max_wait' (did you mean 'max_wait_s'?)",
        ),
        (
            {"queues": {"q": {"strategy": "ring-all"}}},
            "q.json: /queues/q/strategy: 'ring-all' is not one of longest-idle, round-robin, "
            "fewest-calls, least-talk-time, top-down or random",
        ),
        (
            {"queues": {"q": {"ring_timeout_s": 2}}},
            "q.json: /queues/q/ring_timeout_s: 2 is less than the minimum of 3",
        ),
        (
            {"queues": {"q": {"ring_timeout_s": 121}}},
            "q.json: /queues/q/ring_timeout_s: 121 is greater than the maximum of 120",
        ),
        (
            {"queues": {"q": {"wrap_up_s": 3601}}},
            "q.json: /queues/q/wrap_up_s: 3601 is greater than the maximum of 3600",
        ),
        (
            {"queues": {"q": {"max_no_answer": 0}}},
            "q.json: /queues/q/max_no_answer: 0 is less than the minimum of 1",
        ),
        (
            {"queues": {"q": {"hold_segment_s": 4}}},
            "q.json: /queues/q/hold_segment_s: 4 is less than the minimum of 5",
        ),
        (
            {"queues": {"q": {"max_wait_s": 86401}}},
            "q.json: /queues/q/max_wait_s: 86401 is greater than the maximum of 86400",
        ),
        (
            {"queues": {"q": {"callback_after_s": -1}}},
            "q.json: /queues/q/callback_after_s: -1 is less than the minimum of 0",
        ),
        (
            {"queues": {"q": {"callback_after_s": "2m"}}},
            "q.json: /queues/q/callback_after_s: '2m' is not an integer or null",
        ),
        (
            {"queues": {"q": {"callback_attempts": 11}}},
            "q.json: /queues/q/callback_attempts: 11 is greater than the maximum of 10",
        ),
        (
            {"queues": {"q": {"callback_retry_s": 10}}},
            "q.json: /queues/q/callback_retry_s: 10 is less than the minimum of 30",
        ),
        (
            {"queues": {"q": {"announce_position": "yes"}}},
            "q.json: /queues/q/announce_position: 'yes' is not true or false",
        ),
        (
            {"queues": {"q": {"wrap_up_s": 1.5}}},
            "q.json: /queues/q/wrap_up_s: 1.5 is not an integer",
        ),
        ({"queues": {"q": {"hold": {}}}}, "q.json: /queues/q/hold: needs 'say' or 'play'"),
        (
            {"queues": {"q": {"hold": {"say": "x", "play": ["https://a.example/b.wav"]}}}},
            "q.json: /queues/q/hold: has both 'say' and 'play': give only one",
        ),
        (
            {"queues": {"q": {"hold": {"play": ["http://a.example/b.wav"]}}}},
            "q.json: /queues/q/hold/play/0: 'http://a.example/b.wav' is not an https:// URL",
        ),
        (
            {"queues": {"q": {"callback_offer": {"say": "x", "loop": 3}}}},
            "q.json: /queues/q/callback_offer: unknown field 'loop'",
        ),
        (
            {"queues": {"q": {"locale": "xx-XX"}}},
            "q.json: /queues/q/locale: 'xx-XX' is not a locale of Bird's text-to-speech",
        ),
        (
            {"queues": {"q": {"hold": {"say": "Hold, {{name}}."}}}},
            "q.json: /queues/q/hold/say: unknown template name {{name}}: use caller, called, "
            "call_id, amd or vars.NAME",
        ),
        (
            {"queues": {"q": {"callback_offer": {"play": ["https://a.example/{{id}}.wav"]}}}},
            "q.json: /queues/q/callback_offer/play/0: unknown template name {{id}}",
        ),
    ],
)
def test_mistakes_are_reported_with_their_path(document: Any, expected: str) -> None:
    found = errors(document)
    assert any(p.startswith(expected) for p in found), found


def test_every_mistake_is_reported_at_once() -> None:
    found = errors({"queues": {"a": {"ring_timeout_s": 0}, "b": {"strategy": "x", "hold": {}}}})
    assert [p.split(": ")[1] for p in found] == [
        "/queues/a/ring_timeout_s",
        "/queues/b/hold",
        "/queues/b/strategy",
    ]


def test_unreadable_and_malformed_files_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "queues.json"
    with pytest.raises(GraphError, match=r"queues.json: /: cannot read"):
        load_queues(path)
    path.write_text('{"queues": {\n  "q": {,}}}')
    with pytest.raises(GraphError, match=r"queues.json: /: not valid JSON: .* \(line 2, col 9\)"):
        load_queues(path)
    path.write_bytes(b'{"queues": {"\xff": {}}}')
    with pytest.raises(GraphError, match=r"queues.json: /: not UTF-8 text"):
        load_queues(path)


# -- settings that work, but not as meant: warnings --------------------------------------


def test_sensible_settings_have_no_warnings() -> None:
    assert warnings() == []
    assert warnings(callback_after_s=60, callback_offer={"say": "Press 1."}) == []
    assert warnings(announce_position=False, announce_every_s=10) == []


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {"max_wait_s": 15, "no_agents_grace_s": 10},
            "q.json: /queues/q/max_wait_s: warning: max_wait_s 15 is shorter than "
            "hold_segment_s 20: callers time out during their first hold segment",
        ),
        (
            {"hold_segment_s": 60, "max_wait_s": 30, "no_agents_grace_s": 10},
            "q.json: /queues/q/max_wait_s: warning: max_wait_s 30 is shorter than "
            "hold_segment_s 60: callers time out during their first hold segment",
        ),
        (
            {"tier_wait_s": 600},
            "q.json: /queues/q/tier_wait_s: warning: tier_wait_s 600 is not less than max_wait_s "
            "600: callers time out before agents of level 2 or more are offered them",
        ),
        (
            {"max_wait_s": 60},
            "q.json: /queues/q: warning: no_agents_grace_s 60 is not less than max_wait_s 60: "
            "when every agent logs out, waiting callers time out (on_timeout) before on_no_agents",
        ),
        (
            {"announce_every_s": 10},
            "q.json: /queues/q/announce_every_s: warning: announce_every_s 10 is shorter than "
            "hold_segment_s 20: the position is announced between hold segments, so at most "
            "every 20 s",
        ),
        (
            {"callback_offer": {"say": "Press 1."}},
            "q.json: /queues/q/callback_offer: warning: callback_offer is never played: "
            "callback_after_s is not set (the queue offers no callbacks)",
        ),
    ],
)
def test_settings_that_do_not_do_what_they_say_are_warnings(
    settings: dict[str, Any], expected: str
) -> None:
    assert warnings(**settings) == [expected]


def test_warnings_alone_do_not_refuse_the_file(tmp_path: Path) -> None:
    path = tmp_path / "queues.json"
    path.write_text(json.dumps({"queues": {"q": {"tier_wait_s": 600}}}))
    loaded, found = read_queues(path)
    assert loaded["q"].tier_wait_s == 600
    assert [p.severity for p in found] == ["warning"]
    assert load_queues(path) == loaded


def test_warnings_come_with_the_errors_of_a_refused_file() -> None:
    found = errors({"queues": {"q": {"tier_wait_s": 600, "hold": {"say": "{{x}}"}}}})
    assert found == [
        "q.json: /queues/q/hold/say: unknown template name {{x}}: use caller, called, call_id, "
        "amd or vars.NAME",
        "q.json: /queues/q/tier_wait_s: warning: tier_wait_s 600 is not less than max_wait_s "
        "600: callers time out before agents of level 2 or more are offered them",
    ]


# -- the queue node --------------------------------------------------------------------------

BYE = {"type": "hangup", "say": "Goodbye."}


def graph(**queue_node: Any) -> dict[str, Any]:
    """A graph whose start is a queue node (on ``support``) with ``queue_node``'s fields."""
    node = {"type": "queue", "queue": "support", "on_timeout": "bye", "on_no_agents": "cb"}
    return {
        "id": "g",
        "numbers": ["+31201111111"],
        "start": "q",
        "nodes": {
            "q": {**node, **queue_node},
            "cb": {"type": "callback", "queue": "support", "say": "We call you back.",
                   "next": "bye"},
            "bye": BYE,
        },
    }  # fmt: skip


def graph_errors(document: dict[str, Any]) -> list[str]:
    with pytest.raises(GraphError) as caught:
        parse(document, "g.json")
    return [str(p) for p in caught.value.problems]


def test_a_queue_node_has_a_priority_a_record_flag_and_an_optional_callback_exit() -> None:
    plain = parse(graph()).nodes["q"]
    assert isinstance(plain, QueueNode)
    assert (plain.priority, plain.record, plain.on_callback) == (0, False, None)
    assert dict(plain.exits) == {"on_timeout": "bye", "on_no_agents": "cb"}
    full = parse(graph(priority=9, record=True, on_callback="cb")).nodes["q"]
    assert isinstance(full, QueueNode)
    assert (full.priority, full.record, full.on_callback) == (9, True, "cb")
    assert dict(full.exits) == {"on_timeout": "bye", "on_no_agents": "cb", "on_callback": "cb"}


@pytest.mark.parametrize(
    ("fields_", "expected"),
    [
        ({"priority": 10}, "g.json: /nodes/q/priority: 10 is greater than the maximum of 9"),
        ({"priority": -1}, "g.json: /nodes/q/priority: -1 is less than the minimum of 0"),
        ({"record": "yes"}, "g.json: /nodes/q/record: 'yes' is not true or false"),
        ({"on_callback": "nowhere"}, "g.json: /nodes/q/on_callback: exit names 'nowhere'"),
        ({"queue": "Support Desk"}, "g.json: /nodes/q/queue: 'Support Desk' is not a queue name"),
    ],
)
def test_queue_node_mistakes_are_reported_at_their_path(
    fields_: dict[str, Any], expected: str
) -> None:
    found = graph_errors(graph(**fields_))
    assert any(p.startswith(expected) for p in found), found


def test_a_queue_node_still_using_the_fields_that_moved_to_queues_json_is_told_so() -> None:
    found = graph_errors(
        graph(hold={"say": "Please hold."}, max_wait_s=300, announce_position=True, colour="red")
    )
    moved = "is no longer a field of a queue node: it is a setting of the queue 'support' in "
    assert found == [
        "g.json: /nodes/q: unknown field 'colour'",
        f"g.json: /nodes/q/announce_position: announce_position {moved}queues.json "
        "(docs/queues.md)",
        f"g.json: /nodes/q/hold: hold {moved}queues.json (docs/queues.md)",
        f"g.json: /nodes/q/max_wait_s: max_wait_s {moved}queues.json (docs/queues.md)",
    ]
    assert graph_errors(graph(hold={"say": "Please hold."})) == [
        f"g.json: /nodes/q/hold: hold {moved}queues.json (docs/queues.md)"
    ]


# -- graphs against the queues they name -----------------------------------------------------

SUPPORT = {"support": {"callback_after_s": 120}, "billing": {}}


def cross(document: dict[str, Any], known: dict[str, Any] | None = SUPPORT) -> list[str]:
    available = None if known is None else queues(**known)
    return [str(p) for p in check_queues(parse(document, "g.json"), available)]


def test_nodes_naming_known_queues_are_fine() -> None:
    assert cross(graph(on_callback="cb")) == []
    assert cross(graph(), {"support": {}}) == []


def test_a_queue_that_is_not_defined_is_an_error_naming_the_known_ones() -> None:
    document = graph(queue="sales")
    document["nodes"]["cb"]["queue"] = "salse"
    assert cross(document) == [
        "g.json: /nodes/cb/queue: queue 'salse' is not in queues.json (its queues: billing, "
        "support)",
        "g.json: /nodes/q/queue: queue 'sales' is not in queues.json (its queues: billing, "
        "support)",
    ]


def test_without_queues_json_every_queue_named_is_an_error_that_says_so() -> None:
    missing = "is not defined: there is no queues.json in the graph's directory (docs/queues.md)"
    assert cross(graph(), None) == [
        f"g.json: /nodes/cb/queue: queue 'support' {missing}",
        f"g.json: /nodes/q/queue: queue 'support' {missing}",
    ]
    assert cross(graph(), {})[0] == (
        "g.json: /nodes/cb/queue: queue 'support' is not in queues.json, which defines no queues"
    )
    assert cross({"id": "g", "start": "bye", "nodes": {"bye": BYE}}, None) == []


def test_a_queue_offering_callbacks_needs_the_on_callback_exit() -> None:
    assert cross(graph()) == [
        "g.json: /nodes/q: queue 'support' offers callbacks (callback_after_s 120 in "
        "queues.json): this node needs on_callback, where the call goes when the caller "
        "presses 1 (typically a callback node)"
    ]


def test_on_callback_for_a_queue_without_callbacks_is_a_warning() -> None:
    found = check_queues(parse(graph(on_callback="cb"), "g.json"), queues(support={}))
    assert [(p.path, p.severity) for p in found] == [("/nodes/q/on_callback", "warning")]
    assert found[0].message == (
        "on_callback is never taken: queue 'support' offers no callbacks (callback_after_s "
        "is not set in queues.json)"
    )


def test_a_queue_prompt_reading_a_variable_not_always_set_is_a_warning() -> None:
    document = graph(on_callback="cb")
    document["params"] = ["name"]
    known = {
        "support": {
            "hold": {"say": "Please hold, {{vars.name}}."},
            "callback_after_s": 60,
            "callback_offer": {"say": "{{vars.account}}: press 1."},
        }
    }
    assert cross(document, known) == [
        "g.json: /nodes/q/queue: warning: the callback_offer prompt of queue 'support' reads "
        "vars.account, which is not set on every path from start to here: it renders empty"
    ]


# -- loading a directory -----------------------------------------------------------------------


def write(directory: Path, name: str, document: Any) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(json.dumps(document))
    return path


def test_a_directory_loads_its_queues_into_the_set_and_every_graph(tmp_path: Path) -> None:
    write(tmp_path, "g.json", graph(on_callback="cb"))
    write(tmp_path, "queues.json", {"queues": SUPPORT})
    loaded = load_directory(tmp_path, runnable=False)
    assert sorted(loaded.queues) == ["billing", "support"]
    assert queues_of(loaded) == queues(**SUPPORT)
    assert queues_of(loaded.graphs["g"]) == queues(**SUPPORT)


def test_the_queues_do_not_change_a_graphs_version(tmp_path: Path) -> None:
    write(tmp_path, "g.json", graph(on_callback="cb"))
    write(tmp_path, "queues.json", {"queues": SUPPORT})
    before = load_directory(tmp_path, runnable=False).graphs["g"]
    write(tmp_path, "queues.json", {"queues": {"support": {"callback_after_s": 5}}})
    after = load_directory(tmp_path, runnable=False).graphs["g"]
    assert after.version == before.version == parse(graph(on_callback="cb")).version
    assert after.queues != before.queues
    assert after == before  # the queues are not the graph's content


def test_a_directory_without_queues_json_has_no_queues(tmp_path: Path) -> None:
    write(tmp_path, "g.json", {"id": "g", "numbers": ["+31201111111"], "start": "bye",
                               "nodes": {"bye": BYE}})  # fmt: skip
    loaded = load_directory(tmp_path)
    assert loaded.queues == {}
    assert loaded.graphs["g"].queues == {}


def test_queue_problems_are_reported_with_the_graphs_problems(tmp_path: Path) -> None:
    bad_graph = write(tmp_path, "a.json", {"id": "a", "start": "x", "nodes": {"x": BYE}})
    using = write(tmp_path, "b.json", {**graph(queue="sales"), "id": "b"})
    queues_path = write(tmp_path, "queues.json", {"queues": {"support": {"strategy": "x"}}})
    bad_graph.unlink()
    with pytest.raises(GraphError) as caught:
        load_directory(tmp_path, runnable=False)
    # queues.json cannot be loaded: its problems, and the queue b names that it does not
    # define; not 'support' (its settings failed the schema, but it is there)
    assert [str(p) for p in caught.value.problems] == [
        f"{queues_path}: /queues/support/strategy: 'x' is not one of longest-idle, "
        "round-robin, fewest-calls, least-talk-time, top-down or random",
        f"{using}: /nodes/q/queue: queue 'sales' is not in queues.json (its queues: support)",
    ]
    write(tmp_path, "queues.json", {"queues": SUPPORT})
    write(
        tmp_path, "a.json", {"id": "a", "start": "x", "nodes": {"x": {"type": "say", "say": "Hi"}}}
    )
    with pytest.raises(GraphError) as caught:
        load_directory(tmp_path, runnable=False)
    errors = [p for p in caught.value.problems if p.severity == "error"]
    assert [(Path(p.file).name, p.path) for p in errors] == [
        ("a.json", "/nodes/x"),  # a graph's own problems
        ("b.json", "/nodes/q/queue"),  # and a queue another names that does not exist
    ]
    assert str(errors[1]) == (
        f"{using}: /nodes/q/queue: queue 'sales' is not in queues.json (its queues: billing, "
        "support)"
    )


def test_cross_check_warnings_join_the_graphs_warnings(tmp_path: Path) -> None:
    write(tmp_path, "g.json", graph(on_callback="cb"))
    write(tmp_path, "queues.json", {"queues": {"support": {}}})
    loaded = load_directory(tmp_path, runnable=False).graphs["g"]
    assert [(w.path, w.severity) for w in loaded.warnings] == [("/nodes/q/on_callback", "warning")]


# -- ivr validate ------------------------------------------------------------------------------


def test_validate_checks_a_directory_with_its_queues() -> None:
    result = ivr("validate", "ivr_graphs")
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.splitlines()[0] == "ivr_graphs/queues.json: ok (2 queues: billing, support)"
    )
    assert "queues.schema.json" not in result.stdout + result.stderr


def test_validate_takes_a_queues_file_alone() -> None:
    result = ivr("validate", "ivr_graphs/queues.json")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ivr_graphs/queues.json: ok (2 queues: billing, support)\n"
    skipped = ivr("validate", "ivr_graphs/queues.schema.json")
    assert skipped.returncode == 0
    assert skipped.stderr.splitlines() == [
        "ivr_graphs/queues.schema.json: skipped (a JSON Schema, not a graph)",
        "no problems in 0 files (1 skipped)",
    ]


def test_validate_prints_every_queue_problem_with_file_and_path(tmp_path: Path) -> None:
    path = write(
        tmp_path, "queues.json", {"queues": {"q": {"ring_timeout_s": 500, "tier_wait_s": 900}}}
    )
    result = ivr("validate", str(path))
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"{path}: /queues/q/ring_timeout_s: 500 is greater than the maximum of 120",
        "1 error in 1 file",
    ]
    write(tmp_path, "queues.json", {"queues": {"q": {"tier_wait_s": 900}}})
    warned = ivr("validate", str(path))
    assert warned.returncode == 0
    assert warned.stderr.startswith(f"{path}: /queues/q/tier_wait_s: warning: tier_wait_s 900")
    path.write_text("{")
    broken = ivr("validate", str(path))
    assert broken.returncode == 1
    assert broken.stderr == f"{path}: /: not valid JSON: Expecting property name enclosed in " \
        "double quotes (line 1, col 2)\n1 error in 1 file\n"  # fmt: skip
    assert "Traceback" not in broken.stderr


def test_validate_checks_a_graph_against_the_queues_beside_it(tmp_path: Path) -> None:
    document = graph(queue="sales", on_no_agents="bye")
    del document["nodes"]["cb"]
    path = write(tmp_path, "g.json", document)
    alone = ivr("validate", str(path))
    assert alone.returncode == 1
    assert alone.stderr.splitlines() == [
        f"{path}: /nodes/q/queue: queue 'sales' is not defined: there is no queues.json in the "
        "graph's directory (docs/queues.md)",
        "1 error in 1 file",
    ]
    write(tmp_path, "queues.json", {"queues": SUPPORT})
    for args in ([str(path)], [str(tmp_path)]):
        result = ivr("validate", *args)
        assert result.returncode == 1
        assert result.stderr.splitlines() == [
            f"{path}: /nodes/q/queue: queue 'sales' is not in queues.json (its queues: billing, "
            "support)",
            "1 error in 2 files",  # the graph and the queues.json beside it
        ]
    write(tmp_path, "queues.json", {"queues": {"sales": {}}})
    result = ivr("validate", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"{tmp_path / 'queues.json'}: ok (1 queue: sales)",
        f"{path}: ok (id g, 2 nodes, version {parse(document).version})",
    ]


def test_validate_reports_a_broken_queues_file_once_for_its_graphs(tmp_path: Path) -> None:
    one = write(tmp_path, "one.json", {**graph(), "id": "one"})
    second = {**graph(), "id": "two", "numbers": ["+31202222222"]}
    two = write(tmp_path, "two.json", second)
    queues_path = write(tmp_path, "queues.json", {"queues": {"support": {"wrap_up_s": -1}}})
    result = ivr("validate", str(one), str(two))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{queues_path}: /queues/support/wrap_up_s: -1 is less than the minimum of 0",
        "1 error in 3 files",
    ]
    assert result.stdout.splitlines() == [
        f"{one}: ok (id one, 3 nodes, version {parse({**graph(), 'id': 'one'}).version})",
        f"{two}: ok (id two, 3 nodes, version {parse(second).version})",
    ]
