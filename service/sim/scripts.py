"""What the simulated people do: callers, agents reached by a bridge, callees of outbound calls.

A script input is consumed by each ``gather``: a run of keys (``0``-``9``, ``*``, ``#``) is
what the person presses, ``say:TEXT`` is what they say (A14: ``say:billing please``),
:data:`SILENCE` means they press nothing (the gather times out) and :data:`HANGUP` means they
hang up while that gather's prompt plays. A gather hears only what its ``input`` listens for
(``dtmf`` by default, ``speech``, ``dtmf speech``): words said to a gather of keys, or keys
pressed to a gather of speech, are not heard and it times out with nothing. When the inputs run
out the person stays silent; that, and inputs left over when the call ends, is a script that
does not fit the call (:meth:`service.sim.transcript.Transcript.misfits`).

Answering machines (A13). The callee of an outbound call may be an answering machine
(:class:`MachineScript`): it plays its greeting, beeps and records whatever is played after
the beep, never presses a key nor says a word into a gather, and hangs up once its recording
is ``max_message_s`` long (:mod:`service.sim.amd` says when Bird gives its verdict).

Agents. An agent is a number (or SIP URI) with an :class:`AgentScript`: ``answer`` after
``answer_after_s`` and hang up after ``talk_s`` of talking, ``no-answer`` (rings until the
bridge's ``ringTimeout``), ``busy`` or ``failed`` (at once). An agent can be reached again and
again: every bridge to the number is one independent leg, one *offer*, following the script.

Offer sequences. ``AgentScript.then`` scripts the offers after the first: the first offer to
the number follows the script itself, the second ``then[0]``, the third ``then[1]``, and so on;
the last one repeats for every later offer. ``AgentScript.sequence(first, *rest)`` builds one,
``script.for_offer(index)`` says which script offer ``index`` (from 0) follows. Offers are
counted per number over the simulator's whole run, whichever caller they are for. So "misses
the first offer, answers the next ones" is::

    AgentScript.sequence(AgentScript("no-answer"), AgentScript("answer", 2, 30))

and, for ``ivr sim --agent`` (:func:`parse_agent_spec`), ``+31201234567=no-answer,answer:2:30``.
A :class:`CalleeScript`'s ``answer`` may be a sequence too: each outbound call to that number
is one offer.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Literal, cast, get_args

SILENCE = "_"
HANGUP = "hangup"
SPEECH_PREFIX = "say:"
"""An input ``say:TEXT``: the person says TEXT at that gather (A14)."""

AgentBehavior = Literal["answer", "no-answer", "busy", "failed"]
AGENT_BEHAVIORS: tuple[str, ...] = get_args(AgentBehavior)
DEFAULT_ANSWER_AFTER_S = 2.0
DEFAULT_TALK_S = 5.0

_KEYS = re.compile(r"[0-9*#]+")


def spoken(value: str) -> str | None:
    """What the input ``say:TEXT`` says (TEXT, stripped); None for any other input."""
    if not value.startswith(SPEECH_PREFIX):
        return None
    return value.removeprefix(SPEECH_PREFIX).strip()


def speech_input(text: str) -> str:
    """The script input that says ``text`` at a gather (``say:TEXT``)."""
    return SPEECH_PREFIX + text


def check_inputs(inputs: tuple[str, ...]) -> None:
    """Raise ``ValueError`` unless every input is keys, ``say:TEXT``, :data:`SILENCE` or
    :data:`HANGUP`."""
    for value in inputs:
        words = spoken(value)
        if words is not None:
            if not words:
                raise ValueError(f"script input {value!r} says nothing: say:TEXT")
        elif value not in (SILENCE, HANGUP) and not _KEYS.fullmatch(value):
            raise ValueError(
                f"script input {value!r} is not keys (0-9, *, #), say:TEXT, {SILENCE!r} "
                f"or {HANGUP!r}"
            )


def unknown_fields(body: dict[str, object], known: frozenset[str]) -> str | None:
    """What is wrong with a control body's fields outside ``known`` (None: nothing)."""
    unknown = sorted(set(body) - known)
    if not unknown:
        return None
    return f"unknown fields: {', '.join(unknown)} (known: {', '.join(sorted(known))})"


def _check_seconds(name: str, value: float | None) -> None:
    if value is not None and (value < 0 or value != value):
        raise ValueError(f"{name} must be a number of seconds >= 0, got {value}")


@dataclass(frozen=True)
class CallerScript:
    """A person calling the IVR number (an inbound call)."""

    name: str
    from_number: str
    to_number: str
    inputs: tuple[str, ...] = ()
    hangup_after_s: float | None = None
    """Simulated seconds after the answer at which the caller hangs up, whatever is running."""
    voicemail_s: float = 3.0
    """How long the caller speaks when a ``record`` command runs."""

    def __post_init__(self) -> None:
        check_inputs(self.inputs)
        _check_seconds("hangup_after_s", self.hangup_after_s)
        _check_seconds("voicemail_s", self.voicemail_s)


@dataclass(frozen=True)
class AgentScript:
    """How a bridge target (or the callee of an outbound call) answers each offer."""

    behavior: AgentBehavior = "answer"
    answer_after_s: float = DEFAULT_ANSWER_AFTER_S
    """Simulated seconds of ringing before an ``answer`` agent picks up (``answer`` only; at or
    beyond the bridge's ``ringTimeout`` the offer rings out as ``no-answer``)."""
    talk_s: float = DEFAULT_TALK_S
    """Simulated seconds the agent talks before hanging up (bridge targets only; ``inf``: until
    the caller or the service hangs up, or ``maxDuration``)."""
    then: tuple[AgentScript, ...] = ()
    """The scripts of the next offers to this number; the last one repeats (module docstring)."""

    def __post_init__(self) -> None:
        if self.behavior not in AGENT_BEHAVIORS:
            raise ValueError(f"agent behavior must be one of {', '.join(AGENT_BEHAVIORS)}")
        _check_seconds("answer_after_s", self.answer_after_s)
        _check_seconds("talk_s", self.talk_s)
        for later in self.then:
            if not isinstance(later, AgentScript):
                raise ValueError(f"then holds AgentScripts, not {later!r}")
            if later.then:
                raise ValueError("a script in then cannot have its own then: list every offer")

    @classmethod
    def sequence(cls, first: AgentScript, *rest: AgentScript) -> AgentScript:
        """One script per offer, in order; the last one repeats."""
        return dataclasses.replace(first, then=tuple(rest))

    @property
    def offers(self) -> tuple[AgentScript, ...]:
        """The script of each offer in turn (the last one repeats), without their ``then``."""
        return (dataclasses.replace(self, then=()), *self.then)

    def for_offer(self, index: int) -> AgentScript:
        """The script that offer ``index`` (from 0) to this number follows."""
        offers = self.offers
        return offers[min(max(index, 0), len(offers) - 1)]


DEFAULT_GREETING = "Hi, you've reached Sam. Please leave a message after the tone."
DEFAULT_MAX_MESSAGE_S = 30.0
WORD_S = 0.4
"""Simulated seconds a person or a machine takes to say one word."""


def speaking_seconds(text: str) -> float:
    """How long saying ``text`` takes (:data:`WORD_S` a word)."""
    return WORD_S * len(text.split())


@dataclass(frozen=True)
class MachineScript:
    """An answering machine that takes the outbound calls to a number (A13).

    Once the call is answered it plays ``greeting`` for ``greeting_s`` (None: as long as
    saying it takes, :func:`speaking_seconds`), then beeps (``beep``; without a beep it
    records from the greeting's end), and records everything played from then on. It hangs
    up once it has recorded ``max_message_s``, unless the service hangs up first.
    """

    greeting: str = DEFAULT_GREETING
    greeting_s: float | None = None
    beep: bool = True
    max_message_s: float = DEFAULT_MAX_MESSAGE_S

    def __post_init__(self) -> None:
        _check_seconds("greeting_s", self.greeting_s)
        _check_seconds("max_message_s", self.max_message_s)

    @property
    def greeting_seconds(self) -> float:
        """How long the greeting plays."""
        return self.greeting_s if self.greeting_s is not None else speaking_seconds(self.greeting)

    def to_json(self) -> dict[str, object]:
        """As the control endpoint shows it (``machine`` of ``PUT /sim/callees/{number}``)."""
        return {
            "greeting": self.greeting,
            "greeting_s": self.greeting_s,
            "beep": self.beep,
            "max_message_s": self.max_message_s,
        }

    @classmethod
    def from_json(cls, value: object) -> MachineScript | None:
        """From ``machine`` of a ``PUT /sim/callees/{number}`` body: null or false (no
        machine), true (the default machine) or an object of :meth:`to_json`'s fields
        (``ValueError`` saying what is wrong)."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if not isinstance(value, dict):
            raise ValueError("machine must be true, false, null or an object")
        unknown = unknown_fields(value, MACHINE_FIELDS)
        if unknown:
            raise ValueError(f"machine: {unknown}")
        greeting = value.get("greeting", DEFAULT_GREETING)
        if not isinstance(greeting, str):
            raise ValueError("machine: greeting must be a string")
        beep = value.get("beep", True)
        if not isinstance(beep, bool):
            raise ValueError("machine: beep must be true or false")
        greeting_s = _seconds_of(value.get("greeting_s"), "machine: greeting_s")
        max_message_s = _seconds_of(value.get("max_message_s"), "machine: max_message_s")
        return cls(
            greeting=greeting,
            greeting_s=greeting_s,
            beep=beep,
            max_message_s=DEFAULT_MAX_MESSAGE_S if max_message_s is None else max_message_s,
        )


MACHINE_FIELDS = frozenset({"greeting", "greeting_s", "beep", "max_message_s"})


def _seconds_of(value: object, name: str) -> float | None:
    """A JSON number of seconds (or null)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number of seconds")
    return float(value)


@dataclass(frozen=True)
class CalleeScript:
    """The person reached by an outbound call (``POST /calls``).

    ``answer`` decides whether and when they pick up (its ``talk_s`` is not used: the callee
    stays on the line until ``hangup_after_s`` or until the service hangs up). ``inputs`` are
    consumed by the gathers run on that call, as for a caller. With ``machine`` an answering
    machine picks up instead (when ``answer`` says the call is answered): it takes no inputs.
    """

    name: str = "callee"
    answer: AgentScript = field(default_factory=AgentScript)
    inputs: tuple[str, ...] = ()
    hangup_after_s: float | None = None
    voicemail_s: float = 3.0
    machine: MachineScript | None = None

    def __post_init__(self) -> None:
        check_inputs(self.inputs)
        _check_seconds("hangup_after_s", self.hangup_after_s)
        _check_seconds("voicemail_s", self.voicemail_s)
        if self.machine is not None and self.inputs:
            raise ValueError("an answering machine presses no keys and says nothing: no inputs")


def parse_call_spec(spec: str, *, name: str | None = None) -> CallerScript:
    """A :class:`CallerScript` from ``FROM>TO[:input,input,...]``.

    ``+31612345678>+31970102030:9,1`` presses 9 at the first gather and 1 at the second;
    ``+31612345678>+31970102030:say:billing please,1`` says "billing please" at the first
    (A14: no commas in what is said); ``_`` is silence and ``hangup`` hangs up. ``TO`` may be
    a ``sip:`` URI.
    """
    source, arrow, rest = spec.partition(">")
    if not arrow or not source.strip() or not rest.strip():
        raise ValueError(f"call {spec!r} is not FROM>TO[:input,...]")
    prefix = ""
    if rest.startswith("sip:"):
        prefix, rest = "sip:", rest[4:]
    target, _, raw_inputs = rest.partition(":")
    target = prefix + target.strip()
    if target in ("", "sip:"):
        raise ValueError(f"call {spec!r} has no TO number")
    inputs = tuple(part.strip() for part in raw_inputs.split(",") if part.strip())
    try:
        return CallerScript(
            name=name or spec,
            from_number=source.strip(),
            to_number=target,
            inputs=inputs,
        )
    except ValueError as exc:
        raise ValueError(f"call {spec!r}: {exc}") from None


AGENT_SPEC = "NUMBER=BEHAVIOR[:ANSWER_AFTER_S[:TALK_S]][,BEHAVIOR[:...]]..."


def parse_agent_spec(spec: str) -> tuple[str, AgentScript]:
    """``(number, AgentScript)`` from ``NUMBER=behavior[:answer_after_s[:talk_s]]``.

    ``+31201234567=answer:3:60`` answers after 3 s and talks for 60 s; ``...=no-answer``,
    ``...=busy`` and ``...=failed`` never answer. Commas separate successive offers, the last
    one repeating: ``+31201234567=no-answer,answer:2:30`` misses the first offer and answers
    every later one. ``NUMBER`` may be a ``sip:`` URI. A bad spec raises ``ValueError`` with one
    line naming it and what is wrong.
    """
    number, equals, rest = spec.rpartition("=")
    number = number.strip()
    if not equals or not number or not rest.strip():
        raise ValueError(f"agent {spec!r} is not {AGENT_SPEC}")
    parts = rest.split(",")
    scripts = []
    for index, part in enumerate(parts, start=1):
        where = f"agent {spec!r}: " + (
            f"offer {index} ({part.strip()!r}): " if len(parts) > 1 else ""
        )
        scripts.append(_parse_offer(part, where))
    return number, AgentScript.sequence(*scripts)


def _parse_offer(part: str, where: str) -> AgentScript:
    fields = [item.strip() for item in part.split(":")]
    if not fields[0]:
        raise ValueError(f"{where}no behavior (one of {', '.join(AGENT_BEHAVIORS)})")
    if len(fields) > 3:
        raise ValueError(f"{where}too many ':' fields (behavior[:answer_after_s[:talk_s]])")
    behavior = fields[0]
    if behavior not in AGENT_BEHAVIORS:
        raise ValueError(f"{where}behavior {behavior!r} is not one of {', '.join(AGENT_BEHAVIORS)}")
    seconds: dict[str, float] = {}
    for name, raw in zip(("answer_after_s", "talk_s"), fields[1:], strict=False):
        if not raw:
            continue
        try:
            seconds[name] = float(raw)
        except ValueError:
            raise ValueError(f"{where}{name} {raw!r} is not a number of seconds") from None
    try:
        return AgentScript(
            behavior=cast(AgentBehavior, behavior),
            answer_after_s=seconds.get("answer_after_s", DEFAULT_ANSWER_AFTER_S),
            talk_s=seconds.get("talk_s", DEFAULT_TALK_S),
        )
    except ValueError as exc:
        raise ValueError(f"{where}{exc}") from None


def parse_inputs(text: str) -> tuple[str, ...]:
    """A script's inputs from ``1,_,say:billing please,12345678#`` (``ValueError`` naming a
    bad one)."""
    inputs = tuple(part.strip() for part in text.split(",") if part.strip())
    check_inputs(inputs)
    return inputs


CALLEE_SPEC = (
    "NUMBER=[BEHAVIOR[:ANSWER_AFTER_S][,...]][;keys:INPUT,...][;hangup-after:S]"
    "[;machine[:GREETING]][;no-beep]"
)
CALLEE_FIELDS = frozenset({"answer", "keys", "hangup_after_s", "machine"})


@dataclass(frozen=True)
class CalleeSpec:
    """What the callee of outbound calls to ``number`` does, as ``ivr sim --callee`` and
    the control endpoint (``PUT /sim/callees/{number}``) take it.

    ``answer``: how they answer each call, as an agent's offers (``answer[:ANSWER_AFTER_S]``,
    ``no-answer``, ``busy``, ``failed``; commas for successive calls, the last repeating; None:
    they answer after 2 s). ``keys``: what they press or say at each gather, ``_`` for
    silence, ``say:TEXT`` to speak, ``hangup`` to hang up. ``hangup_after_s``: they hang up
    this long after answering. ``machine``: an answering machine takes the calls that are
    answered (:class:`MachineScript`), and ``keys`` must be empty.
    """

    number: str
    answer: str | None = None
    keys: tuple[str, ...] = ()
    hangup_after_s: float | None = None
    machine: MachineScript | None = None

    def script(self) -> CalleeScript:
        """The :class:`CalleeScript` (``ValueError`` with one line saying what is wrong)."""
        where = f"callee {self.number}: "
        offers = []
        if self.answer is not None:
            parts = self.answer.split(",")
            for index, part in enumerate(parts, start=1):
                here = where + (f"call {index} ({part.strip()!r}): " if len(parts) > 1 else "")
                if part.count(":") > 1:
                    raise ValueError(f"{here}too many ':' fields (behavior[:answer_after_s])")
                offers.append(_parse_offer(part, here))
        try:
            return CalleeScript(
                name="answering machine" if self.machine is not None else "scripted callee",
                answer=AgentScript.sequence(*offers) if offers else AgentScript(),
                inputs=self.keys,
                hangup_after_s=self.hangup_after_s,
                machine=self.machine,
            )
        except ValueError as exc:
            raise ValueError(f"{where}{exc}") from None

    def to_json(self) -> dict[str, object]:
        """The body of ``PUT /sim/callees/{number}``."""
        keys = list(self.keys)
        machine = self.machine.to_json() if self.machine is not None else None
        return {
            "answer": self.answer,
            "keys": keys,
            "hangup_after_s": self.hangup_after_s,
            "machine": machine,
        }

    @classmethod
    def from_json(cls, number: str, body: object) -> CalleeSpec:
        """From a ``PUT /sim/callees/{number}`` body (``ValueError`` saying what is wrong)."""
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        unknown = unknown_fields(body, CALLEE_FIELDS)
        if unknown:
            raise ValueError(unknown)
        answer = body.get("answer")
        if answer is not None and not isinstance(answer, str):
            raise ValueError("answer must be a string such as 'answer:3' or 'no-answer,answer'")
        seconds = _seconds_of(body.get("hangup_after_s"), "hangup_after_s")
        machine = MachineScript.from_json(body.get("machine"))
        spec = cls(number, answer, keys_of(body.get("keys")), seconds, machine)
        spec.script()  # checked now
        return spec


def keys_of(value: object) -> tuple[str, ...]:
    """A script's inputs from JSON: ``"1,_,2"``, ``["1", "_", "2"]`` or null."""
    if value is None:
        return ()
    if isinstance(value, str):
        return parse_inputs(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        inputs = tuple(item.strip() for item in value)
        check_inputs(inputs)
        return inputs
    raise ValueError('keys must be a string ("1,_,2") or a list of strings')


def parse_callee_spec(spec: str) -> CalleeSpec:
    """A :class:`CalleeSpec` from :data:`CALLEE_SPEC`: ``+31612345678=keys:1,_``,
    ``+31612345678=answer:3;keys:2``, ``+31612345678=no-answer,answer:1;hangup-after:20``,
    ``+31612345678=busy``; an answering machine: ``+31612345678=machine``,
    ``+31612345678=answer:4;machine:Sam here, leave a message;no-beep`` (the greeting may
    hold commas and colons, not semicolons). ``ValueError`` with one line naming the spec and
    what is wrong."""
    number, equals, rest = spec.partition("=")
    number = number.strip()
    if not equals or not number or not rest.strip():
        raise ValueError(f"callee {spec!r} is not {CALLEE_SPEC}")
    answer: str | None = None
    keys: tuple[str, ...] = ()
    hangup_after_s: float | None = None
    machine: MachineScript | None = None
    beep = True
    try:
        for part in (item.strip() for item in rest.split(";")):
            if part.startswith("keys:"):
                keys = parse_inputs(part.removeprefix("keys:"))
            elif part.startswith("hangup-after:"):
                raw = part.removeprefix("hangup-after:").strip()
                try:
                    hangup_after_s = float(raw)
                except ValueError:
                    raise ValueError(f"hangup-after {raw!r} is not a number of seconds") from None
            elif part == "machine" or part.startswith("machine:"):
                greeting = part.removeprefix("machine").removeprefix(":").strip()
                machine = MachineScript(greeting=greeting or DEFAULT_GREETING)
            elif part == "no-beep":
                beep = False
            elif part and answer is None:
                answer = part
            elif part:
                raise ValueError(f"{part!r}: say how they answer once (then ;keys:...)")
        if not beep:
            if machine is None:
                raise ValueError("no-beep is for an answering machine: add ;machine")
            machine = dataclasses.replace(machine, beep=False)
        spec_ = CalleeSpec(number, answer, keys, hangup_after_s, machine)
        spec_.script()
    except ValueError as exc:
        message = str(exc).removeprefix(f"callee {number}: ")
        raise ValueError(f"callee {spec!r}: {message}") from None
    return spec_
