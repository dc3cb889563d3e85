"""What we ask of Bird, and what we read back from its answers: our actions as
Bird commands (:meth:`BirdCalls.perform`), outbound calls
(:meth:`BirdCalls.create_call`) and a call's status (:meth:`BirdCalls.call_status`),
over the documented endpoints of section 1 of docs/bird-contract.md ("the contract").

:meth:`BirdCalls.perform` never raises for a command Bird did not take: it says what
became of it (:data:`Sent`), deciding per command what a failure means when Bird
may have performed it (a timeout, a 5xx):

- ``answer`` and ``hangup``: the call is read back (``GET``); answered, or over,
  means done; otherwise the command surely did not happen.
- ``say``, ``playback``, ``gather``, ``record``: after a 5xx, not performed (Bird
  documents 5xx as not processed; at worst a prompt is heard twice, never two at
  once); after no answer at all, unsure.
- ``bridge``: unsure: calling an agent twice matters to two people, so only
  evidence (the agent leg's deliveries) or a later look decides.

:class:`BirdCalls` is the typed face of :class:`~service.bird.client.BirdClient`:
outside the Bird package nothing builds a request body or reads an answer, and
failures are the errors of :mod:`service.bird.errors`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import assert_never

import httpx

from service.bird.client import DEFAULT_TIMEOUT, JSON, BirdClient, Observer
from service.bird.deliveries import FINAL_STATUSES, LEG_ENDED, UNREACHABLE
from service.bird.errors import BirdError, BirdRateLimited, BirdServerError
from service.bird.limits import Throttle
from service.core import actions, events
from service.core.graph import Amd

BirdAction = (
    actions.Answer | actions.Speak | actions.Gather | actions.Bridge | actions.Record
    | actions.Hangup | actions.HangupLeg
)  # fmt: skip
"""The actions Bird performs (``HttpRequest``, ``AskLine`` and ``Pause`` are the service's own)."""


@dataclass(frozen=True)
class CommandReceipt:
    """Bird accepted a command (202), or had already done it (``already_done``: an
    answer or hang-up whose first request got no answer). ``command_id`` is None when
    Bird's answer names none; ``leg_id`` is the agent's leg a bridge created."""

    command_id: str | None
    already_done: bool = False
    leg_id: str | None = None

    @classmethod
    def read(cls, answer: JSON) -> CommandReceipt:
        """A command object, or for a bridge ``{"command": {...}, "bridgedCall": {...}}``."""
        command = answer.get("command", answer)
        found = command.get("id") if isinstance(command, dict) else None
        leg = answer.get("bridgedCall")
        leg_id = leg.get("id") if isinstance(leg, dict) else None
        return cls(
            str(found) if found is not None else None,
            leg_id=str(leg_id) if leg_id is not None else None,
        )


@dataclass(frozen=True)
class NotPerformed:
    """Bird surely did not perform the command: sending it again is safe."""

    reason: str
    rate_limited: bool = False


@dataclass(frozen=True)
class Unsure:
    """Bird may or may not have performed the command."""

    reason: str


@dataclass(frozen=True)
class Refused:
    """Bird refused the command (4xx); ``call_ended`` when that is because the call
    is over (the caller hung up meanwhile)."""

    reason: str
    call_ended: bool
    call_status: str | None = None


Sent = CommandReceipt | NotPerformed | Unsure | Refused
"""What became of a command sent to Bird."""


@dataclass(frozen=True)
class CallStatus:
    """A call's ``status`` as Bird reports it now (``GET`` the call)."""

    status: str

    @property
    def ended(self) -> bool:
        """Whether the call is over: completed, no-answer, busy, failed or cancelled."""
        return self.status in FINAL_STATUSES

    @property
    def ended_as(self) -> events.LegStatus | None:
        """How the call ended, in our terms; None while it lives."""
        return LEG_ENDED.get(self.status)

    @property
    def answered(self) -> bool:
        """The call is connected (``ongoing``)."""
        return self.status == "ongoing"

    @property
    def unreachable_as(self) -> events.Unreachable | None:
        """For an agent's leg: why it was not reached, in our terms; None otherwise."""
        return UNREACHABLE.get(self.status)


class BirdCalls:
    """The calls of one Bird channel, in our terms."""

    def __init__(self, client: BirdClient) -> None:
        self._client = client

    @classmethod
    def for_channel(
        cls,
        *,
        base_url: str,
        access_key: str,
        workspace_id: str,
        channel_id: str,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        throttle: Throttle | None = None,
        observe: Observer | None = None,
    ) -> BirdCalls:
        """Over a new :class:`~service.bird.client.BirdClient` (close with :meth:`aclose`);
        ``observe`` is told of every request (:data:`~service.bird.client.Observer`)."""
        return cls(
            BirdClient(
                base_url=base_url,
                access_key=access_key,
                workspace_id=workspace_id,
                channel_id=channel_id,
                transport=transport,
                timeout=timeout,
                throttle=throttle,
                observe=observe,
            )
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def perform(self, call_id: str, action: BirdAction, *, notification_url: str) -> Sent:
        """Send one action to Bird as the matching command, and say what became of it.
        ``notification_url`` is where a bridge's agent leg reports (A4)."""
        try:
            answer = await self._send(call_id, action, notification_url)
        except BirdError as error:
            return await self._failed(call_id, action, error)
        return CommandReceipt.read(answer)

    async def _failed(self, call_id: str, action: BirdAction, error: BirdError) -> Sent:
        reason = str(error)
        if error.performed == "no":
            return NotPerformed(reason, rate_limited=isinstance(error, BirdRateLimited))
        if error.performed == "refused":
            found = await self.call_status(call_id)
            ended = found is not None and found.ended
            return Refused(reason, ended, found.status if found is not None else None)
        match action:
            case actions.HangupLeg():
                return Unsure(reason)
            case actions.Answer() | actions.Hangup():
                found = await self.call_status(call_id)
                if found is None:
                    return Unsure(reason)
                answered = isinstance(action, actions.Answer) and found.status == "ongoing"
                hung_up = isinstance(action, actions.Hangup) and found.ended
                if answered or hung_up:
                    return CommandReceipt(None, already_done=True)
                if found.ended:
                    return Refused(reason, True, found.status)
                return NotPerformed(reason)
            case actions.Speak() | actions.Gather() | actions.Record():
                if isinstance(error, BirdServerError):
                    return NotPerformed(reason)
                return Unsure(reason)
            case actions.Bridge():
                return Unsure(reason)
            case _:  # pragma: no cover
                assert_never(action)

    async def _send(self, call_id: str, action: BirdAction, notification_url: str) -> JSON:
        client = self._client
        match action:
            case actions.Answer():
                return await client.answer(call_id)
            case actions.Speak(prompt=actions.Play() as play):
                return await client.playback(
                    call_id, list(play.urls), loop=action.loop, timeout_s=action.max_s
                )
            case actions.Speak():
                say = action.prompt
                assert isinstance(say, actions.Say)
                return await client.say(
                    call_id, say.text, locale=say.locale, voice=say.voice,
                    loop=action.loop, timeout_s=action.max_s,
                )  # fmt: skip
            case actions.Gather(prompt=prompt):
                spoken = _say_options(prompt) if isinstance(prompt, actions.Say) else None
                played = _playback_options(prompt) if isinstance(prompt, actions.Play) else None
                return await client.gather(
                    call_id,
                    max_num_keys=action.max_digits,
                    timeout_s=action.timeout_s,
                    end_key=action.end_key,
                    say=spoken,
                    playback=played,
                    input_mode=action.input,
                    speech_locale=action.speech_locale,
                )
            case actions.Bridge():
                # A queue's offer: the caller stays when the agent does not answer
                # (A9), and the agent leg's news names the offer (A10).
                offered = action.offer is not None
                if offered:
                    joiner = "&" if "?" in notification_url else "?"
                    notification_url = f"{notification_url}{joiner}offer={action.offer}"
                return await client.bridge(
                    call_id,
                    action.to,
                    from_=action.from_,
                    ring_timeout_s=action.ring_timeout_s,
                    hangup_after_bridge=not offered,
                    record=action.record or None,
                    notification_url=notification_url,
                )
            case actions.Record():
                return await client.record(
                    call_id,
                    max_length=action.max_length_s,
                    end_key=action.end_key,
                    beep=action.beep,
                    transcribe=action.transcribe,
                )
            case actions.Hangup():
                return await client.hangup(call_id)
            case actions.HangupLeg(leg_id=leg_id):
                assert leg_id is not None, "a leg to hang up is named before it is sent"
                return await client.hangup(leg_id)
            case _:  # pragma: no cover
                assert_never(action)

    async def create_call(
        self,
        *,
        to: str,
        from_: str | None,
        notification_url: str,
        scheduled_for: str | None,
        amd: Amd | None = None,
        tags: Sequence[str] = (),
    ) -> str:
        """Ask Bird to call ``to``; returns Bird's call id. The call's deliveries go
        to ``notification_url``, its query string included (A10). With ``amd``
        enabled Bird tells a person from a machine, a machine after its beep (A13);
        ``tags`` are for Bird's reporting."""
        created = await self._client.create_call(
            {
                "to": to,
                "from": from_,
                "notification": {"url": notification_url},
                "scheduledFor": scheduled_for,
                "amdSettings": amd_settings(amd),
                "tags": list(tags) or None,
            }
        )
        return str(created.get("id", ""))

    async def call_status(self, call_id: str) -> CallStatus | None:
        """The call's status now; None when Bird cannot be asked."""
        try:
            found = (await self._client.get_call(call_id)).get("status")
        except BirdError:
            return None
        return CallStatus(found if isinstance(found, str) else "")


def amd_settings(amd: Amd | None) -> JSON | None:
    """Bird's ``amdSettings`` for a graph's machine detection (None: none asked). The
    verdict on a machine waits for its beep, so that a message left then is recorded."""
    if amd is None or not amd.enabled:
        return None
    settings: JSON = {"enabled": True, "ifMachineNotifyAfter": "beep"}
    if amd.word_count is not None:
        settings["wordCount"] = amd.word_count
    if amd.beep_timeout_s is not None:
        settings["beepTimeout"] = amd.beep_timeout_s
    return settings


def _say_options(prompt: actions.Say) -> JSON:
    return {"text": prompt.text, "locale": prompt.locale, "voice": prompt.voice}


def _playback_options(prompt: actions.Play) -> JSON:
    return {"media": list(prompt.urls)}
