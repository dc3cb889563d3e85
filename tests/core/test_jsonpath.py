"""The JSON paths of an ``http`` node's ``save``: which are accepted, what they pick."""

from __future__ import annotations

import re
from typing import Any

import pytest

from service.core import jsonpath

ACCEPTED: list[tuple[str, tuple[str | int, ...]]] = [
    ("$", ()),
    ("status", ("status",)),
    ("$.status", ("status",)),
    ("$.customer.name", ("customer", "name")),
    ("customer.name", ("customer", "name")),
    ("customer.items[0].id", ("customer", "items", 0, "id")),
    ("$.customer.items[12].id", ("customer", "items", 12, "id")),
    ("$[2]", (2,)),
    ("$[0][1]", (0, 1)),
    ("matrix[1][0]", ("matrix", 1, 0)),
    ("$[0].name", (0, "name")),
    ("account-id.first_name", ("account-id", "first_name")),
    ("A9.b_C-d", ("A9", "b_C-d")),
    ("0.1", ("0", "1")),
]


@pytest.mark.parametrize(("path", "steps"), ACCEPTED)
def test_accepted_paths(path: str, steps: tuple[str | int, ...]) -> None:
    assert jsonpath.parse(path) == steps


REJECTED: list[tuple[str, str]] = [
    ("", "empty path"),
    ("$..name", "recursive descent (..) is not supported"),
    ("customer..name", "recursive descent (..) is not supported"),
    ("$.*", "wildcards (*) are not supported"),
    ("items.*", "wildcards (*) are not supported"),
    ("items[*]", "wildcards (*) are not supported"),
    ("items[?(@.id)]", "filters are not supported"),
    ("customer['name']", "quoted keys are not supported: write .key"),
    ('customer["name"]', "quoted keys are not supported: write .key"),
    ("customer.", "ends with '.'"),
    ("$.", "ends with '.'"),
    (".customer", "must start with $ or a key, not '.'"),
    ("[0]", "must start with $ or a key, not '['"),
    ("*", "must start with $ or a key, not '*'"),
    (" status", "must start with $ or a key, not ' '"),
    ("customer name", "unexpected ' ' at character 9"),
    ("$customer", "unexpected 'c' at character 2"),
    ("items[0]id", "unexpected 'i' at character 9"),
    ("a.b.$", "expected a key (letters, digits, _ or -) at character 5"),
    ("naïve.x", "unexpected 'ï' at character 3"),
    ("a.é", "expected a key (letters, digits, _ or -) at character 3"),
    ("items[-1]", "expected [index] with a whole number at character 6"),
    ("items[1:2]", "expected [index] with a whole number at character 6"),
    ("items[]", "expected [index] with a whole number at character 6"),
    ("items[0", "expected [index] with a whole number at character 6"),
]


@pytest.mark.parametrize(("path", "reason"), REJECTED)
def test_rejected_paths_say_why(path: str, reason: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(reason)}$"):
        jsonpath.parse(path)


ANSWER: dict[str, Any] = {
    "status": "active",
    "customer": {
        "name": "Ann",
        "tier": 3,
        "vip": False,
        "note": None,
        "items": [{"id": "a-1"}, {"id": "a-2", "tags": ["x", "y"]}],
        "address": {"city": "Utrecht"},
        "account-id": "X-9",
    },
    "matrix": [[1, 2], [3, 4]],
    "empty": [],
}

FOUND: list[tuple[Any, str, Any]] = [
    (ANSWER, "status", "active"),
    (ANSWER, "$.status", "active"),
    (ANSWER, "$.customer.name", "Ann"),
    (ANSWER, "customer.tier", 3),
    (ANSWER, "customer.vip", False),
    (ANSWER, "customer.note", None),
    (ANSWER, "customer.account-id", "X-9"),
    (ANSWER, "customer.address", {"city": "Utrecht"}),
    (ANSWER, "customer.items[0].id", "a-1"),
    (ANSWER, "customer.items[1].id", "a-2"),
    (ANSWER, "customer.items[1].tags[1]", "y"),
    (ANSWER, "matrix[1][0]", 3),
    (ANSWER, "empty", []),
    (ANSWER, "$", ANSWER),
    ([10, 20, 30], "$[2]", 30),
    ([{"id": 1}], "$[0].id", 1),
    ("just text", "$", "just text"),
]


@pytest.mark.parametrize(("document", "path", "value"), FOUND)
def test_extract_finds_nested_values(document: Any, path: str, value: Any) -> None:
    assert jsonpath.extract(document, path) == value


MISSING: list[tuple[Any, str, str]] = [
    # absent fields
    (ANSWER, "nothing", "nothing: no field 'nothing'"),
    (ANSWER, "$.customer.email", "$.customer.email: no field 'email'"),
    (ANSWER, "customer.items[0].tags", "customer.items[0].tags: no field 'tags'"),
    (ANSWER, "Status", "Status: no field 'Status'"),
    # indexes past the end
    (ANSWER, "customer.items[2].id", "customer.items[2].id: no item [2]"),
    (ANSWER, "empty[0]", "empty[0]: no item [0]"),
    (ANSWER, "matrix[0][2]", "matrix[0][2]: no item [2]"),
    ([10, 20, 30], "$[3]", "$[3]: no item [3]"),
    # the wrong kind of value on the way
    (ANSWER, "customer[0]", "customer[0]: no item [0]"),
    (ANSWER, "$[0]", "$[0]: no item [0]"),
    (ANSWER, "status[0]", "status[0]: no item [0]"),
    (ANSWER, "customer.items.id", "customer.items.id: no field 'id'"),
    (ANSWER, "customer.name.first", "customer.name.first: no field 'first'"),
    (ANSWER, "customer.note.text", "customer.note.text: no field 'text'"),
    (ANSWER, "customer.vip[0]", "customer.vip[0]: no item [0]"),
    ({"items": {"0": "zero"}}, "items[0]", "items[0]: no item [0]"),
    ([10, 20], "$.0", "$.0: no field '0'"),
    (None, "$.a", "$.a: no field 'a'"),
]


@pytest.mark.parametrize(("document", "path", "message"), MISSING)
def test_extract_reports_what_is_missing(document: Any, path: str, message: str) -> None:
    with pytest.raises(jsonpath.Missing) as caught:
        jsonpath.extract(document, path)
    assert str(caught.value) == message


def test_missing_is_a_lookup_error_and_a_bad_path_is_a_value_error() -> None:
    assert issubclass(jsonpath.Missing, LookupError)
    with pytest.raises(ValueError, match="wildcards"):
        jsonpath.extract(ANSWER, "customer.items[*].id")
