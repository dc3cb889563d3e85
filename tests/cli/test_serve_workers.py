"""``ivr serve --workers N`` as a user runs it: one port, N worker processes that the
kernel hands connections to, one Redis, metrics added up across them, a dead worker
replaced, SIGHUP passed on, SIGTERM stopping them all."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import tempfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from service.runtime.serving import bind, serve
from service.sim import AgentScript, CallerScript
from tests.cli.test_cli import FRONT_DESK, TECH, clean_env, process_against_a_sim
from tests.paths import IVR, ivr
from tests.support import log_lines

Line = dict[str, object]


@pytest.mark.parametrize(
    ("value", "shown"),
    [("0", "0"), ("-2", "-2"), ("two", "'two'"), ("1.5", "'1.5'")],
)
def test_workers_must_be_a_whole_number_of_one_or_more(value: str, shown: str) -> None:
    done = ivr("serve", "--workers", value, env=clean_env())  # before any setting is read
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        f"ivr serve: error: argument --workers: {shown} is not a number of worker processes "
        "(1 or more)"
    )
    assert "Traceback" not in done.stderr


def test_serve_help_documents_workers() -> None:
    done = ivr("serve", "--help")
    assert done.returncode == 0
    text = " ".join(done.stdout.split())
    assert "--workers N worker processes sharing the port, one per core (1: one process)" in text
    assert "--worker " not in text  # a worker's own option is not the user's


def test_a_port_taken_stops_the_parent_with_one_line_before_any_worker(tmp_path: Path) -> None:
    (tmp_path / "desk.json").write_text(json.dumps(FRONT_DESK))
    taken = bind("127.0.0.1", 0)
    port = taken.getsockname()[1]
    env = clean_env(
        BIRD_ACCESS_KEY="a", BIRD_WORKSPACE_ID="w", BIRD_CHANNEL_ID="c", BIRD_SIGNING_KEY="s",
        PUBLIC_BASE_URL="https://ivr.example.com", IVR_GRAPHS_DIR=str(tmp_path),
        REDIS_URL="redis://127.0.0.1:1/0",
    )  # fmt: skip
    try:
        done = ivr("serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2", env=env)
    finally:
        taken.close()
    assert done.returncode == 2
    assert done.stderr == f"ivr: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert "worker" not in done.stdout  # none was started


@dataclass(eq=False)
class Served:
    """``ivr serve --workers N`` as a process: its JSON log lines (the parent's and the
    workers', on one stdout) as they come."""

    process: asyncio.subprocess.Process
    lines: list[Line] = field(default_factory=list)
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    reader: asyncio.Task[None] | None = None
    errors: bytes = b""

    @classmethod
    async def start(cls, env: dict[str, str], port: int, workers: int = 2) -> Served:
        process = await asyncio.create_subprocess_exec(
            *IVR, "serve", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        served = cls(process)
        served.reader = asyncio.create_task(served._read())
        return served

    async def _read(self) -> None:
        assert self.process.stdout is not None
        assert self.process.stderr is not None
        while line := await self.process.stdout.readline():
            async with self.changed:
                self.lines.append(json.loads(line))
                self.changed.notify_all()
        self.errors = await self.process.stderr.read()
        async with self.changed:
            self.changed.notify_all()

    def found(self, event: str, **fields: object) -> list[Line]:
        return log_lines(self.lines, event, **fields)

    async def wait_for(self, event: str, count: int = 1, **fields: object) -> list[Line]:
        """The first ``count`` lines of ``event`` (with ``fields``), once logged."""

        def done() -> bool:
            return len(self.found(event, **fields)) >= count or self.reader_done()

        try:
            async with self.changed, asyncio.timeout(60):
                await self.changed.wait_for(done)
        except TimeoutError:
            raise AssertionError(f"no {event} {fields} in 60 s:\n{self.lines}") from None
        found = self.found(event, **fields)
        assert len(found) >= count, f"exited without {event} {fields}: {self.errors!r}"
        return found[:count]

    def reader_done(self) -> bool:
        return self.reader is not None and self.reader.done()

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            if self.reader is not None:
                await self.reader
            return await self.process.wait()


def fresh_connections() -> httpx.AsyncClient:
    """A client that opens a new connection for each request: each goes to whichever
    worker accepts it."""
    return httpx.AsyncClient(
        trust_env=False, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)
    )


Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(families: Iterable[Metric]) -> Samples:
    found: Samples = {}
    for family in families:
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            found[key] = found.get(key, 0.0) + sample.value
    return found


def samples(text: str) -> Samples:
    return _samples(text_string_to_metric_families(text))


def total(found: Samples, name: str,
          keep: Callable[[dict[str, str]], bool] = lambda _: True) -> float:  # fmt: skip
    return sum(v for (n, labels), v in found.items() if n == name and keep(dict(labels)))


def unauthorized(labels: dict[str, str]) -> bool:
    return labels == {"outcome": "rejected", "reason": "unauthorized"}


def counted_by(metrics_dir: Path, pid: int) -> float:
    """The unsigned deliveries one worker counted: its own file of the directory."""
    own = metrics_dir / f"counter_{pid}.db"
    if not own.exists():
        return 0.0
    with tempfile.TemporaryDirectory() as alone:
        shutil.copy(own, alone)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=alone)  # type: ignore[no-untyped-call]
        return total(_samples(registry.collect()), "ivr_webhook_deliveries_total", unauthorized)


async def counted_by_each(metrics_dir: Path, pids: list[int]) -> list[float]:
    return [await asyncio.to_thread(counted_by, metrics_dir, pid) for pid in pids]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


async def test_two_workers_share_the_port_a_call_their_metrics_and_are_kept_running(
    tmp_path: Path, redis_url: str
) -> None:
    graph_id = f"desk-{uuid.uuid4().hex[:8]}"  # the test Redis may be shared
    (tmp_path / "desk.json").write_text(json.dumps({**FRONT_DESK, "id": graph_id}))
    port, sim, bird_sock, env = process_against_a_sim(
        agents={TECH: AgentScript("answer", answer_after_s=1, talk_s=2)}
    )
    env.update(REDIS_URL=redis_url, IVR_GRAPHS_DIR=str(tmp_path))
    served = await Served.start(env, port)
    url = f"http://127.0.0.1:{port}"
    try:
        (started,) = await served.wait_for("workers_started")
        assert started["workers"] == 2
        assert started["url"] == url
        assert started["embedded_redis"] is False
        pids = list(started["pids"])  # type: ignore[call-overload]
        metrics_dir = Path(str(started["metrics_dir"]))
        assert await asyncio.to_thread(
            metrics_dir.is_dir
        )  # a private one: PROMETHEUS_MULTIPROC_DIR is unset
        listening = served.found("service_listening")
        assert sorted((line["worker"], line["pid"]) for line in listening) == [
            (0, pids[0]), (1, pids[1]),
        ]  # fmt: skip

        # Both workers serve: unsigned deliveries, each on a new connection, until each
        # worker has counted some (the kernel picks which accepts).
        sent = 0
        async with fresh_connections() as http, asyncio.timeout(120):
            while not all(await counted_by_each(metrics_dir, pids)):
                for _ in range(10):
                    answer = await http.post(url + "/webhooks/bird", content=b"{}")
                    assert answer.status_code == 401
                    sent += 1
            assert sum(await counted_by_each(metrics_dir, pids)) == sent
            # GET /metrics from either worker adds up both, exactly.
            for _ in range(6):
                scraped = samples((await http.get(url + "/metrics")).text)
                assert total(scraped, "ivr_webhook_deliveries_total", unauthorized) == sent

        # A call walks through to its end, whichever worker each delivery reaches.
        async with serve(sim.app, sock=bird_sock):
            call_id = await sim.place_inbound_call(
                CallerScript("workers", "+31612345678", "+31970102030", ("2",))
            )
            transcript = await sim.wait_ended(call_id, timeout_s=60)
        assert transcript.reached == TECH
        assert sim.performed(call_id, "answer") == 1
        assert sim.performed(call_id, "bridge") == 1
        async with fresh_connections() as http:
            scraped = samples((await http.get(url + "/metrics")).text)
        handled = total(
            scraped, "ivr_webhook_deliveries_total", lambda labels: not unauthorized(labels)
        )
        assert handled == len(sim.deliveries)
        assert (
            total(scraped, "ivr_calls_started_total", lambda labels: labels["graph"] == graph_id)
            == 1
        )
        assert (
            total(scraped, "ivr_calls_ended_total", lambda labels: labels["graph"] == graph_id) == 1
        )

        # SIGHUP to the parent: every worker reloads its graphs.
        served.process.send_signal(signal.SIGHUP)
        for worker in (0, 1):
            await served.wait_for("graphs_reloaded", worker=worker)

        # A worker killed is logged and replaced; the port keeps answering, and the
        # dead worker's counts stay counted.
        os.kill(pids[0], signal.SIGKILL)
        (died,) = await served.wait_for("worker_died", pid=pids[0])
        assert (died["worker"], died["exit_code"], died["level"]) == (0, -9, "error")
        (restarted,) = await served.wait_for("worker_restarted", worker=0)
        replacement = int(str(restarted["pid"]))
        assert replacement not in pids
        async with fresh_connections() as http:
            for _ in range(20):
                assert (await http.get(url + "/healthz")).status_code == 200
            scraped = samples((await http.get(url + "/metrics")).text)
        assert total(scraped, "ivr_webhook_deliveries_total", unauthorized) == sent
    finally:
        await sim.aclose()
        code = await served.stop()
    assert code == 0, served.errors.decode()
    assert served.found("workers_stopped")
    assert len(served.found("service_stopped")) == 2  # each stopped as uvicorn does
    for pid in (*pids, replacement):
        assert gone(pid)
    assert not await asyncio.to_thread(
        metrics_dir.exists
    )  # the private directory is removed at exit
    # Every line of a worker says which it is.
    for line in served.lines:
        if line["event"] in ("service_started", "service_listening", "call_started"):
            assert line["worker"] in (0, 1)
            assert "pid" in line
    assert re.fullmatch(r"[0-9a-f-]+", call_id)


async def test_without_redis_url_the_workers_share_the_parents_embedded_redis(
    tmp_path: Path,
) -> None:
    (tmp_path / "desk.json").write_text(json.dumps(FRONT_DESK))
    port, _, bird_sock, env = process_against_a_sim()
    bird_sock.close()
    env.update(IVR_GRAPHS_DIR=str(tmp_path))
    served = await Served.start(env, port)
    try:
        (started,) = await served.wait_for("workers_started")
        assert started["embedded_redis"] is True
        pids = list(started["pids"])  # type: ignore[call-overload]
        redis_servers = await asyncio.create_subprocess_exec(
            "pgrep", "-P", str(served.process.pid), "redis-server",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        found, _ = await redis_servers.communicate()
        (redis_pid,) = (int(pid) for pid in found.split())  # one, the parent's
        async with fresh_connections() as http:
            for _ in range(10):
                assert (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
    finally:
        code = await served.stop()
    assert code == 0, served.errors.decode()
    for pid in (*pids, redis_pid):
        assert gone(pid)
