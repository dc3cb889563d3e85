"""``conditions.holds``: does a branch case ``var op value`` hold on this call?"""

from __future__ import annotations

from typing import Any

import pytest

from service.core import conditions
from service.core.graph import Operator

CONTEXT = {
    "caller": "+31612345678",
    "called": "+31970102030",
    "call_id": "call-1",
    "vars.pin": "007",
    "vars.zero": "0",
    "vars.count": "12",
    "vars.price": "9.5",
    "vars.name": "Ann",
    "vars.empty": "",
    "vars.flag": "true",
    "vars.tier": "gold",
}

CASES: list[tuple[str, Operator, Any, bool]] = [
    # eq: text
    ("vars.name", "eq", "Ann", True),
    ("vars.name", "eq", "ann", False),
    ("vars.name", "eq", "Ann ", False),
    ("vars.tier", "eq", "gold", True),
    ("vars.empty", "eq", "", True),
    ("vars.empty", "eq", "0", False),
    ("caller", "eq", "+31612345678", True),
    ("caller", "eq", "+31612345679", False),
    ("called", "eq", "+31970102030", True),
    ("call_id", "eq", "call-1", True),
    # eq: numbers on both sides compare as numbers, so leading zeros do not count
    ("vars.pin", "eq", 7, True),
    ("vars.pin", "eq", "7", True),
    ("vars.pin", "eq", "007", True),
    ("vars.pin", "eq", 8, False),
    ("vars.count", "eq", 12, True),
    ("vars.count", "eq", 12.0, True),
    ("vars.count", "eq", "12.0", True),
    ("vars.price", "eq", 9.5, True),
    ("vars.price", "eq", 9, False),
    ("vars.zero", "eq", 0, True),
    # a number against a text that is not one: compared as text
    ("vars.name", "eq", 7, False),
    ("vars.pin", "eq", "seven", False),
    # booleans are written as JSON writes them
    ("vars.flag", "eq", True, True),
    ("vars.flag", "eq", False, False),
    ("vars.zero", "eq", False, False),
    # ne is the opposite of eq
    ("vars.name", "ne", "Bob", True),
    ("vars.name", "ne", "Ann", False),
    ("vars.pin", "ne", 7, False),
    ("vars.pin", "ne", 8, True),
    ("caller", "ne", "+31612345678", False),
    # in: any item equal, with the same number rule
    ("vars.tier", "in", ["silver", "gold"], True),
    ("vars.tier", "in", ["silver", "bronze"], False),
    ("vars.tier", "in", [], False),
    ("vars.pin", "in", [1, 7, 9], True),
    ("vars.pin", "in", ["1", "07"], True),
    ("vars.pin", "in", [1, 9], False),
    ("called", "in", ["+31970102030", "+31201234567"], True),
    ("caller", "in", ["+31970102030", "+31201234567"], False),
    # matches: the whole value must match
    ("caller", "matches", r"\+31.*", True),
    ("caller", "matches", r"\+316", False),
    ("caller", "matches", r"\+316\d{8}", True),
    ("called", "matches", r"\+3197\d+", True),
    ("vars.name", "matches", "A", False),
    ("vars.name", "matches", "[A-Z][a-z]+", True),
    ("vars.pin", "matches", "[0-9]{3}", True),
    ("vars.pin", "matches", "[0-9]{4}", False),
    ("vars.empty", "matches", "", True),
    ("vars.empty", "matches", ".+", False),
    # lt / le / gt / ge: numbers, not text order ("9.5" < "12" as numbers)
    ("vars.price", "lt", 12, True),
    ("vars.count", "lt", 12, False),
    ("vars.count", "le", 12, True),
    ("vars.count", "le", 11.99, False),
    ("vars.count", "gt", 9.5, True),
    ("vars.count", "gt", 12, False),
    ("vars.count", "ge", 12, True),
    ("vars.count", "ge", 12.5, False),
    ("vars.pin", "gt", 6, True),
    ("vars.pin", "lt", 7, False),
    ("vars.zero", "lt", 1, True),
    ("vars.zero", "ge", 0, True),
    ("vars.count", "gt", -1, True),
    # ... and a side that is not a number never matches
    ("vars.name", "lt", 5, False),
    ("vars.name", "ge", 5, False),
    ("vars.empty", "lt", 5, False),
    ("vars.empty", "ge", 0, False),
    ("vars.flag", "gt", 0, False),
    ("vars.count", "gt", "abc", False),
    # exists
    ("vars.name", "exists", None, True),
    ("vars.empty", "exists", None, True),
    ("caller", "exists", None, True),
    ("vars.nobody", "exists", None, False),
    # an unset variable matches nothing but ne
    ("vars.nobody", "eq", "", False),
    ("vars.nobody", "eq", 0, False),
    ("vars.nobody", "ne", "x", True),
    ("vars.nobody", "ne", "", True),
    ("vars.nobody", "in", ["", "x"], False),
    ("vars.nobody", "matches", ".*", False),
    ("vars.nobody", "lt", 10, False),
    ("vars.nobody", "le", 10, False),
    ("vars.nobody", "gt", -10, False),
    ("vars.nobody", "ge", -10, False),
]


@pytest.mark.parametrize(("var", "op", "value", "expected"), CASES)
def test_holds(var: str, op: Operator, value: Any, expected: bool) -> None:
    assert conditions.holds(var, op, value, CONTEXT) is expected


NUMBER_EDGES: list[tuple[str, Operator, Any, bool]] = [
    # Account or card numbers read with collect are long digit strings. As numbers two
    # different ones are different: they must not be rounded to the same float.
    ("12345678901234567", "eq", "12345678901234568", False),
    ("12345678901234567", "ne", "12345678901234568", True),
    ("12345678901234567", "in", ["12345678901234568"], False),
    ("12345678901234567", "eq", "12345678901234567", True),
    ("9007199254740993", "gt", 9007199254740992, True),
    # A text is equal to itself, whatever float() makes of it.
    ("NaN", "eq", "NaN", True),
    ("NaN", "ne", "NaN", False),
]


@pytest.mark.parametrize(("actual", "op", "value", "expected"), NUMBER_EDGES)
def test_number_comparisons_are_exact(
    actual: str, op: Operator, value: Any, expected: bool
) -> None:
    assert conditions.holds("vars.x", op, value, {"vars.x": actual}) is expected


def test_an_unknown_operator_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown branch operator 'like'"):
        conditions.holds("vars.name", "like", "A%", CONTEXT)  # type: ignore[arg-type]
