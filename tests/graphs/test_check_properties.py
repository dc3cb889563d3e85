"""Broken graph folders made from the shipped ones, property-based: ``ivr validate``
refuses every folder the service refuses, listing exactly the loader's problems, and
independent mistakes each show their own problems in the one run that has them all.

The mistakes (:data:`MUTATIONS`): drop a node, rename an exit's target, copy a graph
(its id used twice), answer another graph's number, break a field's type, write a field
against its pattern, remove a queue from queues.json, break a queue's setting. A field
broken here is never an exit nor what a node sets (``var``, ``vars``, ``save``): those
make parts of the graph unknown, and a check that reports only what holds however they
are read stays silent on their consequences by design (tests/graphs/test_check.py)."""

from __future__ import annotations

import copy
import io
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.cli import validate
from service.core.graph import Problem
from service.graphs.build import EXIT_FIELDS
from service.graphs.check import check_paths, graph_files
from service.graphs.loader import GraphError, load_directory
from service.graphs.queues import QUEUES_FILE
from tests.paths import SHIPPED_GRAPHS

Folder = dict[str, Any]  # file name -> JSON document

SHIPPED: Folder = {
    path.name: json.loads(path.read_text())
    for path in [*graph_files(SHIPPED_GRAPHS), SHIPPED_GRAPHS / QUEUES_FILE]
}
NOT_BROKEN = {*EXIT_FIELDS, "options", "cases", "type", "var", "vars", "save"}
MISSING = object()


@dataclass(frozen=True)
class Mutation:
    """One mistake: ``at`` is the JSON path it edits in ``file`` (``value`` MISSING:
    removed); ``kind`` "copy" copies ``file`` to a new file instead."""

    kind: str
    file: str
    at: tuple[str | int, ...] = ()
    value: Any = MISSING

    def apply(self, folder: Folder) -> None:
        if self.kind == "copy":
            folder[f"zz-copy-of-{self.file}"] = copy.deepcopy(folder[self.file])
            return
        parent = folder[self.file]
        for part in self.at[:-1]:
            if not _holds(parent, part):
                return  # an earlier mistake removed or replaced it
            parent = parent[part]
        last = self.at[-1]
        if self.kind == "append":
            if isinstance(parent, dict):
                parent[last] = [*parent.get(last, []), self.value]
        elif self.value is MISSING:
            if _holds(parent, last):
                del parent[last]
        elif isinstance(parent, dict) or _holds(parent, last):
            parent[last] = self.value

    def edits(self) -> set[tuple[str, str]]:
        if self.kind == "copy":
            return {(f"zz-copy-of-{self.file}", "")}
        if self.kind == "remove":  # the problems it causes list the queues left
            return {place(self.file, self.at), (self.file, "*")}
        return {place(self.file, self.at)}


def _holds(container: Any, part: str | int) -> bool:
    if isinstance(container, dict):
        return part in container
    return isinstance(container, list) and isinstance(part, int) and 0 <= part < len(container)


def place(file: str, parts: tuple[str | int, ...]) -> tuple[str, str]:
    """Where a path is, as mutations are kept apart: a node, a queue, a top-level field."""
    deep = (file == QUEUES_FILE and parts[:1] == ("queues",)) or parts[:1] == ("nodes",)
    return (file, str(parts[1] if deep and len(parts) > 1 else parts[0] if parts else ""))


def _exits(node: dict[str, Any]) -> Iterator[tuple[str | int, ...]]:
    for name, value in node.items():
        if name in EXIT_FIELDS:
            yield (name,)
        elif name == "options":
            yield from (("options", key) for key in value)
        elif name == "cases":
            yield from (("cases", i, "next") for i in range(len(value)))


def _mutations() -> list[Mutation]:
    found: list[Mutation] = []
    graphs = [name for name in SHIPPED if name != QUEUES_FILE]
    for file in graphs:
        document = SHIPPED[file]
        found.append(Mutation("copy", file))
        for node_id, node in document["nodes"].items():
            here = ("nodes", node_id)
            if node_id != document["start"]:
                found.append(Mutation("drop", file, here))
            found += [Mutation("rename", file, (*here, *e), f"no-{node_id}") for e in _exits(node)]
            for name, value in node.items():
                if name not in NOT_BROKEN:
                    wrong = "wrong" if isinstance(value, bool | int) else 12345
                    found.append(Mutation("type", file, (*here, name), wrong))
    support = "support-line.json"
    found += [
        Mutation("pattern", support, ("numbers", 0), "0612345"),
        Mutation("pattern", support, ("nodes", "opening-hours", "weekly", "mon", 0), "9:00-17:30"),
        Mutation("pattern", support, ("nodes", "opening-hours", "holidays", 0), "25-12-2026"),
        Mutation("pattern", support, ("nodes", "account-number", "pattern"), "[0-9"),
        Mutation("pattern", support, ("nodes", "business-billing", "queue"), "Billing Team"),
        Mutation("pattern", "appointment-reminder.json", ("nodes", "reschedule", "to"), "020123"),
        Mutation("append", "appointment-reminder.json", ("numbers",), "+31970102030"),
    ]
    for name in SHIPPED[QUEUES_FILE]["queues"]:
        found.append(Mutation("remove", QUEUES_FILE, ("queues", name)))
        found.append(Mutation("setting", QUEUES_FILE, ("queues", name, "ring_timeout_s"), 500))
    return found


MUTATIONS = _mutations()


def built(mutations: list[Mutation]) -> Folder:
    folder = copy.deepcopy(SHIPPED)
    for mutation in mutations:
        mutation.apply(folder)
    return folder


def written(folder: Folder, directory: Path) -> Path:
    for old in directory.glob("*.json"):
        old.unlink()
    for name, document in folder.items():
        (directory / name).write_text(json.dumps(document))
    return directory


def loaded(directory: Path) -> list[Problem] | None:
    """The loader's problems when it refuses the folder, else None."""
    try:
        load_directory(directory)
    except GraphError as exc:
        return exc.problems
    return None


def located(problem: Problem) -> tuple[str, str]:
    parts = tuple(p.replace("~1", "/").replace("~0", "~") for p in problem.path[1:].split("/"))
    return place(Path(problem.file).name, parts if problem.path != "/" else ())


PROPERTIES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
some_mutations = st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=4, unique=True)


def test_the_shipped_folder_has_no_problems_and_every_mutation_one() -> None:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        assert check_paths([written(SHIPPED, directory)]).problems == ()
        for mutation in MUTATIONS:
            report = check_paths([written(built([mutation]), directory)])
            assert report.problems, mutation


@PROPERTIES
@given(some_mutations)
def test_validate_refuses_what_the_loader_refuses_with_exactly_its_problems(
    mutations: list[Mutation],
) -> None:
    with tempfile.TemporaryDirectory() as name:
        directory = written(built(mutations), Path(name))
        refused = loaded(directory)
        out, err = io.StringIO(), io.StringIO()
        status = validate.run([directory], "json", out=out, err=err)
        document = json.loads(out.getvalue())
        if refused is None:
            assert status == 0
            assert document["errors"] == 0
            return
        assert status == 1
        assert document["problems"] == [
            {"file": p.file, "path": p.path, "severity": p.severity, "message": p.message}
            for p in refused
        ]
        out, err = io.StringIO(), io.StringIO()
        assert validate.run([directory], "text", out=out, err=err) == 1
        assert err.getvalue().splitlines()[:-1] == [str(p) for p in refused]


@PROPERTIES
@given(some_mutations)
def test_independent_mistakes_each_show_their_problems_in_one_run(
    mutations: list[Mutation],
) -> None:
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        # Each mistake alone, and where it shows: what it edits and where its problems are.
        alone: list[tuple[Mutation, set[Problem], set[tuple[str, str]]]] = []
        for mutation in mutations:
            found = set(check_paths([written(built([mutation]), directory)]).problems)
            alone.append((mutation, found, mutation.edits() | {located(p) for p in found}))
        # The mistakes that stay apart from the ones kept before them.
        kept: list[tuple[Mutation, set[Problem]]] = []
        taken: set[tuple[str, str]] = set()
        for mutation, found, footprint in alone:
            if not footprint & taken and not {(f, "*") for f, _ in footprint} & taken:
                kept.append((mutation, found))
                taken |= footprint
        combined = set(check_paths([written(built([m for m, _ in kept]), directory)]).problems)
        for mutation, found in kept:
            assert found, mutation
            assert found <= combined, (mutation, found - combined)
