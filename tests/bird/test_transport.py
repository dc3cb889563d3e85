"""The aiohttp transport under the Bird client, against real servers on loopback: what
each way of failing means to the client (tried again, or not: it may have been
performed), keep-alive, and that httpx's request and answer come through whole."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest

from service.bird.client import BirdClient
from service.bird.errors import BirdNoAnswer, BirdUnreachable
from service.bird.transport import AiohttpTransport

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A TCP server on loopback that hands each connection to ``handler`` and counts
    connections and requests (a request: its head read)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body)
        self.url = ""
        self.got_request = asyncio.Event()

    async def read_request(self, reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = await reader.readexactly(length)
        self.requests.append((head, body))
        self.got_request.set()
        return head, body

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def raw_server(make: Callable[[RawServer], Handler]) -> AsyncIterator[RawServer]:
    server = RawServer(lambda r, w: asyncio.sleep(0))
    server.handler = make(server)
    listening = await asyncio.start_server(server._serve, "127.0.0.1", 0)
    port = listening.sockets[0].getsockname()[1]
    server.url = f"http://127.0.0.1:{port}"
    async with listening:
        yield server


def answer(status: int, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status} Whatever", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def json_answers(server: RawServer) -> Handler:
    """Answers every request on the connection (keep-alive) with 201 and JSON."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.read_request(reader)
            writer.write(
                answer(201, b'{"data": {"id": "cmd-1"}}', "Content-Type: application/json")
            )
            await writer.drain()

    return handle


def client(url: str, transport: AiohttpTransport, **options: object) -> BirdClient:
    return BirdClient(
        base_url=url,
        access_key="k-1",
        workspace_id="ws",
        channel_id="ch",
        transport=transport,
        sleep=lambda s: asyncio.sleep(0),
        **options,  # type: ignore[arg-type]
    )


async def test_a_command_goes_out_whole_and_its_answer_comes_back() -> None:
    async with raw_server(json_answers) as server:
        bird = client(server.url, AiohttpTransport())
        try:
            first = await bird.say("call-1", "Hello", locale="en-US")
            second = await bird.answer("call-1")
        finally:
            await bird.aclose()
    assert first == second == {"data": {"id": "cmd-1"}}
    head, body = server.requests[0]
    assert head.startswith(b"POST /workspaces/ws/channels/ch/calls/call-1/say HTTP/1.1\r\n")
    lines = head.lower().split(b"\r\n")
    assert b"authorization: accesskey k-1" in lines
    assert b"content-type: application/json" in lines
    assert json.loads(body) == {"text": "Hello", "locale": "en-US"}
    assert server.requests[1][0].startswith(b"POST /workspaces/ws/channels/ch/calls/call-1/answer ")
    assert server.connections == 1  # the second request reused the kept-alive connection


async def test_a_compressed_answer_is_decoded_once() -> None:
    packed = gzip.compress(b'{"data": {"status": "ongoing"}}')

    def gzipped(server: RawServer) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            writer.write(answer(200, packed, "Content-Type: application/json",
                                "Content-Encoding: gzip"))  # fmt: skip
            await writer.drain()

        return handle

    async with raw_server(gzipped) as server:
        bird = client(server.url, AiohttpTransport())
        try:
            assert await bird.get_call("call-1") == {"data": {"status": "ongoing"}}
        finally:
            await bird.aclose()


async def test_a_refused_connection_sent_nothing_and_is_tried_again() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    seen: list[str] = []
    bird = client(f"http://127.0.0.1:{port}", AiohttpTransport(), retries=2,
                  observe=lambda command, result, s: seen.append(result))  # fmt: skip
    try:
        with pytest.raises(BirdUnreachable):
            await bird.say("call-1", "Hello")
    finally:
        await bird.aclose()
    assert seen == ["connection_error"] * 3  # the first try and two more


async def test_a_connection_dropped_after_the_request_is_not_sent_again() -> None:
    def drop(server: RawServer) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)  # read, maybe performed, then gone

        return handle

    async with raw_server(drop) as server:
        bird = client(server.url, AiohttpTransport(), retries=2)
        try:
            with pytest.raises(BirdNoAnswer):
                await bird.say("call-1", "Hello")
        finally:
            await bird.aclose()
    assert len(server.requests) == 1


async def test_no_answer_in_time_is_a_read_timeout_not_sent_again() -> None:
    def silent(server: RawServer) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await server.read_request(reader)
            await reader.read()  # until the client gives up and closes

        return handle

    seen: list[str] = []
    async with raw_server(silent) as server:
        bird = client(server.url, AiohttpTransport(), timeout=httpx.Timeout(0.2),
                      observe=lambda command, result, s: seen.append(result))  # fmt: skip
        try:
            with pytest.raises(BirdNoAnswer):
                await bird.say("call-1", "Hello")
        finally:
            await bird.aclose()
    assert len(server.requests) == 1
    assert seen == ["timeout"]


async def test_no_free_connection_in_time_sent_nothing() -> None:
    release = asyncio.Event()

    def slow(server: RawServer) -> Handler:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while True:
                await server.read_request(reader)
                await release.wait()
                writer.write(answer(204, b""))
                await writer.drain()

        return handle

    async with raw_server(slow) as server:
        one = AiohttpTransport(httpx.Limits(max_connections=1))
        bird = client(server.url, one, retries=0,
                      timeout=httpx.Timeout(5.0, connect=0.1, pool=0.1))  # fmt: skip
        try:
            first = asyncio.create_task(bird.answer("call-1"))
            await server.got_request.wait()  # the one connection is busy with the first
            with pytest.raises(BirdUnreachable):
                await bird.answer("call-2")
            release.set()
            assert await first == {}
        finally:
            await bird.aclose()
    assert len(server.requests) == 1  # the second never left
