"""Loading graph files: JSON in, a checked :class:`~service.core.graph.Graph` out.

A graph file is checked in layers and every problem is reported at once as
``FILE: /json/path: message``:

1. the JSON Schema (``service.graphs.schema``: field names, types, ranges);
2. the rules the schema cannot express (every exit names a node, ``start`` exists);
3. the format's rules (``service.graphs.validator``): reachability, dead ends, loops,
   variables, settings that cannot work.

A directory also holds ``queues.json`` (``service.graphs.queues``), the queues its
graphs' ``queue`` and ``callback`` nodes name: :func:`load_directory` loads it with the
graphs, checks every graph against it (``service.graphs.validator.check_queues``) and
attaches the queues to every graph (``Graph.queues``) and to the set.

Only a graph without errors is loaded. A graph's ``version`` is the hash of its
canonical JSON content, so that the same content always has the same version
whatever its formatting (the queues attached to it are not its content).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from service.core.graph import (
    RUNNABLE_TYPES,
    BranchNode,
    CallbackNode,
    Case,
    CollectNode,
    Graph,
    GraphSet,
    HangupNode,
    HoursNode,
    HttpNode,
    MenuNode,
    Node,
    Problem,
    Prompt,
    QueueNode,
    SayNode,
    SetNode,
    TransferNode,
    VoicemailNode,
    pointer,
)
from service.core.queues import Queue
from service.graphs import schema, validator
from service.graphs.queues import QUEUES_FILE, load_queues
from service.graphs.schema import QUEUES_SCHEMA_FILE, SCHEMA_FILE, GraphError, read_json

__all__ = ["QUEUES_FILE", "QUEUES_SCHEMA_FILE", "SCHEMA_FILE", "GraphError", "graph_files",
           "load_directory", "load_file", "parse", "version_of"]  # fmt: skip

# Files of a graph directory that are not graphs.
NOT_GRAPHS = frozenset({SCHEMA_FILE, QUEUES_FILE, QUEUES_SCHEMA_FILE})


def version_of(document: Mapping[str, Any]) -> str:
    """The hash of a graph's canonical content (key order and spacing do not count)."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _prompt(raw: Mapping[str, Any] | None) -> Prompt | None:
    if not raw or not ("say" in raw or "play" in raw):
        return None
    return Prompt(
        say=raw.get("say"),
        play=tuple(raw.get("play", ())),
        locale=raw.get("locale"),
        voice=raw.get("voice"),
    )


EXIT_FIELDS = ("next", "on_failure", "open", "closed", "default", "on_timeout", "on_no_agents",
               "on_callback", "on_error")  # fmt: skip


def _exits(raw: Mapping[str, Any]) -> dict[str, str]:
    """Exits in the order the file lists them."""
    found: dict[str, str] = {}
    for name, value in raw.items():
        if name in EXIT_FIELDS:
            found[name] = value
        elif name == "options":
            found.update({f"options/{digit}": target for digit, target in value.items()})
        elif name == "cases":
            found.update({f"cases/{i}/next": case["next"] for i, case in enumerate(value)})
    return found


def _node(node_id: str, raw: Mapping[str, Any]) -> Node:
    kind = raw["type"]
    common: dict[str, Any] = {"id": node_id, "prompt": _prompt(raw),
                              "exits": _exits(raw)}  # fmt: skip
    retry: dict[str, Any] = {
        "invalid": _prompt(raw.get("invalid")),
        "no_input": _prompt(raw.get("no_input")),
    }
    if kind == "say":
        return SayNode(**common, next=raw["next"])
    if kind == "menu":
        return MenuNode(
            **common,
            **retry,
            options=dict(raw["options"]),
            timeout_s=raw.get("timeout_s", 5),
            max_attempts=raw.get("max_attempts", 3),
            on_failure=raw["on_failure"],
        )
    if kind == "collect":
        return CollectNode(
            **common,
            **retry,
            var=raw["var"],
            min_digits=raw.get("min_digits", 1),
            max_digits=raw["max_digits"],
            end_key=raw.get("end_key", "#"),
            timeout_s=raw.get("timeout_s", 5),
            pattern=raw.get("pattern"),
            max_attempts=raw.get("max_attempts", 3),
            next=raw["next"],
            on_failure=raw["on_failure"],
        )
    if kind == "branch":
        cases = tuple(
            Case(var=c["var"], op=c["op"], value=c.get("value"), next=c["next"])
            for c in raw["cases"]
        )
        return BranchNode(**common, cases=cases, default=raw["default"])
    if kind == "set":
        return SetNode(**common, vars=dict(raw["vars"]), next=raw["next"])
    if kind == "hours":
        weekly = {day: tuple(ranges) for day, ranges in raw["weekly"].items()}
        return HoursNode(
            **common,
            timezone=raw["timezone"],
            weekly=weekly,
            holidays=tuple(raw.get("holidays", ())),
            open=raw["open"],
            closed=raw["closed"],
        )
    if kind == "transfer":
        return TransferNode(
            **common,
            to=raw["to"],
            from_=raw.get("from"),
            ring_timeout_s=raw.get("ring_timeout_s", 30),
            record=raw.get("record", False),
            on_failure=raw["on_failure"],
        )
    if kind == "queue":
        return QueueNode(
            **common,
            queue=raw["queue"],
            priority=raw.get("priority", 0),
            record=raw.get("record", False),
            on_timeout=raw["on_timeout"],
            on_no_agents=raw["on_no_agents"],
            on_callback=raw.get("on_callback"),
        )
    if kind == "voicemail":
        return VoicemailNode(
            **common,
            max_length_s=raw.get("max_length_s", 120),
            end_key=raw.get("end_key", "#"),
            beep=raw.get("beep", True),
            transcribe=raw.get("transcribe", False),
            next=raw["next"],
        )
    if kind == "callback":
        return CallbackNode(**common, queue=raw["queue"], next=raw["next"])
    if kind == "http":
        return HttpNode(
            **common,
            url=raw["url"],
            method=raw.get("method", "GET"),
            headers=dict(raw.get("headers", {})),
            body=raw.get("body"),
            timeout_ms=raw.get("timeout_ms", 2000),
            save=dict(raw.get("save", {})),
            next=raw["next"],
            on_error=raw["on_error"],
        )
    if kind == "hangup":
        return HangupNode(**common)
    raise AssertionError(f"node type {kind!r} passed the schema but is not modelled")


def parse(document: Any, file: str = "<graph>") -> Graph:
    """A :class:`Graph` from a decoded JSON document, or :class:`GraphError`."""
    problems = schema.problems(file, document)
    if problems:
        raise GraphError(problems)
    nodes = {node_id: _node(node_id, raw) for node_id, raw in document["nodes"].items()}
    if document["start"] not in nodes:
        problems.append(
            Problem(file, "/start", f"start names {document['start']!r}, which is not a node")
        )
    for node in nodes.values():
        for where, target in node.exits.items():
            if target not in nodes:
                problems.append(
                    Problem(
                        file,
                        pointer(["nodes", node.id, *where.split("/")]),
                        f"exit names {target!r}, which is not a node",
                    )
                )
    if problems:
        raise GraphError(problems)
    return Graph(
        id=document["id"],
        start=document["start"],
        nodes=nodes,
        version=version_of(document),
        numbers=tuple(document.get("numbers", ())),
        params=tuple(document.get("params", ())),
        description=document.get("description", ""),
        locale=document.get("locale"),
        voice=document.get("voice"),
        source=file,
        document=copy.deepcopy(document),  # the graph owns its content: its version hashes it
    )


def runnable_problems(graph: Graph) -> list[Problem]:
    """Nodes this version of the service knows but cannot run yet."""
    return [
        Problem(
            graph.source,
            pointer(["nodes", node.id, "type"]),
            f"node type {node.type!r} is not supported by this version of the service "
            f"(it runs: {', '.join(sorted(RUNNABLE_TYPES))})",
        )
        for node in graph.nodes.values()
        if node.type not in RUNNABLE_TYPES
    ]


def load_file(path: Path) -> Graph:
    """Read, decode and check one graph file: :class:`GraphError` on any error."""
    graph = parse(read_json(path), str(path))
    found = validator.check(graph)
    errors = [p for p in found if p.severity == "error"]
    if errors:
        raise GraphError(found)
    return replace(graph, warnings=tuple(found))


def graph_files(directory: Path) -> list[Path]:
    """The graph files of a directory: every ``*.json`` but the schemas and
    ``queues.json``."""
    return sorted(p for p in directory.glob("*.json") if p.name not in NOT_GRAPHS)


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
    """Every graph of ``directory``; :class:`GraphError` with all problems of all files.

    ``runnable`` (what the service needs) also refuses node types it cannot run yet.
    The directory's ``queues.json``, when there is one, is loaded too: its queues are
    the set's and every graph's, and its problems are reported with the graphs'.
    """
    problems: list[Problem] = []
    graphs: dict[str, Graph] = {}
    owners: dict[str, str] = {}
    files = graph_files(directory) if directory.is_dir() else []
    if not files:
        raise GraphError([Problem(str(directory), "/", "no graph files (*.json) found")])
    queues: dict[str, Queue] | None = None
    queues_ok = True
    try:
        queues = directory_queues(directory)
    except GraphError as exc:
        problems.extend(exc.problems)
        queues_ok = False  # its own problems say why; the graphs are not checked against it
    for path in files:
        try:
            graph = load_file(path)
            if queues_ok:
                graph = with_queues(graph, queues)
        except GraphError as exc:
            problems.extend(exc.problems)
            continue
        if runnable:
            problems.extend(runnable_problems(graph))
        if graph.id in graphs:
            problems.append(
                Problem(
                    str(path), "/id", f"id {graph.id!r} is also used by {graphs[graph.id].source}"
                )
            )
            continue
        for index, number in enumerate(graph.numbers):
            if number in owners:
                problems.append(
                    Problem(
                        str(path),
                        f"/numbers/{index}",
                        f"{number} is also answered by {owners[number]}",
                    )
                )
            owners[number] = graph.source
        graphs[graph.id] = graph
    if default is not None and default not in graphs and not problems:
        problems.append(
            Problem(
                str(directory), "/", f"IVR_DEFAULT_GRAPH names {default!r}, which is not loaded"
            )
        )
    if problems:
        raise GraphError(problems)
    return GraphSet(graphs=graphs, default=default, queues=queues or {})
