"""The ``ivr`` command: run the service (``serve``), work on graphs (``validate``,
``simulate``, ``render``), learn from real calls (``stats``, ``replay``), watch a call
(``trace``), try it all without a phone (``sim``, ``call``, ``demo``).

Every failure a user can cause ends with one clear message and a non-zero exit,
never a traceback: 2 for bad settings or arguments, 1 for invalid graphs (and for a
script that does not fit, a replay that diverges), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service import __version__
from service.graphs.simulate import AGENT_SYNTAX, DEFAULT_AGENT

if TYPE_CHECKING:
    from service.core.graph import GraphSet
    from service.core.queues import Agent, AgentStatus
    from service.runtime.redis_server import EmbeddedRedis
    from service.runtime.settings import Settings
    from service.runtime.workers import Supervisor, WorkerLink


def port(value: str) -> int:
    """A TCP port (0: any free one), as argparse takes ``--port``."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a port number (0-65535)") from None
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{number} is not a port number (0-65535)")
    return number


def workers(value: str) -> int:
    """A number of worker processes (1 or more), as argparse takes ``--workers``."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a number of worker processes (1 or more)"
        ) from None
    if number < 1:
        raise argparse.ArgumentTypeError(
            f"{number} is not a number of worker processes (1 or more)"
        )
    return number


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
    serve.add_argument(
        "--port", type=port, default=8080, help="port to listen on, 0-65535 (%(default)s)"
    )
    serve.add_argument(
        "--workers",
        type=workers,
        default=1,
        metavar="N",
        help="worker processes sharing the port, one per core (%(default)s: one process). "
        "With more, a parent process binds the port, starts the embedded Redis (no "
        "REDIS_URL) and a metrics directory (PROMETHEUS_MULTIPROC_DIR, else a private one), "
        "replaces a worker that dies, passes SIGHUP on and stops them all on SIGTERM",
    )
    # A worker of `--workers N` (service.runtime.workers): its inherited descriptors.
    serve.add_argument("--worker", help=argparse.SUPPRESS)

    validate = commands.add_parser(
        "validate",
        help="check IVR graph files (or every graph of a directory) against the format",
        description="Check graph files, graph directories (their graphs and queues.json) and "
        "queues.json files as the service loads them: every problem of every file in one run, "
        "as FILE: /json/path: message. Exits 1 on any error (warnings alone: 0).",
    )
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE|DIR")
    validate.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text (default: problems on stderr, ok lines on stdout) or one JSON document "
        "for CI and editors (docs/graphs.md)",
    )

    simulate = commands.add_parser(
        "simulate",
        help="walk a graph offline with a script of keys and print the transcript",
        description="Walk a graph offline (no server, no Redis, no network). Exits 1 when "
        "the script does not fit the graph.",
    )
    simulate.add_argument("file", type=Path, metavar="FILE")
    simulate.add_argument(
        "--keys",
        action=_Inputs,
        dest="inputs",
        default=[],
        help="inputs in order, comma-separated: keys (digits 0-9, * and #) or _ for silence "
        "(1,4321#,_,2); a queue's callback offer takes one too (1 takes the callback)",
    )
    simulate.add_argument(
        "--say",
        action=_Inputs,
        dest="inputs",
        metavar="TEXT",
        help="an answer said aloud, taken by the next gather in the order --keys and --say "
        'are given (--keys 1 --say "billing please" --keys 4321#); heard by a menu or '
        "collect whose input has speech",
    )
    simulate.add_argument(
        "--at", help="the moment of the call, ISO-8601 with offset (default: now)"
    )
    simulate.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", help="a variable (repeat)"
    )
    simulate.add_argument(
        "--caller", default="+31600000000", help="the caller's number, E.164 (%(default)s)"
    )
    simulate.add_argument("--called", help="the number called, E.164 (default: the graph's first)")
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
    simulate.add_argument(
        "--machine",
        action="store_true",
        help="an answering machine answers the outbound call (implies --outbound): with the "
        "graph's amd enabled the call goes to amd.on_machine after the beep",
    )
    simulate.add_argument("--json", action="store_true", help="print the result as JSON")

    render = commands.add_parser(
        "render", help="print a graph as a Mermaid flowchart (or dot, or an SVG drawing)"
    )
    render.add_argument("file", type=Path, metavar="FILE")
    render.add_argument("--format", choices=("mermaid", "dot", "svg"), default="mermaid")
    render.add_argument(
        "--stats",
        action="store_true",
        help="draw the traffic counts of FILE's version (from the service's Redis) on it",
    )
    render.add_argument("--redis-url", help="with --stats: the service's Redis ($REDIS_URL)")

    from service.cli import stats as stats_cli

    stats_cli.add_arguments(
        commands.add_parser(
            "stats",
            help="traffic of a graph from the service's Redis: a drop-off funnel per node",
            description="How calls moved through GRAPH (an id): per node, in walking "
            "order, the calls that entered it, each exit taken, wrong keys and silences, "
            "callers who hung up there and other ends. Reads the service's Redis "
            "(--redis-url, else REDIS_URL).",
        )
    )

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

    from service.cli import trace as trace_cli

    trace_cli.add_arguments(
        commands.add_parser(
            "trace",
            help="one call's timeline from the service's Redis: deliveries, steps, "
            "requests to Bird, with times",
            description="Print a call's timeline, kept in the service's Redis for CALL_TTL_S "
            "(--redis-url, else REDIS_URL): every delivery from Bird and what came of it, "
            "every step of its graph (the nodes walked, what it asked for), every request to "
            "Bird and its answer, in order, with times. --follow prints new lines until the "
            "call ends. Exits 0, or 2 when the call cannot be read.",
        )
    )

    from service.sim import cli as sim_cli

    sim = commands.add_parser(
        "sim", help="run the Bird simulator: a fake Voice API with scripted callers"
    )
    sim_cli.add_arguments(sim)

    from service.sim import call_cli

    call_cli.add_arguments(
        commands.add_parser(
            "call",
            help="place a call on a running ivr sim and print its transcript as it happens",
            description="Place a call on a running simulator (its control endpoint) and print "
            "what the caller heard and pressed and whom they reached, as it happens. Exits 0 "
            "when the keys fit the call, 1 when they do not (a gather with no keys left, keys "
            "left over at the end) or the call did not end, 2 on a bad argument.",
        )
    )

    commands.add_parser(
        "demo",
        help="embedded Redis + simulator + service: a call center of 3 agents and 10 calls "
        "(8 callers, 2 outbound reminders), transcripts, logs and a summary",
        description="Seat 3 agents (PUT /agents/{id}) and place 10 calls, in about a minute: "
        "8 callers of the support line a few seconds apart (one says billing aloud; billing "
        "callers queue for Ann and "
        "hear their place; Cyd misses the technician's callers and is put on break, Dan takes "
        "them; one who finds Dan busy asks to be called back and is, in their turn; a "
        "Christmas Day voicemail; a caller who never presses a key) and 2 outbound "
        "appointment reminders (POST /calls), one taken by an answering machine, which records "
        "its message after the beep. Prints each call's transcript and log lines, then "
        "who waited how long, who took them, and GET /agents and GET /queues. Exits 1 if a "
        "call ends anywhere else. Always runs on its own embedded Redis (gone when it ends) "
        "and the shipped graphs (ivr_graphs/), whatever REDIS_URL and IVR_GRAPHS_DIR say.",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return _serve(args.host, args.port, args.workers, args.worker)
        if args.command == "validate":
            return _validate(args.files, args.format)
        if args.command == "simulate":
            return _simulate(args)
        if args.command == "render":
            return _render(args.file, args.format, args.stats, args.redis_url)
        if args.command == "stats":
            from service.cli import stats as stats_cli

            return stats_cli.run(args)
        if args.command == "replay":
            from service.cli import replay as replay_cli

            return asyncio.run(replay_cli.run(args))
        if args.command == "trace":
            from service.cli import trace as trace_cli

            return asyncio.run(trace_cli.run(args))
        if args.command == "sim":
            from service.sim import cli as sim_cli

            return asyncio.run(sim_cli.run(args))
        if args.command == "call":
            from service.sim import call_cli

            return asyncio.run(call_cli.run(args))
        if args.command == "demo":
            from service.cli import demo

            return asyncio.run(demo.run())
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `ivr validate --format json | head`: the reader has gone
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (Python flushes it at exit)
        return 141
    raise AssertionError(args.command)  # pragma: no cover


def _fail(message: str, code: int = 2) -> int:
    from service.runtime.style import Style

    print(Style(sys.stderr).error(f"ivr: error: {message}"), file=sys.stderr)
    return code


def _validate(files: list[Path], fmt: str = "text") -> int:
    """Graph files, directories (their graphs and queues.json) and queues.json files,
    checked as the service loads them (service.cli.validate)."""
    from service.cli import validate

    return validate.run(files, fmt)


class _Inputs(argparse.Action):
    """``--keys`` and ``--say`` into one list, in the order they are given (read by
    :func:`_script`)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        given: list[tuple[str, str]] = list(getattr(namespace, self.dest, None) or [])
        given.append((option_string or "--keys", str(values)))
        setattr(namespace, self.dest, given)


def _script(given: Sequence[tuple[str, str]]) -> list[str]:
    """The simulation's script from ``--keys`` and ``--say`` in order: keys and ``_``
    as they are, what is said as ``say:TEXT``; ValueError naming the bad flag."""
    from service.graphs.simulate import SPOKEN, parse_keys

    script: list[str] = []
    for flag, value in given:
        if flag == "--say":
            if not value.strip():
                raise ValueError("--say: nothing to say (give the words, e.g. --say billing)")
            script.append(SPOKEN + value.strip())
            continue
        try:
            script += parse_keys(value)
        except ValueError as exc:
            raise ValueError(f"--keys {value!r}: {exc}") from None
    return script


def _simulate(args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    from service.graphs.loader import GraphError
    from service.graphs.simulate import check_number, load, parse_agents, simulate
    from service.runtime.style import Style

    if args.at is None:
        at = datetime.now(UTC)
    else:
        try:
            at = datetime.fromisoformat(args.at.replace("Z", "+00:00"))
        except ValueError:
            return _fail(f"--at {args.at!r} is not an ISO-8601 date-time (2026-12-25T10:00+01:00)")
        if at.tzinfo is None:
            return _fail(f"--at {args.at!r} needs a UTC offset, e.g. {args.at}+01:00")
    try:
        keys = _script(args.inputs)
    except ValueError as exc:
        return _fail(str(exc))
    for flag, number in (("--caller", args.caller), ("--called", args.called)):
        if number is not None:
            try:
                check_number(number)
            except ValueError as exc:
                return _fail(f"{flag}: {exc}")
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
    result = simulate(
        graph, keys, at=at, caller=args.caller, called=args.called, variables=variables,
        fixtures=fixtures, agent=turns, outbound=args.outbound, machine=args.machine,
    )  # fmt: skip
    if args.json:  # the error is in it too, as "error"
        print(json.dumps(result.to_json(), indent=2))
    else:  # the transcript up to where it stopped; the error once, below, on stderr
        print(result.render(Style(sys.stdout).paint), end="")
    if not result.ok:
        sys.stdout.flush()
        print(Style(sys.stderr).error(f"ivr simulate: {result.error}"), file=sys.stderr)
        return 1
    return 0


def _render(path: Path, fmt: str, stats: bool = False, redis_url: str | None = None) -> int:
    from service.cli import service_redis
    from service.cli import stats as stats_cli
    from service.graphs import render
    from service.graphs.loader import GraphError, load_file
    from service.runtime.style import Style

    try:
        graph = load_file(path)
    except GraphError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    counts = None
    if stats:  # the counts of this file's version; a draft has none
        try:
            url = service_redis.redis_url_of(redis_url)
            counts, note = stats_cli.traffic_for_render(graph, url)
        except service_redis.CliError as exc:
            return _fail(str(exc), exc.code)
        if note:
            print(Style(sys.stderr).warning(f"ivr render: {note}"), file=sys.stderr)
    drawn = {"mermaid": render.mermaid, "dot": render.dot, "svg": render.svg}[fmt](graph, counts)
    print(drawn, end="")
    return 0


def _serve(host: str, port: int, workers: int = 1, worker: str | None = None) -> int:
    """``ivr serve``: one process (``workers`` 1), a parent of ``workers`` worker
    processes (service.runtime.workers), or one of those workers (``worker``: the
    descriptors it inherited, ``WorkerFds.arg``)."""
    from service.core.queues import queues_of
    from service.graphs.loader import GraphError, load_directory
    from service.runtime import serving
    from service.runtime.agents import AgentsFileError, read_agents_file
    from service.runtime.redis_server import EmbeddedRedis, EmbeddedRedisError
    from service.runtime.settings import Settings, SettingsError
    from service.runtime.workers import WorkerFds, WorkerLink
    from service.server.agents import AGENT_ID

    link = None
    if worker is not None:
        try:
            link = WorkerLink(WorkerFds.parse(worker))
        except ValueError as exc:
            return _fail(f"argument --worker: {exc}")
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        return _fail(str(exc))
    try:
        graphs = load_directory(settings.ivr_graphs_dir, settings.ivr_default_graph)
    except GraphError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        errors = sum(problem.severity == "error" for problem in exc.problems)
        return _fail(f"refusing to start: {errors} error(s) in the IVR graphs "
                     f"({settings.ivr_graphs_dir}; `ivr validate` shows the same)", 1)  # fmt: skip
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
    if link is not None:  # a worker: its parent gave it REDIS_URL (maybe its embedded one)
        _whole_log_lines()
        if settings.redis_url is None:
            return _fail("a worker of ivr serve --workers needs REDIS_URL (its parent sets it)")
        try:
            return serving.run(
                _run_service(settings, graphs, settings.redis_url, host, port, agents_seed=seed,
                             worker=link)
            )  # fmt: skip
        except OSError as exc:  # not the descriptors of a parent's socket
            return _fail(f"argument --worker: {exc.strerror or exc}")
    if workers > 1:
        return _supervise(settings, host, port, workers)
    try:
        if settings.redis_url:
            return serving.run(
                _run_service(settings, graphs, settings.redis_url, host, port, agents_seed=seed)
            )
        # The embedded Redis keeps an append-only file in its private directory, so
        # that restarting it (see _run_service) keeps the calls in progress.
        with EmbeddedRedis(append_only=True) as embedded:
            return serving.run(
                _run_service(settings, graphs, embedded.url, host, port, embedded, seed)
            )
    except EmbeddedRedisError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot listen on {host}:{port}: {exc.strerror}")


def _supervise(settings: Settings, host: str, port: int, count: int) -> int:
    """``ivr serve --workers N`` (N > 1): bind the port, start the embedded Redis
    (without REDIS_URL) and the metrics directory, and run N workers on them
    (service.runtime.workers.Supervisor) until SIGTERM or SIGINT."""
    import contextlib

    from service.runtime import logs, serving
    from service.runtime.redis_server import EmbeddedRedis, EmbeddedRedisError
    from service.runtime.workers import Supervisor, WorkerFds, WorkersFailed, metrics_directory

    _whole_log_lines()
    logs.configure(
        log_format=settings.log_format, level=settings.log_level, mask=settings.log_mask_numbers
    )
    try:
        sock = serving.bind(host, port)
    except OSError as exc:
        return _fail(f"cannot listen on {host}:{port}: {exc.strerror}")

    def command(fds: WorkerFds) -> list[str]:
        return [sys.executable, "-m", "service", "serve", "--worker", fds.arg()]

    try:
        with contextlib.ExitStack() as stack:
            embedded = None
            redis_url = settings.redis_url
            if redis_url is None:  # one embedded Redis, the workers' (see _serve)
                embedded = stack.enter_context(EmbeddedRedis(append_only=True))
                redis_url = embedded.url
            metrics_dir = stack.enter_context(metrics_directory(settings.prometheus_multiproc_dir))
            env = {**os.environ, "REDIS_URL": redis_url,
                   "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}  # fmt: skip
            supervisor = Supervisor(
                count, command, sock, env, metrics_dir=metrics_dir,
                started_fields={"url": serving.url_of(sock), "embedded_redis": embedded is not None,
                                "metrics_dir": str(metrics_dir)},
            )  # fmt: skip
            return asyncio.run(_supervised(supervisor, embedded))
    except EmbeddedRedisError as exc:
        return _fail(str(exc))
    except WorkersFailed as exc:
        return _fail(str(exc), 1)
    finally:
        sock.close()


def _whole_log_lines() -> None:
    """Each log line written to stdout at once: the parent and its workers share it, and
    with PYTHONUNBUFFERED (the Docker image's) a line and its newline would be two writes,
    another process's line between them. (A write of up to 4 KiB to a pipe is atomic.)"""
    import io

    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(write_through=False)  # every log line is flushed whole


async def _supervised(supervisor: Supervisor, embedded: EmbeddedRedis | None) -> int:
    """The supervisor's run, with the embedded Redis watched (restarted if it dies:
    the workers reconnect to it on the same socket)."""
    watching = asyncio.create_task(embedded.watch()) if embedded is not None else None
    try:
        return await supervisor.run()
    finally:
        if watching is not None:
            watching.cancel()


async def _run_service(
    settings: Settings,
    graphs: GraphSet,
    redis_url: str,
    host: str,
    port: int,
    embedded: EmbeddedRedis | None = None,
    agents_seed: Sequence[tuple[Agent, AgentStatus]] = (),
    worker: WorkerLink | None = None,
) -> int:
    """Serve until SIGINT/SIGTERM, then drain in-flight requests and stop. An
    embedded Redis is watched: if it dies it is logged and started again.
    ``agents_seed``: the agents of ``IVR_AGENTS_FILE``, created at start-up.
    ``worker``: a worker of ``--workers N``, on its parent's socket; its log lines
    carry its index and pid, and it stops when its parent has gone."""
    import signal

    import structlog

    from service.runtime import logs
    from service.runtime.serving import serve
    from service.runtime.store import connect
    from service.server.app import create_app

    logs.configure(
        log_format=settings.log_format, level=settings.log_level, mask=settings.log_mask_numbers,
        context=worker.log_context() if worker is not None else None,
    )  # fmt: skip
    log = structlog.get_logger("serve")
    graph_clock = None
    if settings.ivr_clock is not None:  # IVR_CLOCK: for trying graphs, never in production
        from service.runtime.clock import PinnedClock

        graph_clock = PinnedClock(settings.ivr_clock)
        log.warning("clock_pinned", at=settings.ivr_clock.isoformat(),
                    graphs_see="this moment at start-up, running on (IVR_CLOCK)",
                    real_clock="webhook signatures, timers, queues")  # fmt: skip
    redis = connect(redis_url, max_connections=settings.redis_max_connections,
                    pool_timeout_s=settings.redis_pool_timeout_s)  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    app = create_app(
        settings, redis=redis, graphs=graphs, graphs_dir=settings.ivr_graphs_dir,
        store_alive=(lambda: embedded.running) if embedded is not None else None,
        agents_seed=agents_seed, graph_clock=graph_clock,
    )  # fmt: skip
    reloads: set[asyncio.Task[object]] = set()

    def reload() -> None:
        task = asyncio.create_task(app.state.registry.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        sock = worker.socket() if worker is not None else None
        async with serve(app, host, port, sock=sock) as running:
            log.info(
                "service_listening", url=running.url, embedded_redis=settings.redis_url is None
            )
            if worker is not None:

                def parent_gone() -> None:
                    log.warning("supervisor_gone", action="stopping")
                    stop.set()

                worker.ready()
                worker.on_parent_gone(loop, parent_gone)
            stopped = asyncio.create_task(stop.wait())
            watched = asyncio.create_task(embedded.watch() if embedded else stop.wait())
            await asyncio.wait({stopped, running.task}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            watched.cancel()
    finally:
        await redis.aclose()
    return 0
