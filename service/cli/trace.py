"""``ivr trace CALL_ID``: one call's timeline in a terminal, read from the service's
Redis (``REDIS_URL`` or ``--redis-url``): every delivery from Bird, every step the
graph took (the nodes it walked and what it asked for), every request to Bird and
its answer, in order, with times. ``--follow`` prints new lines as they come
until the call ends. Numbers are masked unless ``--show-numbers``.

Exit status: 0, or 2 when the call cannot be read (unknown id, Redis unreachable).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from service.cli.service_redis import CliError, redis_url_of, where, with_redis
from service.runtime.style import Style

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from service.runtime.journal import Moment
    from service.runtime.live import CallView

FOLLOW_EVERY_S = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("call_id", metavar="CALL_ID", help="the call (its id in the logs)")
    parser.add_argument("--redis-url", help="the service's Redis (default: $REDIS_URL)")
    parser.add_argument(
        "--follow", action="store_true", help="print new lines as they come, until the call ends"
    )
    parser.add_argument("--json", action="store_true", help="print the call and timeline as JSON")
    parser.add_argument("--show-numbers", action="store_true", help="print phone numbers unmasked")


async def run(args: argparse.Namespace) -> int:
    from service.bird.deliveries import is_call_id

    err, out = Style(sys.stderr), Style(sys.stdout)
    masked = not args.show_numbers
    try:
        if not is_call_id(args.call_id):
            raise CliError(f"{args.call_id!r} is not a call id (letters, digits, '-' and '_')")
        url = redis_url_of(args.redis_url)
        view = await with_redis(url, lambda redis: _view(redis, args.call_id))
        if view is None:
            raise CliError(
                f"no call {args.call_id!r} in the Redis at {where(url)} (a wrong id, another "
                "Redis, or ended longer ago than CALL_TTL_S)"
            )
        if args.json:
            print(json.dumps(view.to_json(_now(), masked=masked), indent=2))
            return 0
        _print_header(view, out, masked)
        printed = _print_moments(view.timeline, view.timeline[0].at if view.timeline else 0.0,
                                 out, masked)  # fmt: skip
        if args.follow:
            await with_redis(url, lambda redis: _follow(redis, view, printed, out, masked))
    except CliError as exc:
        print(err.error(f"ivr: error: {exc}"), file=sys.stderr)
        return exc.code
    return 0


async def _view(redis: Redis, call_id: str) -> CallView | None:
    from service.runtime.live import call_view

    return await call_view(redis, call_id)


async def _follow(redis: Redis, view: CallView, printed: int, out: Style, masked: bool) -> None:
    """Print the lines that come after the first ``printed`` until the call ends."""
    start = view.timeline[0].at if view.timeline else 0.0
    while not view.state.ended:
        await asyncio.sleep(FOLLOW_EVERY_S)
        latest = await _view(redis, view.state.call_id)
        if latest is None:  # its state expired meanwhile
            return
        view = latest
        printed += _print_moments(view.timeline[printed:], start, out, masked)
    print(out.bold(f"ended: {view.state.outcome}"))


def _print_header(view: CallView, out: Style, masked: bool) -> None:
    from service.runtime.logs import mask_text

    shown = mask_text if masked else str
    state = view.state
    where_ = f"ended: {state.outcome}" if state.ended else f"live, at {state.node or '-'}"
    print(out.bold(f"call {state.call_id}: {state.direction} {shown(state.caller)} -> "
                   f"{shown(state.called)}, graph {state.graph} {state.graph_version}, "
                   f"{where_}"))  # fmt: skip
    if view.pending is not None and not state.ended:
        pending = view.pending
        name = type(pending.action).__name__.lower()
        print(out.dim(f"waiting on: {name} ({pending.status}, attempt {pending.attempts})"))


KIND_WIDTH = 8


def _print_moments(moments: list[Moment], start: float, out: Style, masked: bool) -> int:
    from service.runtime.logs import mask_text

    for moment in moments:
        clock = datetime.fromtimestamp(moment.at, UTC).strftime("%H:%M:%S.%f")[:-3]
        text = mask_text(moment.text) if masked else moment.text
        node = f"[{moment.node}] " if moment.node else ""
        line = f"{moment.kind:<{KIND_WIDTH}} {node}{text}"
        lead = out.dim(f"{clock}  +{moment.at - start:7.3f}s  ")
        if moment.kind == "error":
            print(lead + out.error(line))
        elif moment.kind in ("begin", "step"):
            print(lead + line)
        else:
            print(lead + out.dim(line))
    return len(moments)


def _now() -> float:
    import time

    return time.time()
