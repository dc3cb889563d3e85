"""``ivr validate``: the service's own check (what it refuses, validate refuses, with the
same problems), every problem in one run, text for people and ``--format json`` for CI."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from service.cli import validate
from service.graphs.check import check_paths
from service.graphs.loader import GraphError, load_directory
from tests.paths import ROOT, SHIPPED_GRAPHS, ivr

BYE = {"type": "hangup", "say": "Goodbye."}
NUMBER = "+31201111111"


def write(directory: Path, name: str, document: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(json.dumps(document))
    return path


def graph(graph_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": graph_id, "numbers": [NUMBER], "start": "a", "nodes": {"a": BYE}, **extra}


def run(*args: str | Path, fmt: str = "text") -> tuple[int, str, str]:
    """``ivr validate`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    status = validate.run([Path(a) for a in args], fmt, out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def test_validate_refuses_what_the_service_refuses_with_the_same_problems(
    tmp_path: Path,
) -> None:
    one = write(tmp_path, "one.json", graph("desk"))
    two = write(tmp_path, "two.json", graph("desk", description="a copy"))
    three = write(tmp_path, "three.json", graph("other"))
    result = ivr("validate", str(tmp_path))
    assert result.returncode == 1
    with pytest.raises(GraphError) as caught:
        load_directory(tmp_path)
    assert result.stderr.splitlines() == [
        *[str(p) for p in caught.value.problems],
        "2 errors in 3 files",
    ]
    assert [str(p) for p in caught.value.problems] == [
        f"{three}: /numbers/0: {NUMBER} is also answered by {one}",
        f"{two}: /id: id 'desk' is also used by {one}",
    ]
    assert result.stdout == f"{one}: ok (id desk, 1 nodes, version {json_version(one)})\n"


def json_version(path: Path) -> str:
    (graph_,) = [file.graph for file in check_paths([path]).files if file.graph is not None]
    return graph_.version


def test_the_text_report_problems_ok_lines_and_a_summary(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.json", graph("bad", numbers=["0612345"]))
    warned = write(tmp_path, "warned.json", {**graph("warned"), "numbers": []})
    status, out, err = run(tmp_path, tmp_path / "schema.json")
    assert status == 1
    assert err.splitlines() == [
        f"{tmp_path / 'schema.json'}: skipped (a JSON Schema, not a graph)",
        f"{bad}: /numbers/0: '0612345' is not an E.164 number (+ and 7-15 digits, the first not 0)",
        f"{warned}: /numbers: warning: answers no number: only reachable as IVR_DEFAULT_GRAPH or "
        "for outbound calls",
        "1 error, 1 warning in 2 files (1 skipped)",
    ]
    assert out.splitlines() == [
        f"{warned}: ok (id warned, 1 nodes, version {json_version(warned)})"
    ]
    bad.unlink()
    assert run(tmp_path)[0] == 0  # warnings alone
    assert run(tmp_path)[2].splitlines()[-1] == "1 warning in 1 file"


def test_a_directory_without_graphs_is_an_error_as_for_the_service(tmp_path: Path) -> None:
    write(tmp_path, "queues.json", {"queues": {}})
    status, out, err = run(tmp_path)
    assert status == 1
    assert err.splitlines() == [
        f"{tmp_path}: /: no graph files (*.json) found",
        "1 error in 1 file",
    ]
    assert out == f"{tmp_path / 'queues.json'}: ok (no queues)\n"


def test_colour_on_a_terminal_and_never_with_no_color(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "g.json", graph("g", numbers=["0612345"]))
    write(tmp_path, "h.json", graph("h", numbers=[]))
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    _, out, err = run(tmp_path)
    red, yellow, green = "\x1b[1;31m", "\x1b[33m", "\x1b[32m"
    lines = err.splitlines()
    assert lines[0].startswith(red)
    assert lines[0].endswith("\x1b[0m")
    assert lines[1].startswith(yellow)  # the warning
    assert lines[-1] == f"{red}1 error, 1 warning in 2 files\x1b[0m"
    assert out.startswith(green)
    monkeypatch.setenv("NO_COLOR", "1")
    _, out, err = run(tmp_path)
    assert "\x1b[" not in out + err


# -- --format json --------------------------------------------------------------------------


def test_format_json_is_one_document_with_every_file_and_problem(tmp_path: Path) -> None:
    shutil.copy(SHIPPED_GRAPHS / "queues.json", tmp_path / "queues.json")
    good = write(tmp_path, "good.json", graph("good"))
    bad = write(
        tmp_path,
        "bad.json",
        {
            **graph("bad"),
            "numbers": ["+31202222222"],
            "nodes": {"a": {"type": "say", "say": 5, "next": "b"}},
        },
    )
    result = ivr("validate", str(tmp_path), str(tmp_path / "schema.json"), "--format", "json")
    assert result.returncode == 1
    assert result.stderr == ""
    document = json.loads(result.stdout)
    assert document == {
        "ok": False,
        "errors": 2,
        "warnings": 0,
        "files": [
            {"file": str(tmp_path / "queues.json"), "kind": "queues", "ok": True, "errors": 0,
             "warnings": 0, "queues": ["billing", "support"]},
            {"file": str(bad), "kind": "graph", "ok": False, "errors": 2, "warnings": 0,
             "id": "bad"},
            {"file": str(good), "kind": "graph", "ok": True, "errors": 0, "warnings": 0,
             "id": "good", "version": json_version(good), "nodes": 1},
        ],
        "skipped": [
            {"file": str(tmp_path / "schema.json"), "reason": "a JSON Schema, not a graph"}
        ],
        "problems": [
            {"file": str(bad), "path": "/nodes/a/say", "severity": "error",
             "message": "5 is not a string"},
            {"file": str(bad), "path": "/nodes/a/next", "severity": "error",
             "message": "exit names 'b', which is not a node"},
        ],
    }  # fmt: skip
    fine = ivr("validate", str(good), "--format", "json")
    assert fine.returncode == 0
    assert json.loads(fine.stdout)["ok"] is True
    assert json.loads(fine.stdout)["files"][0] == {
        "file": str(tmp_path / "queues.json"), "kind": "queues", "ok": True, "errors": 0,
        "warnings": 0, "named": False, "queues": ["billing", "support"],
    }  # fmt: skip


FRONT_DESK = {
    "$schema": "./schema.json",
    "id": "front-desk",
    "numbers": ["0201234567"],
    "start": "menu",
    "nodes": {
        "menu": {"type": "menu", "say": "Press 1 for sales.", "options": {"1": "sales"},
                 "on_failure": "bye"},
        "sales": {"type": "transfer", "to": "+31201234567", "on_failure": "by"},
        "old-menu": {"type": "hangup"},
        "bye": BYE,
    },
}  # fmt: skip


def test_the_json_example_of_the_docs_is_what_validate_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = (ROOT / "docs/graphs.md").read_text()
    section = docs[docs.index("### Checking graphs: `ivr validate`") :]
    (example,) = re.findall(r"```json\n(.*?)```", section, flags=re.S)[:1]
    write(tmp_path / "graphs", "front-desk.json", FRONT_DESK)
    monkeypatch.chdir(tmp_path)
    status, out, _ = run("graphs/", fmt="json")
    assert status == 1
    assert json.loads(out) == json.loads(example)


def test_the_help_offers_both_formats() -> None:
    result = ivr("validate", "--help")
    assert "--format {text,json}" in result.stdout
