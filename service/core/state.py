"""A call's state: where it is in its graph and what the service has seen of it.

One JSON document per call (see ``service.runtime.keys.call``). The engine reads and returns
:class:`CallState`; the store serialises it. ``seen`` and ``recent`` are the
delivery bookkeeping that makes repeated or late deliveries change nothing.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum, StrEnum
from types import NoneType, UnionType
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints


class Phase(StrEnum):
    """Where a call is, in the order a call usually goes through the phases."""

    ANSWERING = "answering"  # we answered (or dialled); waiting for the leg to connect
    PROMPTING = "prompting"  # a prompt plays; ``after`` says what follows it
    GATHERING = "gathering"  # a menu or collect waits for keys
    RECORDING = "recording"  # a voicemail is being recorded
    REQUESTING = "requesting"  # an http node waits for its answer
    PAUSING = "pausing"  # a pause node's silence
    QUEUED = "queued"  # waiting in a queue's line: hold audio, position, callback offer
    BRIDGING = "bridging"  # the transfer target (or the line's agent) is being rung
    CONNECTED = "connected"  # the caller talks to the transfer target (or agent)
    ENDED = "ended"


class After(StrEnum):
    """What follows the prompt that plays (phase ``PROMPTING``)."""

    NEXT = "next"  # a say node: go to its next
    REGATHER = "regather"  # a menu/collect retry prompt: gather again
    FAILURE = "failure"  # a menu/collect's last retry prompt: go to on_failure
    RECORD = "record"  # a voicemail's prompt: record
    HANGUP = "hangup"  # a hangup node's prompt: hang up


class Outcome(StrEnum):
    """How a call ended (``CallState.outcome``): what on-call staff filter the logs on."""

    HANGUP_NODE = "hangup_node"  # the graph ended it at a hangup node
    TRANSFERRED = "transferred"  # connected to a transfer target, then either side hung up
    AGENT_CONNECTED = "agent_connected"  # connected to a queue's agent, then either side hung up
    ENDED_BY_CALLER = "ended_by_caller"  # the caller hung up before the graph finished
    ENDED_BY_CALLEE = "ended_by_callee"  # the callee of an outbound call hung up
    ENDED_BY_BIRD = "ended_by_bird"  # Bird ended the leg (a timeout, another API client)
    NOT_ANSWERED_NO_ANSWER = "not_answered_no-answer"  # outbound: nobody picked up
    NOT_ANSWERED_BUSY = "not_answered_busy"
    NOT_ANSWERED_FAILED = "not_answered_failed"
    NOT_ANSWERED_CANCELLED = "not_answered_cancelled"
    NOT_ANSWERED_COMPLETED = "not_answered_completed"  # outbound: over before it connected
    STEP_LIMIT = "step_limit"  # the graph walked MAX_STEPS steps: a loop, hung up
    BIRD_REFUSED = "bird_refused"  # Bird refused a command: hung up rather than left silent


class Waiting(StrEnum):
    """What a caller in line (phase ``QUEUED``) waits on."""

    JOINING = "joining"  # the line's answer to joining it
    CHECKING = "checking"  # the line's answer to where they stand now
    HOLDING = "holding"  # a segment of hold audio
    ANNOUNCING = "announcing"  # their position and expected wait
    CALLBACK_OFFER = "callback_offer"  # "press 1 to be called back"
    # A callback's follow-up call (the line reserved an agent for it):
    CALLING = "calling"  # the customer's phone rings
    CALLBACK_CONFIRM = "callback_confirm"  # "press 1 to talk to an agent now"


@dataclass(frozen=True)
class InLine:
    """A caller's place in a queue's line, as the call knows it (the line itself is
    kept by ``service.runtime.line``). ``offer`` is the offer ringing for them, if
    any, and ``agent_id`` its agent; ``announced`` the last position they heard.
    A callback's follow-up call holds its callback's place (``callback``)."""

    queue: str
    priority: int
    joined_at: float
    waiting: Waiting = Waiting.JOINING
    offer: str | None = None
    agent_id: str | None = None
    announced: int | None = None
    announced_at: float | None = None
    alone_since: float | None = None  # since when nobody was available for the queue
    callback_offered_at: float | None = None
    # A callback's follow-up call: the callback, the reserved agent's address and
    # which attempt this is.
    callback: str | None = None
    address: str | None = None
    attempt: int = 0

    def to_dict(self) -> dict[str, Any]:
        return _fields_of(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InLine:
        return _from_fields(cls, data)


class Direction(StrEnum):
    INBOUND = "inbound"  # the caller called us: we answer
    OUTBOUND = "outbound"  # we called them (POST /calls): Bird dials


@dataclass(frozen=True)
class CallState:
    call_id: str
    graph: str
    graph_version: str
    caller: str
    called: str
    direction: Direction = Direction.INBOUND
    phase: Phase = Phase.ANSWERING
    node: str | None = None
    after: After | None = None
    attempts: int = 0
    steps: int = 0
    vars: Mapping[str, str] = field(default_factory=dict)
    agent_leg: str | None = None
    line: InLine | None = None
    recordings: tuple[str, ...] = ()
    amd: str | None = None  # who answered, when Bird's machine detection said: human, machine
    outcome: Outcome | None = None
    started_at: float = 0.0
    ended_at: float | None = None
    seen: Mapping[str, int] = field(default_factory=dict)
    recent: tuple[str, ...] = ()
    version: int = 0

    @property
    def ended(self) -> bool:
        return self.phase is Phase.ENDED

    def template_context(self) -> dict[str, str]:
        context = {"caller": self.caller, "called": self.called, "call_id": self.call_id,
                   "amd": self.amd or "unknown"}  # fmt: skip
        context.update({f"vars.{name}": value for name, value in self.vars.items()})
        return context

    def to_json(self) -> str:
        return _encode(_fields_of(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> CallState:
        return _from_fields(cls, json.loads(text))


# -- serialisation --------------------------------------------------------------------
# Over each dataclass's fields, whatever they are, so that a field added later is
# written and read back without touching what follows. The JSON has a key per field,
# in the fields' order: enums as their values (a StrEnum is a str already), tuples as
# arrays, mappings as objects, a dataclass as its ``to_dict()`` (or its fields). Read
# back, each field gets its type again from its annotation (an enum, a tuple, a
# dataclass's ``from_dict``); keys that name no field are left out, and a field
# without a key takes its default.

_T = TypeVar("_T")
_Decode = Callable[[Any], Any]


_NAMES: dict[type, tuple[str, ...]] = {}
_DECODERS: dict[type, tuple[tuple[str, _Decode], ...]] = {}


def _names(cls: type) -> tuple[str, ...]:
    """A dataclass's field names, in their order."""
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def _fields_of(obj: object) -> dict[str, Any]:
    """A dataclass's fields by name (the values themselves: ``_encode`` writes them)."""
    return {name: getattr(obj, name) for name in _names(type(obj))}


def _plain(value: Any) -> Any:
    """What ``json`` writes for a value it cannot write as it is."""
    if isinstance(value, Enum):
        return value.value
    if is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        return to_dict() if callable(to_dict) else _fields_of(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"a {type(value).__name__} is not JSON serialisable")


_encode = json.JSONEncoder(separators=(",", ":"), default=_plain, check_circular=False).encode


def _from_fields(cls: type[_T], data: Mapping[str, Any]) -> _T:
    """An instance of the dataclass ``cls`` from a JSON object of its fields."""
    known = _names(cls)
    values = {k: v for k, v in data.items() if k in known}
    for name, decode in _decoders(cls):
        value = values.get(name)
        if value is not None:
            values[name] = decode(value)
    return cls(**values)


def _decoders(cls: type) -> tuple[tuple[str, _Decode], ...]:
    """The fields of ``cls`` whose JSON value needs turning back into their type."""
    decoders = _DECODERS.get(cls)
    if decoders is None:
        hints = get_type_hints(cls)
        found = ((name, _decoder(hints[name])) for name in _names(cls))
        decoders = tuple((name, decode) for name, decode in found if decode is not None)
        _DECODERS[cls] = decoders
    return decoders


def _decoder(hint: Any) -> _Decode | None:
    """How a JSON value becomes a value of the type ``hint`` (None: it is one already)."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Union or origin is UnionType:  # X | None: None stays None
        inner = [arg for arg in args if arg is not NoneType]
        return _decoder(inner[0]) if len(inner) == 1 else None
    kind = origin if isinstance(origin, type) else hint
    if not isinstance(kind, type):
        return None
    if issubclass(kind, Enum):
        return kind
    if issubclass(kind, tuple):
        item = _decoder(args[0]) if args else None
        return tuple if item is None else lambda values: tuple(map(item, values))
    if issubclass(kind, Mapping) or kind is dict:
        value = _decoder(args[1]) if len(args) == 2 else None
        return None if value is None else lambda data: {k: value(v) for k, v in data.items()}
    if is_dataclass(kind):
        from_dict = getattr(kind, "from_dict", None)
        return from_dict if callable(from_dict) else functools.partial(_from_fields, kind)
    return None
