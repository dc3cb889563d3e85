"""The load bench (bench/load.py) in the normal suite: ``python -m bench.load --quick``,
as a user runs it (20 live calls of 2 s for 2 s, a short saturation run, both the
worker and the floor app as processes, its own embedded Redis), and what its user
checks in its report: every call played out, nothing failed, the figures are there
and make sense."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.load import DEFINITIONS, HEADER, quick_config
from bench.load_bird import COMMANDS, DELIVERIES

ROOT = Path(__file__).resolve().parents[2]


def quick_run(out: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    # Its own Redis (not the suite's REDIS_URL): Redis's counters are the whole server's.
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    argv = [sys.executable, "-m", "bench.load", "--quick", "--no-pin", "--json", str(out)]
    done = subprocess.run(  # noqa: S603 - our own bench, fixed argv
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report: dict[str, Any] = json.loads(out.read_text())
    return done, report


def test_a_quick_load_run_plays_every_call_and_reports_sane_figures(tmp_path: Path) -> None:
    done, report = quick_run(tmp_path / "load.json")
    quick = quick_config()

    assert HEADER in done.stdout
    assert report["definitions"] == DEFINITIONS
    assert report["machine"]["nproc"] >= 1
    assert report["machine"]["python"]
    assert report["config"]["deliveries_per_call"] == DELIVERIES == 11
    assert report["config"]["commands_per_call"] == list(COMMANDS)
    assert set(report["apps"]) == {"ivr", "floor"}
    for name, results in report["apps"].items():
        [level] = results["levels"]
        assert level["level"] == quick.levels[0] == 20
        runs = [level, *results["saturation"]]
        for found in runs:
            calls = found["calls"]
            assert calls["started"] > 0, name
            assert calls["completed"] == calls["started"], (name, calls)
            assert calls["deliveries_per_call"] == [DELIVERIES], (name, calls)
            assert calls["commands_per_call"] == [len(COMMANDS)], (name, calls)
            assert calls["unexpected_requests"] == 0, (name, calls)
            assert found["failures"] == 0, (name, found["failure_kinds"])
            assert found["http_503"] == 0, name
            assert found["answered_per_s"] > 0, name
            assert 0 < found["w2c_ms"]["p50"] <= found["w2c_ms"]["p99"], name
            assert 0 < found["http_ms"]["p50"] <= found["http_ms"]["p99"], name
            assert found["cpu_ms_per_delivery"] > 0, name
            assert found["redis_round_trips_per_delivery"] > 0, name
            # A round trip carries one command or more (a window's edges move both a little).
            rtt = found["redis_round_trips_per_delivery"]
            assert found["redis_cmds_per_delivery"] >= 0.95 * rtt, name
            assert found["loop_lag_ms"]["p99"] is not None, name
        # N calls live at once (a level's calls wait on their deliveries, not on the bench).
        assert level["live"] >= 0.8 * 20, (name, level["live"])
        # A call's state, counted two ways.
        assert level["memory"]["bytes_per_call"] > 0, name
        assert level["memory"]["call_keys"], name
        assert results["saturation_per_s"] > 0, name

    # The floor makes exactly one Redis round trip (one SET) per delivery: the way round
    # trips are counted (Redis's own total_reads_processed) says so.
    floor = report["apps"]["floor"]["levels"][0]
    assert 0.95 <= floor["redis_round_trips_per_delivery"] <= 1.05
    # (A connection opened in the window says HELLO / CLIENT SETINFO first.)
    assert set(floor["redis_commands"]) - {"hello", "client|setinfo"} == {"set"}
    assert 0.95 <= floor["redis_cmds_per_delivery"] <= 1.05
    ivr = report["apps"]["ivr"]["levels"][0]
    assert any(key.startswith("{ivr}:call:") for key in ivr["memory"]["call_keys"])
