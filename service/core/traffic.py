"""Traffic on a graph: how callers move through its nodes, counted from the notes
of each committed transition. Pure.

Per node, the counts are (the field names of ``keys.graph_traffic``):

- ``NODE|in``: entries (the call's first node included);
- ``NODE|out|EXIT``: exits taken, by their path below the node (``options/1``,
  ``next``, ``on_failure``, ``cases/0/next``...), as ``Node.exits`` names them;
- ``NODE|invalid`` and ``NODE|silent``: wrong keys and silences at a menu or
  collect (re-prompts: the caller stays at the node);
- ``NODE|end|OUTCOME``: calls that ended while there, by outcome
  (``ended_by_caller`` is a caller hanging up: the drop-off).

So for every node, once its calls have ended: ``in`` = the sum of ``out|*`` +
the sum of ``end|*`` (a call still live at a node is the difference).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

SEPARATOR = "|"
_RETRIES = {"invalid": "invalid", "no_input": "silent"}


class _Note(Protocol):
    @property
    def event(self) -> str: ...

    @property
    def node(self) -> str | None: ...

    @property
    def fields(self) -> Mapping[str, object]: ...


def counts(notes: Iterable[_Note]) -> dict[str, int]:
    """The traffic counts one transition adds, from its notes."""
    found: Counter[str] = Counter()
    for note in notes:
        node = note.node
        if node is None:
            continue
        if note.event == "node_entered":
            found[_field(node, "in")] += 1
            came_from, via = note.fields.get("from_node"), note.fields.get("via")
            if isinstance(came_from, str) and isinstance(via, str):
                found[_field(came_from, "out", via)] += 1
        elif note.event == "call_ended":
            found[_field(node, "end", str(note.fields.get("outcome")))] += 1
        else:
            kind, _, retry = note.event.partition("_")
            if kind in ("menu", "collect") and retry in _RETRIES:
                found[_field(node, _RETRIES[retry])] += 1
    return dict(found)


def _field(node: str, *parts: str) -> str:
    return SEPARATOR.join((node, *parts))


@dataclass
class NodeTraffic:
    """One node's counts."""

    entered: int = 0
    exits: dict[str, int] = field(default_factory=dict)
    invalid: int = 0
    silent: int = 0
    ended: dict[str, int] = field(default_factory=dict)

    @property
    def left(self) -> int:
        """Calls that left the node or ended there."""
        return sum(self.exits.values()) + sum(self.ended.values())

    @property
    def here(self) -> int:
        """Calls at the node now (entered, neither left nor ended)."""
        return self.entered - self.left

    @property
    def hung_up(self) -> int:
        """Callers who hung up here."""
        return self.ended.get("ended_by_caller", 0) + self.ended.get("ended_by_callee", 0)


def read(raw: Mapping[str, int]) -> dict[str, NodeTraffic]:
    """Per node, the counts stored as :func:`counts` names them."""
    nodes: dict[str, NodeTraffic] = {}
    for name, value in raw.items():
        node, _, rest = name.partition(SEPARATOR)
        kind, _, detail = rest.partition(SEPARATOR)
        traffic = nodes.setdefault(node, NodeTraffic())
        if kind == "in":
            traffic.entered += value
        elif kind == "out":
            traffic.exits[detail] = traffic.exits.get(detail, 0) + value
        elif kind == "end":
            traffic.ended[detail] = traffic.ended.get(detail, 0) + value
        elif kind == "invalid":
            traffic.invalid += value
        elif kind == "silent":
            traffic.silent += value
    return nodes
