"""End to end (issue 10, traffic on the diagram): 20 callers of a copy of the support
line through the service and the Bird simulator, then ``ivr render --stats`` draws
counts that add up at every node and ``ivr stats`` prints the same.

The copy has an id of its own, so its counts are this test's alone (the session's Redis
is shared and never flushed).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis

from service.cli.demo import ANN, DAN, DEMO_PACE, paced
from service.core.graph import Graph
from service.graphs.loader import load_directory, load_file
from service.graphs.render import mermaid, mermaid_ids
from service.sim import HANGUP, CallerScript
from tests.e2e.test_e2e import NUMBER, stack
from tests.paths import SHIPPED_GRAPHS, ivr

# What each caller does while Ann and Dan work: menu choices, wrong keys, silences,
# hang-ups; then AFTER, when they have gone (voicemail). 20 callers in all.
SCRIPTS: list[tuple[tuple[str, ...], float | None]] = [
    *[(("1", "1234567#"), None)] * 2,  # billing, Ann takes them
    *[(("1", "9123456#"), None)] * 2,  # a business account: business-billing
    *[(("2",), None)] * 2,  # the technician, Dan
    *[(("9", "2"), None)] * 2,  # a wrong key, then the technician
    (("_", "1", "123456#"), None),  # silence, then billing
    (("9", "9", "9"), None),  # three wrong keys: on_failure, goodbye
    (("_", "_", "_"), None),  # silent throughout: on_failure, goodbye
    *[((HANGUP,), None)] * 2,  # hangs up while the menu plays
    (("1", HANGUP), None),  # hangs up when asked for the account number
    (("1", "12#", "7654321#"), None),  # a bad account number, then a good one
    (("1", "_", "_"), None),  # no account number: on_failure, billing
    ((), 0.5),  # hangs up during the welcome
    (("7", HANGUP), None),  # a wrong key, then hangs up
]
AFTER: list[tuple[tuple[str, ...], float | None]] = [(("1", "123456#"), None), (("2",), None)]


def traffic_graph(directory: Path) -> Path:
    """The shipped support line under a fresh id, with queues.json beside it."""
    directory.mkdir()
    document = json.loads((SHIPPED_GRAPHS / "support-line.json").read_text())
    document["id"] = f"traffic-{uuid.uuid4().hex[:10]}"
    path = directory / f"{document['id']}.json"
    path.write_text(json.dumps(document, indent=2))
    for name in ("schema.json", "queues.json", "queues.schema.json"):
        shutil.copy(SHIPPED_GRAPHS / name, directory / name)
    return path


@dataclass
class Drawn:
    """A node of a ``--stats`` Mermaid diagram: the counts on it and on its edges."""

    entered: int = 0
    ended: int = 0  # hung up + ended + here
    hung_up: int = 0
    exits: dict[str, int] = field(default_factory=dict)  # target node -> count


NODE = re.compile(r'^    (n_\w+)\W*"(.*)"\W*$')
EDGE = re.compile(r'^    (n_\w+) -->\|"(?:.* )?\((\d+)\)"\| (n_\w+)$')
COUNTS = re.compile(r"^(\d+) in((?:, \d+ (?:hung up|ended|here))*)$")


def read_counts(diagram: str, graph: Graph) -> dict[str, Drawn]:
    node_of = {mermaid_id: node_id for node_id, mermaid_id in mermaid_ids(graph).items()}
    drawn: dict[str, Drawn] = {}
    for line in diagram.splitlines():
        if edge := EDGE.match(line):
            source, count, target = edge.groups()
            exits = drawn[node_of[source]].exits
            exits[node_of[target]] = exits.get(node_of[target], 0) + int(count)
        elif node := NODE.match(line):
            counts = COUNTS.match(node.group(2).split("<br/>")[-1])
            assert counts is not None, line
            found = Drawn(int(counts.group(1)))
            for part in filter(None, counts.group(2).split(", ")):
                number, what = part.split(" ", 1)
                found.ended += int(number)
                found.hung_up += int(number) if what == "hung up" else 0
            drawn[node_of[node.group(1)]] = found
        else:
            assert "-->" not in line or line.startswith("    start -->"), line
    return drawn


async def test_twenty_calls_draw_counts_that_add_up_and_ivr_stats_prints_them(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    path = traffic_graph(tmp_path / "graphs")
    graph = load_file(path)
    served = load_directory(path.parent, graph.id)
    # Agents free again at once: their wrap-up runs on the service's (real) clock.
    graphs = paced(served, {**DEMO_PACE, "wrap_up_s": 0}, per_queue={})
    env = {**os.environ, "REDIS_URL": redis_url, "NO_COLOR": "1"}
    scripts = [
        CallerScript(f"caller {n}", f"+316123450{n:02}", NUMBER, keys, hangup_after_s=after)
        for n, (keys, after) in enumerate(SCRIPTS + AFTER)
    ]
    async with stack(redis, graphs=graphs, seated=(ANN, DAN)) as s:
        call_ids = await s.sim.place_inbound_calls(scripts[: len(SCRIPTS)], every_s=5)
        transcripts = await s.sim.wait_all_ended(call_ids, timeout_s=60)
        await s.unseat()  # nobody left: the last callers leave a message
        call_ids = await s.sim.place_inbound_calls(scripts[len(SCRIPTS) :], every_s=5)
        transcripts += await s.sim.wait_all_ended(call_ids, timeout_s=60)
        # While this graph is served: ivr stats finds its version by itself.
        render, stats, text = await asyncio.gather(
            asyncio.to_thread(ivr, "render", str(path), "--stats", env=env),
            asyncio.to_thread(ivr, "stats", graph.id, "--json", env=env),
            asyncio.to_thread(ivr, "stats", graph.id, env=env),
        )
    assert len(transcripts) == 20
    # Who reached an agent depends on when agents free up (other tests share the line):
    # the counts must say what the callers lived, whatever it was.
    reached = sum(t.reached is not None for t in transcripts)
    assert reached >= 6

    assert render.returncode == 0, render.stderr
    assert render.stderr == ""
    drawn = read_counts(render.stdout, graph)
    assert set(drawn) == set(graph.nodes)
    for node_id, node in drawn.items():  # every call that came in left or ended there
        assert node.entered == sum(node.exits.values()) + node.ended, node_id
    assert drawn[graph.start].entered == 20
    assert drawn["main-menu"].hung_up == 3
    assert drawn["account-number"].hung_up == 1
    assert drawn["main-menu"].exits["goodbye"] == 2
    assert drawn["goodbye"].entered == drawn["goodbye"].ended == 2
    assert drawn["no-agents"].exits["voicemail"] == drawn["thanks"].ended == 2
    assert sum(node.hung_up for node in drawn.values()) >= 5

    assert stats.returncode == 0, stats.stderr
    report = json.loads(stats.stdout)
    assert (report["graph"], report["version"], report["current"]) == (
        graph.id, graph.version, graph.version,
    )  # fmt: skip
    assert report["versions"] == [graph.version]
    assert report["calls"]["ended"] == 20
    assert report["calls"]["in_progress"] == 0
    assert [row["id"] for row in report["nodes"]][:3] == ["welcome", "opening-hours", "main-menu"]
    for row in report["nodes"]:  # the same counts as the diagram
        node = drawn[row["id"]]
        assert row["entered"] == node.entered
        assert row["hung_up"] == node.hung_up
        assert {e["target"]: e["count"] for e in row["exits"]} == {
            target: node.exits.get(target, 0) for target in graph.nodes[row["id"]].exits.values()
        }
    connected = sum(row["ended"].get("agent_connected", 0) for row in report["nodes"])
    assert connected == reached
    menu = next(row for row in report["nodes"] if row["id"] == "main-menu")
    assert menu["invalid"] == 6  # 9,2 twice; 9,9,9; 7
    assert menu["silent"] == 4  # _,1 once; _,_,_

    assert text.returncode == 0, text.stderr
    assert f"{graph.id} version {graph.version} (served now)" in text.stdout
    assert "20 calls ended" in text.stdout
    assert re.search(r"^main-menu \(menu\) +\d+ in$", text.stdout, flags=re.M)
    assert re.search(r"^  hung up here +3 +\d+%$", text.stdout, flags=re.M)
    assert re.search(r'^  1 or "billing" -> account-number +\d+ +\d+%$', text.stdout, flags=re.M)


async def test_render_stats_of_a_draft_says_it_has_no_traffic(
    redis_url: str, tmp_path: Path
) -> None:
    path = traffic_graph(tmp_path / "graphs")
    env = {**os.environ, "REDIS_URL": redis_url, "NO_COLOR": "1"}
    drawn = await asyncio.to_thread(ivr, "render", str(path), "--stats", env=env)
    assert drawn.returncode == 0
    assert drawn.stdout == mermaid(load_file(path))
    assert "no traffic recorded for" in drawn.stderr
    assert "drawn without counts" in drawn.stderr
