"""A fake Bird Voice API on loopback, with scripted callers and agents and signed webhooks.

It is a strict peer: it answers only what Bird would accept (access key, published request
schemas, call state) and behaves as docs/bird-contract.md says, assumptions A1-A14 included
(A13: answering machines, :class:`MachineScript`; A14: speech, a script's ``say:TEXT``);
where Bird's behaviour is unknown (A7: interrupting commands; A11: legs left ringing) it does
either, as chosen by an option.
With :class:`Faults` it also misbehaves as Bird may on a bad day, seeded and reproducibly.
"""

from service.sim.api import BirdSimulator, RecordedRequest
from service.sim.delivery import DeliveryAttempt
from service.sim.faults import Faults
from service.sim.scripts import (
    HANGUP,
    SILENCE,
    AgentScript,
    CalleeScript,
    CallerScript,
    MachineScript,
    speech_input,
)
from service.sim.transcript import Entry, Offer, Transcript

__all__ = [
    "HANGUP",
    "SILENCE",
    "AgentScript",
    "BirdSimulator",
    "CalleeScript",
    "CallerScript",
    "DeliveryAttempt",
    "Entry",
    "Faults",
    "MachineScript",
    "Offer",
    "RecordedRequest",
    "Transcript",
    "speech_input",
]
