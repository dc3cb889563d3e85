"""An async client for Bird's Voice API: the documented endpoints of section 1 of
docs/bird-contract.md ("the contract"). Requests go in and answers come out as
Bird's JSON; :mod:`service.bird.commands` is the typed face the service uses.

Every request carries ``Authorization: AccessKey <key>`` and explicit timeouts.
A request that surely did not reach or was not processed by Bird (connection
refused, 429) is retried at once a few times with a short growing delay; anything
else is raised as one of the errors of :mod:`service.bird.errors`, whose
``performed`` says whether Bird may have done it. Retrying over a longer horizon,
and what to do when Bird may have performed a command, is the caller's decision
(``service.runtime.outbox``). The transport is injected so that tests swap it; by
default requests go out through aiohttp (:mod:`service.bird.transport`), which keeps
these meanings of each failure and costs about half of httpcore's CPU.

Requests are ``httpx.Request`` objects handed to the transport, answers
``httpx.Response`` objects, failures httpx's exceptions: httpx's API without
``httpx.AsyncClient``'s layers (base URL merging, auth flows, redirects, cookies, event
hooks), none of which a request to Bird uses, and which took more than half of a
request's CPU (bench/README.md, "Where the time goes").
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from service import __version__
from service.bird.errors import (
    BirdAuthError,
    BirdError,
    BirdHTTPError,
    BirdInvalidCallId,
    BirdNoAnswer,
    BirdNotFound,
    BirdRateLimited,
    BirdRequestError,
    BirdServerError,
    BirdUnreachable,
)
from service.bird.limits import Throttle
from service.bird.transport import AiohttpTransport

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=3.0)
JSON = dict[str, Any]

Observer = Callable[[str, str, float], None]
"""Told of every request to Bird: ``observe(command, result, seconds)``. ``command``
is ``create_call``, ``get_call``, ``answer``, ``hangup``, ``say``, ``playback``,
``gather``, ``record`` or ``bridge``; ``result`` the class of Bird's answer (``2xx``,
``3xx``, ``4xx``, ``429``, ``5xx``) or ``timeout`` (sent, no answer in time) or
``connection_error`` (not connected, or the connection broke); ``seconds`` the
request's time, a throttle's wait excluded. Each retry is a request of its own."""


def result_class(status: int) -> str:
    """The result of an answered request, as :data:`Observer` names it."""
    return "429" if status == 429 else f"{status // 100}xx"


def _error_for(response: httpx.Response) -> BirdHTTPError:
    code, message, details = "", response.reason_phrase, None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("code", ""))
        message = str(body.get("message", message))
        details = body.get("details")
    status = response.status_code
    kind: type[BirdHTTPError]
    if status in (401, 403):
        kind = BirdAuthError
    elif status == 404:
        kind = BirdNotFound
    elif status == 429:
        kind = BirdRateLimited
    elif status >= 500:
        kind = BirdServerError
    else:
        kind = BirdRequestError
    return kind(status, code or str(status), message, details)


# A call id as Bird gives them (UUIDs): what may stand in a call's path.
CALL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def _call(call_id: str) -> str:
    """``call_id`` as one segment of a call's path, or :class:`BirdInvalidCallId`: no id
    from a delivery or a stored state may make a request leave the channel's calls."""
    if not CALL_ID.fullmatch(call_id):
        raise BirdInvalidCallId(call_id)
    return call_id


def _compact(body: JSON) -> JSON:
    """Drop unset (None) fields: Bird's schemas reject nulls on most fields."""
    return {k: v for k, v in body.items() if v is not None}


class BirdClient:
    """One channel of one workspace: every call path hangs off
    ``/workspaces/{workspace}/channels/{channel}/calls``."""

    def __init__(
        self,
        *,
        base_url: str,
        access_key: str,
        workspace_id: str,
        channel_id: str,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        retries: int = 2,
        backoff_s: float = 0.2,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        throttle: Throttle | None = None,
        observe: Observer | None = None,
    ) -> None:
        """``throttle`` is awaited before every request: the service shares Bird's
        per-workspace limits (``service.bird.limits``) across its replicas with it.
        ``observe`` is told of every request (:data:`Observer`: the service's metrics)."""
        self._calls_path = f"/workspaces/{workspace_id}/channels/{channel_id}/calls"
        self._calls_url = (
            f"{base_url.rstrip('/')}/workspaces/{workspace_id}/channels/{channel_id}/calls"
        )
        self._transport = transport if transport is not None else AiohttpTransport()
        self._headers = httpx.Headers(
            {
                "Authorization": f"AccessKey {access_key}",
                "Accept": "application/json",
                "User-Agent": f"bird-ivr/{__version__}",
            }
        )
        self._extensions = {"timeout": timeout.as_dict()}
        self._retries = retries
        self._backoff_s = backoff_s
        self._sleep = sleep
        self._throttle = throttle
        self._observe = observe

    def _observed(self, command: str, result: str, started: float) -> None:
        if self._observe is not None:
            with contextlib.suppress(Exception):  # metrics never fail a request
                self._observe(command, result, time.perf_counter() - started)

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def _exchange(self, method: str, path: str, body: JSON | None) -> httpx.Response:
        """One request to Bird and its whole answer (httpx's exceptions when it fails)."""
        request = httpx.Request(
            method,
            self._calls_url + path,
            headers=self._headers,
            json=body,
            extensions=self._extensions,
        )
        response = await self._transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def _request(
        self, command: str, method: str, path: str, body: JSON | None = None
    ) -> JSON:
        url = self._calls_path + path
        attempt = 0
        while True:
            if self._throttle is not None:
                await self._throttle(method)
            started = time.perf_counter()
            try:
                response = await self._exchange(method, path, body)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # Nothing reached Bird: safe to try again.
                self._observed(command, "connection_error", started)
                error: BirdError = BirdUnreachable(f"{method} {url}: {exc!r}")
            except httpx.TransportError as exc:
                timed_out = isinstance(exc, httpx.TimeoutException)
                self._observed(command, "timeout" if timed_out else "connection_error", started)
                raise BirdNoAnswer(f"{method} {url}: {exc!r}") from exc
            else:
                self._observed(command, result_class(response.status_code), started)
                if response.is_success:
                    if not response.content:
                        return {}
                    try:
                        data = response.json()
                    except ValueError as exc:
                        raise BirdNoAnswer(f"{method} {url}: answer is not JSON") from exc
                    return data if isinstance(data, dict) else {"data": data}
                error = _error_for(response)
                if error.performed != "no":
                    raise error
            if attempt >= self._retries:
                raise error
            attempt += 1
            await self._sleep(self._backoff_s * 2 ** (attempt - 1))

    # -- calls ---------------------------------------------------------------

    async def create_call(self, body: JSON) -> JSON:
        """Place an outbound call; ``body`` is a createCall request (``to`` required)."""
        return await self._request("create_call", "POST", "", _compact(body))

    async def get_call(self, call_id: str) -> JSON:
        return await self._request("get_call", "GET", f"/{_call(call_id)}")

    # -- commands ------------------------------------------------------------

    async def answer(self, call_id: str) -> JSON:
        return await self._request("answer", "POST", f"/{_call(call_id)}/answer")

    async def hangup(self, call_id: str, cause: str | None = None) -> JSON:
        body = {"cause": cause} if cause else None
        return await self._request("hangup", "POST", f"/{_call(call_id)}/hangup", body)

    async def say(
        self,
        call_id: str,
        text: str,
        *,
        locale: str | None = None,
        voice: str | None = None,
        loop: int | None = None,
        timeout_s: int | None = None,
    ) -> JSON:
        body = {"text": text, "locale": locale, "voice": voice, "loop": loop, "timeout": timeout_s}
        return await self._request("say", "POST", f"/{_call(call_id)}/say", _compact(body))

    async def playback(
        self,
        call_id: str,
        media: list[str],
        *,
        loop: int | None = None,
        timeout_s: int | None = None,
        pause_ms: int | None = None,
    ) -> JSON:
        body = {"media": media, "loop": loop, "timeout": timeout_s, "pauseMilliseconds": pause_ms}
        return await self._request(
            "playback", "POST", f"/{_call(call_id)}/playback", _compact(body)
        )

    async def gather(
        self,
        call_id: str,
        *,
        max_num_keys: int,
        timeout_s: int | None = None,
        end_key: str | None = None,
        say: JSON | None = None,
        playback: JSON | None = None,
        input_mode: str = "dtmf",
        speech_locale: str | None = None,
    ) -> JSON:
        body = {
            "maxNumKeys": max_num_keys,
            "timeout": timeout_s,
            "endKey": end_key,
            "input": input_mode,
            "speechLocale": speech_locale,
            "say": _compact(say) if say else None,
            "playback": _compact(playback) if playback else None,
        }
        return await self._request("gather", "POST", f"/{_call(call_id)}/gather", _compact(body))

    async def record(
        self,
        call_id: str,
        *,
        max_length: int | None = None,
        end_key: str | None = None,
        timeout_s: int | None = None,
        beep: bool | None = None,
        transcribe: bool | None = None,
        transcribe_locale: str | None = None,
    ) -> JSON:
        body = {
            "maxLength": max_length,
            "endKey": end_key,
            "timeout": timeout_s,
            "beep": beep,
            "transcribe": transcribe,
            "transcribeLocale": transcribe_locale,
        }
        return await self._request("record", "POST", f"/{_call(call_id)}/record", _compact(body))

    async def bridge(
        self,
        call_id: str,
        to: str,
        *,
        from_: str | None = None,
        ring_timeout_s: int | None = None,
        hangup_after_bridge: bool | None = None,
        record: bool | None = None,
        notification_url: str | None = None,
    ) -> JSON:
        body = {
            "to": to,
            "from": from_,
            "ringTimeout": ring_timeout_s,
            "hangupAfterBridge": hangup_after_bridge,
            "record": record,
            "notification": {"url": notification_url} if notification_url else None,
        }
        return await self._request("bridge", "POST", f"/{_call(call_id)}/bridge", _compact(body))
