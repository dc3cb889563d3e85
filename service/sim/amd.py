"""Answering-machine detection (docs/bird-contract.md A13): when Bird gives its verdict.

A ``createCall`` or ``bridge`` may ask for detection with ``amdSettings`` (only when
``enabled`` is true). Bird then listens to whoever answered and, once it has decided, sends one
delivery of the call (status unchanged, a new ``updatedAt``) whose call object carries
``amdResult: {"result": "human"|"machine", "speech", "locale"}``; every later delivery of the
call carries the same ``amdResult``. Without detection nobody tells the service who answered.

When the verdict comes, in simulated seconds from the answer:

- A person says hello and waits: ``human`` after :data:`HUMAN_VERDICT_S`, speech ``hello``.
- A machine (:class:`~service.sim.scripts.MachineScript`) plays its greeting, then beeps.
  With ``ifMachineNotifyAfter: "beep"`` the verdict comes once the beep has ended, so that
  what is played from then on is recorded; with ``"wordCount"`` (the default, and anything
  else) it comes once ``wordCount`` words of the greeting were heard (at its end when it is
  shorter; ``speechTimeout`` after the answer when it says nothing at all), before the beep:
  what is played before the beep is not recorded. Either way a verdict waits no longer than
  ``beepTimeout``: a machine that has not beeped by then is still a ``machine``.

``speech`` is the greeting as far as Bird had heard it when it decided.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from service.sim.scripts import MachineScript

HUMAN = "human"
MACHINE = "machine"
NOTIFY_BEEP = "beep"
NOTIFY_WORD_COUNT = "wordCount"
HUMAN_VERDICT_S = 1.5
"""How long after a person answers Bird says ``human`` (they said hello, then listened)."""
HUMAN_SPEECH = "hello"
BEEP_S = 0.5
"""How long a machine's beep lasts."""


@dataclass(frozen=True)
class AmdSettings:
    """A request's ``amdSettings``, with Bird's defaults for what it leaves out."""

    word_count: float = 5.0
    speech_timeout_s: float = 3.0
    beep_timeout_s: float = 30.0
    locale: str = "en-US"
    notify_after: str = NOTIFY_WORD_COUNT
    """``beep`` or ``wordCount`` (anything else is taken as ``wordCount``)."""

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> AmdSettings | None:
        """The detection a ``createCall`` or ``bridge`` body asks for; None unless its
        ``amdSettings.enabled`` is true."""
        settings = body.get("amdSettings")
        if not isinstance(settings, dict) or settings.get("enabled") is not True:
            return None
        notify = settings.get("ifMachineNotifyAfter")
        locale = settings.get("speechLocale")
        return cls(
            word_count=_seconds(settings.get("wordCount"), cls.word_count),
            speech_timeout_s=_seconds(settings.get("speechTimeout"), cls.speech_timeout_s),
            beep_timeout_s=_seconds(settings.get("beepTimeout"), cls.beep_timeout_s),
            locale=locale if isinstance(locale, str) and locale else cls.locale,
            notify_after=NOTIFY_BEEP if notify == NOTIFY_BEEP else NOTIFY_WORD_COUNT,
        )

    def result(self, verdict: str, speech: str) -> dict[str, str]:
        """The ``amdResult`` object of a delivery."""
        return {"result": verdict, "speech": speech, "locale": self.locale}

    def human(self) -> dict[str, str]:
        """The verdict on a person."""
        return self.result(HUMAN, HUMAN_SPEECH)


def _seconds(value: Any, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return default
    return float(value)


@dataclass(frozen=True)
class MachinePlan:
    """What an answering machine does on one call, in simulated seconds from the answer."""

    greeting_s: float
    """When its greeting ends."""
    beep_at_s: float | None
    """When its beep starts (None: it does not beep)."""
    tape_from_s: float
    """When it starts recording: the end of the beep, or of the greeting without one."""
    hangs_up_at_s: float
    """When it hangs up: its longest message after it started recording."""
    verdict_at_s: float | None
    """When Bird delivers its verdict (None: detection is off)."""
    verdict_speech: str
    """What Bird had heard of the greeting when it decided."""
    after_beep: bool
    """The verdict comes after the beep (what is played then is recorded)."""


def plan_machine(machine: MachineScript, amd: AmdSettings | None) -> MachinePlan:
    """When ``machine`` greets, beeps, records and hangs up, and when Bird's verdict comes."""
    greeting_s = machine.greeting_seconds
    beep_at_s = greeting_s if machine.beep else None
    tape_from_s = greeting_s + BEEP_S if machine.beep else greeting_s
    words = machine.greeting.split()
    verdict_at_s: float | None = None
    if amd is not None:
        if amd.notify_after == NOTIFY_BEEP:
            decided_s = tape_from_s if machine.beep else amd.beep_timeout_s
        elif not words:
            decided_s = amd.speech_timeout_s
        else:
            counted = min(len(words), max(1, math.ceil(amd.word_count)))
            decided_s = greeting_s * counted / len(words)
        verdict_at_s = min(decided_s, amd.beep_timeout_s)
    heard = _words_heard(len(words), greeting_s, verdict_at_s)
    after_beep = verdict_at_s is not None and machine.beep and verdict_at_s >= tape_from_s
    return MachinePlan(
        greeting_s=greeting_s,
        beep_at_s=beep_at_s,
        tape_from_s=tape_from_s,
        hangs_up_at_s=tape_from_s + machine.max_message_s,
        verdict_at_s=verdict_at_s,
        verdict_speech=" ".join(words[:heard]),
        after_beep=after_beep,
    )


def _words_heard(words: int, greeting_s: float, at_s: float | None) -> int:
    """How many of a greeting's ``words`` were said ``at_s`` after it began (all: None)."""
    if at_s is None or greeting_s <= 0 or at_s >= greeting_s:
        return words
    return math.floor(words * at_s / greeting_s + 1e-9)
