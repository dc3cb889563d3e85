"""The IVR engine: a pure function of (graph, call state, event, now).

It does no I/O and imports neither Redis nor httpx. :func:`begin` starts a call's
state; :func:`step` applies one event and returns a :class:`Transition`: the new
state, the actions to take (in order) and notes for the log. Feeding it a
sequence of events is how most of the service's behaviour is tested.

How a node runs:

- ``say``: plays its prompt; when the prompt has finished, goes to ``next``.
- ``menu``: gathers one key with its prompt. A key of ``options`` goes there. A
  wrong key or silence counts an attempt and plays ``invalid`` or ``no_input``;
  after ``max_attempts`` such tries (and that prompt) it goes to ``on_failure``.
- ``transfer``: bridges the caller to ``to``; if the target does not answer, is
  busy or fails, goes to ``on_failure``. Once connected the call ends when
  either side hangs up.
- ``hangup``: plays its optional prompt, then hangs up.

A call never takes more than :data:`MAX_STEPS` steps (node entries and menu
re-prompts): past that it is hung up and the reason logged, so a graph mistake
cannot keep a caller in a loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from service import actions, events, state, templates
from service.actions import Action
from service.events import Event
from service.graphs import Graph, HangupNode, MenuNode, Node, Prompt, SayNode, TransferNode
from service.state import CallState

MAX_STEPS = 200


@dataclass(frozen=True)
class Note:
    """Something worth a log line: ``event`` is its name, ``node`` where it happened."""

    event: str
    node: str | None
    level: str = "info"
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Transition:
    state: CallState
    actions: tuple[Action, ...] = ()
    notes: tuple[Note, ...] = ()


class _Walk:
    """Accumulates one transition: the state as it moves, actions and notes."""

    def __init__(self, graph: Graph, current: CallState, now: float) -> None:
        self.graph = graph
        self.state = current
        self.now = now
        self.actions: list[Action] = []
        self.notes: list[Note] = []

    def note(self, event: str, level: str = "info", **fields: Any) -> None:
        self.notes.append(Note(event, self.state.node, level, fields))

    def update(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)

    def result(self) -> Transition:
        return Transition(self.state, tuple(self.actions), tuple(self.notes))

    # -- prompts -------------------------------------------------------------

    def prompt(self, prompt: Prompt) -> actions.Prompt:
        if prompt.play:
            return actions.Play(prompt.play)
        text = templates.render(prompt.say or "", self.state.template_context())
        return actions.Say(
            text=text,
            locale=prompt.locale or self.graph.locale,
            voice=prompt.voice or self.graph.voice,
        )

    def speak(self, prompt: Prompt, after: str) -> None:
        self.actions.append(actions.Speak(self.prompt(prompt)))
        self.update(phase=state.PROMPTING, after=after)

    # -- moving through the graph --------------------------------------------

    def count_step(self) -> bool:
        steps = self.state.steps + 1
        self.update(steps=steps)
        if steps <= MAX_STEPS:
            return True
        self.note("step_limit_exceeded", "error", steps=steps, limit=MAX_STEPS)
        self.hang_up("step_limit")
        return False

    def enter(self, node_id: str) -> None:
        if not self.count_step():
            return
        node = self.graph.nodes[node_id]
        self.update(node=node_id, attempts=0, after=None)
        self.note("node_entered", type=node.type)
        if isinstance(node, SayNode):
            assert node.prompt is not None
            self.speak(node.prompt, after="next")
        elif isinstance(node, MenuNode):
            self.gather(node)
        elif isinstance(node, TransferNode):
            self.transfer(node)
        elif isinstance(node, HangupNode):
            if node.prompt is not None:
                self.speak(node.prompt, after="hangup")
            else:
                self.hang_up("hangup_node")
        else:  # pragma: no cover - graphs.parse only builds the types above
            raise AssertionError(f"node type {node.type} cannot run")

    def gather(self, node: MenuNode) -> None:
        assert node.prompt is not None
        self.actions.append(
            actions.Gather(
                prompt=self.prompt(node.prompt),
                max_digits=max(len(key) for key in node.options),
                timeout_s=node.timeout_s,
            )
        )
        self.update(phase=state.GATHERING, after=None)

    def transfer(self, node: TransferNode) -> None:
        context = self.state.template_context()
        to = templates.render(node.to, context)
        from_ = templates.render(node.from_, context) if node.from_ else None
        self.actions.append(actions.Bridge(to, from_, node.ring_timeout_s, node.record))
        self.update(phase=state.BRIDGING, agent_leg=None)
        self.note("transfer_started", to=to, ring_timeout_s=node.ring_timeout_s)

    def hang_up(self, outcome: str) -> None:
        self.actions.append(actions.Hangup())
        self.end(outcome)

    def end(self, outcome: str) -> None:
        self.update(phase=state.ENDED, outcome=outcome, after=None, ended_at=self.now)
        self.note("call_ended", outcome=outcome, steps=self.state.steps)

    # -- reacting to events --------------------------------------------------

    def current(self) -> Node:
        assert self.state.node is not None
        return self.graph.nodes[self.state.node]

    def prompt_finished(self) -> None:
        node = self.current()
        after = self.state.after
        if after == "next" and isinstance(node, SayNode):
            self.enter(node.next)
        elif after == "regather" and isinstance(node, MenuNode):
            if self.count_step():
                self.gather(node)
        elif after == "failure" and isinstance(node, MenuNode):
            self.enter(node.on_failure)
        elif after == "hangup":
            self.hang_up("hangup_node")

    def digits(self, node: MenuNode, digits: str) -> None:
        target = node.options.get(digits)
        if target is not None:
            self.note("menu_choice", digits=digits, next=target)
            self.enter(target)
            return
        attempts = self.state.attempts + 1
        self.update(attempts=attempts)
        kind = "no_input" if digits == "" else "invalid"
        retry_prompt = node.no_input if kind == "no_input" else node.invalid
        exhausted = attempts >= node.max_attempts
        self.note(
            f"menu_{kind}",
            "warning" if exhausted else "info",
            digits=digits,
            attempt=attempts,
            max_attempts=node.max_attempts,
        )
        if exhausted:
            self.note("menu_failed", "warning", attempts=attempts, next=node.on_failure)
            if retry_prompt is not None:
                self.speak(retry_prompt, after="failure")
            else:
                self.enter(node.on_failure)
        elif retry_prompt is not None:
            self.speak(retry_prompt, after="regather")
        elif self.count_step():
            self.gather(node)

    def transfer_failed(self, reason: str) -> None:
        node = self.current()
        assert isinstance(node, TransferNode)
        self.note("transfer_failed", "warning", reason=reason, next=node.on_failure)
        self.update(agent_leg=None)
        self.enter(node.on_failure)


def begin(
    graph: Graph,
    *,
    call_id: str,
    caller: str,
    called: str,
    now: float,
    direction: str = "inbound",
) -> Transition:
    """A new call: answer it; the walk starts once the caller's leg is connected."""
    initial = CallState(
        call_id=call_id,
        graph=graph.id,
        graph_version=graph.version,
        caller=caller,
        called=called,
        direction=direction,
        started_at=now,
    )
    walk = _Walk(graph, initial, now)
    walk.note("call_started", direction=direction)
    if direction == "inbound":
        walk.actions.append(actions.Answer())
    return walk.result()


def step(graph: Graph, current: CallState, event: Event, now: float) -> Transition:
    """Apply one event to a call. Events that mean nothing in the call's phase
    change nothing (they are noted as ``event_ignored``)."""
    walk = _Walk(graph, current, now)
    phase = current.phase
    if phase == state.ENDED:
        walk.note("event_after_end", "debug", kind=type(event).__name__)
        return walk.result()

    if isinstance(event, events.CallEnded):
        outcome = "transferred" if phase == state.CONNECTED else f"ended_by_{event.by or 'bird'}"
        walk.note("caller_leg_ended", status=event.status, by=event.by)
        walk.end(outcome)
    elif isinstance(event, events.CallAnswered) and phase == state.ANSWERING:
        walk.note("call_answered")
        walk.enter(graph.start)
    elif isinstance(event, events.PromptFinished) and phase == state.PROMPTING:
        if not event.ok:
            walk.note("prompt_failed", "warning")
        walk.prompt_finished()
    elif isinstance(event, events.DigitsCollected) and phase == state.GATHERING:
        node = walk.current()
        assert isinstance(node, MenuNode)
        if not event.ok:
            walk.note("gather_failed", "warning")
        walk.digits(node, event.digits if event.ok else "")
    elif isinstance(event, events.AgentRinging) and phase == state.BRIDGING:
        walk.update(agent_leg=event.leg_id)
        walk.note("agent_ringing", leg_id=event.leg_id)
    elif isinstance(event, events.AgentConnected) and phase == state.BRIDGING:
        walk.update(phase=state.CONNECTED, agent_leg=event.leg_id)
        walk.note("agent_connected", leg_id=event.leg_id)
    elif isinstance(event, events.AgentUnavailable) and phase == state.BRIDGING:
        walk.transfer_failed(event.reason)
    elif isinstance(event, events.AgentHungUp) and phase == state.CONNECTED:
        walk.note("agent_hung_up", leg_id=event.leg_id)
    else:
        walk.note("event_ignored", "debug", kind=type(event).__name__, phase=phase)
    return walk.result()
