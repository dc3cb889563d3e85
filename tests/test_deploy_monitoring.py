"""The monitoring shipped in deploy/: the alert rules and the Grafana dashboard parse,
query only metrics that GET /metrics exposes, chart every one of them, and every alert
has its section in docs/runbook.md."""

from __future__ import annotations

import json
import re
from typing import Any

import promql_parser
import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from service.runtime import metrics
from tests.paths import ROOT

DEPLOY = ROOT / "deploy"
RUNBOOK = (ROOT / "docs/runbook.md").read_text()
ALERTS = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text())
DASHBOARD = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
RULES: list[dict[str, Any]] = [rule for group in ALERTS["groups"] for rule in group["rules"]]

# What Grafana puts in a query before Prometheus sees it.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "1m", "$job": ".*"}


def exposed() -> dict[str, str]:
    """Every series name GET /metrics can show, with its metric's type: what the
    registry renders (this process's counters and a scrape's gauges)."""
    state = metrics.State(
        live_calls={("support-line", "welcome"): 1},
        waiting={"billing": 1},
        longest_wait_s={"billing": 3.0},
        callbacks_pending={"billing": 0},
        agents={("available", "idle"): 1},
    )
    text = generate_latest(metrics.registry_for(state)).decode()
    names: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("ivr_"):
            continue
        if family.type == "counter":
            names[family.name + "_total"] = "counter"
        elif family.type == "histogram":
            names.update(dict.fromkeys(
                (family.name + suffix for suffix in ("_bucket", "_sum", "_count")), "histogram"
            ))  # fmt: skip
        else:
            names[family.name] = family.type
    return names


EXPOSED = exposed()


def metric_names(expr: str) -> set[str]:
    """The metrics a PromQL expression selects (it must parse)."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    found: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            found.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), pre_visit=visit)
    return found


def dashboard_panels() -> list[dict[str, Any]]:
    return [panel for panel in DASHBOARD["panels"] if panel["type"] != "row"]


def dashboard_queries() -> list[str]:
    queries = [t["expr"] for panel in dashboard_panels() for t in panel["targets"]]
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] == "query":
            queries.append(variable["definition"].replace("label_values(", "group(", 1)
                           .replace(", job)", ")"))  # fmt: skip
    return queries


def anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


RUNBOOK_ANCHORS = {anchor(h) for h in re.findall(r"^#+ (.+)$", RUNBOOK, flags=re.M)}


def test_the_names_in_use_are_checked_against_what_metrics_exposes() -> None:
    assert EXPOSED["ivr_webhook_deliveries_total"] == "counter"
    assert EXPOSED["ivr_webhook_seconds_bucket"] == "histogram"
    assert EXPOSED["ivr_calls_live"] == "gauge"
    assert metric_names('sum(rate(ivr_a_total{x="y"}[$__rate_interval])) / max(ivr_b)') == {
        "ivr_a_total", "ivr_b"
    }  # fmt: skip
    with pytest.raises(ValueError, match="unclosed left parenthesis"):
        promql_parser.parse("sum(rate(ivr_a_total[5m])")


def test_the_alert_rules_parse_and_each_alert_says_what_and_where_to_read_more() -> None:
    assert len(RULES) >= 4
    for rule in RULES:
        assert set(rule) >= {"alert", "expr", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"].strip()
        assert rule["annotations"]["description"].strip()
        url = rule["annotations"]["runbook_url"]
        assert url == f"docs/runbook.md#{rule['alert'].lower()}"
        assert url.split("#")[1] in RUNBOOK_ANCHORS, f"no runbook section for {rule['alert']}"


def test_the_alerts_cover_webhook_and_bird_errors_stuck_calls_and_long_waits() -> None:
    uses = {rule["alert"]: metric_names(rule["expr"]) for rule in RULES}
    expressions = {rule["alert"]: rule["expr"] for rule in RULES}
    webhook = [a for a, names in uses.items() if "ivr_webhook_deliveries_total" in names]
    assert any('outcome="rejected"' in expressions[a] for a in webhook)
    bird = [a for a, names in uses.items() if "ivr_bird_requests_total" in names]
    assert any("5xx|timeout|connection_error" in expressions[a] for a in bird)
    stuck = {"ivr_timers_oldest_due_seconds", "ivr_commands_pending",
             "ivr_timer_lateness_seconds_bucket"}  # fmt: skip
    assert stuck <= set().union(*uses.values())
    assert any("ivr_queue_longest_wait_seconds" in names for names in uses.values())


def test_every_metric_an_alert_or_the_dashboard_queries_is_exposed() -> None:
    queries = [rule["expr"] for rule in RULES] + dashboard_queries()
    used = set().union(*(metric_names(q) for q in queries))
    assert used - set(EXPOSED) == set()


def test_the_dashboard_charts_every_metric() -> None:
    used = set().union(*(metric_names(q) for q in dashboard_queries()))
    families = {re.sub(r"_(bucket|sum|count)$", "", n) if kind == "histogram" else n
                for n, kind in EXPOSED.items()}  # fmt: skip
    charted = {re.sub(r"_(bucket|sum|count)$", "", n) for n in used}
    assert families - charted == set()


def test_the_dashboard_is_importable_with_any_prometheus_data_source() -> None:
    variables = {v["name"]: v for v in DASHBOARD["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["query"] == "prometheus"
    assert DASHBOARD["uid"]
    assert DASHBOARD["title"]
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard_panels():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
        assert panel["targets"], panel["title"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
    titles = " | ".join(panel["title"] for panel in dashboard_panels()).lower()
    for wanted in ("deliveries", "webhook latency", "bird requests", "bird errors",
                   "bird latency", "live calls by graph and node", "commands pending",
                   "timer", "callers waiting", "longest wait", "agents by status",
                   "offers missed", "calls ended by outcome"):  # fmt: skip
        assert wanted in titles, wanted


def test_the_example_scrape_config_loads_the_rules_and_names_the_job_they_expect() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert config["rule_files"] == ["prometheus-alerts.yml"]
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    absent = [r["expr"] for r in RULES if "absent(" in r["expr"]]
    assert absent
    assert all(f'job="{job["job_name"]}"' in expr for expr in absent)


def test_the_runbook_says_metrics_needs_no_token_and_has_each_alert_s_three_parts() -> None:
    assert "served without `IVR_ADMIN_TOKEN`" in RUNBOOK
    for rule in RULES:
        section = RUNBOOK.split(f"\n## {rule['alert']}\n", 1)[1].split("\n## ", 1)[0]
        for part in ("**What it means.**", "**How to confirm.**", "**What to do.**"):
            assert part in section, f"{rule['alert']}: {part}"
