"""The IVR engine: a pure function of (graph, call state, event, now).

It does no I/O and imports neither Redis nor httpx. :func:`begin` starts a call's
state; :func:`step` applies one event and returns a :class:`Transition`: the new
state, the actions to take (in order) and notes for the log. Feeding it a
sequence of events is how most of the service's behaviour is tested; ``now`` is
the only clock it knows (``hours`` nodes read it).

The state machine in two tables: :func:`_moves_in` says in which phases each
event moves a call (in any other phase it changes nothing and is noted as
``event_ignored``), and :meth:`_Walk.apply` what each event does there; both are
one ``match`` over every event type, closed with ``assert_never`` so that the
type checker proves every event handled. :meth:`_Walk.enter` is the same for
every node type.

How a node runs:

- ``say``: plays its prompt; when the prompt has finished, goes to ``next``.
- ``menu``: gathers one key with its prompt. A key of ``options`` goes there. A
  wrong key or silence counts an attempt and plays ``invalid`` or ``no_input``;
  after ``max_attempts`` such tries (and that prompt) it goes to ``on_failure``.
- ``collect``: gathers up to ``max_digits`` keys ended by ``end_key``; input of
  ``min_digits`` or more that matches ``pattern`` is stored in ``vars.<var>`` and
  goes to ``next``; anything else is retried like a menu, then ``on_failure``.
- ``branch``: the first case that holds (``service.core.conditions``) names the
  next node, else ``default``.
- ``set``: renders each template into ``vars`` and goes to ``next``.
- ``hours``: ``open`` or ``closed`` at ``now`` (``service.core.hours``).
- ``transfer``: bridges the caller to ``to``; if the target does not answer, is
  busy or fails, goes to ``on_failure``. Once connected the call ends when
  either side hangs up.
- ``voicemail``: plays its optional prompt, records, keeps the recording id on
  the call and goes to ``next``.
- ``http``: asks the service to make the request; a 2xx JSON answer with every
  ``save`` path present stores those values and goes to ``next``; a timeout,
  another status, a body that is not JSON or a missing path goes to ``on_error``.
- ``hangup``: plays its optional prompt, then hangs up.

Every text is a template (``service.core.templates``). A call never takes more than
:data:`MAX_STEPS` steps (node entries and re-prompts): past that it is hung up
and the reason logged, so a graph mistake cannot keep a caller in a loop.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, assert_never

from service.core import actions, conditions, events, hours, jsonpath, templates
from service.core.actions import Action
from service.core.events import Event
from service.core.graph import (
    BranchNode,
    CallbackNode,
    CollectNode,
    Graph,
    HangupNode,
    HoursNode,
    HttpNode,
    MenuNode,
    Node,
    Prompt,
    QueueNode,
    SayNode,
    SetNode,
    TransferNode,
    VoicemailNode,
)
from service.core.state import After, CallState, Direction, Outcome, Phase

MAX_STEPS = 200

Level = Literal["debug", "info", "warning", "error"]
"""The log level a note asks for."""

LIVE_PHASES = frozenset(Phase) - {Phase.ENDED}


@dataclass(frozen=True)
class Note:
    """Something worth a log line: ``event`` is its name, ``node`` where it happened."""

    event: str
    node: str | None
    level: Level = "info"
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Transition:
    """What one event did: the new state, the actions to take and notes for the log.
    ``moved`` is False when the event meant nothing in the call's phase: the call
    still waits on what it waited on before. A transition asks for at most one
    action: a call waits on one thing at a time."""

    state: CallState
    actions: tuple[Action, ...] = ()
    notes: tuple[Note, ...] = ()
    moved: bool = True


def begin(
    graph: Graph,
    *,
    call_id: str,
    caller: str,
    called: str,
    now: float,
    direction: Direction = Direction.INBOUND,
    variables: Mapping[str, str] | None = None,
) -> Transition:
    """A new call. Inbound: answer it. Outbound: Bird is dialling it (``Dial``).
    Either way the walk starts once the caller's leg is connected (``CallAnswered``)."""
    initial = CallState(
        call_id=call_id,
        graph=graph.id,
        graph_version=graph.version,
        caller=caller,
        called=called,
        direction=direction,
        started_at=now,
        vars=dict(variables or {}),
    )
    walk = _Walk(graph, initial, now)
    walk.note("call_started", direction=direction, version=graph.version)
    walk.actions.append(actions.Answer() if direction is Direction.INBOUND else actions.Dial())
    return walk.result()


def step(graph: Graph, current: CallState, event: Event, now: float) -> Transition:
    """Apply one event to a call. An event that means nothing in the call's phase
    changes nothing (it is noted as ``event_ignored``)."""
    walk = _Walk(graph, current, now)
    if current.phase is Phase.ENDED:
        walk.note("event_after_end", "debug", kind=type(event).__name__)
        return replace(walk.result(), moved=False)
    if current.phase not in _moves_in(event):
        walk.note("event_ignored", "debug", kind=type(event).__name__, phase=current.phase)
        return replace(walk.result(), moved=False)
    walk.apply(event)
    return walk.result()


def abandon(graph: Graph, current: CallState, reason: str, now: float) -> Transition:
    """Give up on a live call that cannot go on (Bird refused a command): hang up
    and end it, loudly, rather than leave the caller in silence."""
    walk = _Walk(graph, current, now)
    if current.phase is Phase.ENDED:
        return replace(walk.result(), moved=False)
    walk.note("call_abandoned", "error", reason=reason)
    walk.hang_up(Outcome.BIRD_REFUSED)
    return walk.result()


def _moves_in(event: Event) -> frozenset[Phase]:
    """The phases in which ``event`` moves a call: the engine's transition table."""
    match event:
        case events.CallEnded():
            return LIVE_PHASES
        case events.CallAnswered():
            return frozenset({Phase.ANSWERING})
        case events.PromptFinished():
            return frozenset({Phase.PROMPTING})
        case events.DigitsCollected():
            return frozenset({Phase.GATHERING})
        case events.RecordingFinished():
            return frozenset({Phase.RECORDING})
        case events.HttpResponded():
            return frozenset({Phase.REQUESTING})
        case events.AgentRinging() | events.AgentConnected() | events.AgentUnavailable():
            return frozenset({Phase.BRIDGING})
        case events.AgentHungUp():
            return frozenset({Phase.CONNECTED})
        case events.Progress():
            return frozenset()
        case _:
            assert_never(event)


def _not_answered(status: events.LegStatus) -> Outcome:
    """The outcome of an outbound call whose callee's leg ended before it connected."""
    match status:
        case "no-answer":
            return Outcome.NOT_ANSWERED_NO_ANSWER
        case "busy":
            return Outcome.NOT_ANSWERED_BUSY
        case "failed":
            return Outcome.NOT_ANSWERED_FAILED
        case "cancelled":
            return Outcome.NOT_ANSWERED_CANCELLED
        case "completed":
            return Outcome.NOT_ANSWERED_COMPLETED
        case _:
            assert_never(status)


def _ended_by(by: events.HungUpBy | None) -> Outcome:
    match by:
        case "caller":
            return Outcome.ENDED_BY_CALLER
        case "callee":
            return Outcome.ENDED_BY_CALLEE
        case None:
            return Outcome.ENDED_BY_BIRD
        case _:
            assert_never(by)


def _as_var(value: Any) -> str:
    """A value picked from a JSON answer, as the text a variable holds."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class _Walk:
    """Accumulates one transition: the state as it moves, actions and notes."""

    def __init__(self, graph: Graph, current: CallState, now: float) -> None:
        self.graph = graph
        self.state = current
        self.now = now
        self.actions: list[Action] = []
        self.notes: list[Note] = []

    def note(self, event: str, level: Level = "info", **fields: Any) -> None:
        self.notes.append(Note(event, self.state.node, level, fields))

    def update(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)

    def result(self) -> Transition:
        return Transition(self.state, tuple(self.actions), tuple(self.notes))

    def render(self, text: str) -> str:
        return templates.render(text, self.state.template_context())

    def render_value(self, value: Any) -> Any:
        """Templates inside any JSON value (an http body)."""
        if isinstance(value, str):
            return self.render(value)
        if isinstance(value, list):
            return [self.render_value(v) for v in value]
        if isinstance(value, dict):
            return {k: self.render_value(v) for k, v in value.items()}
        return value

    # -- what each event does, in a phase where it moves the call -----------

    def apply(self, event: Event) -> None:
        match event:
            case events.CallEnded():
                self.leg_ended(event)
            case events.CallAnswered():
                self.note("call_answered")
                self.enter(self.graph.start)
            case events.PromptFinished():
                if not event.ok:
                    self.note("prompt_failed", "warning")
                self.prompt_finished()
            case events.DigitsCollected():
                if not event.ok:
                    self.note("gather_failed", "warning")
                self.digits(event.digits if event.ok else "")
            case events.RecordingFinished():
                self.recorded(event)
            case events.HttpResponded():
                self.responded(event)
            case events.AgentRinging():
                self.update(agent_leg=event.leg_id)
                self.note("agent_ringing", leg_id=event.leg_id)
            case events.AgentConnected():
                self.update(phase=Phase.CONNECTED, agent_leg=event.leg_id)
                self.note("agent_connected", leg_id=event.leg_id)
            case events.AgentUnavailable():
                self.transfer_failed(event.reason)
            case events.AgentHungUp():
                self.note("agent_hung_up", leg_id=event.leg_id)
            case events.Progress():
                pass  # moves nothing in any phase (see _moves_in)
            case _:
                assert_never(event)

    def leg_ended(self, event: events.CallEnded) -> None:
        self.note("caller_leg_ended", status=event.status, by=event.by)
        phase = self.state.phase
        if phase is Phase.ANSWERING and self.state.direction is Direction.OUTBOUND:
            self.note("outbound_not_answered", "warning", status=event.status)
            self.end(_not_answered(event.status))
        elif phase is Phase.CONNECTED:
            self.end(Outcome.TRANSFERRED)
        else:
            self.end(_ended_by(event.by))

    # -- prompts -------------------------------------------------------------

    def prompt(self, prompt: Prompt) -> actions.Prompt:
        if prompt.play:
            return actions.Play(tuple(self.render(url) for url in prompt.play))
        return actions.Say(
            text=self.render(prompt.say or ""),
            locale=prompt.locale or self.graph.locale,
            voice=prompt.voice or self.graph.voice,
        )

    def speak(self, prompt: Prompt, after: After) -> None:
        self.actions.append(actions.Speak(self.prompt(prompt)))
        self.update(phase=Phase.PROMPTING, after=after)

    # -- moving through the graph --------------------------------------------

    def count_step(self) -> bool:
        steps = self.state.steps + 1
        self.update(steps=steps)
        if steps <= MAX_STEPS:
            return True
        self.note("step_limit_exceeded", "error", steps=steps, limit=MAX_STEPS)
        self.hang_up(Outcome.STEP_LIMIT)
        return False

    def enter(self, node_id: str) -> None:
        if not self.count_step():
            return
        node: Node = self.graph.nodes[node_id]
        self.update(node=node_id, attempts=0, after=None)
        self.note("node_entered", type=node.type)
        match node:
            case SayNode():
                assert node.prompt is not None
                self.speak(node.prompt, After.NEXT)
            case MenuNode() | CollectNode():
                self.gather(node)
            case BranchNode():
                self.branch(node)
            case SetNode():
                values = {name: self.render(template) for name, template in node.vars.items()}
                self.update(vars={**self.state.vars, **values})
                self.note("vars_set", names=sorted(values))
                self.enter(node.next)
            case HoursNode():
                is_open = hours.is_open(node.weekly, node.holidays, node.timezone, self.now)
                self.note("hours_checked", open=is_open, timezone=node.timezone)
                self.enter(node.open if is_open else node.closed)
            case TransferNode():
                self.transfer(node)
            case VoicemailNode():
                if node.prompt is not None:
                    self.speak(node.prompt, After.RECORD)
                else:
                    self.record(node)
            case HttpNode():
                self.request(node)
            case HangupNode():
                if node.prompt is not None:
                    self.speak(node.prompt, After.HANGUP)
                else:
                    self.hang_up(Outcome.HANGUP_NODE)
            case QueueNode() | CallbackNode():
                # The service refuses to load a graph with these (graph.RUNNABLE_TYPES).
                raise AssertionError(f"node type {node.type} cannot run")
            case _:
                assert_never(node)

    def gather(self, node: MenuNode | CollectNode) -> None:
        assert node.prompt is not None
        if isinstance(node, MenuNode):
            max_digits, end_key = max(len(key) for key in node.options), None
        else:
            max_digits, end_key = node.max_digits, node.end_key
        self.actions.append(
            actions.Gather(self.prompt(node.prompt), max_digits, node.timeout_s, end_key)
        )
        self.update(phase=Phase.GATHERING, after=None)

    def branch(self, node: BranchNode) -> None:
        context = self.state.template_context()
        for index, case in enumerate(node.cases):
            if conditions.holds(case.var, case.op, case.value, context):
                self.note("branch_taken", case=index, var=case.var, op=case.op, next=case.next)
                self.enter(case.next)
                return
        self.note("branch_taken", case="default", next=node.default)
        self.enter(node.default)

    def transfer(self, node: TransferNode) -> None:
        to = self.render(node.to)
        from_ = self.render(node.from_) if node.from_ else None
        self.actions.append(actions.Bridge(to, from_, node.ring_timeout_s, node.record))
        self.update(phase=Phase.BRIDGING, agent_leg=None)
        self.note("transfer_started", to=to, ring_timeout_s=node.ring_timeout_s)

    def record(self, node: VoicemailNode) -> None:
        self.actions.append(
            actions.Record(node.max_length_s, node.end_key, node.beep, node.transcribe)
        )
        self.update(phase=Phase.RECORDING, after=None)

    def request(self, node: HttpNode) -> None:
        url = self.render(node.url)
        headers = {name: self.render(value) for name, value in node.headers.items()}
        body = self.render_value(node.body)
        self.actions.append(actions.HttpRequest(node.method, url, headers, body, node.timeout_ms))
        self.update(phase=Phase.REQUESTING, after=None)
        self.note("http_requested", method=node.method, url=url)

    def hang_up(self, outcome: Outcome) -> None:
        self.actions.append(actions.Hangup())
        self.end(outcome)

    def end(self, outcome: Outcome) -> None:
        self.update(phase=Phase.ENDED, outcome=outcome, after=None, ended_at=self.now)
        self.note("call_ended", outcome=outcome, steps=self.state.steps)

    # -- reacting to the end of a prompt, gather, recording or lookup -------

    def current(self) -> Node:
        assert self.state.node is not None
        return self.graph.nodes[self.state.node]

    def prompt_finished(self) -> None:
        """What follows a prompt: ``after``, on the node that played it."""
        match (self.state.after, self.current()):
            case (After.NEXT, SayNode() as say):
                self.enter(say.next)
            case (After.REGATHER, MenuNode() | CollectNode() as waiting):
                if self.count_step():
                    self.gather(waiting)
            case (After.FAILURE, MenuNode() | CollectNode() as waiting):
                self.enter(waiting.on_failure)
            case (After.RECORD, VoicemailNode() as voicemail):
                self.record(voicemail)
            case (After.HANGUP, _):
                self.hang_up(Outcome.HANGUP_NODE)
            case (after, node):  # a state this engine never writes
                self.note("prompt_end_unexpected", "error", after=after, type=node.type)

    def digits(self, digits: str) -> None:
        node = self.current()
        match node:
            case MenuNode():
                target = node.options.get(digits)
                if target is not None:
                    self.note("menu_choice", digits=digits, next=target)
                    self.enter(target)
                    return
            case CollectNode():
                if digits and self.collected_ok(node, digits):
                    self.update(vars={**self.state.vars, node.var: digits})
                    self.note("input_collected", var=node.var, length=len(digits), next=node.next)
                    self.enter(node.next)
                    return
            case _:
                self.note("digits_unexpected", "error", type=node.type)
                return
        self.retry(node, "no_input" if digits == "" else "invalid", digits)

    @staticmethod
    def collected_ok(node: CollectNode, digits: str) -> bool:
        if not node.min_digits <= len(digits) <= node.max_digits:
            return False
        return node.pattern is None or re.fullmatch(node.pattern, digits) is not None

    def retry(
        self, node: MenuNode | CollectNode, kind: Literal["no_input", "invalid"], digits: str
    ) -> None:
        attempts = self.state.attempts + 1
        self.update(attempts=attempts)
        retry_prompt = node.no_input if kind == "no_input" else node.invalid
        exhausted = attempts >= node.max_attempts
        shown = digits if isinstance(node, MenuNode) else f"{len(digits)} digits"
        self.note(
            f"{node.type}_{kind}",
            "warning" if exhausted else "info",
            input=shown,
            attempt=attempts,
            max_attempts=node.max_attempts,
        )
        if exhausted:
            self.note(f"{node.type}_failed", "warning", attempts=attempts, next=node.on_failure)
            if retry_prompt is not None:
                self.speak(retry_prompt, After.FAILURE)
            else:
                self.enter(node.on_failure)
        elif retry_prompt is not None:
            self.speak(retry_prompt, After.REGATHER)
        elif self.count_step():
            self.gather(node)

    def recorded(self, event: events.RecordingFinished) -> None:
        node = self.current()
        assert isinstance(node, VoicemailNode)
        if event.ok and event.recording_id:
            self.update(recordings=(*self.state.recordings, event.recording_id))
            self.note("voicemail_recorded", recording_id=event.recording_id,
                      duration_s=event.duration_s)  # fmt: skip
        else:
            self.note("voicemail_failed", "warning")
        self.enter(node.next)

    def responded(self, event: events.HttpResponded) -> None:
        node = self.current()
        assert isinstance(node, HttpNode)
        saved, reason = self.pick(node, event)
        if reason is not None:
            self.note("http_failed", "warning", reason=reason, next=node.on_error)
            self.enter(node.on_error)
            return
        self.update(vars={**self.state.vars, **saved})
        self.note("http_answered", status=event.status, saved=sorted(saved), next=node.next)
        self.enter(node.next)

    @staticmethod
    def pick(node: HttpNode, event: events.HttpResponded) -> tuple[dict[str, str], str | None]:
        """The variables to save, or why the answer is an error."""
        if event.error is not None or event.status is None:
            return {}, event.error or "no answer"
        if not 200 <= event.status < 300:
            return {}, f"status {event.status}"
        if not event.body.strip() and not node.save:
            return {}, None  # an empty answer (204) is fine when nothing is picked from it
        try:
            document = json.loads(event.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return {}, "answer is not JSON"
        saved: dict[str, str] = {}
        for name, path in node.save.items():
            try:
                saved[name] = _as_var(jsonpath.extract(document, path))
            except jsonpath.Missing as exc:
                return {}, f"missing {exc}"
        return saved, None

    def transfer_failed(self, reason: events.Unreachable) -> None:
        node = self.current()
        assert isinstance(node, TransferNode)
        self.note("transfer_failed", "warning", reason=reason, next=node.on_failure)
        self.update(agent_leg=None)
        self.enter(node.on_failure)
