"""The supervisor of ``ivr serve --workers N`` (service.runtime.workers), with small
stand-in workers: real processes that say they listen as a worker does, or die."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest

from service.runtime import logs
from service.runtime.serving import bind
from service.runtime.workers import (
    Supervisor,
    WorkerFds,
    WorkersFailed,
    metrics_directory,
)
from tests.support import log_lines

# A worker that says it listens and exits 0 on SIGTERM, and 42 on SIGHUP: its parent
# then logs that it got it.
LISTENING = """
import os, signal, sys
index, listen, ready, parent = map(int, sys.argv[1].split(","))
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
signal.signal(signal.SIGHUP, lambda *_: sys.exit(42))
os.write(ready, f"{index} {os.getpid()}\\n".encode())
while True:
    signal.pause()
"""

Line = dict[str, object]


class Log:
    """The supervisor's log lines, as they are logged (a ``logs.configure`` sink)."""

    def __init__(self) -> None:
        self.lines: list[Line] = []
        self.changed = asyncio.Event()

    def __call__(self, event_dict: MutableMapping[str, Any]) -> None:
        self.lines.append(dict(event_dict))
        self.changed.set()

    def found(self, event: str, **fields: object) -> list[Line]:
        return log_lines(self.lines, event, **fields)

    async def wait_for(self, event: str, count: int = 1, **fields: object) -> list[Line]:
        async with asyncio.timeout(60):
            while len(self.found(event, **fields)) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.found(event, **fields)[:count]


@pytest.fixture
def log(captured: io.StringIO) -> Log:
    """The service's logging, as ``ivr serve`` configures it, into a :class:`Log`."""
    lines = Log()
    logs.configure(log_format="json", stream=captured, sink=lines)
    return lines


def test_a_worker_is_handed_its_index_and_descriptors_as_one_value() -> None:
    fds = WorkerFds(2, 3, 5, 6)
    assert fds.arg() == "2,3,5,6"
    assert WorkerFds.parse(fds.arg()) == fds
    for bad in ("", "1,2,3", "a,b,c,d", "1,2,3,-4"):
        with pytest.raises(ValueError, match=r"invalid literal|is not INDEX,LISTEN,READY,PARENT"):
            WorkerFds.parse(bad)


def test_without_a_configured_directory_the_metrics_go_to_a_private_one_removed_at_exit() -> None:
    with metrics_directory(None) as made:
        assert made.is_dir()
        assert not any(made.iterdir())
        (made / "counter_1.db").write_bytes(b"x")
    assert not made.exists()


def test_a_configured_metrics_directory_is_emptied_of_an_earlier_runs_files(
    tmp_path: Path,
) -> None:
    (tmp_path / "counter_123.db").write_bytes(b"x")
    (tmp_path / "README").write_text("not prometheus-client's")
    with metrics_directory(tmp_path) as used:
        assert used == tmp_path
        assert sorted(p.name for p in tmp_path.iterdir()) == ["README"]
    assert tmp_path.is_dir()


async def test_a_worker_that_keeps_dying_at_start_stops_the_supervisor_with_one_line(
    log: Log,
) -> None:
    sock = bind()
    supervisor = Supervisor(
        2, lambda fds: [sys.executable, "-c", "import sys; sys.exit(3)"], sock, dict(os.environ),
        backoff_s=0.01,
    )  # fmt: skip
    try:
        with pytest.raises(WorkersFailed) as failed:
            async with asyncio.timeout(60):
                await supervisor.run()
    finally:
        sock.close()
    message = str(failed.value)
    assert "\n" not in message
    assert "exited with code 3 within 5 s of starting, 3 times in a row" in message
    assert "not starting it again" in message
    died = log.found("worker_died")
    assert len(died) >= 3
    assert all(line["exit_code"] == 3 and line["at_start"] for line in died)
    assert log.found("workers_failing")
    assert not log.found("workers_started")


async def test_workers_are_started_replaced_signalled_and_stopped(log: Log, tmp_path: Path) -> None:
    sock = bind()
    supervisor = Supervisor(
        2, lambda fds: [sys.executable, "-c", LISTENING, fds.arg()], sock, dict(os.environ),
        metrics_dir=tmp_path, started_fields={"url": "here"}, backoff_s=0.01,
    )  # fmt: skip
    running = asyncio.create_task(supervisor.run())
    try:
        (started,) = await log.wait_for("workers_started")
        assert started["workers"] == 2
        assert started["url"] == "here"
        first = supervisor.pids
        assert started["pids"] == first
        assert 0 not in first

        os.kill(first[0], signal.SIGKILL)
        (died,) = await log.wait_for("worker_died")
        assert (died["worker"], died["pid"], died["exit_code"]) == (0, first[0], -9)
        assert died["how"] == "was killed by SIGKILL"
        assert died["level"] == "error"
        (restarted,) = await log.wait_for("worker_restarted")
        assert restarted["worker"] == 0
        assert restarted["pid"] == supervisor.pids[0] != first[0]
        assert supervisor.pids[1] == first[1]
        second = supervisor.pids

        os.kill(os.getpid(), signal.SIGHUP)  # the supervisor's: passed on to each worker
        hupped = await log.wait_for("worker_died", 2, exit_code=42)
        assert sorted((line["worker"], line["pid"]) for line in hupped) == list(enumerate(second))
        await log.wait_for("worker_restarted", 3)
        last = supervisor.pids
        os.kill(os.getpid(), signal.SIGTERM)
        async with asyncio.timeout(30):
            assert await running == 0
    finally:
        supervisor.stop()
        sock.close()
    for pid in (*first, *second, *last):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # reaped: gone
    assert log.found("workers_stopped")
    assert len(log.found("worker_died")) == 3  # stopping is no death
