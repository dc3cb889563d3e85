"""BirdCalls through httpx's MockTransport: every action, created call and status
read becomes a request Bird's published schemas accept, and Bird's answers are
read back in our terms."""

from __future__ import annotations

import httpx
import pytest

from service.bird import schemas
from service.bird.commands import (
    BirdAction,
    BirdCalls,
    CallStatus,
    CommandReceipt,
    NotPerformed,
    Refused,
    Unsure,
)
from service.core import actions
from tests.bird.recorder import BASE, CALLS, Recorder, client_for


def calls_for(recorder: Recorder) -> BirdCalls:
    return BirdCalls(client_for(recorder))


def channel_calls(transport: httpx.AsyncBaseTransport) -> BirdCalls:
    """As the service builds it."""
    return BirdCalls.for_channel(
        base_url=BASE,
        access_key="key-1",
        workspace_id="ws-1",
        channel_id="ch-1",
        transport=transport,
    )


async def test_every_action_the_engine_can_take_becomes_a_valid_request() -> None:
    recorder = Recorder(
        *[httpx.Response(202, json={"id": "x"}) for _ in range(6)],
    )
    bird = calls_for(recorder)
    say = actions.Say("Hi {{caller}}", locale="en-GB", voice="male")
    play = actions.Play(("https://cdn.example.com/hold.wav",))
    for action in (
        actions.Answer(),
        actions.Speak(say),
        actions.Speak(play),
        actions.Gather(say, max_digits=1, timeout_s=5),
        actions.Gather(play, max_digits=6, timeout_s=10, end_key="#"),
        actions.Bridge("sip:tech@pbx.example.com", "+31970102030", 30, record=True),
        actions.Hangup(),
    ):
        await bird.perform("call-1", action, notification_url="https://ivr.test/wh")
    await bird.aclose()
    operations = [op for op, _ in recorder.bodies]
    assert operations == [
        "answerCall", "say", "playback", "gather", "gather", "bridge", "hangupCall",
    ]  # fmt: skip
    bridge = recorder.bodies[5][1]
    assert bridge["hangupAfterBridge"] is True
    assert bridge["notification"] == {"url": "https://ivr.test/wh"}
    assert bridge["ringTimeout"] == 30


async def test_a_record_action_is_a_valid_record_request() -> None:
    recorder = Recorder()
    bird = calls_for(recorder)
    action = actions.Record(max_length_s=120, end_key="#", beep=True, transcribe=False)
    await bird.perform("call-1", action, notification_url="https://ivr.test/wh")
    await bird.aclose()
    assert recorder.bodies == [
        ("record", {"maxLength": 120, "endKey": "#", "beep": True, "transcribe": False})
    ]
    assert schemas.problems("record", recorder.bodies[0][1]) == []


@pytest.mark.parametrize(
    ("answer", "command_id"),
    [
        pytest.param(
            {"id": "cmd-7", "callId": "call-1", "status": "queued"}, "cmd-7", id="command"
        ),
        pytest.param(
            {"command": {"id": "cmd-8", "command": "bridge"}, "bridgedCall": {"id": "leg-2"}},
            "cmd-8",
            id="bridge",
        ),
        pytest.param({}, None, id="empty"),
    ],
)
async def test_the_command_id_is_read_from_either_shape_of_birds_answer(
    answer: dict[str, object], command_id: str | None
) -> None:
    recorder = Recorder(httpx.Response(202, json=answer))
    bird = calls_for(recorder)
    receipt = await bird.perform(
        "call-1",
        actions.Bridge("+31201234567", None, 20),
        notification_url="https://ivr.test/wh",
    )
    await bird.aclose()
    assert isinstance(receipt, CommandReceipt)
    assert receipt.command_id == command_id
    assert receipt.leg_id == ("leg-2" if "bridgedCall" in answer else None)


async def test_a_command_bird_refuses_is_refused_with_the_calls_status() -> None:
    recorder = Recorder(
        httpx.Response(409, json={"code": "conflict", "message": "call ended"}),
        httpx.Response(200, json={"id": "call-1", "status": "completed"}),
    )
    bird = calls_for(recorder)
    sent = await bird.perform("call-1", actions.Answer(), notification_url="https://ivr.test/wh")
    await bird.aclose()
    assert isinstance(sent, Refused)
    assert "call ended" in sent.reason
    assert (sent.call_ended, sent.call_status) == (True, "completed")


async def test_a_refusal_on_a_live_call_says_the_call_has_not_ended() -> None:
    recorder = Recorder(
        httpx.Response(422, json={"code": "invalid_state", "message": "not now"}),
        httpx.Response(200, json={"id": "call-1", "status": "ongoing"}),
    )
    sent = await calls_for(recorder).perform("call-1", SAY, notification_url="https://x/y")
    assert isinstance(sent, Refused)
    assert (sent.call_ended, sent.call_status) == (False, "ongoing")


async def read_timeout_then(*answers: httpx.Response) -> tuple[Recorder, httpx.MockTransport]:
    """A Bird whose first answer never comes (a read timeout), then ``answers``."""
    recorder = Recorder(*answers)
    first = True

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal first
        if first:
            first = False
            recorder.requests.append(request)
            raise httpx.ReadTimeout("slow", request=request)
        return recorder(request)

    return recorder, httpx.MockTransport(handler)


SAY = actions.Speak(actions.Say("Hello."))
GATHER = actions.Gather(actions.Say("Press 1."), max_digits=1, timeout_s=5)
BRIDGE = actions.Bridge("+31201234567", None, 20)


@pytest.mark.parametrize(
    ("action", "status", "expected"),
    [
        pytest.param(actions.Answer(), "ongoing", CommandReceipt(None, already_done=True),
                     id="answer-done"),
        pytest.param(actions.Answer(), "ringing", NotPerformed("x"), id="answer-not-done"),
        pytest.param(actions.Hangup(), "completed", CommandReceipt(None, already_done=True),
                     id="hangup-done"),
        pytest.param(actions.Hangup(), "ongoing", NotPerformed("x"), id="hangup-not-done"),
    ],
)  # fmt: skip
async def test_an_answer_or_hangup_without_answer_is_settled_by_reading_the_call(
    action: actions.Answer | actions.Hangup, status: str, expected: object
) -> None:
    recorder, transport = await read_timeout_then(
        httpx.Response(200, json={"id": "call-1", "status": status})
    )
    bird = channel_calls(transport)
    sent = await bird.perform("call-1", action, notification_url="https://x/y")
    await bird.aclose()
    if isinstance(expected, NotPerformed):
        assert isinstance(sent, NotPerformed)
    else:
        assert sent == expected
    assert [r.method for r in recorder.requests] == ["POST", "GET"]


async def test_an_answer_without_answer_on_a_call_that_is_gone_is_refused() -> None:
    _, transport = await read_timeout_then(
        httpx.Response(200, json={"id": "call-1", "status": "no-answer"})
    )
    sent = await channel_calls(transport).perform("c", actions.Answer(), notification_url="x")
    assert isinstance(sent, Refused)
    assert sent.call_ended


@pytest.mark.parametrize("action", [SAY, GATHER, BRIDGE], ids=["say", "gather", "bridge"])
async def test_a_prompt_or_bridge_without_answer_is_unsure(action: BirdAction) -> None:
    recorder, transport = await read_timeout_then()
    sent = await channel_calls(transport).perform("call-1", action, notification_url="x")
    assert isinstance(sent, Unsure)
    assert len(recorder.requests) == 1  # not sent again, and the call is not read


async def test_after_a_5xx_a_prompt_was_not_performed_but_a_bridge_may_have_been() -> None:
    boom = httpx.Response(502, json={"code": "bad_gateway", "message": "upstream"})
    prompt = await calls_for(Recorder(boom)).perform("c", SAY, notification_url="x")
    assert isinstance(prompt, NotPerformed)
    boom = httpx.Response(502, json={"code": "bad_gateway", "message": "upstream"})
    bridge = await calls_for(Recorder(boom)).perform("c", BRIDGE, notification_url="x")
    assert isinstance(bridge, Unsure)


async def test_rate_limited_until_the_quick_retries_are_spent_is_not_performed() -> None:
    limited = [httpx.Response(429, json={"code": "rate", "message": "slow"}) for _ in range(3)]
    sent = await calls_for(Recorder(*limited)).perform("c", BRIDGE, notification_url="x")
    assert isinstance(sent, NotPerformed)
    assert sent.rate_limited


async def test_create_call_sends_a_valid_request_and_returns_birds_call_id() -> None:
    recorder = Recorder(httpx.Response(202, json={"id": "call-9", "status": "scheduled"}))
    bird = calls_for(recorder)
    call_id = await bird.create_call(
        to="+31612345678",
        from_="+31970102030",
        notification_url="https://ivr.example.com/webhooks/bird?ref=abc",
        scheduled_for="2026-11-24T09:00:00+00:00",
    )
    await bird.aclose()
    assert call_id == "call-9"
    ((operation, body),) = recorder.bodies
    assert operation == "createCall"
    assert schemas.problems(operation, body) == []
    assert body == {
        "to": "+31612345678",
        "from": "+31970102030",
        "notification": {"url": "https://ivr.example.com/webhooks/bird?ref=abc"},
        "scheduledFor": "2026-11-24T09:00:00+00:00",
    }


async def test_create_call_leaves_out_what_is_not_set() -> None:
    recorder = Recorder(httpx.Response(202, json={"id": "call-10"}))
    bird = calls_for(recorder)
    call_id = await bird.create_call(
        to="sip:someone@example.com", from_=None, notification_url="https://x/y", scheduled_for=None
    )
    await bird.aclose()
    assert call_id == "call-10"
    ((operation, body),) = recorder.bodies
    assert schemas.problems(operation, body) == []
    assert body == {"to": "sip:someone@example.com", "notification": {"url": "https://x/y"}}


@pytest.mark.parametrize("status", ["completed", "no-answer", "busy", "failed", "cancelled"])
async def test_a_call_in_a_final_status_has_ended(status: str) -> None:
    recorder = Recorder(httpx.Response(200, json={"id": "call-1", "status": status}))
    bird = calls_for(recorder)
    found = await bird.call_status("call-1")
    await bird.aclose()
    assert found == CallStatus(status)
    assert found is not None
    assert found.ended
    assert recorder.requests[0].method == "GET"
    assert recorder.requests[0].url.path == f"{CALLS}/call-1"


@pytest.mark.parametrize("status", ["starting", "ringing", "ongoing", "scheduled"])
async def test_a_live_call_has_not_ended(status: str) -> None:
    recorder = Recorder(httpx.Response(200, json={"id": "call-1", "status": status}))
    bird = calls_for(recorder)
    found = await bird.call_status("call-1")
    await bird.aclose()
    assert found is not None
    assert not found.ended


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(httpx.Response(404, json={"code": "not_found", "message": "no"}), id="404"),
        pytest.param(httpx.Response(401, json={"code": "auth", "message": "no"}), id="401"),
    ],
)
async def test_the_status_is_unknown_when_bird_cannot_be_asked(answer: httpx.Response) -> None:
    bird = calls_for(Recorder(answer))
    assert await bird.call_status("call-1") is None
    await bird.aclose()


async def test_the_status_is_unknown_when_bird_does_not_answer() -> None:
    def read_timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    bird = channel_calls(httpx.MockTransport(read_timeout))
    assert await bird.call_status("call-1") is None
    await bird.aclose()


async def test_for_channel_reaches_the_channels_calls_with_the_access_key() -> None:
    recorder = Recorder()
    bird = channel_calls(httpx.MockTransport(recorder))
    receipt = await bird.perform("call-1", actions.Hangup(), notification_url="https://x/y")
    await bird.aclose()
    assert receipt == CommandReceipt("cmd-1")
    (request,) = recorder.requests
    assert request.url.path == f"{CALLS}/call-1/hangup"
    assert request.headers["authorization"] == "AccessKey key-1"  # the recorder checks it too
