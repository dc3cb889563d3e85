"""Issue 13 at the Bird boundary: gathers that listen for words, outbound calls that
detect answering machines and carry tags, and what Bird's deliveries say of them
(A13, A14 and our assumption on recorded bridges, docs/bird-contract.md)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from service.bird import schemas
from service.bird.commands import BirdCalls, amd_settings
from service.core import actions, events
from service.core.graph import Amd
from tests.bird.recorder import Recorder, client_for
from tests.bird.test_deliveries import delivery, read

SAY = actions.Say("Billing or support?", locale="en-GB")


async def sent(action: actions.Gather) -> dict[str, Any]:
    recorder = Recorder(httpx.Response(202, json={"id": "cmd-1"}))
    bird = BirdCalls(client_for(recorder))
    await bird.perform("call-1", action, notification_url="https://ivr.test/wh")
    await bird.aclose()
    ((operation, body),) = recorder.bodies
    assert operation == "gather"
    return dict(body)


@pytest.mark.parametrize("mode", ["speech", "dtmf speech"])
async def test_a_gather_that_listens_for_words_is_a_valid_request(mode: str) -> None:
    gather = actions.Gather(SAY, 1, 5, None, mode, "en-GB")  # type: ignore[arg-type]
    body = await sent(gather)
    assert schemas.problems("gather", body) == []
    assert (body["input"], body["speechLocale"]) == (mode, "en-GB")


async def test_a_gather_of_keys_sends_no_speech_locale() -> None:
    body = await sent(actions.Gather(SAY, 1, 5))
    assert body["input"] == "dtmf"
    assert "speechLocale" not in body
    assert schemas.problems("gather", body) == []


def test_birds_schema_refuses_a_speech_locale_it_does_not_offer() -> None:
    body = {"maxNumKeys": 1, "input": "speech", "speechLocale": "nl-NL", "say": {"text": "Hi"}}
    assert schemas.problems("gather", body) != []


async def test_an_outbound_call_asks_for_machine_detection_and_tags() -> None:
    recorder = Recorder(httpx.Response(202, json={"id": "call-9"}))
    bird = BirdCalls(client_for(recorder))
    await bird.create_call(
        to="+31612345678", from_="+31970102030", notification_url="https://ivr.test/wh?ref=r",
        scheduled_for=None, amd=Amd(True, "message", word_count=4, beep_timeout_s=20),
        tags=("appointment-reminder", "december"),
    )  # fmt: skip
    await bird.aclose()
    ((operation, body),) = recorder.bodies
    assert schemas.problems(operation, body) == []
    assert body["amdSettings"] == {
        "enabled": True, "ifMachineNotifyAfter": "beep", "wordCount": 4, "beepTimeout": 20,
    }  # fmt: skip
    assert body["tags"] == ["appointment-reminder", "december"]


def test_no_machine_detection_unless_enabled() -> None:
    assert amd_settings(None) is None
    assert amd_settings(Amd(False, "message")) is None
    assert amd_settings(Amd(True)) == {"enabled": True, "ifMachineNotifyAfter": "beep"}


# -- deliveries ---------------------------------------------------------------------------


def test_a_verdict_wraps_the_deliverys_own_event() -> None:
    verdict = {"result": "machine", "speech": "leave a message", "locale": "en-US"}
    assert read(delivery("ongoing", amdResult=verdict)) == events.AnsweredBy(
        "machine", events.CallAnswered()
    )
    gathered = {"command": "gather", "status": "completed", "result": {"keys": "1"}}
    assert read(delivery("ongoing", command=gathered, amdResult={"result": "human"})) == (
        events.AnsweredBy("human", events.DigitsCollected("1"))
    )


@pytest.mark.parametrize("result", ["notsure", None, 3, ""])
def test_a_verdict_other_than_human_or_machine_is_unknown(result: Any) -> None:
    wrapped = read(delivery("ongoing", amdResult={"result": result}))
    assert wrapped == events.AnsweredBy("unknown", events.CallAnswered())


def test_no_verdict_without_an_amd_result_object() -> None:
    assert read(delivery("ongoing", amdResult="machine")) == events.CallAnswered()
    assert read(delivery("ongoing")) == events.CallAnswered()


def test_what_was_said_comes_with_the_gather() -> None:
    gathered = {"command": "gather", "status": "completed",
                "result": {"keys": "", "speech": "Billing please"}}  # fmt: skip
    assert read(delivery(command=gathered)) == events.DigitsCollected("", speech="Billing please")
    odd = {"command": "gather", "status": "completed", "result": {"speech": 42}}
    assert read(delivery(command=odd)) == events.DigitsCollected("", speech="")


def test_a_recorded_bridge_reports_its_recording() -> None:
    bridged = {"command": "bridge", "status": "completed",
               "result": {"recordingId": "rec-7", "duration": 62}}  # fmt: skip
    assert read(delivery(command=bridged)) == events.ConversationRecorded("rec-7", 62.0)
    plain = {"command": "bridge", "status": "completed", "result": {}}
    assert read(delivery(command=plain)) == events.Progress("bridge completed")
