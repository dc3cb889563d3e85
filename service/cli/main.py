"""The ``ivr`` command: ``serve``, ``validate``, ``sim`` and ``demo``.

Every failure a user can cause ends with one clear message and a non-zero exit,
never a traceback: 2 for bad settings or arguments, 1 for invalid graphs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from service import __version__
from service.graphs.simulate import AGENT_SYNTAX, DEFAULT_AGENT

if TYPE_CHECKING:
    from service.core.graph import GraphSet
    from service.core.queues import Agent, AgentStatus
    from service.runtime.redis_server import EmbeddedRedis
    from service.runtime.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ivr", description="IVR orchestration service for the Bird Voice API."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the service (settings from the environment, see README)"
    )
    serve.add_argument("--host", default="0.0.0.0", help="interface to listen on (%(default)s)")  # noqa: S104
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (%(default)s)")

    validate = commands.add_parser(
        "validate", help="check IVR graph files (or every graph of a directory) against the format"
    )
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE|DIR")

    simulate = commands.add_parser(
        "simulate",
        help="walk a graph offline with a script of keys and print the transcript",
        description="Walk a graph offline (no server, no Redis, no network). Exits 1 when "
        "the script does not fit the graph.",
    )
    simulate.add_argument("file", type=Path, metavar="FILE")
    simulate.add_argument(
        "--keys",
        default="",
        help="inputs in order, comma-separated; _ is silence (1,4321#,_,2); a queue's "
        "callback offer takes one too (1 takes the callback)",
    )
    simulate.add_argument(
        "--at", help="the moment of the call, ISO-8601 with offset (default: now)"
    )
    simulate.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", help="a variable (repeat)"
    )
    simulate.add_argument("--caller", default="+31600000000", help="the caller's number")
    simulate.add_argument("--called", help="the number called (default: the graph's first)")
    simulate.add_argument(
        "--http-fixture",
        type=Path,
        metavar="FILE",
        help='answers for http nodes: {"METHOD URL": {"status", "json"}}',
    )
    simulate.add_argument(
        "--agent",
        default=DEFAULT_AGENT,
        metavar="SCRIPT",
        help=f"what agents do, offer by offer: {AGENT_SYNTAX}, the last repeating. In a queue: "
        "answer[:WAIT_S] (an agent is free after WAIT_S s in line, 30 if not given, and "
        "answers), no-answer|busy|failed[:WAIT_S] (offered after WAIT_S s, does not take "
        "the call: the caller is back on hold), none (nobody logged in). A transfer is "
        "connected by answer and fails otherwise. E.g. no-answer,answer:60 (default: "
        "%(default)s)",
    )
    simulate.add_argument(
        "--outbound",
        action="store_true",
        help="an outbound call: the graph starts when the callee answers",
    )
    simulate.add_argument("--json", action="store_true", help="print the result as JSON")

    render = commands.add_parser("render", help="print a graph as a Mermaid (or dot) flowchart")
    render.add_argument("file", type=Path, metavar="FILE")
    render.add_argument("--format", choices=("mermaid", "dot"), default="mermaid")

    from service.cli import replay as replay_cli

    replay = commands.add_parser(
        "replay",
        help="re-run a call's recorded inputs against a draft graph: where its path diverges",
        description="Replay a call's journal (kept in the service's Redis for CALL_TTL_S) "
        "against a draft graph: the caller's keys, silences and agents' answers, at their "
        "times. Exits 0 when the draft walks the same path, 1 when it diverges, 2 when the "
        "replay cannot run.",
    )
    replay_cli.add_arguments(replay)

    from service.sim import cli as sim_cli

    sim = commands.add_parser(
        "sim", help="run the Bird simulator: a fake Voice API with scripted callers"
    )
    sim_cli.add_arguments(sim)

    commands.add_parser(
        "demo",
        help="embedded Redis + simulator + service: a call center of 3 agents and 9 calls "
        "(8 callers, 1 outbound reminder), transcripts, logs and a summary",
        description="Seat 3 agents (PUT /agents/{id}) and place 9 calls, in about a minute: "
        "8 callers of the support line a few seconds apart (billing callers queue for Ann and "
        "hear their place; Cyd misses the technician's callers and is put on break, Dan takes "
        "them; one who finds Dan busy asks to be called back and is, in their turn; a "
        "Christmas Day voicemail; a caller who never presses a key) and 1 outbound "
        "appointment reminder (POST /calls). Prints each call's transcript and log lines, then "
        "who waited how long, who took them, and GET /agents and GET /queues. Exits 1 if a "
        "call ends anywhere else. Uses REDIS_URL when set, else an embedded Redis.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args.host, args.port)
        if args.command == "validate":
            return _validate(args.files)
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "render":
            return _render(args.file, args.format)
        if args.command == "replay":
            from service.cli import replay as replay_cli

            return asyncio.run(replay_cli.run(args))
        if args.command == "sim":
            from service.sim import cli as sim_cli

            return asyncio.run(sim_cli.run(args))
        if args.command == "demo":
            from service.cli import demo

            return asyncio.run(demo.run())
    except KeyboardInterrupt:
        return 130
    raise AssertionError(args.command)  # pragma: no cover


def _fail(message: str, code: int = 2) -> int:
    print(f"ivr: error: {message}", file=sys.stderr)
    return code


def _validate(files: list[Path]) -> int:
    """Graph files, directories (their graphs and queues.json) and queues.json files.
    A graph is checked against the queues.json beside it, as the service loads it."""
    from service.core.queues import Queue
    from service.graphs.loader import (
        QUEUES_FILE,
        QUEUES_SCHEMA_FILE,
        SCHEMA_FILE,
        GraphError,
        graph_files,
        load_file,
        with_queues,
    )
    from service.graphs.queues import read_queues

    failed = 0
    # The queues of each directory met (None: it has no queues.json), read once; the
    # directories whose queues.json cannot be loaded (its problems printed once).
    directories: dict[Path, dict[str, Queue] | None] = {}
    broken: set[Path] = set()

    def queues_file(path: Path, *, named: bool) -> None:
        """Load a queues.json for its directory; when ``named``, print how it went."""
        nonlocal failed
        key = path.parent.resolve()
        if not named and (key in directories or key in broken):
            return
        if not named and not path.exists():
            directories[key] = None
            return
        try:
            queues, warnings = read_queues(path)
        except GraphError as exc:
            if key not in broken:
                failed += 1
                broken.add(key)
                for problem in exc.problems:
                    print(problem, file=sys.stderr)
            return
        directories[key] = queues
        if named:
            for warning in warnings:
                print(warning, file=sys.stderr)
            names = ", ".join(sorted(queues))
            count = {0: "no queues", 1: f"1 queue: {names}"}.get(len(queues))
            print(f"{path}: ok ({count or f'{len(queues)} queues: {names}'})")

    expanded: list[Path] = []
    for item in files:
        if item.is_dir():
            queues_path = item / QUEUES_FILE
            expanded += [queues_path] if queues_path.exists() else []
            expanded += graph_files(item)
        else:
            expanded.append(item)
    for path in expanded:
        if path.name in (SCHEMA_FILE, QUEUES_SCHEMA_FILE):
            print(f"{path}: skipped (a JSON Schema, not a graph)", file=sys.stderr)
            continue
        if path.name == QUEUES_FILE:
            queues_file(path, named=True)
            continue
        try:
            graph = load_file(path)
            queues_file(path.parent / QUEUES_FILE, named=False)
            directory = path.parent.resolve()
            if directory not in broken:  # else its own problems were printed
                graph = with_queues(graph, directories[directory])
        except GraphError as exc:
            failed += 1
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            continue
        for warning in graph.warnings:
            print(warning, file=sys.stderr)
        print(f"{path}: ok (id {graph.id}, {len(graph.nodes)} nodes, version {graph.version})")
    return 1 if failed else 0


def _simulate(args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    from service.graphs.loader import GraphError
    from service.graphs.simulate import load, parse_agents, simulate

    if args.at is None:
        at = datetime.now(UTC)
    else:
        try:
            at = datetime.fromisoformat(args.at.replace("Z", "+00:00"))
        except ValueError:
            return _fail(f"--at {args.at!r} is not an ISO-8601 date-time (2026-12-25T10:00+01:00)")
        if at.tzinfo is None:
            return _fail(f"--at {args.at!r} needs a UTC offset, e.g. {args.at}+01:00")
    variables: dict[str, str] = {}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep or not name:
            return _fail(f"--var {item!r} is not NAME=VALUE")
        variables[name] = value
    try:
        turns = parse_agents(args.agent)
    except ValueError as exc:
        return _fail(f"--agent {args.agent!r}: {exc}")
    fixtures: dict[str, object] = {}
    if args.http_fixture is not None:
        try:
            fixtures = json.loads(args.http_fixture.read_text())
        except OSError as exc:
            return _fail(f"--http-fixture {args.http_fixture}: {exc.strerror}")
        except json.JSONDecodeError as exc:
            return _fail(f"--http-fixture {args.http_fixture}: not valid JSON ({exc.msg})")
        if not isinstance(fixtures, dict):
            return _fail(f"--http-fixture {args.http_fixture}: must be a JSON object")
    try:
        graph = load(args.file)  # with the queues.json beside it, as the service loads it
    except GraphError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    keys = [k.strip() for k in args.keys.split(",")] if args.keys.strip() else []
    result = simulate(
        graph, keys, at=at, caller=args.caller, called=args.called, variables=variables,
        fixtures=fixtures, agent=turns, outbound=args.outbound,
    )  # fmt: skip
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(result.render(), end="")
    if not result.ok:
        print(f"ivr simulate: {result.error}", file=sys.stderr)
        return 1
    return 0


def _render(path: Path, fmt: str) -> int:
    from service.graphs import render
    from service.graphs.loader import GraphError, load_file

    try:
        graph = load_file(path)
    except GraphError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    print(render.mermaid(graph) if fmt == "mermaid" else render.dot(graph), end="")
    return 0


def _serve(host: str, port: int) -> int:
    from service.core.queues import queues_of
    from service.graphs.loader import GraphError, load_directory
    from service.runtime.agents import AgentsFileError, read_agents_file
    from service.runtime.redis_server import EmbeddedRedis, EmbeddedRedisError
    from service.runtime.settings import Settings, SettingsError
    from service.server.agents import AGENT_ID

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        return _fail(str(exc))
    try:
        graphs = load_directory(settings.ivr_graphs_dir, settings.ivr_default_graph)
    except GraphError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return _fail(f"refusing to start: {len(exc.problems)} problem(s) in the IVR graphs", 1)
    seed: Sequence[tuple[Agent, AgentStatus]] = ()
    if settings.ivr_agents_file is not None:
        try:
            seed = read_agents_file(settings.ivr_agents_file, queues_of(graphs))
        except AgentsFileError as exc:
            return _fail(f"IVR_AGENTS_FILE: {exc}")
        for agent, _ in seed:  # ids the API could not name (PUT /agents/{id}) are refused
            if not AGENT_ID.match(agent.id):
                return _fail(f"IVR_AGENTS_FILE: {settings.ivr_agents_file}: /agents/{agent.id}: "
                             "an agent id is 1-64 letters, digits, '_', '.' or '-', starting "
                             "with a letter or digit")  # fmt: skip
    try:
        if settings.redis_url:
            return asyncio.run(
                _run_service(settings, graphs, settings.redis_url, host, port, agents_seed=seed)
            )
        # The embedded Redis keeps an append-only file in its private directory, so
        # that restarting it (see _run_service) keeps the calls in progress.
        with EmbeddedRedis(append_only=True) as embedded:
            return asyncio.run(
                _run_service(settings, graphs, embedded.url, host, port, embedded, seed)
            )
    except EmbeddedRedisError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot listen on {host}:{port}: {exc.strerror}")


async def _run_service(
    settings: Settings,
    graphs: GraphSet,
    redis_url: str,
    host: str,
    port: int,
    embedded: EmbeddedRedis | None = None,
    agents_seed: Sequence[tuple[Agent, AgentStatus]] = (),
) -> int:
    """Serve until SIGINT/SIGTERM, then drain in-flight requests and stop. An
    embedded Redis is watched: if it dies it is logged and started again.
    ``agents_seed``: the agents of ``IVR_AGENTS_FILE``, created at start-up."""
    import signal

    import structlog

    from service.runtime import logs
    from service.runtime.serving import serve
    from service.runtime.store import connect
    from service.server.app import create_app

    logs.configure(
        log_format=settings.log_format, level=settings.log_level, mask=settings.log_mask_numbers
    )
    log = structlog.get_logger("serve")
    redis = connect(redis_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    app = create_app(
        settings, redis=redis, graphs=graphs, graphs_dir=settings.ivr_graphs_dir,
        store_alive=(lambda: embedded.running) if embedded is not None else None,
        agents_seed=agents_seed,
    )  # fmt: skip
    reloads: set[asyncio.Task[object]] = set()

    def reload() -> None:
        task = asyncio.create_task(app.state.registry.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        async with serve(app, host, port) as running:
            log.info(
                "service_listening", url=running.url, embedded_redis=settings.redis_url is None
            )
            stopped = asyncio.create_task(stop.wait())
            watched = asyncio.create_task(embedded.watch() if embedded else stop.wait())
            await asyncio.wait({stopped, running.task}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            watched.cancel()
    finally:
        await redis.aclose()
    return 0
