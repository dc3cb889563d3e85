"""The harness of the simulator's tests: a webhook receiver, a peer (simulator + HTTP client),
scripts and checks. Fixtures building them are in tests/sim/conftest.py."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.bird import schemas
from service.bird.signature import (
    REQUEST_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignatureError,
    verify,
)
from service.sim import BirdSimulator, CallerScript, Transcript

SIGNING_KEY = "sim-test-signing-key"
ACCESS_KEY = "sim-test-access-key"
WORKSPACE = str(uuid.uuid4())
CHANNEL = str(uuid.uuid4())
CALLER = "+31612345678"
IVR = "+31970102030"
AGENT = "+31201234567"
WAIT_S = 10.0

# --------------------------------------------------------------------------- receiver


@dataclass(frozen=True)
class Received:
    path: str
    query: str
    request_id: str
    timestamp: str
    envelope: dict[str, Any]
    signature_error: str | None
    arrived: float = field(default_factory=time.time)
    """When it arrived (Unix seconds)."""

    @property
    def call(self) -> dict[str, Any]:
        payload: dict[str, Any] = self.envelope["payload"]
        return payload

    @property
    def call_id(self) -> str:
        return str(self.call["id"])

    @property
    def status(self) -> str:
        return str(self.call["status"])

    @property
    def command(self) -> dict[str, Any] | None:
        command: dict[str, Any] | None = self.call.get("command")
        return command


Reaction = Callable[[Received], Coroutine[Any, Any, None]]


@dataclass(eq=False)
class Receiver:
    """A webhook endpoint that checks every signature and records every delivery."""

    signing_key: str
    base_url: str = ""
    received: list[Received] = field(default_factory=list)
    fail_next: int = 0
    react: Reaction | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])])

    async def _receive(self, request: Request) -> Response:
        raw = await request.body()
        query = request.url.query
        url = self.base_url + request.url.path + (f"?{query}" if query else "")
        error: str | None = None
        try:
            verify(
                signing_key=self.signing_key,
                signature=request.headers.get(SIGNATURE_HEADER),
                timestamp=request.headers.get(TIMESTAMP_HEADER),
                url=url,
                body=raw,
                now=time.time(),
                max_age_s=600,
            )
        except SignatureError as exc:
            error = exc.reason
        item = Received(
            path=request.url.path,
            query=query,
            request_id=request.headers.get(REQUEST_ID_HEADER, ""),
            timestamp=request.headers.get(TIMESTAMP_HEADER, ""),
            envelope=await request.json(),
            signature_error=error,
        )
        async with self._changed:
            self.received.append(item)
            self._changed.notify_all()
        if self.fail_next > 0:
            self.fail_next -= 1
            return Response(status_code=503)
        if self.react is not None:
            task = asyncio.get_running_loop().create_task(self.react(item))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return Response(status_code=204)

    async def wait_for(
        self, predicate: Callable[[Received], bool], what: str, timeout_s: float = WAIT_S
    ) -> Received:
        def found() -> Received | None:
            return next((item for item in self.received if predicate(item)), None)

        try:
            async with self._changed, asyncio.timeout(timeout_s):
                item = await self._changed.wait_for(found)
        except TimeoutError:
            seen = [(r.path, r.status, (r.command or {}).get("command")) for r in self.received]
            raise AssertionError(f"no delivery {what} within {timeout_s} s; got {seen}") from None
        assert item is not None
        return item

    def for_call(self, call_id: str) -> list[Received]:
        return [item for item in self.received if item.call_id == call_id]


# ------------------------------------------------------------------------- harness


@dataclass
class Peer:
    sim: BirdSimulator
    http: httpx.AsyncClient
    receiver: Receiver

    @property
    def calls_url(self) -> str:
        """``.../calls`` exactly (httpx would add a trailing slash to a base_url)."""
        return str(self.http.base_url).rstrip("/")

    async def inbound(self, script: CallerScript) -> str:
        call_id = await self.sim.place_inbound_call(script)
        await self.status(call_id, "ringing")
        return call_id

    async def status(self, call_id: str, status: str) -> Received:
        return await self.receiver.wait_for(
            lambda r: r.call_id == call_id and r.status == status and r.command is None,
            f"of status {status} for {call_id}",
        )

    async def done(self, call_id: str, command_id: str) -> dict[str, Any]:
        """The A3 command delivery of ``command_id``: its ``command`` object."""
        item = await self.receiver.wait_for(
            lambda r: r.call_id == call_id and (r.command or {}).get("id") == command_id,
            f"of command {command_id}",
        )
        assert item.command is not None
        return item.command

    async def send(self, call_id: str, action: str, body: Any = None) -> httpx.Response:
        return await self.http.post(f"/{call_id}/{action}", json=body)

    async def run(self, call_id: str, action: str, body: Any = None) -> dict[str, Any]:
        """Send a command, expect 202, wait for its completion."""
        response = await self.send(call_id, action, body)
        assert response.status_code == 202, response.text
        answer = response.json()
        command = answer["command"] if isinstance(answer["command"], dict) else answer
        return await self.done(call_id, command["id"])

    async def answer(self, call_id: str) -> None:
        done = await self.run(call_id, "answer")
        assert done["status"] == "completed"

    async def hang_up(self, call_id: str) -> Transcript:
        response = await self.send(call_id, "hangup")
        assert response.status_code == 202, response.text
        return await self.sim.wait_ended(call_id, WAIT_S)

    async def bridge(self, call_id: str, to: str, **options: Any) -> tuple[str, str]:
        """``POST /bridge`` (202 expected): the bridge command's id and the agent leg's id."""
        body = {"to": to, "hangupAfterBridge": False, **options}
        response = await self.send(call_id, "bridge", body)
        assert response.status_code == 202, response.text
        answer = response.json()
        return answer["command"]["id"], answer["bridgedCall"]["id"]

    def statuses(self, call_id: str) -> list[str]:
        """The statuses delivered for a call (or leg), command outcomes left out."""
        return [r.status for r in self.receiver.for_call(call_id) if r.command is None]

    async def call_status(self, call_id: str) -> str:
        """The call's status as ``GET`` shows it."""
        response = await self.http.get(f"/{call_id}")
        assert response.status_code == 200, response.text
        return str(response.json()["status"])


MakePeer = Callable[..., Awaitable[Peer]]


def script(*inputs: str, **options: Any) -> CallerScript:
    return CallerScript(
        name="test caller", from_number=CALLER, to_number=IVR, inputs=inputs, **options
    )


def assert_valid_call(call: dict[str, Any]) -> None:
    body = {key: value for key, value in call.items() if key != "command"}
    assert schemas.call_object_problems(body) == []
    uuid.UUID(body["id"])
    for key in ("createdAt", "updatedAt", "ringingAt", "answeredAt", "endedAt"):
        if key in body:
            datetime.strptime(body[key], "%Y-%m-%dT%H:%M:%S.%fZ")


def assert_valid_response(operation: str, body: Any) -> None:
    """``body`` matches the response schema Bird publishes for ``operation``."""
    document = schemas.document()
    schema = document["operations"][operation]["responseSchema"]
    if isinstance(schema, str):  # "same as top-level 'callObject'"
        schema = document["callObject"]
    errors = [e.message for e in Draft202012Validator(schema).iter_errors(body)]
    assert errors == [], (operation, body)


def assert_deliveries_sound(receiver: Receiver) -> None:
    """Signed, schema-valid, and in updatedAt order per call (originals only)."""
    assert receiver.received
    last: dict[str, str] = {}
    for item in receiver.received:
        assert item.signature_error is None, item
        assert item.envelope["service"] == "channels"
        assert_valid_call(item.call)
        uuid.UUID(item.request_id)
        updated = item.call["updatedAt"]
        assert updated > last.get(item.call_id, ""), "updatedAt must increase per call"
        last[item.call_id] = updated


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


KEY_VARIABLES = ("BIRD_SIGNING_KEY", "BIRD_ACCESS_KEY", "BIRD_WORKSPACE_ID", "BIRD_CHANNEL_ID")


def set_keys(monkeypatch: pytest.MonkeyPatch, value: str | None = "x") -> None:
    """The simulator's keys in the environment: all ``value``, or none (None)."""
    for name in KEY_VARIABLES:
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def set_real_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The keys the tests' receivers and clients use."""
    for name, value in zip(
        KEY_VARIABLES, (SIGNING_KEY, ACCESS_KEY, WORKSPACE, CHANNEL), strict=True
    ):
        monkeypatch.setenv(name, value)


def assert_one_line_error(capsys: pytest.CaptureFixture[str], message: str) -> None:
    """``ivr sim`` failed with one line on stderr, without a traceback, naming ``message``."""
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("ivr sim: error: ")
    assert message in lines[0]


def channel_client(port: int) -> httpx.AsyncClient:
    """A client of the simulator's calls on ``port``, with its access key."""
    base = f"http://127.0.0.1:{port}/workspaces/{WORKSPACE}/channels/{CHANNEL}/calls"
    headers = {"Authorization": f"AccessKey {ACCESS_KEY}"}
    return httpx.AsyncClient(base_url=base, headers=headers, trust_env=False)
