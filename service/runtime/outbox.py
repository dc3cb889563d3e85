"""The outbox: the command a call waits on, kept with its state until Bird has it.

Every transition of the engine asks for at most one action (a call waits on one
thing at a time: a prompt, a gather, a bridge, a lookup). That action becomes the
call's :class:`Pending` command, written in the same atomic commit as the state
that decided it (``service.runtime.store``), so that nothing a transition decides
is lost when a worker dies or Redis is away between deciding and sending. It
leaves the outbox when the next event moves the call on (which proves Bird did it,
or makes it moot), and its ``status`` says where it stands meanwhile:

- ``sending``: a worker holds it until ``until`` (a lease) and is sending it;
- ``sent``: Bird accepted it, so it is never sent again; if its outcome has not
  arrived by ``until`` (the command's own time plus a margin) the call is read back
  from Bird: over, it ends; live, the outcome is taken as it must have been (a
  prompt has played; a gather heard nothing; a recording failed; a bridge's agent
  leg, read back too, answered or not);
- ``queued``: Bird surely did not perform it (429, a refused connection, a 5xx
  for a prompt); it is sent again at ``until``, with exponential backoff and
  jitter, for :data:`RETRY_HORIZON_S`; then the call is given up (hung up, loudly)
  and a hang-up itself is retried until Bird confirms it or the call is gone;
- ``unsure``: Bird may have performed it (no answer; a 5xx for a bridge); at
  ``until`` (when its outcome would have arrived) the call is read back from Bird
  and the command sent again only if the call is live and nothing came.

A durable timer (``service.runtime.timers``) is due at every pending command's
``until``: any replica then takes the next step, so that a worker that dies
mid-send, a lost answer or a lost delivery never leaves a caller in silence.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any, Literal

from service.core import actions
from service.core.actions import Action

Status = Literal["sending", "sent", "queued", "unsure"]

# How long a worker may take to send a command before another takes over: longer
# than a request's timeout (settings.bird_timeout_s) with its quick retries.
LEASE_S = 20.0
# How long a command Bird surely did not perform is retried (since it was decided,
# or since the call was last read back for it) before the call is given up (a
# hang-up is retried for as long as the call lives).
RETRY_HORIZON_S = 60.0
RETRY_BASE_S = 0.5
RETRY_CAP_S = 8.0
HANGUP_RETRY_CAP_S = 30.0
# How many times the call is read back for one command whose outcome does not come
# (each time sending it again when that is safe) before the call is given up: with a
# fifth of Bird's requests failing, seven failures in a row are one in 78,000.
MAX_LOOKS = 6
# Added to a command's own time before it counts as late.
MARGIN_S = 15.0
# How long Bird rings the callee of an outbound call (createCall's default ringTimeout).
DIAL_S = 30.0
# How often a call scheduled for later is looked at while it waits for its time.
SCHEDULED_LOOK_S = 300.0
# Speech rate used to guess how long a spoken prompt lasts (characters a second).
SPEECH_CHARS_PER_S = 10.0
# An audio file's length is unknown: what a prompt of audio may take at most.
AUDIO_MAX_S = 300.0


@dataclass(frozen=True)
class Pending:
    """The command a call waits on. ``seq`` is the state version that decided it:
    acknowledgements name it, so that a late one changes nothing."""

    seq: int
    action: Action
    status: Status
    until: float
    since: float
    attempts: int = 1  # how many times it was sent
    leg: str | None = None  # the agent's leg a bridge Bird accepted created
    looks: int = 0  # how many times the call was read back for it

    def to_json(self) -> str:
        data = {
            "seq": self.seq,
            "action": _encode(self.action),
            "status": self.status,
            "until": self.until,
            "since": self.since,
            "attempts": self.attempts,
            "leg": self.leg,
            "looks": self.looks,
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> Pending:
        data = json.loads(raw)
        action = _decode(data["action"])
        assert isinstance(action, _ACTIONS), action
        return cls(
            seq=int(data["seq"]),
            action=action,
            status=data["status"],
            until=float(data["until"]),
            since=float(data["since"]),
            attempts=int(data["attempts"]),
            leg=data.get("leg"),
            looks=int(data.get("looks", 0)),
        )

    def becomes(self, status: Status, until: float, *, attempts: int | None = None) -> Pending:
        return replace(
            self,
            status=status,
            until=until,
            attempts=self.attempts if attempts is None else attempts,
        )


def sending(seq: int, action: Action, now: float) -> Pending:
    """A command just decided, held by the worker that decided it. ``Dial`` is
    with Bird already (the call was placed): it only waits for its outcome; a
    ``Pause`` is the service's own: its timer ends it, on time."""
    if isinstance(action, actions.Dial):
        return Pending(seq, action, "sent", until=now + outcome_window_s(action), since=now)
    if isinstance(action, actions.Pause):
        return Pending(seq, action, "sent", until=now + action.seconds, since=now)
    return Pending(seq, action, "sending", until=now + LEASE_S, since=now)


def outcome_window_s(action: Action) -> float:
    """How long after Bird accepts ``action`` its outcome (a delivery, an answer)
    must have come: the command's own time plus :data:`MARGIN_S`."""
    match action:
        case actions.Answer() | actions.Hangup() | actions.HangupLeg():
            own = 0.0
        case actions.Speak(prompt=prompt):
            own = float(action.max_s) if action.max_s is not None else _prompt_s(prompt)
        case actions.Gather(prompt=prompt):
            own = _prompt_s(prompt) + action.timeout_s * (action.max_digits + 1)
        case actions.Record():
            own = action.max_length_s + 10.0  # a beep, and the silence timeout
        case actions.Bridge():
            own = action.ring_timeout_s
        case actions.HttpRequest():
            own = action.timeout_ms / 1000
        case actions.AskLine():
            own = 2.0
        case actions.Dial():
            own = DIAL_S
        case actions.Pause():
            own = action.seconds
        case _:
            raise AssertionError(action)
    return own + MARGIN_S


def _prompt_s(prompt: actions.Prompt) -> float:
    if isinstance(prompt, actions.Play):
        return AUDIO_MAX_S
    return len(prompt.text) / SPEECH_CHARS_PER_S


def retry_delay_s(attempts: int, rng: random.Random, *, cap_s: float = RETRY_CAP_S) -> float:
    """Exponential backoff with jitter: about base * 2^attempts, at most ``cap_s``,
    drawn from its upper half so that replicas retrying together spread out."""
    ceiling = min(cap_s, RETRY_BASE_S * 2**attempts)
    return rng.uniform(ceiling / 2, ceiling)


# -- actions as JSON -----------------------------------------------------------------

_ACTIONS = (
    actions.Answer, actions.Speak, actions.Gather, actions.Bridge, actions.Record,
    actions.HttpRequest, actions.Hangup, actions.HangupLeg, actions.AskLine, actions.Dial,
    actions.Pause,
)  # fmt: skip
_TYPES: dict[str, type[Any]] = {cls.__name__: cls for cls in (*_ACTIONS, actions.Say, actions.Play)}


def _encode(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        encoded = {f.name: _encode(getattr(value, f.name)) for f in fields(value)}
        return {"type": type(value).__name__, **encoded}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    return value


def _decode(value: Any) -> Any:
    """The inverse of :func:`_encode` for actions: lists are tuples in a dataclass
    field that is a tuple (``Play.urls``), JSON elsewhere (an http body)."""
    if isinstance(value, dict) and value.get("type") in _TYPES:
        cls = _TYPES[value["type"]]
        decoded: dict[str, Any] = {}
        for f in fields(cls):
            item = value.get(f.name)
            if isinstance(item, dict) and item.get("type") in _TYPES:
                decoded[f.name] = _decode(item)
            elif isinstance(item, list) and str(f.type).startswith("tuple"):
                decoded[f.name] = tuple(item)
            else:
                decoded[f.name] = item
        return cls(**decoded)
    return value
