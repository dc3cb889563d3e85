"""What the engine asks for, in our own terms. ``service.bird.commands`` turns each
action into one request to Bird's API (``HttpRequest`` is performed by
``service.runtime.lookups``); nothing here knows Bird's JSON shapes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.core.graph import InputMode


@dataclass(frozen=True)
class Say:
    text: str
    locale: str | None = None
    voice: str | None = None


@dataclass(frozen=True)
class Play:
    urls: tuple[str, ...]


Prompt = Say | Play


@dataclass(frozen=True)
class Answer:
    pass


@dataclass(frozen=True)
class Speak:
    """Play a prompt to the caller; its end is reported as ``PromptFinished``.
    ``loop`` plays it that many times in all, for at most ``max_s`` seconds (hold
    audio is played in such bounded segments: Bird has no endless loop, A8)."""

    prompt: Prompt
    loop: int | None = None
    max_s: int | None = None


@dataclass(frozen=True)
class Gather:
    """Play ``prompt`` and collect up to ``max_digits`` keys, or (``input`` with
    speech) what the caller says in ``speech_locale`` (None: Bird's default,
    en-US): ``DigitsCollected``."""

    prompt: Prompt
    max_digits: int
    timeout_s: int
    end_key: str | None = None
    input: InputMode = "dtmf"
    speech_locale: str | None = None


@dataclass(frozen=True)
class Pause:
    """Leave the line silent for ``seconds``; then ``PauseEnded``. Kept by the
    service itself (a durable timer), not by Bird."""

    seconds: int


@dataclass(frozen=True)
class Bridge:
    """Connect the caller to ``to``. A transfer: the call ends when either side hangs
    up. A queue's ``offer``: the caller's leg stays up when the agent does not
    answer (A9), so that the next agent can be offered."""

    to: str
    from_: str | None
    ring_timeout_s: int
    record: bool = False
    offer: str | None = None


@dataclass(frozen=True)
class Record:
    """Record the caller (voicemail); its end is reported as ``RecordingFinished``."""

    max_length_s: int
    end_key: str | None
    beep: bool
    transcribe: bool


@dataclass(frozen=True)
class HttpRequest:
    """Look something up for the graph; the answer comes back as ``HttpResponded``.
    Performed by the service itself, not by Bird."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: Any
    timeout_ms: int


@dataclass(frozen=True)
class Hangup:
    pass


@dataclass(frozen=True)
class HangupLeg:
    """Hang up an agent's leg that is still ringing for a caller who has gone (A11);
    ``leg_id`` None: the leg of the call's last bridge, if Bird named it."""

    leg_id: str | None


@dataclass(frozen=True)
class AskLine:
    """Ask the line where the caller stands in ``queue`` (joining it first, at the
    back of ``priority``, when not in it yet); the answer comes back as
    ``LineStatus``. Performed by the service itself, not by Bird."""

    queue: str
    priority: int


@dataclass(frozen=True)
class Dial:
    """Bird is calling the callee of an outbound call (it was asked to before the
    call's state existed): nothing to send; the call waits for them to answer
    (``CallAnswered``) or not (``CallEnded``)."""


Action = (
    Answer
    | Speak
    | Gather
    | Bridge
    | Record
    | HttpRequest
    | Hangup
    | HangupLeg
    | AskLine
    | Dial
    | Pause
)


def describe(action: Action) -> str:
    """One line saying what ``action`` asks for (a call's timeline): prompts' texts,
    whom a bridge rings; a lookup's method, host and path only (its query and
    headers may hold secrets)."""
    match action:
        case Speak(prompt=prompt, loop=loop):
            again = f" x{loop}" if loop and loop > 1 else ""
            return f"speak {_prompt(prompt)}{again}"
        case Gather(prompt=prompt, max_digits=digits, timeout_s=timeout, end_key=end):
            ending = f", ends with {end}" if end else ""
            what = {"dtmf": f"up to {digits} keys", "speech": "speech",
                    "dtmf speech": f"up to {digits} keys or speech"}[action.input]  # fmt: skip
            if action.speech_locale and action.input != "dtmf":
                what += f" in {action.speech_locale}"
            return f"gather {what} ({timeout} s{ending}) after {_prompt(prompt)}"
        case Pause(seconds=seconds):
            return f"pause {seconds} s"
        case Bridge(to=to, ring_timeout_s=ring, offer=offer):
            kind = "offer to agent" if offer else "bridge to"
            return f"{kind} {to} (rings up to {ring} s)"
        case Record(max_length_s=length):
            return f"record up to {length} s"
        case HttpRequest(method=method, url=url):
            return f"lookup {method} {url.split('?', 1)[0]}"
        case HangupLeg(leg_id=leg):
            return f"hang up leg {leg}" if leg else "hang up the agent's leg"
        case AskLine(queue=queue, priority=priority):
            return f"ask the line (queue {queue}, priority {priority})"
        case Answer():
            return "answer"
        case Hangup():
            return "hang up"
        case Dial():
            return "dial (Bird rings the callee)"
    return type(action).__name__.lower()  # pragma: no cover


def _prompt(prompt: Prompt) -> str:
    if isinstance(prompt, Say):
        return f'"{prompt.text}"'
    return " ".join(prompt.urls)
