"""``ivr replay CALL_ID --graph DRAFT``: re-run a call's recorded inputs against a
draft graph and show where the draft's path leaves the caller's.

It reads the call's journal from the service's Redis (``REDIS_URL`` or
``--redis-url``), kept as long as the call's state (``CALL_TTL_S``). Exit status:
0 when the draft walks the same path, 1 when it diverges, 2 when the replay
cannot run (no such call, a graph with problems, Redis unreachable).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from service.cli.service_redis import CliError, redis_url_of, with_redis
from service.core.journal import Entry
from service.core.replay import Replay, ReplayError, Step, replay
from service.core.state import CallState
from service.runtime.style import Style

if TYPE_CHECKING:
    from redis.asyncio import Redis


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("call_id", metavar="CALL_ID", help="the call (its id in the logs)")
    parser.add_argument(
        "--graph",
        required=True,
        type=Path,
        metavar="FILE",
        help="the draft graph to replay against",
    )
    parser.add_argument("--redis-url", help="the service's Redis (default: $REDIS_URL)")
    parser.add_argument("--json", action="store_true", help="print the replay as JSON")


async def run(args: argparse.Namespace) -> int:
    from service.graphs.loader import GraphError
    from service.graphs.simulate import load

    err = Style(sys.stderr)
    try:
        url = redis_url_of(args.redis_url)
        try:
            draft = load(args.graph)  # with the queues.json beside it, as the service loads it
        except GraphError as exc:
            for problem in exc.problems:
                print(err.error(str(problem)), file=sys.stderr)
            raise CliError(f"{args.graph}: not a graph the service would load") from None
        entries, stored = await with_redis(url, lambda redis: _read(redis, args.call_id))
        if not entries:
            raise CliError(
                f"no journal for call {args.call_id!r} in that Redis (a wrong id, another "
                "Redis, or older than CALL_TTL_S)"
            )
        try:
            result = replay(draft, entries, args.call_id)
        except ReplayError as exc:
            raise CliError(f"call {args.call_id}: {exc}") from None
    except CliError as exc:
        print(err.error(f"ivr: error: {exc}"), file=sys.stderr)
        return exc.code
    if stored is not None and stored.graph != draft.id:
        print(err.warning(f"warning: the call ran graph {stored.graph!r}, the draft is "
                          f"{draft.id!r}"), file=sys.stderr)  # fmt: skip
    if args.json:
        print(json.dumps(_as_json(result), indent=2))
    else:
        _print(result, Style(sys.stdout), stored.graph_version if stored else None, draft.version)
    return 0 if result.divergence is None else 1


async def _read(redis: Redis, call_id: str) -> tuple[list[Entry], CallState | None]:
    from service.runtime import journal
    from service.runtime.store import CallStore

    return await journal.read(redis, call_id), await CallStore(redis, ended_ttl_s=1).load(call_id)


def _print(result: Replay, out: Style, recorded_version: str | None, draft_version: str) -> None:
    print(out.bold(f"call {result.call_id}: recorded on version {recorded_version or '?'}, "
                   f"replayed on {draft_version}"))  # fmt: skip
    for step in result.steps:
        if step.same and not (step.recorded or step.recorded_outcome or _an_input(step)):
            continue  # a step that walked nowhere (ringing, a repeat): not worth a line
        when = f"+{step.t - result.started_at:6.1f}s"
        where = f" at {step.node}" if step.node else ""
        walked = " -> ".join(step.recorded) or "stays"
        line = f"{when}  {step.fed}{where}: {walked}"
        if step.recorded_outcome:
            line += f" (ends: {step.recorded_outcome})"
        if step.same:
            print(out.dim(when) + line[len(when) :])
            continue
        print(out.error(line))
        drafted = " -> ".join(step.draft) or "stays"
        ends = f" (ends: {step.draft_outcome})" if step.draft_outcome else ""
        print(out.error(f"{' ' * len(when)}  the draft: {drafted}{ends}"))
    verdict = result.describe()
    print(out.ok(verdict) if result.divergence is None else out.warning(verdict))


def _an_input(step: Step) -> bool:
    """Whether the step was fed something the caller did (keys, silence)."""
    return step.fed.startswith("the caller")


def _as_json(result: Replay) -> dict[str, object]:
    def step(item: Step) -> dict[str, object]:
        return {
            "index": item.index, "t": item.t, "fed": item.fed, "node": item.node,
            "recorded": list(item.recorded), "draft": list(item.draft),
            "recorded_outcome": item.recorded_outcome, "draft_outcome": item.draft_outcome,
            "same": item.same,
        }  # fmt: skip

    divergence = result.divergence
    return {
        "call_id": result.call_id,
        "diverges": divergence is not None,
        "divergence": step(divergence) if divergence is not None else None,
        "summary": result.describe(),
        "steps": [step(item) for item in result.steps],
    }
