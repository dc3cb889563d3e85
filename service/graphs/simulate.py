"""``ivr simulate``: walk a graph offline with a script of keys and spoken answers.

No server, no Redis, no network: the engine is fed the events a call would
produce, with the caller's keys and words from the script (an entry
``say:TEXT`` is an answer said aloud: ``ivr simulate --say``), agents scripted
offer by offer,
and ``http`` nodes answered from a fixture file. The result is a transcript of
what the caller hears and presses and each node passed, and where the call ends.
A script that does not fit the graph is an error: input asked for and none left,
or input left over when the call ends.

Agents (``--agent``, :func:`parse_agents`): one :class:`AgentTurn` per offer, the
last repeating. A transfer takes the next turn: ``answer`` connects it, anything
else fails it. A ``queue`` node is walked with the engine's own queue logic and a
simulated line standing in for ``service.runtime.line``: the caller joins (``none``:
nobody is logged in, so not at all), and after the turn's ``wait_s`` in line (from
joining, or from the previous offer's failure) an agent is free and offered the
caller; until then the line puts them at one place per :data:`CALLER_S` seconds
left to wait, with that wait as the expected wait. Time passes while hold audio
plays (each segment its ``max_s``, cut short by an offer), while an offered agent
rings unanswered and while the caller stays silent at a callback offer; the
caller's keys answer callback offers like any other input. Once the caller has
waited the queue's ``max_wait_s`` the simulated line offers them no agent: the
engine checks ``max_wait_s`` only when it asks the line, after a whole hold segment,
so offers cutting every segment short would keep the caller waiting forever.

Speech: a spoken answer reaches a gather that listens for words (``input``
``speech`` or ``dtmf speech``); at a gather of keys only it is not heard (and keys
are not heard by one of words only): the gather ends with nothing.

Answering machines (``machine=True``, ``ivr simulate --machine``): the outbound
call is answered by a machine, which plays its greeting and beeps while the
graph's first prompt plays and never presses or says anything. With the graph's
``amd`` enabled, the verdict comes with the outcome of that first command (as
Bird's, after the beep) and whatever the graph says from then on is what the
machine records; without it nobody ever knows, and every gather hears silence.
A person who answers a graph with ``amd`` enabled is told from a machine the same
way (verdict ``human``).

Fixture file (``--http-fixture``): a JSON object from ``"METHOD URL"`` (or just
``"URL"``) to an answer ``{"status": 200, "json": {...}}``, ``{"status": 404,
"body": "text"}`` or ``{"error": "timeout"}``; URLs as rendered, templates filled.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, cast

from service.core import actions, engine, events
from service.core.actions import Action
from service.core.engine import Transition
from service.core.graph import Graph, QueueNode, speaks
from service.core.queues import queues_of
from service.core.state import CallState, Direction, Phase, Waiting
from service.graphs.loader import directory_queues, load_file, with_queues

SILENCE = "_"
SPOKEN = "say:"
"""The prefix of a script entry said aloud: ``say:billing please``."""
KEYS = re.compile(r"[0-9*#]+")
"""One entry of the script: keys a phone has (or :data:`SILENCE`)."""
KEYS_SYNTAX = "keys (digits 0-9, * and #) or _ for silence, comma-separated: 1,4321#,_,2"
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
E164_SYNTAX = "an E.164 number (+ and 7-15 digits, e.g. +31612345678)"
AgentBehaviour = Literal["answer", "none"] | events.Unreachable
"""What the agent of one offer does (a queue's agent, or a transfer's target):
``none`` is nobody logged in for the queue (a transfer is then not answered)."""
AGENT_OUTCOMES: tuple[AgentBehaviour, ...] = ("answer", "no-answer", "busy", "failed", "none")
AGENT_SYNTAX = "BEHAVIOUR[:WAIT_S][,BEHAVIOUR[:WAIT_S]]..."
DEFAULT_AGENT = "answer"
DEFAULT_WAIT_S = 30.0
"""How long a caller waits in line before an agent is free, when the script does not say."""
CALLER_S = 60.0
"""In the simulated line each caller ahead takes a minute: a caller with two and a
half minutes left to wait is number 3 in line."""
MISS_S = 2.0
"""How long an offer to a busy or failing agent takes (an unanswered one rings out)."""
MAX_ROUNDS = 100_000


class ScriptError(Exception):
    """The script does not fit the graph; the message says where and why."""


@dataclass(frozen=True)
class AgentTurn:
    """One offer (or transfer): after ``wait_s`` in line an agent is free and offered
    the caller, and does ``behaviour`` (a transfer ignores ``wait_s``)."""

    behaviour: AgentBehaviour = "answer"
    wait_s: float = DEFAULT_WAIT_S


def parse_agents(spec: str) -> tuple[AgentTurn, ...]:
    """The turns of ``--agent``: ``BEHAVIOUR[:WAIT_S]``, commas for successive offers
    (``no-answer,answer:60``). ``ValueError`` with one line saying what is wrong."""
    parts = spec.split(",")
    turns = []
    for index, part in enumerate(parts, start=1):
        where = f"offer {index} ({part.strip()!r}): " if len(parts) > 1 else ""
        turns.append(_turn(part, where))
    return tuple(turns)


def _turn(part: str, where: str) -> AgentTurn:
    behaviour, colon, wait = (item.strip() for item in part.partition(":"))
    if behaviour not in AGENT_OUTCOMES:
        what = f"{behaviour!r} is not" if behaviour else "no behaviour: it must be"
        raise ValueError(f"{where}{what} one of {', '.join(AGENT_OUTCOMES)} ({AGENT_SYNTAX})")
    if not colon:
        return AgentTurn(behaviour)
    if behaviour == "none":
        raise ValueError(f"{where}none takes no wait (nobody is logged in at all)")
    try:
        seconds = float(wait)
    except ValueError:
        raise ValueError(f"{where}wait {wait!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{where}wait {wait!r} must be a number of seconds, 0 or more")
    return AgentTurn(cast(AgentBehaviour, behaviour), seconds)


def parse_keys(spec: str) -> list[str]:
    """The entries of ``--keys``, or ``ValueError`` with one line saying which is wrong."""
    if not spec.strip():
        return []
    entries = [entry.strip() for entry in spec.split(",")]
    for index, entry in enumerate(entries, start=1):
        if entry != SILENCE and not KEYS.fullmatch(entry):
            what = f"entry {index} is empty" if not entry else f"{entry!r} is not keys"
            raise ValueError(f"{what}; each entry is {KEYS_SYNTAX}")
    return entries


def check_number(value: str) -> None:
    """``ValueError`` unless ``value`` is an E.164 number."""
    if not E164.fullmatch(value):
        raise ValueError(f"{value!r} is not {E164_SYNTAX}")


def load(path: Path) -> Graph:
    """The graph file at ``path`` as the service loads it: checked, and carrying the
    queues of the ``queues.json`` beside it. ``GraphError`` when either has errors."""
    return with_queues(load_file(path), directory_queues(path.parent))


Paint = Callable[[str, str], str]
"""Styles a text as a kind of :class:`service.runtime.style.Style` (``ok``, ``bold``, ...)."""


def _plain(_: str, text: str) -> str:
    return text


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _one_line(text: str) -> str:
    """``text`` with its control characters escaped (a prompt may hold a newline)."""
    return _CONTROL.sub(lambda m: repr(m.group(0))[1:-1], text)


# How the text of each kind of line is styled in a terminal; what the caller hears is plain.
_PAINT = {
    "node": "dim", "branch": "dim", "hours": "dim", "http": "dim", "line": "dim",
    "presses": "bold", "says": "bold", "silence": "dim", "pause": "dim", "machine": "warning",
    "amd": "warning",
    "reached": "ok", "connected": "ok",
    "not-reached": "warning", "guard": "warning", "leaves": "warning",
}  # fmt: skip


@dataclass(frozen=True)
class Line:
    node: str | None
    kind: str  # node, hears, presses, silence, transfer, reached, not-reached, records, line,
    # hold, offered, connected, leaves, ...
    text: str
    """Plain text: what the caller hears as it is said, the keys pressed, ..."""
    detail: str = ""
    """More about it (hold audio: for how long)."""

    @property
    def shown(self) -> str:
        """The text as the transcript shows it."""
        return f"{self.text} ({self.detail})" if self.detail else self.text

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"node": self.node, "kind": self.kind, "text": self.text}
        if self.detail:
            data["detail"] = self.detail
        return data


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

    def add(self, node: str | None, kind: str, text: str = "", detail: str = "") -> None:
        self.lines.append(Line(node, kind, text, detail))

    def render(self, paint: Paint = _plain) -> str:
        """The transcript as text, each kind of line styled by ``paint`` (plain by
        default). A simulation that failed ends where it stopped: its error is not part
        of it (``ivr simulate`` prints it once, on stderr)."""
        party = "callee" if self.direction == Direction.OUTBOUND else "caller"
        head = (
            f"{self.graph} (version {self.version}): {self.direction} call, "
            f"{party} {self.caller}, our number {self.called or '-'}, at {self.at}"
        )
        width = max([len(line.node or "") for line in self.lines] + [4])
        body = []
        for line in self.lines:
            node, kind = paint("dim", f"{line.node or '':<{width}}"), f"{line.kind:<11}"
            text = _one_line(line.text)
            text = paint(_PAINT[line.kind], text) if line.kind in _PAINT else text
            if line.detail:
                text += " " + paint("dim", f"({line.detail})")
            body.append(f"  {node}  {kind} {text}".rstrip())
        if self.error is not None:
            return "\n".join([paint("bold", head), *body]) + "\n"
        tail = f"ended: {self.outcome} at node {self.ended_at} after {self.steps} steps"
        return "\n".join([paint("bold", head), *body, paint("ok", tail)]) + "\n"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["lines"] = [line.to_json() for line in self.lines]
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
    agent: str | Sequence[AgentTurn] = DEFAULT_AGENT,
    outbound: bool = False,
    machine: bool = False,
) -> Simulation:
    """Walk ``graph`` with ``keys`` (one entry per input asked; ``_`` is silence,
    ``say:TEXT`` an answer said aloud). ``agent``: what agents do, offer by offer
    (:func:`parse_agents`, or its turns); queue nodes wait by the queues ``graph``
    carries (:func:`load`). ``machine``: an answering machine answers (outbound)."""
    outbound = outbound or machine
    turns = parse_agents(agent) if isinstance(agent, str) else tuple(agent)
    if not turns:
        raise ValueError("agent: no turns")
    called = called if called is not None else (graph.numbers[0] if graph.numbers else "")
    direction = Direction.OUTBOUND if outbound else Direction.INBOUND
    result = Simulation(graph.id, graph.version, caller, called, at.isoformat(), direction)
    missing = [name for name in graph.params if name not in (variables or {})]
    if missing:
        result.error = (
            f"the graph's params need a value: {', '.join(missing)} (use --var NAME=VALUE)"
        )
        return result
    unknown = _unknown_queue(graph)
    if unknown is not None:
        result.error = unknown
        return result
    walker = _Walker(
        graph, result, list(keys), fixtures or {}, turns, at.timestamp(), machine, outbound
    )
    transition = engine.begin(graph, call_id="simulated-call", caller=caller, called=called,
                              now=walker.now, direction=direction,
                              variables=variables)  # fmt: skip
    pending: list[events.Event] = [] if transition.actions else [events.CallAnswered()]
    try:
        for _ in range(MAX_ROUNDS):
            walker.notes(transition)
            for action in transition.actions:
                pending += walker.told(walker.perform(transition.state, action))
            if transition.state.ended or not pending:
                break
            transition = engine.step(graph, transition.state, pending.pop(0), walker.now)
        if not transition.state.ended:
            raise ScriptError(f"the call did not end (stuck at node {transition.state.node})")
        if walker.script:
            raise ScriptError(
                f"input left over: {', '.join(walker.script)} (the call ended at node "
                f"{transition.state.node})"
            )
    except ScriptError as exc:
        result.error = str(exc)
    final = transition.state
    result.outcome, result.ended_at = final.outcome, final.node
    result.steps, result.vars = final.steps, dict(final.vars)
    return result


def _unknown_queue(graph: Graph) -> str | None:
    """Why a queue node of ``graph`` cannot wait as it would in the service, if so."""
    queues = queues_of(graph)
    for node in graph.nodes.values():
        if isinstance(node, QueueNode) and node.queue not in queues:
            known = ", ".join(sorted(queues)) or "none"
            return (
                f"node {node.id} waits in queue {node.queue!r}, which the graph's queues do "
                f"not include (they are: {known}; ivr simulate reads the queues.json beside "
                "the graph)"
            )
    return None


def _s(seconds: float) -> str:
    """Seconds as the transcript shows them: ``30``, ``2.5``."""
    return f"{round(seconds, 1):g}"


def _reason(behaviour: AgentBehaviour) -> events.Unreachable:
    """Why an agent who does not answer is not reached (nobody there: no answer)."""
    match behaviour:
        case "no-answer" | "busy" | "failed":
            return behaviour
        case _:
            return "no-answer"


class _Walker:
    """What the caller, the agents and the line do with the engine's actions, on a
    simulated clock (``now``)."""

    def __init__(
        self,
        graph: Graph,
        result: Simulation,
        script: list[str],
        fixtures: Mapping[str, Any],
        turns: tuple[AgentTurn, ...],
        now: float,
        machine: bool = False,
        outbound: bool = False,
    ) -> None:
        self.graph = graph
        self.machine = machine
        # Who answered is told once, with the first outcome after the answer, when the
        # graph detects machines (an outbound call): None once told, or never to tell.
        detects = graph.amd is not None and graph.amd.enabled
        self.verdict: events.Verdict | None = (
            ("machine" if machine else "human") if detects and (machine or outbound) else None
        )
        self.answered = False
        self.recording = False  # the machine records what is said (after its beep)
        self.result = result
        self.script = script
        self.fixtures = fixtures
        self.turns = turns
        self.now = now
        self.offers = 0  # offers and transfers made: the next one takes turns[offers]
        self.free_at: float | None = None  # when an agent is free for the caller in line
        self.position = 0  # the caller's place in line (0: not in line yet)

    def turn(self) -> AgentTurn:
        return self.turns[min(self.offers, len(self.turns) - 1)]

    def notes(self, transition: Transition) -> None:
        add = self.result.add
        for note in transition.notes:
            fields = note.fields
            if note.event == "node_entered":
                add(note.node, "node", str(fields.get("type", "")))
            elif note.event == "hours_checked":
                state = "open" if fields.get("open") else "closed"
                add(note.node, "hours", f"{state} ({fields.get('timezone')})")
            elif note.event == "branch_taken":
                add(note.node, "branch", f"case {fields.get('case')}")
            elif note.event == "step_limit_exceeded":
                add(note.node, "guard", "200 steps: hung up")
            elif note.event == "queue_no_agents":
                add(note.node, "leaves", "nobody is logged in for the queue: on_no_agents")
            elif note.event == "timed_out":
                add(note.node, "leaves", f"waited {_s(fields.get('waited_s', 0))} s, the "
                                         "queue's max_wait_s: on_timeout")  # fmt: skip
            elif note.event == "left":
                add(note.node, "leaves", "nobody logged in for the queue's "
                                         "no_agents_grace_s: on_no_agents")  # fmt: skip
            elif note.event == "callback":
                add(note.node, "leaves", "takes the callback: on_callback")

    def told(self, happened: list[events.Event]) -> list[events.Event]:
        """The events of an action, the first one after the answer carrying who
        answered (when the graph detects machines)."""
        if not happened:
            return happened
        if isinstance(happened[0], events.CallAnswered):
            self.answered = True
            if self.machine:
                self.result.add(None, "machine", "an answering machine answers: its greeting, "
                                                 "then a beep")  # fmt: skip
            return happened
        if self.verdict is None or not self.answered:
            return happened
        verdict, self.verdict = self.verdict, None
        shown = "a machine (after its beep)" if verdict == "machine" else "a person"
        self.result.add(None, "amd", f"Bird tells: {shown} answered")
        self.recording = verdict == "machine"
        return [events.AnsweredBy(verdict, happened[0]), *happened[1:]]

    def perform(self, state: CallState, action: Action) -> list[events.Event]:
        """What the caller experiences of one action, and the events it leads to."""
        node, result = state.node, self.result
        in_line = state.phase is Phase.QUEUED and state.line is not None
        if isinstance(action, actions.Answer | actions.Dial):
            return [events.CallAnswered()]
        if isinstance(action, actions.Speak):
            if in_line:
                return self.speak_in_line(state, action)
            result.add(node, "records" if self.recording else "hears", _heard(action.prompt))
            return [events.PromptFinished()]
        if isinstance(action, actions.Pause):
            result.add(node, "pause", f"{action.seconds} s of silence")
            self.now += action.seconds
            return [events.PauseEnded()]
        if isinstance(action, actions.Gather):
            return self.gather(node, action, in_line=in_line)
        if isinstance(action, actions.AskLine):
            return [self.line_status(state, action)]
        if isinstance(action, actions.Bridge):
            if action.offer is not None and state.line is not None:
                return self.offer_bridged(state, action)
            return self.transfer(node, action)
        if isinstance(action, actions.Record):
            result.add(node, "records", f"a voicemail (at most {action.max_length_s} s)")
            return [events.RecordingFinished("simulated-recording", 5.0)]
        if isinstance(action, actions.HttpRequest):
            answer = _fixture_answer(self.fixtures, action, node)
            shown = answer.error or f"status {answer.status}"
            result.add(node, "http", f"{action.method} {action.url} -> {shown}")
            return [answer]
        if isinstance(action, actions.Hangup):
            result.add(node, "hangup", "the IVR hangs up")
            return []
        raise ScriptError(f"node {node}: ivr simulate cannot perform {type(action).__name__}")

    def gather(
        self, node: str | None, action: actions.Gather, *, in_line: bool
    ) -> list[events.Event]:
        self.result.add(node, "records" if self.recording else "hears", _heard(action.prompt))
        if self.machine:  # a machine presses and says nothing
            self.result.add(node, "silence", f"the machine answers nothing in {action.timeout_s} s")
            return [events.DigitsCollected("")]
        if not self.script:
            hint = " (a callback offer: give --keys _ to let it pass, 1 to take it)"
            raise ScriptError(
                f"node {node} asks for input and the script has none left{hint if in_line else ''}"
            )
        entry = self.script.pop(0)
        if entry == SILENCE:
            self.result.add(node, "silence", f"pressed nothing within {action.timeout_s} s")
            if in_line:  # the caller's wait goes on meanwhile
                self.now += action.timeout_s
            return [events.DigitsCollected("")]
        hears_words = speaks(action.input)
        if entry.startswith(SPOKEN):
            said = entry.removeprefix(SPOKEN)
            if not hears_words:
                self.result.add(node, "says", said, "not heard: the gather takes keys only")
                return [events.DigitsCollected("")]
            self.result.add(node, "says", said)
            return [events.DigitsCollected("", speech=said)]
        if action.input == "speech":
            self.result.add(node, "presses", entry, "not heard: the gather listens for words only")
            return [events.DigitsCollected("")]
        self.result.add(node, "presses", entry)
        return [events.DigitsCollected(_pressed(entry, action))]

    def transfer(self, node: str | None, action: actions.Bridge) -> list[events.Event]:
        turn = self.turn()
        self.offers += 1
        self.result.add(node, "transfer", f"to {action.to} (rings {action.ring_timeout_s} s)")
        if turn.behaviour == "answer":
            self.result.add(node, "reached", action.to)
            return [events.AgentConnected("agent-leg"), *self.recorded(node, action),
                    events.CallEnded("completed", "callee")]  # fmt: skip
        reason = _reason(turn.behaviour)
        self.result.add(node, "not-reached", f"{action.to}: {reason}")
        return [events.AgentUnavailable("agent-leg", reason)]

    # -- a queue's line, as service.runtime.line would answer ------------------

    def line_status(self, state: CallState, action: actions.AskLine) -> events.LineStatus:
        """Where the caller stands: joining, the agent of the current turn is free
        ``wait_s`` from now (``none``: nobody is logged in, they are not let in)."""
        waiting = state.line
        assert waiting is not None
        joining = waiting.waiting is Waiting.JOINING
        if joining:
            turn = self.turn()
            self.position = 0
            self.free_at = None if turn.behaviour == "none" else self.now + turn.wait_s
            if self.free_at is None:
                self.result.add(state.node, "line", f"joins {action.queue}: nobody is logged in")
                return events.LineStatus(joined=False)
        if self.free_at is None:  # everyone logged out while the caller waited
            status = events.LineStatus(True, max(self.position, 1), 0, None)
        else:
            left = max(0.0, self.free_at - self.now)
            place = max(1, math.ceil(left / CALLER_S))
            self.position = min(place, self.position) if self.position else place
            status = events.LineStatus(True, self.position, 1, float(round(left)))
        where = f"joins {action.queue}" if joining else (
            f"after {_s(self.now - waiting.joined_at)} s in line"
        )  # fmt: skip
        if status.agents_available == 0:
            shown = "nobody is logged in"
        else:
            shown = f"expected wait {_s(status.expected_wait_s or 0)} s"
        self.result.add(state.node, "line", f"{where}: number {status.position} in line, {shown}")
        return status

    def speak_in_line(self, state: CallState, action: actions.Speak) -> list[events.Event]:
        """Hold audio (``max_s`` seconds) or an announcement, cut short when an agent
        is free meanwhile: then the line offers them the caller."""
        waiting = state.line
        assert waiting is not None
        length = float(action.max_s or 0)
        free_at = self.free_at
        # No offer once the caller has waited max_wait_s: the engine checks it only when
        # the line is asked, after a whole hold segment (see the module's docstring).
        deadline = waiting.joined_at + queues_of(self.graph)[waiting.queue].max_wait_s
        due = free_at is not None and free_at < deadline and free_at <= self.now + length
        played = max(0.0, free_at - self.now) if free_at is not None and due else length
        if waiting.waiting is Waiting.HOLDING:
            if played > 0 or not due:  # an offer at once: the caller hears none of it
                until = ", until an agent is free" if due else ""
                self.result.add(state.node, "hold", _heard(action.prompt),
                                f"for {_s(played)} s{until}")  # fmt: skip
        else:
            self.result.add(state.node, "hears", _heard(action.prompt))
        self.now += played
        if not due:
            return [events.PromptFinished()]
        number = self.offers + 1
        address = f"+312{number:08d}"
        return [events.AgentOffered(f"simulated-offer-{number}", f"agent-{number}", address)]

    def offer_bridged(self, state: CallState, action: actions.Bridge) -> list[events.Event]:
        """The offered agent's phone rings: they answer (the call ends connected),
        or not (the caller is back on hold until the next turn's agent is free)."""
        waiting = state.line
        assert waiting is not None
        assert action.offer is not None
        turn = self.turn()
        self.offers += 1
        agent, leg = waiting.agent_id or "an agent", f"simulated-leg-{self.offers}"
        node = state.node
        self.result.add(node, "offered", f"{agent} at {action.to} "
                                         f"(rings up to {action.ring_timeout_s} s)")  # fmt: skip
        if turn.behaviour == "answer":
            waited = _s(self.now - waiting.joined_at)
            self.result.add(node, "connected", f"to agent {agent} at {action.to} after {waited} s "
                                               "in line")  # fmt: skip
            self.free_at = None
            return [events.AgentConnected(leg, action.offer), *self.recorded(node, action),
                    events.CallEnded("completed", "callee")]  # fmt: skip
        reason = _reason(turn.behaviour)
        took = float(action.ring_timeout_s) if reason == "no-answer" else MISS_S
        self.now += took
        self.result.add(node, "not-reached", f"{agent}: {reason} after {_s(took)} s")
        following = self.turn()
        self.free_at = None if following.behaviour == "none" else self.now + following.wait_s
        return [events.AgentUnavailable(leg, reason, action.offer)]

    def recorded(self, node: str | None, action: actions.Bridge) -> list[events.Event]:
        """A recorded bridge's recording (``record``), once the conversation is over."""
        if not action.record:
            return []
        self.result.add(node, "records", "the conversation")
        return [events.ConversationRecorded(f"simulated-recording-{self.offers}", 60.0)]


def _heard(prompt: actions.Prompt) -> str:
    if isinstance(prompt, actions.Play):
        return "(audio) " + ", ".join(prompt.urls)
    return prompt.text
