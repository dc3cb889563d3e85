"""``ivr call``: place a call on a running simulator and print its transcript as it happens.

    ivr call --from +31612345678 --to +31970102030 --keys 1,12345678#

It is a client of the simulator's control endpoint (:mod:`service.sim.control`): it places
the call (``POST /sim/calls``) and follows its transcript (``GET
/sim/calls/{id}/transcript?follow=1``) until the call and its agents' legs have ended: what
the caller heard and pressed, each offer to an agent and whom they reached. ``--callee``
scripts the callees of the service's outbound calls first (``PUT /sim/callees/{number}``);
``--follow CALL_ID`` follows a call already placed (the ``call_id`` the service's
``POST /calls`` answers). Exit status: 0 when the call ended and the script fit it, 1 when it
did not (a gather it had no keys left for, keys left over at the end), when the call did not
end in time or the simulator cannot be reached, 2 on a bad argument.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any, TextIO
from urllib.parse import quote

import httpx

from service.runtime.style import Style
from service.sim.scripts import CALLEE_SPEC, CalleeSpec, parse_callee_spec, parse_inputs
from service.sim.transcript import Entry, Transcript, entry_line

PROG = "ivr call"
DEFAULT_SIM = "http://127.0.0.1:8089"


class _Failed(Exception):
    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``ivr call`` (checked by :func:`run`, which reports one clear line)."""
    parser.add_argument(
        "--sim", default=DEFAULT_SIM, metavar="URL", help="the running ivr sim (%(default)s)"
    )
    parser.add_argument("--from", dest="from_number", metavar="NUMBER", help="the caller")
    parser.add_argument("--to", dest="to_number", metavar="NUMBER", help="the number called")
    parser.add_argument(
        "--keys",
        default="",
        metavar="INPUT,...",
        help="what the caller presses or says at each gather, in order: keys (0-9, *, #), "
        "say:TEXT for words (heard by a gather whose input has speech; no commas in TEXT), _ "
        "for silence, hangup to hang up during its prompt: 1,12345678# or 'say:billing,1'",
    )
    parser.add_argument(
        "--hangup-after",
        metavar="SECONDS",
        help="the caller hangs up this many simulated seconds after the answer",
    )
    parser.add_argument(
        "--callee",
        action="append",
        default=[],
        metavar=CALLEE_SPEC,
        help="first script the callee of the service's outbound calls to NUMBER, as ivr sim "
        "--callee: '+31612345678=answer:3;keys:1', an answering machine '+31612345678=machine' "
        "(repeatable; alone: only that)",
    )
    parser.add_argument(
        "--follow",
        metavar="CALL_ID",
        help="follow a call already on the simulator instead of placing one (e.g. the "
        "call_id of the service's POST /calls)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the transcript as one JSON line at the end"
    )
    parser.add_argument(
        "--timeout",
        default="300",
        metavar="SECONDS",
        help="real seconds to wait for the call to end (%(default)s)",
    )


def _number(value: str, flag: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise _Failed(f"{flag} must be a number, got {value!r}", 2) from None
    if not number > 0:
        raise _Failed(f"{flag} must be > 0, got {value!r}", 2)
    return number


def _checked(args: argparse.Namespace) -> tuple[list[CalleeSpec], dict[str, Any] | None]:
    """The callees to script and the call to place (None: follow one, or none)."""
    try:
        callees = [parse_callee_spec(spec) for spec in args.callee]
        keys = parse_inputs(args.keys)
    except ValueError as exc:
        raise _Failed(str(exc), 2) from None
    if not str(args.sim).startswith(("http://", "https://")):
        raise _Failed(f"--sim must be an http(s) URL, got {args.sim!r}", 2)
    placing = args.from_number is not None or args.to_number is not None
    if args.follow is not None and (placing or args.keys):
        raise _Failed("--follow takes no --from, --to or --keys: it follows a placed call", 2)
    if placing and (not args.from_number or not args.to_number):
        raise _Failed("--from and --to go together: who calls, and which number", 2)
    if not placing and args.follow is None and not callees:
        raise _Failed("--from and --to are required (or --follow CALL_ID, or --callee)", 2)
    if not placing:
        return callees, None
    call: dict[str, Any] = {"from": args.from_number, "to": args.to_number, "keys": list(keys)}
    if args.hangup_after is not None:
        call["hangup_after_s"] = _number(args.hangup_after, "--hangup-after")
    return callees, call


async def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Place (or follow) the call and print its transcript; the exit status (module doc)."""
    out = out or sys.stdout
    try:
        callees, call = _checked(args)
        timeout_s = _number(args.timeout, "--timeout")
        base = str(args.sim).rstrip("/")
        timeout = httpx.Timeout(10.0, read=None)  # a call may stay quiet for long
        async with httpx.AsyncClient(base_url=base, timeout=timeout, trust_env=False) as http:
            for callee in callees:
                await _script_callee(http, callee)
            if call is not None:
                call_id = await _place(http, call)
            elif args.follow is not None:
                call_id = args.follow
            else:
                return 0
            transcript = await _follow(http, call_id, timeout_s, bool(args.json), out)
    except _Failed as failed:
        print(f"{PROG}: error: {failed.message}", file=sys.stderr)
        return failed.status
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        print(
            f"{PROG}: error: cannot reach the simulator at {args.sim}: {reason} "
            "(is ivr sim running there? see --sim)",
            file=sys.stderr,
        )
        return 1
    misfits = transcript.misfits()
    if misfits:
        print(f"{PROG}: the script does not fit the call: {'; '.join(misfits)}", file=sys.stderr)
        return 1
    return 0


def _refusal(response: httpx.Response, what: str) -> _Failed:
    try:
        message = str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        message = f"{response.status_code} {response.reason_phrase} (is it an ivr sim?)"
    return _Failed(f"{what}: {message}", 2 if response.status_code == 422 else 1)


async def _script_callee(http: httpx.AsyncClient, callee: CalleeSpec) -> None:
    path = f"/sim/callees/{quote(callee.number, safe='+')}"
    response = await http.put(path, json=callee.to_json())
    if response.status_code != 200:
        raise _refusal(response, f"the simulator refused callee {callee.number}")
    print(f"{PROG}: callee {callee.number} scripted", file=sys.stderr)


async def _place(http: httpx.AsyncClient, call: dict[str, Any]) -> str:
    response = await http.post("/sim/calls", json=call)
    if response.status_code != 201:
        raise _refusal(response, "the simulator refused the call")
    return str(response.json()["id"])


async def _follow(
    http: httpx.AsyncClient, call_id: str, timeout_s: float, as_json: bool, out: TextIO
) -> Transcript:
    """Print the transcript as it comes (``--json``: once, at the end); the final one."""

    paint = Style(out).paint

    def show(line: str) -> None:
        if not as_json:
            out.write(line + "\n")
            out.flush()

    url = f"/sim/calls/{quote(call_id, safe='')}/transcript"
    try:
        async with asyncio.timeout(timeout_s):
            async with http.stream("GET", url, params={"follow": "1"}) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise _refusal(response, f"cannot follow call {call_id}")
                async for line in response.aiter_lines():
                    if not line.strip():
                        continue
                    item = json.loads(line)
                    event = item.get("event")
                    if event == "call":
                        show(_header(item).title(paint))
                    elif event == "entry":
                        entry = Entry(float(item["at"]), item["kind"], item["text"])
                        show(entry_line(entry, paint))
                    elif event in ("ended", "closed"):
                        transcript = Transcript.from_dict(item["transcript"])
                        for footer in transcript.footer(fit=True, paint=paint):
                            show(footer)
                        if as_json:
                            out.write(json.dumps(item["transcript"]) + "\n")
                            out.flush()
                        if event == "closed":
                            raise _Failed("the simulator stopped before the call ended")
                        return transcript
    except TimeoutError:
        raise _Failed(f"call {call_id} has not ended within {timeout_s:g} s") from None
    raise _Failed(f"the simulator closed the transcript of call {call_id} before its end")


def _header(item: dict[str, Any]) -> Transcript:
    return Transcript.from_dict(
        {
            "callId": item["callId"],
            "script": item.get("script", ""),
            "from": item.get("from", ""),
            "to": item.get("to", ""),
            "startedAt": item.get("startedAt"),
            "origin": item.get("origin"),
        }
    )
