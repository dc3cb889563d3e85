"""The JSON paths an ``http`` node's ``save`` uses to pick values from an answer.

Syntax: an optional ``$`` root, then names separated by dots, each optionally
followed by ``[index]`` subscripts: ``$.customer.name``, ``items[0].id``,
``status``, ``$[2]``. Names are letters, digits, ``_`` and ``-``.
"""

from __future__ import annotations

import re
from typing import Any

_STEP = re.compile(r"([A-Za-z0-9_-]+)?((?:\[\d+\])*)")
_INDEX = re.compile(r"\[(\d+)\]")


class Missing(LookupError):
    """The path leads nowhere in this document."""


def parse(path: str) -> tuple[str | int, ...]:
    """The steps of ``path``; ValueError with the reason when it is not of the syntax."""
    text = path.strip()
    if not text:
        raise ValueError("empty JSON path")
    if text.startswith("$"):
        text = text[1:]
        if text.startswith("."):
            text = text[1:]
    elif text.startswith((".", "[")):
        raise ValueError(f"JSON path {path!r} must start with a name or $")
    if not text:
        return ()
    steps: list[str | int] = []
    for part in text.split("."):
        match = _STEP.fullmatch(part)
        if match is None or not part:
            raise ValueError(f"JSON path {path!r}: {part!r} is not a name with optional [index]")
        name, subscripts = match.groups()
        if name:
            steps.append(name)
        elif not steps and not subscripts:
            raise ValueError(f"JSON path {path!r} has an empty step")
        steps.extend(int(i) for i in _INDEX.findall(subscripts))
    return tuple(steps)


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
