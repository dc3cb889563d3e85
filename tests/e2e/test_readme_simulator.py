"""README's "Trying graphs against the simulator", followed literally: its three terminals'
commands, read from README.md, run as processes. The caller walks the support line's menu
at the pinned moment and reaches Ann.

Only what a shared test machine needs changes: free loopback ports instead of 8080 and
8089, the test Redis (``REDIS_URL``) and a channel id of its own. Agents and queues are
shared by the whole Redis, so the agents of the README's agents file are removed before
(an Ann left wrapping up would keep the caller waiting) and after (as the e2e stacks
remove theirs).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import textwrap
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from redis.asyncio import Redis

from service.runtime.agents import Agents
from service.runtime.serving import bind
from tests.paths import IVR, ROOT

SECTION = "## Trying graphs against the simulator"
ANN = "+31201234567"
PINNED = "2026-12-01T10:00:00+01:00"


@dataclass(frozen=True)
class Command:
    env: dict[str, str]
    """The variables the terminal exported and those set on the command line."""
    argv: list[str]


def readme_terminals() -> list[list[Command]]:
    """The commands of each ``sh`` block of the section, one block per terminal."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(SECTION) :]
    section = section[: section.index("\n## ", len(SECTION))]
    blocks = re.findall(r"^( *)```sh\n(.*?)^\1```", section, flags=re.S | re.M)
    terminals = []
    for _, block in blocks:
        exported: dict[str, str] = {}
        commands = []
        for line in textwrap.dedent(block).replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if not words:
                continue
            if words[0] == "export":
                for word in words[1:]:
                    name, value = word.split("=", 1)
                    exported[name] = value
                continue
            env = dict(exported)
            while "=" in words[0] and not words[0].startswith("-"):
                name, value = words.pop(0).split("=", 1)
                env[name] = value
            commands.append(Command(env, words))
        terminals.append(commands)
    return terminals


def test_the_section_has_three_terminals_as_the_text_says() -> None:
    sim, service, call = readme_terminals()
    assert [c.argv[:2] for c in (*sim, *service, *call)] == [
        [".venv/bin/ivr", "sim"], [".venv/bin/ivr", "serve"], [".venv/bin/ivr", "call"],
    ]  # fmt: skip
    keys = ("BIRD_ACCESS_KEY", "BIRD_WORKSPACE_ID", "BIRD_CHANNEL_ID", "BIRD_SIGNING_KEY")
    assert all(sim[0].env[key] == service[0].env[key] for key in keys)
    assert service[0].env["PUBLIC_BASE_URL"] == "http://127.0.0.1:8080"
    webhook = sim[0].argv[sim[0].argv.index("--webhook-url") + 1]
    assert webhook == service[0].env["PUBLIC_BASE_URL"] + "/webhooks/bird"
    at = sim[0].argv[sim[0].argv.index("--at") + 1]
    assert service[0].env["IVR_CLOCK"] == at


@dataclass(eq=False)
class Terminal:
    """One command running as a process; what it prints, read as it comes."""

    process: asyncio.subprocess.Process
    lines: dict[str, list[str]] = field(default_factory=lambda: {"out": [], "err": []})
    closed: set[str] = field(default_factory=set)
    """The streams read to their end."""
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def start(cls, command: Command, base_env: Mapping[str, str]) -> Terminal:
        argv = [*IVR, *command.argv[1:]]  # .venv/bin/ivr: the ivr command of this Python
        process = await asyncio.create_subprocess_exec(
            *argv, cwd=ROOT, env={**base_env, **command.env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        terminal = cls(process)
        assert process.stdout is not None
        assert process.stderr is not None
        for name, stream in (("out", process.stdout), ("err", process.stderr)):
            terminal.readers.append(asyncio.create_task(terminal._read(name, stream)))
        return terminal

    async def _read(self, name: str, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            async with self.changed:
                self.lines[name].append(line.decode().rstrip("\n"))
                self.changed.notify_all()
        async with self.changed:
            self.closed.add(name)
            self.changed.notify_all()

    def text(self, name: str) -> str:
        return "\n".join(self.lines[name])

    async def wait_for(self, name: str, pattern: str, timeout_s: float = 30) -> str:
        """The first line of ``name`` (out, err) matching ``pattern``, once printed."""

        def found() -> str | None:
            return next((line for line in self.lines[name] if re.search(pattern, line)), None)

        try:
            async with self.changed, asyncio.timeout(timeout_s):
                await self.changed.wait_for(lambda: found() is not None or name in self.closed)
        except TimeoutError:
            raise AssertionError(f"no {pattern!r} in {timeout_s} s:\n{self.text(name)}") from None
        line = found()
        assert line is not None, (
            f"exited without {pattern!r}:\n{self.text('out')}\n{self.text('err')}"
        )
        return line

    async def finish(self, timeout_s: float = 60) -> int:
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(*self.readers)
            return await self.process.wait()

    async def stop(self) -> int:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await self.finish(30)


async def remove_agents(redis_url: str, agents_file: str) -> None:
    """Take the agents of ``agents_file`` offline and delete them (they may not exist)."""
    ids = json.loads((ROOT / agents_file).read_text())["agents"]
    redis = Redis.from_url(redis_url)
    try:
        agents = Agents(redis)
        for agent_id in ids:
            await agents.set_status(agent_id, "offline")
            assert await agents.delete(agent_id) in ("deleted", "missing")
    finally:
        await redis.aclose()


def free_port() -> int:
    sock = bind()
    port: int = sock.getsockname()[1]
    sock.close()
    return port


async def test_following_the_readme_a_call_at_the_pinned_time_reaches_an_agent(
    redis_url: str,
) -> None:
    sim_port, service_port = free_port(), free_port()
    channel = f"readme-{uuid.uuid4()}"
    terminals = []
    for commands in readme_terminals():
        ran = []
        for command in commands:
            argv = [word.replace("8089", str(sim_port)).replace("8080", str(service_port))
                    for word in command.argv]  # fmt: skip
            env = {k: v.replace("8089", str(sim_port)).replace("8080", str(service_port))
                   for k, v in command.env.items()}  # fmt: skip
            if "BIRD_CHANNEL_ID" in env:
                env["BIRD_CHANNEL_ID"] = channel
            ran.append(Command(env, argv))
        terminals.append(ran)
    (sim_command,), (service_command,), (call_command,) = terminals
    service_command.env["REDIS_URL"] = redis_url
    agents_file = service_command.env["IVR_AGENTS_FILE"]
    await remove_agents(redis_url, agents_file)
    names = ("BIRD_", "PUBLIC_BASE_URL", "REDIS_URL", "IVR_", "LOG_")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(names)}

    sim = await Terminal.start(sim_command, base_env)
    service: Terminal | None = None
    try:
        pinned = await sim.wait_for("err", r"^clock pinned:")
        assert f"starts at {PINNED}" in pinned
        service = await Terminal.start(service_command, base_env)
        await service.wait_for("out", r"service_listening")
        clock_line = await service.wait_for("out", r"clock_pinned")
        assert PINNED in clock_line
        assert "warning" in clock_line

        call = await Terminal.start(call_command, base_env)
        status = await call.finish()
        out = call.text("out")
        assert status == 0, f"{out}\n{call.text('err')}"
        assert re.search(rf"\(ivr call 1\): \+31612345678 -> \+31970102030, at {PINNED[:13]}", out)
        assert re.search(
            r"s  heard     For billing, press 1 or say billing\. For a technician, press 2\.$",
            out,
            re.M,
        )
        assert re.search(r"s  pressed   1$", out, re.M)
        assert re.search(rf"s  reached   {re.escape(ANN)}$", out, re.M)
        assert f"offers: {ANN} answered (ended by agent)" in out
        assert "does not fit" not in out + call.text("err")
        # The simulator prints the transcript too, once the call has ended.
        await sim.wait_for("out", rf"s  reached   {re.escape(ANN)}$")
        await sim.wait_for("out", rf"offers: {re.escape(ANN)} answered")
    finally:
        stopped = [await sim.stop()]
        if service is not None:
            stopped.append(await service.stop())
        await remove_agents(redis_url, agents_file)
    assert stopped == [0, 0], (sim.text("err"), service.text("err") if service else "")
