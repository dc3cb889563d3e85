"""``ivr stats GRAPH``: how callers move through a graph, from the service's Redis.

    ivr stats support-line                      # the version served now
    ivr stats support-line --version 3f2a9c0e1b7d4a55 --json

A drop-off funnel, one block per node in walking order (``start`` first): how many
calls entered it, each exit taken (with its count, its share of the entries and its
target), the wrong keys and silences a menu or collect met (re-prompts: the caller
stayed), the callers who hung up there, the calls that ended there otherwise (by
outcome) and the calls there now. The counts are those of one graph version
(``service.runtime.traffic``), by default the one served now, else the version
counted most recently. ``ivr render FILE --stats`` (:func:`traffic_for_render`)
draws the same counts on the diagram of FILE's version.

Redis is ``--redis-url``, else ``REDIS_URL``: an embedded Redis (``ivr serve``
without ``REDIS_URL``) lives only inside its ``ivr serve``, out of reach.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from service.cli.service_redis import CliError, redis_url_of, with_redis
from service.core.graph import Graph
from service.core.traffic import NodeTraffic
from service.graphs.render import edge_label, walk_order
from service.runtime.style import Style

if TYPE_CHECKING:
    from redis.asyncio import Redis


# The outcomes of a caller (or an outbound call's callee) hanging up: the drop-off.
HUNG_UP = ("ended_by_caller", "ended_by_callee")


class StatsError(CliError):
    """A problem the user can fix, reported as one line (``ivr: error: ...``) and
    exit ``code``: 2 for settings (no Redis, Redis unreachable), 1 for no traffic."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("graph", metavar="GRAPH", help="the graph's id (e.g. support-line)")
    parser.add_argument(
        "--version",
        dest="graph_version",
        metavar="V",
        help="the graph version (default: the one served now, else the last one counted)",
    )
    parser.add_argument("--redis-url", help="the service's Redis (default: $REDIS_URL)")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")


# --- reading --------------------------------------------------------------------------------


@dataclass
class Report:
    """What ``ivr stats`` shows of one graph version."""

    graph_id: str
    version: str
    current: str | None  # the version served now, if any
    versions: list[str]  # the versions with traffic counts, counted most recently first
    graph: Graph | None  # the version's nodes, when Redis still has them
    traffic: dict[str, NodeTraffic]


async def gather(url: str, graph_id: str, version: str | None = None) -> Report:
    """The counts of ``graph_id`` at ``version`` (by default the version served now,
    else the one counted most recently). :class:`StatsError` when there are none."""
    from service.runtime import traffic

    async def work(redis: Redis) -> Report:
        versions = await traffic.traffic_versions(redis, graph_id)
        current = await traffic.current_version(redis, graph_id)
        chosen = version or current or (versions[0] if versions else None)
        if chosen is None:
            raise StatsError(f"no traffic recorded for graph {graph_id!r}, and it is not served", 1)
        counts = await traffic.read_traffic(redis, graph_id, chosen)
        graph = await traffic.stored_graph(redis, graph_id, chosen)
        if not counts and graph is None:
            found = ", ".join(versions) or "none"
            raise StatsError(
                f"no traffic recorded for graph {graph_id!r} version {chosen} "
                f"(versions with traffic: {found})",
                1,
            )
        return Report(graph_id, chosen, current, versions, graph, counts)

    return await with_redis(url, work)


def traffic_for_render(graph: Graph, url: str) -> tuple[dict[str, NodeTraffic] | None, str]:
    """For ``ivr render FILE --stats``: the counts of ``graph``'s own version, or None
    with what to say on stderr when it has none (a draft not served yet)."""
    from service.runtime import traffic

    async def work(redis: Redis) -> tuple[dict[str, NodeTraffic], list[str]]:
        counts = await traffic.read_traffic(redis, graph.id, graph.version)
        versions = [] if counts else await traffic.traffic_versions(redis, graph.id)
        return counts, versions

    counts, versions = asyncio.run(with_redis(url, work))
    if counts:
        return counts, ""
    others = f" (versions with traffic: {', '.join(versions)})" if versions else ""
    return None, (
        f"no traffic recorded for {graph.id} version {graph.version}, this file's content: "
        f"drawn without counts{others}"
    )


# --- the funnel -----------------------------------------------------------------------------


@dataclass
class ExitRow:
    exit: str  # the key of Node.exits (options/1, next, on_failure...)
    label: str  # as the diagram labels it (1, a branch's condition), ``next`` for next
    target: str | None  # None when the graph is not known
    count: int


@dataclass
class NodeRow:
    id: str
    type: str | None
    entered: int
    exits: list[ExitRow] = field(default_factory=list)
    invalid: int = 0
    silent: int = 0
    hung_up: int = 0
    ended: dict[str, int] = field(default_factory=dict)  # by outcome, hung up included
    here: int = 0


def rows(graph: Graph | None, counts: Mapping[str, NodeTraffic]) -> list[NodeRow]:
    """One row per node: the graph's in walking order (with every exit, taken or not),
    then any counted node it does not have; without the graph, by entries."""
    if graph is not None:
        order = walk_order(graph) + sorted(set(counts) - set(graph.nodes))
    else:
        order = sorted(counts, key=lambda node_id: (-counts[node_id].entered, node_id))
    found: list[NodeRow] = []
    for node_id in order:
        node = graph.nodes.get(node_id) if graph is not None else None
        traffic = counts.get(node_id, NodeTraffic())
        exits = []
        if node is not None:
            exits = [
                ExitRow(
                    where, edge_label(node, where) or "next", target, traffic.exits.get(where, 0)
                )
                for where, target in node.exits.items()
            ]
        exits += [
            ExitRow(where, where, None, count)
            for where, count in traffic.exits.items()
            if node is None or where not in node.exits
        ]
        ended = {outcome: n for outcome, n in sorted(traffic.ended.items()) if n}
        found.append(
            NodeRow(
                node_id, node.type if node is not None else None, traffic.entered, exits,
                traffic.invalid, traffic.silent, traffic.hung_up, ended, traffic.here,
            )
        )  # fmt: skip
    return found


def to_json(report: Report) -> dict[str, Any]:
    table = rows(report.graph, report.traffic)
    return {
        "graph": report.graph_id,
        "version": report.version,
        "current": report.current,
        "versions": report.versions,
        "graph_known": report.graph is not None,
        "calls": _calls(report.traffic),
        "nodes": [
            {
                "id": row.id,
                "type": row.type,
                "entered": row.entered,
                "exits": [vars(e) for e in row.exits],
                "invalid": row.invalid,
                "silent": row.silent,
                "hung_up": row.hung_up,
                "ended": row.ended,
                "here": row.here,
            }
            for row in table
        ],
    }


def _calls(counts: Mapping[str, NodeTraffic]) -> dict[str, int]:
    ended = sum(sum(t.ended.values()) for t in counts.values())
    hung_up = sum(t.hung_up for t in counts.values())
    return {"ended": ended, "hung_up": hung_up, "in_progress": sum(t.here for t in counts.values())}


def _share(count: int, entered: int) -> str:
    return f"{round(100 * count / entered)}%" if count and entered else ""


def funnel(report: Report, paint: Callable[[str, str], str] = lambda _, text: text) -> str:
    """The report as text, one block per node; ``paint(kind, text)`` styles it
    (:meth:`Style.paint`)."""
    table = rows(report.graph, report.traffic)
    served = " (served now)" if report.version == report.current else ""
    versions = [v + (" (served now)" if v == report.current else "") for v in report.versions]
    calls = _calls(report.traffic)
    out = [
        paint("bold", f"{report.graph_id} version {report.version}{served}"),
        paint("dim", f"versions with traffic: {', '.join(versions) or 'none'}"),
        f"{calls['ended']} calls ended, {calls['hung_up']} of them by a hang-up; "
        f"{calls['in_progress']} in progress",
    ]
    if report.graph is None:
        out.append(paint("warning", "this version's nodes are no longer in Redis: nodes by "
                                    "entries, exits by name"))  # fmt: skip
    # (label, count, share, kind) per line of a node's block
    blocks: list[tuple[NodeRow, list[tuple[str, int, str, str]]]] = []
    for row in table:
        lines = [
            (f"{e.label} -> {e.target}" if e.target else e.label, e.count,
             _share(e.count, row.entered), "" if e.count else "dim")
            for e in row.exits
        ]  # fmt: skip
        if row.hung_up:
            lines.append(("hung up here", row.hung_up, _share(row.hung_up, row.entered), "warning"))
        lines += [
            (f"ended: {outcome}", count, _share(count, row.entered), "")
            for outcome, count in row.ended.items()
            if outcome not in HUNG_UP
        ]
        if row.here:
            lines.append(("still there", row.here, _share(row.here, row.entered), "info"))
        if row.invalid:
            lines.append(("wrong keys (asked again)", row.invalid, "", "dim"))
        if row.silent:
            lines.append(("silences (asked again)", row.silent, "", "dim"))
        blocks.append((row, lines))
    width = max([len(label) + 2 for _, lines in blocks for label, *_ in lines]
                + [len(_heading(row)) for row, _ in blocks] + [24])  # fmt: skip
    counts = [row.entered for row in table] + [n for _, lines in blocks for _, n, *_ in lines]
    digits = max(len(str(n)) for n in [*counts, 0])
    for row, lines in blocks:
        out.append("")
        heading = _heading(row)
        entered = f"{row.entered:>{digits}} in"
        out.append(paint("bold", heading) + " " * (width - len(heading)) + f"  {entered}")
        for label, count, share, kind in lines:
            text = f"  {label:<{width - 2}}  {count:>{digits}}" + (f"  {share:>4}" if share else "")
            out.append(paint(kind, text) if kind else text)
    return "\n".join(out) + "\n"


def _heading(row: NodeRow) -> str:
    return f"{row.id} ({row.type})" if row.type else row.id


# --- the command ----------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """``ivr stats``: 0, else one line on stderr and :attr:`StatsError.code`."""
    try:
        url = redis_url_of(args.redis_url)
        report = asyncio.run(gather(url, args.graph, args.graph_version))
    except CliError as exc:
        print(Style(sys.stderr).error(f"ivr: error: {exc}"), file=sys.stderr)
        return exc.code
    if args.json:
        print(json.dumps(to_json(report), indent=2))
    else:
        print(funnel(report, Style(sys.stdout).paint), end="")
    return 0
