"""Bird's published request schemas for the voice endpoints (``voice-schemas.json``).

The file is a copy of Bird's own schemas as recorded in docs/bird-contract.md
(JSON Schema 2020-12, under ``operations.<name>.requestSchema``). The simulator
validates every request against them, and the tests validate every body the
client builds.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

OPERATIONS = (
    "createCall",
    "updateCall",
    "answerCall",
    "ringCall",
    "hangupCall",
    "playback",
    "say",
    "gather",
    "bridge",
    "record",
)

# Operations whose request body may be left out entirely.
BODY_OPTIONAL = frozenset({"answerCall", "ringCall", "hangupCall"})


@cache
def document() -> dict[str, Any]:
    """The whole schema document, loaded once from the package."""
    text = resources.files("service.bird").joinpath("voice-schemas.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def validator(operation: str) -> Draft202012Validator:
    """A validator for the request body of ``operation``."""
    if operation not in OPERATIONS:
        raise KeyError(f"unknown Bird operation {operation!r}")
    return Draft202012Validator(document()["operations"][operation]["requestSchema"])


def problems(operation: str, body: Any) -> list[str]:
    """Why ``body`` is not a valid request for ``operation`` (empty when it is).

    Each problem reads ``/json/path: message``. ``body`` None means no body was sent.
    """
    if body is None:
        return [] if operation in BODY_OPTIONAL else ["/: a JSON request body is required"]
    check = validator(operation)
    found = []
    for error in sorted(check.iter_errors(body), key=lambda e: list(e.absolute_path)):
        path = "/" + "/".join(str(part) for part in error.absolute_path)
        found.append(f"{path}: {error.message}")
    return found


def call_object_problems(call: Any) -> list[str]:
    """Why ``call`` is not a valid Bird Call object (used by the simulator's own tests)."""
    check = Draft202012Validator(document()["callObject"])
    return [
        "/" + "/".join(str(p) for p in e.absolute_path) + f": {e.message}"
        for e in check.iter_errors(call)
    ]
