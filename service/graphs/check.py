"""One check of graph files, graph directories and ``queues.json``: what ``ivr validate``
reports and what the service loads (``service.graphs.loader.load_directory``) are this
one function, :func:`check_paths`, so that they never disagree.

Every problem of every file comes in one run, each a
:class:`~service.core.graph.Problem` at a JSON path, errors and warnings apart:

1. a file that cannot be read or decoded: why (nothing else can be said of it);
2. the JSON Schema (``service.graphs.schema``: fields, types, ranges, patterns);
3. ``start`` and every exit name a node;
4. the format's rules (``service.graphs.validator.check``) and the graph against the
   queues of its directory (``service.graphs.validator.check_queues``);
5. ``queues.json``: its schema and its rules (``service.graphs.queues.problems``);
6. across the files of a directory: an ``id`` or a number used twice; node types this
   version of the service cannot run (``runnable``); ``IVR_DEFAULT_GRAPH`` naming no graph.

The rules (3, 4) run on a graph that fails the schema too, so that one run shows it all.
What can be read of a broken graph is read (:func:`read_graph`): a node that fails the
schema keeps its type and its fields that passed (the fields that failed are left out,
required ones given a neutral value), a node of no known type stands for an unknown
node, and exits are read from whatever strings name nodes. The rules never report on
what failed the schema (the schema's problem is the one to fix), and a problem is
reported only if it holds however the unknown parts are read: the rules also run on a
hopeful reading, where an exit that cannot be read (missing, not a string, of a node of
unknown type) and an unknown ``start`` may lead to any node or end the call, an exit
naming no node may end the call (a node still to write; reachability stays as written),
and a node of unknown type or whose ``var``/``vars``/``save`` cannot be read may set any
variable; a problem the hopeful reading does not have is a consequence of the broken
parts and is left out. (A loop that never waits is made of readable nodes and exits: it
is real however the unknown parts are read, and is kept.)

The queues of ``queues.json`` are read the same way: a queue that fails the schema is a
queue of unknown settings; a node naming it is not checked against it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from service.core import templates
from service.core.graph import (
    RUNNABLE_TYPES,
    Amd,
    Graph,
    GraphSet,
    HangupNode,
    MenuNode,
    Node,
    Problem,
    Prompt,
    SayNode,
    SetNode,
    pointer,
)
from service.core.queues import Queue
from service.graphs import build, schema, validator
from service.graphs.build import EXIT_FIELDS, version_of
from service.graphs.queues import (
    QUEUES_FILE,
    queue_of_json,  # the one reading of a queue
)
from service.graphs.queues import problems as queue_rules
from service.graphs.schema import QUEUES_SCHEMA_FILE, SCHEMA_FILE, GraphError, read_json

__all__ = ["NOT_GRAPHS", "FileReport", "Report", "check_file", "check_paths", "graph_files",
           "read_graph", "runnable_problems"]  # fmt: skip

# Files of a graph directory that are not graphs; the schemas are skipped when named.
NOT_GRAPHS = frozenset({SCHEMA_FILE, QUEUES_FILE, QUEUES_SCHEMA_FILE})
SCHEMAS = frozenset({SCHEMA_FILE, QUEUES_SCHEMA_FILE})

Kind = Literal["graph", "queues"]

# The message of validator rule 3 (a loop that never waits): such a loop is made of
# readable nodes and exits only, so it is real however the unknown parts are read.
_LOOP = validator.LOOP_WITHOUT_WAITING
# The fields that set variables, by node type: unreadable, the node may set any.
_SETTING_FIELDS = {"collect": "var", "set": "vars", "http": "save"}


def graph_files(directory: Path) -> list[Path]:
    """The graph files of a directory: every ``*.json`` but the schemas and
    ``queues.json``."""
    return sorted(p for p in directory.glob("*.json") if p.name not in NOT_GRAPHS)


def runnable_problems(graph: Graph) -> list[Problem]:
    """Nodes this version of the service knows but cannot run yet."""
    return _unrunnable(graph.source, graph.nodes.values())


def _unrunnable(file: str, nodes: Iterable[Node]) -> list[Problem]:
    return [
        Problem(
            file,
            pointer(["nodes", node.id, "type"]),
            f"node type {node.type!r} is not supported by this version of the service "
            f"(it runs: {', '.join(sorted(RUNNABLE_TYPES))})",
        )
        for node in nodes
        if node.type not in RUNNABLE_TYPES
    ]


# -- reading a graph document, broken or not -------------------------------------------


@dataclass
class GraphReading:
    """What can be read of a graph document (:func:`read_graph`)."""

    file: str
    # The schema's problems, then start and exits naming no node (in file order).
    structure: list[Problem]
    # The graph, when the structure is sound (no problem above).
    graph: Graph | None = None
    # Its id and numbers (index, number), when readable: the cross-file checks use them.
    id: str | None = None
    numbers: list[tuple[int, str]] = field(default_factory=list)
    # The graph as written, for the rules: None when it has no readable nodes.
    plain: Graph | None = None
    # The hopeful reading (see the module's doc); None when nothing is unknown.
    hopeful: Graph | None = None
    # The nodes of ``plain`` that are not the file's (stand-ins and helpers), and those of
    # no known type.
    synthetic: set[str] = field(default_factory=set)
    unknown: set[str] = field(default_factory=set)
    # JSON pointers: the rules' problems at or below one of ``hidden``, or strictly
    # below one of ``below``, are not reported (the schema reported there).
    hidden: set[str] = field(default_factory=set)
    below: set[str] = field(default_factory=set)

    def hides(self, path: str) -> bool:
        parts = path.split("/")
        for end in range(len(parts), 1, -1):
            prefix = "/".join(parts[:end])
            if prefix in self.hidden or (end < len(parts) and prefix in self.below):
                return True
        return False

    def own_nodes(self) -> list[Node]:
        """The file's nodes of a known type, as read."""
        if self.plain is None:
            return []
        skip = self.synthetic | self.unknown
        return [node for node_id, node in self.plain.nodes.items() if node_id not in skip]


def _parts(path: str) -> tuple[str, ...]:
    """The unescaped parts of a JSON pointer (``/`` is none)."""
    if path == "/":
        return ()
    return tuple(p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/"))


def _under(found: Iterable[tuple[str, ...]], parts: tuple[str, ...]) -> bool:
    """Whether a problem of ``found`` is at or below ``parts``."""
    return any(p[: len(parts)] == parts for p in found)


def _strings(value: Any) -> Iterator[str]:
    """Every string value inside ``value`` (not the keys)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _variable_names(value: Any) -> Iterator[str]:
    """Every name anywhere in ``value`` (keys too) that may be a variable's."""
    texts: list[str] = []
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, Mapping):
            texts += [key for key in item if isinstance(key, str)]
            stack += list(item.values())
        elif isinstance(item, list):
            stack += item
    for text in texts:
        if validator.VAR_NAME.fullmatch(text):
            yield text
        for name in [text, *templates.names(text)]:
            var = validator.template_variable(name)
            if var is not None:
                yield var


def _fresh(taken: set[str], base: str) -> str:
    """A node id not in ``taken`` (the file's ids can be any text)."""
    candidate = f"\x00{base}"
    while candidate in taken:
        candidate += "\x00"
    taken.add(candidate)
    return candidate


def _neutral(definition: Mapping[str, Any], hopeful: bool) -> Any:
    """A value of the type of a schema property, for a required field that is missing
    or failed the schema. The two readings use different texts, so that a message
    quoting one is not confirmed by the other."""
    if "$ref" in definition:
        definition = schema.schema()["$defs"][str(definition["$ref"]).rsplit("/", 1)[-1]]
    kind = definition.get("type")
    if kind == "object":
        return {}
    if kind == "array":
        return []
    if kind == "integer":
        return definition.get("maximum", definition.get("minimum", 0))
    return "\x00unknown" if hopeful else ""


@dataclass
class _Exit:
    """An exit as the file writes it: its name in ``Node.exits``, its JSON path below
    the node and its value (a node id when it is a string)."""

    name: str
    parts: tuple[str, ...]
    value: Any


def _raw_exits(raw: Mapping[str, Any], allowed: Iterable[str] | None) -> tuple[list[_Exit], bool]:
    """The exits of a node's JSON, read tolerantly, and whether some could not be read
    (``options`` that is not an object, ``cases`` that is not a list)."""
    keep = None if allowed is None else set(allowed)
    found: list[_Exit] = []
    unreadable = False
    for name, value in raw.items():
        if keep is not None and name not in keep:
            continue
        if name in EXIT_FIELDS:
            found.append(_Exit(name, (name,), value))
        elif name == "options":
            if isinstance(value, Mapping):
                found += [_Exit(f"options/{k}", ("options", str(k)), v) for k, v in value.items()]
            else:
                unreadable = True
        elif name == "cases":
            if isinstance(value, list):
                for i, case in enumerate(value):
                    target = case.get("next") if isinstance(case, Mapping) else None
                    found.append(_Exit(f"cases/{i}/next", ("cases", str(i), "next"), target))
            else:
                unreadable = True
    return found, unreadable


def read_graph(document: Any, file: str) -> GraphReading:
    """Everything that can be read of a decoded graph document: its structural problems
    (schema, start, exits), the graph when they are none, and the readings the rules
    run on (see the module's doc)."""
    found = schema.problems(file, document)
    reading = GraphReading(file, structure=list(found))
    if not isinstance(document, Mapping):
        return reading
    by_node: dict[str, list[tuple[str, ...]]] = {}
    top_level: dict[str, list[tuple[str, ...]]] = {}
    for problem in found:
        parts = _parts(problem.path)
        if len(parts) >= 2 and parts[0] == "nodes":
            by_node.setdefault(parts[1], []).append(parts[2:])
        elif parts:
            top_level.setdefault(parts[0], []).append(parts[1:])
    graph_id = document.get("id")
    reading.id = graph_id if isinstance(graph_id, str) else None
    numbers = document.get("numbers")
    if isinstance(numbers, list):
        reading.numbers = [
            (i, number)
            for i, number in enumerate(numbers)
            if isinstance(number, str) and not _under(top_level.get("numbers", []), (str(i),))
        ]
    nodes = document.get("nodes")
    if not isinstance(nodes, Mapping):
        return reading
    if not found:
        graph = _graph(document, file)
        targets = [t for node in graph.nodes.values() for t in node.exits.values()]
        if graph.amd is not None and graph.amd.on_machine is not None:
            targets.append(graph.amd.on_machine)
        if all(t in graph.nodes for t in [graph.start, *targets]):
            reading.graph = reading.plain = graph
            return reading
    # Something is missing or broken: what can be read, and the exits naming no node.
    _read_broken(reading, document, nodes, by_node, top_level)
    return reading


def _graph(document: Mapping[str, Any], file: str) -> Graph:
    """The graph of a document the schema accepts."""
    return Graph(
        id=document["id"],
        start=document["start"],
        nodes={node_id: build.node(node_id, raw) for node_id, raw in document["nodes"].items()},
        version=version_of(document),
        numbers=tuple(document.get("numbers", ())),
        params=tuple(document.get("params", ())),
        description=document.get("description", ""),
        locale=document.get("locale"),
        voice=document.get("voice"),
        amd=build.amd(document.get("amd")),
        tags=tuple(document.get("tags", ())),
        source=file,
        document=copy.deepcopy(dict(document)),  # the graph owns its content: its version hashes it
    )


class _Hopeful:
    """Builds the hopeful reading's helper nodes: ``hub`` (a menu, so that it closes no
    loop that never waits) leads to every node and to ``end`` (a hangup): where an exit
    that cannot be read may lead. An exit naming no node may only end the call."""

    def __init__(self, taken: set[str], variables: list[str]) -> None:
        self.taken = taken
        self.variables = variables  # what a node that may set any variable sets
        self.hub = _fresh(taken, "hub")
        self.end = _fresh(taken, "end")
        self.nodes: dict[str, Node] = {}

    def helper(self, node: Node) -> str:
        self.nodes[node.id] = node
        return node.id

    def setting_all(self, then: str) -> str:
        """A node that sets every variable, then goes to ``then``."""
        relay = _fresh(self.taken, "relay")
        every = dict.fromkeys(self.variables, "")
        return self.helper(SetNode(id=relay, vars=every, next=then, exits={"next": then}))

    def fan(self, targets: Iterable[str]) -> str:
        """A node that may go to each of ``targets``, or end the call."""
        fan = _fresh(self.taken, "fan")
        leads = {f"any/{i}": target for i, target in enumerate([*targets, self.end])}
        return self.helper(MenuNode(id=fan, options={}, on_failure=self.end, exits=leads))

    def finish(self, names: Iterable[str]) -> dict[str, Node]:
        leads = {f"any/{i}": target for i, target in enumerate([*names, self.end])}
        self.nodes[self.hub] = MenuNode(id=self.hub, options={}, on_failure=self.end, exits=leads)
        self.nodes[self.end] = HangupNode(id=self.end)
        return self.nodes


def _as_template(texts: list[str]) -> str:
    """One text reading what ``texts`` read (a branch's ``vars.NAME`` too)."""
    return " ".join(f"{{{{{t}}}}}" if validator.template_variable(t) else t for t in texts)


def _setting_readable(kind: str, raw: Mapping[str, Any]) -> bool:
    """Whether what a node of ``kind`` sets can be read (a ``var`` that is a string,
    ``vars``/``save`` that are objects), even if the schema refuses it."""
    name = _SETTING_FIELDS.get(kind)
    if name is None or name not in raw:
        return name is None
    return isinstance(raw[name], str if name == "var" else Mapping)


def _read_broken(
    reading: GraphReading,
    document: Mapping[str, Any],
    raw_nodes: Mapping[str, Any],
    by_node: Mapping[str, list[tuple[str, ...]]],
    top_level: Mapping[str, list[tuple[str, ...]]],
) -> None:
    """The readings of a document with structural problems (see the module's doc), and
    its start and exits that name no node."""
    file = reading.file
    names = set(raw_nodes)
    taken = set(names)
    hope = _Hopeful(taken, sorted(set(_variable_names(document))))
    defs = schema.schema()["$defs"]
    plain: dict[str, Node] = {}
    hopeful: dict[str, Node] = {}
    missing: list[Problem] = []  # exits naming no node, in file order
    texts: list[str] = []  # what the broken parts read, so that no variable seems unread
    unsure = False  # whether anything is unknown: then the hopeful reading is needed
    for node_id, raw in raw_nodes.items():
        problems = by_node.get(node_id, [])
        kind = raw.get("type") if isinstance(raw, Mapping) else None
        known = isinstance(raw, Mapping) and isinstance(kind, str) and f"{kind}Node" in defs
        definition: Mapping[str, Any] = defs[f"{kind}Node"] if known else {}
        properties: Mapping[str, Any] = definition.get("properties", {})
        if isinstance(raw, Mapping):
            exits, unreadable = _raw_exits(raw, properties if known else None)
        else:
            exits, unreadable = [], True
        plain_exits: dict[str, str] = {}
        hopeful_exits: dict[str, str] = {}
        for exit_ in exits:
            value = exit_.value
            if isinstance(value, str) and value in names:
                plain_exits[exit_.name] = hopeful_exits[exit_.name] = value
            elif isinstance(value, str) and not _under(problems, exit_.parts):
                hopeful_exits[exit_.name] = hope.end  # a node still to write may end the call
                missing.append(
                    Problem(
                        file,
                        pointer(["nodes", node_id, *exit_.parts]),
                        f"exit names {value!r}, which is not a node",
                    )
                )
            else:
                hopeful_exits[exit_.name] = hope.hub
        if unreadable:
            hopeful_exits["?"] = hope.hub
        unsure = unsure or plain_exits != hopeful_exits
        if not known:
            # Of no known type: it may set any variable, then take any exit it names.
            reading.unknown.add(node_id)
            reading.below.add(pointer(["nodes", node_id]))
            texts += _strings(raw)
            plain[node_id] = MenuNode(id=node_id, options={}, on_failure="", exits=plain_exits)
            then = hope.fan(dict.fromkeys(hopeful_exits.values()))
            every = dict.fromkeys(hope.variables, "")
            hopeful[node_id] = SetNode(id=node_id, vars=every, next=then, exits={"next": then})
            unsure = True
            continue
        assert isinstance(raw, Mapping)
        # Of a known type: the fields that passed the schema, and neutral values for the
        # required ones that did not; the rules say nothing of the others.
        bad = {p[0] for p in problems if p}
        left_out = [key for key in raw if key not in properties or key in bad]
        required = [str(name) for name in definition.get("required", [])]
        filled = [key for key in required if key not in raw or key in bad]
        texts += _strings([raw[key] for key in left_out])
        reading.hidden |= {pointer(["nodes", node_id, key]) for key in [*left_out, *filled]}
        for key in filled:
            if key in EXIT_FIELDS:
                hopeful_exits[key] = hope.hub
                unsure = True
        clean = {key: value for key, value in raw.items() if key in properties and key not in bad}
        setting = _SETTING_FIELDS.get(str(kind))
        if setting in bad and _setting_readable(str(kind), raw):
            clean[setting] = _settable(raw[setting])  # what it sets is known
            filled = [key for key in filled if key != setting]
        elif setting is not None and (setting in bad or setting in filled):
            # What it sets cannot be read: it may set any variable.
            hopeful_exits["next"] = hope.setting_all(hopeful_exits.get("next", hope.hub))
            unsure = True
        plain_clean = {**clean, **{key: _neutral(properties[key], False) for key in filled}}
        plain[node_id] = replace(build.node(node_id, plain_clean), exits=plain_exits)
        hopeful_clean = {**clean, **{key: _neutral(properties[key], True) for key in filled}}
        hopeful_clean.update({k: t for k, t in hopeful_exits.items() if k in EXIT_FIELDS})
        hopeful[node_id] = replace(build.node(node_id, hopeful_clean), exits=hopeful_exits)
    # The top level: the fields that failed the schema, start, params.
    for name in set(top_level) - {"nodes"}:
        reading.hidden.add(pointer([name]))
        texts += _strings(document.get(name))
    raw_start = document.get("start")
    start = raw_start if isinstance(raw_start, str) and raw_start in names else None
    if start is None:
        unsure = True
        if isinstance(raw_start, str) and "start" not in top_level:
            missing.insert(
                0, Problem(file, "/start", f"start names {raw_start!r}, which is not a node")
            )
    amd = _readable_amd(document, names, "amd" in top_level, missing, file)
    reading.structure += missing
    raw_params = document.get("params")
    params: tuple[str, ...] = ()
    if isinstance(raw_params, list):
        params = tuple(p for p in raw_params if isinstance(p, str))
    unsure = unsure or "params" in top_level
    if texts:
        reader = _fresh(taken, "reader")
        plain[reader] = hopeful[reader] = SayNode(
            id=reader, prompt=Prompt(say=_as_template(texts)), next=""
        )
        reading.synthetic.add(reader)
    reading.plain = Graph(
        id=reading.id or "",
        start=start if start is not None else _fresh(taken, "nowhere"),
        nodes=plain,
        version="",
        numbers=tuple(number for _, number in reading.numbers),
        params=params,
        amd=amd,
        source=file,
    )
    if unsure:
        hopeful.update(hope.finish(names))
        if "params" in top_level:
            params = tuple(sorted({*hope.variables, *params}))
        reading.hopeful = replace(
            reading.plain,
            nodes=hopeful,
            start=start if start is not None else hope.hub,
            params=params,
        )
        reading.synthetic |= set(hope.nodes)
    reading.hidden |= {pointer(["nodes", node_id]) for node_id in reading.synthetic}


def _readable_amd(
    document: Mapping[str, Any], names: set[str], broken: bool, missing: list[Problem], file: str
) -> Amd | None:
    """A broken document's ``amd``, when the schema accepted it; an ``on_machine``
    naming no node is reported (in ``missing``) and left out."""
    raw = document.get("amd")
    if broken or not isinstance(raw, Mapping):
        return None
    amd = build.amd(raw)
    assert amd is not None
    if amd.on_machine is not None and amd.on_machine not in names:
        message = f"on_machine names {amd.on_machine!r}, which is not a node"
        missing.append(Problem(file, "/amd/on_machine", message))
        amd = replace(amd, on_machine=None)
    return amd


def _settable(value: Any) -> Any:
    """A setting field (``var``, ``vars``, ``save``) of the right shape, its values made
    strings: the variables it sets are read, not its values."""
    if isinstance(value, Mapping):
        return {str(k): v if isinstance(v, str) else "" for k, v in value.items()}
    return value


# -- queues.json -----------------------------------------------------------------------


@dataclass(frozen=True)
class QueuesReading:
    """What can be read of a ``queues.json``: its problems, its queues that passed the
    schema (None: the file has no readable queues) and the names of those that did not."""

    file: str
    problems: list[Problem]
    queues: dict[str, Queue] | None = None
    broken: frozenset[str] = frozenset()


def read_queues_file(path: Path) -> QueuesReading:
    file = str(path)
    try:
        document = read_json(path)
    except GraphError as exc:
        return QueuesReading(file, list(exc.problems))
    found = schema.queues_problems(file, document)
    raw = document.get("queues") if isinstance(document, Mapping) else None
    if not isinstance(raw, Mapping):
        return QueuesReading(file, found)
    failed = {
        parts[1]
        for parts in (_parts(p.path) for p in found)
        if len(parts) >= 2 and parts[0] == "queues"
    }
    good = {
        name: queue_of_json(name, settings)
        for name, settings in raw.items()
        if name not in failed and isinstance(settings, Mapping)
    }
    broken = frozenset(name for name in raw if name not in good)
    return QueuesReading(file, found + queue_rules(good, file, document), good, broken)


@dataclass(frozen=True)
class _Against:
    """The queues a graph is checked against: ``queues`` None when its directory has no
    ``queues.json``; ``unknown`` the queues whose settings failed the schema."""

    queues: Mapping[str, Queue] | None
    unknown: frozenset[str] = frozenset()


def _against(reading: QueuesReading | None) -> _Against | None:
    """None: the graphs are not checked against the queues (the file is unreadable)."""
    if reading is None:
        return _Against(None)
    if reading.queues is None:
        return None
    placeholders = {name: Queue(name=name) for name in reading.broken}
    return _Against({**reading.queues, **placeholders}, reading.broken)


# -- the rules -------------------------------------------------------------------------


def _rules(graph: Graph, against: _Against | None) -> list[Problem]:
    found = validator.check(graph)
    if against is None:
        return found
    for problem in validator.check_queues(graph, against.queues):
        parts = _parts(problem.path)
        node = graph.nodes.get(parts[1]) if len(parts) >= 2 else None
        if getattr(node, "queue", None) not in against.unknown:
            found.append(problem)
    return found


def rule_problems(reading: GraphReading, against: _Against | None = None) -> list[Problem]:
    """The format's rules on what could be read (see the module's doc); ``against``:
    the queues of the graph's directory (None: not checked)."""
    if reading.plain is None:
        return []
    found = _rules(reading.plain, against)
    if reading.hopeful is not None:
        hopeful = {(p.path, p.message, p.severity) for p in _rules(reading.hopeful, against)}
        found = [
            p
            for p in found
            if (p.path, p.message, p.severity) in hopeful or p.message.startswith(_LOOP)
        ]
    if reading.hidden or reading.below:
        found = [p for p in found if not reading.hides(p.path)]
    return found


# -- reports ---------------------------------------------------------------------------


class _Problems:
    """Errors and warnings apart, of something with ``problems``."""

    problems: tuple[Problem, ...]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class FileReport(_Problems):
    """One file checked: its problems (errors and warnings); for a graph without errors
    the graph (with its warnings and its directory's queues), for a queues file without
    errors its queues."""

    path: Path
    kind: Kind
    problems: tuple[Problem, ...] = ()
    graph: Graph | None = None
    graph_id: str | None = None  # a graph's id, when it can be read
    queues: Mapping[str, Queue] | None = None
    # False for a queues.json checked only because a graph named sits beside it.
    named: bool = True


@dataclass(frozen=True)
class Report(_Problems):
    """Files, directories and ``queues.json`` files checked in one run."""

    files: tuple[FileReport, ...]
    # Every problem: each file's in turn, then those of no one file (a directory without
    # graphs, IVR_DEFAULT_GRAPH naming no graph).
    problems: tuple[Problem, ...]
    skipped: tuple[Path, ...] = ()  # JSON Schemas named: not graphs
    graphs: GraphSet | None = None  # every graph, when there is no error


def _read_file(path: Path) -> GraphReading:
    try:
        document = read_json(path)
    except GraphError as exc:
        return GraphReading(str(path), structure=list(exc.problems))
    return read_graph(document, str(path))


def _graph_report(
    path: Path,
    reading: GraphReading,
    against: _Against | None,
    *,
    runnable: bool,
    cross: Sequence[Problem] = (),
) -> FileReport:
    rest = rule_problems(reading, against)
    if runnable:
        rest += _unrunnable(reading.file, reading.own_nodes())
    rest += cross
    problems = [*reading.structure, *sorted(rest, key=lambda p: (p.path, p.message))]
    graph = None
    if reading.graph is not None and not any(p.severity == "error" for p in problems):
        queues = against.queues if against is not None else None
        graph = replace(
            reading.graph,
            warnings=tuple(p for p in problems if p.severity == "warning"),
            queues=dict(queues or {}),
        )
    return FileReport(path, "graph", tuple(problems), graph, reading.id)


def check_file(path: Path) -> FileReport:
    """One graph file on its own: schema, structure and the format's rules, not the
    queues beside it nor what this service runs (``service.graphs.loader.load_file``)."""
    return _graph_report(path, _read_file(path), None, runnable=False)


def _expand(
    paths: Sequence[Path],
) -> tuple[list[tuple[Path, Kind, bool]], list[Path], list[Problem]]:
    """The files to check, in order, each once and whether it was named (a graph's
    ``queues.json`` comes before the graph, named or not), the JSON Schemas named, and
    the directories without graphs."""
    entries: list[tuple[Path, Kind]] = []
    skipped: list[Path] = []
    empty: list[Problem] = []
    for item in paths:
        if item.is_dir():
            files = graph_files(item)
            if (item / QUEUES_FILE).exists():
                entries.append((item / QUEUES_FILE, "queues"))
            if not files:
                empty.append(Problem(str(item), "/", "no graph files (*.json) found"))
            entries += [(file, "graph") for file in files]
        elif item.name in SCHEMAS:
            skipped.append(item)
        else:
            entries.append((item, "queues" if item.name == QUEUES_FILE else "graph"))
    named = {path.resolve() for path, kind in entries if kind == "queues"}
    seen: set[Path] = set()
    ordered: list[tuple[Path, Kind, bool]] = []
    for path, kind in entries:
        beside = path.parent / QUEUES_FILE
        if kind == "graph" and beside.resolve() not in named | seen and beside.exists():
            seen.add(beside.resolve())
            ordered.append((beside, "queues", False))
        if path.resolve() not in seen:
            seen.add(path.resolve())
            ordered.append((path, kind, True))
    return ordered, skipped, empty


def _cross_file(readings: Mapping[Path, GraphReading]) -> dict[Path, list[Problem]]:
    """Ids and numbers used twice among the graphs of a directory (the later file's
    problem)."""
    found: dict[Path, list[Problem]] = {path: [] for path in readings}
    directories: dict[Path, list[Path]] = {}
    for path in readings:
        directories.setdefault(path.parent.resolve(), []).append(path)
    for paths in directories.values():
        ids: dict[str, str] = {}
        numbers: dict[str, str] = {}
        for path in paths:
            reading = readings[path]
            if reading.id is None:
                continue
            if reading.id in ids:
                message = f"id {reading.id!r} is also used by {ids[reading.id]}"
                found[path].append(Problem(reading.file, "/id", message))
                continue
            ids[reading.id] = reading.file
            for index, number in reading.numbers:
                owner = numbers.setdefault(number, reading.file)
                if owner != reading.file:
                    message = f"{number} is also answered by {owner}"
                    found[path].append(Problem(reading.file, f"/numbers/{index}", message))
    return found


def check_paths(
    paths: Sequence[Path], default: str | None = None, *, runnable: bool = True
) -> Report:
    """Graph files, directories (their graphs and ``queues.json``) and ``queues.json``
    files, checked in one run; a graph against the ``queues.json`` beside it, and
    against the other graphs of its directory, as the service loads them.

    ``default``: the graph that answers numbers no graph lists (``IVR_DEFAULT_GRAPH``).
    ``runnable``: node types this version of the service cannot run are errors."""
    entries, skipped, extra = _expand(paths)
    queue_files = {
        path.parent.resolve(): read_queues_file(path)
        for path, kind, _ in entries
        if kind == "queues"
    }
    readings = {path: _read_file(path) for path, kind, _ in entries if kind == "graph"}
    cross = _cross_file(readings)
    files: list[FileReport] = []
    for path, kind, named in entries:
        queues = queue_files.get(path.parent.resolve())
        if kind == "queues":
            assert queues is not None
            errors = any(p.severity == "error" for p in queues.problems)
            good = None if errors else queues.queues
            files.append(
                FileReport(path, "queues", tuple(queues.problems), queues=good, named=named)
            )
        else:
            against = _against(queues)
            report = _graph_report(
                path, readings[path], against, runnable=runnable, cross=cross[path]
            )
            files.append(report)
    ids = {reading.id for reading in readings.values()}
    if default is not None and readings and default not in ids:
        where = str(paths[0]) if len(paths) == 1 else "IVR_DEFAULT_GRAPH"
        extra.append(
            Problem(where, "/", f"IVR_DEFAULT_GRAPH names {default!r}, which is not loaded")
        )
    problems = tuple([p for report in files for p in report.problems] + extra)
    graphs = None
    if not any(p.severity == "error" for p in problems):
        queues_of_set: dict[str, Queue] = {}
        for reading in queue_files.values():
            queues_of_set.update(reading.queues or {})
        graphs = GraphSet(
            graphs={r.graph.id: r.graph for r in files if r.graph is not None},
            default=default,
            queues=queues_of_set,
        )
    return Report(tuple(files), problems, tuple(skipped), graphs)
