"""Graph objects from graph JSON: a node's dataclass (``service.core.graph``) from its
JSON, and a graph's version. Pure: the JSON given here has been checked
(``service.graphs.check``), or sanitized to what the node types take.

A graph's ``version`` is the hash of its canonical JSON content, so that the same
content always has the same version whatever its formatting.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from service.core.graph import (
    Amd,
    BranchNode,
    CallbackNode,
    Case,
    CollectNode,
    HangupNode,
    HoursNode,
    HttpNode,
    MenuNode,
    Node,
    PauseNode,
    Prompt,
    QueueNode,
    SayNode,
    SetNode,
    TransferNode,
    VoicemailNode,
)

# The fields of a node that name another node (besides ``options`` and ``cases``).
EXIT_FIELDS = ("next", "on_failure", "open", "closed", "default", "on_timeout", "on_no_agents",
               "on_callback", "on_error")  # fmt: skip


def amd(raw: Mapping[str, Any] | None) -> Amd | None:
    """A graph's answering-machine detection, from its ``amd`` object."""
    if raw is None:
        return None
    return Amd(
        enabled=raw["enabled"],
        on_machine=raw.get("on_machine"),
        word_count=raw.get("word_count"),
        beep_timeout_s=raw.get("beep_timeout_s"),
    )


def version_of(document: Mapping[str, Any]) -> str:
    """The hash of a graph's canonical content (key order and spacing do not count)."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # surrogatepass: a document built in memory may hold a lone surrogate (a file cannot).
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def prompt(raw: Mapping[str, Any] | None) -> Prompt | None:
    if not raw or not ("say" in raw or "play" in raw):
        return None
    return Prompt(
        say=raw.get("say"),
        play=tuple(raw.get("play", ())),
        locale=raw.get("locale"),
        voice=raw.get("voice"),
    )


def exits(raw: Mapping[str, Any]) -> dict[str, str]:
    """Exits in the order the file lists them."""
    found: dict[str, str] = {}
    for name, value in raw.items():
        if name in EXIT_FIELDS:
            found[name] = value
        elif name == "options":
            found.update({f"options/{digit}": target for digit, target in value.items()})
        elif name == "cases":
            found.update({f"cases/{i}/next": case["next"] for i, case in enumerate(value)})
    return found


def node(node_id: str, raw: Mapping[str, Any]) -> Node:
    """The node of a node's JSON (of a known type, with its required fields)."""
    kind = raw["type"]
    common: dict[str, Any] = {"id": node_id, "prompt": prompt(raw), "exits": exits(raw)}
    retry: dict[str, Any] = {
        "invalid": prompt(raw.get("invalid")),
        "no_input": prompt(raw.get("no_input")),
    }
    if kind == "say":
        return SayNode(**common, next=raw["next"])
    if kind == "menu":
        return MenuNode(
            **common,
            **retry,
            options=dict(raw["options"]),
            timeout_s=raw.get("timeout_s", 5),
            input=raw.get("input", "dtmf"),
            speech_locale=raw.get("speech_locale"),
            phrases={key: tuple(said) for key, said in raw.get("phrases", {}).items()},
            max_attempts=raw.get("max_attempts", 3),
            on_failure=raw["on_failure"],
        )
    if kind == "collect":
        return CollectNode(
            **common,
            **retry,
            var=raw["var"],
            min_digits=raw.get("min_digits", 1),
            max_digits=raw["max_digits"],
            end_key=raw.get("end_key", "#"),
            timeout_s=raw.get("timeout_s", 5),
            input=raw.get("input", "dtmf"),
            speech_locale=raw.get("speech_locale"),
            pattern=raw.get("pattern"),
            max_attempts=raw.get("max_attempts", 3),
            next=raw["next"],
            on_failure=raw["on_failure"],
        )
    if kind == "branch":
        cases = tuple(
            Case(var=c["var"], op=c["op"], value=c.get("value"), next=c["next"])
            for c in raw["cases"]
        )
        return BranchNode(**common, cases=cases, default=raw["default"])
    if kind == "set":
        return SetNode(**common, vars=dict(raw["vars"]), next=raw["next"])
    if kind == "hours":
        weekly = {day: tuple(ranges) for day, ranges in raw["weekly"].items()}
        return HoursNode(
            **common,
            timezone=raw["timezone"],
            weekly=weekly,
            holidays=tuple(raw.get("holidays", ())),
            open=raw["open"],
            closed=raw["closed"],
        )
    if kind == "transfer":
        return TransferNode(
            **common,
            to=raw["to"],
            from_=raw.get("from"),
            ring_timeout_s=raw.get("ring_timeout_s", 30),
            record=raw.get("record", False),
            on_failure=raw["on_failure"],
        )
    if kind == "queue":
        return QueueNode(
            **common,
            queue=raw["queue"],
            priority=raw.get("priority", 0),
            record=raw.get("record", False),
            on_timeout=raw["on_timeout"],
            on_no_agents=raw["on_no_agents"],
            on_callback=raw.get("on_callback"),
        )
    if kind == "voicemail":
        return VoicemailNode(
            **common,
            max_length_s=raw.get("max_length_s", 120),
            end_key=raw.get("end_key", "#"),
            beep=raw.get("beep", True),
            transcribe=raw.get("transcribe", False),
            next=raw["next"],
        )
    if kind == "callback":
        return CallbackNode(**common, queue=raw["queue"], next=raw["next"])
    if kind == "http":
        return HttpNode(
            **common,
            url=raw["url"],
            method=raw.get("method", "GET"),
            headers=dict(raw.get("headers", {})),
            body=raw.get("body"),
            timeout_ms=raw.get("timeout_ms", 2000),
            save=dict(raw.get("save", {})),
            next=raw["next"],
            on_error=raw["on_error"],
        )
    if kind == "pause":
        return PauseNode(**common, seconds=raw["seconds"], next=raw["next"])
    if kind == "hangup":
        return HangupNode(**common)
    raise AssertionError(f"node type {kind!r} passed the schema but is not modelled")
