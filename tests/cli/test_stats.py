"""``ivr stats``: the drop-off funnel printed from given counts, its JSON, and the
errors when there is no Redis to read. (Counts read from a real Redis, after real
calls: tests/e2e/test_traffic.py.)"""

from __future__ import annotations

import sys

import pytest

from service.cli.main import main
from service.cli.service_redis import CliError, redis_url_of
from service.cli.stats import Report, funnel, rows, to_json
from service.core.traffic import NodeTraffic
from service.runtime.style import Style
from tests.paths import SHIPPED_GRAPHS
from tests.sample_graphs import menu_graph

# 10 calls through menu_graph: welcome -> menu (1: agent, 2: bye, on_failure: bye);
# agent (a transfer) -> on_failure: sorry. One caller is at the menu, one at the agent.
TRAFFIC = {
    "welcome": NodeTraffic(10, {"next": 9}, ended={"ended_by_caller": 1}),
    "menu": NodeTraffic(9, {"options/1": 5, "on_failure": 1}, invalid=3, silent=2,
                        ended={"ended_by_caller": 2}),
    "agent": NodeTraffic(5, {"on_failure": 1}, ended={"transferred": 3}),
    "sorry": NodeTraffic(1, ended={"hangup_node": 1}),
    "bye": NodeTraffic(1, ended={"hangup_node": 1}),
}  # fmt: skip

FUNNEL = """\
test-menu version 0123456789abcdef (served now)
versions with traffic: 0123456789abcdef (served now), fedcba9876543210
8 calls ended, 3 of them by a hang-up; 2 in progress

welcome (say)               10 in
  next -> menu               9   90%
  hung up here               1   10%

menu (menu)                  9 in
  1 -> agent                 5   56%
  2 -> bye                   0
  on_failure -> bye          1   11%
  hung up here               2   22%
  still there                1   11%
  wrong keys (asked again)   3
  silences (asked again)     2

agent (transfer)             5 in
  on_failure -> sorry        1   20%
  ended: transferred         3   60%
  still there                1   20%

bye (hangup)                 1 in
  ended: hangup_node         1  100%

sorry (hangup)               1 in
  ended: hangup_node         1  100%
"""


def report(*, known: bool = True) -> Report:
    versions = ["0123456789abcdef", "fedcba9876543210"]
    graph = menu_graph() if known else None
    return Report("test-menu", versions[0], versions[0], versions, graph, TRAFFIC)


def test_the_funnel_lists_every_node_in_walking_order_with_its_exits_and_drop_offs() -> None:
    assert funnel(report()) == FUNNEL


def test_the_funnel_of_a_version_whose_nodes_are_gone_orders_them_by_entries() -> None:
    text = funnel(report(known=False))
    assert "nodes are no longer in Redis" in text
    headings = [line.split()[0] for line in text.splitlines() if line.endswith(" in")]
    assert headings == ["welcome", "menu", "agent", "bye", "sorry"]
    assert "\n  options/1                  5   56%\n" in text


def test_the_funnel_is_coloured_for_a_terminal_only() -> None:
    plain, coloured = Style(sys.stdout, colour=False), Style(sys.stdout, colour=True)
    assert funnel(report(), plain.paint) == FUNNEL
    text = funnel(report(), coloured.paint)
    assert "\x1b[1mmenu (menu)\x1b[0m" in text
    assert "\x1b[33m  hung up here" in text
    assert "\x1b[2m  2 -> bye" in text  # an exit nobody took
    assert "\x1b[" not in FUNNEL


def test_the_json_has_every_count_and_they_add_up() -> None:
    document = to_json(report())
    assert document["calls"] == {"ended": 8, "hung_up": 3, "in_progress": 2}
    menu = document["nodes"][1]
    assert menu == {
        "id": "menu", "type": "menu", "entered": 9,
        "exits": [
            {"exit": "options/1", "label": "1", "target": "agent", "count": 5},
            {"exit": "options/2", "label": "2", "target": "bye", "count": 0},
            {"exit": "on_failure", "label": "on_failure", "target": "bye", "count": 1},
        ],
        "invalid": 3, "silent": 2, "hung_up": 2, "ended": {"ended_by_caller": 2}, "here": 1,
    }  # fmt: skip
    for node in document["nodes"]:
        exits = sum(e["count"] for e in node["exits"])
        assert node["entered"] == exits + sum(node["ended"].values()) + node["here"]


def test_an_exit_counted_that_the_graph_does_not_have_is_still_shown() -> None:
    traffic = {**TRAFFIC, "ghost": NodeTraffic(1, {"next": 1})}
    table = rows(menu_graph(), traffic)
    assert [row.id for row in table][-1] == "ghost"
    assert (table[-1].type, table[-1].exits[0].target) == (None, None)


def test_the_redis_url_is_the_flag_then_redis_url() -> None:
    assert redis_url_of("redis://flag", {"REDIS_URL": "redis://env"}) == "redis://flag"
    assert redis_url_of(None, {"REDIS_URL": "redis://env"}) == "redis://env"
    with pytest.raises(CliError, match="set REDIS_URL"):
        redis_url_of(None, {})


def test_without_redis_stats_and_render_stats_say_where_the_counts_are(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert main(["stats", "support-line"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("ivr: error: no Redis to read from: set REDIS_URL")
    assert "an embedded Redis" in error
    assert "lives only inside its `ivr serve`" in error
    assert main(["render", str(SHIPPED_GRAPHS / "support-line.json"), "--stats"]) == 2
    drawn = capsys.readouterr()
    assert drawn.out == ""
    assert drawn.err.startswith("ivr: error: no Redis to read from")


def test_an_unreachable_redis_is_one_line_without_its_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["stats", "support-line", "--redis-url", "redis://u:s3cret@127.0.0.1:1/0"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("ivr: error: cannot read Redis at 127.0.0.1:1: ")
    assert "s3cret" not in error
    assert len(error.strip().splitlines()) == 1
