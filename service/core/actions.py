"""What the engine asks for, in our own terms. ``service.bird.commands`` turns each
action into one request to Bird's API (``HttpRequest`` is performed by
``service.runtime.lookups``); nothing here knows Bird's JSON shapes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


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
    """Play a prompt to the caller; its end is reported as ``PromptFinished``."""

    prompt: Prompt


@dataclass(frozen=True)
class Gather:
    """Play ``prompt`` and collect up to ``max_digits`` keys (``DigitsCollected``)."""

    prompt: Prompt
    max_digits: int
    timeout_s: int
    end_key: str | None = None


@dataclass(frozen=True)
class Bridge:
    """Connect the caller to ``to``; the call ends when either side hangs up."""

    to: str
    from_: str | None
    ring_timeout_s: int
    record: bool = False


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
class Dial:
    """Bird is calling the callee of an outbound call (it was asked to before the
    call's state existed): nothing to send; the call waits for them to answer
    (``CallAnswered``) or not (``CallEnded``)."""


Action = Answer | Speak | Gather | Bridge | Record | HttpRequest | Hangup | Dial
