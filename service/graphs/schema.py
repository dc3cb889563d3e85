"""The JSON Schemas of the graph directory and the problems they find.

Two formats, each with its schema: graph files (``ivr_graphs/schema.json``) and the
queues file (``ivr_graphs/queues.schema.json``, see ``service.graphs.queues``). The
package carries a copy of each (``graph-schema.json``, ``queues-schema.json``), the
files the documents reference with ``"$schema"``; a test keeps each pair equal. Every
schema error becomes a :class:`~service.core.graph.Problem` at its JSON path, an error
inside an ``if``/``then`` branch reported at its deepest cause.

Reading a file of the directory (:func:`read_json`) and :class:`GraphError`, the
error that carries every problem found, are here too: the graph loader and the queues
loader share them.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, cast

from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators

from service.core import jsondoc
from service.core.graph import Problem, pointer

SCHEMA_FILE = "schema.json"
QUEUES_SCHEMA_FILE = "queues.schema.json"

# Fields a queue node had before queues.json: they are the queue's settings now.
MOVED_TO_QUEUES = ("hold", "max_wait_s", "announce_position")


class GraphError(Exception):
    """A graph (or queues file) that cannot be loaded; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def read_json(path: Path) -> Any:
    """The decoded JSON of a file, or :class:`GraphError` saying why not (with the
    line and column of a syntax error)."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GraphError([Problem(file, "/", f"cannot read: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        raise GraphError([Problem(file, "/", f"not UTF-8 text: {exc.reason}")]) from exc
    try:
        return jsondoc.load(text)
    except jsondoc.JSONTextError as exc:
        syntax = exc.syntax
        if syntax is not None:
            message = f"not valid JSON: {syntax.msg} (line {syntax.lineno}, col {syntax.colno})"
        else:  # a number too long, nesting too deep, a lone surrogate
            message = f"not JSON this service reads: the file {exc.reason}"
        raise GraphError([Problem(file, "/", message)]) from None


def _packaged(name: str) -> dict[str, Any]:
    text = resources.files("service.graphs").joinpath(name).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def schema() -> dict[str, Any]:
    """The graph format's JSON Schema. The package carries a copy of
    ``ivr_graphs/schema.json`` (the file graphs reference); a test keeps them equal."""
    return _packaged("graph-schema.json")


@cache
def queues_schema() -> dict[str, Any]:
    """The JSON Schema of ``queues.json``. The package carries a copy of
    ``ivr_graphs/queues.schema.json``; a test keeps them equal."""
    return _packaged("queues-schema.json")


def _format_checker() -> FormatChecker:
    """jsonschema's format checks, with ``regex`` also refusing what ``re`` cannot
    compile without raising something else: a{4294967296} (OverflowError), thousands
    of nested groups (RecursionError)."""
    checker = FormatChecker()

    @checker.checks("regex", raises=(re.error, OverflowError, RecursionError))
    def is_regex(instance: object) -> bool:
        if isinstance(instance, str):
            re.compile(instance)
        return True

    return checker


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    """``pattern`` as JSON Schema means it (ECMA-262): a ``$`` at the end matches at
    the end of the text only, where Python's ``re`` also matches before a final
    newline (a node id ``"x\n"`` passed ``^[a-z]+$``)."""
    if not validator.is_type(instance, "string"):
        return
    found = re.search(pattern, instance)
    if found is None or (pattern.endswith("$") and instance.endswith("\n")):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


_Strict = validators.extend(Draft202012Validator, {"pattern": _pattern})  # type: ignore[no-untyped-call]


@cache
def _schema_validator() -> Draft202012Validator:
    return cast(Draft202012Validator, _Strict(schema(), format_checker=_format_checker()))


@cache
def _queues_validator() -> Draft202012Validator:
    return cast(Draft202012Validator, _Strict(queues_schema(), format_checker=_format_checker()))


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


def _moved_fields(file: str, error: ValidationError) -> list[Problem]:
    """A queue node still using a field that is now its queue's setting: one clear
    problem per such field, at the field."""
    node = error.instance
    if error.validator != "additionalProperties" or not isinstance(node, Mapping):
        return []
    if node.get("type") != "queue":
        return []
    return [
        Problem(
            file,
            pointer([*error.absolute_path, name]),
            f"{name} is no longer a field of a queue node: it is a setting of the queue "
            f"{node.get('queue', '')!r} in queues.json (docs/queues.md)",
        )
        for name in MOVED_TO_QUEUES
        if name in node
    ]


def _unexpected(error: ValidationError, reported: set[str]) -> str | None:
    """The additionalProperties message for the fields not already ``reported``."""
    known = cast(Mapping[str, Any], error.schema).get("properties", {})
    extras = [
        repr(name)
        for name in cast(Mapping[str, Any], error.instance)
        if name not in known and pointer([*error.absolute_path, name]) not in reported
    ]
    if not extras:
        return None
    verb = "was" if len(extras) == 1 else "were"
    return f"Additional properties are not allowed ({', '.join(extras)} {verb} unexpected)"


def _problems(
    validator: Draft202012Validator, file: str, document: Any, at: tuple[str, ...] = ()
) -> list[Problem]:
    """The problems ``validator`` finds in ``document``, found at the JSON path ``at``
    of the file."""
    found: list[Problem] = []
    for error in validator.iter_errors(document):
        error.path.extendleft(reversed(at))  # every deeper error's path starts here too
        # An error inside an if/then branch is reported on its deepest cause.
        leaves = [error]
        while leaves and any(e.context for e in leaves):
            leaves = [c for e in leaves for c in (e.context or [e])]
        for leaf in leaves:
            moved = _moved_fields(file, leaf)
            found += moved
            message = _message(leaf) if not moved else _unexpected(leaf, {p.path for p in moved})
            if message:
                found.append(Problem(file, pointer(leaf.absolute_path), message))
    unique = {(p.path, p.message): p for p in found}
    return sorted(unique.values(), key=lambda p: (p.path, p.message))


@cache
def _outline_validator() -> Draft202012Validator:
    """The graph schema without what it says of each node (only the node ids)."""
    outline = copy.deepcopy(schema())
    outline["properties"]["nodes"]["additionalProperties"] = {}
    return cast(Draft202012Validator, _Strict(outline, format_checker=_format_checker()))


@cache
def _node_validator(node_type: str | None) -> Draft202012Validator:
    """The schema's definition of a node of ``node_type`` (``$defs/<type>Node``), or
    of any node (``$defs/node``, which tries every type) when it is not one."""
    defs = schema()["$defs"]
    target = f"{node_type}Node"
    if target not in defs:
        target = "node"
    definition = {"$defs": defs, "$ref": f"#/$defs/{target}"}
    return cast(Draft202012Validator, _Strict(definition, format_checker=_format_checker()))


def problems(file: str, document: Any) -> list[Problem]:
    """What the graph format's JSON Schema finds wrong with a graph document.

    The problems of validating the document whole, found four times faster: the
    schema's node definition tries each node against every type in turn (``allOf``
    of ``if``/``then``), so the outline is validated apart and each node against
    its own type's definition (10,000 nodes: about half a second, bench/validator.py)."""
    nodes = document.get("nodes") if isinstance(document, dict) else None
    if not isinstance(nodes, dict):
        return _problems(_schema_validator(), file, document)
    found = _problems(_outline_validator(), file, document)
    for node_id, node in nodes.items():
        kind = node.get("type") if isinstance(node, dict) else None
        validator = _node_validator(kind if isinstance(kind, str) else None)
        found += _problems(validator, file, node, ("nodes", node_id))
    unique = {(p.path, p.message): p for p in found}
    return sorted(unique.values(), key=lambda p: (p.path, p.message))


def queues_problems(file: str, document: Any) -> list[Problem]:
    """What the JSON Schema of ``queues.json`` finds wrong with a queues document."""
    return _problems(_queues_validator(), file, document)
