"""``queues.json``: the queues of a graph directory (docs/queues.md).

The file sits beside the graphs (``ivr_graphs/queues.json``) and is checked like them,
every problem reported at once as ``FILE: /json/path: message``:

1. its JSON Schema (``ivr_graphs/queues.schema.json``: names, types, ranges);
2. :func:`problems`: prompt templates (errors), and settings that work but probably
   not as the operator meant (warnings; ``ivr validate`` shows them).

A queue a graph names is checked against the graph by
``service.graphs.validator.check_queues``; ``service.graphs.loader.load_directory``
loads this file with the graphs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from service.core import templates
from service.core.graph import Problem, Prompt, pointer
from service.core.queues import Queue
from service.graphs import schema
from service.graphs.schema import GraphError, read_json
from service.graphs.validator import CALL_NAMES, template_variable

__all__ = ["QUEUES_FILE", "load_queues", "parse_queues", "problems", "queues_document",
           "read_queues"]  # fmt: skip

QUEUES_FILE = "queues.json"
PROMPT_FIELDS = ("hold", "callback_offer")


def _prompt(raw: Mapping[str, Any]) -> Prompt:
    return Prompt(
        say=raw.get("say"),
        play=tuple(raw.get("play", ())),
        locale=raw.get("locale"),
        voice=raw.get("voice"),
    )


def queue_of_json(name: str, raw: Mapping[str, Any]) -> Queue:
    """A :class:`Queue` from its checked JSON: what the file leaves out keeps the default."""
    settings: dict[str, Any] = {
        key: _prompt(value) if key in PROMPT_FIELDS else value for key, value in raw.items()
    }
    return Queue(name=name, **settings)


def _prompt_document(prompt: Prompt) -> dict[str, Any]:
    found: dict[str, Any] = {"say": prompt.say} if prompt.say is not None else {}
    if prompt.play:
        found["play"] = list(prompt.play)
    found.update({key: getattr(prompt, key) for key in ("locale", "voice") if getattr(prompt, key)})
    return found


def queues_document(queues: Mapping[str, Queue]) -> dict[str, Any]:
    """A ``queues.json`` document of ``queues`` (only what differs from the defaults):
    :func:`parse_queues` of it gives the same queues. JSON-ready (lists, not tuples)."""
    document: dict[str, Any] = {}
    for name, queue in queues.items():
        default = Queue(name=name)
        settings: dict[str, Any] = {}
        for field in fields(Queue):
            value = getattr(queue, field.name)
            if field.name == "name" or value == getattr(default, field.name):
                continue
            settings[field.name] = _prompt_document(value) if isinstance(value, Prompt) else value
        document[name] = settings
    return {"queues": document}


def parse_queues(document: Any, file: str = QUEUES_FILE) -> dict[str, Queue]:
    """The queues of a decoded ``queues.json`` document, by name, or
    :class:`~service.graphs.schema.GraphError` with every problem (warnings too)."""
    return _checked(document, file)[0]


def load_queues(path: Path) -> dict[str, Queue]:
    """Read, decode and check a ``queues.json``: :class:`GraphError` on any error."""
    return parse_queues(read_json(path), str(path))


def read_queues(path: Path) -> tuple[dict[str, Queue], list[Problem]]:
    """:func:`load_queues`, and the warnings about the file (``ivr validate``)."""
    return _checked(read_json(path), str(path))


def _checked(document: Any, file: str) -> tuple[dict[str, Queue], list[Problem]]:
    found = schema.queues_problems(file, document)
    if found:
        raise GraphError(found)
    queues = {name: queue_of_json(name, raw) for name, raw in document["queues"].items()}
    found = problems(queues, file, document)
    if any(p.severity == "error" for p in found):
        raise GraphError(found)
    return queues, found


def problems(
    queues: Mapping[str, Queue], file: str, document: Mapping[str, Any] | None = None
) -> list[Problem]:
    """What is wrong with queues the schema accepted, sorted by path then message.

    Errors: a prompt template name other than ``caller``, ``called``, ``call_id`` and
    ``vars.NAME``. Warnings: settings that cannot do what they say (see docs/queues.md).
    ``document`` (the decoded file) tells which settings the file gives explicitly; a
    warning about an explicit setting is reported at it, else at the queue.
    """
    found: list[Problem] = []
    for queue in queues.values():
        given = (document or {}).get("queues", {}).get(queue.name, {})
        found += _templates(queue, file)
        found += _settings(queue, file, given)
    unique = {(p.path, p.message, p.severity): p for p in found}
    return sorted(unique.values(), key=lambda p: (p.path, p.message))


def _templates(queue: Queue, file: str) -> list[Problem]:
    found: list[Problem] = []
    for field in PROMPT_FIELDS:
        prompt: Prompt = getattr(queue, field)
        texts: list[tuple[tuple[str | int, ...], str]] = []
        if prompt.say is not None:
            texts.append(((field, "say"), prompt.say))
        texts += [((field, "play", index), url) for index, url in enumerate(prompt.play)]
        for where, text in texts:
            for name in templates.names(text):
                if name not in CALL_NAMES and template_variable(name) is None:
                    message = (
                        f"unknown template name {{{{{name}}}}}: "
                        "use caller, called, call_id, amd or vars.NAME"
                    )
                    found.append(Problem(file, pointer(["queues", queue.name, *where]), message))
    return found


def _settings(queue: Queue, file: str, given: Mapping[str, Any]) -> list[Problem]:
    """Warnings: settings that work, but not as whoever wrote them probably meant."""
    found: list[Problem] = []

    def warn(field: str, message: str) -> None:
        parts = ["queues", queue.name, field] if field in given else ["queues", queue.name]
        found.append(Problem(file, pointer(parts), message, "warning"))

    if queue.max_wait_s < queue.hold_segment_s:
        warn(
            "max_wait_s",
            f"max_wait_s {queue.max_wait_s} is shorter than hold_segment_s "
            f"{queue.hold_segment_s}: callers time out during their first hold segment",
        )
    if queue.tier_wait_s and queue.tier_wait_s >= queue.max_wait_s:
        warn(
            "tier_wait_s",
            f"tier_wait_s {queue.tier_wait_s} is not less than max_wait_s {queue.max_wait_s}: "
            "callers time out before agents of level 2 or more are offered them",
        )
    if queue.no_agents_grace_s >= queue.max_wait_s:
        warn(
            "no_agents_grace_s",
            f"no_agents_grace_s {queue.no_agents_grace_s} is not less than max_wait_s "
            f"{queue.max_wait_s}: when every agent logs out, waiting callers time out "
            "(on_timeout) before on_no_agents",
        )
    if queue.announce_position and queue.announce_every_s < queue.hold_segment_s:
        warn(
            "announce_every_s",
            f"announce_every_s {queue.announce_every_s} is shorter than hold_segment_s "
            f"{queue.hold_segment_s}: the position is announced between hold segments, "
            f"so at most every {queue.hold_segment_s} s",
        )
    if queue.callback_after_s is None and "callback_offer" in given:
        warn(
            "callback_offer",
            "callback_offer is never played: callback_after_s is not set (the queue offers "
            "no callbacks)",
        )
    return found
