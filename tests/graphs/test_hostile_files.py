"""Graph files as a careless or hostile editor writes them: every one is refused as
``FILE: /json/path: message``, by the loader and by the CLI, never with a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service.graphs.loader import GraphError, load_file
from tests.paths import ivr


def collect(pattern: str) -> dict[str, Any]:
    return {
        "id": "hostile",
        "start": "ask",
        "nodes": {
            "ask": {"type": "collect", "say": "Your code?", "var": "code", "max_digits": 8,
                    "pattern": pattern, "next": "bye", "on_failure": "bye"},
            "bye": {"type": "hangup"},
        },
    }  # fmt: skip


HOSTILE: dict[str, tuple[bytes, str]] = {
    "5000 digits": (b'{"id": "x", "n": ' + b"9" * 5000 + b"}", "not JSON this service reads"),
    "deep nesting": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "lone surrogate": (b'{"id": "\\ud800"}', "lone surrogate"),
    "not utf-8": (b"\xff\xfe{}", "not UTF-8 text"),
    "huge repetition": (
        json.dumps(collect("a{4294967296}")).encode(),
        "is not a regular expression: a repetition count is too large",
    ),
    "3000 groups": (
        json.dumps(collect("(" * 3000)).encode(),
        "is not a regular expression: it is nested too deeply",
    ),
    "branch repetition": (
        json.dumps(
            {
                "id": "br",
                "start": "b",
                "nodes": {
                    "b": {
                        "type": "branch",
                        "default": "bye",
                        "cases": [
                            {
                                "var": "caller",
                                "op": "matches",
                                "value": "9{4294967296}",
                                "next": "bye",
                            }
                        ],
                    },
                    "bye": {"type": "hangup"},
                },
            }
        ).encode(),
        "is not a regular expression: a repetition count is too large",
    ),
    "id with a newline": (
        json.dumps({"id": "nl", "start": "x\n", "nodes": {"x\n": {"type": "hangup"}}}).encode(),
        "is not a node id",
    ),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_file_is_refused_with_its_path_and_a_reason(tmp_path: Path, name: str) -> None:
    content, reason = HOSTILE[name]
    path = tmp_path / "hostile.json"
    path.write_bytes(content)
    with pytest.raises(GraphError) as caught:
        load_file(path)
    assert reason in str(caught.value)
    assert all(str(problem).startswith(f"{path}: /") for problem in caught.value.problems)


@pytest.mark.parametrize("command", ["validate", "render", "simulate"])
@pytest.mark.parametrize("name", ["5000 digits", "huge repetition", "3000 groups"])
def test_the_cli_answers_a_hostile_file_in_lines_not_a_traceback(
    tmp_path: Path, command: str, name: str
) -> None:
    path = tmp_path / "hostile.json"
    path.write_bytes(HOSTILE[name][0])
    result = ivr(command, str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith(f"{path}: /")


def test_a_key_with_control_characters_is_one_escaped_line_per_problem(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"id": "k", "start": "a", "nodes": {"x\n\x1e": {"type": "say"}}}))
    with pytest.raises(GraphError) as caught:
        load_file(path)
    lines = str(caught.value).splitlines()
    assert len(lines) == len(caught.value.problems)
    assert any("/nodes/x\\n\\x1e:" in line for line in lines)
