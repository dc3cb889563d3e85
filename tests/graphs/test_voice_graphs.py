"""Issue 13 in graph files: the schema and the validator know spoken answers, pauses,
answering machines, recordings and tags; ivr simulate and ivr render show them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from service.bird import schemas as bird_schemas
from service.bird.commands import amd_settings
from service.graphs import schema
from service.graphs.loader import GraphError, parse
from service.graphs.render import dot, mermaid
from service.graphs.simulate import SPOKEN, load, simulate
from service.graphs.validator import check
from tests.paths import SHIPPED_GRAPHS, ivr

BYE = {"type": "hangup", "say": "Goodbye."}


def menu(**fields: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"type": "menu", "say": "Billing or support?",
                            "options": {"1": "bye", "2": "bye"}, "on_failure": "bye"}  # fmt: skip
    node.update(fields)
    return node


def document(**top: Any) -> dict[str, Any]:
    nodes = top.pop("nodes", {"a": menu(), "bye": BYE})
    return {"id": "g", "numbers": ["+31201111111"], "start": "a", "nodes": nodes, **top}


def problems(doc: dict[str, Any]) -> list[str]:
    try:
        return [str(p) for p in check(parse(doc, "g.json"))]
    except GraphError as exc:
        return [str(p) for p in exc.problems]


# -- the schema ----------------------------------------------------------------------------


def test_the_speech_locales_are_birds_gather_locales() -> None:
    gather = bird_schemas.document()["operations"]["gather"]["requestSchema"]
    assert (
        schema.schema()["$defs"]["speechLocale"]["enum"]
        == (gather["properties"]["speechLocale"]["enum"])
    )


def test_a_speech_locale_bird_does_not_offer_is_refused_in_plain_words() -> None:
    node = menu(input="speech", speech_locale="nl-NL", phrases={"1": ["billing"]})
    found = problems(document(nodes={"a": node, "bye": BYE}))
    assert found == [
        "g.json: /nodes/a/speech_locale: 'nl-NL' is not a language Bird's gather understands "
        "speech in: one of de-DE, en-AU, en-GB, en-US, es-US, it-IT, ja-JP, ko-KR, pt-BR, th-TH "
        "or zh-CN"
    ]


@pytest.mark.parametrize(
    ("top", "message"),
    [
        ({"tags": ["Reminders"]}, "/tags/0: 'Reminders' is not a tag"),
        ({"tags": [f"t{i}" for i in range(11)]}, "/tags: "),
        ({"amd": {"on_machine": "bye"}}, "/amd: "),
        ({"amd": {"enabled": True, "word_count": 0}}, "/amd/word_count: "),
    ],
)
def test_bad_tags_and_amd_settings_are_refused_at_their_path(
    top: dict[str, Any], message: str
) -> None:
    found = problems(document(**top))
    assert any(f"g.json: {message}" in p for p in found), found


def test_a_pause_is_one_to_thirty_seconds() -> None:
    for seconds, ok in ((1, True), (30, True), (0, False), (31, False)):
        pause = {"type": "pause", "seconds": seconds, "next": "bye"}
        found = problems(document(nodes={"a": pause, "bye": BYE}))
        assert (found == []) is ok, (seconds, found)


# -- the validator's rules -----------------------------------------------------------------


def test_phrases_need_a_gather_that_hears_words() -> None:
    found = problems(document(nodes={"a": menu(phrases={"1": ["billing"]}), "bye": BYE}))
    assert found == [
        "g.json: /nodes/a/phrases: phrases are never heard: input is dtmf; use input speech or "
        "dtmf speech"
    ]


def test_phrases_must_name_options_of_the_menu() -> None:
    node = menu(input="dtmf speech", phrases={"1": ["billing"], "7": ["sales"]})
    assert problems(document(nodes={"a": node, "bye": BYE})) == [
        "g.json: /nodes/a/phrases/7: phrases for option 7, which is not one of the menu's options"
    ]


def test_a_menu_that_hears_only_words_needs_phrases() -> None:
    assert problems(document(nodes={"a": menu(input="speech"), "bye": BYE})) == [
        "g.json: /nodes/a: no phrases: nothing the caller says chooses an option"
    ]
    assert problems(document(nodes={"a": menu(input="dtmf speech"), "bye": BYE})) == [
        "g.json: /nodes/a: warning: no phrases: nothing the caller says chooses an option"
    ]


def test_a_speech_locale_of_a_keys_only_gather_is_a_warning() -> None:
    assert problems(document(nodes={"a": menu(speech_locale="en-GB"), "bye": BYE})) == [
        "g.json: /nodes/a/speech_locale: warning: speech_locale is not used: input is dtmf "
        "(keys only)"
    ]


def machine_nodes() -> dict[str, Any]:
    return {"a": menu(), "bye": BYE, "message": {"type": "say", "say": "{{amd}}", "next": "end"},
            "end": BYE}  # fmt: skip


def test_on_machine_makes_its_nodes_reachable() -> None:
    assert problems(document(amd={"enabled": True, "on_machine": "message"},
                             nodes=machine_nodes())) == []  # fmt: skip
    without = problems(document(nodes=machine_nodes()))
    assert "g.json: /nodes/message: unreachable: no path from start (a) leads here" in without


def test_on_machine_must_name_a_node() -> None:
    assert problems(document(amd={"enabled": True, "on_machine": "nowhere"})) == [
        "g.json: /amd/on_machine: on_machine names 'nowhere', which is not a node"
    ]


def test_on_machine_is_never_taken_without_amd_enabled() -> None:
    found = problems(document(amd={"enabled": False, "on_machine": "message"},
                              nodes=machine_nodes()))  # fmt: skip
    assert (
        "g.json: /amd/on_machine: never taken: amd.enabled is false, so no call is ever "
        "known to be a machine (the nodes only it leads to are unreachable)" in found
    )


def test_the_path_from_on_machine_must_end_and_may_only_read_what_is_surely_set() -> None:
    nodes = {
        "a": {"type": "collect", "say": "Code?", "var": "code", "max_digits": 4,
              "next": "bye", "on_failure": "bye"},
        "bye": {"type": "hangup", "say": "Code {{vars.code}}."},
        "message": {"type": "transfer", "to": "{{vars.code}}", "on_failure": "loop"},
        "loop": {"type": "say", "say": "Again.", "next": "loop2"},
        "loop2": {"type": "say", "say": "And again.", "next": "loop"},
    }  # fmt: skip
    found = problems(document(amd={"enabled": True, "on_machine": "message"}, nodes=nodes))
    assert any(p.startswith("g.json: /nodes/loop: no path from here reaches") for p in found)
    assert any("/nodes/message/to: warning: may render empty" in p for p in found), found


def test_amd_is_a_template_name_and_a_branch_variable() -> None:
    nodes = {
        "a": {"type": "branch", "cases": [{"var": "amd", "op": "eq", "value": "machine",
                                           "next": "bye"}], "default": "hi"},
        "hi": {"type": "hangup", "say": "Hello, {{amd}}."},
        "bye": BYE,
    }  # fmt: skip
    assert problems(document(nodes=nodes)) == []


def test_the_shipped_graphs_use_speech_and_machines() -> None:
    support = parse(json.loads((SHIPPED_GRAPHS / "support-line.json").read_text()))
    main_menu = support.nodes["main-menu"]
    assert main_menu.input == "dtmf speech"  # type: ignore[union-attr]
    reminder = parse(json.loads((SHIPPED_GRAPHS / "appointment-reminder.json").read_text()))
    assert reminder.amd is not None
    assert reminder.amd.enabled
    assert reminder.tags == ("appointment-reminder",)


# -- ivr simulate and ivr render -------------------------------------------------------------


def test_simulate_hears_a_spoken_billing_at_the_support_lines_menu() -> None:
    graph = load(SHIPPED_GRAPHS / "support-line.json")
    tuesday = datetime.fromisoformat("2026-11-24T10:00:00+01:00")
    result = simulate(graph, [SPOKEN + "billing please", "12345678#"], at=tuesday)
    lines = [(line.node, line.kind, line.text) for line in result.lines]
    assert ("main-menu", "says", "billing please") in lines
    assert ("account-number", "node", "collect") in lines


def test_the_simulate_command_takes_spoken_answers_and_machines() -> None:
    reminder = str(SHIPPED_GRAPHS / "appointment-reminder.json")
    names = ["--var", "name=Sam", "--var", "date=1 December", "--var", "time=10:00"]
    said = ivr("simulate", reminder, "--outbound", "--say", "Yes!", *names)
    assert said.returncode == 0, said.stderr
    assert "says        Yes!" in said.stdout
    assert "Bird tells: a person answered" in said.stdout
    assert "is confirmed" in said.stdout
    machine = ivr("simulate", reminder, "--machine", *names)
    assert machine.returncode == 0, machine.stderr
    assert "Bird tells: a machine (after its beep) answered" in machine.stdout
    assert "records     Hello Sam, this is Acme with a reminder" in machine.stdout
    assert "1 s of silence" in machine.stdout
    nothing = ivr("simulate", reminder, "--say", " ", *names)
    assert nothing.returncode == 2
    assert nothing.stderr.strip().endswith(
        "--say: nothing to say (give the words, e.g. --say billing)"
    )
    assert "Traceback" not in nothing.stderr


def test_words_at_a_gather_of_keys_are_not_heard() -> None:
    graph = parse(document())
    result = simulate(graph, [SPOKEN + "one", "_", "_"], at=datetime.now(UTC))
    assert result.lines[2].detail == "not heard: the gather takes keys only"


def test_render_draws_where_a_machine_goes_and_what_a_node_hears() -> None:
    graph = parse(json.loads(
        (SHIPPED_GRAPHS / "appointment-reminder.json").read_text()))  # fmt: skip
    drawn = mermaid(graph)
    assert 'machine -.->|"answered by a machine"| n_beep_pause' in drawn
    assert "pause 1 s<br/>on an answering machine" in drawn
    assert "menu (keys or speech, en-US)" in drawn
    assert '-->|"1 or #quot;yes#quot;"|' in drawn
    assert '"_machine" -> "beep-pause"' in dot(graph)


def test_the_graphs_amd_settings_reach_birds_request() -> None:
    graph = parse(document(amd={"enabled": True, "word_count": 3, "beep_timeout_s": 40}))
    assert amd_settings(graph.amd) == {
        "enabled": True, "ifMachineNotifyAfter": "beep", "wordCount": 3, "beepTimeout": 40,
    }  # fmt: skip
    assert (
        bird_schemas.problems(
            "createCall", {"to": "+31612345678", "amdSettings": amd_settings(graph.amd)}
        )
        == []
    )
