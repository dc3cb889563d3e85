"""Diagrams of graphs: Mermaid and Graphviz dot, checked for structure and exact output.

Mermaid cannot run here, so its output is parsed line by line; dot output is parsed in
Python too (and also handed to Graphviz when ``dot`` happens to be installed).
"""

from __future__ import annotations

import itertools
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree

import pytest

from service.core.graph import BranchNode, Graph, MenuNode, Node
from service.core.traffic import NodeTraffic
from service.graphs.loader import load_file, parse
from service.graphs.render import (
    counted,
    dot,
    edges,
    mermaid,
    mermaid_ids,
    node_lines,
    shorten,
    svg,
    traffic_line,
    walk_order,
)
from tests.paths import SHIPPED_GRAPHS, ivr

SUPPORT_LINE = SHIPPED_GRAPHS / "support-line.json"

# One node of each runnable type; hyphens and underscores in ids, quotes in a prompt.
EVERY_TYPE: dict[str, Any] = {
    "id": "every-type",
    "start": "welcome",
    "nodes": {
        "welcome": {
            "type": "say",
            "say": 'Welcome to "Acme" support, where every call matters to us.',
            "next": "office-hours",
        },
        "office-hours": {
            "type": "hours",
            "timezone": "Europe/Amsterdam",
            "weekly": {"mon": ["09:00-17:00"]},
            "open": "main-menu",
            "closed": "voicemail",
        },
        "main-menu": {
            "type": "menu",
            "play": ["https://cdn.example.com/audio/main-menu.wav"],
            "options": {"1": "account", "2": "agent"},
            "on_failure": "bye",
        },
        "account": {
            "type": "collect",
            "say": "Enter your account number.",
            "var": "account",
            "max_digits": 8,
            "next": "lookup",
            "on_failure": "bye",
        },
        "lookup": {
            "type": "http",
            "url": "https://crm.example.com/accounts",
            "method": "POST",
            "save": {"tier": "$.tier"},
            "next": "route",
            "on_error": "agent",
        },
        "route": {
            "type": "branch",
            "cases": [
                {"var": "vars.tier", "op": "eq", "value": "gold", "next": "vip_flag"},
                {"var": "vars.account", "op": "exists", "next": "agent"},
            ],
            "default": "bye",
        },
        "vip_flag": {"type": "set", "vars": {"priority": "high"}, "next": "agent"},
        "agent": {"type": "transfer", "to": "+31201234567", "on_failure": "voicemail"},
        "voicemail": {"type": "voicemail", "say": "Leave a message.", "next": "bye"},
        "bye": {"type": "hangup", "say": "Goodbye."},
    },
}

EVERY_TYPE_MERMAID = """\
flowchart TD
    start((" "))
    n_welcome("welcome<br/>say<br/>Welcome to #quot;Acme#quot; support, where every c…")
    n_office_hours{"office-hours<br/>hours Europe/Amsterdam"}
    n_main_menu{"main-menu<br/>menu<br/>play main-menu.wav"}
    n_account[/"account<br/>collect vars.account<br/>Enter your account number."/]
    n_lookup[["lookup<br/>http POST https://crm.example.com/accounts"]]
    n_route{"route<br/>branch"}
    n_vip_flag["vip_flag<br/>set vars.priority"]
    n_agent(["agent<br/>transfer +31201234567"])
    n_voicemail(["voicemail<br/>voicemail<br/>Leave a message."])
    n_bye(["bye<br/>hangup<br/>Goodbye."])
    start --> n_welcome
    n_welcome --> n_office_hours
    n_office_hours -->|"open"| n_main_menu
    n_office_hours -->|"closed"| n_voicemail
    n_main_menu -->|"1"| n_account
    n_main_menu -->|"2"| n_agent
    n_main_menu -->|"on_failure"| n_bye
    n_account --> n_lookup
    n_account -->|"on_failure"| n_bye
    n_lookup --> n_route
    n_lookup -->|"on_error"| n_agent
    n_route -->|"vars.tier eq gold"| n_vip_flag
    n_route -->|"vars.account exists"| n_agent
    n_route -->|"default"| n_bye
    n_vip_flag --> n_agent
    n_agent -->|"on_failure"| n_voicemail
    n_voicemail --> n_bye
    classDef entry fill:#333,stroke:#333
    class start entry
"""

EVERY_TYPE_DOT = """\
digraph "every-type" {
    "_start" [label="", shape=point, width=0.15];
    "welcome" [label="welcome\\nsay\\nWelcome to \\"Acme\\" support, where every c…", \
shape=box, style=rounded];
    "office-hours" [label="office-hours\\nhours Europe/Amsterdam", shape=diamond];
    "main-menu" [label="main-menu\\nmenu\\nplay main-menu.wav", shape=diamond];
    "account" [label="account\\ncollect vars.account\\nEnter your account number.", \
shape=parallelogram];
    "lookup" [label="lookup\\nhttp POST https://crm.example.com/accounts", shape=component];
    "route" [label="route\\nbranch", shape=diamond];
    "vip_flag" [label="vip_flag\\nset vars.priority", shape=box];
    "agent" [label="agent\\ntransfer +31201234567", shape=box, style=rounded, peripheries=2];
    "voicemail" [label="voicemail\\nvoicemail\\nLeave a message.", shape=box, style=rounded, \
peripheries=2];
    "bye" [label="bye\\nhangup\\nGoodbye.", shape=box, style=rounded, peripheries=2];
    "_start" -> "welcome";
    "welcome" -> "office-hours";
    "office-hours" -> "main-menu" [label="open"];
    "office-hours" -> "voicemail" [label="closed"];
    "main-menu" -> "account" [label="1"];
    "main-menu" -> "agent" [label="2"];
    "main-menu" -> "bye" [label="on_failure"];
    "account" -> "lookup";
    "account" -> "bye" [label="on_failure"];
    "lookup" -> "route";
    "lookup" -> "agent" [label="on_error"];
    "route" -> "vip_flag" [label="vars.tier eq gold"];
    "route" -> "agent" [label="vars.account exists"];
    "route" -> "bye" [label="default"];
    "vip_flag" -> "agent";
    "agent" -> "voicemail" [label="on_failure"];
    "voicemail" -> "bye";
}
"""


def every_type() -> Graph:
    return parse(EVERY_TYPE, "t.json")


def graphs() -> list[Graph]:
    return [load_file(SUPPORT_LINE), every_type()]


# --- what a renderer must show, worked out here independently of service.graphs.render ----------


def expected_label(node: Node, where: str) -> str | None:
    """Label of an exit: none for next, the digit for options (and the first phrase
    that chooses it, when said), the condition for cases."""
    if where == "next":
        return None
    if where.startswith("options/"):
        key = where.removeprefix("options/")
        said = node.phrases.get(key) if isinstance(node, MenuNode) else None
        return f'{key} or "{said[0]}"' if said else key
    match = re.fullmatch(r"cases/(\d+)/next", where)
    if match and isinstance(node, BranchNode):
        case = node.cases[int(match.group(1))]
        return f"{case.var} exists" if case.op == "exists" else f"{case.var} {case.op} {case.value}"
    return where


def expected_edges(graph: Graph) -> list[tuple[str, str | None, str]]:
    return [
        (node.id, expected_label(node, where), target)
        for node in graph.nodes.values()
        for where, target in node.exits.items()
    ]


# --- a small Mermaid reader ---------------------------------------------------------------

MERMAID_SHAPES = {
    "(": ")",
    "{": "}",
    "[": "]",
    "([": "])",
    "[[": "]]",
    "[/": "/]",
}
MERMAID_NODE = re.compile(
    r'    (n_[A-Za-z0-9_]+)(\(\[|\[\[|\[/|\(|\{|\[)"([^"]*)"(\]\)|\]\]|/\]|\)|\}|\])'
)
MERMAID_EDGE = re.compile(r'    ([A-Za-z0-9_]+) -->(?:\|"([^"]*)"\|)? ([A-Za-z0-9_]+)')
MERMAID_ENTITY = re.compile(r"#(\w+);")
MERMAID_NAMES = {"quot": '"', "amp": "&", "lt": "<", "gt": ">"}


def mermaid_decode(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        return chr(int(name)) if name.isdigit() else MERMAID_NAMES[name]

    return MERMAID_ENTITY.sub(one, text)


def read_mermaid(
    text: str,
) -> tuple[dict[str, tuple[str, list[str]]], list[tuple[str, str | None, str]]]:
    """Nodes {mermaid id: (opening bracket, label lines)} and edges (from, label, to)."""
    lines = text.split("\n")
    assert lines[0] == "flowchart TD"
    assert lines[-1] == ""
    nodes: dict[str, tuple[str, list[str]]] = {}
    found: list[tuple[str, str | None, str]] = []
    for line in lines[1:-1]:
        if line in {'    start((" "))', "    classDef entry fill:#333,stroke:#333"}:
            continue
        if line == "    class start entry":
            continue
        if node := MERMAID_NODE.fullmatch(line):
            mermaid_id, opening, label, closing = node.groups()
            assert MERMAID_SHAPES[opening] == closing, line
            assert mermaid_id not in nodes, f"{mermaid_id} declared twice"
            nodes[mermaid_id] = (opening, [mermaid_decode(p) for p in label.split("<br/>")])
        elif edge := MERMAID_EDGE.fullmatch(line):
            source, label, target = edge.groups()
            found.append((source, None if label is None else mermaid_decode(label), target))
        else:
            pytest.fail(f"not a line of a flowchart: {line!r}")
    return nodes, found


# --- a small dot reader -------------------------------------------------------------------

DOT_QUOTED = r'"(?:[^"\\]|\\.)*"'
DOT_ATTRIBUTE = rf"[a-z]+=(?:{DOT_QUOTED}|[A-Za-z0-9.]+)"
DOT_STATEMENT = re.compile(
    rf"    ({DOT_QUOTED})(?: -> ({DOT_QUOTED}))?"
    rf"(?: \[({DOT_ATTRIBUTE}(?:, {DOT_ATTRIBUTE})*)\])?;"
)


def dot_unquote(quoted: str) -> str:
    """A dot string's text; an escaped ``\\n`` becomes a line break."""
    body = quoted[1:-1]
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), body)


def dot_attributes(text: str | None) -> dict[str, str]:
    if text is None:
        return {}
    pairs = re.findall(rf"([a-z]+)=({DOT_QUOTED}|[A-Za-z0-9.]+)", text)
    return {key: dot_unquote(v) if v.startswith('"') else v for key, v in pairs}


def braces_balance(text: str) -> bool:
    """Braces outside quoted strings open and close in order."""
    depth = 0
    for token in re.findall(rf"{DOT_QUOTED}|[{{}}]", text):
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def read_dot(
    text: str,
) -> tuple[dict[str, dict[str, str]], list[tuple[str, str | None, str]]]:
    """Nodes {id: attributes} and edges (from, label, to); fails on anything else."""
    assert braces_balance(text)
    lines = text.split("\n")
    assert re.fullmatch(rf"digraph {DOT_QUOTED} {{", lines[0])
    assert lines[-2:] == ["}", ""]
    nodes: dict[str, dict[str, str]] = {}
    found: list[tuple[str, str | None, str]] = []
    for line in lines[1:-2]:
        statement = DOT_STATEMENT.fullmatch(line)
        assert statement, f"not one dot statement: {line!r}"
        first, second, attributes = statement.groups()
        if second is None:
            assert dot_unquote(first) not in nodes, f"{first} declared twice"
            nodes[dot_unquote(first)] = dot_attributes(attributes)
        else:
            label = dot_attributes(attributes).get("label")
            found.append((dot_unquote(first), label, dot_unquote(second)))
    if shutil.which("dot"):  # Graphviz is optional; when present it must accept the text too
        subprocess.run(["dot", "-Tsvg"], input=text, text=True, capture_output=True, check=True)  # noqa: S607
    return nodes, found


# --- the shipped graph and the small one: structure ---------------------------------------


@pytest.mark.parametrize("graph", graphs(), ids=lambda g: g.id)
def test_mermaid_draws_every_node_once_and_every_exit(graph: Graph) -> None:
    text = mermaid(graph)
    ids = mermaid_ids(graph)
    nodes, found = read_mermaid(text)
    assert set(nodes) == set(ids.values())
    assert len(set(ids.values())) == len(graph.nodes)
    for node in graph.nodes.values():
        _, label = nodes[ids[node.id]]
        assert label[0] == node.id  # the label keeps the real id
        assert label[1].split(" ")[0] == node.type
    by_mermaid_id = {mermaid_id: node_id for node_id, mermaid_id in ids.items()}
    assert found[0] == ("start", None, ids[graph.start])
    drawn = [(by_mermaid_id[s], label, by_mermaid_id[t]) for s, label, t in found[1:]]
    assert drawn == expected_edges(graph)


@pytest.mark.parametrize("graph", graphs(), ids=lambda g: g.id)
def test_dot_draws_every_node_once_and_every_exit(graph: Graph) -> None:
    nodes, found = read_dot(dot(graph))
    assert set(nodes) == {"_start", *graph.nodes}
    for node in graph.nodes.values():
        assert nodes[node.id]["label"].split("\n") == list(node_lines(node))
        assert "shape" in nodes[node.id]
    assert found[0] == ("_start", None, graph.start)
    assert found[1:] == expected_edges(graph)


@pytest.mark.parametrize("graph", graphs(), ids=lambda g: g.id)
def test_both_formats_are_deterministic_and_end_with_a_newline(graph: Graph) -> None:
    for render in (mermaid, dot):
        text = render(graph)
        assert text == render(graph)
        assert text.endswith("\n")
        assert not text.endswith("\n\n")


def test_support_line_shapes_by_kind() -> None:
    graph = load_file(SUPPORT_LINE)
    nodes, _ = read_mermaid(mermaid(graph))
    ids = mermaid_ids(graph)
    expected = {"say": "(", "menu": "{", "transfer": "([", "hangup": "(["}
    for node in graph.nodes.values():
        if node.type in expected:
            assert nodes[ids[node.id]][0] == expected[node.type], node.id
    assert ids["main-menu"] == "n_main_menu"


# --- the small graph: exact output --------------------------------------------------------


def test_every_type_mermaid_exactly() -> None:
    assert mermaid(every_type()) == EVERY_TYPE_MERMAID


def test_every_type_dot_exactly() -> None:
    assert dot(every_type()) == EVERY_TYPE_DOT


def test_edge_labels_of_every_kind_of_exit() -> None:
    labels = {(e.source, e.exit): e.label for e in edges(every_type())}
    assert labels[("welcome", "next")] is None
    assert labels[("main-menu", "options/1")] == "1"
    assert labels[("main-menu", "on_failure")] == "on_failure"
    assert labels[("office-hours", "open")] == "open"
    assert labels[("office-hours", "closed")] == "closed"
    assert labels[("lookup", "on_error")] == "on_error"
    assert labels[("route", "cases/0/next")] == "vars.tier eq gold"
    assert labels[("route", "cases/1/next")] == "vars.account exists"
    assert labels[("route", "default")] == "default"


# --- escaping and safe ids ----------------------------------------------------------------


def tricky() -> Graph:
    return parse(
        {
            "id": "tricky",
            "start": "end",
            "nodes": {
                "end": {"type": "say", "say": 'Say "hi" & <b>|#1;`\\n', "next": "main-menu"},
                "main-menu": {
                    "type": "menu",
                    "say": "Press # or star.",
                    "options": {"#": "main_menu", "*": "o-x"},
                    "on_failure": "o-x",
                },
                "main_menu": {
                    "type": "branch",
                    "cases": [
                        {"var": "caller", "op": "matches", "value": '^(a|b)"$', "next": "o-x"},
                        {"var": "vars.n", "op": "in", "value": ["a", 1, ""], "next": "o-x"},
                        {"var": "vars.n", "op": "ge", "value": 2.5, "next": "o-x"},
                    ],
                    "default": "o-x",
                },
                "o-x": {"type": "hangup"},
            },
        },
        "tricky.json",
    )


def test_mermaid_escapes_labels() -> None:
    text = mermaid(tricky())
    nodes, found = read_mermaid(text)  # a raw quote would have broken a line
    assert 'Say #quot;hi#quot; #amp; #lt;b#gt;#124;#35;1;#96;#92;n"' in text
    assert nodes["n_end"][1] == ["end", "say", 'Say "hi" & <b>|#1;`\\n']
    labels = [label for _, label, _ in found]
    assert labels == [
        None,  # start
        None,  # next
        "#",
        "*",
        "on_failure",
        'caller matches ^(a|b)"$',
        'vars.n in [a, 1, ""]',
        "vars.n ge 2.5",
        "default",
    ]


def test_dot_escapes_labels() -> None:
    text = dot(tricky())
    assert '"end" [label="end\\nsay\\nSay \\"hi\\" & <b>|#1;`\\\\n"' in text
    nodes, found = read_dot(text)
    assert nodes["end"]["label"] == 'end\nsay\nSay "hi" & <b>|#1;`\\n'
    assert ("main_menu", 'caller matches ^(a|b)"$', "o-x") in found


def test_mermaid_ids_are_safe_unique_and_keep_the_real_id_in_the_label() -> None:
    graph = tricky()
    ids = mermaid_ids(graph)
    assert ids == {
        "end": "n_end",
        "main-menu": "n_main_menu",
        "main_menu": "n_main_menu_2",
        "o-x": "n_o_x",
    }
    text = mermaid(graph)
    assert all(re.fullmatch(r"n_[a-z0-9_]+", i) for i in ids.values())
    assert '"main-menu<br/>' in text
    assert '"main_menu<br/>' in text
    for line in text.splitlines()[1:]:
        head = line.strip().split('"')[0]
        assert "-" not in head.replace("-->", ""), line  # no hyphen in an id


def test_labels_cut_long_prompts_and_name_played_files() -> None:
    assert shorten("x" * 40) == "x" * 40
    assert shorten("x" * 41) == "x" * 40 + "…"
    assert shorten("two\n  lines") == "two lines"
    graph = parse(
        {
            "id": "play",
            "start": "a",
            "nodes": {
                "a": {
                    "type": "say",
                    "play": ["https://x.example/a/intro.wav?v=2", "https://x.example/b/two.mp3"],
                    "next": "b",
                },
                "b": {"type": "transfer", "to": "{{vars.agent}}", "on_failure": "c"},
                "c": {"type": "hangup"},
            },
        },
        "play.json",
    )
    assert node_lines(graph.nodes["a"]) == ("a", "say", "play intro.wav, two.mp3")
    assert node_lines(graph.nodes["b"]) == ("b", "transfer {{vars.agent}}")
    assert node_lines(graph.nodes["c"]) == ("c", "hangup")


# --- traffic counts (ivr render --stats) ---------------------------------------------------

# 20 calls through EVERY_TYPE (as service.core.traffic.read gives them); vip_flag has none.
EVERY_TYPE_TRAFFIC = {
    "welcome": NodeTraffic(20, {"next": 19}, ended={"ended_by_caller": 1}),
    "office-hours": NodeTraffic(19, {"open": 15, "closed": 4}),
    "main-menu": NodeTraffic(15, {"options/1": 9, "options/2": 3, "on_failure": 1}, invalid=3,
                             silent=1, ended={"ended_by_caller": 2}),
    "account": NodeTraffic(9, {"next": 8}),  # one caller still there
    "lookup": NodeTraffic(8, {"next": 6, "on_error": 2}),
    "route": NodeTraffic(6, {"cases/1/next": 5, "default": 1}),
    "agent": NodeTraffic(10, {"on_failure": 2}, ended={"transferred": 7, "ended_by_caller": 1}),
    "voicemail": NodeTraffic(6, {"next": 6}),
    "bye": NodeTraffic(8, ended={"hangup_node": 8}),
}  # fmt: skip


def test_traffic_lines_and_counted_labels() -> None:
    assert traffic_line(NodeTraffic()) == "0 in"
    assert traffic_line(EVERY_TYPE_TRAFFIC["main-menu"]) == "15 in, 2 hung up"
    assert traffic_line(EVERY_TYPE_TRAFFIC["account"]) == "9 in, 1 here"
    assert traffic_line(EVERY_TYPE_TRAFFIC["agent"]) == "10 in, 1 hung up, 7 ended"
    assert traffic_line(EVERY_TYPE_TRAFFIC["bye"]) == "8 in, 8 ended"
    assert counted("1", 12) == "1 (12)"
    assert counted(None, 20) == "(20)"
    # One day's counts: a call that entered the day before and left today.
    assert traffic_line(NodeTraffic(0, {"next": 1})) == "0 in"


def counted_edges(graph: Graph) -> list[tuple[str, str | None, str]]:
    """The expected edges, each label with its count (0 for an exit never taken)."""
    return [
        (node.id, counted(expected_label(node, where),
                          EVERY_TYPE_TRAFFIC.get(node.id, NodeTraffic()).exits.get(where, 0)),
         target)
        for node in graph.nodes.values()
        for where, target in node.exits.items()
    ]  # fmt: skip


def test_mermaid_draws_the_counts_on_every_edge_and_node() -> None:
    graph = every_type()
    text = mermaid(graph, EVERY_TYPE_TRAFFIC)
    nodes, found = read_mermaid(text)
    ids = mermaid_ids(graph)
    by_mermaid_id = {mermaid_id: node_id for node_id, mermaid_id in ids.items()}
    for node in graph.nodes.values():
        _, label = nodes[ids[node.id]]
        expected = traffic_line(EVERY_TYPE_TRAFFIC.get(node.id, NodeTraffic()))
        assert label == [*node_lines(node), expected]
    assert found[0] == ("start", None, ids[graph.start])
    drawn = [(by_mermaid_id[s], label, by_mermaid_id[t]) for s, label, t in found[1:]]
    assert drawn == counted_edges(graph)
    assert '    n_main_menu -->|"1 (9)"| n_account' in text
    assert '    n_welcome -->|"(19)"| n_office_hours' in text
    assert '    n_route -->|"vars.tier eq gold (0)"| n_vip_flag' in text
    assert (
        '    n_main_menu{"main-menu<br/>menu<br/>play main-menu.wav<br/>15 in, 2 hung up"}' in text
    )
    assert '    n_vip_flag["vip_flag<br/>set vars.priority<br/>0 in"]' in text


def test_dot_draws_the_counts_on_every_edge_and_node() -> None:
    graph = every_type()
    text = dot(graph, EVERY_TYPE_TRAFFIC)
    nodes, found = read_dot(text)
    for node in graph.nodes.values():
        expected = traffic_line(EVERY_TYPE_TRAFFIC.get(node.id, NodeTraffic()))
        assert nodes[node.id]["label"].split("\n") == [*node_lines(node), expected]
    assert found[0] == ("_start", None, graph.start)
    assert found[1:] == counted_edges(graph)
    assert '    "main-menu" -> "account" [label="1 (9)"];' in text
    assert '    "welcome" -> "office-hours" [label="(19)"];' in text


def test_counts_that_add_up_are_drawn_so() -> None:
    """Per node: entries = the edges out + the ends (hung up, ended) + the calls there."""
    graph = every_type()
    for render in (mermaid, dot):
        assert render(graph, EVERY_TYPE_TRAFFIC) != render(graph)
        assert render(graph, None) == render(graph)  # no counts: the plain diagram
    for node_id, traffic in EVERY_TYPE_TRAFFIC.items():
        assert traffic.entered == traffic.left + traffic.here, node_id
    assert "0 in" in mermaid(graph, {})


def test_walk_order_starts_at_start_and_follows_the_exits_breadth_first() -> None:
    assert walk_order(every_type()) == [
        "welcome", "office-hours", "main-menu", "voicemail", "account", "agent", "bye",
        "lookup", "route", "vip_flag",
    ]  # fmt: skip
    assert walk_order(tricky()) == ["end", "main-menu", "main_menu", "o-x"]


# --- SVG -----------------------------------------------------------------------------------

SVG_NS = "{http://www.w3.org/2000/svg}"


@dataclass(frozen=True)
class DrawnNode:
    kind: str  # the class after "node": say, decision, terminal...
    type: str
    lines: list[str]
    box: tuple[float, float, float, float]  # x, y, width, height of its outline


def svg_tree(text: str) -> ElementTree.Element:
    """The document parsed as XML: a raw ``<``, ``&`` or quote of a label would fail here."""
    root = ElementTree.fromstring(text)  # noqa: S314 - our own output, parsed to check it
    assert root.tag == f"{SVG_NS}svg"
    return root


def outline(group: ElementTree.Element) -> tuple[float, float, float, float]:
    """The bounding box of a node's first shape (a rect or a polygon)."""
    shape = next(iter(group))
    if shape.tag == f"{SVG_NS}rect":
        x, y, width, height = (float(shape.attrib[k]) for k in ("x", "y", "width", "height"))
        return x, y, width, height
    points = [tuple(map(float, p.split(","))) for p in shape.attrib["points"].split()]
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def read_svg(text: str) -> tuple[dict[str, DrawnNode], list[tuple[str, str | None, str, str]]]:
    """Nodes {id: what is drawn} and edges (from, label, to, exit), the start's first."""
    root = svg_tree(text)
    nodes: dict[str, DrawnNode] = {}
    found: list[tuple[str, str | None, str, str]] = []
    for group in root.iter(f"{SVG_NS}g"):
        classes = group.attrib.get("class", "").split()
        if classes[:1] == ["node"]:
            node_id = group.attrib["data-node"]
            assert node_id not in nodes, f"{node_id} drawn twice"
            lines = [t.text or "" for t in group.iter(f"{SVG_NS}text")]
            nodes[node_id] = DrawnNode(classes[1], group.attrib["data-type"], lines, outline(group))
        elif classes[:1] == ["edge"]:
            labels = [t.text or "" for t in group.iter(f"{SVG_NS}text")]
            assert len(labels) <= 1
            assert group.find(f"{SVG_NS}path") is not None
            found.append((group.attrib["data-from"], labels[0] if labels else None,
                          group.attrib["data-to"], group.attrib["data-exit"]))  # fmt: skip
    start = [e for e in found if e[3] == "start"]
    return nodes, start + [e for e in found if e[3] != "start"]


def title_of(root: ElementTree.Element) -> str | None:
    title = root.find(f"{SVG_NS}title")
    assert title is not None
    return title.text


def overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@pytest.mark.parametrize("graph", graphs(), ids=lambda g: g.id)
def test_svg_draws_every_node_once_and_every_exit(graph: Graph) -> None:
    nodes, found = read_svg(svg(graph))
    assert set(nodes) == set(graph.nodes)
    for node in graph.nodes.values():
        assert nodes[node.id].lines == list(node_lines(node))
        assert nodes[node.id].type == node.type
    assert found[0] == ("", None, graph.start, "start")
    assert [(s, label, t) for s, label, t, _ in found[1:]] == expected_edges(graph)
    assert [where for *_, where in found[1:]] == [e.exit for e in edges(graph)]


@pytest.mark.parametrize("graph", graphs(), ids=lambda g: g.id)
def test_svg_lays_nodes_out_in_rows_from_the_start_without_overlap(graph: Graph) -> None:
    root = svg_tree(svg(graph))
    nodes, _ = read_svg(svg(graph))
    width, height = float(root.attrib["width"]), float(root.attrib["height"])
    assert root.attrib["viewBox"] == f"0 0 {root.attrib['width']} {root.attrib['height']}"
    boxes = {node_id: drawn.box for node_id, drawn in nodes.items()}
    for node_id, (x, y, w, h) in boxes.items():
        assert 0 <= x <= x + w <= width, node_id
        assert 0 <= y <= y + h <= height, node_id
    for a, b in itertools.combinations(boxes, 2):
        assert not overlap(boxes[a], boxes[b]), (a, b)
    top = min(y for _, y, _, _ in boxes.values())
    assert boxes[graph.start][1] == top  # the start alone in the first row
    assert [n for n, box in boxes.items() if box[1] == top] == [graph.start]
    # Every node is drawn below a node that leads to it (the rows follow the walk).
    for node_id in graph.nodes:
        sources = [e.source for e in edges(graph) if e.target == node_id]
        if node_id != graph.start:
            assert any(boxes[s][1] < boxes[node_id][1] for s in sources), node_id


def test_svg_node_shapes_by_kind() -> None:
    nodes, _ = read_svg(svg(every_type()))
    kinds = {node_id: drawn.kind for node_id, drawn in nodes.items()}
    assert kinds == {
        "welcome": "say", "office-hours": "decision", "main-menu": "decision",
        "account": "collect", "lookup": "http", "route": "decision", "vip_flag": "plain",
        "agent": "terminal", "voicemail": "terminal", "bye": "terminal",
    }  # fmt: skip


def test_svg_draws_the_counts_on_every_edge_and_node() -> None:
    graph = every_type()
    text = svg(graph, EVERY_TYPE_TRAFFIC)
    nodes, found = read_svg(text)
    for node in graph.nodes.values():
        expected = traffic_line(EVERY_TYPE_TRAFFIC.get(node.id, NodeTraffic()))
        assert nodes[node.id].lines == [*node_lines(node), expected]
    assert [(s, label, t) for s, label, t, _ in found[1:]] == counted_edges(graph)
    root = svg_tree(text)
    counts = {
        (g.attrib["data-from"], g.attrib["data-exit"]): (g.attrib["data-count"], g.attrib["class"])
        for g in root.iter(f"{SVG_NS}g")
        if g.attrib.get("class", "").startswith("edge") and g.attrib["data-exit"] != "start"
    }
    assert counts[("main-menu", "options/1")] == ("9", "edge")
    assert counts[("route", "cases/0/next")] == ("0", "edge unused")  # never taken: dashed
    assert svg(graph, None) == svg(graph)
    assert "data-count" not in svg(graph)


def test_svg_escapes_user_text() -> None:
    graph = tricky()
    text = svg(graph, caption='Tricky <script>alert("x")</script> & co')
    nodes, found = read_svg(text)  # well-formed XML whatever the labels hold
    assert nodes["end"].lines == ["end", "say", 'Say "hi" & <b>|#1;`\\n']
    assert ("main_menu", 'caller matches ^(a|b)"$', "o-x", "cases/0/next") in found
    assert "<script>" not in text
    assert "<b>" not in text
    assert title_of(svg_tree(text)) == 'Tricky <script>alert("x")</script> & co'


def test_svg_replaces_characters_xml_cannot_hold() -> None:
    graph = parse(
        {
            "id": "odd",
            "start": "a",
            "nodes": {
                "a": {"type": "say", "say": "bell \x07 and \ud800 here", "next": "b"},
                "b": {"type": "hangup"},
            },
        },
        "odd.json",
    )
    text = svg(graph)
    text.encode("utf-8")  # no lone surrogate left
    nodes, _ = read_svg(text)
    assert nodes["a"].lines[2] == "bell \ufffd and \ufffd here"


def test_svg_draws_loops_back_up_and_nodes_no_call_reaches() -> None:
    graph = parse(
        {
            "id": "loops",
            "start": "menu",
            "nodes": {
                "menu": {"type": "menu", "say": "Press 1 to hear this again.",
                         "options": {"1": "again", "2": "bye"}, "on_failure": "bye"},
                "again": {"type": "say", "say": "Once more.", "next": "menu"},
                "bye": {"type": "hangup"},
                "orphan": {"type": "say", "say": "Nobody comes here.", "next": "bye"},
            },
        },
        "loops.json",
    )  # fmt: skip
    nodes, found = read_svg(svg(graph))
    assert ("again", None, "menu", "next") in found
    boxes = {node_id: drawn.box for node_id, drawn in nodes.items()}
    assert boxes["menu"][1] < boxes["again"][1] < boxes["orphan"][1]  # orphan: rows below
    assert boxes["bye"][1] > boxes["menu"][1]


def test_svg_is_deterministic_and_a_caption_is_drawn_and_titles_it() -> None:
    graph = load_file(SUPPORT_LINE)
    text = svg(graph, caption="support-line · today: 3 calls")
    assert text == svg(graph, caption="support-line · today: 3 calls")
    assert text.endswith("</svg>\n")
    root = svg_tree(text)
    assert root.attrib["data-graph"] == "support-line"
    assert root.attrib["data-version"] == graph.version
    captions = [t.text for t in root.iter(f"{SVG_NS}text") if t.attrib.get("class") == "caption"]
    assert captions == ["support-line · today: 3 calls"]
    assert title_of(svg_tree(svg(graph))) == f"IVR graph support-line, version {graph.version}"


def test_ivr_render_prints_svg() -> None:
    done = ivr("render", str(SUPPORT_LINE), "--format", "svg")
    assert done.returncode == 0, done.stderr
    assert done.stdout == svg(load_file(SUPPORT_LINE))
