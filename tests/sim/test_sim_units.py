"""The simulator's small parts: scripts, call specs, transcripts, CLI argument errors."""

from __future__ import annotations

import argparse
import io
import json
import re

import pytest

from service.runtime.style import Style
from service.sim import HANGUP, SILENCE, AgentScript, CallerScript, Offer, Transcript
from service.sim import cli as sim_cli
from service.sim.engine import plan_prompt, playback_seconds, say_seconds
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
    with pytest.raises(ValueError, match="talk_s"):
        AgentScript(talk_s=float("nan"))
    with pytest.raises(ValueError, match="answer_after_s"):
        AgentScript(answer_after_s=-1)


def test_agent_script_sequence_scripts_successive_offers_and_the_last_repeats() -> None:
    missed, answers = AgentScript("no-answer"), AgentScript("answer", 1.0, 30.0)
    agent = AgentScript.sequence(missed, answers)
    assert agent.behavior == "no-answer"
    assert agent.then == (answers,)
    assert agent.offers == (missed, answers)
    assert [agent.for_offer(i).behavior for i in range(4)] == [
        "no-answer",
        "answer",
        "answer",
        "answer",
    ]
    assert agent.for_offer(1) == answers
    plain = AgentScript("busy")
    assert [plain.for_offer(i) for i in range(3)] == [plain] * 3
    with pytest.raises(ValueError, match="own then"):
        AgentScript(then=(agent,))


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
    assert parse_agent_spec("+3120=busy:3")[1] == AgentScript("busy", 3.0)  # an old form
    assert parse_agent_spec("+3120=answer:3:60")[1] == AgentScript("answer", 3.0, 60.0)
    assert parse_agent_spec("+3120=answer::60")[1] == AgentScript("answer", 2.0, 60.0)
    assert parse_agent_spec("+3120=answer:1:inf")[1].talk_s == float("inf")
    sequence = parse_agent_spec("+3120 = no-answer, answer:2:30")
    assert sequence == (
        "+3120",
        AgentScript.sequence(AgentScript("no-answer"), AgentScript("answer", 2.0, 30.0)),
    )
    sip = parse_agent_spec("sip:desk@example.com;transport=tls=failed")
    assert sip == ("sip:desk@example.com;transport=tls", AgentScript("failed"))
    for bad in ("+3120", "+3120=", "+3120=voicemail", "+3120=answer:soon", "=answer"):
        with pytest.raises(ValueError, match="agent"):
            parse_agent_spec(bad)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("+3120", "is not NUMBER=BEHAVIOR[:ANSWER_AFTER_S[:TALK_S]][,BEHAVIOR[:...]]..."),
        ("+3120=maybe", "behavior 'maybe' is not one of answer, no-answer, busy, failed"),
        ("+3120=answer:soon", "answer_after_s 'soon' is not a number of seconds"),
        ("+3120=answer:1:long", "talk_s 'long' is not a number of seconds"),
        ("+3120=answer:1:2:3", "too many ':' fields (behavior[:answer_after_s[:talk_s]])"),
        ("+3120=answer:-1", "answer_after_s must be a number of seconds >= 0, got -1.0"),
        ("+3120=answer:nan", "answer_after_s must be a number of seconds >= 0, got nan"),
        ("+3120=no-answer,,answer", "offer 2 (''): no behavior"),
        ("+3120=no-answer,answer:x", "offer 2 ('answer:x'): answer_after_s 'x' is not"),
    ],
)
def test_parse_agent_spec_says_what_is_wrong_in_one_line(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"agent {spec!r}")) as raised:
        parse_agent_spec(spec)
    text = str(raised.value)
    assert "\n" not in text
    assert text.startswith(f"agent {spec!r}")
    assert message in text


def test_prompts_play_loop_times_up_to_their_timeout() -> None:
    text = "x" * 50  # 3 s a play
    assert say_seconds({"text": text}) == pytest.approx(3.0)
    assert say_seconds({"text": text, "loop": 3}) == pytest.approx(9.0)
    assert say_seconds({"text": text, "loop": 3, "timeout": 4}) == pytest.approx(4.0)
    assert say_seconds({"text": "hi"}) == 0.5  # the shortest prompt
    assert playback_seconds({"media": ["a.wav", "b.wav"], "loop": 2}) == 8.0
    assert playback_seconds({"media": None}) == 0.0
    plan = plan_prompt("playback", {"media": ["a.wav"], "loop": 10, "timeout": 5})
    assert (plan.plays, plan.full_s, plan.seconds, plan.stopped_by_timeout) == (10, 20, 5, True)
    # No infinite loop: a loop below 1 plays once; a timeout of 0 or less is no limit.
    for loop in (0, -1, 1, True):
        assert plan_prompt("say", {"text": text, "loop": loop}).plays == 1
    long = plan_prompt("say", {"text": text, "loop": 2, "timeout": 0})
    assert (long.timeout_s, long.seconds, long.stopped_by_timeout) == (None, 6.0, False)
    assert not plan_prompt("say", {"text": text, "timeout": 30}).stopped_by_timeout


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
    assert data["offers"] == []
    assert transcript.texts("heard") == ["Welcome."]


def test_a_transcript_is_coloured_for_a_terminal_only() -> None:
    transcript = Transcript("c-3", "menu", "+316", "+3197")
    transcript.add(0.5, "heard", "Welcome.")
    transcript.add(3.25, "pressed", "1")
    transcript.add(9.0, "reached", "+3120")
    coloured = transcript.render(paint=Style(io.StringIO(), colour=True).paint).splitlines()
    assert coloured[0] == "\x1b[1mCall c-3 (menu): +316 -> +3197\x1b[0m"
    assert coloured[1] == "      0.5s  heard     Welcome."  # what the caller heard: plain
    assert coloured[2] == "\x1b[1m      3.2s  pressed   1\x1b[0m"
    assert coloured[3] == "\x1b[32m      9.0s  reached   +3120\x1b[0m"
    assert coloured[4] == "\x1b[33m  (still in progress)\x1b[0m"
    piped = transcript.render(paint=Style(io.StringIO()).paint)  # not a terminal
    assert "\x1b" not in piped
    assert piped == transcript.render()


def test_transcript_shows_each_offer_to_an_agent() -> None:
    transcript = Transcript("c-2", "queue", "+316", "+3197")
    transcript.add(1.0, "transferring", "to +3120 (rings up to 20 s)")
    transcript.add(21.0, "no-answer", "+3120 did not answer within 20 s")
    transcript.add(21.5, "transferring", "to +3121 (rings up to 20 s)")
    transcript.add(23.0, "reached", "+3121")
    transcript.add(25.0, "caller-hung-up", "the caller hung up after 24 s")
    transcript.offers += [
        Offer(1.0, "+3120", "leg-1", outcome="missed"),
        Offer(21.5, "+3121", "leg-2", offer_number=3, outcome="answered", ended_by="caller"),
        Offer(21.6, "+3122", "leg-3", outcome="ringing", left_ringing=True),
    ]
    transcript.ended = True
    lines = transcript.render().splitlines()
    assert lines[1:4] == [
        "      1.0s  transfer  to +3120 (rings up to 20 s)",
        "     21.0s  agent     +3120 did not answer within 20 s",
        "     21.5s  transfer  to +3121 (rings up to 20 s)",
    ]
    assert lines[-1] == (
        "  offers: +3120 missed; +3121 answered (ended by caller); "
        "+3122 ringing (left ringing after the caller hung up)"
    )
    assert transcript.offer_outcomes() == [
        ("+3120", "missed"),
        ("+3121", "answered"),
        ("+3122", "ringing"),
    ]
    data = transcript.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["offers"][1] == {
        "at": 21.5,
        "agent": "+3121",
        "legId": "leg-2",
        "offerNumber": 3,
        "outcome": "answered",
        "leftRinging": False,
        "endedBy": "caller",
        "record": False,
    }


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
        (("--webhook-url", "http://x/h", "--agent", "+3120=answer:1:2:3"), "too many ':'"),
        (("--webhook-url", "http://x/h", "--agent", "+3120=busy,"), "offer 2 (''): no behavior"),
        (("--webhook-url", "http://x/h", "--call-every", "-1"), "--call-every must be >= 0"),
        (("--webhook-url", "http://x/h", "--call-every", "soon"), "--call-every must be a number"),
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


def test_cli_options_reach_the_simulator_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    set_keys(monkeypatch)
    defaults = sim_cli._settings(_args("--webhook-url", "http://x/h"))
    assert (defaults.interrupting_commands, defaults.leave_ringing_legs) == (False, True)
    assert defaults.call_every_s is None
    argv = ("--webhook-url", "http://x/h", "--interrupting-commands", "--end-ringing-legs")
    chosen = sim_cli._settings(_args(*argv, "--call-every", "0.5", "--agent", "+3120=busy,answer"))
    assert (chosen.interrupting_commands, chosen.leave_ringing_legs) == (True, False)
    assert chosen.call_every_s == 0.5
    assert chosen.agents == {"+3120": AgentScript.sequence(AgentScript("busy"), AgentScript())}
    kept = sim_cli._settings(_args("--webhook-url", "http://x/h", "--keep-ringing-legs"))
    assert kept.leave_ringing_legs


def test_cli_ringing_leg_options_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _args("--webhook-url", "http://x/h", "--keep-ringing-legs", "--end-ringing-legs")
    assert "not allowed with argument" in capsys.readouterr().err
