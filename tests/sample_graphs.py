"""Small graphs built in code for the tests."""

from __future__ import annotations

from typing import Any

from service.core.graph import Graph
from service.graphs.loader import parse


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
