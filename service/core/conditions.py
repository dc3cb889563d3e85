"""A ``branch`` case: does ``var op value`` hold on this call? Pure.

``eq``/``ne``/``in`` compare as numbers when both sides are numbers (digits, an
optional ``-`` and decimals: ``"007"`` equals ``7``; ``+31...`` is text),
otherwise as text; ``lt``/``le``/``gt``/``ge`` need a number on both sides (else
the case does not match); ``matches`` is a regular expression the whole value must match;
``exists`` holds when the variable is set. An unset variable matches nothing but
``ne`` and ``exists`` (false).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Literal, Never

from service.core.graph import Operator

_ORDER: dict[Literal["lt", "le", "gt", "ge"], Callable[[Decimal, Decimal], bool]] = {
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}


_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def _number(value: Any) -> Decimal | None:
    """Exact numbers only: digits with an optional sign and decimals (an account
    number of 30 digits stays exact; ``NaN``, ``1_000`` or ``+31...`` are text)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else None
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return Decimal(value)
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


def holds(var: str, op: Operator, value: Any, context: Mapping[str, str]) -> bool:
    actual = context.get(var)
    if op == "exists":
        return actual is not None
    if actual is None:
        return op == "ne"
    match op:
        case "eq":
            return _equal(actual, value)
        case "ne":
            return not _equal(actual, value)
        case "in":
            return any(_equal(actual, item) for item in value)
        case "matches":
            return re.fullmatch(str(value), actual) is not None
        case "lt" | "le" | "gt" | "ge":
            a, b = _number(actual), _number(value)
            return a is not None and b is not None and _ORDER[op](a, b)
        case _:
            raise _unknown(op)


def _unknown(op: Never) -> ValueError:
    """Every operator is handled above: mypy proves ``op`` cannot get here."""
    return ValueError(f"unknown branch operator {op!r}")
