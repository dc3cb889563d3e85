"""The graph validator on large graphs: a chain of 10,000 ``say`` nodes, and the
same chain closed into one loop that never waits (the worst case of the loop rule).

``service.graphs.validator.check`` (references, reachability, loops, every rule) must
stay linear: it once reached out from every node (40-50 s for 10,000 nodes). The
JSON Schema check (``service.graphs.schema``, jsonschema) is measured apart: it is
linear too, about a quarter of a millisecond per node.
"""

from __future__ import annotations

import time
from typing import Any

from service.graphs import loader, schema, validator


def chain(nodes: int, *, looping: bool = False) -> dict[str, Any]:
    """``n0 -> n1 -> ... -> n<nodes>``: a hangup at the end, or back to ``n0``."""
    graph = {f"n{i}": {"type": "say", "say": "x", "next": f"n{i + 1}"} for i in range(nodes)}
    last = f"n{nodes}"
    graph[last] = {"type": "say", "say": "x", "next": "n0"} if looping else {"type": "hangup"}
    return {"id": "chain", "start": "n0", "nodes": graph}


def measure(document: dict[str, Any]) -> tuple[float, float, int]:
    """(seconds of the schema check, seconds of ``validator.check``, problems found)."""
    started = time.perf_counter()
    schema.problems("chain.json", document)
    schema_s = time.perf_counter() - started
    graph = loader.parse(document, "chain.json")
    started = time.perf_counter()
    found = validator.check(graph)
    return schema_s, time.perf_counter() - started, len(found)


def main() -> None:
    print("graph validator: chains of say nodes")
    for nodes in (1_000, 10_000):
        for looping in (False, True):
            schema_s, check_s, found = measure(chain(nodes, looping=looping))
            kind = "one loop " if looping else "a chain  "
            print(f"  {nodes:>6} nodes, {kind}: validator.check {check_s:.3f} s, "
                  f"JSON Schema {schema_s:.2f} s, {found} problem(s)")  # fmt: skip


if __name__ == "__main__":
    main()
