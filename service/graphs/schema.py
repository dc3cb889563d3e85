"""The graph format's JSON Schema (``ivr_graphs/schema.json``) and the problems it finds.

The package carries a copy of ``ivr_graphs/schema.json`` (the file graphs reference
with ``"$schema"``); a test keeps the two equal. Every schema error becomes a
:class:`~service.core.graph.Problem` at its JSON path, an error inside an
``if``/``then`` branch reported at its deepest cause.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any, cast

from jsonschema import Draft202012Validator, FormatChecker, ValidationError

from service.core.graph import Problem, pointer

SCHEMA_FILE = "schema.json"


@cache
def schema() -> dict[str, Any]:
    """The graph format's JSON Schema. The package carries a copy of
    ``ivr_graphs/schema.json`` (the file graphs reference); a test keeps them equal."""
    text = resources.files("service.graphs").joinpath("graph-schema.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _schema_validator() -> Draft202012Validator:
    return Draft202012Validator(schema(), format_checker=FormatChecker())


def _message(error: ValidationError) -> str:
    parent = error.parent
    if (
        error.validator == "required"
        and parent is not None
        and parent.validator == "anyOf"
        and all(c.validator == "required" for c in parent.context or [])
    ):
        names = " or ".join(
            repr(cast(list[str], c.validator_value)[0]) for c in parent.context or []
        )
        return f"needs {names}"
    return error.message


def problems(file: str, document: Any) -> list[Problem]:
    found: list[Problem] = []
    for error in _schema_validator().iter_errors(document):
        # An error inside an if/then branch is reported on its deepest cause.
        leaves = [error]
        while leaves and any(e.context for e in leaves):
            leaves = [c for e in leaves for c in (e.context or [e])]
        for leaf in leaves:
            found.append(Problem(file, pointer(leaf.absolute_path), _message(leaf)))
    unique = {(p.path, p.message): p for p in found}
    return sorted(unique.values(), key=lambda p: (p.path, p.message))
