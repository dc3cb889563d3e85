"""Loading graphs: the shipped ones load; mistakes are reported with file and JSON path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from service.core.graph import RUNNABLE_TYPES
from service.graphs import check
from service.graphs.loader import (
    GraphError,
    graph_files,
    load_directory,
    load_file,
    parse,
    version_of,
)
from service.graphs.schema import schema
from tests.paths import SHIPPED_GRAPHS

SHIPPED = graph_files(SHIPPED_GRAPHS)


def minimal(**nodes: Any) -> dict[str, Any]:
    return {
        "id": "g",
        "start": "a",
        "nodes": nodes or {"a": {"type": "hangup", "say": "Bye."}},
    }


def problems(document: Any) -> list[str]:
    with pytest.raises(GraphError) as caught:
        parse(document, "g.json")
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_graph_loads(path: Path) -> None:
    graph = load_file(path)
    assert graph.start in graph.nodes
    assert json.loads(path.read_text())["$schema"] == "./schema.json"


def test_the_packaged_schema_is_the_one_graphs_reference() -> None:
    assert schema() == json.loads((SHIPPED_GRAPHS / "schema.json").read_text())


def test_the_support_line_answers_its_number() -> None:
    graphs = load_directory(SHIPPED_GRAPHS)
    assert graphs.for_number("+31970102030") is graphs.graphs["support-line"]
    assert graphs.for_number("+10000000000") is None
    with_default = load_directory(SHIPPED_GRAPHS, "support-line")
    assert with_default.for_number("+10000000000") is with_default.graphs["support-line"]


def test_version_is_the_hash_of_the_content_not_its_formatting() -> None:
    document = minimal()
    reordered = dict(reversed(list(document.items())))
    assert version_of(document) == version_of(reordered)
    assert version_of(document) != version_of({**document, "description": "x"})
    assert parse(document).version == version_of(document)


def test_exits_must_name_existing_nodes_with_their_json_path() -> None:
    found = problems(
        minimal(
            a={"type": "say", "say": "Hi", "next": "menu"},
            menu={"type": "menu", "say": "Pick", "options": {"1": "nowhere"}, "on_failure": "gone"},
        )
    )
    assert found == [
        "g.json: /nodes/menu/options/1: exit names 'nowhere', which is not a node",
        "g.json: /nodes/menu/on_failure: exit names 'gone', which is not a node",
    ]


def test_start_must_exist() -> None:
    assert problems({**minimal(), "start": "zz"}) == [
        "g.json: /start: start names 'zz', which is not a node"
    ]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({**minimal(), "id": "Bad Id"}, "g.json: /id: 'Bad Id' is not a graph id"),
        (minimal(a={"type": "say", "next": "a"}), "g.json: /nodes/a: needs 'say' or 'play'"),
        (
            minimal(a={"type": "say", "say": "x", "play": ["https://a/b.wav"], "next": "a"}),
            "g.json: /nodes/a: has both 'say' and 'play': give only one",
        ),
        (
            minimal(a={"type": "hangup", "sya": "typo"}),
            "g.json: /nodes/a: unknown field 'sya' (did you mean 'say'?)",
        ),
        (minimal(a={"type": "dance"}), "g.json: /nodes/a/type: 'dance' is not one of say, menu"),
        (
            minimal(a={"type": "transfer", "to": "0201234567", "on_failure": "a"}),
            "g.json: /nodes/a/to: '0201234567' is not an E.164 number (+ and 7-15 digits, the "
            "first not 0), a sip: or sips: URI",
        ),
        (
            minimal(
                a={
                    "type": "transfer",
                    "to": "+31201234567",
                    "ring_timeout_s": 500,
                    "on_failure": "a",
                }
            ),
            "g.json: /nodes/a/ring_timeout_s: 500 is greater than the maximum of 120",
        ),
        ({**minimal(), "locale": "xx-XX"}, "g.json: /locale: 'xx-XX' is not a locale of Bird's"),
        ({"id": "g", "start": "a"}, "g.json: /: needs 'nodes'"),
    ],
)
def test_format_mistakes_are_reported_with_their_path(
    document: dict[str, Any], expected: str
) -> None:
    assert any(p.startswith(expected) for p in problems(document)), problems(document)


def test_node_types_the_service_cannot_run_yet_are_refused_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = RUNNABLE_TYPES - {"callback"}
    monkeypatch.setattr(check, "RUNNABLE_TYPES", runs)
    document = minimal(
        a={"type": "callback", "queue": "sales", "next": "b"},
        b={"type": "hangup"},
    )
    assert parse(document, "g.json").nodes["a"].type == "callback"  # the format knows it
    (tmp_path / "g.json").write_text(json.dumps(document))
    (tmp_path / "queues.json").write_text(json.dumps({"queues": {"sales": {}}}))
    assert load_directory(tmp_path, runnable=False).graphs["g"].nodes["a"].type == "callback"
    with pytest.raises(GraphError) as caught:
        load_directory(tmp_path)
    assert [str(p) for p in caught.value.problems if p.severity == "error"] == [
        f"{tmp_path / 'g.json'}: /nodes/a/type: node type 'callback' is not supported by this "
        f"version of the service (it runs: {', '.join(sorted(runs))})"
    ]


def test_all_problems_of_a_file_are_reported_at_once() -> None:
    found = problems(
        minimal(
            a={"type": "say", "next": "b"},
            b={"type": "transfer", "on_failure": "a"},
        )
    )
    assert len(found) >= 2


def test_unreadable_files_are_reported(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"id": "x",')
    with pytest.raises(GraphError, match=r"broken.json: /: not valid JSON: .* \(line 1, col 12\)"):
        load_file(broken)
    with pytest.raises(GraphError, match="cannot read"):
        load_file(tmp_path / "missing.json")


def test_a_directory_reports_duplicate_ids_numbers_and_a_missing_default(tmp_path: Path) -> None:
    for name in ("one", "two"):
        (tmp_path / f"{name}.json").write_text(
            json.dumps({**minimal(), "numbers": ["+31201111111"]})
        )
    with pytest.raises(GraphError) as caught:
        load_directory(tmp_path)
    assert [p.path for p in caught.value.problems] == ["/id"]
    (tmp_path / "two.json").write_text(
        json.dumps({**minimal(), "id": "two", "numbers": ["+31201111111"]})
    )
    with pytest.raises(GraphError, match=r"two.json: /numbers/0: \+31201111111 is also answered"):
        load_directory(tmp_path)
    (tmp_path / "two.json").unlink()
    with pytest.raises(GraphError, match="IVR_DEFAULT_GRAPH names 'nope'"):
        load_directory(tmp_path, "nope")
    with pytest.raises(GraphError, match="no graph files"):
        load_directory(tmp_path / "empty")


def _editor_validator() -> Draft202012Validator:
    """The schema as an editor uses it: the file each graph's $schema points to."""
    document = json.loads((SHIPPED_GRAPHS / "schema.json").read_text())
    Draft202012Validator.check_schema(document)
    return Draft202012Validator(document, format_checker=FormatChecker())


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_schema_file_accepts_every_shipped_graph(path: Path) -> None:
    graph = json.loads(path.read_text())
    assert (path.parent / graph["$schema"]).resolve() == (SHIPPED_GRAPHS / "schema.json").resolve()
    assert list(_editor_validator().iter_errors(graph)) == []


BROKEN = [
    {"start": "a", "nodes": {"a": {"type": "hangup"}}},  # no id
    {"id": "g", "start": "a", "nodes": {"a": {"type": "say", "say": "x"}}},  # say without next
    {"id": "g", "start": "a", "nodes": {"a": {"type": "menu", "say": "x", "options": {"10": "a"},
                                              "on_failure": "a"}}},  # two-key option
    {"id": "g", "start": "a", "nodes": {"a": {"type": "collect", "say": "x", "var": "1x",
                                              "max_digits": 4, "next": "a",
                                              "on_failure": "a"}}},  # bad var name
    {"id": "g", "start": "a", "nodes": {"a": {"type": "branch", "cases": [
        {"var": "vars.x", "op": "exists", "value": 1, "next": "a"}], "default": "a"}}},
    {"id": "g", "start": "a", "nodes": {"a": {"type": "hours", "timezone": "UTC",
                                              "weekly": {"mon": ["9:00-17:00"]}, "open": "a",
                                              "closed": "a"}}},  # H:MM
    {"id": "g", "start": "a", "nodes": {"a": {"type": "http", "url": "ftp://x", "next": "a",
                                              "on_error": "a"}}},
    {"id": "g", "start": "a", "numbers": ["0201234567"], "nodes": {"a": {"type": "hangup"}}},
    {"id": "g", "start": "a", "nodes": {"a": {"type": "voicemail", "max_length_s": 0,
                                              "next": "a"}}},
    {"id": "g", "start": "a", "nodes": {"a": {"type": "set", "vars": {}, "next": "a"}}},
]  # fmt: skip


@pytest.mark.parametrize("document", BROKEN, ids=range(len(BROKEN)))
def test_the_schema_file_rejects_broken_graphs(document: dict[str, Any]) -> None:
    assert list(_editor_validator().iter_errors(document)) != []
