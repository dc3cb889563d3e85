"""Diagrams of IVR graphs: a Mermaid ``flowchart TD`` and a Graphviz ``digraph``.

Both formats draw the same picture from the same helpers, so they never disagree:

* :func:`node_lines` - a node's label: its id, its type (with what the type is about:
  the transfer destination, the collected variable, the HTTP method and URL, ...) and the
  start of its prompt;
* :func:`edges` / :func:`edge_label` - one edge per exit, in file order: ``next`` is
  unlabelled, a menu option carries its digit, a branch case its condition
  (``vars.tier eq gold``) and every other exit its name (``on_failure``, ``open``, ...);
* the shape of a node by kind: rounded for ``say``, a rhombus for the nodes that decide
  (``menu``, ``branch``, ``hours``), a stadium (a double rounded box in dot) for the nodes a
  call ends on (``hangup``, ``transfer``, ``voicemail``, ``queue``, ``callback``);
* with traffic counts (``ivr render --stats``: per node, ``service.core.traffic.NodeTraffic``,
  read by the caller): every edge's label ends with how many calls took it (``1 (12)``,
  ``(20)`` for a ``next``) and every node gets a last line, :func:`traffic_line`
  (``18 in, 3 hung up``).

Output is deterministic (file order) and ends with a newline. Labels are escaped for each
format; Mermaid ids are made safe (``main-menu`` becomes ``n_main_menu``) while the label
keeps the real id.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from service.core.graph import (
    TERMINAL_TYPES,
    BranchNode,
    CallbackNode,
    Case,
    CollectNode,
    Graph,
    HoursNode,
    HttpNode,
    Node,
    Prompt,
    QueueNode,
    SetNode,
    TransferNode,
)
from service.core.traffic import NodeTraffic

__all__ = [
    "LABEL_CHARS",
    "Edge",
    "condition",
    "counted",
    "dot",
    "edge_label",
    "edges",
    "mermaid",
    "mermaid_ids",
    "node_lines",
    "shorten",
    "traffic_line",
    "walk_order",
]

LABEL_CHARS = 40
ELLIPSIS = "…"
INDENT = "    "


# --- what both formats show ---------------------------------------------------------------


def shorten(text: str, limit: int = LABEL_CHARS) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis when longer."""
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[:limit].rstrip() + ELLIPSIS


def _file_name(url: str) -> str:
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    return name or url


def _prompt_line(prompt: Prompt | None) -> str | None:
    if prompt is None:
        return None
    if prompt.say is not None:
        return shorten(prompt.say)
    if prompt.play:
        return shorten("play " + ", ".join(_file_name(url) for url in prompt.play))
    return None


def _detail(node: Node) -> str | None:
    """What a node of this type is about, beyond its prompt."""
    if isinstance(node, TransferNode):
        return node.to
    if isinstance(node, CollectNode):
        return f"vars.{node.var}"
    if isinstance(node, HttpNode):
        return f"{node.method} {node.url}"
    if isinstance(node, QueueNode | CallbackNode):
        return node.queue
    if isinstance(node, HoursNode):
        return node.timezone
    if isinstance(node, SetNode):
        return ", ".join(f"vars.{name}" for name in node.vars)
    return None


def node_lines(node: Node) -> tuple[str, ...]:
    """The lines of a node's label: id, type (and detail), start of the prompt if any."""
    detail = _detail(node)
    kind = f"{node.type} {shorten(detail)}" if detail else node.type
    prompt = _prompt_line(node.prompt)
    return (node.id, kind) if prompt is None else (node.id, kind, prompt)


def _value(value: Any) -> str:
    if isinstance(value, str):
        # Bare when unambiguous; quoted when empty or padded with spaces.
        return value if value and value.strip() == value else json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def condition(case: Case) -> str:
    """A branch case as text: ``vars.account exists``, ``vars.tier eq gold``."""
    if case.op == "exists":
        return f"{case.var} exists"
    return f"{case.var} {case.op} {shorten(_value(case.value))}"


def edge_label(node: Node, where: str) -> str | None:
    """The label of the exit ``where`` (a key of ``node.exits``); ``None`` for ``next``."""
    if where == "next":
        return None
    parts = where.split("/")
    if parts[0] == "options" and len(parts) == 2:
        return parts[1]
    if isinstance(node, BranchNode) and parts[0] == "cases" and len(parts) == 3:
        index = int(parts[1])
        if 0 <= index < len(node.cases):
            return condition(node.cases[index])
    return where


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str | None  # None: an unlabelled ``next``
    exit: str  # the exit's JSON path below the source node (``options/1``)


def edges(graph: Graph) -> list[Edge]:
    """Every exit of every node as an edge, in file order."""
    return [
        Edge(node.id, target, edge_label(node, where), where)
        for node in graph.nodes.values()
        for where, target in node.exits.items()
    ]


def walk_order(graph: Graph) -> list[str]:
    """Every node id: ``start`` first, then the nodes a call can reach in walking order
    (breadth first, exits in file order), then the others in file order."""
    order = [graph.start] if graph.start in graph.nodes else []
    seen = set(order)
    waiting = deque(order)
    while waiting:
        for target in graph.nodes[waiting.popleft()].exits.values():
            if target not in seen and target in graph.nodes:
                seen.add(target)
                order.append(target)
                waiting.append(target)
    return order + [node_id for node_id in graph.nodes if node_id not in seen]


# --- traffic counts -----------------------------------------------------------------------


def traffic_line(traffic: NodeTraffic) -> str:
    """A node's counts in one line: entries, then (when any) callers who hung up there,
    other calls that ended there and calls there now: ``18 in, 3 hung up, 1 here``."""
    parts = [f"{traffic.entered} in"]
    ended = sum(traffic.ended.values()) - traffic.hung_up
    for count, what in ((traffic.hung_up, "hung up"), (ended, "ended"), (traffic.here, "here")):
        if count:
            parts.append(f"{count} {what}")
    return ", ".join(parts)


def counted(label: str | None, count: int) -> str:
    """An edge's label with how many calls took it: ``1 (12)``; ``(20)`` unlabelled."""
    return f"({count})" if label is None else f"{label} ({count})"


def _labels(
    graph: Graph, traffic: Mapping[str, NodeTraffic] | None
) -> tuple[dict[str, tuple[str, ...]], list[Edge]]:
    """Each node's label lines and the edges, with the counts when given."""
    lines = {node.id: node_lines(node) for node in graph.nodes.values()}
    drawn = edges(graph)
    if traffic is None:
        return lines, drawn
    none = NodeTraffic()
    for node_id in lines:
        lines[node_id] += (traffic_line(traffic.get(node_id, none)),)
    drawn = [
        Edge(e.source, e.target, counted(e.label, traffic.get(e.source, none).exits.get(e.exit, 0)),
             e.exit)
        for e in drawn
    ]  # fmt: skip
    return lines, drawn


# --- shapes by kind -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    mermaid: tuple[str, str]  # opening and closing brackets around the quoted label
    dot: tuple[tuple[str, str], ...]  # Graphviz attributes (constant identifiers)


_BOX = _Shape(("[", "]"), (("shape", "box"),))
_DECISION = _Shape(("{", "}"), (("shape", "diamond"),))
_TERMINAL = _Shape(("([", "])"), (("shape", "box"), ("style", "rounded"), ("peripheries", "2")))
_SHAPES: Mapping[str, _Shape] = {
    "say": _Shape(("(", ")"), (("shape", "box"), ("style", "rounded"))),
    "set": _BOX,
    "collect": _Shape(("[/", "/]"), (("shape", "parallelogram"),)),
    "http": _Shape(("[[", "]]"), (("shape", "component"),)),
    "menu": _DECISION,
    "branch": _DECISION,
    "hours": _DECISION,
    **{kind: _TERMINAL for kind in TERMINAL_TYPES},
}


def _shape(node: Node) -> _Shape:
    return _SHAPES.get(node.type, _BOX)


# --- Mermaid ------------------------------------------------------------------------------

# Mermaid decodes ``#name;`` / ``#nn;`` entities inside quoted labels; these characters would
# otherwise end the label, open an HTML tag, start a markdown string, an entity (``#``) or a
# line break (a backslash before ``n``).
_MERMAID_ENTITIES = {
    "#": "#35;",
    "\\": "#92;",
    '"': "#quot;",
    "&": "#amp;",
    "<": "#lt;",
    ">": "#gt;",
    "|": "#124;",
    "`": "#96;",
}
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_]")


def _mermaid_text(text: str) -> str:
    return "".join(_MERMAID_ENTITIES.get(char, char) for char in text)


def mermaid_ids(graph: Graph) -> dict[str, str]:
    """A safe Mermaid id per node id, in file order: ``main-menu`` -> ``n_main_menu``.

    The ``n_`` prefix keeps clear of keywords (``end``) and edge syntax (``--o``); a clash
    (``main-menu`` and ``main_menu``) gets a numbered suffix, first come first served.
    """
    ids: dict[str, str] = {}
    used: set[str] = set()
    for node_id in graph.nodes:
        base = "n_" + _UNSAFE_ID.sub("_", node_id)
        candidate, number = base, 2
        while candidate in used:
            candidate, number = f"{base}_{number}", number + 1
        used.add(candidate)
        ids[node_id] = candidate
    return ids


def mermaid(graph: Graph, traffic: Mapping[str, NodeTraffic] | None = None) -> str:
    """The graph as a Mermaid ``flowchart TD``; a small dark circle points at ``start``.
    With ``traffic`` (per node id), the counts on every node and edge."""
    ids = mermaid_ids(graph)
    node_labels, drawn = _labels(graph, traffic)
    lines = ["flowchart TD", f'{INDENT}start((" "))']
    for node in graph.nodes.values():
        opening, closing = _shape(node).mermaid
        label = "<br/>".join(_mermaid_text(line) for line in node_labels[node.id])
        lines.append(f'{INDENT}{ids[node.id]}{opening}"{label}"{closing}')
    if graph.start in ids:
        lines.append(f"{INDENT}start --> {ids[graph.start]}")
    for edge in drawn:
        arrow = "-->" if edge.label is None else f'-->|"{_mermaid_text(edge.label)}"|'
        lines.append(f"{INDENT}{ids[edge.source]} {arrow} {ids[edge.target]}")
    lines.append(f"{INDENT}classDef entry fill:#333,stroke:#333")
    lines.append(f"{INDENT}class start entry")
    return "\n".join(lines) + "\n"


# --- Graphviz dot -------------------------------------------------------------------------

# Node ids match [a-z0-9][a-z0-9_-]*, so this one never clashes with a node.
DOT_START = "_start"


def _dot_string(text: str) -> str:
    """A dot double-quoted string; backslashes are doubled so ``\\N``, ``\\l``... stay text."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot_label(lines: tuple[str, ...]) -> str:
    escaped = [_dot_string(line)[1:-1] for line in lines]
    return '"' + "\\n".join(escaped) + '"'


def _dot_attributes(pairs: list[tuple[str, str]]) -> str:
    return " [" + ", ".join(f"{key}={value}" for key, value in pairs) + "]"


def dot(graph: Graph, traffic: Mapping[str, NodeTraffic] | None = None) -> str:
    """The graph as a Graphviz ``digraph``; a point node points at ``start``. With
    ``traffic`` (per node id), the counts on every node and edge."""
    node_labels, drawn = _labels(graph, traffic)
    lines = [f"digraph {_dot_string(graph.id)} {{"]
    start = [("label", '""'), ("shape", "point"), ("width", "0.15")]
    lines.append(f"{INDENT}{_dot_string(DOT_START)}{_dot_attributes(start)};")
    for node in graph.nodes.values():
        attributes = [("label", _dot_label(node_labels[node.id])), *_shape(node).dot]
        lines.append(f"{INDENT}{_dot_string(node.id)}{_dot_attributes(attributes)};")
    if graph.start in graph.nodes:
        lines.append(f"{INDENT}{_dot_string(DOT_START)} -> {_dot_string(graph.start)};")
    for edge in drawn:
        label = "" if edge.label is None else _dot_attributes([("label", _dot_string(edge.label))])
        lines.append(f"{INDENT}{_dot_string(edge.source)} -> {_dot_string(edge.target)}{label};")
    lines.append("}")
    return "\n".join(lines) + "\n"
