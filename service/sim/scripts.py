"""What the simulated people do: callers, agents reached by a bridge, callees of outbound calls.

A script input is consumed by each ``gather``: a run of keys (``0``-``9``, ``*``, ``#``) is
what the person presses, :data:`SILENCE` means they press nothing (the gather times out) and
:data:`HANGUP` means they hang up while that gather's prompt plays. When the inputs run out the
person stays silent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, cast, get_args

SILENCE = "_"
HANGUP = "hangup"

AgentBehavior = Literal["answer", "no-answer", "busy", "failed"]
AGENT_BEHAVIORS: tuple[str, ...] = get_args(AgentBehavior)

_KEYS = re.compile(r"[0-9*#]+")


def check_inputs(inputs: tuple[str, ...]) -> None:
    """Raise ``ValueError`` unless every input is keys, :data:`SILENCE` or :data:`HANGUP`."""
    for value in inputs:
        if value not in (SILENCE, HANGUP) and not _KEYS.fullmatch(value):
            raise ValueError(
                f"script input {value!r} is not keys (0-9, *, #), {SILENCE!r} or {HANGUP!r}"
            )


def _check_seconds(name: str, value: float | None) -> None:
    if value is not None and value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")


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
    """How a bridge target (or the callee of an outbound call) answers."""

    behavior: AgentBehavior = "answer"
    answer_after_s: float = 2.0
    talk_s: float = 5.0
    """Simulated seconds the agent talks before hanging up (bridge targets only)."""

    def __post_init__(self) -> None:
        if self.behavior not in AGENT_BEHAVIORS:
            raise ValueError(f"agent behavior must be one of {', '.join(AGENT_BEHAVIORS)}")
        _check_seconds("answer_after_s", self.answer_after_s)
        _check_seconds("talk_s", self.talk_s)


@dataclass(frozen=True)
class CalleeScript:
    """The person reached by an outbound call (``POST /calls``).

    ``answer`` decides whether and when they pick up (its ``talk_s`` is not used: the callee
    stays on the line until ``hangup_after_s`` or until the service hangs up). ``inputs`` are
    consumed by the gathers run on that call, as for a caller.
    """

    name: str = "callee"
    answer: AgentScript = field(default_factory=AgentScript)
    inputs: tuple[str, ...] = ()
    hangup_after_s: float | None = None
    voicemail_s: float = 3.0

    def __post_init__(self) -> None:
        check_inputs(self.inputs)
        _check_seconds("hangup_after_s", self.hangup_after_s)
        _check_seconds("voicemail_s", self.voicemail_s)


def parse_call_spec(spec: str, *, name: str | None = None) -> CallerScript:
    """A :class:`CallerScript` from ``FROM>TO[:input,input,...]``.

    ``+31612345678>+31970102030:9,1`` presses 9 at the first gather and 1 at the second;
    ``_`` is silence and ``hangup`` hangs up. ``TO`` may be a ``sip:`` URI.
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


def parse_agent_spec(spec: str) -> tuple[str, AgentScript]:
    """``(number, AgentScript)`` from ``NUMBER=behavior[:answer_after_s]``."""
    number, equals, rest = spec.partition("=")
    if not equals or not number.strip() or not rest.strip():
        raise ValueError(f"agent {spec!r} is not NUMBER=behavior[:answer_after_s]")
    behavior, _, delay = rest.partition(":")
    behavior = behavior.strip()
    if behavior not in AGENT_BEHAVIORS:
        raise ValueError(
            f"agent {spec!r}: behavior {behavior!r} is not one of {', '.join(AGENT_BEHAVIORS)}"
        )
    answer_after_s = 2.0
    if delay.strip():
        try:
            answer_after_s = float(delay)
        except ValueError:
            raise ValueError(f"agent {spec!r}: {delay!r} is not a number of seconds") from None
    try:
        script = AgentScript(behavior=cast(AgentBehavior, behavior), answer_after_s=answer_after_s)
    except ValueError as exc:
        raise ValueError(f"agent {spec!r}: {exc}") from None
    return number.strip(), script
