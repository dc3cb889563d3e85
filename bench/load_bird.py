"""The load bench's Bird (``bench/load.py``): a minimal fast fake of Bird's Voice API and
its webhook deliveries, in one process, on raw asyncio protocols (no HTTP framework,
no schema checks, keep-alive on both sides).

Each call is the script Bird plays for an inbound call of the bench's line (welcome,
a one-key menu, a transfer to an agent who answers and talks, then hangs up), with
exactly the deliveries the contract (docs/bird-contract.md A1-A5) and the simulator
(``service/sim/engine.py``) send for it, in the simulator's order, one at a time per
call, each signed (``service.bird.signature``) over the URL it is posted to:

==  ==========================  ====================================  ==============
#   delivery                    Bird sends it                         the service
==  ==========================  ====================================  ==============
1   caller ``starting``         the call comes in                     ``answer``
2   caller ``ringing``          right after                           -
3   caller ``ongoing``          the ``answer`` command ran            ``say``
4   ``answer`` completed        the answer command's outcome (A3)     -
5   ``say`` completed           the welcome was spoken                ``gather``
6   ``gather`` completed "1"    the caller pressed 1                  ``bridge``
7   agent leg ``ringing``       the bridge rings the agent (A4)       -
8   agent leg ``ongoing``       the agent answered                    -
9   agent leg ``completed``     the agent hung up after talking       -
10  ``bridge`` completed        the bridge command's outcome          -
11  caller ``completed``        ``hangupAfterBridge``: the call ends  -
==  ==========================  ====================================  ==============

So 11 deliveries and 4 commands (answer, say, gather, bridge) a call. The fake answers
every command ``202`` with the shapes ``service.bird.client`` reads (a command object;
for a bridge ``{"command", "bridgedCall"}``), ``GET`` a call with the call, and counts
any other request as unexpected. A delivery answered other than 2xx (or not at all
within the timeout) is sent again after 0.5 s, doubling, as Bird retries.

Times are ``time.perf_counter()`` in this process: a delivery's *due* moment (when the
script has it ready; a wait for a free connection of the pool counts in its latency
and is also reported on its own), each attempt's answer, and the arrival here of the
command it caused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlsplit

from service.bird.signature import REQUEST_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign

CALLER = "+31612345678"
LINE = "+31970000000"
AGENT = "+31201110001"

COMMANDS = ("answer", "say", "gather", "bridge")
DELIVERIES = 11
"""Deliveries of one call (the table above)."""

RETRY_FIRST_S = 0.5
RETRY_ATTEMPTS = 5
COMMAND_WAIT_S = 30.0
"""How long a call waits for the command a delivery should cause before it is failed."""


@dataclass(frozen=True)
class Pace:
    """How long the parts of a call take (real seconds)."""

    say_s: float = 2.0
    """The welcome prompt plays."""
    gather_s: float = 3.0
    """The menu prompt plays and the caller presses 1."""
    ring_s: float = 2.0
    """The agent's phone rings."""
    talk_s: float = 23.0
    """The agent talks."""

    @property
    def call_s(self) -> float:
        return self.say_s + self.gather_s + self.ring_s + self.talk_s

    @classmethod
    def lasting(cls, call_s: float) -> Pace:
        """A call of ``call_s`` seconds: prompts and ringing take 7/30 of it (at most
        7 s), the agent talks the rest."""
        scale = min(1.0, call_s / 30.0)
        say, gather, ring = 2.0 * scale, 3.0 * scale, 2.0 * scale
        return cls(say, gather, ring, max(0.0, call_s - say - gather - ring))


ZERO_PACE = Pace(0.0, 0.0, 0.0, 0.0)
"""Back to back: the saturation run."""


# -- records ------------------------------------------------------------------------


@dataclass(slots=True)
class Sent:
    """One delivery of one call, through all its attempts."""

    step: str
    due: float
    expects: str | None
    """The command it causes (``answer``, ``say``, ``gather``, ``bridge``), or None."""
    first_write: float = 0.0
    answered: float = 0.0
    """When its 2xx came (0: never)."""
    attempts: list[tuple[float, float, int]] = field(default_factory=list)
    """(written, answered or failed, status: 0 for no answer) of every attempt."""
    command_at: float = 0.0
    """When the command it causes reached Bird (0: never)."""

    @property
    def ok(self) -> bool:
        return self.answered > 0


@dataclass(eq=False)
class LoadCall:
    id: str
    leg_id: str
    index: int
    created: float
    """Wall clock (for createdAt)."""
    sent: list[Sent] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    """The commands Bird received for the call (or its leg), in order."""
    unexpected: list[str] = field(default_factory=list)
    status: str = "starting"
    leg_status: str = ""
    notification_url: str = ""
    updated: float = 0.0
    started: float = 0.0
    ended: float = 0.0
    failure: str | None = None
    waiting: Sent | None = None
    """The delivery whose command the call waits for."""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    ringing_at: float = 0.0
    answered_at: float = 0.0
    leg_ringing_at: float = 0.0
    leg_answered_at: float = 0.0

    @property
    def complete(self) -> bool:
        """Every delivery answered 2xx and exactly the expected commands."""
        return (
            self.failure is None
            and len(self.sent) == DELIVERIES
            and all(s.ok for s in self.sent)
            and tuple(self.commands) == COMMANDS
            and not self.unexpected
        )

    def tick(self) -> float:
        """``updatedAt``: now, strictly increasing per call (A6 orders by it)."""
        now = time.time()
        self.updated = max(now, self.updated + 1e-6)
        return self.updated


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _party(number: str) -> dict[str, Any]:
    return {"number": {"type": "pstn", "number": number}}


# -- a minimal HTTP/1.1 -------------------------------------------------------------


def _header_end(buffer: bytearray) -> int:
    return buffer.find(b"\r\n\r\n")


def _headers(head: bytes) -> dict[bytes, bytes]:
    found: dict[bytes, bytes] = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        found[name.strip().lower()] = value.strip()
    return found


class _Answered(Exception):
    """The connection closed (or broke) before the answer was whole."""


class _ClientConnection(asyncio.Protocol):
    """One keep-alive connection to the app under test: one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(_Answered("connection closed"))

    def request(self, data: bytes) -> asyncio.Future[int]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._buffer.clear()
        self.transport.write(data)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = _header_end(self._buffer)
        if end < 0 or self._waiter is None or self._waiter.done():
            return
        head = bytes(self._buffer[:end])
        headers = _headers(head)
        status = int(head.split(b" ", 2)[1])
        body = self._buffer[end + 4 :]
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            if not body.endswith(b"0\r\n\r\n"):
                return
        elif status not in (204, 304) and len(body) < int(headers.get(b"content-length", b"0")):
            return
        if headers.get(b"connection", b"").lower() == b"close":
            self.closed = True
        self._waiter.set_result(status)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Keep-alive connections to ``host:port``, opened as needed up to ``size``."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self._idle: deque[_ClientConnection] = deque()
        self._waiters: deque[asyncio.Future[_ClientConnection | None]] = deque()
        self.opened = 0
        self.open_now = 0

    async def acquire(self) -> _ClientConnection:
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
            self.open_now -= 1
        if self.open_now < self.size:
            self.open_now += 1
            try:
                _, conn = await asyncio.get_running_loop().create_connection(
                    _ClientConnection, self.host, self.port
                )
            except OSError:
                self.open_now -= 1
                raise
            self.opened += 1
            return conn
        waiter: asyncio.Future[_ClientConnection | None] = (
            asyncio.get_running_loop().create_future()
        )
        self._waiters.append(waiter)
        given = await waiter
        return given if given is not None else await self.acquire()

    def release(self, conn: _ClientConnection) -> None:
        if conn.closed:
            conn.close()
            self.open_now -= 1
            if self._waiters:  # a slot is free: the next waiter opens a connection
                self._wake(None)
            return
        if not self._wake(conn):
            self._idle.append(conn)

    def _wake(self, conn: _ClientConnection | None) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return True
        return False

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


class _ServerConnection(asyncio.Protocol):
    """One keep-alive connection to the fake Bird (requests may come one after another)."""

    def __init__(self, bird: FakeBird) -> None:
        self.bird = bird
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.bird.connections += 1

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while True:
            end = _header_end(self._buffer)
            if end < 0:
                return
            head = bytes(self._buffer[:end])
            headers = _headers(head)
            length = int(headers.get(b"content-length", b"0"))
            if len(self._buffer) < end + 4 + length:
                return
            body = bytes(self._buffer[end + 4 : end + 4 + length])
            del self._buffer[: end + 4 + length]
            method, target, _ = head.split(b"\r\n", 1)[0].split(b" ", 2)
            status, answer = self.bird.api(method.decode(), target.decode(), body)
            out = json.dumps(answer, separators=(",", ":")).encode()
            assert self.transport is not None
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                % (status, b"Accepted" if status == 202 else b"OK", len(out))
                + out
            )
            if headers.get(b"connection", b"").lower() == b"close":
                self.transport.close()
                return


# -- the fake Bird ------------------------------------------------------------------


class FakeBird:
    """Bird's API (a server) and Bird's deliveries (a client pool) for the load bench."""

    def __init__(
        self,
        *,
        signing_key: str,
        workspace_id: str,
        channel_id: str,
        webhook_url: str,
        pool_size: int = 64,
        timeout_s: float = 10.0,
    ) -> None:
        self.signing_key = signing_key
        self.workspace_id = workspace_id
        self.channel_id = channel_id
        self.webhook_url = webhook_url
        parts = urlsplit(webhook_url)
        assert parts.hostname is not None
        assert parts.port is not None
        self._host_header = parts.netloc.encode()
        self.pool = Pool(parts.hostname, parts.port, pool_size)
        self.timeout_s = timeout_s
        self.calls: dict[str, LoadCall] = {}
        self.legs: dict[str, LoadCall] = {}
        self.finished: list[LoadCall] = []
        self.requests: Counter[str] = Counter()
        self.unexpected: Counter[str] = Counter()
        self.after_end: Counter[str] = Counter()
        """Requests on calls already over (a failed call's pending command, read back)."""
        self.gone: dict[str, LoadCall] = {}
        self.connections = 0
        self._server: asyncio.Server | None = None
        self.url = ""
        self._count = 0
        self.stopping = asyncio.Event()
        """Set at a level's end: no new call starts (those live play out)."""

    # -- serving the API --------------------------------------------------------

    async def start(self, host: str = "127.0.0.1") -> str:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _ServerConnection(self), host, 0, backlog=1024
        )
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://{host}:{port}"
        return self.url

    async def close(self) -> None:
        self.pool.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)

    def api(self, method: str, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
        """Bird's answer to one request: ``/workspaces/W/channels/C/calls/ID[/ACTION]``."""
        parts = target.split("?", 1)[0].split("/")
        if len(parts) < 7 or parts[5] != "calls":
            self.unexpected[f"{method} {target[:40]}"] += 1
            return 404, {"code": "not_found", "message": "no such endpoint"}
        call_id = parts[6]
        action = parts[7] if len(parts) > 7 else ""
        self.requests[action or method] += 1
        call = self.calls.get(call_id) or self.legs.get(call_id)
        if call is None:
            gone = self.gone.get(call_id)
            if gone is None:
                self.unexpected[f"{method} {action} of an unknown call"] += 1
                return 404, {"code": "not_found", "message": f"call {call_id} not found"}
            # A call of an earlier level, over: its read-backs end it in the service.
            self.after_end[action or method] += 1
            if method == "GET":
                return 200, self._call_json(gone, leg=call_id == gone.leg_id)
            return 422, {"code": "call_not_active", "message": f"call {call_id} has ended"}
        if not action:
            if method == "GET":
                return 200, self._call_json(call, leg=call_id == call.leg_id)
            call.unexpected.append(method)
            self.unexpected[method] += 1
            return 202, self._call_json(call, leg=False)
        command = {
            "id": str(uuid.uuid4()),
            "callId": call_id,
            "callFlowId": None,
            "command": action,
            "status": "queued",
        }
        if action not in COMMANDS or call_id != call.id:
            call.unexpected.append(action)
            self.unexpected[action] += 1
            return 202, command
        call.commands.append(action)
        waiting = call.waiting
        if waiting is not None and waiting.expects == action and not waiting.command_at:
            waiting.command_at = time.perf_counter()
        else:
            call.unexpected.append(f"{action} (not caused by the delivery expected)")
            self.unexpected[action] += 1
        if action == "bridge":
            options = json.loads(body) if body else {}
            notification = options.get("notification") or {}
            call.notification_url = notification.get("url") or self.webhook_url
            call.arrived.set()
            return 202, {"command": command, "bridgedCall": self._call_json(call, leg=True)}
        call.arrived.set()
        return 202, command

    # -- deliveries -------------------------------------------------------------

    def _call_json(self, call: LoadCall, *, leg: bool) -> dict[str, Any]:
        """The Call object as the simulator shows it (``SimCall.to_json``)."""
        status = call.leg_status if leg else call.status
        body: dict[str, Any] = {
            "id": call.leg_id if leg else call.id,
            "channelId": self.channel_id,
            "from": LINE if leg else CALLER,
            "to": AGENT if leg else LINE,
            "originator": _party(LINE if leg else CALLER),
            "receiver": _party(AGENT if leg else LINE),
            "direction": "outgoing" if leg else "incoming",
            "status": status,
            "type": "pstn",
            "duration": 0,
            "hangupSource": None,
            "createdAt": iso(call.created),
            "updatedAt": iso(call.tick()),
        }
        if leg:
            body["parentId"] = call.id
            body["notification"] = {"url": call.notification_url}
        ringing = call.leg_ringing_at if leg else call.ringing_at
        answered = call.leg_answered_at if leg else call.answered_at
        if ringing:
            body["ringingAt"] = iso(ringing)
        if answered:
            body["answeredAt"] = iso(answered)
        if status == "completed":
            body["hangupCauseCode"] = 16
            body["hangupSource"] = "callee"
            body["endedAt"] = iso(call.updated)
            body["duration"] = round(call.updated - (answered or call.updated))
        return body

    def _request(self, call: LoadCall, payload: dict[str, Any], *, leg: bool) -> bytes:
        envelope = {
            "service": "channels",
            "event": "voice.outbound" if leg else "voice.inbound",
            "payload": payload,
        }
        body = json.dumps(envelope, separators=(",", ":")).encode()
        url = call.notification_url if leg else self.webhook_url
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        timestamp = str(int(time.time()))
        head = (
            f"POST {target} HTTP/1.1\r\n"
            f"host: {self._host_header.decode()}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            f"{SIGNATURE_HEADER}: {sign(self.signing_key, timestamp, url, body)}\r\n"
            f"{TIMESTAMP_HEADER}: {timestamp}\r\n"
            f"{REQUEST_ID_HEADER}: {uuid.uuid4()}\r\n\r\n"
        )
        return head.encode() + body

    async def _deliver(
        self,
        call: LoadCall,
        step: str,
        *,
        leg: bool = False,
        command: str | None = None,
        result: dict[str, Any] | None = None,
        expects: str | None = None,
    ) -> Sent:
        """Send one delivery (retrying until a 2xx or out of attempts)."""
        sent = Sent(step, time.perf_counter(), expects)
        call.sent.append(sent)
        if expects is not None:
            call.waiting = sent
            call.arrived.clear()
        payload = self._call_json(call, leg=leg)
        if command is not None:
            payload["command"] = {
                "id": str(uuid.uuid4()),
                "callId": call.id,
                "callFlowId": None,
                "command": command,
                "status": "completed",
                "result": result or {},
            }
        data = self._request(call, payload, leg=leg)
        delay = RETRY_FIRST_S
        for attempt in range(RETRY_ATTEMPTS):
            status = 0
            written = time.perf_counter()
            conn: _ClientConnection | None = None
            try:
                conn = await self.pool.acquire()
                written = time.perf_counter()
                if not sent.first_write:
                    sent.first_write = written
                status = await asyncio.wait_for(conn.request(data), self.timeout_s)
            except (OSError, TimeoutError, _Answered):
                pass
            finally:
                if conn is not None:
                    if not status:  # no whole answer (or cancelled): never reused
                        conn.close()
                    self.pool.release(conn)
            done = time.perf_counter()
            sent.attempts.append((written, done, status))
            if 200 <= status < 300:
                sent.answered = done
                return sent
            if attempt + 1 < RETRY_ATTEMPTS:
                await asyncio.sleep(delay)
                delay *= 2
        return sent

    async def _command(self, call: LoadCall, sent: Sent) -> bool:
        """Wait for the command ``sent`` causes; False (the call failed) if it never comes."""
        if sent.command_at:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(call.arrived.wait(), COMMAND_WAIT_S)
        if not sent.command_at:
            call.failure = f"no {sent.expects} after {sent.step}"
            return False
        return True

    async def _pause(self, seconds: float) -> None:
        if seconds > 0:
            await asyncio.sleep(seconds)

    async def run_call(self, pace: Pace) -> LoadCall:
        """One call, start to end, as Bird plays it (the module's table)."""
        self._count += 1
        call = LoadCall(
            id=str(uuid.uuid4()), leg_id=str(uuid.uuid4()), index=self._count, created=time.time()
        )
        call.started = time.perf_counter()
        self.calls[call.id] = call
        self.legs[call.leg_id] = call
        try:
            await self._script(call, pace)
        except Exception as exc:  # a bug of the bench: counted, never a silent stop
            call.failure = f"bench error: {exc!r}"
        except asyncio.CancelledError:
            call.failure = "still running at the end of the level's drain"
            raise
        finally:
            call.ended = time.perf_counter()
            self.calls.pop(call.id, None)
            self.legs.pop(call.leg_id, None)
            self.finished.append(call)
            if not call.complete:
                self.gone[call.id] = self.gone[call.leg_id] = call
        return call

    async def _script(self, call: LoadCall, pace: Pace) -> None:
        deliver = self._deliver
        first = await deliver(call, "starting", expects="answer")
        call.status, call.ringing_at = "ringing", time.time()
        if not (await deliver(call, "ringing")).ok or not first.ok:
            call.failure = "delivery not taken"
            return
        if not await self._command(call, first):
            return
        call.status, call.answered_at = "ongoing", time.time()
        steps: list[tuple[str, dict[str, Any], str | None]] = [
            ("ongoing", {}, "say"),
            ("answer completed", {"command": "answer"}, None),
        ]
        for step, options, expects in steps:
            if not (await deliver(call, step, expects=expects, **options)).ok:
                call.failure = f"{step} not taken"
                return
        if not await self._command(call, call.sent[2]):
            return
        await self._pause(pace.say_s)
        said = await deliver(call, "say completed", command="say", expects="gather")
        if not said.ok or not await self._command(call, said):
            call.failure = call.failure or "say completed not taken"
            return
        await self._pause(pace.gather_s)
        keys = {"keys": "1", "speech": ""}
        gathered = await deliver(
            call, "gather completed", command="gather", result=keys, expects="bridge"
        )
        if not gathered.ok or not await self._command(call, gathered):
            call.failure = call.failure or "gather completed not taken"
            return
        call.leg_status, call.leg_ringing_at = "ringing", time.time()
        if not (await deliver(call, "leg ringing", leg=True)).ok:
            call.failure = "leg ringing not taken"
            return
        await self._pause(pace.ring_s)
        call.leg_status, call.leg_answered_at = "ongoing", time.time()
        if not (await deliver(call, "leg ongoing", leg=True)).ok:
            call.failure = "leg ongoing not taken"
            return
        await self._pause(pace.talk_s)
        call.leg_status = "completed"
        endings: list[tuple[str, dict[str, Any]]] = [
            ("leg completed", {"leg": True}),
            ("bridge completed", {"command": "bridge"}),
        ]
        for step, options in endings:
            if not (await deliver(call, step, **options)).ok:
                call.failure = f"{step} not taken"
                return
        call.status = "completed"
        if not (await deliver(call, "completed")).ok:
            call.failure = "completed not taken"

    async def hang_up(self, calls: list[LoadCall]) -> int:
        """The callers of calls that did not play out hang up (``completed``, A5), as
        they would: so that the app ends them now rather than look for them later.
        Not counted in any figure; how many were taken."""

        async def one(call: LoadCall) -> bool:
            call.status, call.leg_status = "completed", "completed"
            payload = self._call_json(call, leg=False)
            payload["hangupSource"] = "caller"
            data = self._request(call, payload, leg=False)
            for _ in range(3):
                conn = None
                status = 0
                try:
                    conn = await self.pool.acquire()
                    status = await asyncio.wait_for(conn.request(data), self.timeout_s)
                except (OSError, TimeoutError, _Answered):
                    pass
                finally:
                    if conn is not None:
                        if not status:
                            conn.close()
                        self.pool.release(conn)
                if 200 <= status < 300:
                    return True
                await asyncio.sleep(1.0)
            return False

        taken = await asyncio.gather(*(one(c) for c in calls if not c.complete))
        return sum(taken)

    @property
    def live(self) -> int:
        return len(self.calls)

    @property
    def started(self) -> int:
        return self._count

    def take_finished(self) -> list[LoadCall]:
        done, self.finished = self.finished, []
        return done


class LoopLag:
    """How late this process's event loop wakes a task asked to sleep ``every_s``."""

    def __init__(self, every_s: float = 0.05) -> None:
        self.every_s = every_s
        self.samples: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.every_s)
            after = time.perf_counter()
            self.samples.append((after, max(0.0, after - before - self.every_s)))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def between(self, start: float, end: float) -> list[float]:
        return [lag for at, lag in self.samples if start <= at <= end]
