"""Diagrams of IVR graphs: a Mermaid ``flowchart TD``, a Graphviz ``digraph`` and an SVG
drawing (laid out here: the supervisor page shows it).

All three formats draw the same picture from the same helpers, so they never disagree:

* :func:`node_lines` - a node's label: its id, its type (with what the type is about:
  the transfer destination, the collected variable, the HTTP method and URL, ...) and the
  start of its prompt;
* :func:`edges` / :func:`edge_label` - one edge per exit, in file order: ``next`` is
  unlabelled, a menu option carries its digit, a branch case its condition
  (``vars.tier eq gold``) and every other exit its name (``on_failure``, ``open``, ...);
* the shape of a node by kind: rounded for ``say``, a rhombus (a hexagon in SVG) for the
  nodes that decide (``menu``, ``branch``, ``hours``), a stadium (a double rounded box in dot
  and SVG) for the nodes a call ends on (``hangup``, ``transfer``, ``voicemail``, ``queue``,
  ``callback``);
* with traffic counts (``ivr render --stats``: per node, ``service.core.traffic.NodeTraffic``,
  read by the caller): every edge's label ends with how many calls took it (``1 (12)``,
  ``(20)`` for a ``next``) and every node gets a last line, :func:`traffic_line`
  (``18 in, 3 hung up``).

Output is deterministic (file order) and ends with a newline. Labels are escaped for each
format; Mermaid ids are made safe (``main-menu`` becomes ``n_main_menu``) while the label
keeps the real id.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import re
import unicodedata
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
    MenuNode,
    Node,
    PauseNode,
    Prompt,
    QueueNode,
    SetNode,
    TransferNode,
    machine_entry,
    speaks,
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
    "svg",
    "text_width",
    "traffic_line",
    "walk_order",
]

LABEL_CHARS = 40
ELLIPSIS = "…"
INDENT = "    "
MACHINE_LINE = "on an answering machine"
"""The last line of the label of the node a call answered by a machine goes to."""


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
        return f"{node.to}, recorded" if node.record else node.to
    if isinstance(node, CollectNode):
        return f"vars.{node.var}" + _listening(node)
    if isinstance(node, MenuNode) and speaks(node.input):
        return _listening(node).removeprefix(" ")
    if isinstance(node, PauseNode):
        return f"{node.seconds} s"
    if isinstance(node, QueueNode) and node.record:
        return f"{node.queue}, recorded"
    if isinstance(node, HttpNode):
        return f"{node.method} {node.url}"
    if isinstance(node, QueueNode | CallbackNode):
        return node.queue
    if isinstance(node, HoursNode):
        return node.timezone
    if isinstance(node, SetNode):
        return ", ".join(f"vars.{name}" for name in node.vars)
    return None


def _listening(node: MenuNode | CollectNode) -> str:
    """`` (keys or speech, en-US)`` for a gather that hears words; "" for keys only."""
    if not speaks(node.input):
        return ""
    what = "speech" if node.input == "speech" else "keys or speech"
    return f" ({what}, {node.speech_locale or 'en-US'})"


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
        said = node.phrases.get(parts[1], ()) if isinstance(node, MenuNode) else ()
        return f'{parts[1]} or "{shorten(said[0], 24)}"' if said else parts[1]
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
    other calls that ended there and calls there now: ``18 in, 3 hung up, 1 here``.

    The counts of one day (the supervisor page's "today") may hold a call's leaving a
    node without its entering it (the day before): no "here" is drawn below zero."""
    parts = [f"{traffic.entered} in"]
    ended = sum(traffic.ended.values()) - traffic.hung_up
    for count, what in ((traffic.hung_up, "hung up"), (ended, "ended"), (traffic.here, "here")):
        if count > 0:
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
    machine = machine_entry(graph)
    if machine is not None:  # where a call answered by a machine goes
        lines[machine] += (MACHINE_LINE,)
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
    machine = machine_entry(graph)
    if machine is not None:
        lines.insert(2, f'{INDENT}machine(("machine"))')
        lines.append(f'{INDENT}machine -.->|"answered by a machine"| {ids[machine]}')
    for edge in drawn:
        arrow = "-->" if edge.label is None else f'-->|"{_mermaid_text(edge.label)}"|'
        lines.append(f"{INDENT}{ids[edge.source]} {arrow} {ids[edge.target]}")
    lines.append(f"{INDENT}classDef entry fill:#333,stroke:#333")
    lines.append(f"{INDENT}class start entry")
    return "\n".join(lines) + "\n"


# --- Graphviz dot -------------------------------------------------------------------------

# Node ids match [a-z0-9][a-z0-9_-]*, so this one never clashes with a node.
DOT_START = "_start"
DOT_MACHINE = "_machine"


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
    machine = machine_entry(graph)
    if machine is not None:
        entry = [("label", '"machine"'), ("shape", "circle"), ("style", "dashed")]
        lines.insert(2, f"{INDENT}{_dot_string(DOT_MACHINE)}{_dot_attributes(entry)};")
        arrow = [("label", '"answered by a machine"'), ("style", "dashed")]
        lines.append(
            f"{INDENT}{_dot_string(DOT_MACHINE)} -> {_dot_string(machine)}{_dot_attributes(arrow)};"
        )
    for edge in drawn:
        label = "" if edge.label is None else _dot_attributes([("label", _dot_string(edge.label))])
        lines.append(f"{INDENT}{_dot_string(edge.source)} -> {_dot_string(edge.target)}{label};")
    lines.append("}")
    return "\n".join(lines) + "\n"


# --- SVG ----------------------------------------------------------------------------------
#
# A layered drawing, top down (a small Sugiyama layout):
#
# 1. a depth-first walk from ``start`` (exits in file order) finds the edges that close a
#    loop (back to a node on the walk's path): those are drawn back up;
# 2. every other edge points down: a node's row is its longest distance from ``start``
#    over them; the nodes no call reaches get rows of their own below;
# 3. an edge down across several rows passes a point in each row between, which keeps a
#    place in that row like a (thin) node, so that no node stands in its way;
# 4. within a row, nodes are ordered by where their neighbours stand (barycenter sweeps
#    down and up, ties in walking order), then moved towards them while keeping order
#    and gaps.
#
# An edge down leaves the bottom of its source and enters the top of its target, its
# label just below the source; an edge back up (or to itself) bends out to the right of
# every node between. Text widths are estimated from Arial's metrics (no font is read:
# this module does no I/O), with room to spare. Every text of the graph is XML-escaped;
# characters XML cannot hold (control characters, lone surrogates) become U+FFFD.

SVG_FONT = "Arial, 'Liberation Sans', Helvetica, sans-serif"
_FONT_PX = 12.0
_LINE_PX = 16.0
_PAD_X, _PAD_Y = 12.0, 8.0
_MIN_WIDTH = 96.0
_NODE_GAP, _PASS_GAP = 32.0, 14.0  # between nodes; next to an edge passing a row
_PASS_WIDTH = 8.0
_ROW_GAP = 64.0
_MARGIN = 20.0
_CAPTION_PX = 28.0
_START_PX = 34.0  # above the first row: the start dot and its arrow
_LOOP_PX = 28.0  # how far right of the nodes it passes an edge back up bends
_INSET = {"decision": 14.0, "collect": 10.0, "http": 8.0}

# Advance widths of Arial at 1 em = 1000 (the common characters; others are estimated).
_NARROW = dict.fromkeys("ijl.,:;|!'`", 278) | dict.fromkeys("fIt/[]() -", 333)
_WIDE = dict.fromkeys("mMW@%", 889) | dict.fromkeys("wOQGCDHNU&", 722) | {"…": 1000}
_XML_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

_SVG_KIND: Mapping[str, str] = {
    "say": "say",
    "menu": "decision",
    "branch": "decision",
    "hours": "decision",
    "collect": "collect",
    "http": "http",
    **{kind: "terminal" for kind in TERMINAL_TYPES},
}

_SVG_STYLE = f"""\
text {{ font-family: {SVG_FONT}; font-size: {_FONT_PX:g}px; fill: #1f2933; }}
.caption {{ font-size: 13px; font-weight: bold; }}
.node-shape {{ stroke: #52606d; stroke-width: 1.2; fill: #ffffff; }}
.say .node-shape {{ fill: #e3f2fd; }}
.decision .node-shape {{ fill: #fff8e1; }}
.collect .node-shape {{ fill: #e8f5e9; }}
.http .node-shape {{ fill: #f3e5f5; }}
.terminal .node-shape {{ fill: #eceff1; }}
.node-id {{ font-weight: bold; }}
.node-kind {{ fill: #52606d; font-style: italic; }}
.node-traffic {{ fill: #0b5394; font-weight: bold; }}
.edge path {{ fill: none; stroke: #52606d; stroke-width: 1.4; }}
.edge.unused path {{ stroke: #9aa5b1; stroke-dasharray: 4 3; }}
.edge-label {{ font-size: 11px; paint-order: stroke; stroke: #ffffff; stroke-width: 4px;
  stroke-linejoin: round; }}
.start {{ fill: #333333; }}
#arrow path {{ fill: #52606d; }}"""

Point = tuple[float, float]


def _xml(text: str) -> str:
    """``text`` as XML character data or an attribute value (double quoted)."""
    return html.escape(_XML_UNSAFE.sub("\ufffd", text), quote=True)


def _n(value: float) -> str:
    """A coordinate: at most one decimal, no trailing zeros."""
    text = f"{value:.1f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def text_width(text: str, bold: bool = False, size: float = _FONT_PX) -> float:
    """An estimate of ``text``'s width in pixels, in Arial at ``size`` px (a little wide)."""
    units = 0.0
    for char in text:
        if char in _NARROW or char in _WIDE:
            units += _NARROW.get(char) or _WIDE[char]
        elif unicodedata.east_asian_width(char) in ("W", "F"):
            units += 1000
        elif char.isupper():
            units += 667
        else:
            units += 556
    return units * size / 1000 * (1.1 if bold else 1.0) * 1.05


@dataclass(frozen=True)
class _Box:
    x: float
    y: float
    width: float
    height: float

    @property
    def center(self) -> float:
        return self.x + self.width / 2

    @property
    def bottom(self) -> float:
        return self.y + self.height

    @property
    def right(self) -> float:
        return self.x + self.width


def _loop_closers(graph: Graph, roots: list[str]) -> set[tuple[str, str]]:
    """The (source, target) pairs of the edges that close a loop: to a node on the path
    of a depth-first walk from ``roots`` (exits in file order), or to the node itself."""
    state: dict[str, int] = {}  # 1: on the walk's path, 2: done
    closers: set[tuple[str, str]] = set()
    for root in roots:
        if root in state:
            continue
        state[root] = 1
        path = [(root, iter(graph.nodes[root].exits.values()))]
        while path:
            node_id, exits = path[-1]
            for target in exits:
                if target not in graph.nodes:
                    continue
                if state.get(target) == 1:
                    closers.add((node_id, target))
                elif target not in state:
                    state[target] = 1
                    path.append((target, iter(graph.nodes[target].exits.values())))
                    break
            else:
                state[node_id] = 2
                path.pop()
    return closers


def _node_rows(graph: Graph) -> dict[str, int]:
    """Each node's row: its longest distance from ``start`` over the edges that do not
    close a loop; the nodes no call reaches in rows below, the same way among them."""
    order = walk_order(graph)
    reached = set(_reachable(graph))
    closers = _loop_closers(graph, [n for n in order if n in reached])
    closers |= _loop_closers(graph, [n for n in order if n not in reached])
    rows: dict[str, int] = {}
    for part, offset in ((reached, 0), (set(graph.nodes) - reached, None)):
        if offset is None:
            offset = max(rows.values(), default=-1) + 1
        into = {n: 0 for n in part}
        for e in edges(graph):
            if e.source in part and e.target in part and (e.source, e.target) not in closers:
                into[e.target] += 1
        ready = deque(n for n in order if n in part and into[n] == 0)
        depth = dict.fromkeys(part, 0)
        while ready:
            node_id = ready.popleft()
            rows[node_id] = depth[node_id] + offset
            for target in graph.nodes[node_id].exits.values():
                if target in part and (node_id, target) not in closers:
                    depth[target] = max(depth[target], depth[node_id] + 1)
                    into[target] -= 1
                    if into[target] == 0:
                        ready.append(target)
    return rows


def _reachable(graph: Graph) -> list[str]:
    """The nodes a call can reach from ``start`` (or from ``amd.on_machine``), in
    walking order."""
    if graph.start not in graph.nodes:
        return []
    seen = {graph.start}
    machine = machine_entry(graph)
    if machine is not None:
        seen.add(machine)
    waiting = deque(seen)
    while waiting:
        for target in graph.nodes[waiting.popleft()].exits.values():
            if target not in seen and target in graph.nodes:
                seen.add(target)
                waiting.append(target)
    return [node_id for node_id in walk_order(graph) if node_id in seen]


@dataclass
class _Layout:
    boxes: dict[str, _Box]  # nodes and the points edges pass (by their key)
    rows: list[list[str]]
    row_of: dict[str, int]
    chains: dict[int, list[str]]  # an edge down (by its index): source, points passed, target
    width: float
    height: float


def _pass_key(edge_index: int, row: int) -> str:
    """The key of the point an edge passes in a row (a node id never holds a NUL)."""
    return f"\x00{edge_index}:{row}"


def _layout(graph: Graph, sizes: Mapping[str, tuple[float, float]], top: float) -> _Layout:
    row_of = _node_rows(graph)
    rows: list[list[str]] = [[] for _ in range(max(row_of.values(), default=-1) + 1)]
    for node_id in walk_order(graph):
        rows[row_of[node_id]].append(node_id)
    above: dict[str, list[str]] = {}  # neighbours in the row above, and below
    below: dict[str, list[str]] = {}
    chains: dict[int, list[str]] = {}
    for index, e in enumerate(edges(graph)):
        first, last = row_of[e.source], row_of[e.target]
        if last <= first:
            continue  # drawn back up (or to itself)
        chain = [e.source]
        for number in range(first + 1, last):
            key = _pass_key(index, number)
            rows[number].append(key)
            row_of[key] = number
            chain.append(key)
        chain.append(e.target)
        chains[index] = chain
        for upper, lower in itertools.pairwise(chain):
            below.setdefault(upper, []).append(lower)
            above.setdefault(lower, []).append(upper)

    def width_of(key: str) -> float:
        return sizes[key][0] if key in sizes else _PASS_WIDTH

    def gap(left: str, right: str) -> float:
        return _NODE_GAP if left in sizes and right in sizes else _PASS_GAP

    # Order within rows: barycenters of the neighbours, sweeping down then up.
    place = {key: float(i) for row in rows for i, key in enumerate(row)}
    sweeps = [(range(1, len(rows)), above), (range(len(rows) - 2, -1, -1), below)] * 2
    for numbers, neighbours in sweeps:
        for number in numbers:
            row = rows[number]

            def barycenter(key: str, neighbours: Mapping[str, list[str]] = neighbours) -> float:
                near = neighbours.get(key, [])
                return sum(place[n] for n in near) / len(near) if near else place[key]

            row.sort(key=barycenter)
            place.update({key: float(i) for i, key in enumerate(row)})

    # Places along the row: packed, then moved towards the neighbours' centres.
    center: dict[str, float] = {}
    for row in rows:
        x = 0.0
        for left, key in zip([None, *row], row, strict=False):
            x += gap(left, key) if left is not None else 0.0
            center[key] = x + width_of(key) / 2
            x += width_of(key)
    passes = [(range(1, len(rows)), above), (range(len(rows) - 2, -1, -1), below)] * 2
    for numbers, neighbours in [*passes, passes[0]]:
        for number in numbers:
            row = rows[number]
            wanted = {}
            for key in row:
                near = neighbours.get(key, [])
                wanted[key] = sum(center[n] for n in near) / len(near) if near else center[key]
            right_end = -math.inf
            placed: dict[str, float] = {}
            for left, key in zip([None, *row], row, strict=False):
                least = right_end + (gap(left, key) if left is not None else 0.0)
                placed[key] = max(wanted[key] - width_of(key) / 2, least)
                right_end = placed[key] + width_of(key)
            # Pushed right by the ones before: move the row back by the mean push.
            pushes = [wanted[k] - (placed[k] + width_of(k) / 2) for k in row]
            shift = sum(pushes) / len(pushes)
            center.update({k: placed[k] + width_of(k) / 2 + shift for k in row})
    leftmost = min((center[k] - width_of(k) / 2 for row in rows for k in row), default=0.0)
    boxes: dict[str, _Box] = {}
    y = top
    for row in rows:
        height = max((sizes[k][1] for k in row if k in sizes), default=0.0)
        for key in row:
            x = center[key] - width_of(key) / 2 - leftmost + _MARGIN
            boxes[key] = _Box(x, y, width_of(key), sizes[key][1] if key in sizes else height)
        y += height + _ROW_GAP
    width = max((b.right for b in boxes.values()), default=_MARGIN) + _MARGIN
    height = max((b.bottom for b in boxes.values()), default=top) + _MARGIN
    return _Layout(boxes, rows, row_of, chains, width, height)


def _cubic(points: tuple[Point, Point, Point, Point], t: float) -> Point:
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = points
    a, b, c, d = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
    return a * x0 + b * x1 + c * x2 + d * x3, a * y0 + b * y1 + c * y2 + d * y3


def _at_height(points: tuple[Point, Point, Point, Point], y: float) -> Point:
    """The point of a top-down curve at height ``y`` (bisection: y grows with t)."""
    low, high = 0.0, 1.0
    for _ in range(30):
        middle = (low + high) / 2
        if _cubic(points, middle)[1] < y:
            low = middle
        else:
            high = middle
    return _cubic(points, (low + high) / 2)


def _down(start: Point, end: Point) -> tuple[Point, Point, Point, Point]:
    """A curve from ``start`` down to ``end``, leaving and arriving vertically."""
    bend = (end[1] - start[1]) / 2
    return start, (start[0], start[1] + bend), (end[0], end[1] - bend), end


def _shape_svg(kind: str, box: _Box) -> list[str]:
    x, y, w, h = box.x, box.y, box.width, box.height
    inset = _INSET.get(kind, 0.0)
    if kind == "decision":
        points = [(x + inset, y), (x + w - inset, y), (x + w, y + h / 2),
                  (x + w - inset, y + h), (x + inset, y + h), (x, y + h / 2)]  # fmt: skip
        return [_polygon(points)]
    if kind == "collect":
        return [_polygon([(x + inset, y), (x + w, y), (x + w - inset, y + h), (x, y + h)])]
    rounding = {"say": 10.0, "terminal": h / 2}.get(kind, 2.0)
    shapes = [_rect(box, rounding)]
    if kind == "terminal":  # a double outline: a call ends here
        shapes.append(_rect(_Box(x + 3, y + 3, w - 6, h - 6), (h - 6) / 2))
    if kind == "http":  # a subroutine's bars
        for bar in (x + inset, x + w - inset):
            shapes.append(f'<path class="node-shape" d="M{_n(bar)} {_n(y)}V{_n(y + h)}"/>')
    return shapes


def _rect(box: _Box, rounding: float) -> str:
    return (
        f'<rect class="node-shape" x="{_n(box.x)}" y="{_n(box.y)}" width="{_n(box.width)}" '
        f'height="{_n(box.height)}" rx="{_n(rounding)}"/>'
    )


def _polygon(points: list[Point]) -> str:
    return '<polygon class="node-shape" points="{}"/>'.format(
        " ".join(f"{_n(px)},{_n(py)}" for px, py in points)
    )


def _curve(points: tuple[Point, Point, Point, Point]) -> str:
    return "C" + " ".join(f"{_n(px)} {_n(py)}" for px, py in points[1:])


def _edge_svg(
    e: Edge, index: int, layout: _Layout, ports: Mapping[tuple[int, str], float], loops: int
) -> tuple[str, Point, float]:
    """An edge's path (``d``), where its label goes and how far right it reaches."""
    boxes = layout.boxes
    source, target = boxes[e.source], boxes[e.target]
    chain = layout.chains.get(index)
    if chain is not None:  # down, through the points it passes
        start = (ports[(index, "out")], source.bottom)
        end = (ports[(index, "in")], target.y)
        stops = [start]
        for key in chain[1:-1]:
            stops += [(boxes[key].center, boxes[key].y), (boxes[key].center, boxes[key].bottom)]
        stops.append(end)
        d = f"M{_n(start[0])} {_n(start[1])}"
        leaving = _down(stops[0], stops[1])
        for number in range(0, len(stops), 2):
            d += _curve(_down(stops[number], stops[number + 1]))
            if number + 2 < len(stops):
                d += f"V{_n(stops[number + 2][1])}"
        drop = 18.0 + 16.0 * (index % 2)  # the labels of neighbouring edges apart
        label_at = _at_height(leaving, start[1] + min(drop, (leaving[3][1] - start[1]) / 2))
        return d, label_at, max(x for x, _ in stops)
    if e.source == e.target:  # to itself: a small loop on the right
        out = source.right + _LOOP_PX
        y1, y2 = source.y + source.height * 0.3, source.y + source.height * 0.7
        points = ((source.right, y1), (out, y1), (out, y2), (source.right, y2))
    else:  # back up: out to the right of every node between, and in from the right
        first, last = sorted((layout.row_of[e.source], layout.row_of[e.target]))
        between = [boxes[k].right for row in layout.rows[first : last + 1] for k in row]
        out = max(between) + _LOOP_PX + 12.0 * (loops % 4)
        sy, ty = source.y + source.height / 2, target.y + target.height / 2
        points = ((source.right, sy), (out, sy), (out, ty), (target.right, ty))
    start = points[0]
    return f"M{_n(start[0])} {_n(start[1])}{_curve(points)}", _cubic(points, 0.5), out


def svg(
    graph: Graph,
    traffic: Mapping[str, NodeTraffic] | None = None,
    caption: str | None = None,
) -> str:
    """The graph as a standalone SVG document (the layout: see above). With ``traffic``
    (per node id), the counts on every node and edge as :func:`mermaid` and :func:`dot`
    draw them, an edge no call took dashed. ``caption``: a line of text above the drawing
    (and its title; by default the title names the graph and its version).

    Nodes are ``<g class="node KIND" data-node="ID" data-type="TYPE">``, edges ``<g
    class="edge" data-from="ID" data-to="ID" data-exit="EXIT">`` (and ``data-count`` with
    traffic), an edge's label its ``<text class="edge-label">``."""
    node_labels, drawn = _labels(graph, traffic)
    kinds = {node.id: _SVG_KIND.get(node.type, "plain") for node in graph.nodes.values()}
    sizes: dict[str, tuple[float, float]] = {}
    for node_id, lines in node_labels.items():
        widest = max(text_width(line, bold=i == 0) for i, line in enumerate(lines))
        inset = _INSET.get(kinds[node_id], 0.0)
        width = max(_MIN_WIDTH, widest + 2 * (_PAD_X + inset))
        sizes[node_id] = (width, len(lines) * _LINE_PX + 2 * _PAD_Y)
    top = _MARGIN + (_CAPTION_PX if caption else 0.0) + _START_PX
    layout = _layout(graph, sizes, top)
    boxes = layout.boxes

    # Ports: the edges down leave their source's bottom spread out, ordered by where they
    # go next; they arrive at their target's top spread out, ordered by where they come from.
    ports: dict[tuple[int, str], float] = {}
    for end, side, step in (("out", 0, 1), ("in", -1, -2)):
        by_node: dict[str, list[int]] = {}
        for index, chain in layout.chains.items():
            by_node.setdefault(chain[side], []).append(index)
        for node_id, indexes in by_node.items():
            indexes.sort(key=lambda i: (boxes[layout.chains[i][step]].center, i))
            box = boxes[node_id]
            for rank, index in enumerate(indexes):
                ports[(index, end)] = box.x + box.width * (rank + 1) / (len(indexes) + 1)

    width, height = layout.width, layout.height
    parts: list[str] = []
    loops = 0
    for index, e in enumerate(drawn):
        if index not in layout.chains:
            loops += 1
        d, label_at, rightmost = _edge_svg(e, index, layout, ports, loops)
        count = None
        if traffic is not None:
            count = traffic.get(e.source, NodeTraffic()).exits.get(e.exit, 0)
        used = "" if count is None or count else " unused"
        data = "" if count is None else f' data-count="{count}"'
        parts.append(
            f'<g class="edge{used}" data-from="{_xml(e.source)}" data-to="{_xml(e.target)}" '
            f'data-exit="{_xml(e.exit)}"{data}><path d="{d}" marker-end="url(#arrow)"/>'
        )
        if e.label is not None:
            lx, ly = label_at
            parts.append(
                f'<text class="edge-label" x="{_n(lx)}" y="{_n(ly + 4)}" '
                f'text-anchor="middle">{_xml(e.label)}</text>'
            )
            width = max(width, lx + text_width(e.label, size=11) / 2 + _MARGIN)
        parts.append("</g>")
        width = max(width, rightmost + _MARGIN)
    if graph.start in boxes:
        first = boxes[graph.start]
        cy = first.y - _START_PX + 6
        parts.append(f'<circle class="start" cx="{_n(first.center)}" cy="{_n(cy)}" r="6"/>')
        parts.append(
            f'<g class="edge" data-from="" data-to="{_xml(graph.start)}" data-exit="start">'
            f'<path d="M{_n(first.center)} {_n(cy + 6)}V{_n(first.y)}" '
            'marker-end="url(#arrow)"/></g>'
        )
    for node in graph.nodes.values():
        box = boxes[node.id]
        lines = node_labels[node.id]
        parts.append(
            f'<g class="node {kinds[node.id]}" data-node="{_xml(node.id)}" '
            f'data-type="{_xml(node.type)}">'
        )
        parts.extend(_shape_svg(kinds[node.id], box))
        for number, line in enumerate(lines):
            role = "node-id" if number == 0 else "node-kind" if number == 1 else "node-prompt"
            if traffic is not None and number == len(lines) - 1:
                role = "node-traffic"
            baseline = box.y + _PAD_Y + _LINE_PX * number + _FONT_PX
            parts.append(
                f'<text class="{role}" x="{_n(box.center)}" y="{_n(baseline)}" '
                f'text-anchor="middle">{_xml(line)}</text>'
            )
        parts.append("</g>")
    if caption:
        width = max(width, 2 * _MARGIN + text_width(caption, bold=True, size=13))
    title = caption or f"IVR graph {graph.id}, version {graph.version}"
    head = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_n(width)}" height="{_n(height)}" '
        f'viewBox="0 0 {_n(width)} {_n(height)}" role="img" class="ivr-graph" '
        f'data-graph="{_xml(graph.id)}" data-version="{_xml(graph.version)}">',
        f"<title>{_xml(title)}</title>",
        f"<style>\n{_SVG_STYLE}\n</style>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z"/></marker>'
        "</defs>",
        f'<rect width="{_n(width)}" height="{_n(height)}" fill="#ffffff"/>',
    ]
    if caption:
        head.append(
            f'<text class="caption" x="{_n(_MARGIN)}" y="{_n(_MARGIN + 14)}">{_xml(caption)}</text>'
        )
    return "\n".join([*head, *parts, "</svg>"]) + "\n"
