"""``ivr validate FILE|DIR...``: graph files, graph directories and ``queues.json`` files
checked as the service loads them (``service.graphs.check.check_paths``, the function
behind ``service.graphs.loader.load_directory``), every problem of every file in one run.

Text (the default), for people::

    ivr_graphs/queues.json: ok (2 queues: billing, support)          (stdout)
    bad.json: /nodes/menu/options/1: exit names 'x', which is not a node   (stderr)
    bad.json: /numbers: warning: answers no number: ...                    (stderr)
    1 error, 1 warning in 2 files                                          (stderr)

one ``FILE: /json/path: message`` line per problem on stderr (``warning:`` before a
warning's message), one ok line per file without errors on stdout, and a last summary
line on stderr; coloured on a terminal (``service.runtime.style``, ``NO_COLOR`` respected).

``--format json``, for CI and editors: one JSON document on stdout (:func:`document`).

Exit status: 1 when any problem is an error, else 0 (warnings only: 0).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from service.core.graph import Problem
from service.graphs.check import FileReport, Report, check_paths
from service.runtime.style import Style

FORMATS = ("text", "json")
SKIPPED = "a JSON Schema, not a graph"


def run(
    paths: Sequence[Path],
    fmt: str = "text",
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Check ``paths`` and print the report in ``fmt``; the exit status."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    report = check_paths(list(paths))
    if fmt == "json":
        print(json.dumps(document(report), indent=2, ensure_ascii=False), file=out)
    else:
        text(report, out, err)
    return 1 if report.errors else 0


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary(report: Report) -> str:
    """``2 errors, 1 warning in 3 files``; ``no problems in 3 files (1 skipped)``."""
    counts = [
        _plural(len(found), word)
        for found, word in ((report.errors, "error"), (report.warnings, "warning"))
        if found
    ]
    line = f"{', '.join(counts) or 'no problems'} in {_plural(len(report.files), 'file')}"
    return f"{line} ({len(report.skipped)} skipped)" if report.skipped else line


def ok_line(file: FileReport) -> str:
    """What a file without errors holds: a graph's id, nodes and version; a queues
    file's queues."""
    if file.graph is not None:
        graph = file.graph
        return f"{file.path}: ok (id {graph.id}, {len(graph.nodes)} nodes, version {graph.version})"
    queues = sorted(file.queues or {})
    names = ", ".join(queues)
    listed = {0: "no queues", 1: f"1 queue: {names}"}.get(len(queues))
    return f"{file.path}: ok ({listed or f'{len(queues)} queues: {names}'})"


def _problem_line(style: Style, problem: Problem) -> str:
    return style.error(str(problem)) if problem.severity == "error" else style.warning(str(problem))


def text(report: Report, out: TextIO, err: TextIO) -> None:
    """The report for people: problems (stderr), ok lines (stdout), a summary (stderr)."""
    errors, oks = Style(err), Style(out)
    for path in report.skipped:
        print(errors.dim(f"{path}: skipped ({SKIPPED})"), file=err)
    listed = 0
    for file in report.files:
        for problem in file.problems:
            print(_problem_line(errors, problem), file=err)
        listed += len(file.problems)
        if file.ok and file.named:
            err.flush()
            print(oks.ok(ok_line(file)), file=out)
            out.flush()
    for problem in report.problems[listed:]:  # of no one file
        print(_problem_line(errors, problem), file=err)
    line = summary(report)
    kind = "error" if report.errors else "warning" if report.warnings else "ok"
    print(errors.paint(kind, line), file=err)


def _problem(problem: Problem) -> dict[str, str]:
    return {
        "file": problem.file,
        "path": problem.path,
        "severity": problem.severity,
        "message": problem.message,
    }


def _file(file: FileReport) -> dict[str, Any]:
    found: dict[str, Any] = {
        "file": str(file.path),
        "kind": file.kind,
        "ok": file.ok,
        "errors": len(file.errors),
        "warnings": len(file.warnings),
    }
    if not file.named:
        found["named"] = False
    if file.kind == "graph":
        if file.graph_id is not None:
            found["id"] = file.graph_id
        if file.graph is not None:
            found["version"] = file.graph.version
            found["nodes"] = len(file.graph.nodes)
    elif file.queues is not None:
        found["queues"] = sorted(file.queues)
    return found


def document(report: Report) -> dict[str, Any]:
    """The report for machines (``--format json``)::

        {"ok": false, "errors": 1, "warnings": 0,
         "files": [{"file": "ivr_graphs/support-line.json", "kind": "graph", "ok": false,
                    "errors": 1, "warnings": 0, "id": "support-line"}, ...],
         "skipped": [{"file": "ivr_graphs/schema.json", "reason": "..."}],
         "problems": [{"file": "...", "path": "/nodes/menu/options/1",
                       "severity": "error", "message": "exit names 'x', which is not a node"}]}

    ``files``: every file checked, in order (a graph's ``version`` and ``nodes`` when it
    has no errors, its ``id`` when it can be read; a queues file's ``queues`` when it has
    no errors; ``"named": false`` for a queues.json checked because a graph named sits
    beside it). ``problems``: every problem, errors and warnings, file by file (those of
    no one file last: a directory without graphs). docs/graphs.md has an example.
    """
    return {
        "ok": report.ok,
        "errors": len(report.errors),
        "warnings": len(report.warnings),
        "files": [_file(file) for file in report.files],
        "skipped": [{"file": str(path), "reason": SKIPPED} for path in report.skipped],
        "problems": [_problem(problem) for problem in report.problems],
    }
