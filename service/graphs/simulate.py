"""``ivr simulate``: walk a graph offline with a script of keys.

No server, no Redis, no network: the engine is fed the events a call would
produce, with the caller's keys from the script, transfers answered (or not) as
told, and ``http`` nodes answered from a fixture file. The result is a transcript
of what the caller hears and presses and each node passed, and where the call
ends. A script that does not fit the graph is an error: input asked for and none
left, or input left over when the call ends.

Fixture file (``--http-fixture``): a JSON object from ``"METHOD URL"`` (or just
``"URL"``) to an answer ``{"status": 200, "json": {...}}``, ``{"status": 404,
"body": "text"}`` or ``{"error": "timeout"}``; URLs as rendered, templates filled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

from service.core import actions, engine, events
from service.core.actions import Action
from service.core.engine import Transition
from service.core.graph import Graph
from service.core.state import Direction

SILENCE = "_"
AgentBehaviour = Literal["answer"] | events.Unreachable
"""What transfer targets do in a simulation."""
AGENT_OUTCOMES: tuple[AgentBehaviour, ...] = ("answer", "no-answer", "busy", "failed")
MAX_ROUNDS = 10_000


class ScriptError(Exception):
    """The script does not fit the graph; the message says where and why."""


@dataclass(frozen=True)
class Line:
    node: str | None
    kind: str  # node | hears | presses | silence | transfer | reached | not-reached | ...
    text: str


@dataclass
class Simulation:
    graph: str
    version: str
    caller: str
    called: str
    at: str
    direction: str
    lines: list[Line] = field(default_factory=list)
    outcome: str | None = None
    ended_at: str | None = None
    steps: int = 0
    vars: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def add(self, node: str | None, kind: str, text: str = "") -> None:
        self.lines.append(Line(node, kind, text))

    def render(self) -> str:
        party = "callee" if self.direction == Direction.OUTBOUND else "caller"
        head = (
            f"{self.graph} (version {self.version}): {self.direction} call, "
            f"{party} {self.caller}, our number {self.called or '-'}, at {self.at}"
        )
        width = max([len(line.node or "") for line in self.lines] + [4])
        body = [f"  {(line.node or ''):<{width}}  {line.kind:<11} {line.text}".rstrip()
                for line in self.lines]  # fmt: skip
        if self.error is None:
            tail = f"ended: {self.outcome} at node {self.ended_at} after {self.steps} steps"
        else:
            tail = f"error: {self.error}"
        return "\n".join([head, *body, tail]) + "\n"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def _fixture_answer(
    fixtures: Mapping[str, Any], request: actions.HttpRequest, node: str | None
) -> events.HttpResponded:
    answer = fixtures.get(f"{request.method} {request.url}", fixtures.get(request.url))
    if answer is None:
        raise ScriptError(
            f"node {node} requests {request.method} {request.url}: no answer for it in the "
            '--http-fixture file (key "METHOD URL" or "URL")'
        )
    if not isinstance(answer, dict):
        raise ScriptError(f"fixture for {request.url} must be an object")
    if "error" in answer:
        return events.HttpResponded(None, error=str(answer["error"]))
    status = answer.get("status", 200)
    if "json" in answer:
        body = json.dumps(answer["json"]).encode()
    else:
        body = str(answer.get("body", "")).encode()
    return events.HttpResponded(int(status), body)


def _pressed(entry: str, action: actions.Gather) -> str:
    """What Bird reports for keys pressed at a gather: up to the end key, at most
    ``max_digits``."""
    keys = entry
    if action.end_key and action.end_key in keys:
        keys = keys[: keys.index(action.end_key)]
    return keys[: action.max_digits]


def simulate(
    graph: Graph,
    keys: Sequence[str],
    *,
    at: datetime,
    caller: str = "+31600000000",
    called: str | None = None,
    variables: Mapping[str, str] | None = None,
    fixtures: Mapping[str, Any] | None = None,
    agent: AgentBehaviour = "answer",
    outbound: bool = False,
) -> Simulation:
    """Walk ``graph`` with ``keys`` (one entry per input asked; ``_`` is silence)."""
    called = called if called is not None else (graph.numbers[0] if graph.numbers else "")
    direction = Direction.OUTBOUND if outbound else Direction.INBOUND
    result = Simulation(graph.id, graph.version, caller, called, at.isoformat(), direction)
    now = at.timestamp()
    script = list(keys)
    missing = [name for name in graph.params if name not in (variables or {})]
    if missing:
        result.error = (
            f"the graph's params need a value: {', '.join(missing)} (use --var NAME=VALUE)"
        )
        return result
    transition = engine.begin(graph, call_id="simulated-call", caller=caller, called=called,
                              now=now, direction=direction, variables=variables)  # fmt: skip
    pending: list[events.Event] = [] if transition.actions else [events.CallAnswered()]
    try:
        for _ in range(MAX_ROUNDS):
            _notes(result, transition)
            for action in transition.actions:
                pending += _perform(result, transition, action, script, fixtures or {}, agent)
            if transition.state.ended or not pending:
                break
            transition = engine.step(graph, transition.state, pending.pop(0), now)
        if not transition.state.ended:
            raise ScriptError(f"the call did not end (stuck at node {transition.state.node})")
        if script:
            raise ScriptError(
                f"input left over: {', '.join(script)} (the call ended at node "
                f"{transition.state.node})"
            )
    except ScriptError as exc:
        result.error = str(exc)
    final = transition.state
    result.outcome, result.ended_at = final.outcome, final.node
    result.steps, result.vars = final.steps, dict(final.vars)
    return result


def _notes(result: Simulation, transition: Transition) -> None:
    for note in transition.notes:
        if note.event == "node_entered":
            result.add(note.node, "node", str(note.fields.get("type", "")))
        elif note.event == "hours_checked":
            state = "open" if note.fields.get("open") else "closed"
            result.add(note.node, "hours", f"{state} ({note.fields.get('timezone')})")
        elif note.event == "branch_taken":
            result.add(note.node, "branch", f"case {note.fields.get('case')}")
        elif note.event == "step_limit_exceeded":
            result.add(note.node, "guard", "200 steps: hung up")


def _perform(
    result: Simulation,
    transition: Transition,
    action: Action,
    script: list[str],
    fixtures: Mapping[str, Any],
    agent: AgentBehaviour,
) -> list[events.Event]:
    """What the caller experiences of one action, and the events it leads to."""
    node = transition.state.node
    if isinstance(action, actions.Answer | actions.Dial):
        return [events.CallAnswered()]
    if isinstance(action, actions.Speak):
        result.add(node, "hears", _heard(action.prompt))
        return [events.PromptFinished()]
    if isinstance(action, actions.Gather):
        result.add(node, "hears", _heard(action.prompt))
        if not script:
            raise ScriptError(f"node {node} asks for input and the script has none left")
        entry = script.pop(0)
        if entry == SILENCE:
            result.add(node, "silence", f"pressed nothing within {action.timeout_s} s")
            return [events.DigitsCollected("")]
        result.add(node, "presses", entry)
        return [events.DigitsCollected(_pressed(entry, action))]
    if isinstance(action, actions.Bridge):
        result.add(node, "transfer", f"to {action.to} (rings {action.ring_timeout_s} s)")
        if agent == "answer":
            result.add(node, "reached", action.to)
            return [events.AgentConnected("agent-leg"), events.CallEnded("completed", "callee")]
        result.add(node, "not-reached", f"{action.to}: {agent}")
        return [events.AgentUnavailable("agent-leg", agent)]
    if isinstance(action, actions.Record):
        result.add(node, "records", f"a voicemail (at most {action.max_length_s} s)")
        return [events.RecordingFinished("simulated-recording", 5.0)]
    if isinstance(action, actions.HttpRequest):
        answer = _fixture_answer(fixtures, action, node)
        shown = answer.error or f"status {answer.status}"
        result.add(node, "http", f"{action.method} {action.url} -> {shown}")
        return [answer]
    if isinstance(action, actions.Hangup):
        result.add(node, "hangup", "the IVR hangs up")
        return []
    raise AssertionError(action)  # pragma: no cover


def _heard(prompt: actions.Prompt) -> str:
    if isinstance(prompt, actions.Play):
        return "(audio) " + ", ".join(prompt.urls)
    return json.dumps(prompt.text, ensure_ascii=False)
