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
import difflib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
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


# What each pattern and format of the two schemas accepts, in plain words: a schema
# error says "'0612345' is not an E.164 number (+ and 7-15 digits, the first not 0)",
# never the regular expression. A test checks that every pattern and format of both
# schemas is described here.
PATTERN_WORDS: dict[str, str] = {
    "^[a-z0-9][a-z0-9-]*$": "a graph id (lowercase letters, digits and '-', starting with a "
    "letter or digit)",
    "^[a-z0-9][a-z0-9_-]*$": "a node id (lowercase letters, digits, '_' and '-', starting "
    "with a letter or digit)",
    "^[a-z0-9][a-z0-9_-]{0,62}$": "a queue name (1-63 lowercase letters, digits, '_' and '-', "
    "starting with a letter or digit)",
    "^\\+[1-9][0-9]{6,14}$": "an E.164 number (+ and 7-15 digits, the first not 0)",
    "^(\\+[1-9][0-9]{6,14}|sips?:[^\\s@]+@[^\\s]+|.*\\{\\{.+\\}\\}.*)$": "an E.164 number "
    "(+ and 7-15 digits, the first not 0), a sip: or sips: URI (sip:user@host) or a "
    "template ({{vars.NAME}})",
    "^[A-Za-z_][A-Za-z0-9_]*$": "a variable name (letters, digits and '_', not starting with "
    "a digit)",
    "^https://": "an https:// URL",
    "^[0-9*#]$": "a single key (0-9, * or #)",
    "^(caller|called|call_id|amd|vars\\.[A-Za-z_][A-Za-z0-9_]*)$": "caller, called, call_id, "
    "amd or vars.NAME",
    "\\w": "a phrase (at least one letter or digit)",
    "^[a-z0-9][a-z0-9 _-]*$": "a tag (lowercase letters, digits, ' ', '_' and '-', starting with "
    "a letter or digit)",
    "^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-4]):[0-5][0-9]$": "a time range "
    "HH:MM-HH:MM (like 09:00-17:30; 24:00 only as its end)",
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}$": "a date YYYY-MM-DD",
    "^(https?://|\\{\\{)": "an http:// or https:// URL, or a template starting with {{",
}
FORMAT_WORDS: dict[str, str] = {"regex": "a regular expression"}
TYPE_WORDS: dict[str, str] = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}
# A value quoted in a message is cut to this many characters.
SHOWN_CHARS = 60


def _shown(instance: Any) -> str:
    """A value of the document as a message quotes it: a string as 'text', anything
    else as JSON; a long one cut."""
    if isinstance(instance, str):
        if len(instance) <= SHOWN_CHARS:
            return repr(instance)
        return f"{instance[: SHOWN_CHARS - 10]!r}... ({len(instance)} characters)"
    text = json.dumps(instance, ensure_ascii=False, default=str)
    return text if len(text) <= SHOWN_CHARS else f"{text[: SHOWN_CHARS - 10]}..."


def _listed(words: list[str], last: str = "or") -> str:
    """``a, b or c``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def _unknown_fields(names: list[str], known: Iterable[str]) -> str:
    """``unknown field 'sya' (did you mean 'say'?)``."""
    choices = [str(k) for k in known]
    shown = []
    for name in names:
        close = difflib.get_close_matches(name, choices, n=1)
        shown.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    return f"unknown field{'s' if len(names) > 1 else ''} {_listed(shown, 'and')}"


def _regex_reason(error: ValidationError) -> str:
    cause = error.cause
    if isinstance(cause, OverflowError):
        return "a repetition count is too large"
    if isinstance(cause, RecursionError):
        return "it is nested too deeply"
    return str(cause) if cause is not None else "Python cannot compile it"


def _message(error: ValidationError) -> str | None:
    """What a schema error means, in plain words (None: nothing to add to what other
    errors of the same value say)."""
    parent = error.parent
    keyword = error.validator
    value: Any = error.validator_value
    instance = error.instance
    if (
        keyword == "required"
        and parent is not None
        and parent.validator == "anyOf"
        and all(c.validator == "required" for c in parent.context or [])
    ):
        names = " or ".join(
            repr(cast(list[str], c.validator_value)[0]) for c in parent.context or []
        )
        return f"needs {names}"
    if keyword == "required":
        missing = [name for name in value if isinstance(instance, Mapping) and name not in instance]
        return f"needs {_listed([repr(name) for name in missing or value], 'and')}"
    if keyword == "type":
        kinds = [value] if isinstance(value, str) else list(value)
        return f"{_shown(instance)} is not {_listed([TYPE_WORDS.get(k, k) for k in kinds])}"
    if keyword == "pattern":
        words = PATTERN_WORDS.get(value)
        if words is None:  # pragma: no cover - a test keeps the table complete
            return f"{_shown(instance)} does not match {value!r}"
        return f"{_shown(instance)} is not {words}"
    if keyword == "format":
        words = FORMAT_WORDS.get(value, f"of the format {value!r}")
        if value == "regex":
            return f"{_shown(instance)} is not {words}: {_regex_reason(error)}"
        return f"{_shown(instance)} is not {words}"
    if keyword == "enum":
        if value == schema()["$defs"]["locale"]["enum"]:
            return (
                f"{_shown(instance)} is not a locale of Bird's text-to-speech (like en-US or "
                "nl-NL; ivr_graphs/schema.json lists them)"
            )
        shown = [v if isinstance(v, str) else json.dumps(v) for v in value]
        if value == schema()["$defs"]["speechLocale"]["enum"]:
            return (
                f"{_shown(instance)} is not a language Bird's gather understands speech in: "
                f"one of {_listed(shown)}"
            )
        return f"{_shown(instance)} is not one of {_listed(shown)}"
    if keyword == "const":
        return f"{_shown(instance)} is not {_shown(value)}"
    if keyword == "additionalProperties" and isinstance(instance, Mapping):
        known = cast(Mapping[str, Any], error.schema).get("properties", {})
        return _unknown_fields([str(n) for n in instance if n not in known], known)
    if keyword in ("minLength", "minItems", "minProperties") and value == 1:
        return "must not be empty"
    if keyword == "maxItems" and isinstance(instance, list):
        return f"has {len(instance)} items, more than the {value} allowed"
    if keyword == "uniqueItems" and isinstance(instance, list):
        seen: list[Any] = []
        for item in instance:
            if item in seen:
                return f"lists {_shown(item)} more than once"
            seen.append(item)
    if keyword == "not":
        excluded = cast(Mapping[str, Any], value).get("required")
        if not isinstance(instance, Mapping):
            return None  # not an object: its type error says so
        if isinstance(excluded, list) and len(excluded) > 1:
            both = _listed([repr(n) for n in excluded], "and")
            return f"has {'both ' if len(excluded) == 2 else ''}{both}: give only one"
        if isinstance(excluded, list) and excluded:
            op = instance.get("op")
            if isinstance(op, str):
                return f"{excluded[0]!r} is not allowed with op {op!r}"
            return f"must not have {excluded[0]!r}"
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
        str(name)
        for name in cast(Mapping[str, Any], error.instance)
        if name not in known and pointer([*error.absolute_path, name]) not in reported
    ]
    if not extras:
        return None
    return _unknown_fields(extras, known)


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
