"""A ``branch`` case: does ``var op value`` hold on this call? Pure.

``eq``/``ne``/``in`` compare as numbers when both sides are numbers, otherwise as
text; ``lt``/``le``/``gt``/``ge`` need a number on both sides (else the case does
not match); ``matches`` is a regular expression the whole value must match;
``exists`` holds when the variable is set. An unset variable matches nothing but
``ne`` and ``exists`` (false).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

_ORDER: dict[str, Callable[[float, float], bool]] = {
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _equal(actual: str, expected: Any) -> bool:
    a, b = _number(actual), _number(expected)
    if a is not None and b is not None:
        return a == b
    return actual == _text(expected)


def holds(var: str, op: str, value: Any, context: Mapping[str, str]) -> bool:
    actual = context.get(var)
    if op == "exists":
        return actual is not None
    if actual is None:
        return op == "ne"
    if op == "eq":
        return _equal(actual, value)
    if op == "ne":
        return not _equal(actual, value)
    if op == "in":
        return any(_equal(actual, item) for item in value)
    if op == "matches":
        return re.fullmatch(str(value), actual) is not None
    if op in _ORDER:
        a, b = _number(actual), _number(value)
        return a is not None and b is not None and _ORDER[op](a, b)
    raise ValueError(f"unknown branch operator {op!r}")
