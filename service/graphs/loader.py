"""Loading graph files: JSON in, a checked :class:`~service.core.graph.Graph` out.

Every check is ``service.graphs.check``'s, the one ``ivr validate`` runs: every problem
of every file at once, as ``FILE: /json/path: message``:

1. the JSON Schema (``service.graphs.schema``: field names, types, ranges);
2. the rules the schema cannot express (every exit names a node, ``start`` exists);
3. the format's rules (``service.graphs.validator``): reachability, dead ends, loops,
   variables, settings that cannot work.

A directory also holds ``queues.json`` (``service.graphs.queues``), the queues its
graphs' ``queue`` and ``callback`` nodes name: :func:`load_directory` loads it with the
graphs, checks every graph against it (``service.graphs.validator.check_queues``) and
attaches the queues to every graph (``Graph.queues``) and to the set; the graphs of a
directory are also checked against each other (ids and numbers used twice).

Only a graph without errors is loaded. A graph's ``version`` is the hash of its
canonical JSON content (``service.graphs.build.version_of``), so that the same content
always has the same version whatever its formatting (the queues attached to it are not
its content).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from service.core.graph import Graph, GraphSet, Problem
from service.core.queues import Queue
from service.graphs import check, validator
from service.graphs.build import version_of
from service.graphs.check import NOT_GRAPHS, graph_files, runnable_problems
from service.graphs.queues import QUEUES_FILE, load_queues
from service.graphs.schema import QUEUES_SCHEMA_FILE, SCHEMA_FILE, GraphError

__all__ = ["NOT_GRAPHS", "QUEUES_FILE", "QUEUES_SCHEMA_FILE", "SCHEMA_FILE", "GraphError",
           "graph_files", "load_directory", "load_file", "parse", "runnable_problems",
           "version_of"]  # fmt: skip


def parse(document: Any, file: str = "<graph>") -> Graph:
    """A :class:`Graph` from a decoded JSON document, or :class:`GraphError` with every
    problem of its structure (schema, ``start``, exits; not the format's rules)."""
    reading = check.read_graph(document, file)
    if reading.graph is None:
        raise GraphError(reading.structure)
    return reading.graph


def load_file(path: Path) -> Graph:
    """Read, decode and check one graph file: :class:`GraphError` with every problem
    (warnings too) on any error; else the graph, with its warnings."""
    report = check.check_file(path)
    if report.graph is None:
        raise GraphError(list(report.problems))
    return report.graph


def directory_queues(directory: Path) -> dict[str, Queue] | None:
    """The queues of a graph directory's ``queues.json``; ``None`` when it has none.
    :class:`GraphError` when the file is there but cannot be loaded."""
    path = directory / QUEUES_FILE
    return load_queues(path) if path.exists() else None


def with_queues(graph: Graph, queues: Mapping[str, Queue] | None) -> Graph:
    """``graph`` checked against the queues of its directory (``None``: there is no
    ``queues.json``) and carrying them: :class:`GraphError` when a node names a queue
    that cannot work; warnings are added to the graph's."""
    found = validator.check_queues(graph, queues)
    if any(p.severity == "error" for p in found):
        raise GraphError(found)
    warnings = sorted([*graph.warnings, *found], key=lambda p: (p.path, p.message))
    return replace(graph, queues=dict(queues or {}), warnings=tuple(warnings))


def load_directory(
    directory: Path, default: str | None = None, *, runnable: bool = True
) -> GraphSet:
    """Every graph of ``directory``; :class:`GraphError` with every problem of every
    file (warnings too) when any is an error: exactly what ``ivr validate DIRECTORY``
    reports (``service.graphs.check.check_paths``).

    ``runnable`` (what the service needs) also refuses node types it cannot run yet.
    The directory's ``queues.json``, when there is one, is loaded too: its queues are
    the set's and every graph's, and its problems are reported with the graphs'.
    """
    if not directory.is_dir():
        raise GraphError([Problem(str(directory), "/", "no graph files (*.json) found")])
    report = check.check_paths([directory], default, runnable=runnable)
    if report.graphs is None:
        raise GraphError(list(report.problems))
    return report.graphs
