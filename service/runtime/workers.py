"""Several worker processes behind one port (``ivr serve --workers N``).

The parent process (:class:`Supervisor`) binds the listening socket once and starts N
worker processes that inherit it: each runs the whole service (uvicorn, the app, its
timers) and accepts on the same socket, and the kernel hands each connection to one of
them. The parent does no request work. It:

- starts each worker with the command the caller gives (``ivr serve --worker ...``:
  this module runs no service itself), handing it three descriptors (:class:`WorkerFds`):
  the listening socket, a pipe on which the worker says it listens, and a pipe that
  reads end-of-file when the parent has gone (the workers then stop on their own);
- logs ``workers_started`` once every worker listens, and replaces a worker that dies
  (``worker_died``, with its pid and exit code, then ``worker_restarted``). A worker that
  dies before it listens, or within :data:`SETTLE_S` of starting, :data:`START_FAILURES`
  times in a row is not started again: the parent stops every worker and
  :meth:`Supervisor.run` raises :class:`WorkersFailed` (one line);
- passes SIGHUP on to every worker (each reloads its graphs); on SIGTERM or SIGINT it
  sends SIGTERM to every worker, waits for them (they finish their requests in flight
  as uvicorn does) and returns 0.

Workers run in their own process group: a Ctrl-C in a terminal reaches the parent only,
which stops them. They share nothing but Redis, as replicas do. Their counters are
kept in a multiprocess directory (:func:`metrics_directory`) that ``GET /metrics`` of
any worker adds up; a dead worker's files are marked with prometheus-client's
``mark_process_dead`` (its counters stay counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import structlog
from prometheus_client.multiprocess import mark_process_dead

log = structlog.get_logger("workers")

SETTLE_S = 5.0
"""A worker that dies sooner than this after it was started failed to start."""
START_FAILURES = 3
"""Failed starts in a row of one worker after which the parent gives up."""
BACKOFF_S = 0.5
"""Wait before starting a worker again, times its failed starts in a row less one."""


class WorkersFailed(Exception):
    """A worker keeps dying at start: the message says which, how, and what to read."""


@dataclass(frozen=True)
class WorkerFds:
    """What a worker is handed: its index and the numbers of the descriptors it
    inherits, as one command-line value (``INDEX,LISTEN,READY,PARENT``)."""

    index: int
    listen: int
    """The listening socket, shared by every worker."""
    ready: int
    """A pipe's write end: the worker writes ``INDEX PID`` on it once it listens."""
    parent: int
    """A pipe's read end: end-of-file once the parent has gone."""

    def arg(self) -> str:
        return f"{self.index},{self.listen},{self.ready},{self.parent}"

    @classmethod
    def parse(cls, value: str) -> WorkerFds:
        """The value of :meth:`arg` (``ValueError`` for anything else)."""
        numbers = [int(part) for part in value.split(",")]
        if len(numbers) != 4 or min(numbers) < 0:
            raise ValueError(f"{value!r} is not INDEX,LISTEN,READY,PARENT")
        return cls(*numbers)


class WorkerLink:
    """A worker's side of :class:`WorkerFds`: the shared socket, saying it listens,
    noticing that the parent has gone."""

    def __init__(self, fds: WorkerFds) -> None:
        self.fds = fds
        self.index = fds.index

    def log_context(self) -> dict[str, int]:
        """The fields every log line of this worker carries."""
        return {"worker": self.index, "pid": os.getpid()}

    def socket(self) -> socket.socket:
        """The listening socket the parent bound (family and type read from it)."""
        sock = socket.socket(fileno=self.fds.listen)
        sock.setblocking(False)
        return sock

    def ready(self) -> None:
        """Tell the parent this worker listens (once)."""
        with contextlib.suppress(OSError):  # the parent has gone: it reads nothing
            os.write(self.fds.ready, f"{self.index} {os.getpid()}\n".encode())
        with contextlib.suppress(OSError):
            os.close(self.fds.ready)

    def on_parent_gone(self, loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
        """Call ``callback`` (once) when the parent has gone: it never writes on this
        pipe, so the pipe reads only its end."""
        fd = self.fds.parent

        def readable() -> None:
            with contextlib.suppress(BlockingIOError):
                if os.read(fd, 1):
                    return
            loop.remove_reader(fd)
            callback()

        os.set_blocking(fd, False)
        loop.add_reader(fd, readable)


@contextlib.contextmanager
def metrics_directory(configured: Path | None) -> Iterator[Path]:
    """The workers' prometheus-client multiprocess directory: ``configured``
    (``PROMETHEUS_MULTIPROC_DIR``), its files of an earlier run removed, or else a
    private temporary directory, removed at exit."""
    if configured is not None:
        for stale in configured.glob("*.db"):
            stale.unlink(missing_ok=True)
        yield configured
        return
    made = Path(tempfile.mkdtemp(prefix="ivr-metrics-"))
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


@dataclass
class _Slot:
    index: int
    process: asyncio.subprocess.Process | None = None
    ready: bool = False
    started_at: float = 0.0


Command = Callable[[WorkerFds], Sequence[str]]


@dataclass
class Supervisor:
    """``count`` worker processes on ``sock``, each ``command(fds)`` with ``env``."""

    count: int
    command: Command
    sock: socket.socket
    env: Mapping[str, str]
    metrics_dir: Path | None = None
    started_fields: Mapping[str, Any] = field(default_factory=dict)
    """More fields for the ``workers_started`` line (where it listens, ...)."""
    settle_s: float = SETTLE_S
    start_failures: int = START_FAILURES
    backoff_s: float = BACKOFF_S

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError("a supervisor runs one worker or more")
        self._slots = [_Slot(index) for index in range(self.count)]
        self._stopping = asyncio.Event()
        self._failure: str | None = None
        self._announced = False

    @property
    def pids(self) -> list[int]:
        """The workers' pids, by index (0: none running)."""
        return [slot.process.pid if slot.process else 0 for slot in self._slots]

    def stop(self) -> None:
        """Stop every worker (what SIGTERM and SIGINT do)."""
        self._stopping.set()

    async def run(self) -> int:
        """Run the workers until :meth:`stop` (SIGTERM, SIGINT); 0 once they have all
        exited. :class:`WorkersFailed` when one keeps dying at start."""
        loop = asyncio.get_running_loop()
        ready_r, ready_w = os.pipe()
        parent_r, parent_w = os.pipe()
        self._fds = (ready_w, parent_r)
        ready = os.fdopen(ready_r, "rb", buffering=0)
        reading = asyncio.create_task(self._read_ready(ready))
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self._forward, signal.SIGHUP)
        try:
            kept = [asyncio.create_task(self._keep(slot)) for slot in self._slots]
            await self._stopping.wait()
            self._signal_all(signal.SIGTERM)
            await asyncio.gather(*kept)
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(signum)
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
            ready.close()
            for fd in (ready_w, parent_r, parent_w):
                os.close(fd)
        if self._failure is not None:
            raise WorkersFailed(self._failure)
        log.info("workers_stopped", workers=self.count)
        return 0

    async def _spawn(self, slot: _Slot) -> asyncio.subprocess.Process:
        ready_w, parent_r = self._fds
        fds = WorkerFds(slot.index, self.sock.fileno(), ready_w, parent_r)
        slot.ready = False
        slot.started_at = asyncio.get_running_loop().time()
        return await asyncio.create_subprocess_exec(
            *self.command(fds), env=dict(self.env), stdin=subprocess.DEVNULL,
            pass_fds=(fds.listen, fds.ready, fds.parent), process_group=0,
        )  # fmt: skip

    async def _keep(self, slot: _Slot) -> None:
        """Keep one worker running until the supervisor stops."""
        loop = asyncio.get_running_loop()
        failures = 0
        while not self._stopping.is_set():
            try:
                process = slot.process = await self._spawn(slot)
            except OSError as exc:  # no process at all (out of processes, memory)
                how, at_start = f"could not be started ({exc})", True
                log.error("worker_not_started", worker=slot.index, error=str(exc))
            else:
                if self._stopping.is_set():  # stopped while it was being started
                    process.send_signal(signal.SIGTERM)
                code = await process.wait()
                if self.metrics_dir is not None:
                    mark_process_dead(process.pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
                if self._stopping.is_set():
                    return
                at_start = not slot.ready or loop.time() - slot.started_at < self.settle_s
                how = _exit_of(code)
                log.error("worker_died", worker=slot.index, pid=process.pid, exit_code=code,
                          how=how, at_start=at_start)  # fmt: skip
            failures = failures + 1 if at_start else 0
            if failures >= self.start_failures:
                self._failure = (
                    f"worker {slot.index} {how} within {self.settle_s:g} s of starting, "
                    f"{failures} times in a row: not starting it again (its log lines say why)"
                )
                log.error("workers_failing", worker=slot.index, failures=failures)
                self.stop()
                return
            if failures > 1:  # not at once again: something may need a moment
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.backoff_s * (failures - 1))

    async def _read_ready(self, pipe: BinaryIO) -> None:
        """Read the workers' ``INDEX PID`` lines: log ``workers_started`` when every
        worker listens the first time, ``worker_restarted`` for each replacement."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), pipe
        )
        try:
            while line := await reader.readline():
                try:
                    index, pid = (int(word) for word in line.split())
                    slot = self._slots[index]
                except (ValueError, IndexError):  # not a worker's line
                    continue
                if slot.process is None or slot.process.pid != pid:
                    continue  # a worker since replaced
                slot.ready = True
                if self._announced:
                    log.info("worker_restarted", worker=index, pid=pid)
                elif all(s.ready for s in self._slots):
                    self._announced = True
                    log.info("workers_started", workers=self.count, pids=self.pids,
                             **self.started_fields)  # fmt: skip
        finally:
            transport.close()

    def _signal_all(self, signum: int) -> None:
        for slot in self._slots:
            if slot.process is not None and slot.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.process.send_signal(signum)

    def _forward(self, signum: int) -> None:
        log.info("signal_forwarded", signal=signal.Signals(signum).name, workers=self.count)
        self._signal_all(signum)


def _exit_of(code: int) -> str:
    """``exited with code 1``, ``was killed by SIGKILL``."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with code {code}"
