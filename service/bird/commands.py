"""What we ask of Bird, and what we read back from its answers: our actions as
Bird commands (:meth:`BirdCalls.perform`), outbound calls
(:meth:`BirdCalls.create_call`) and a call's status (:meth:`BirdCalls.call_status`),
over the documented endpoints of section 1 of docs/bird-contract.md ("the contract").

:class:`BirdCalls` is the typed face of :class:`~service.bird.client.BirdClient`:
outside the Bird package nothing builds a request body or reads an answer, and
failures are the errors of :mod:`service.bird.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_never

import httpx

from service.bird.client import DEFAULT_TIMEOUT, JSON, BirdClient
from service.bird.deliveries import FINAL_STATUSES
from service.bird.errors import BirdError
from service.core import actions

BirdAction = (
    actions.Answer | actions.Speak | actions.Gather | actions.Bridge | actions.Record
    | actions.Hangup
)  # fmt: skip
"""The actions Bird performs (``HttpRequest`` is the service's own)."""


@dataclass(frozen=True)
class CommandReceipt:
    """Bird accepted a command (202). ``command_id`` is None when its answer names none."""

    command_id: str | None

    @classmethod
    def read(cls, answer: JSON) -> CommandReceipt:
        """A command object, or for a bridge ``{"command": {...}, "bridgedCall": {...}}``."""
        command = answer.get("command", answer)
        found = command.get("id") if isinstance(command, dict) else None
        return cls(str(found) if found is not None else None)


@dataclass(frozen=True)
class CallStatus:
    """A call's ``status`` as Bird reports it now (``GET`` the call)."""

    status: str

    @property
    def ended(self) -> bool:
        """Whether the call is over: completed, no-answer, busy, failed or cancelled."""
        return self.status in FINAL_STATUSES


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
    ) -> BirdCalls:
        """Over a new :class:`~service.bird.client.BirdClient` (close with :meth:`aclose`)."""
        return cls(
            BirdClient(
                base_url=base_url,
                access_key=access_key,
                workspace_id=workspace_id,
                channel_id=channel_id,
                transport=transport,
                timeout=timeout,
            )
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def perform(
        self, call_id: str, action: BirdAction, *, notification_url: str
    ) -> CommandReceipt:
        """Send one action to Bird as the matching command. ``notification_url`` is
        where a bridge's agent leg reports (A4)."""
        return CommandReceipt.read(await self._send(call_id, action, notification_url))

    async def _send(self, call_id: str, action: BirdAction, notification_url: str) -> JSON:
        client = self._client
        match action:
            case actions.Answer():
                return await client.answer(call_id)
            case actions.Speak(prompt=actions.Play() as play):
                return await client.playback(call_id, list(play.urls))
            case actions.Speak():
                say = action.prompt
                assert isinstance(say, actions.Say)
                return await client.say(call_id, say.text, locale=say.locale, voice=say.voice)
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
                )
            case actions.Bridge():
                return await client.bridge(
                    call_id,
                    action.to,
                    from_=action.from_,
                    ring_timeout_s=action.ring_timeout_s,
                    hangup_after_bridge=True,
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
            case _:  # pragma: no cover
                assert_never(action)

    async def create_call(
        self, *, to: str, from_: str | None, notification_url: str, scheduled_for: str | None
    ) -> str:
        """Ask Bird to call ``to``; returns Bird's call id. The call's deliveries go
        to ``notification_url``, its query string included (A10)."""
        created = await self._client.create_call(
            {
                "to": to,
                "from": from_,
                "notification": {"url": notification_url},
                "scheduledFor": scheduled_for,
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


def _say_options(prompt: actions.Say) -> JSON:
    return {"text": prompt.text, "locale": prompt.locale, "voice": prompt.voice}


def _playback_options(prompt: actions.Play) -> JSON:
    return {"media": list(prompt.urls)}
