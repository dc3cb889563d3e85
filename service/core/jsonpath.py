"""The JSON paths an ``http`` node's ``save`` uses to pick values from an answer.

Syntax: an optional ``$`` root, then names separated by dots, each optionally
followed by ``[index]`` subscripts: ``$.customer.name``, ``items[0].id``,
``status``, ``$[2]``. Names are letters, digits, ``_`` and ``-``.
"""

from __future__ import annotations

import re
from typing import Any


class Missing(LookupError):
    """The path leads nowhere in this document."""


_KEY = re.compile(r"[A-Za-z0-9_-]+")
_INDEX = re.compile(r"\[([0-9]+)\]")


def parse(path: str) -> tuple[str | int, ...]:
    """The steps of a JSON path into an HTTP answer: keys (str) and list indexes (int).

    The supported syntax is a small subset of JSONPath::

        path  = "$" step* | key step*
        step  = "." key | "[" index "]"
        key   = one or more letters, digits, "_" or "-"
        index = a whole number (0 is the first item)

    ``$.customer.name`` and ``customer.name`` give ``("customer", "name")``;
    ``customer.items[0].id`` gives ``("customer", "items", 0, "id")``; ``$[2]``
    gives ``(2,)`` and ``$`` alone the whole answer ``()``. Anything else
    (``..``, ``*``, filters, slices, quoted keys, spaces) raises ``ValueError``
    with the reason.
    """
    if not path:
        raise ValueError("empty path")
    steps: list[str | int] = []
    if path.startswith("$"):
        position = 1
    else:
        first = _KEY.match(path)
        if first is None:
            raise ValueError(f"must start with $ or a key, not {path[0]!r}")
        steps.append(first.group())
        position = first.end()
    while position < len(path):
        char = path[position]
        if char == ".":
            key = _KEY.match(path, position + 1)
            if key is None:
                raise ValueError(_after_dot(path, position + 1))
            steps.append(key.group())
            position = key.end()
        elif char == "[":
            index = _INDEX.match(path, position)
            if index is None:
                raise ValueError(_in_brackets(path, position + 1))
            steps.append(int(index.group(1)))
            position = index.end()
        else:
            raise ValueError(f"unexpected {char!r} at character {position + 1}")
    return tuple(steps)


def _after_dot(path: str, position: int) -> str:
    """Why ``path`` has no key at ``position`` (just after a dot)."""
    if position == len(path):
        return "ends with '.'"
    if path[position] == ".":
        return "recursive descent (..) is not supported"
    if path[position] == "*":
        return "wildcards (*) are not supported"
    return f"expected a key (letters, digits, _ or -) at character {position + 1}"


def _in_brackets(path: str, position: int) -> str:
    """Why ``path`` has no ``[index]`` at ``position`` (just after a ``[``)."""
    inside = path[position : position + 1]
    if inside in ("'", '"'):
        return "quoted keys are not supported: write .key"
    if inside == "*":
        return "wildcards (*) are not supported"
    if inside == "?":
        return "filters are not supported"
    return f"expected [index] with a whole number at character {position}"


def extract(document: Any, path: str) -> Any:
    """The value at ``path`` in ``document``; :class:`Missing` when it is not there."""
    value = document
    for step in parse(path):
        if isinstance(step, int):
            if not isinstance(value, list) or step >= len(value):
                raise Missing(f"{path}: no item [{step}]")
            value = value[step]
        else:
            if not isinstance(value, dict) or step not in value:
                raise Missing(f"{path}: no field {step!r}")
            value = value[step]
    return value
