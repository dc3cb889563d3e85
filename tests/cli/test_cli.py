"""The ``ivr`` command as a user runs it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.cli import demo
from service.runtime.serving import bind, serve, url_of
from service.sim import AgentScript, BirdSimulator, CallerScript
from tests.paths import IVR, ivr

TECH = "sip:tech@pbx.example.com"


def clean_env(**extra: str) -> dict[str, str]:
    names = ("BIRD_", "PUBLIC_BASE_URL", "REDIS_URL", "IVR_", "LOG_", "NO_COLOR", "FORCE_COLOR")
    env = {k: v for k, v in os.environ.items() if not k.startswith(names)}
    env.update(extra)
    return env


def process_against_a_sim(
    **sim_options: Any,
) -> tuple[int, BirdSimulator, socket.socket, dict[str, str]]:
    """For ``ivr serve`` as a process against a simulator on loopback: the port it is
    to listen on, the simulator (its socket bound, to serve once the service listens)
    and the environment the service needs to reach it (fresh keys, JSON logs)."""
    reserved = bind()
    port = reserved.getsockname()[1]
    reserved.close()
    service_url = f"http://127.0.0.1:{port}"
    keys = {
        "BIRD_ACCESS_KEY": secrets.token_hex(8),
        "BIRD_WORKSPACE_ID": str(uuid.uuid4()),
        "BIRD_CHANNEL_ID": str(uuid.uuid4()),
        "BIRD_SIGNING_KEY": secrets.token_hex(8),
    }
    bird_sock = bind()
    sim = BirdSimulator(
        access_key=keys["BIRD_ACCESS_KEY"],
        workspace_id=keys["BIRD_WORKSPACE_ID"],
        channel_id=keys["BIRD_CHANNEL_ID"],
        signing_key=keys["BIRD_SIGNING_KEY"],
        subscription_url=f"{service_url}/webhooks/bird",
        **{"time_scale": 0.01, **sim_options},
    )
    env = clean_env(**keys, PUBLIC_BASE_URL=service_url, BIRD_API_URL=url_of(bird_sock),
                    LOG_FORMAT="json")  # fmt: skip
    return port, sim, bird_sock, env


def test_validate_accepts_the_shipped_graphs() -> None:
    result = ivr("validate", "ivr_graphs/support-line.json")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ivr_graphs/support-line.json: ok (id support-line")


def test_validate_reports_every_problem_with_file_and_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "id": "bad",
                "start": "menu",
                "nodes": {
                    "menu": {"type": "menu", "say": "Hi", "options": {"1": "x"}, "on_failure": "y"}
                },
            }
        )
    )
    result = ivr("validate", "ivr_graphs/support-line.json", str(bad))
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{bad}: /nodes/menu/options/1: exit names 'x', which is not a node",
        f"{bad}: /nodes/menu/on_failure: exit names 'y', which is not a node",
        f"{bad}: /numbers: warning: answers no number: only reachable as IVR_DEFAULT_GRAPH or "
        "for outbound calls",
        "2 errors, 1 warning in 3 files",  # support-line.json, the queues.json beside it
    ]
    assert "Traceback" not in result.stderr


def test_serve_without_settings_names_every_missing_one_and_exits_2() -> None:
    result = ivr("serve", env=clean_env(LOG_LEVEL="loud"))
    assert result.returncode == 2
    assert result.stderr == (
        "ivr: error: missing: BIRD_ACCESS_KEY, BIRD_WORKSPACE_ID, BIRD_CHANNEL_ID, "
        "BIRD_SIGNING_KEY, PUBLIC_BASE_URL; LOG_LEVEL 'loud' is not one of debug, info, "
        "warning, error\n"
    )


def test_serve_refuses_an_invalid_graph_directory(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text("{")
    env = clean_env(
        BIRD_ACCESS_KEY="a", BIRD_WORKSPACE_ID="w", BIRD_CHANNEL_ID="c", BIRD_SIGNING_KEY="s",
        PUBLIC_BASE_URL="https://ivr.example.com", IVR_GRAPHS_DIR=str(tmp_path),
    )  # fmt: skip
    result = ivr("serve", env=env)
    assert result.returncode == 1
    assert f"{tmp_path / 'broken.json'}: /: not valid JSON" in result.stderr
    assert "refusing to start" in result.stderr
    assert "Traceback" not in result.stderr


FRONT_DESK = {
    "id": "front-desk",
    "numbers": ["+31970102030"],
    "start": "menu",
    "nodes": {
        "menu": {
            "type": "menu",
            "say": "Press 1 for sales, 2 for support.",
            "options": {"1": "sales", "2": "support"},
            "on_failure": "bye",
        },
        "sales": {"type": "transfer", "to": "+31201234567", "on_failure": "bye"},
        "support": {"type": "transfer", "to": TECH, "on_failure": "bye"},
        "bye": {"type": "hangup", "say": "Goodbye."},
    },
}


async def test_ivr_serve_pointed_at_another_bird_drives_a_call_to_the_right_person(
    tmp_path: Path,
) -> None:
    """`ivr serve` as a process (its own embedded Redis), BIRD_API_URL at the simulator.
    (An always-open graph: the process runs on the real clock.)"""
    (tmp_path / "front-desk.json").write_text(json.dumps(FRONT_DESK))
    port, sim, bird_sock, env = process_against_a_sim(
        agents={TECH: AgentScript("answer", answer_after_s=1, talk_s=2)}
    )
    env["IVR_GRAPHS_DIR"] = str(tmp_path)
    process = await asyncio.create_subprocess_exec(
        *IVR, "serve", "--host", "127.0.0.1", "--port", str(port),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    seen: list[dict[str, object]] = []
    try:
        async with asyncio.timeout(30):
            while True:
                line = await process.stdout.readline()
                assert line, "ivr serve exited before listening"
                if json.loads(line)["event"] == "service_listening":
                    break
        async with serve(sim.app, sock=bird_sock):
            call_id = await sim.place_inbound_call(
                CallerScript("cli", "+31612345678", "+31970102030", ("2",))
            )
            transcript = await sim.wait_ended(call_id, timeout_s=30)
        assert transcript.reached == TECH
        assert transcript.texts("pressed") == ["2"]
        assert [r.operation for r in sim.requests_for(call_id)] == [
            "answerCall", "gather", "bridge",
        ]  # fmt: skip
        assert all(r.accepted and not r.problems for r in sim.requests)

        # kill -HUP reloads the graph directory.
        changed = {**FRONT_DESK, "description": "changed"}
        (tmp_path / "front-desk.json").write_text(json.dumps(changed))
        process.send_signal(signal.SIGHUP)
        async with asyncio.timeout(30):
            while True:
                line = await process.stdout.readline()
                assert line, "ivr serve exited instead of reloading"
                logged_line = json.loads(line)
                seen.append(logged_line)
                if logged_line["event"] == "graphs_reloaded":
                    break
        assert list(logged_line["changed"]) == ["front-desk"]
    finally:
        await sim.aclose()
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            rest, errors = await process.communicate()
    assert process.returncode == 0, errors.decode()
    logged = seen + [json.loads(line) for line in rest.decode().splitlines()]
    events = [line["event"] for line in logged if line.get("call_id") == call_id]
    assert events[:2] == ["call_started", "call_answered"]
    assert "agent_connected" in events
    assert "31612345678" not in rest.decode()  # the caller's number is masked


class Replica:
    """One ``ivr serve`` process, its JSON log read line by line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.logged: list[dict[str, object]] = []
        self.url = ""

    @classmethod
    async def start(
        cls,
        graphs: Path,
        redis_url: str | None,
        *,
        port: int | None = None,
        bird: Mapping[str, str] | None = None,
    ) -> Replica:
        """``redis_url`` None: the process starts its own embedded Redis. ``bird``:
        the Bird settings (keys, ``BIRD_API_URL``); ``port``: where it listens
        (``PUBLIC_BASE_URL`` is there)."""
        if port is None:
            reserved = bind()
            port = reserved.getsockname()[1]
            reserved.close()
        settings = {
            "BIRD_ACCESS_KEY": "a", "BIRD_WORKSPACE_ID": "w", "BIRD_CHANNEL_ID": "c",
            "BIRD_SIGNING_KEY": "s", "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
            "IVR_GRAPHS_DIR": str(graphs), "LOG_FORMAT": "json",
            **({"REDIS_URL": redis_url} if redis_url else {}), **(bird or {}),
        }  # fmt: skip
        env = clean_env(**settings)
        process = await asyncio.create_subprocess_exec(
            *IVR, "serve", "--host", "127.0.0.1", "--port", str(port),
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        replica = cls(process)
        replica.url = str((await replica.next("service_listening"))["url"])
        return replica

    async def next(self, event: str) -> dict[str, object]:
        """The next log line of ``event`` (the process logs it, or the test fails)."""
        assert self.process.stdout is not None
        async with asyncio.timeout(30):
            while True:
                line = await self.process.stdout.readline()
                assert line, f"ivr serve exited before logging {event}"
                logged: dict[str, object] = json.loads(line)
                self.logged.append(logged)
                if logged["event"] == event:
                    return logged

    async def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await self.process.communicate()


async def test_a_reload_on_one_replica_is_served_by_every_replica(
    tmp_path: Path, redis_url: str
) -> None:
    graph_id = f"desk-{uuid.uuid4().hex[:8]}"  # the test Redis may be shared
    desk = {**FRONT_DESK, "id": graph_id}
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "desk.json").write_text(json.dumps(desk))
    a = await Replica.start(tmp_path / "a", redis_url)
    b = await Replica.start(tmp_path / "b", redis_url)
    try:
        changed = {**desk, "description": "changed on a"}
        (tmp_path / "a" / "desk.json").write_text(json.dumps(changed))
        a.process.send_signal(signal.SIGHUP)
        reloaded = await a.next("graphs_reloaded")
        adopted = await b.next("graphs_adopted")
    finally:
        await a.stop()
        await b.stop()
    assert list(reloaded["changed"]) == [graph_id]  # type: ignore[call-overload]
    assert adopted["versions"] == reloaded["versions"]


async def test_an_embedded_redis_that_dies_is_restarted_and_health_says_so(
    tmp_path: Path,
) -> None:
    (tmp_path / "desk.json").write_text(json.dumps(FRONT_DESK))
    serving = await Replica.start(tmp_path, None)
    try:
        async with httpx.AsyncClient(base_url=serving.url) as http:
            assert (await http.get("/healthz")).status_code == 200
            pgrep = await asyncio.create_subprocess_exec(
                "pgrep", "-P", str(serving.process.pid), "redis-server",
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            children, _ = await pgrep.communicate()
            os.kill(int(children.split()[0]), signal.SIGKILL)
            died = await serving.next("embedded_redis_died")
            await serving.next("embedded_redis_restarted")
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/readyz")).status_code == 200
    finally:
        await serving.stop()
    assert died["level"] == "error"


async def test_a_replica_started_after_another_was_killed_finishes_its_calls(
    tmp_path: Path, redis_url: str
) -> None:
    """Worker A answers a call and asks the caller for a key, then is SIGKILLed; B,
    started in its place (same port, as a replacement pod would), gets Bird's
    redelivery of the caller's key and connects them to the right person."""
    (tmp_path / "front-desk.json").write_text(json.dumps(FRONT_DESK))
    reserved = bind()
    port = reserved.getsockname()[1]
    reserved.close()
    keys = {
        "BIRD_ACCESS_KEY": secrets.token_hex(8),
        "BIRD_WORKSPACE_ID": str(uuid.uuid4()),
        "BIRD_CHANNEL_ID": str(uuid.uuid4()),
        "BIRD_SIGNING_KEY": secrets.token_hex(8),
    }
    bird_sock = bind()
    sim = BirdSimulator(
        access_key=keys["BIRD_ACCESS_KEY"], workspace_id=keys["BIRD_WORKSPACE_ID"],
        channel_id=keys["BIRD_CHANNEL_ID"], signing_key=keys["BIRD_SIGNING_KEY"],
        subscription_url=f"http://127.0.0.1:{port}/webhooks/bird",
        agents={TECH: AgentScript("answer", answer_after_s=1, talk_s=2)},
        time_scale=0.05, max_attempts=12, retry_delay_s=5,  # Bird retries for hours
    )  # fmt: skip
    bird = {**keys, "BIRD_API_URL": url_of(bird_sock)}
    a = await Replica.start(tmp_path, redis_url, port=port, bird=bird)
    try:
        async with serve(sim.app, sock=bird_sock):
            call_id = await sim.place_inbound_call(
                CallerScript("killed", "+31612345678", "+31970102030", ("2",))
            )
            await sim.wait_for(call_id, "heard", "Press 1")
            a.process.kill()
            await a.process.wait()
            b = await Replica.start(tmp_path, redis_url, port=port, bird=bird)
            try:
                transcript = await sim.wait_ended(call_id, timeout_s=60)
            finally:
                await b.stop()
    finally:
        await sim.aclose()
    assert transcript.reached == TECH
    assert sim.performed(call_id, "answer") == 1
    assert sim.performed(call_id, "bridge") == 1


# -- IVR_AGENTS_FILE: agents created when `ivr serve` starts ---------------------------

AGENTS_QUEUES = {"queues": {"support": {}, "billing": {"tier_wait_s": 30}}}


def agents_env(graphs: Path, agents_file: Path) -> dict[str, str]:
    (graphs / "front-desk.json").write_text(json.dumps(FRONT_DESK))
    (graphs / "queues.json").write_text(json.dumps(AGENTS_QUEUES))
    return clean_env(
        BIRD_ACCESS_KEY="a", BIRD_WORKSPACE_ID="w", BIRD_CHANNEL_ID="c", BIRD_SIGNING_KEY="s",
        PUBLIC_BASE_URL="https://ivr.example.com", IVR_GRAPHS_DIR=str(graphs),
        IVR_AGENTS_FILE=str(agents_file), REDIS_URL="redis://127.0.0.1:1",
    )  # fmt: skip


def agents_document(**entry: object) -> str:
    return json.dumps({"agents": {"ann": {"address": "+31612345678", **entry}}})


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "cannot read: No such file or directory"),
        ("{", "not valid JSON: Expecting property name enclosed in double quotes (line 1)"),
        (b"\xff\xfe{}", "not UTF-8 text"),
        ('{"people": {}}', '/: must be {"agents": {"ID": {...}}}'),
        (agents_document(address="0612345678"),
         "/agents/ann/address: must be an E.164 number (+31612345678) or a sip: URI"),
        (agents_document(queues={"sales": {}}),
         "/agents/ann/queues/sales: no queue 'sales' in queues.json (known: billing, support)"),
        (agents_document(queues={"support": {"level": 10}}),
         "/agents/ann/queues/support/level: must be an integer 1..9"),
        (agents_document(status="away"),
         "/agents/ann/status: must be one of offline, available, on_break"),
        (json.dumps({"agents": {"ann smith": {"address": "+31612345678"}}}),
         "/agents/ann smith: an agent id is 1-64 letters, digits, '_', '.' or '-', starting "
         "with a letter or digit"),
    ],
)  # fmt: skip
def test_serve_refuses_a_bad_agents_file_with_one_line(
    tmp_path: Path, content: str | bytes | None, problem: str
) -> None:
    agents_file = tmp_path / "agents.json"
    if isinstance(content, bytes):
        agents_file.write_bytes(content)
    elif content is not None:
        agents_file.write_text(content)
    (tmp_path / "graphs").mkdir()
    result = ivr("serve", env=agents_env(tmp_path / "graphs", agents_file))
    assert result.returncode == 2
    assert result.stderr == f"ivr: error: IVR_AGENTS_FILE: {agents_file}: {problem}\n"
    assert result.stdout == ""  # refused before starting: no Redis was needed


async def test_serve_creates_the_agents_of_the_agents_file(tmp_path: Path) -> None:
    agents_file = tmp_path / "agents.json"
    agents_file.write_text(json.dumps({"agents": {
        "ann": {"name": "Ann", "address": "+31612345678", "queues": {"support": {}}},
        "bob": {"address": "sip:bob@pbx.example.com", "status": "on_break",
                "queues": {"billing": {"level": 2, "position": 1}}},
    }}))  # fmt: skip
    (tmp_path / "graphs").mkdir()
    env = agents_env(tmp_path / "graphs", agents_file)
    token = secrets.token_urlsafe(24)
    # Replica passes its ``bird`` settings on as they are: the agents file and the token.
    extra = {"IVR_AGENTS_FILE": env["IVR_AGENTS_FILE"], "IVR_ADMIN_TOKEN": token}
    serving = await Replica.start(tmp_path / "graphs", None, bird=extra)  # its own Redis
    try:
        async with httpx.AsyncClient(
            base_url=serving.url, headers={"authorization": f"Bearer {token}"}
        ) as http:
            for _ in range(200):  # created as soon as the service has Redis
                agents = (await http.get("/agents")).json()["agents"]
                if len(agents) == 2:
                    break
                await asyncio.sleep(0.05)
            board = (await http.get("/queues")).json()["queues"]
    finally:
        await serving.stop()
    assert [(a["id"], a["name"], a["status"], a["state"], a["queues"]) for a in agents] == [
        ("ann", "Ann", "available", "idle", {"support": {"level": 1, "position": 1}}),
        ("bob", "bob", "on_break", "idle", {"billing": {"level": 2, "position": 1}}),
    ]
    assert board["support"]["agents"]["by_status"]["available"] == 1
    assert board["billing"]["agents"]["by_status"]["on_break"] == 1


# -- ivr demo: the call center, as `make demo` runs it ---------------------------------


def test_the_demo_shows_a_call_center(tmp_path: Path) -> None:
    """`ivr demo` end to end (its own embedded Redis, the simulator in real time: about
    a minute). It checks every call itself (exit 1 otherwise); here: what it shows.
    Run from a shell set up for production (a Redis it must not touch, here one that is
    not there, other graphs, another directory) and in colour, as in a terminal."""
    production = clean_env(REDIS_URL="redis://127.0.0.1:1/0", FORCE_COLOR="1",
                           IVR_GRAPHS_DIR=str(tmp_path / "production-graphs"))  # fmt: skip
    result = subprocess.run(  # noqa: S603 - our own CLI
        [*IVR, "demo"], capture_output=True, text=True, env=production, cwd=tmp_path,
        timeout=240, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout[-3000:]
    coloured = result.stdout
    assert coloured.startswith(f"\x1b[1m{demo.banner('+31970102030')}\x1b[0m\n")
    assert "\x1b[36m=== Call 1: Christmas Day: voicemail" in coloured
    assert coloured.rstrip("\n").endswith("all valid.\x1b[0m")
    assert coloured.splitlines()[-1].startswith("\x1b[32mivr demo: all ")
    out = re.sub(r"\x1b\[[0-9;]*m", "", coloured)
    assert out.startswith(f"ivr demo: {demo.CALLS} calls: 8 to +31970102030 (support-line)")
    assert f"ivr demo: all {demo.CALLS} calls ended where their graph says" in out
    # Callers queued and heard their place; the missing agent went on break.
    assert "heard     You are next in line." in out
    assert "heard     You are number 2 in line." in out
    summary = out[out.index("=== The call center ===") :]
    assert summary.count(", taken by ann") == 3
    assert summary.count(", taken by dan; cyd missed it") == 2
    assert "cyd missed it and was put on break" in summary
    assert re.search(r"^  cyd  support  on_break ", summary, flags=re.M)
    assert re.search(r"^  billing  joined 3, answered 3, handled 3", summary, flags=re.M)
    # The technician's caller who found Dan busy was called back by him, in their turn.
    assert "asked to be called back, called back" in summary
    assert "taken by dan" in summary[summary.index("asked to be called back") :].splitlines()[0]
    assert "--- called back in their turn: the follow-up call" in out
    assert "heard     Hello, this is the call back you asked for." in out
    assert re.search(r"^  support  joined 3, answered 3, handled 3", summary, flags=re.M)
    # What the service's GET /metrics counted meanwhile: every call, started and ended.
    counted = out[out.index("=== Metrics (GET /metrics") :]

    def metric(title: str) -> tuple[int, str]:
        (found,) = re.findall(rf"^  {title} +(\d+)(.*)$", counted, flags=re.M)
        return int(found[0]), found[1]

    started, by_graph = metric("calls started")
    assert started == demo.CALLS + 1  # and the follow-up call of the callback
    assert "support-line inbound 8" in by_graph
    assert "appointment-reminder outbound 2" in by_graph  # a person and a machine
    ended, by_outcome = metric("calls ended")
    assert ended == started
    assert "agent_connected 6" in by_outcome  # 3 taken by ann, 3 by dan
    deliveries, by_result = metric("deliveries")
    applied = re.search(r"applied (\d+)", by_result)
    assert applied is not None
    assert 0 < int(applied[1]) <= deliveries
    assert "rejected" not in by_result
    requests, by_command = metric("Bird requests")
    assert f"; {requests} requests to Bird, all valid." in out  # as the simulator counted
    assert "answer 8" in by_command  # the 8 incoming calls
    assert "create_call 3" in by_command  # the two reminders and the call back
    assert metric("Bird errors")[0] == 0
    assert metric("offers missed") == (2, "  support 2")  # cyd missed both of hers
