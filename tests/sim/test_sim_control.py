"""The simulator driven by hand: its control endpoint (``/sim``), ``ivr call``, scripts that
do not fit the call, scripted callees of outbound calls, and a pinned clock."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import signal
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from service.sim import call_cli
from service.sim import cli as sim_cli
from service.sim.transcript import ORIGIN_CONTROL, ORIGIN_OUTBOUND
from tests.paths import IVR as IVR_COMMAND
from tests.paths import ROOT
from tests.sim.harness import (
    ACCESS_KEY,
    CALLER,
    CHANNEL,
    IVR,
    KEY_VARIABLES,
    SIGNING_KEY,
    WAIT_S,
    WORKSPACE,
    MakePeer,
    Peer,
    Reaction,
    Received,
    Receiver,
    assert_one_line_error,
    channel_client,
    free_port,
    script,
    set_keys,
    set_real_keys,
)

CALLEE = "+31611111111"
PINNED = datetime(2026, 12, 1, 10, 0, tzinfo=ZoneInfo("Europe/Amsterdam"))


def tiny_ivr(http: httpx.AsyncClient) -> Reaction:
    """A tiny service on Bird's API (``http``: a client of a channel's calls): answer an
    inbound call (an outbound one once the callee answers), ask for one key, read it back,
    hang up. Agents' legs are left alone."""

    async def react(item: Received) -> None:
        command = item.command or {}
        call = f"/{item.call_id}"
        if "parentId" in item.call:
            return
        incoming = item.call["direction"] == "incoming"
        if item.status == "ringing" and not command and incoming:
            await http.post(f"{call}/answer")
        elif command.get("command") == "answer" or (
            item.status == "ongoing" and not command and not incoming
        ):
            await http.post(
                f"{call}/gather", json={"maxNumKeys": 1, "say": {"text": "Press a key."}}
            )
        elif command.get("command") == "gather":
            keys = command["result"]["keys"] or "nothing"
            await http.post(f"{call}/say", json={"text": f"You pressed {keys}."})
        elif command.get("command") == "say":
            await http.post(f"{call}/hangup")

    return react


def root_url(peer: Peer) -> str:
    """Where the peer's simulator listens (``http://127.0.0.1:PORT``)."""
    return str(peer.http.base_url).split("/workspaces/")[0]


@contextlib.asynccontextmanager
async def control(peer: Peer) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the simulator's root, without Bird's access key."""
    async with httpx.AsyncClient(base_url=root_url(peer), trust_env=False) as http:
        yield http


async def follow(http: httpx.AsyncClient, path: str) -> list[dict[str, Any]]:
    """Every line of ``GET path?follow=1``, until the simulator ends the stream."""
    lines: list[dict[str, Any]] = []
    async with asyncio.timeout(WAIT_S), http.stream("GET", path, params={"follow": "1"}) as got:
        assert got.status_code == 200
        assert got.headers["content-type"].startswith("application/x-ndjson")
        async for line in got.aiter_lines():
            if line.strip():
                lines.append(json.loads(line))
    return lines


# ------------------------------------------------------------------ control endpoint


async def test_a_call_placed_on_the_control_endpoint_is_followed_until_it_ends(
    peer: Peer,
) -> None:
    peer.receiver.react = tiny_ivr(peer.http)
    async with control(peer) as http:
        placed = await http.post("/sim/calls", json={"from": CALLER, "to": IVR, "keys": "4"})
        assert placed.status_code == 201, placed.text
        call_id = placed.json()["id"]
        assert placed.json()["transcript"] == f"/sim/calls/{call_id}/transcript"
        lines = await follow(http, placed.json()["transcript"])
        later = await http.get(f"/sim/calls/{call_id}")
        listed = await http.get("/sim/calls")

    assert lines[0] == {"event": "call", "callId": call_id, "script": "ivr call 1",
                        "from": CALLER, "to": IVR, "startedAt": None,
                        "origin": ORIGIN_CONTROL}  # fmt: skip
    entries = [(line["kind"], line["text"]) for line in lines if line["event"] == "entry"]
    assert ("pressed", "4") in entries
    assert ("heard", "You pressed 4.") in entries
    assert entries[-1] == ("ended", "completed (hangupSource: api)")
    assert lines[-1]["event"] == "ended"
    final = lines[-1]["transcript"]
    assert (final["ended"], final["fits"], final["misfits"]) == (True, True, [])
    assert [(e["kind"], e["text"]) for e in final["entries"]] == entries  # all, in order
    assert later.json() == {**final, "settled": True}
    assert listed.json()["calls"] == [
        {"id": call_id, "origin": ORIGIN_CONTROL, "script": "ivr call 1", "from": CALLER,
         "to": IVR, "ended": True, "settled": True}
    ]  # fmt: skip
    # The control requests are not Bird's: only the service's requests were recorded.
    assert peer.sim.requests
    assert all(r.path.startswith(f"/workspaces/{WORKSPACE}/") for r in peer.sim.requests)
    assert all(r.accepted for r in peer.sim.requests)


async def test_the_control_endpoint_refuses_bad_calls_and_bird_s_routes_stay_strict(
    peer: Peer,
) -> None:
    async with control(peer) as http:
        refusals = [
            await http.post("/sim/calls", json={"from": CALLER}),
            await http.post("/sim/calls", json={"from": CALLER, "to": IVR, "keys": "1,x"}),
            await http.post("/sim/calls", json={"from": CALLER, "to": IVR, "press": "1"}),
            await http.post("/sim/calls", json=["not", "an", "object"]),
            await http.post("/sim/calls", content=b"{"),
            await http.get("/sim/calls/no-such-call/transcript"),
            await http.put(f"/sim/callees/{CALLEE}", json={"answer": "maybe"}),
        ]
        # Bird's own routes are as strict as ever: no access key, no call.
        calls = f"/workspaces/{WORKSPACE}/channels/{CHANNEL}/calls"
        bird = await http.post(calls, json={"to": CALLEE})
    assert [(r.status_code, r.json()["error"]) for r in refusals] == [
        (422, "to is required: a number (+31612345678) or a sip: URI"),
        (422, "script input 'x' is not keys (0-9, *, #), say:TEXT, '_' or 'hangup'"),
        (422, "unknown fields: press (known: from, hangup_after_s, keys, name, to, voicemail_s)"),
        (422, "the body must be a JSON object"),
        (400, "the body is not valid JSON: Expecting property name enclosed in double quotes: "
              "line 1 column 2 (char 1)"),
        (404, "no call no-such-call on this simulator"),
        (422, f"callee {CALLEE}: behavior 'maybe' is not one of answer, no-answer, busy, failed"),
    ]  # fmt: skip
    assert bird.status_code == 401
    assert peer.sim.calls == {}
    assert [(r.path, r.status) for r in peer.sim.requests] == [(calls, 401)]


async def test_a_callee_scripted_on_the_control_endpoint_answers_and_presses_its_keys(
    peer: Peer,
) -> None:
    """An outbound call (Bird's create call) keeps a transcript like an inbound one; its
    callee follows the script given on the control endpoint. An unscripted callee stays
    silent, as before, and is not held to a script."""
    peer.receiver.react = tiny_ivr(peer.http)
    async with control(peer) as http:
        scripted = await http.put(
            f"/sim/callees/{CALLEE}", json={"answer": "answer:1", "keys": ["7"]}
        )
        assert scripted.json() == {
            "number": CALLEE, "answer": "answer:1", "keys": ["7"], "hangup_after_s": None,
            "machine": None,
        }  # fmt: skip
        created = await peer.http.post(peer.calls_url, json={"to": CALLEE, "from": IVR})
        assert created.status_code == 202, created.text
        lines = await follow(http, f"/sim/calls/{created.json()['id']}/transcript")
        other = await peer.http.post(peer.calls_url, json={"to": "+31622222222", "from": IVR})
        unscripted = await peer.sim.wait_ended(other.json()["id"], WAIT_S)

    assert lines[0]["origin"] == ORIGIN_OUTBOUND
    assert (lines[0]["from"], lines[0]["to"]) == (IVR, CALLEE)
    final = lines[-1]["transcript"]
    assert [e["text"] for e in final["entries"] if e["kind"] == "pressed"] == ["7"]
    assert "You pressed 7." in [e["text"] for e in final["entries"]]
    assert (final["script"], final["scripted"], final["fits"]) == ("scripted callee", True, True)
    assert unscripted.texts("heard")[-1] == "You pressed nothing."
    assert (unscripted.scripted, unscripted.ran_out, unscripted.fits) == (
        False, ["Press a key."], True,
    )  # fmt: skip


# ------------------------------------------------------------ scripts that do not fit


async def test_keys_left_over_and_gathers_without_keys_are_misfits(peer: Peer) -> None:
    peer.receiver.react = tiny_ivr(peer.http)
    leftover = await peer.sim.place_inbound_call(script("4", "5"))
    short = await peer.sim.place_inbound_call(script())
    silent = await peer.sim.place_inbound_call(script("_"))
    left, ran_out, fit = await peer.sim.wait_all_ended([leftover, short, silent], WAIT_S)

    assert left.unused == ("5",)
    assert left.misfits() == ["input left over when the call ended: 5"]
    assert ran_out.ran_out == ["Press a key."]
    assert ran_out.misfits() == [
        'no input left in the script for the gather after "Press a key." (silence instead)'
    ]
    assert "pressed nothing within 5 s (no input left in the script)" in ran_out.texts("silence")
    assert "does not fit" not in ran_out.render()  # what happened; whether it fit: fit=True
    assert ran_out.render(fit=True).splitlines()[-1] == (
        '  script does not fit: no input left in the script for the gather after "Press a '
        'key." (silence instead)'
    )
    assert fit.texts("silence") == ["pressed nothing within 5 s"]  # a silence it asked for
    assert (fit.fits, fit.to_dict()["misfits"]) == (True, [])


async def test_ivr_sim_exits_1_when_a_call_s_script_does_not_fit(
    receiver: Receiver, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    async with channel_client(port) as http:
        receiver.react = tiny_ivr(http)
        set_real_keys(monkeypatch)
        args = _sim_args(
            "--port", str(port), "--webhook-url", f"{receiver.base_url}/webhooks/bird",
            "--call", f"{CALLER}>{IVR}:4,5", "--call", f"{CALLER}>{IVR}",
            "--call", f"{CALLER}>{IVR}:_", "--exit-after-calls", "--call-timeout", "20",
        )  # fmt: skip
        status = await sim_cli.run(args)

    captured = capsys.readouterr()
    assert status == 1, captured.err
    assert [line for line in captured.err.splitlines() if "does not fit" in line] == [
        f"ivr sim: call 1 ({CALLER} -> {IVR}): the script does not fit the call: input left "
        "over when the call ended: 5",
        f"ivr sim: call 2 ({CALLER} -> {IVR}): the script does not fit the call: no input "
        'left in the script for the gather after "Press a key." (silence instead)',
    ]
    assert "  script does not fit: input left over when the call ended: 5" in captured.out
    assert captured.out.count("script does not fit") == 2  # not the third call's


# ------------------------------------------------------------------------ ivr call


def _call_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    call_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def _sim_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sim_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


async def test_ivr_call_prints_the_transcript_as_it_happens_and_exits_by_the_fit(
    peer: Peer, capsys: pytest.CaptureFixture[str]
) -> None:
    peer.receiver.react = tiny_ivr(peer.http)
    sim = root_url(peer)
    out = io.StringIO()
    argv = ("--sim", sim, "--from", CALLER, "--to", IVR)
    assert await call_cli.run(_call_args(*argv, "--keys", "4"), out) == 0
    (call_id,) = peer.sim.calls
    transcript = peer.sim.transcript(call_id)
    # Printed line by line as it happened: as the simulator renders it.
    assert out.getvalue() == transcript.render(fit=True) + "\n"
    assert "s  pressed   4\n" in out.getvalue()
    assert capsys.readouterr().err == ""

    out = io.StringIO()
    assert await call_cli.run(_call_args(*argv, "--keys", "4,5", "--json"), out) == 1
    printed = json.loads(out.getvalue())
    assert (printed["fits"], printed["unusedInputs"]) == (False, ["5"])
    assert capsys.readouterr().err == (
        "ivr call: the script does not fit the call: input left over when the call ended: 5\n"
    )


async def test_ivr_call_scripts_a_callee_and_follows_an_outbound_call(
    peer: Peer, capsys: pytest.CaptureFixture[str]
) -> None:
    peer.receiver.react = tiny_ivr(peer.http)
    sim = root_url(peer)
    out = io.StringIO()
    assert await call_cli.run(_call_args("--sim", sim, "--callee", f"{CALLEE}=keys:7"), out) == 0
    assert out.getvalue() == ""
    assert capsys.readouterr().err == f"ivr call: callee {CALLEE} scripted\n"
    created = await peer.http.post(peer.calls_url, json={"to": CALLEE, "from": IVR})
    assert await call_cli.run(_call_args("--sim", sim, "--follow", created.json()["id"]), out) == 0
    assert "(scripted callee)" in out.getvalue().splitlines()[0]
    assert "s  pressed   7\n" in out.getvalue()
    assert "You pressed 7." in out.getvalue()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "--from and --to are required (or --follow CALL_ID, or --callee)"),
        (("--from", CALLER), "--from and --to go together"),
        (("--from", CALLER, "--to", IVR, "--keys", "1,x"), "script input 'x' is not keys"),
        (("--follow", "abc", "--keys", "1"), "--follow takes no --from, --to or --keys"),
        (("--callee", f"{CALLEE}=maybe"), "behavior 'maybe' is not one of"),
        (("--from", CALLER, "--to", IVR, "--timeout", "0"), "--timeout must be > 0"),
        (("--sim", "127.0.0.1:8089", "--from", CALLER, "--to", IVR), "--sim must be an http(s)"),
    ],
)
async def test_ivr_call_reports_a_bad_argument_in_one_line(
    argv: tuple[str, ...], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await call_cli.run(_call_args(*argv)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("ivr call: error: ")
    assert message in line


async def test_ivr_call_without_a_simulator_says_where_it_looked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sim = f"http://127.0.0.1:{free_port()}"
    assert await call_cli.run(_call_args("--sim", sim, "--from", CALLER, "--to", IVR)) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"ivr call: error: cannot reach the simulator at {sim}: ")
    assert line.endswith("(is ivr sim running there? see --sim)")


# ---------------------------------------------------------------------- pinned clock


async def test_a_pinned_simulator_times_its_calls_from_that_moment(make_peer: MakePeer) -> None:
    peer = await make_peer(at=PINNED)
    peer.receiver.react = tiny_ivr(peer.http)
    call_id = await peer.sim.place_inbound_call(script("4"))
    transcript = await peer.sim.wait_ended(call_id, WAIT_S)
    assert transcript.started_at is not None
    assert PINNED <= transcript.started_at < PINNED + timedelta(seconds=WAIT_S)
    assert transcript.started_at.utcoffset() == timedelta(hours=1)
    assert (
        transcript.render()
        .splitlines()[0]
        .endswith(
            f"{CALLER} -> {IVR}, at 2026-12-01T10:00:0{transcript.started_at.second}+01:00 "
            "(pinned clock)"
        )
    )
    # Bird's timestamps stay real: the service checks their age.
    created = peer.sim.calls[call_id].created_at
    assert abs((created - datetime.now(created.tzinfo)).total_seconds()) < WAIT_S


def test_ivr_sim_at_pins_the_simulator_s_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    set_keys(monkeypatch)
    settings = sim_cli._settings(
        _sim_args("--webhook-url", "http://x/h", "--at", "2026-12-01T10:00+01:00")
    )
    assert settings.at == PINNED
    assert sim_cli._settings(_sim_args("--webhook-url", "http://x/h")).at is None
    parser = argparse.ArgumentParser(prog="ivr sim")
    sim_cli.add_arguments(parser)
    shown = " ".join(parser.format_help().split())
    assert "--at MOMENT pin the simulator's clock to MOMENT" in shown
    assert "start ivr serve with IVR_CLOCK set to the same moment" in shown
    assert "POST /sim/calls" in shown


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--at", "tomorrow"), "--at is not an ISO-8601 date-time"),
        (("--at", "2026-12-01T10:00"), "--at needs a UTC offset (e.g. 2026-12-01T10:00+01:00)"),
        (("--callee", "+316=keys:x"), "callee '+316=keys:x': script input 'x' is not keys"),
        (("--callee", "+316"), "callee '+316' is not NUMBER="),
    ],
)
async def test_ivr_sim_reports_a_bad_clock_or_callee_in_one_line(
    argv: tuple[str, ...],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_keys(monkeypatch)
    assert await sim_cli.run(_sim_args("--webhook-url", "http://x/h", *argv)) == 2
    assert_one_line_error(capsys, message)


# --------------------------------------------------------------- ivr sim, running


async def _line_with(stream: asyncio.StreamReader, text: str, seen: list[str]) -> str:
    """Read ``stream`` up to the first line containing ``text`` (kept in ``seen``)."""
    async with asyncio.timeout(30):
        while True:
            line = (await stream.readline()).decode()
            assert line, f"ivr sim ended before printing {text!r}; it printed {seen}"
            seen.append(line.rstrip("\n"))
            if text in line:
                return line


async def test_a_running_ivr_sim_scripts_callees_and_prints_outbound_and_control_calls(
    receiver: Receiver,
) -> None:
    """``ivr sim --callee ... --at ...`` as a process: the service's outbound call and a
    call placed on the control endpoint are printed when they end, the callee pressing
    what ``--callee`` says, each stamped with the pinned clock."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in KEY_VARIABLES}
    env.update(zip(KEY_VARIABLES, (SIGNING_KEY, ACCESS_KEY, WORKSPACE, CHANNEL), strict=True))
    process = await asyncio.create_subprocess_exec(
        *IVR_COMMAND, "sim", "--port", str(port),
        "--webhook-url", f"{receiver.base_url}/webhooks/bird",
        "--callee", f"{CALLEE}=answer:1;keys:7", "--at", "2026-12-01T10:00+01:00",
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    assert process.stderr is not None
    errors: list[str] = []
    printed: list[str] = []
    try:
        await _line_with(process.stderr, "clock pinned:", errors)
        async with channel_client(port) as http:
            receiver.react = tiny_ivr(http)
            calls = f"http://127.0.0.1:{port}/workspaces/{WORKSPACE}/channels/{CHANNEL}/calls"
            created = await http.post(calls, json={"to": CALLEE, "from": IVR})
            assert created.status_code == 202, created.text
            await _line_with(process.stdout, "You pressed 7.", printed)
            await _line_with(process.stdout, "ended", printed)
            placed = await http.post(
                f"http://127.0.0.1:{port}/sim/calls", json={"from": CALLER, "to": IVR, "keys": "4"}
            )
            assert placed.status_code == 201, placed.text
            await _line_with(process.stdout, "You pressed 4.", printed)
            await _line_with(process.stdout, "ended", printed)
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            rest, tail = await process.communicate()
    assert process.returncode == 0, tail.decode()
    assert errors[1] == (
        f"control: http://127.0.0.1:{port}/sim/calls (ivr call --sim http://127.0.0.1:{port} "
        "--from NUMBER --to NUMBER --keys 1,_,2)"
    )
    assert errors[2].startswith(
        "clock pinned: the simulator's clock starts at 2026-12-01T10:00:00+01:00"
    )
    assert "IVR_CLOCK=2026-12-01T10:00:00+01:00" in errors[2]
    titles = [line for line in printed if line.startswith("Call ")]
    assert titles[0].startswith(
        f"Call {created.json()['id']} (scripted callee): {IVR} -> {CALLEE}, at 2026-12-01T10:00"
    )
    assert titles[1].startswith(
        f"Call {placed.json()['id']} (ivr call 1): {CALLER} -> {IVR}, at 2026-12-01T10:00"
    )
    assert any(line.endswith("pressed   7") for line in printed)
    assert "script does not fit" not in "\n".join(printed) + rest.decode()
