"""The Bird client through httpx's MockTransport: every body it builds is valid
for Bird's published schemas, errors map to our exception types, retries are safe."""

from __future__ import annotations

import httpx
import pytest

from service.bird import schemas
from service.bird.client import BirdClient
from service.bird.errors import (
    BirdAuthError,
    BirdInvalidCallId,
    BirdNoAnswer,
    BirdNotFound,
    BirdRateLimited,
    BirdRequestError,
    BirdServerError,
)
from tests.bird.recorder import BASE, CALLS, Recorder, client_for


async def test_every_command_body_is_valid_for_birds_schemas() -> None:
    recorder = Recorder()
    client = client_for(recorder)
    await client.create_call(
        {"to": "+31612345678", "from": "+31970102030", "notification": {"url": "https://x/y"}}
    )
    await client.answer("call-1")
    await client.hangup("call-1")
    await client.hangup("call-1", cause="busy")
    await client.say("call-1", "Hello", locale="en-US", voice="female")
    await client.playback("call-1", ["https://cdn.example.com/a.wav"])
    await client.gather(
        "call-1", max_num_keys=1, timeout_s=5, say={"text": "Press 1", "locale": "nl-NL"}
    )
    await client.gather("call-1", max_num_keys=4, end_key="#", playback={"media": ["https://a"]})
    await client.record("call-1", max_length=120, end_key="#", beep=True, transcribe=False)
    await client.bridge(
        "call-1",
        "+31201234567",
        ring_timeout_s=20,
        hangup_after_bridge=True,
        notification_url="https://ivr.example.com/webhooks/bird",
    )
    await client.aclose()
    assert len(recorder.bodies) == 10
    for operation, body in recorder.bodies:
        assert schemas.problems(operation, body) == [], (operation, body)


async def test_a_body_bird_would_reject_is_caught_by_the_schemas() -> None:
    """The schema check in these tests can fail: out-of-range and unknown fields."""
    assert schemas.problems("bridge", {"to": "+31", "ringTimeout": 500})
    assert schemas.problems("say", {"text": "x", "speed": 2})
    assert schemas.problems("gather", {"endKey": "A"})
    assert schemas.problems("say", {"locale": "en-US"})  # text is required


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BirdRequestError),
        (401, BirdAuthError),
        (403, BirdAuthError),
        (404, BirdNotFound),
        (422, BirdRequestError),
    ],
)
async def test_4xx_answers_map_to_our_errors_with_birds_reason(
    status: int, kind: type[Exception]
) -> None:
    error = {"code": "E1", "message": "no such thing", "details": {"field": "to"}}
    recorder = Recorder(httpx.Response(status, json=error))
    client = client_for(recorder)
    with pytest.raises(kind) as caught:
        await client.answer("call-1")
    await client.aclose()
    assert len(recorder.requests) == 1  # a rejected request is never retried
    assert caught.value.status == status  # type: ignore[attr-defined]
    assert caught.value.code == "E1"  # type: ignore[attr-defined]
    assert "no such thing" in str(caught.value)


async def test_429_is_retried_then_raised() -> None:
    recorder = Recorder(
        httpx.Response(429, json={"code": "rate", "message": "slow down"}),
        httpx.Response(429, json={"code": "rate", "message": "slow down"}),
        httpx.Response(202, json={"id": "cmd-9"}),
    )
    client = client_for(recorder)
    assert await client.say("call-1", "hi") == {"id": "cmd-9"}
    assert len(recorder.requests) == 3
    limited = Recorder(*[httpx.Response(429, json={}) for _ in range(3)])
    client = client_for(limited, retries=2)
    with pytest.raises(BirdRateLimited) as caught:
        await client.answer("call-1")
    assert caught.value.performed == "no"
    await client.aclose()


async def test_a_5xx_is_raised_at_once_for_the_caller_to_decide() -> None:
    # Bird documents 5xx as not processed, but a proxy's 5xx may follow a performed
    # request: whether to send again depends on the command (service.runtime.outbox).
    failing = Recorder(httpx.Response(500, text="boom"), httpx.Response(202, json={}))
    client = client_for(failing, retries=2)
    with pytest.raises(BirdServerError) as caught:
        await client.say("call-1", "hi")
    assert caught.value.performed == "maybe"
    assert len(failing.requests) == 1
    await client.aclose()


async def test_a_request_that_may_have_reached_bird_is_not_sent_twice() -> None:
    attempts = []

    def read_timeout(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ReadTimeout("slow", request=request)

    client = BirdClient(
        base_url=BASE,
        access_key="key-1",
        workspace_id="ws-1",
        channel_id="ch-1",
        transport=httpx.MockTransport(read_timeout),
    )
    with pytest.raises(BirdNoAnswer) as caught:
        await client.say("call-1", "hi")
    await client.aclose()
    assert len(attempts) == 1
    assert caught.value.performed == "maybe"


async def test_connection_refused_is_retried() -> None:
    attempts = []

    def refuse_once(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        if len(attempts) == 1:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(202, json={"id": "ok"})

    recorder_client = BirdClient(
        base_url=BASE,
        access_key="key-1",
        workspace_id="ws-1",
        channel_id="ch-1",
        transport=httpx.MockTransport(refuse_once),
        backoff_s=0,
    )
    assert await recorder_client.answer("call-1") == {"id": "ok"}
    await recorder_client.aclose()
    assert len(attempts) == 2


async def test_get_call_returns_the_call_object() -> None:
    call = {"id": "call-1", "status": "ongoing"}
    recorder = Recorder(httpx.Response(200, json=call))
    client = client_for(recorder)
    assert await client.get_call("call-1") == call
    await client.aclose()
    assert recorder.requests[0].method == "GET"
    assert recorder.requests[0].url.path == f"{CALLS}/call-1"


@pytest.mark.parametrize(
    "call_id",
    ["../../../../../workspaces/x/channels/y/calls", "..", "a/b", "call\n1", "c\x00", "", "é",
     "c" * 200],
)  # fmt: skip
async def test_an_id_that_cannot_name_a_call_is_never_put_in_a_url(call_id: str) -> None:
    recorder = Recorder()
    client = client_for(recorder)
    with pytest.raises(BirdInvalidCallId) as caught:
        await client.answer(call_id)
    with pytest.raises(BirdInvalidCallId):
        await client.say(call_id, "hi")
    await client.aclose()
    assert recorder.requests == []
    assert caught.value.performed == "refused"
