"""IVR graphs: the typed model of the format (IVR_GRAPHS.md), loading and checking.

A graph file is checked in two layers and every problem is reported at once as
``FILE: /json/path: message``:

1. the JSON Schema ``ivr_graphs/schema.json`` (field names, types, ranges);
2. the rules the schema cannot express (every exit names a node, ``start`` exists).

Only a graph without errors becomes a :class:`Graph`. A graph's ``version`` is the
hash of its canonical JSON content, so that the same content always has the same
version whatever its formatting.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, cast

from jsonschema import Draft202012Validator, FormatChecker, ValidationError

SCHEMA_FILE = "schema.json"
RUNNABLE_TYPES = frozenset(
    {"say", "menu", "collect", "branch", "set", "hours", "transfer", "voicemail", "http", "hangup"}
)


@dataclass(frozen=True)
class Problem:
    file: str
    path: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        label = "" if self.severity == "error" else f"{self.severity}: "
        return f"{self.file}: {self.path}: {label}{self.message}"


class GraphError(Exception):
    """A graph that cannot be loaded; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True)
class Prompt:
    say: str | None = None
    play: tuple[str, ...] = ()
    locale: str | None = None
    voice: str | None = None


@dataclass(frozen=True)
class Node:
    """A node of a graph. ``exits`` maps each exit's JSON path below the node
    (``next``, ``options/1``, ``cases/0/next``) to the node it names."""

    id: str
    type: str
    prompt: Prompt | None = None
    exits: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SayNode(Node):
    next: str = ""


@dataclass(frozen=True)
class MenuNode(Node):
    options: Mapping[str, str] = field(default_factory=dict)
    timeout_s: int = 5
    max_attempts: int = 3
    invalid: Prompt | None = None
    no_input: Prompt | None = None
    on_failure: str = ""


@dataclass(frozen=True)
class CollectNode(Node):
    var: str = ""
    min_digits: int = 1
    max_digits: int = 1
    end_key: str = "#"
    timeout_s: int = 5
    pattern: str | None = None
    max_attempts: int = 3
    invalid: Prompt | None = None
    no_input: Prompt | None = None
    next: str = ""
    on_failure: str = ""


@dataclass(frozen=True)
class Case:
    var: str
    op: str
    value: Any
    next: str


@dataclass(frozen=True)
class BranchNode(Node):
    cases: tuple[Case, ...] = ()
    default: str = ""


@dataclass(frozen=True)
class SetNode(Node):
    vars: Mapping[str, str] = field(default_factory=dict)
    next: str = ""


@dataclass(frozen=True)
class HoursNode(Node):
    timezone: str = "UTC"
    weekly: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    holidays: tuple[str, ...] = ()
    open: str = ""
    closed: str = ""


@dataclass(frozen=True)
class TransferNode(Node):
    to: str = ""
    from_: str | None = None
    ring_timeout_s: int = 30
    record: bool = False
    on_failure: str = ""


@dataclass(frozen=True)
class QueueNode(Node):
    queue: str = ""
    hold: Prompt | None = None
    max_wait_s: int | None = None
    announce_position: bool = False
    on_timeout: str = ""
    on_no_agents: str = ""


@dataclass(frozen=True)
class VoicemailNode(Node):
    max_length_s: int = 120
    end_key: str = "#"
    beep: bool = True
    transcribe: bool = False
    next: str = ""


@dataclass(frozen=True)
class CallbackNode(Node):
    queue: str = ""
    next: str = ""


@dataclass(frozen=True)
class HttpNode(Node):
    url: str = ""
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    timeout_ms: int = 2000
    save: Mapping[str, str] = field(default_factory=dict)
    next: str = ""
    on_error: str = ""


@dataclass(frozen=True)
class HangupNode(Node):
    pass


# Nodes a path may end on (the call leaves the graph's hands there).
TERMINAL_TYPES = frozenset({"hangup", "transfer", "queue", "voicemail", "callback"})
# Nodes that wait for the caller: every loop must pass through one.
WAITING_TYPES = frozenset({"menu", "collect"})


@dataclass(frozen=True)
class Graph:
    id: str
    start: str
    nodes: Mapping[str, Node]
    version: str
    numbers: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    description: str = ""
    locale: str | None = None
    voice: str | None = None
    source: str = ""
    document: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    warnings: tuple[Problem, ...] = field(default=(), compare=False)


def exits(node: Node) -> Mapping[str, str]:
    """The node's exits as {JSON path below the node: target node id}."""
    return node.exits


def version_of(document: Mapping[str, Any]) -> str:
    """The hash of a graph's canonical content (key order and spacing do not count)."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@cache
def schema() -> dict[str, Any]:
    """The graph format's JSON Schema. The package carries a copy of
    ``ivr_graphs/schema.json`` (the file graphs reference); a test keeps them equal."""
    text = resources.files("service").joinpath("graph-schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _schema_validator() -> Draft202012Validator:
    return Draft202012Validator(schema(), format_checker=FormatChecker())


def _pointer(parts: Iterable[object]) -> str:
    escaped = [str(p).replace("~", "~0").replace("/", "~1") for p in parts]
    return "/" + "/".join(escaped)


def _message(error: ValidationError) -> str:
    parent = error.parent
    if (
        error.validator == "required"
        and parent is not None
        and parent.validator == "anyOf"
        and all(c.validator == "required" for c in parent.context or [])
    ):
        names = " or ".join(
            repr(cast(list[str], c.validator_value)[0]) for c in parent.context or []
        )
        return f"needs {names}"
    return error.message


def _schema_problems(file: str, document: Any) -> list[Problem]:
    found: list[Problem] = []
    for error in _schema_validator().iter_errors(document):
        # An error inside an if/then branch is reported on its deepest cause.
        leaves = [error]
        while leaves and any(e.context for e in leaves):
            leaves = [c for e in leaves for c in (e.context or [e])]
        for leaf in leaves:
            found.append(Problem(file, _pointer(leaf.absolute_path), _message(leaf)))
    unique = {(p.path, p.message): p for p in found}
    return sorted(unique.values(), key=lambda p: (p.path, p.message))


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
               "on_error")  # fmt: skip


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
    common: dict[str, Any] = {"id": node_id, "type": kind, "prompt": _prompt(raw),
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
            hold=_prompt(raw.get("hold")),
            max_wait_s=raw.get("max_wait_s"),
            announce_position=raw.get("announce_position", False),
            on_timeout=raw["on_timeout"],
            on_no_agents=raw["on_no_agents"],
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
    return HangupNode(**common)


def parse(document: Any, file: str = "<graph>") -> Graph:
    """A :class:`Graph` from a decoded JSON document, or :class:`GraphError`."""
    problems = _schema_problems(file, document)
    if problems:
        raise GraphError(problems)
    nodes = {node_id: _node(node_id, raw) for node_id, raw in document["nodes"].items()}
    if document["start"] not in nodes:
        problems.append(
            Problem(file, "/start", f"start names {document['start']!r}, which is not a node")
        )
    for node in nodes.values():
        for where, target in exits(node).items():
            if target not in nodes:
                problems.append(
                    Problem(
                        file,
                        _pointer(["nodes", node.id, *where.split("/")]),
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
            _pointer(["nodes", node.id, "type"]),
            f"node type {node.type!r} is not supported by this version of the service "
            f"(it runs: {', '.join(sorted(RUNNABLE_TYPES))})",
        )
        for node in graph.nodes.values()
        if node.type not in RUNNABLE_TYPES
    ]


def check(graph: Graph) -> list[Problem]:
    """Every rule of the format (``service.validator``): errors and warnings."""
    from service import validator

    return validator.check(graph)


def load_file(path: Path) -> Graph:
    """Read, decode and check one graph file: :class:`GraphError` on any error."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GraphError([Problem(file, "/", f"cannot read: {exc.strerror}")]) from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise GraphError(
            [Problem(file, "/", f"not valid JSON: {exc.msg} (line {exc.lineno}, col {exc.colno})")]
        ) from exc
    graph = parse(document, file)
    found = check(graph)
    errors = [p for p in found if p.severity == "error"]
    if errors:
        raise GraphError(found)
    return replace(graph, warnings=tuple(found))


def graph_files(directory: Path) -> list[Path]:
    """The graph files of a directory (every ``*.json`` but the schema)."""
    return sorted(p for p in directory.glob("*.json") if p.name != SCHEMA_FILE)


@dataclass(frozen=True)
class GraphSet:
    """The loaded graphs, and which graph answers which called number."""

    graphs: Mapping[str, Graph]
    default: str | None = None

    def for_number(self, called: str) -> Graph | None:
        for graph in self.graphs.values():
            if called in graph.numbers:
                return graph
        return self.graphs.get(self.default) if self.default else None


def load_directory(
    directory: Path, default: str | None = None, *, runnable: bool = True
) -> GraphSet:
    """Every graph of ``directory``; :class:`GraphError` with all problems of all files.

    ``runnable`` (what the service needs) also refuses node types it cannot run yet.
    """
    problems: list[Problem] = []
    graphs: dict[str, Graph] = {}
    owners: dict[str, str] = {}
    files = graph_files(directory) if directory.is_dir() else []
    if not files:
        raise GraphError([Problem(str(directory), "/", "no graph files (*.json) found")])
    for path in files:
        try:
            graph = load_file(path)
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
    return GraphSet(graphs=graphs, default=default)
