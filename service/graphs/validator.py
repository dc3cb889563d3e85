"""The rules every loaded graph obeys (docs/graphs.md), beyond what the schema says.

:func:`service.graphs.loader.parse` has already checked the JSON Schema, that ``start``
exists and that every exit names a node. :func:`check` adds the rules below and
returns every problem at once, each at the JSON path of the offending place.

Errors (the graph is refused):

1. Every node is reachable from ``start`` (reported at ``/nodes/<id>``).
2. No dead ends: from every reachable node some path reaches a node that ends
   the call's walk (hangup, transfer, queue, voicemail or callback).
3. Every loop passes through a node that waits for the caller (menu, collect):
   a loop of other nodes is reported at the exit that closes it, with the loop
   written out. Every waiting node has its ``on_failure`` exit.
4. ``vars.NAME`` is read only where some path from ``start`` may have set it
   (a graph's ``params`` are set from the start: they come with the call).
   ``collect`` sets its ``var`` and ``http`` the keys of its ``save`` only on
   their ``next`` exit; ``set`` sets its keys on ``next`` (its own values are
   rendered with the variables as they were on entry). Reads are the templates
   of prompts (``say``, ``play`` and the ``invalid``/``no_input`` prompts),
   ``transfer`` ``to``/``from``, ``http`` ``url``, header values and every
   string in ``body``, ``set`` values, and ``branch`` cases on ``vars.NAME``
   (``exists`` may test a variable that is not set yet). A template name other
   than ``caller``, ``called``, ``call_id`` and ``vars.NAME`` is unknown.
5. Settings that cannot work: ``collect`` ``min_digits`` above ``max_digits``;
   a ``collect`` ``pattern`` or a ``branch`` ``matches`` value that is not a
   regular expression; an ``hours`` time zone that is not an IANA zone, a
   weekly range that starts and ends at the same time or ends after 24:00, a
   holiday that is not a real date; an ``http`` ``save`` path that is not of
   the syntax of :func:`service.core.jsonpath.parse`.

Warnings (the graph loads; ``ivr validate`` shows them):

- a variable that is set but never read (at the place that sets it);
- a ``branch`` ``exists`` case on a variable no node ever sets (never true);
- a ``transfer`` ``to`` that may render empty: it reads a variable that is not
  set on every path to the transfer;
- a ``collect`` whose ``end_key`` is a digit (the caller cannot type it);
- an ``hours`` node without any weekly range (always closed);
- a graph that lists no ``numbers``.

:func:`check_queues` checks a graph against the queues of its directory
(``queues.json``, ``service.graphs.queues``); ``service.graphs.loader.load_directory``
calls it. Errors: a ``queue`` or ``callback`` node naming a queue that is not
defined (at ``/nodes/<id>/queue``); a ``queue`` node without ``on_callback`` whose
queue offers callbacks (``callback_after_s``: the caller could press 1 with nowhere
to go; at ``/nodes/<id>``). Warnings: ``on_callback`` on a node whose queue offers
no callbacks (never taken); a queue prompt (``hold``, ``callback_offer``) reading a
variable that is not set on every path to the node (it renders empty there).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from service.core import jsonpath, templates
from service.core.graph import (
    TERMINAL_TYPES,
    WAITING_TYPES,
    BranchNode,
    CallbackNode,
    CollectNode,
    Graph,
    HoursNode,
    HttpNode,
    MenuNode,
    Node,
    Problem,
    Prompt,
    QueueNode,
    SetNode,
    Severity,
    TransferNode,
    machine_entry,
    pointer,
    speaks,
)
from service.core.queues import Queue

# The terminal node types (TERMINAL_TYPES) in the order the spec names them.
_TERMINALS_IN_WORDS = "hangup, transfer, queue, voicemail or callback"
# Template names every call has.
CALL_NAMES = ("caller", "called", "call_id", "amd")
VAR_PREFIX = "vars."
VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

Pointer = tuple[str | int, ...]  # the parts of a JSON pointer, before escaping


# How rule 3's problems begin (service.graphs.check recognises them by it).
LOOP_WITHOUT_WAITING = "loop that never waits for the caller"


def check(graph: Graph) -> list[Problem]:
    """Every problem of ``graph`` (errors and warnings), sorted by path then message."""
    order = _reachable(graph)
    found: list[Problem] = []
    found += _unreachable_nodes(graph, order)
    found += _dead_ends(graph, order)
    found += _loops_without_waiting(graph, order)
    found += _failure_exits(graph)
    found += _variables(graph, order)
    found += _collect_settings(graph)
    found += _branch_patterns(graph)
    found += _opening_hours(graph)
    found += _save_paths(graph)
    found += _speech(graph)
    found += _machines(graph)
    found += _numbers(graph)
    unique = {(p.path, p.message, p.severity): p for p in found}
    return sorted(unique.values(), key=lambda p: (p.path, p.message))


# -- helpers -----------------------------------------------------------------


def _problem(
    graph: Graph, parts: Iterable[object], message: str, severity: Severity = "error"
) -> Problem:
    return Problem(graph.source, pointer(parts), message, severity)


def _exit_path(node: Node, exit_name: str) -> Pointer:
    """The JSON path of an exit: ``options/1`` of ``menu`` is ``/nodes/menu/options/1``."""
    return ("nodes", node.id, *exit_name.split("/"))


def _successors(graph: Graph, node: Node) -> Iterator[tuple[str, str]]:
    """(exit name, target id) of each exit of ``node``, in file order."""
    for exit_name, target in node.exits.items():
        if target in graph.nodes:
            yield exit_name, target


def _reachable(graph: Graph) -> list[str]:
    """The nodes reachable from ``start`` (and from ``amd.on_machine``), in
    breadth-first order."""
    if graph.start not in graph.nodes:
        return []
    order: list[str] = []
    seen: set[str] = set()
    for root in (graph.start, machine_entry(graph)):
        if root is None or root in seen:
            continue
        order.append(root)
        seen.add(root)
        queue = deque([root])
        while queue:
            node = graph.nodes[queue.popleft()]
            for _, target in _successors(graph, node):
                if target not in seen:
                    seen.add(target)
                    order.append(target)
                    queue.append(target)
    return order


def _ranked(graph: Graph, order: list[str]) -> list[str]:
    """Every node: the reachable ones in walking order, then the others in file order."""
    reached = set(order)
    return order + [node_id for node_id in graph.nodes if node_id not in reached]


# -- rule 1: reachability ----------------------------------------------------


def _unreachable_nodes(graph: Graph, order: list[str]) -> list[Problem]:
    reached = set(order)
    message = f"unreachable: no path from start ({graph.start}) leads here"
    return [
        _problem(graph, ["nodes", node_id], message)
        for node_id in graph.nodes
        if node_id not in reached
    ]


# -- rule 2: dead ends -------------------------------------------------------


def _dead_ends(graph: Graph, order: list[str]) -> list[Problem]:
    """Reachable nodes from which no terminal node can be reached."""
    leads_to: dict[str, list[str]] = {node_id: [] for node_id in graph.nodes}
    for node in graph.nodes.values():
        for _, target in _successors(graph, node):
            leads_to[target].append(node.id)
    finishing = {node.id for node in graph.nodes.values() if node.type in TERMINAL_TYPES}
    queue = deque(finishing)
    while queue:
        for source in leads_to[queue.popleft()]:
            if source not in finishing:
                finishing.add(source)
                queue.append(source)
    message = f"no path from here reaches {_TERMINALS_IN_WORDS}"
    return [
        _problem(graph, ["nodes", node_id], message)
        for node_id in order
        if node_id not in finishing
    ]


# -- rule 3: loops must wait for the caller -----------------------------------


def _loops_without_waiting(graph: Graph, order: list[str]) -> list[Problem]:
    """Loops among nodes that do not wait for the caller: one problem per region of
    such nodes that reach each other, at the exit that closes one of its loops."""
    quick = [n for n in _ranked(graph, order) if graph.nodes[n].type not in WAITING_TYPES]
    rank = {node_id: index for index, node_id in enumerate(quick)}
    region_of: dict[str, frozenset[str]] = {}
    for region in _quick_regions(graph, quick):
        looping = len(region) > 1 or any(
            target in region for node_id in region for _, target in _quick_exits(graph, node_id)
        )
        if looping:
            region_of.update(dict.fromkeys(region, region))
    reported: set[str] = set()
    found: list[Problem] = []
    for entry in quick:  # the first node of a region is the one a call meets first
        if entry in reported or entry not in region_of:
            continue
        region = region_of[entry]
        reported |= region
        loop, closing_exit = _shortest_loop(graph, entry, set(region))
        message = (
            f"{LOOP_WITHOUT_WAITING}: {' -> '.join(loop)} "
            "(every loop must pass through a menu or collect)"
        )
        others = sorted(region - set(loop), key=rank.__getitem__)
        if others:
            message += f"; other such loops here also pass through {', '.join(others)}"
        found.append(_problem(graph, _exit_path(graph.nodes[loop[-2]], closing_exit), message))
    return found


def _quick_exits(graph: Graph, node_id: str) -> Iterator[tuple[str, str]]:
    """Exits of a non-waiting node to non-waiting nodes."""
    for exit_name, target in _successors(graph, graph.nodes[node_id]):
        if graph.nodes[target].type not in WAITING_TYPES:
            yield exit_name, target


def _quick_regions(graph: Graph, quick: list[str]) -> list[frozenset[str]]:
    """The strongly connected regions of the non-waiting nodes ``quick`` (nodes that
    reach each other without waiting), by Tarjan's algorithm without recursion: one
    pass over nodes and exits, so that a graph of 10,000 nodes is checked at once
    (reaching out from every node was quadratic)."""
    members = set(quick)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    regions: list[frozenset[str]] = []

    def targets(node_id: str) -> Iterator[str]:
        return (t for _, t in _quick_exits(graph, node_id) if t in members)

    def visit(node_id: str) -> None:
        index[node_id] = low[node_id] = len(index)
        stack.append(node_id)
        on_stack.add(node_id)
        work.append((node_id, targets(node_id)))

    for root in quick:
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = []
        visit(root)
        while work:
            node_id, pending = work[-1]
            for target in pending:
                if target not in index:
                    visit(target)
                    break
                if target in on_stack:
                    low[node_id] = min(low[node_id], index[target])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node_id])
                if low[node_id] == index[node_id]:
                    region: set[str] = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        region.add(member)
                        if member == node_id:
                            break
                    regions.append(frozenset(region))
    return regions


def _shortest_loop(graph: Graph, entry: str, region: set[str]) -> tuple[list[str], str]:
    """The shortest loop from ``entry`` back to it inside ``region``, and the
    name of the exit that closes it."""
    came_from: dict[str, str] = {entry: entry}
    queue = deque([entry])
    while queue:
        node_id = queue.popleft()
        for exit_name, target in _quick_exits(graph, node_id):
            if target == entry:
                loop = [entry]
                step = node_id
                while step != entry:
                    loop.insert(1, step)
                    step = came_from[step]
                return [*loop, entry], exit_name
            if target in region and target not in came_from:
                came_from[target] = node_id
                queue.append(target)
    raise AssertionError(f"{entry} is in a loop but no loop was found")  # pragma: no cover


def _failure_exits(graph: Graph) -> list[Problem]:
    """Every node that waits for the caller says where to go when the caller fails."""
    return [
        _problem(
            graph,
            ["nodes", node.id, "on_failure"],
            f"a {node.type} needs on_failure: where the call goes after max_attempts bad or "
            "empty tries",
        )
        for node in graph.nodes.values()
        if node.type in WAITING_TYPES and not node.exits.get("on_failure")
    ]


# -- rule 4: variables -------------------------------------------------------


@dataclass(frozen=True)
class _Read:
    """A template name read at ``path`` (``caller``, ``vars.account``, ...)."""

    node: str
    path: Pointer
    name: str
    exists_test: bool = False  # a branch ``exists`` case: the variable may be unset
    destination: bool = False  # a transfer ``to``: must not render empty


@dataclass(frozen=True)
class _Assignment:
    """``var`` is set at ``path`` when the call leaves ``node`` by ``exit``."""

    node: str
    path: Pointer
    var: str
    exit: str


def _reads(node: Node) -> list[_Read]:
    """Every template name ``node`` reads, with the JSON path of the read."""
    found: list[_Read] = []
    here: Pointer = ("nodes", node.id)
    found += _prompt_reads(node.id, here, node.prompt)
    if isinstance(node, MenuNode | CollectNode):
        found += _prompt_reads(node.id, (*here, "invalid"), node.invalid)
        found += _prompt_reads(node.id, (*here, "no_input"), node.no_input)
    if isinstance(node, TransferNode):
        found += _template_reads(node.id, (*here, "to"), node.to, destination=True)
        if node.from_ is not None:
            found += _template_reads(node.id, (*here, "from"), node.from_)
    if isinstance(node, SetNode):
        for name, value in node.vars.items():
            found += _template_reads(node.id, (*here, "vars", name), value)
    if isinstance(node, HttpNode):
        found += _template_reads(node.id, (*here, "url"), node.url)
        for name, value in node.headers.items():
            found += _template_reads(node.id, (*here, "headers", name), value)
        found += _body_reads(node.id, (*here, "body"), node.body)
    if isinstance(node, BranchNode):
        for index, case in enumerate(node.cases):
            path = (*here, "cases", index, "var")
            found.append(_Read(node.id, path, case.var, exists_test=case.op == "exists"))
    return found


def _prompt_reads(node_id: str, here: Pointer, prompt: Prompt | None) -> list[_Read]:
    if prompt is None:
        return []
    found: list[_Read] = []
    if prompt.say is not None:
        found += _template_reads(node_id, (*here, "say"), prompt.say)
    for index, url in enumerate(prompt.play):
        found += _template_reads(node_id, (*here, "play", index), url)
    return found


def _body_reads(node_id: str, here: Pointer, body: Any) -> list[_Read]:
    """The templates of every string anywhere inside an http body."""
    if isinstance(body, str):
        return _template_reads(node_id, here, body)
    found: list[_Read] = []
    if isinstance(body, Mapping):
        for key, value in body.items():
            found += _body_reads(node_id, (*here, key), value)
    elif isinstance(body, list):
        for index, value in enumerate(body):
            found += _body_reads(node_id, (*here, index), value)
    return found


def _template_reads(
    node_id: str, path: Pointer, text: str, *, destination: bool = False
) -> list[_Read]:
    return [_Read(node_id, path, name, destination=destination) for name in templates.names(text)]


def _assignments(node: Node) -> list[_Assignment]:
    """The variables ``node`` sets, where, and on which exit."""
    here: Pointer = ("nodes", node.id)
    if isinstance(node, CollectNode):
        return [_Assignment(node.id, (*here, "var"), node.var, "next")]
    if isinstance(node, SetNode):
        return [_Assignment(node.id, (*here, "vars", name), name, "next") for name in node.vars]
    if isinstance(node, HttpNode):
        return [_Assignment(node.id, (*here, "save", name), name, "next") for name in node.save]
    return []


def template_variable(name: str) -> str | None:
    """``account`` for the template name ``vars.account``; None for other names (and
    for ``vars.`` followed by something that is not a variable name)."""
    if not name.startswith(VAR_PREFIX):
        return None
    var = name.removeprefix(VAR_PREFIX)
    return var if VAR_NAME.fullmatch(var) else None


def _entry_vars(
    graph: Graph,
    order: list[str],
    initial: frozenset[str],
    combine: Callable[[list[frozenset[str]]], frozenset[str]],
) -> dict[str, frozenset[str]]:
    """For each reachable node, the variables set on entry: ``combine`` of what each
    incoming exit carries (the call starts at ``start`` with none). A fixed point."""
    incoming: dict[str, list[tuple[str, str]]] = {node_id: [] for node_id in order}
    for node_id in order:
        for exit_name, target in _successors(graph, graph.nodes[node_id]):
            incoming[target].append((node_id, exit_name))
    sets = {node_id: _assignments(graph.nodes[node_id]) for node_id in order}
    entry = {node_id: initial for node_id in order}
    machine = machine_entry(graph)
    changed = True
    while changed:
        changed = False
        for node_id in order:
            arriving = [
                entry[source] | {a.var for a in sets[source] if a.exit == exit_name}
                for source, exit_name in incoming[node_id]
            ]
            if node_id == graph.start:
                arriving.append(frozenset(graph.params))
            if node_id == machine:  # a machine's verdict may come wherever the call is
                arriving += [entry[source] for source in order if source != node_id]
                arriving.append(frozenset(graph.params))
            combined = combine(arriving)
            if combined != entry[node_id]:
                entry[node_id] = combined
                changed = True
    return entry


def _union(sets: list[frozenset[str]]) -> frozenset[str]:
    return frozenset().union(*sets)


def _intersection(sets: list[frozenset[str]]) -> frozenset[str]:
    return frozenset.intersection(*sets)


def _variables(graph: Graph, order: list[str]) -> list[Problem]:
    """Rule 4: every template name read is known and, for ``vars.NAME``, may be set
    where it is read; a variable set but never read is a warning."""
    return _checked_reads(graph, order) + _unread_variables(graph)


def _checked_reads(graph: Graph, order: list[str]) -> list[Problem]:
    reached = set(order)
    set_on_some_path = {a.var for node_id in order for a in _assignments(graph.nodes[node_id])}
    set_on_some_path |= set(graph.params)
    may = _entry_vars(graph, order, frozenset(), _union)
    surely = _entry_vars(graph, order, frozenset(set_on_some_path), _intersection)
    found: list[Problem] = []
    for node in graph.nodes.values():
        for read in _reads(node):
            if read.name in CALL_NAMES:
                continue
            var = template_variable(read.name)
            if var is None:
                message = (
                    f"unknown template name {{{{{read.name}}}}}: "
                    "use caller, called, call_id, amd or vars.NAME"
                )
                found.append(_problem(graph, read.path, message))
            elif node.id in reached:
                found += _check_read(
                    graph, read, var, may[node.id], surely[node.id], set_on_some_path
                )
    return found


def _unread_variables(graph: Graph) -> list[Problem]:
    read_anywhere = {
        template_variable(read.name) for node in graph.nodes.values() for read in _reads(node)
    }
    found: list[Problem] = [
        _problem(graph, ["params", index], f"parameter {name} is never read", "warning")
        for index, name in enumerate(graph.params)
        if name not in read_anywhere
    ]
    for node in graph.nodes.values():
        for assignment in _assignments(node):
            if assignment.var not in read_anywhere:
                message = f"vars.{assignment.var} is set here but never read"
                found.append(_problem(graph, assignment.path, message, "warning"))
    return found


def _check_read(
    graph: Graph,
    read: _Read,
    var: str,
    may: frozenset[str],
    surely: frozenset[str],
    set_on_some_path: set[str],
) -> list[Problem]:
    """One read of ``vars.<var>`` in a reachable node, which ``may`` (or ``surely``)
    have been set on entry."""
    if read.exists_test:
        if var in set_on_some_path:
            return []
        message = f"vars.{var} is set on no path from start: this case is never true"
        return [_problem(graph, read.path, message, "warning")]
    if var not in may:
        message = f"vars.{var} is not set on any path from start to here"
        return [_problem(graph, read.path, message)]
    if read.destination and var not in surely:
        message = f"may render empty: vars.{var} is not set on every path from start to here"
        return [_problem(graph, read.path, message, "warning")]
    return []


# -- rule 5: settings that cannot work ---------------------------------------


def _collect_settings(graph: Graph) -> list[Problem]:
    found: list[Problem] = []
    for node in graph.nodes.values():
        if not isinstance(node, CollectNode):
            continue
        here = ("nodes", node.id)
        if node.min_digits > node.max_digits:
            found.append(
                _problem(
                    graph,
                    (*here, "min_digits"),
                    f"min_digits {node.min_digits} is more than max_digits {node.max_digits}",
                )
            )
        if node.pattern is not None:
            reason = _regex_error(node.pattern)
            if reason:
                found.append(_problem(graph, (*here, "pattern"), reason))
        if node.end_key.isdigit():
            message = (
                f"end_key {node.end_key!r} is a digit: the caller cannot enter "
                f"{node.end_key} as part of vars.{node.var}"
            )
            found.append(_problem(graph, (*here, "end_key"), message, "warning"))
    return found


def _regex_error(pattern: str) -> str | None:
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"not a valid regular expression: {exc}"
    return None


def _branch_patterns(graph: Graph) -> list[Problem]:
    found: list[Problem] = []
    for node in graph.nodes.values():
        if not isinstance(node, BranchNode):
            continue
        for index, case in enumerate(node.cases):
            if case.op != "matches":
                continue
            reason = _regex_error(str(case.value))
            if reason:
                found.append(_problem(graph, ("nodes", node.id, "cases", index, "value"), reason))
    return found


def _opening_hours(graph: Graph) -> list[Problem]:
    found: list[Problem] = []
    for node in graph.nodes.values():
        if not isinstance(node, HoursNode):
            continue
        here = ("nodes", node.id)
        if not _is_time_zone(node.timezone):
            message = f"{node.timezone!r} is not an IANA time zone (like Europe/Amsterdam)"
            found.append(_problem(graph, (*here, "timezone"), message))
        if not any(node.weekly.values()):
            message = "no weekly opening hours: the line is always closed"
            found.append(_problem(graph, (*here, "weekly"), message, "warning"))
        for day, ranges in node.weekly.items():
            for index, text in enumerate(ranges):
                reason = _range_error(text)
                if reason:
                    found.append(_problem(graph, (*here, "weekly", day, index), reason))
        for index, text in enumerate(node.holidays):
            if not _is_date(text):
                message = f"{text!r} is not a real date"
                found.append(_problem(graph, (*here, "holidays", index), message))
    return found


def _is_time_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder ("America")
        return False
    return True


def _range_error(text: str) -> str | None:
    """What is wrong with a weekly range ``HH:MM-HH:MM`` (the schema checked its form).
    A range whose end is before its start runs past midnight: that is fine."""
    start, end = text.split("-")
    if start == end:
        return f"empty range: {text} starts and ends at the same time (a whole day is 00:00-24:00)"
    if end.startswith("24:") and end != "24:00":
        return f"{end} is not a time of day: 24:00 ends a day"
    return None


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _save_paths(graph: Graph) -> list[Problem]:
    found: list[Problem] = []
    for node in graph.nodes.values():
        if not isinstance(node, HttpNode):
            continue
        for var, path in node.save.items():
            try:
                jsonpath.parse(path)
            except ValueError as exc:
                message = (
                    f"unsupported JSON path {path!r}: {exc} (write like $.customer.items[0].id)"
                )
                found.append(_problem(graph, ("nodes", node.id, "save", var), message))
    return found


def _speech(graph: Graph) -> list[Problem]:
    """Spoken answers: ``phrases`` only where words are heard, and only for the
    menu's options; a menu that hears only words needs phrases."""
    found: list[Problem] = []
    for node in graph.nodes.values():
        if not isinstance(node, MenuNode | CollectNode):
            continue
        here: Pointer = ("nodes", node.id)
        hears = speaks(node.input)
        if node.speech_locale is not None and not hears:
            message = f"speech_locale is not used: input is {node.input} (keys only)"
            found.append(_problem(graph, (*here, "speech_locale"), message, "warning"))
        if not isinstance(node, MenuNode):
            continue
        if node.phrases and not hears:
            message = (
                f"phrases are never heard: input is {node.input}; use input speech or dtmf speech"
            )
            found.append(_problem(graph, (*here, "phrases"), message))
            continue
        for key in node.phrases:
            if key not in node.options:
                message = f"phrases for option {key}, which is not one of the menu's options"
                found.append(_problem(graph, (*here, "phrases", key), message))
        if hears and not node.phrases:
            message = "no phrases: nothing the caller says chooses an option"
            severity: Severity = "error" if node.input == "speech" else "warning"
            found.append(_problem(graph, here, message, severity))
    return found


def _machines(graph: Graph) -> list[Problem]:
    """``amd.on_machine`` is taken only when the graph detects machines."""
    amd = graph.amd
    if amd is None or amd.enabled or amd.on_machine is None:
        return []
    message = (
        "never taken: amd.enabled is false, so no call is ever known to be a machine "
        "(the nodes only it leads to are unreachable)"
    )
    return [_problem(graph, ("amd", "on_machine"), message)]


def _numbers(graph: Graph) -> list[Problem]:
    """A graph that answers no number and takes no params is probably a mistake
    (an outbound graph declares the params its calls come with)."""
    if graph.numbers or graph.params:
        return []
    message = "answers no number: only reachable as IVR_DEFAULT_GRAPH or for outbound calls"
    return [_problem(graph, ["numbers"], message, "warning")]


# -- the queues a graph names ------------------------------------------------


def check_queues(graph: Graph, queues: Mapping[str, Queue] | None) -> list[Problem]:
    """``graph``'s ``queue`` and ``callback`` nodes against the queues of its
    directory (``None``: the directory has no ``queues.json``). Sorted like
    :func:`check`."""
    found: list[Problem] = []
    surely: dict[str, frozenset[str]] | None = None
    for node in graph.nodes.values():
        if not isinstance(node, QueueNode | CallbackNode):
            continue
        queue = (queues or {}).get(node.queue)
        if queue is None:
            found.append(_problem(graph, ("nodes", node.id, "queue"), _unknown(node, queues)))
            continue
        if not isinstance(node, QueueNode):
            continue
        found += _callback_exit(graph, node, queue)
        if surely is None:
            surely = _surely_set(graph)
        if node.id in surely:
            found += _queue_prompt_reads(graph, node, queue, surely[node.id])
    unique = {(p.path, p.message, p.severity): p for p in found}
    return sorted(unique.values(), key=lambda p: (p.path, p.message))


def _unknown(node: QueueNode | CallbackNode, queues: Mapping[str, Queue] | None) -> str:
    if queues is None:
        return (
            f"queue {node.queue!r} is not defined: there is no queues.json in the graph's "
            "directory (docs/queues.md)"
        )
    if not queues:
        return f"queue {node.queue!r} is not in queues.json, which defines no queues"
    return f"queue {node.queue!r} is not in queues.json (its queues: {', '.join(sorted(queues))})"


def _callback_exit(graph: Graph, node: QueueNode, queue: Queue) -> list[Problem]:
    if queue.offers_callback and node.on_callback is None:
        message = (
            f"queue {queue.name!r} offers callbacks (callback_after_s {queue.callback_after_s} "
            "in queues.json): this node needs on_callback, where the call goes when the "
            "caller presses 1 (typically a callback node)"
        )
        return [_problem(graph, ("nodes", node.id), message)]
    if not queue.offers_callback and node.on_callback is not None:
        message = (
            f"on_callback is never taken: queue {queue.name!r} offers no callbacks "
            "(callback_after_s is not set in queues.json)"
        )
        return [_problem(graph, ("nodes", node.id, "on_callback"), message, "warning")]
    return []


def _surely_set(graph: Graph) -> dict[str, frozenset[str]]:
    """For each reachable node, the variables set on every path from start to it."""
    order = _reachable(graph)
    set_on_some_path = {a.var for node_id in order for a in _assignments(graph.nodes[node_id])}
    set_on_some_path |= set(graph.params)
    return _entry_vars(graph, order, frozenset(set_on_some_path), _intersection)


def _queue_prompt_reads(
    graph: Graph, node: QueueNode, queue: Queue, surely: frozenset[str]
) -> list[Problem]:
    found: list[Problem] = []
    for field in ("hold", "callback_offer"):
        if field == "callback_offer" and (node.on_callback is None or not queue.offers_callback):
            continue
        for read in _prompt_reads(node.id, (), getattr(queue, field)):
            var = template_variable(read.name)
            if var is not None and var not in surely:
                message = (
                    f"the {field} prompt of queue {queue.name!r} reads vars.{var}, which is not "
                    "set on every path from start to here: it renders empty"
                )
                found.append(_problem(graph, ("nodes", node.id, "queue"), message, "warning"))
    return found
