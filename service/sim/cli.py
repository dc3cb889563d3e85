"""``ivr sim``: run the Bird simulator on loopback, optionally placing scripted calls.

    ivr sim --webhook-url http://127.0.0.1:8080/webhooks/bird \\
        --agent +31201234567=answer:3 --call '+31612345678>+31970102030:1,_' \\
        --exit-after-calls

A chaos run adds ``--faults api_error=0.1,api_slow=0.05,delivery_duplicate=0.5 --seed 7``
(the names: :data:`service.sim.faults.HELP`, shown by ``ivr sim --help``).

A call center: agents that miss their first offer and answer the next ones, busy ones, and
callers placed two simulated seconds apart, all on the line at once::

    ivr sim --webhook-url http://127.0.0.1:8080/webhooks/bird \
        --agent '+31201234567=no-answer,answer:2:30' --agent +31201234568=busy \
        --call '+31612345678>+31970102030:1' --call '+31612345679>+31970102030:1' \
        --call-every 2 --interrupting-commands --end-ringing-legs --exit-after-calls

A running simulator also takes calls from its control endpoint (:mod:`service.sim.control`,
``ivr call``: :mod:`service.sim.call_cli`) and prints their transcripts when they end, and
those of the outbound calls the service places (their callees scripted by ``--callee``,
answering machines among them: ``--callee '+31612345678=machine'``).
A ``--call`` whose script does not fit the call (a gather it had no keys left for, or keys
left over at the end) is reported and makes the exit status 1. ``--at`` pins the
simulator's clock (the moment transcripts say a call was placed); the service's graphs see
a pinned moment only with its own ``IVR_CLOCK``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TextIO

from service.runtime.clock import MOMENT_EXAMPLE, parse_moment
from service.runtime.serving import serve
from service.runtime.style import Style
from service.sim.api import BirdSimulator
from service.sim.faults import HELP as FAULTS_HELP
from service.sim.faults import Faults
from service.sim.scripts import (
    AGENT_SPEC,
    CALLEE_SPEC,
    AgentScript,
    CalleeScript,
    CallerScript,
    parse_agent_spec,
    parse_call_spec,
    parse_callee_spec,
)
from service.sim.transcript import ORIGIN_SCRIPT, Transcript

PROG = "ivr sim"


class _BadArgument(Exception):
    pass


@dataclass(frozen=True)
class _Settings:
    host: str
    port: int
    webhook_url: str
    signing_key: str
    access_key: str
    workspace_id: str
    channel_id: str
    time_scale: float
    call_timeout_s: float
    agents: dict[str, AgentScript]
    calls: list[CallerScript]
    faults: Faults
    call_every_s: float | None = None
    interrupting_commands: bool = False
    leave_ringing_legs: bool = True
    callees: dict[str, CalleeScript] = field(default_factory=dict)
    at: datetime | None = None


CONTROL_HELP = """\
control endpoint (on this port, apart from Bird's routes; `ivr call` uses it):
  POST /sim/calls {"from", "to", "keys": "1,_,2"}        place a call: {"id", "transcript"}
  GET  /sim/calls/ID/transcript?follow=1               its transcript as it happens (NDJSON)
  GET  /sim/calls                                      every call placed so far
  PUT  /sim/callees/NUMBER {"answer", "keys", "machine"}  script the callee of outbound calls
The transcripts of calls placed there and of the service's outbound calls are printed when
they end.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ivr sim`` (validated by :func:`run`, which reports one clear line)."""
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", default="8089", help="port to listen on (8089; 0: any free)")
    parser.add_argument(
        "--webhook-url",
        help="required: the service's webhook URL, where voice.inbound/outbound deliveries go",
    )
    parser.add_argument("--signing-key", help="webhook signing key (default: $BIRD_SIGNING_KEY)")
    parser.add_argument("--access-key", help="expected AccessKey (default: $BIRD_ACCESS_KEY)")
    parser.add_argument("--workspace-id", help="workspace id (default: $BIRD_WORKSPACE_ID)")
    parser.add_argument("--channel-id", help="channel id (default: $BIRD_CHANNEL_ID)")
    parser.add_argument(
        "--time-scale",
        default="0.01",
        help="real seconds per simulated second (0.01: a 5 s prompt takes 50 ms)",
    )
    parser.add_argument(
        "--agent",
        action="append",
        default=[],
        metavar=AGENT_SPEC,
        help="an agent: how its number answers each bridge: answer (after ANSWER_AFTER_S, "
        "default 2, then talks TALK_S, default 5), no-answer, busy or failed; commas give "
        "successive offers, the last repeating: +3120...=no-answer,answer:2:30 (repeatable)",
    )
    parser.add_argument(
        "--call",
        action="append",
        default=[],
        metavar="FROM>TO[:INPUT,...]",
        help="place this inbound call once serving and print its transcript (repeatable; "
        "quote it: > is a shell redirect); an INPUT is the keys pressed at one gather, "
        "say:TEXT for words said to it (heard by a gather whose input has speech; no commas "
        "in TEXT), _ for silence or hangup: '+316...>+3197...:say:billing please,1'. To place "
        "calls on a simulator already running: ivr call --from FROM --to TO --keys INPUT,...",
    )
    parser.add_argument(
        "--callee",
        action="append",
        default=[],
        metavar=CALLEE_SPEC,
        help="what the callee of the service's outbound calls (POST /calls) to NUMBER does: "
        "how they answer each call as for --agent (answer[:ANSWER_AFTER_S], no-answer, busy, "
        "failed; default answer after 2 s), ;keys: what they press (or say:TEXT) at each "
        "gather, ;hangup-after: when they hang up: '+31612345678=answer:3;keys:1,_' "
        "(repeatable). ;machine[:GREETING]: an answering machine takes the calls answered: it "
        "plays GREETING (a default one), beeps (not with ;no-beep), records what is played "
        "after the beep, never presses or says anything and hangs up after 30 s of message; "
        "with the call's amdSettings Bird tells the service (amdResult): "
        "'+31612345678=machine', '+31612345678=answer:4;machine:Sam here, leave a message'. "
        "Unscripted callees answer after 2 s and press nothing",
    )
    parser.add_argument(
        "--at",
        metavar="MOMENT",
        help=f"pin the simulator's clock to MOMENT (ISO-8601 with offset, {MOMENT_EXAMPLE}), "
        "running on from start-up: transcripts say when each call was placed on it. It does "
        "not move the service's clock: start ivr serve with IVR_CLOCK set to the same moment "
        "so that its graphs (hours nodes, templates) see it. Bird's timestamps and webhook "
        "signatures stay on the real clock (the service checks their age)",
    )
    parser.add_argument(
        "--call-every",
        metavar="SECONDS",
        help="place the --call calls this many simulated seconds apart, all on the line at "
        "once (0: together); default: one after the other, each once the previous has ended",
    )
    parser.add_argument(
        "--exit-after-calls",
        action="store_true",
        help="exit once the --call calls have ended: 0 when each ended and its inputs fit the "
        "call, 1 when one did not end or its inputs did not fit (a gather it had none left "
        "for, or inputs left over at the end: both reported)",
    )
    parser.add_argument(
        "--interrupting-commands",
        action="store_true",
        help="a say, playback, gather or bridge posted while a say or playback plays cuts it "
        "short (A7); default: it starts when the prompt ends",
    )
    ringing = parser.add_mutually_exclusive_group()
    ringing.add_argument(
        "--keep-ringing-legs",
        dest="leave_ringing_legs",
        action="store_true",
        default=True,
        help="when a caller hangs up while an agent's leg rings, leave the leg ringing until "
        "its ring timeout or the service hangs it up (A11; the default)",
    )
    ringing.add_argument(
        "--end-ringing-legs",
        dest="leave_ringing_legs",
        action="store_false",
        help="end an agent's ringing leg with the caller instead",
    )
    parser.add_argument(
        "--call-timeout",
        default="120",
        help="real seconds to wait for each --call to end (120)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print transcripts as JSON, one per line"
    )
    parser.add_argument(
        "--duplicate-deliveries", action="store_true", help="send every delivery twice (A6)"
    )
    parser.add_argument(
        "--replay-stale",
        action="store_true",
        help="after each delivery, re-send the previous one of that call (A6)",
    )
    parser.add_argument(
        "--faults",
        action="append",
        default=[],
        metavar="NAME=VALUE[,...]",
        help="inject faults, as real Bird on a bad day (repeatable; the names are below)",
    )
    parser.add_argument(
        "--seed",
        default="0",
        help="seed of the faults' random choices (0): the same seed gives the same faults",
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = CONTROL_HELP + "\n" + FAULTS_HELP


def _required(value: str | None, env: str, flag: str) -> str:
    resolved = value if value is not None else os.environ.get(env)
    if not resolved:
        raise _BadArgument(f"{flag} is required (or set {env})")
    return resolved


def _positive(value: str, flag: str, *, allow_zero: bool = False) -> float:
    try:
        number = float(value)
    except ValueError:
        raise _BadArgument(f"{flag} must be a number, got {value!r}") from None
    if number < 0 or (number == 0 and not allow_zero) or number != number:
        raise _BadArgument(f"{flag} must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return number


def _settings(args: argparse.Namespace) -> _Settings:
    if not args.webhook_url:
        raise _BadArgument("--webhook-url is required")
    if not str(args.webhook_url).startswith(("http://", "https://")):
        raise _BadArgument(f"--webhook-url must be an http(s) URL, got {args.webhook_url!r}")
    try:
        port = int(args.port)
    except ValueError:
        raise _BadArgument(f"--port must be an integer, got {args.port!r}") from None
    if not 0 <= port <= 65535:
        raise _BadArgument(f"--port must be between 0 and 65535, got {port}")
    agents: dict[str, AgentScript] = {}
    calls: list[CallerScript] = []
    callees: dict[str, CalleeScript] = {}
    try:
        for spec in args.agent:
            number, script = parse_agent_spec(spec)
            agents[number] = script
        for index, spec in enumerate(args.call, start=1):
            calls.append(parse_call_spec(spec, name=f"call {index}"))
        for spec in args.callee:
            callee = parse_callee_spec(spec)
            callees[callee.number] = callee.script()
    except ValueError as exc:
        raise _BadArgument(str(exc)) from None
    at = None
    if args.at is not None:
        try:
            at = parse_moment(args.at)
        except ValueError as exc:
            raise _BadArgument(f"--at {exc}") from None
    call_every_s = None
    if args.call_every is not None:
        call_every_s = _positive(args.call_every, "--call-every", allow_zero=True)
    return _Settings(
        host=args.host,
        port=port,
        webhook_url=args.webhook_url,
        signing_key=_required(args.signing_key, "BIRD_SIGNING_KEY", "--signing-key"),
        access_key=_required(args.access_key, "BIRD_ACCESS_KEY", "--access-key"),
        workspace_id=_required(args.workspace_id, "BIRD_WORKSPACE_ID", "--workspace-id"),
        channel_id=_required(args.channel_id, "BIRD_CHANNEL_ID", "--channel-id"),
        time_scale=_positive(args.time_scale, "--time-scale"),
        call_timeout_s=_positive(args.call_timeout, "--call-timeout"),
        agents=agents,
        calls=calls,
        faults=_faults(args.faults, args.seed),
        call_every_s=call_every_s,
        interrupting_commands=bool(args.interrupting_commands),
        leave_ringing_legs=bool(args.leave_ringing_legs),
        callees=callees,
        at=at,
    )


def _faults(specs: list[str], seed: str) -> Faults:
    try:
        number = int(seed)
    except ValueError:
        raise _BadArgument(f"--seed must be an integer, got {seed!r}") from None
    try:
        return Faults.parse(",".join(specs), seed=number)
    except ValueError as exc:
        raise _BadArgument(f"--faults: {exc}") from None


async def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C (or, with ``--exit-after-calls``, until the calls have ended).

    0 when every ``--call`` ended and its script fit the call, 1 when one did not (or the
    port was taken), 2 on a bad argument. The transcripts of the calls placed through the
    control endpoint and of outbound calls are printed as they end.
    """
    try:
        settings = _settings(args)
    except _BadArgument as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    sim = BirdSimulator(
        access_key=settings.access_key,
        workspace_id=settings.workspace_id,
        channel_id=settings.channel_id,
        signing_key=settings.signing_key,
        subscription_url=settings.webhook_url,
        agents=settings.agents,
        callees=settings.callees,
        time_scale=settings.time_scale,
        duplicate_deliveries=bool(args.duplicate_deliveries),
        replay_stale=bool(args.replay_stale),
        faults=settings.faults,
        interrupting_commands=settings.interrupting_commands,
        leave_ringing_legs=settings.leave_ringing_legs,
        at=settings.at,
    )
    sim.on_settled.append(_printer(bool(args.json), sys.stdout))
    try:
        async with serve(sim.app, settings.host, settings.port) as running:
            try:
                base = f"{running.url}/workspaces/{settings.workspace_id}"
                print(
                    f"Bird simulator: {base}/channels/{settings.channel_id}/calls"
                    f" -> webhooks to {settings.webhook_url}",
                    file=sys.stderr,
                    flush=True,
                )
                print(
                    f"control: {running.url}/sim/calls (ivr call --sim {running.url} --from "
                    "NUMBER --to NUMBER --keys 1,_,2)",
                    file=sys.stderr,
                    flush=True,
                )
                if settings.at is not None:
                    moment = settings.at.isoformat()
                    print(
                        f"clock pinned: the simulator's clock starts at {moment} and runs on "
                        "(the moment transcripts say calls were placed); Bird's timestamps and "
                        "signatures stay real. The service's graphs see it only with "
                        f"IVR_CLOCK={moment}",
                        file=sys.stderr,
                        flush=True,
                    )
                if settings.faults.enabled:
                    print(f"faults: {settings.faults.describe()}", file=sys.stderr, flush=True)
                status = await _place_calls(sim, settings, bool(args.json), sys.stdout)
                if not args.exit_after_calls:
                    await _until_stopped(running.task)
                return status
            finally:
                sim.release_held_requests()  # so that the server stops at once
                if settings.faults.enabled:
                    counts = ", ".join(f"{k}={n}" for k, n in sorted(sim.fault_counts.items()))
                    print(f"faults injected: {counts or 'none'}", file=sys.stderr, flush=True)
    except OSError as exc:
        print(
            f"{PROG}: error: cannot listen on {settings.host}:{settings.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    finally:
        await sim.aclose()


async def _place_calls(sim: BirdSimulator, settings: _Settings, as_json: bool, out: TextIO) -> int:
    """Place the ``--call`` calls (one after the other, or ``--call-every`` apart) and print
    each transcript, in order; 1 when one did not end in time or its script did not fit."""
    status = 0
    placed: list[str] = []
    if settings.call_every_s is not None:
        placed = await sim.place_inbound_calls(settings.calls, every_s=settings.call_every_s)
    for index, script in enumerate(settings.calls):
        call_id = placed[index] if placed else await sim.place_inbound_call(script)
        try:
            transcript = await sim.wait_ended(call_id, settings.call_timeout_s)
        except TimeoutError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr, flush=True)
            status = 1
            continue
        _write(transcript, as_json, out)
        misfits = transcript.misfits()
        if misfits:
            status = 1
            print(
                f"{PROG}: {script.name} ({script.from_number} -> {script.to_number}): the "
                f"script does not fit the call: {'; '.join(misfits)}",
                file=sys.stderr,
                flush=True,
            )
    return status


def _write(transcript: Transcript, as_json: bool, out: TextIO) -> None:
    if as_json:
        out.write(json.dumps(transcript.to_dict()) + "\n")
    else:
        out.write(transcript.render(fit=True, paint=Style(out).paint) + "\n\n")
    out.flush()


def _printer(as_json: bool, out: TextIO) -> Callable[[Transcript], None]:
    """Prints the transcript of each call not placed by ``--call`` (those are printed in
    order by :func:`_place_calls`) once it has ended: calls placed through the control
    endpoint, and the outbound calls the service placed."""

    def show(transcript: Transcript) -> None:
        if transcript.origin != ORIGIN_SCRIPT:
            _write(transcript, as_json, out)

    return show


async def _until_stopped(server_task: asyncio.Task[None]) -> None:
    """Wait for Ctrl-C / SIGTERM (or for the server to stop by itself)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            handled.append(sig)
    stopper = loop.create_task(stop.wait())
    try:
        await asyncio.wait({stopper, server_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        for sig in handled:
            loop.remove_signal_handler(sig)
