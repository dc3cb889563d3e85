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
- ``menu``: gathers one key with its prompt. A key of ``options`` goes there; so
  does (``input`` with speech) an answer holding one of an option's ``phrases``
  (``service.core.speech``). A wrong key or answer, or silence, counts an attempt
  and plays ``invalid`` or ``no_input``; after ``max_attempts`` such tries (and
  that prompt) it goes to ``on_failure``.
- ``collect``: gathers up to ``max_digits`` keys ended by ``end_key``; input of
  ``min_digits`` or more that matches ``pattern`` is stored in ``vars.<var>`` and
  goes to ``next``; so is what the caller says (``input`` with speech) when it
  matches ``pattern``; anything else is retried like a menu, then ``on_failure``.
- ``pause``: ``seconds`` of silence (``Pause``: the runtime's timer ends it with
  ``PauseEnded``), then ``next``.
- ``branch``: the first case that holds (``service.core.conditions``) names the
  next node, else ``default``.
- ``set``: renders each template into ``vars`` and goes to ``next``.
- ``hours``: ``open`` or ``closed`` at ``now`` (``service.core.hours``).
- ``transfer``: bridges the caller to ``to``; if the target does not answer, is
  busy or fails, goes to ``on_failure``. Once connected the call ends when
  either side hangs up.
- ``queue``: the caller joins the queue's line (``AskLine``; nobody available:
  ``on_no_agents``) and waits (phase ``QUEUED``): hold audio in segments of at
  most ``hold_segment_s`` (A7, A8), and between segments the line is asked where
  they stand: past ``max_wait_s`` they leave to ``on_timeout``; with nobody
  available for ``no_agents_grace_s`` to ``on_no_agents``; their position and
  expected wait are announced when the position improved (at most every
  ``announce_every_s``); a callback is offered once the expected wait exceeds
  ``callback_after_s`` (1: ``on_callback``). When the line offers them an agent
  (``AgentOffered``) the agent is rung (``BRIDGING``; ``TakeOffer``): answered,
  they talk until either side hangs up (the agent then wraps up); missed, busy
  or failed, the caller is back at their place on hold. Every change of their
  place is a :mod:`service.core.line` change committed with the state.
- ``callback``: books a callback in its queue (``BookCallback``): the caller's
  own place when they pressed 1 in that queue's line, else a place from now;
  then plays its prompt (the confirmation) and goes to ``next``. When the
  callback's turn comes the line reserves an agent and the runtime places the
  follow-up call (:func:`begin_callback`): answered, the customer is asked to
  press 1, then bridged to the reserved agent; no answer, no key or a hang-up
  before the agent answers frees the agent at once (``CallbackFailed``: the line
  retries later, keeping the place); an agent who does not answer puts the
  callback back at its place, and the customer is told they will be called again.
- ``voicemail``: plays its optional prompt, records, keeps the recording id on
  the call and goes to ``next``.
- ``http``: asks the service to make the request; a 2xx JSON answer with every
  ``save`` path present stores those values and goes to ``next``; a timeout,
  another status, a body that is not JSON or a missing path goes to ``on_error``.
- ``hangup``: plays its optional prompt, then hangs up.

Answering machines: a delivery that carries Bird's verdict on who answered an
outbound call comes as ``AnsweredBy`` (:func:`answered_by`). The first verdict is
kept (``{{amd}}``); a ``machine`` sends the call from wherever it is to the graph's
``amd.on_machine`` (the message to leave after the beep), unless it already rings
or talks to a person; otherwise the delivery's own event applies as usual.

Recordings: a voicemail's, and a recorded bridge's (``transfer`` or ``queue`` with
``record``), are kept on the call (``recordings``), even when the bridge's news
arrives after the call ended.

Every text is a template (``service.core.templates``). A call never takes more than
:data:`MAX_STEPS` steps (node entries and re-prompts): past that it is hung up
and the reason logged, so a graph mistake cannot keep a caller in a loop.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, assert_never

from service.core import actions, conditions, events, hours, jsonpath, line, speech, templates
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
    PauseNode,
    Prompt,
    QueueNode,
    SayNode,
    SetNode,
    TransferNode,
    VoicemailNode,
    speaks,
)
from service.core.line import LineChange
from service.core.queues import Queue, queues_of
from service.core.state import After, CallState, Direction, InLine, Outcome, Phase, Waiting

MAX_STEPS = 200

# What a callback's follow-up call says (in the queue's locale and voice).
CALLBACK_GREETING = "Hello, this is the call back you asked for. To talk to an agent now, press 1."
CALLBACK_NO_KEY = "We will try again later. Goodbye."
CALLBACK_AGENT_MISSED = (
    "Sorry, the agent could not take your call. We will call you back shortly. Goodbye."
)
CALLBACK_CONFIRM_S = 8

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
    """What one event did: the new state, the actions to take, the changes to the
    line (committed atomically with the state) and notes for the log. ``moved`` is
    False when the event meant nothing in the call's phase: the call still waits
    on what it waited on before. A transition asks for at most one action: a call
    waits on one thing at a time."""

    state: CallState
    actions: tuple[Action, ...] = ()
    notes: tuple[Note, ...] = ()
    moved: bool = True
    line: tuple[LineChange, ...] = ()


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
    # The numbers, so that on-call staff can find a call from a complaint (the logs
    # mask them: service.runtime.logs).
    walk.note("call_started", direction=direction, version=graph.version, caller=caller,
              called=called)  # fmt: skip
    walk.actions.append(actions.Answer() if direction is Direction.INBOUND else actions.Dial())
    return walk.result()


def begin_callback(
    graph: Graph,
    *,
    call_id: str,
    number: str,
    line_number: str,
    now: float,
    waiting: InLine,
    node: str | None,
) -> Transition:
    """A callback's follow-up call to ``number``: Bird dials it for the agent the
    line reserved (``waiting``: its queue, place, ``offer``, ``agent_id``,
    ``address``, ``callback`` and ``attempt``). It takes the offer at once (fenced:
    an offer the line took back meanwhile fails the commit) and waits at ``node``,
    the callback node, for the customer to answer."""
    started = begin(graph, call_id=call_id, caller=number, called=line_number, now=now,
                    direction=Direction.OUTBOUND)  # fmt: skip
    assert waiting.offer is not None
    state = replace(started.state, node=node, line=replace(waiting, waiting=Waiting.CALLING))
    walk = _Walk(graph, state, now)
    walk.notes.extend(replace(note, node=node) for note in started.notes)
    if node is not None:  # the follow-up call is at the callback node from its start
        walk.note("node_entered", type=graph.nodes[node].type, from_node=None, via=None)
    walk.actions.extend(started.actions)
    walk.changes.append(line.TakeOffer(waiting.queue, waiting.offer, waiting.callback))
    walk.line_note("callback_placed", state.line or waiting, callback=waiting.callback,
                   offer=waiting.offer, attempt=waiting.attempt)  # fmt: skip
    return walk.result()


def step(graph: Graph, current: CallState, event: Event, now: float) -> Transition:
    """Apply one event to a call. An event that means nothing in the call's phase
    changes nothing (it is noted as ``event_ignored``)."""
    if isinstance(event, events.AnsweredBy):
        return answered_by(graph, current, event, now)
    walk = _Walk(graph, current, now)
    if isinstance(event, events.ConversationRecorded):  # in any phase: even after the end
        walk.conversation_recorded(event)
        return walk.result() if walk.notes else replace(walk.result(), moved=False)
    if current.phase is Phase.ENDED:
        if isinstance(event, events.AgentRinging | events.AgentConnected) and event.offer:
            # A11: an agent's leg rings (or was answered) for a caller who has gone.
            walk.note("agent_leg_orphaned", "warning", leg_id=event.leg_id, offer=event.offer)
            walk.actions.append(actions.HangupLeg(event.leg_id))
            return walk.result()
        walk.note("event_after_end", "debug", kind=type(event).__name__)
        return replace(walk.result(), moved=False)
    if isinstance(event, events.AGENT_NEWS) and _old_offer(current, event):
        walk.note("agent_news_of_old_offer", "debug", kind=type(event).__name__,
                  offer=event.offer)  # fmt: skip
        return replace(walk.result(), moved=False)
    if current.phase not in _moves_in(event):
        walk.note("event_ignored", "debug", kind=type(event).__name__, phase=current.phase)
        return replace(walk.result(), moved=False)
    walk.apply(event)
    return walk.result()


def answered_by(
    graph: Graph, current: CallState, event: events.AnsweredBy, now: float
) -> Transition:
    """Bird's verdict on who answered, with the event of the delivery that carried it.
    The first verdict is kept; a machine leaves for ``amd.on_machine`` (after the
    beep: A13) unless the call has ended, is ending now (``then``) or rings or talks
    to a person; anything else is the delivery's own event, applied as usual."""
    if current.amd is not None or current.phase is Phase.ENDED:
        return step(graph, current, event.then, now)
    walk = _Walk(graph, current, now)
    walk.update(amd=event.verdict)
    walk.note("answered_by", verdict=event.verdict)
    target = graph.amd.on_machine if graph.amd is not None and graph.amd.enabled else None
    busy = current.phase in (Phase.BRIDGING, Phase.CONNECTED)
    ending = isinstance(event.then, events.CallEnded)
    if event.verdict == "machine" and target is not None and not busy and not ending:
        walk.machine_answered(target)
        return walk.result()
    after = step(graph, walk.state, event.then, now)
    return replace(after, notes=(*walk.notes, *after.notes))


def abandon(graph: Graph, current: CallState, reason: str, now: float) -> Transition:
    """Give up on a live call that cannot go on (Bird refused a command): hang up
    and end it, loudly, rather than leave the caller in silence."""
    walk = _Walk(graph, current, now)
    if current.phase is Phase.ENDED:
        return replace(walk.result(), moved=False)
    walk.note("call_abandoned", "error", reason=reason)
    walk.hang_up(Outcome.BIRD_REFUSED)
    return walk.result()


def _old_offer(current: CallState, event: events.AgentNews) -> bool:
    """Whether agent news is not about the bridge the call waits on: news of an
    offer the call no longer holds (or of a transfer, for a call that holds an
    offer). News that names no offer (a bridge command's own outcome) is about a
    queue's offer only when the runtime read it back for that offer."""
    holds = current.line.offer if current.line is not None else None
    return event.offer != holds


def _moves_in(event: Event) -> frozenset[Phase]:
    """The phases in which ``event`` moves a call: the engine's transition table."""
    match event:
        case events.CallEnded():
            return LIVE_PHASES
        case events.CallAnswered():
            return frozenset({Phase.ANSWERING})
        case events.PromptFinished():
            return frozenset({Phase.PROMPTING, Phase.QUEUED})
        case events.DigitsCollected():
            return frozenset({Phase.GATHERING, Phase.QUEUED})
        case events.LineStatus() | events.AgentOffered():
            return frozenset({Phase.QUEUED})
        case events.RecordingFinished():
            return frozenset({Phase.RECORDING})
        case events.HttpResponded():
            return frozenset({Phase.REQUESTING})
        case events.PauseEnded():
            return frozenset({Phase.PAUSING})
        case events.AnsweredBy() | events.ConversationRecorded():  # handled by step itself
            return LIVE_PHASES
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
        self.changes: list[LineChange] = []
        self.left: InLine | None = None  # the place the caller left for a callback

    def note(self, event: str, level: Level = "info", **fields: Any) -> None:
        self.notes.append(Note(event, self.state.node, level, fields))

    def update(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)

    def result(self) -> Transition:
        return Transition(
            self.state, tuple(self.actions), tuple(self.notes), line=tuple(self.changes)
        )

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
                if self.state.line is not None:  # a callback's follow-up call
                    self.callback_call_answered(self.state.line)
                else:
                    self.enter(self.graph.start)
            case events.PromptFinished():
                if not event.ok:
                    self.note("prompt_failed", "warning")
                if self.state.phase is Phase.QUEUED:
                    self.hold_ended()
                else:
                    self.prompt_finished()
            case events.DigitsCollected():
                if not event.ok:
                    self.note("gather_failed", "warning")
                if self.state.phase is Phase.QUEUED:
                    self.callback_answer(event.digits if event.ok else "")
                elif event.ok:
                    self.digits(event.digits, event.speech)
                else:
                    self.digits("", "")
            case events.LineStatus():
                self.line_status(event)
            case events.AgentOffered():
                self.offered(event)
            case events.RecordingFinished():
                self.recorded(event)
            case events.HttpResponded():
                self.responded(event)
            case events.AgentRinging():
                self.update(agent_leg=event.leg_id)
                self.note("agent_ringing", leg_id=event.leg_id)
            case events.AgentConnected():
                self.update(phase=Phase.CONNECTED, agent_leg=event.leg_id)
                if self.state.line is not None:
                    self.agent_answered(self.state.line)
                else:
                    self.note("agent_connected", leg_id=event.leg_id)
            case events.AgentUnavailable():
                if self.state.line is not None:
                    self.agent_missed(self.state.line, event.reason)
                else:
                    self.transfer_failed(event.reason)
            case events.AgentHungUp():
                self.note("agent_hung_up", leg_id=event.leg_id)
                if self.state.line is not None:
                    self.hang_up(Outcome.AGENT_CONNECTED)
            case events.PauseEnded():
                self.take("next")
            case events.AnsweredBy() | events.ConversationRecorded():  # pragma: no cover
                raise AssertionError(f"{event!r} is handled by step itself")
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
            self.end(Outcome.AGENT_CONNECTED if self.state.line else Outcome.TRANSFERRED)
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

    def speak(self, prompt: Prompt, after: After | None) -> None:
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

    def take(self, via: str) -> None:
        """Leave the current node by its exit ``via`` (a key of ``Node.exits``)."""
        self.enter(self.current().exits[via], via=via)

    def enter(self, node_id: str, via: str | None = None) -> None:
        """Enter ``node_id``: from the current node by its exit ``via``, or (None) as
        the call's first node. ``node_entered`` names both, for traffic counts."""
        if not self.count_step():
            return
        node: Node = self.graph.nodes[node_id]
        came_from = self.state.node if via is not None else None
        self.update(node=node_id, attempts=0, after=None)
        self.note("node_entered", type=node.type, from_node=came_from, via=via)
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
                self.take("next")
            case HoursNode():
                is_open = hours.is_open(node.weekly, node.holidays, node.timezone, self.now)
                self.note("hours_checked", open=is_open, timezone=node.timezone)
                self.take("open" if is_open else "closed")
            case TransferNode():
                self.transfer(node)
            case VoicemailNode():
                if node.prompt is not None:
                    self.speak(node.prompt, After.RECORD)
                else:
                    self.record(node)
            case HttpNode():
                self.request(node)
            case PauseNode():
                self.actions.append(actions.Pause(node.seconds))
                self.update(phase=Phase.PAUSING)
            case HangupNode():
                if node.prompt is not None:
                    self.speak(node.prompt, After.HANGUP)
                else:
                    self.hang_up(Outcome.HANGUP_NODE)
            case QueueNode():
                self.join(node)
            case CallbackNode():
                self.book_callback(node)
            case _:
                assert_never(node)

    def gather(self, node: MenuNode | CollectNode) -> None:
        assert node.prompt is not None
        if isinstance(node, MenuNode):
            max_digits, end_key = max(len(key) for key in node.options), None
        else:
            max_digits, end_key = node.max_digits, node.end_key
        locale = node.speech_locale if speaks(node.input) else None
        gather = actions.Gather(
            self.prompt(node.prompt), max_digits, node.timeout_s, end_key, node.input, locale
        )
        self.actions.append(gather)
        self.update(phase=Phase.GATHERING, after=None)

    def branch(self, node: BranchNode) -> None:
        context = self.state.template_context()
        for index, case in enumerate(node.cases):
            if conditions.holds(case.var, case.op, case.value, context):
                self.note("branch_taken", case=index, var=case.var, op=case.op, next=case.next)
                self.take(f"cases/{index}/next")
                return
        self.note("branch_taken", case="default", next=node.default)
        self.take("default")

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
        waiting = self.state.line
        if waiting is not None:  # whatever ends the call, its place in line goes too
            if self.state.phase is Phase.CONNECTED and waiting.offer is not None:
                self.changes.append(line.AgentCallEnded(waiting.queue, waiting.offer))
                self.line_note("call_with_agent_ended", waiting)
                self.update(line=None)
            else:
                ringing = self.state.phase is Phase.BRIDGING
                if waiting.callback is not None:
                    self.callback_failed(_callback_failure(outcome))
                else:
                    self.leave_line("abandoned")
                if ringing and not self.actions:  # A11: hang up the agent's leg ourselves
                    self.actions.append(actions.HangupLeg(self.state.agent_leg))
        self.update(phase=Phase.ENDED, outcome=outcome, after=None, ended_at=self.now)
        self.note("call_ended", outcome=outcome, steps=self.state.steps)

    # -- reacting to the end of a prompt, gather, recording or lookup -------

    def current(self) -> Node:
        assert self.state.node is not None
        return self.graph.nodes[self.state.node]

    def prompt_finished(self) -> None:
        """What follows a prompt: ``after``, on the node that played it."""
        match (self.state.after, self.current()):
            case (After.NEXT, SayNode() | CallbackNode()):
                self.take("next")
            case (After.REGATHER, MenuNode() | CollectNode() as waiting):
                if self.count_step():
                    self.gather(waiting)
            case (After.FAILURE, MenuNode() | CollectNode() as waiting):
                self.take("on_failure")
            case (After.RECORD, VoicemailNode() as voicemail):
                self.record(voicemail)
            case (After.HANGUP, _):
                self.hang_up(Outcome.HANGUP_NODE)
            case (after, node):  # a state this engine never writes
                self.note("prompt_end_unexpected", "error", after=after, type=node.type)

    def digits(self, digits: str, said: str) -> None:
        """A gather's answer: keys first; else, where words are heard, what was said."""
        node = self.current()
        hears = isinstance(node, MenuNode | CollectNode) and speaks(node.input)
        said = said.strip() if hears else ""
        match node:
            case MenuNode():
                target = node.options.get(digits)
                if target is not None:
                    self.note("menu_choice", digits=digits, next=target)
                    self.take(f"options/{digits}")
                    return
                chosen = speech.choose(node.phrases, said) if not digits else None
                if chosen is not None:
                    option, phrase = chosen
                    self.note("menu_choice", said=phrase, option=option,
                              next=node.options[option])  # fmt: skip
                    self.take(f"options/{option}")
                    return
            case CollectNode():
                if digits and self.collected_ok(node, digits):
                    self.update(vars={**self.state.vars, node.var: digits})
                    self.note("input_collected", var=node.var, length=len(digits), next=node.next)
                    self.take("next")
                    return
                if not digits and said and self.heard_ok(node, said):
                    self.update(vars={**self.state.vars, node.var: said})
                    self.note("input_collected", var=node.var, length=len(said), next=node.next,
                              spoken=True)  # fmt: skip
                    self.take("next")
                    return
            case _:
                self.note("digits_unexpected", "error", type=node.type)
                return
        kind: Literal["no_input", "invalid"] = "no_input" if not (digits or said) else "invalid"
        self.retry(node, kind, digits, said)

    @staticmethod
    def collected_ok(node: CollectNode, digits: str) -> bool:
        if not node.min_digits <= len(digits) <= node.max_digits:
            return False
        return node.pattern is None or re.fullmatch(node.pattern, digits) is not None

    @staticmethod
    def heard_ok(node: CollectNode, said: str) -> bool:
        """What a caller said, for a collect that hears words: its ``pattern``, if any,
        applies to the text (the digit counts are for keys)."""
        return node.pattern is None or re.fullmatch(node.pattern, said) is not None

    def retry(
        self,
        node: MenuNode | CollectNode,
        kind: Literal["no_input", "invalid"],
        digits: str,
        said: str = "",
    ) -> None:
        attempts = self.state.attempts + 1
        self.update(attempts=attempts)
        retry_prompt = node.no_input if kind == "no_input" else node.invalid
        exhausted = attempts >= node.max_attempts
        # What was said is not logged (it may be anything): only how many words.
        if said and not digits:
            shown = f"{len(speech.words(said))} words said"
        else:
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
                self.take("on_failure")
        elif retry_prompt is not None:
            self.speak(retry_prompt, After.REGATHER)
        elif self.count_step():
            self.gather(node)

    def conversation_recorded(self, event: events.ConversationRecorded) -> None:
        """A recorded bridge's recording (``transfer`` or ``queue`` with ``record``)."""
        if event.recording_id not in self.state.recordings:
            self.update(recordings=(*self.state.recordings, event.recording_id))
            self.note("conversation_recorded", recording_id=event.recording_id,
                      duration_s=event.duration_s)  # fmt: skip

    def machine_answered(self, target: str) -> None:
        """An answering machine took the call: leave what the call waits on (its place
        in line, a callback's reserved agent) for ``target``, the message to leave."""
        waiting = self.state.line
        if waiting is not None and waiting.callback is not None and waiting.offer is not None:
            self.callback_failed("machine")
        elif waiting is not None:
            self.leave_line("abandoned")
        self.note("machine_answered", next=target)
        self.update(after=None)
        self.enter(target, via="amd/on_machine")

    def recorded(self, event: events.RecordingFinished) -> None:
        node = self.current()
        assert isinstance(node, VoicemailNode)
        if event.ok and event.recording_id:
            self.update(recordings=(*self.state.recordings, event.recording_id))
            self.note("voicemail_recorded", recording_id=event.recording_id,
                      duration_s=event.duration_s)  # fmt: skip
        else:
            self.note("voicemail_failed", "warning")
        self.take("next")

    def responded(self, event: events.HttpResponded) -> None:
        node = self.current()
        assert isinstance(node, HttpNode)
        saved, reason = self.pick(node, event)
        if reason is not None:
            self.note("http_failed", "warning", reason=reason, next=node.on_error)
            self.take("on_error")
            return
        self.update(vars={**self.state.vars, **saved})
        self.note("http_answered", status=event.status, saved=sorted(saved), next=node.next)
        self.take("next")

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
        self.take("on_failure")

    # -- waiting in a queue's line -------------------------------------------

    def queue(self, name: str) -> Queue:
        found = queues_of(self.graph).get(name)
        if found is None:  # the loader refuses such a graph; queues.json may have changed
            return Queue(name=name)
        return found

    def line_note(self, event: str, waiting: InLine, level: Level = "info", **fields: Any) -> None:
        """A change of the caller's place: ``queue``, ``agent_id`` and ``event`` (and
        the ``callback`` whose place a follow-up call holds)."""
        if waiting.callback is not None:
            fields.setdefault("callback", waiting.callback)
        self.note(event, level, queue=waiting.queue, agent_id=waiting.agent_id, **fields)

    def join(self, node: QueueNode) -> None:
        waiting = InLine(queue=node.queue, priority=node.priority, joined_at=self.now)
        self.update(phase=Phase.QUEUED, after=None, agent_leg=None, line=waiting)
        self.actions.append(actions.AskLine(node.queue, node.priority))

    def waiting_as(self, waiting: Waiting, **changes: Any) -> None:
        assert self.state.line is not None
        self.update(phase=Phase.QUEUED, line=replace(self.state.line, waiting=waiting, **changes))

    def leave_line(self, reason: line.LeaveReason) -> None:
        waiting = self.state.line
        assert waiting is not None
        self.changes.append(line.LeaveLine(waiting.queue, reason, waiting.offer))
        self.line_note("left" if reason == "no_agents" else reason, waiting,
                       waited_s=round(self.now - waiting.joined_at, 1))  # fmt: skip
        self.update(line=None)
        if reason == "callback":
            self.left = waiting

    def line_status(self, event: events.LineStatus) -> None:
        waiting, node = self.state.line, self.current()
        assert waiting is not None
        assert isinstance(node, QueueNode)
        queue = self.queue(waiting.queue)
        if not event.joined:
            self.note("queue_no_agents", "warning", queue=waiting.queue, next=node.on_no_agents)
            self.update(line=None)
            self.take("on_no_agents")
            return
        if waiting.waiting is Waiting.JOINING:
            self.line_note("joined", waiting, position=event.position,
                           priority=waiting.priority)  # fmt: skip
        waited = self.now - waiting.joined_at
        if waited >= queue.max_wait_s:
            self.leave_line("timed_out")
            self.take("on_timeout")
            return
        alone_since = waiting.alone_since
        if event.agents_available > 0:
            alone_since = None
        elif alone_since is None:
            alone_since = self.now
        if alone_since is not None and self.now - alone_since >= queue.no_agents_grace_s:
            self.leave_line("no_agents")
            self.take("on_no_agents")
            return
        self.update(line=replace(waiting, alone_since=alone_since))
        position = self.position_due(queue, event)
        if self.offer_callback(queue, node, event, position):
            return
        if position is not None:
            self.announce(queue, event, position)
            return
        self.hold(queue)

    def position_due(self, queue: Queue, event: events.LineStatus) -> str | None:
        """What to tell the caller of their position and expected wait, if it improved
        since they last heard it (and not more often than ``announce_every_s``)."""
        waiting = self.state.line
        assert waiting is not None
        if not queue.announce_position or event.position < 1:
            return None
        improved = waiting.announced is None or event.position < waiting.announced
        recently = (
            waiting.announced_at is not None
            and self.now - waiting.announced_at < queue.announce_every_s
        )
        if not improved or recently:
            return None
        return announcement(event.position, event.expected_wait_s)

    def announced(self, event: events.LineStatus) -> dict[str, Any]:
        """Note the position told; the changes to the caller's place that remember it."""
        waiting = self.state.line
        assert waiting is not None
        self.line_note("position_announced", waiting, position=event.position,
                       expected_wait_s=event.expected_wait_s)  # fmt: skip
        return {"announced": event.position, "announced_at": self.now}

    def announce(self, queue: Queue, event: events.LineStatus, text: str) -> None:
        told = self.announced(event)
        prompt = Prompt(say=text, locale=queue.locale, voice=queue.voice)
        self.actions.append(actions.Speak(self.prompt(prompt)))
        self.waiting_as(Waiting.ANNOUNCING, **told)

    def offer_callback(
        self, queue: Queue, node: QueueNode, event: events.LineStatus, position: str | None
    ) -> bool:
        """Offer a callback once the expected wait exceeds ``callback_after_s`` (again
        after ``announce_every_s`` if they did not take it), after the ``position`` to
        tell in the same prompt when the offer is a ``say`` (a ``play`` offer waits
        for the next check, after the position is told)."""
        waiting = self.state.line
        assert waiting is not None
        if queue.callback_after_s is None or node.on_callback is None:
            return False
        if event.expected_wait_s is None or event.expected_wait_s < queue.callback_after_s:
            return False
        offered_at = waiting.callback_offered_at
        if offered_at is not None and self.now - offered_at < queue.announce_every_s:
            return False
        offer = self.prompt(queue.callback_offer)
        told: dict[str, Any] = {}
        if position is not None:
            if not isinstance(offer, actions.Say):
                return False
            told = self.announced(event)
            offer = replace(offer, text=f"{position} {offer.text}")
        self.line_note("callback_offered", waiting, expected_wait_s=event.expected_wait_s)
        self.actions.append(actions.Gather(offer, 1, 5))
        self.waiting_as(Waiting.CALLBACK_OFFER, callback_offered_at=self.now, **told)
        return True

    def hold(self, queue: Queue) -> None:
        """One segment of hold audio: at most ``hold_segment_s``, and no longer than
        the caller may still wait (so that ``max_wait_s`` is kept to the second)."""
        waiting = self.state.line
        assert waiting is not None
        left = queue.max_wait_s - (self.now - waiting.joined_at)
        segment = max(1, min(queue.hold_segment_s, math.ceil(left)))
        prompt = self.prompt(queue.hold)
        if isinstance(prompt, actions.Say):
            prompt = replace(prompt, locale=prompt.locale or queue.locale)
            once_s = max(1.0, len(prompt.text) / 10)
        else:
            once_s = 2.0 * len(prompt.urls)
        loop = max(1, min(20, math.ceil(segment / once_s)))
        self.actions.append(actions.Speak(prompt, loop=loop, max_s=segment))
        self.waiting_as(Waiting.HOLDING)

    def hold_ended(self) -> None:
        """A segment of hold audio, or an announcement, has played."""
        waiting = self.state.line
        assert waiting is not None
        if waiting.waiting is Waiting.ANNOUNCING:
            self.hold(self.queue(waiting.queue))
            return
        self.actions.append(actions.AskLine(waiting.queue, waiting.priority))
        self.waiting_as(Waiting.CHECKING)

    def callback_answer(self, digits: str) -> None:
        waiting = self.state.line
        assert waiting is not None
        if waiting.waiting is Waiting.CALLBACK_CONFIRM:
            self.callback_confirmed(waiting, digits)
            return
        node = self.current()
        assert isinstance(node, QueueNode)
        if digits == "1" and node.on_callback is not None:
            self.leave_line("callback")
            self.take("on_callback")
            return
        self.hold(self.queue(waiting.queue))

    def offered(self, event: events.AgentOffered) -> None:
        waiting, node = self.state.line, self.current()
        assert waiting is not None
        assert isinstance(node, QueueNode)
        queue = self.queue(waiting.queue)
        if waiting.waiting is Waiting.JOINING:  # offered before the line's answer came
            self.line_note("joined", waiting, priority=waiting.priority)
        self.changes.append(line.TakeOffer(waiting.queue, event.offer))
        self.actions.append(
            actions.Bridge(event.address, None, queue.ring_timeout_s, node.record, event.offer)
        )
        taken = replace(waiting, offer=event.offer, agent_id=event.agent_id)
        self.update(phase=Phase.BRIDGING, agent_leg=None, line=taken)
        self.line_note("offered", taken, offer=event.offer, ring_timeout_s=queue.ring_timeout_s)

    def agent_answered(self, waiting: InLine) -> None:
        assert waiting.offer is not None
        self.changes.append(line.OfferAnswered(waiting.queue, waiting.offer, waiting.callback))
        self.line_note("answered", waiting, offer=waiting.offer,
                       waited_s=round(self.now - waiting.joined_at, 1))  # fmt: skip
        if waiting.callback is not None:
            self.line_note("callback_connected", waiting, callback=waiting.callback,
                           attempt=waiting.attempt)  # fmt: skip

    def agent_missed(self, waiting: InLine, reason: events.Unreachable) -> None:
        assert waiting.offer is not None
        self.changes.append(line.OfferMissed(waiting.queue, waiting.offer, reason,
                                             waiting.callback))  # fmt: skip
        self.line_note("missed", waiting, "warning", offer=waiting.offer, reason=reason)
        if waiting.callback is not None:  # back at its place; the customer is called again
            self.update(agent_leg=None, line=None)
            self.speak(self.queue_prompt(waiting, CALLBACK_AGENT_MISSED), After.HANGUP)
            return
        self.update(agent_leg=None, line=replace(waiting, offer=None, agent_id=None))
        queue, node = self.queue(waiting.queue), self.current()
        if self.now - waiting.joined_at >= queue.max_wait_s and isinstance(node, QueueNode):
            self.leave_line("timed_out")  # offered agent after agent, and past max_wait_s
            self.take("on_timeout")
            return
        self.hold(queue)

    # -- callbacks ------------------------------------------------------------

    def queue_prompt(self, waiting: InLine, text: str) -> Prompt:
        queue = self.queue(waiting.queue)
        return Prompt(say=text, locale=queue.locale, voice=queue.voice)

    def book_callback(self, node: CallbackNode) -> None:
        """Book the caller's callback: at the place they left in this queue's line
        (pressing 1 there), else at a place from now."""
        number = self.state.caller
        if not _dialable(number):
            self.note("callback_impossible", "warning", queue=node.queue,
                      reason="the caller's number is unknown", next=node.next)  # fmt: skip
            self.take("next")
            return
        left = self.left if self.left is not None and self.left.queue == node.queue else None
        priority = left.priority if left is not None else 0
        self.changes.append(line.BookCallback(node.queue, number, self.state.called, priority,
                                              self.graph.id, node.id))  # fmt: skip
        self.note("callback_requested", queue=node.queue, agent_id=None,
                  callback=line.callback_id(node.queue, number), kept_place=left is not None,
                  priority=priority)  # fmt: skip
        if node.prompt is not None:
            self.speak(node.prompt, After.NEXT)
        else:
            self.take("next")

    def callback_call_answered(self, waiting: InLine) -> None:
        self.actions.append(
            actions.Gather(
                self.prompt(self.queue_prompt(waiting, CALLBACK_GREETING)), 1, CALLBACK_CONFIRM_S
            )
        )
        self.waiting_as(Waiting.CALLBACK_CONFIRM)

    def callback_confirmed(self, waiting: InLine, digits: str) -> None:
        """The customer of a callback pressed 1 (bridge them to the reserved agent), or
        did not."""
        if digits != "1":
            self.callback_failed("no_key")
            self.speak(self.queue_prompt(waiting, CALLBACK_NO_KEY), After.HANGUP)
            return
        assert waiting.offer is not None
        queue = self.queue(waiting.queue)
        self.actions.append(
            actions.Bridge(waiting.address or "", None, queue.ring_timeout_s, False, waiting.offer)
        )
        self.update(phase=Phase.BRIDGING, agent_leg=None)
        self.line_note("offered", waiting, offer=waiting.offer, ring_timeout_s=queue.ring_timeout_s,
                       callback=waiting.callback)  # fmt: skip

    def callback_failed(self, reason: line.CallbackFailure) -> None:
        waiting = self.state.line
        assert waiting is not None
        assert waiting.callback is not None
        assert waiting.offer is not None
        queue = self.queue(waiting.queue)
        self.changes.append(line.CallbackFailed(waiting.queue, waiting.offer, waiting.callback,
                                                reason))  # fmt: skip
        final = waiting.attempt >= queue.callback_attempts
        self.line_note("callback_failed", waiting, "warning", callback=waiting.callback,
                       reason=reason, attempt=waiting.attempt, attempts=queue.callback_attempts,
                       retry_in_s=None if final else queue.callback_retry_s)  # fmt: skip
        self.update(line=None)


def _dialable(number: str) -> bool:
    """Whether a caller's number can be called back (E.164 or a SIP URI)."""
    if number.startswith("sip:"):
        return len(number) > 4
    return bool(re.fullmatch(r"\+[1-9][0-9]{6,14}", number))


def _callback_failure(outcome: Outcome) -> line.CallbackFailure:
    """Why a callback's follow-up call that ends unconnected failed."""
    match outcome:
        case Outcome.NOT_ANSWERED_NO_ANSWER:
            return "no-answer"
        case Outcome.NOT_ANSWERED_BUSY:
            return "busy"
        case (
            Outcome.NOT_ANSWERED_FAILED
            | Outcome.NOT_ANSWERED_CANCELLED
            | Outcome.NOT_ANSWERED_COMPLETED
            | Outcome.BIRD_REFUSED
            | Outcome.STEP_LIMIT
        ):
            return "failed"
        case _:
            return "hung_up"


def announcement(position: int, expected_wait_s: float | None) -> str:
    """What a caller in line hears of their place: "You are number 3 in line. The
    expected wait is about 4 minutes." """
    where = "You are next in line." if position == 1 else f"You are number {position} in line."
    if expected_wait_s is None:
        return where
    if expected_wait_s < 60:
        return f"{where} The expected wait is less than a minute."
    minutes = round(expected_wait_s / 60)
    unit = "minute" if minutes == 1 else "minutes"
    return f"{where} The expected wait is about {minutes} {unit}."
