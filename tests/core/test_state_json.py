"""A call's state as JSON (what the store keeps): every field written and read back,
whatever fields ``CallState`` and ``InLine`` have, and documents written before read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import MISSING, Field, fields, is_dataclass
from enum import Enum
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest

from service.core.state import After, CallState, Direction, InLine, Outcome, Phase, Waiting


def _default(spec: Field[Any]) -> Any:
    if spec.default is not MISSING:
        return spec.default
    if spec.default_factory is not MISSING:
        return spec.default_factory()
    return MISSING


def other_value(hint: Any, default: Any, name: str) -> Any:
    """A value of the type ``hint`` that is not ``default`` (nor empty, nor None)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Union or origin is UnionType:
        (inner,) = [arg for arg in args if arg is not NoneType]
        return other_value(inner, default, name)
    kind = origin if isinstance(origin, type) else hint
    if isinstance(kind, type) and issubclass(kind, Enum):
        return next(member for member in kind if member != default)
    if kind is bool:
        return not default
    if kind is int:
        return 7 if default != 7 else 8
    if kind is float:
        return 1234.5 if default != 1234.5 else 1235.5
    if kind is str:
        return f"{name}-value"
    if isinstance(kind, type) and issubclass(kind, tuple):
        return (other_value(args[0], None, name), other_value(args[0], None, name + "2"))
    if isinstance(kind, type) and (issubclass(kind, Mapping) or kind is dict):
        return {"k1": other_value(args[1], None, name), "k2": other_value(args[1], None, name)}
    if is_dataclass(kind):
        return everything_set(kind)
    raise AssertionError(
        f"{name}: no value of {hint!r} here: teach other_value (tests/core/test_state_json.py) "
        "the new field's type, and check that CallState's JSON keeps it"
    )


def everything_set(cls: Any) -> Any:
    """An instance of the dataclass ``cls`` with every field other than its default."""
    hints = get_type_hints(cls)
    values = {f.name: other_value(hints[f.name], _default(f), f.name) for f in fields(cls)}
    made = cls(**values)
    for spec in fields(cls):
        assert getattr(made, spec.name) != _default(spec), spec.name
    return made


def test_every_field_of_a_call_s_state_is_written_and_read_back() -> None:
    state = everything_set(CallState)
    assert state.line is not None

    text = state.to_json()
    written = json.loads(text)

    assert list(written) == [f.name for f in fields(CallState)]
    assert list(written["line"]) == [f.name for f in fields(InLine)]
    assert CallState.from_json(text) == state
    assert CallState.from_json(text.encode()) == state
    assert InLine.from_dict(state.line.to_dict()) == state.line
    # Enums as their values, tuples as arrays, mappings as objects: plain JSON.
    assert written["phase"] == str(state.phase)
    assert written["line"]["waiting"] == str(state.line.waiting)
    assert written["recent"] == list(state.recent)
    assert written["vars"] == dict(state.vars)
    assert json.dumps(written, separators=(",", ":")) == text


def test_a_state_read_back_has_its_types_again() -> None:
    state = CallState.from_json(everything_set(CallState).to_json())
    assert state.line is not None
    assert type(state.phase) is Phase
    assert type(state.direction) is Direction
    assert type(state.after) is After
    assert type(state.outcome) is Outcome
    assert type(state.line) is InLine
    assert type(state.line.waiting) is Waiting
    assert type(state.recent) is tuple
    assert type(state.recordings) is tuple


# Written before the serialisation was generic (and before packing): it reads the same.
EARLIER = (
    '{"call_id":"f60b9e4c","graph":"support-line","graph_version":"20c1e13d43f3b958",'
    '"caller":"+31612345678","called":"+31970000000","direction":"inbound","phase":"queued",'
    '"node":"sales","after":null,"attempts":0,"steps":3,"vars":{"account":"42"},'
    '"agent_leg":null,"line":{"queue":"sales","priority":1,"joined_at":1795750470.5,'
    '"waiting":"holding","offer":null,"agent_id":null,"announced":2,"announced_at":null,'
    '"alone_since":null,"callback_offered_at":null,"callback":null,"address":null,'
    '"attempt":0},"recordings":[],"outcome":null,"started_at":1795750469.3821416,'
    '"ended_at":null,"seen":{"f60b9e4c":1795750474430234},"recent":["2ccdd8ad3c40959e"],'
    '"version":8}'
)


def test_a_state_written_before_reads_the_same_and_is_written_back_the_same() -> None:
    state = CallState.from_json(EARLIER)
    assert state.phase is Phase.QUEUED
    assert state.line == InLine("sales", 1, 1795750470.5, Waiting.HOLDING, announced=2)
    assert state.seen == {"f60b9e4c": 1795750474430234}
    assert state.recent == ("2ccdd8ad3c40959e",)
    again = json.loads(state.to_json())
    assert {k: again[k] for k in json.loads(EARLIER)} == json.loads(EARLIER)


def test_keys_that_name_no_field_are_left_out_and_missing_ones_take_their_default() -> None:
    doc = json.loads(EARLIER)
    doc["gone_field"] = 1
    doc["line"]["gone_too"] = "x"
    del doc["direction"], doc["recent"], doc["line"]["waiting"]
    state = CallState.from_json(json.dumps(doc))
    assert state.direction is Direction.INBOUND
    assert state.recent == ()
    assert state.line is not None
    assert state.line.waiting is Waiting.JOINING


def test_a_value_json_cannot_hold_is_a_type_error() -> None:
    state = CallState("c", "g", "v", "+31", "+31", vars={"x": object()})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="not JSON serialisable"):
        state.to_json()
