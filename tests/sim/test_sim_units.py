"""The simulator's small parts: scripts, call specs, transcripts, CLI argument errors."""

from __future__ import annotations

import argparse
import json

import pytest

from service.sim import HANGUP, SILENCE, AgentScript, CallerScript, Transcript
from service.sim import cli as sim_cli
from service.sim.scripts import CalleeScript, parse_agent_spec, parse_call_spec
from tests.sim.harness import assert_one_line_error, set_keys


def test_caller_script_accepts_keys_silence_and_hangup() -> None:
    script = CallerScript("s", "+31612345678", "+31970102030", ("12#", SILENCE, "*", HANGUP))
    assert script.inputs == ("12#", "_", "*", "hangup")
    with pytest.raises(ValueError, match="not keys"):
        CallerScript("s", "+316", "+3197", ("1a",))
    with pytest.raises(ValueError, match="hangup_after_s"):
        CallerScript("s", "+316", "+3197", hangup_after_s=-1)
    with pytest.raises(ValueError, match="not keys"):
        CalleeScript(inputs=("",))


def test_agent_script_rejects_unknown_behaviour() -> None:
    with pytest.raises(ValueError, match="behavior"):
        AgentScript(behavior="voicemail")  # type: ignore[arg-type]


def test_parse_call_spec() -> None:
    script = parse_call_spec("+31612345678>+31970102030:9,1", name="one")
    assert (script.name, script.from_number, script.to_number) == (
        "one",
        "+31612345678",
        "+31970102030",
    )
    assert script.inputs == ("9", "1")
    assert parse_call_spec("+316>+3197:_,_,_").inputs == ("_", "_", "_")
    assert parse_call_spec("+316>+3197").inputs == ()
    assert parse_call_spec("+316>+3197:").inputs == ()
    assert parse_call_spec("+316>+3197:1,hangup").inputs == ("1", "hangup")
    sip = parse_call_spec("+316>sip:ivr@example.com:2")
    assert (sip.to_number, sip.inputs) == ("sip:ivr@example.com", ("2",))
    for bad in ("+316", ">+3197", "+316>", "+316>+3197:1,x"):
        with pytest.raises(ValueError, match="call"):
            parse_call_spec(bad)


def test_parse_agent_spec() -> None:
    assert parse_agent_spec("+31201234567=answer") == ("+31201234567", AgentScript())
    number, script = parse_agent_spec("sip:desk@example.com=answer:4.5")
    assert number == "sip:desk@example.com"
    assert (script.behavior, script.answer_after_s) == ("answer", 4.5)
    assert parse_agent_spec("+3120=busy")[1].behavior == "busy"
    for bad in ("+3120", "+3120=", "+3120=voicemail", "+3120=answer:soon", "=answer"):
        with pytest.raises(ValueError, match="agent"):
            parse_agent_spec(bad)


def test_transcript_renders_and_serialises() -> None:
    transcript = Transcript("c-1", "menu", "+316", "+3197")
    transcript.add(0.0, "ringing")
    transcript.add(0.42, "answered")
    transcript.add(0.5, "heard", "Welcome.")
    transcript.add(3.25, "pressed", "1")
    assert transcript.render().splitlines() == [
        "Call c-1 (menu): +316 -> +3197",
        "      0.0s  ringing",
        "      0.4s  answered",
        "      0.5s  heard     Welcome.",
        "      3.2s  pressed   1",
        "  (still in progress)",
    ]
    transcript.ended, transcript.final_status = True, "completed"
    data = transcript.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["entries"][2] == {"at": 0.5, "kind": "heard", "text": "Welcome."}
    assert data["finalStatus"] == "completed"
    assert transcript.texts("heard") == ["Welcome."]


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sim_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "--webhook-url is required"),
        (("--webhook-url", "ftp://x"), "--webhook-url must be an http(s) URL"),
        (("--webhook-url", "http://x/h"), "--signing-key is required (or set BIRD_SIGNING_KEY)"),
        (("--webhook-url", "http://x/h", "--port", "http"), "--port must be an integer"),
        (("--webhook-url", "http://x/h", "--port", "70000"), "--port must be between"),
        (("--webhook-url", "http://x/h", "--agent", "+3120=maybe"), "is not one of"),
        (("--webhook-url", "http://x/h", "--call", "+316"), "is not FROM>TO"),
        (("--webhook-url", "http://x/h", "--call", "+316>+3197:x"), "not keys"),
    ],
)
async def test_cli_reports_a_bad_argument_in_one_line(
    argv: tuple[str, ...],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_keys(monkeypatch, None)
    assert await sim_cli.run(_args(*argv)) == 2
    assert_one_line_error(capsys, message)


async def test_cli_time_scale_must_be_positive(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    set_keys(monkeypatch)
    assert await sim_cli.run(_args("--webhook-url", "http://x/h", "--time-scale", "0")) == 2
    assert "--time-scale must be > 0" in capsys.readouterr().err
