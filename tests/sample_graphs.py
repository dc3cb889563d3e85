"""Small graphs built in code for the tests."""

from __future__ import annotations

import json
from typing import Any

from service.core.graph import Graph, GraphSet
from service.graphs.loader import parse
from tests.paths import SHIPPED_GRAPHS


def menu_graph(**menu: Any) -> Graph:
    """welcome -> menu (1: agent, 2: bye); agent transfer falls back to sorry."""
    menu_node = {
        "type": "menu",
        "say": "Press 1 for sales, 2 to leave.",
        "options": {"1": "agent", "2": "bye"},
        "timeout_s": 4,
        "max_attempts": 3,
        "invalid": {"say": "Not an option."},
        "no_input": {"say": "I heard nothing."},
        "on_failure": "bye",
    }
    menu_node.update(menu)
    for name in [k for k, v in menu_node.items() if v is None]:
        del menu_node[name]
    return parse(
        {
            "id": "test-menu",
            "locale": "en-GB",
            "voice": "female",
            "start": "welcome",
            "nodes": {
                "welcome": {"type": "say", "say": "Hello {{caller}}.", "next": "menu"},
                "menu": menu_node,
                "agent": {
                    "type": "transfer",
                    "to": "+31201234567",
                    "ring_timeout_s": 15,
                    "on_failure": "sorry",
                },
                "sorry": {"type": "hangup", "say": "Nobody is free."},
                "bye": {"type": "hangup", "say": "Goodbye."},
            },
        },
        "test-menu.json",
    )


def looping_graph() -> Graph:
    """Two say nodes pointing at each other: only the step guard ends it."""
    return parse(
        {
            "id": "loop",
            "start": "a",
            "nodes": {
                "a": {"type": "say", "say": "A", "next": "b"},
                "b": {"type": "say", "say": "B", "next": "a"},
            },
        },
        "loop.json",
    )


TECHNICIAN = "sip:tech@pbx.example.com"


def support_line_with_transfers() -> GraphSet:
    """The shipped support line with a plain transfer where it has queues: the
    technician (2) is ``transfer`` to :data:`TECHNICIAN`, falling back to
    ``no-agents`` (voicemail); billing the same to +31201234567. For tests of a
    bridge's delivery, retries and outbox, not of the line (``tests/e2e`` has those)."""
    document = json.loads((SHIPPED_GRAPHS / "support-line.json").read_text())
    nodes = document["nodes"]
    for node_id, to in (("tech", TECHNICIAN), ("billing", "+31201234567"),
                        ("business-billing", "+31201234567")):  # fmt: skip
        nodes[node_id] = {"type": "transfer", "to": to, "ring_timeout_s": 20,
                          "on_failure": "no-agents"}  # fmt: skip
    del nodes["long-wait"]
    graph = parse(document, "support-line.json")
    return GraphSet({graph.id: graph}, graph.id)
