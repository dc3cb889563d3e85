"""``/agents`` over real HTTP, against a real Redis, with real calls in line: create,
replace, list, read, status, delete, every refusal with its reason and JSON path, and
an agent made available reaching the caller who waits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from service.core.graph import GraphSet
from service.core.queues import Queue
from service.graphs.loader import parse
from service.runtime import keys
from service.runtime.serving import bind, serve, url_of
from service.server.app import create_app
from tests.support import RecordingBird, call_delivery, settings, signed_headers

TOKEN = "agents-api-test-token-0123456789"
NUMBER = "+31970999000"


@dataclass
class Service:
    """The app serving one graph whose only node puts callers in ``queue`` (a name no
    other test uses: the Redis is shared), and an operator's client with the token."""

    url: str
    http: httpx.AsyncClient
    bird: RecordingBird
    queue: str
    other: str
    prefix: str

    @property
    def webhook(self) -> str:
        return self.url + "/webhooks/bird"

    def agent_id(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    async def put_agent(
        self, name: str, *, status: str | None = None, address: str = "+31612345678", **extra: Any
    ) -> httpx.Response:
        body: dict[str, Any] = {"name": name.title(), "address": address,
                                "queues": {self.queue: {"level": 1}}, **extra}  # fmt: skip
        if status is not None:
            body["status"] = status
        return await self.http.put(f"/agents/{self.agent_id(name)}", json=body)

    async def set_status(self, name: str, status: str) -> httpx.Response:
        return await self.http.put(f"/agents/{self.agent_id(name)}/status", json={"status": status})

    async def deliver(self, url: str, body: bytes) -> dict[str, Any]:
        answer = await self.http.post(url, content=body, headers=signed_headers(url, body))
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    async def call_in(self) -> str:
        """An incoming call, answered: it reaches the queue node and asks for a place."""
        call_id = str(uuid.uuid4())
        for status in ("starting", "ongoing"):
            body = call_delivery(call_id, status, updated=time.time(), to=NUMBER)
            await self.deliver(self.webhook, body)
        return call_id

    async def hang_up(self, call_id: str) -> None:
        body = call_delivery(call_id, "completed", updated=time.time(), to=NUMBER,
                             hangupSource="caller")  # fmt: skip
        await self.deliver(self.webhook, body)

    def bridges(self) -> list[tuple[str, str]]:
        """Each bridge Bird was asked for: the address dialled, and its notification URL
        (which names the offer)."""
        return [(body["to"], body["notification"]["url"])
                for _, name, body in self.bird.requests if name == "bridge"]  # fmt: skip

    async def agent_leg(self, call_id: str, address: str, *statuses: str) -> None:
        """The agent's leg of the bridge to ``address`` reports ``statuses`` (A4)."""
        (url,) = [url for to, url in self.bridges() if to == address]
        leg = f"leg-{call_id}"
        for status in statuses:
            extra: dict[str, Any] = {"hangupSource": "callee"} if status == "completed" else {}
            body = call_delivery(leg, status, updated=time.time(), to=address, parentId=call_id,
                                 direction="outgoing", **extra)  # fmt: skip
            await self.deliver(url, body)

    async def agent(self, name: str) -> dict[str, Any]:
        answer = await self.http.get(f"/agents/{self.agent_id(name)}")
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found

    async def board(self) -> dict[str, Any]:
        answer = await self.http.get(f"/queues/{self.queue}")
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()
        return found


def queue_graphs(queue: str, other: str) -> GraphSet:
    graph = parse(
        {
            "id": "agents-api",
            "numbers": [NUMBER],
            "start": "wait",
            "nodes": {
                "wait": {
                    "type": "queue",
                    "queue": queue,
                    "on_timeout": "bye",
                    "on_no_agents": "bye",
                    "on_callback": "bye",
                },
                "bye": {"type": "hangup", "say": "Goodbye."},
            },
        },
        "agents-api.json",
    )
    queues = {queue: Queue(name=queue, wrap_up_s=60), other: Queue(name=other, strategy="top-down")}
    return GraphSet(graphs={graph.id: replace(graph, queues=queues)}, queues=queues)


@contextlib.asynccontextmanager
async def running_service(redis: Redis) -> AsyncIterator[Service]:
    tag = uuid.uuid4().hex[:8]
    queue, other = f"q-{tag}", f"q-{tag}-other"
    sock = bind()
    bird = RecordingBird()
    app = create_app(
        replace(settings(url_of(sock)), ivr_admin_token=TOKEN), redis=redis,
        graphs=queue_graphs(queue, other), bird_transport=httpx.MockTransport(bird),
    )  # fmt: skip
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with (
        serve(app, sock=sock) as running,
        httpx.AsyncClient(base_url=running.url, headers=headers) as http,
    ):
        for _ in range(1000):  # the line is prepared once the app has started
            if await redis.exists(keys.queue_config(queue)):
                break
            await asyncio.sleep(0.01)
        yield Service(running.url, http, bird, queue, other, prefix=f"a{tag}")


@pytest.fixture
async def service(redis: Redis) -> AsyncIterator[Service]:
    async with running_service(redis) as made:
        yield made


async def test_an_agent_is_created_replaced_listed_and_read(service: Service) -> None:
    ann = service.agent_id("ann")
    created = await service.put_agent("ann", address="sip:ann@pbx.example.com")
    assert created.status_code == 201
    assert created.json() == {
        "id": ann, "name": "Ann", "address": "sip:ann@pbx.example.com",
        "queues": {service.queue: {"level": 1, "position": 1}},
        "status": "offline", "state": "idle", "until": None, "call_id": None, "queue": None,
        "missed_in_a_row": 0, "calls_today": 0, "talk_s_today": 0.0,
    }  # fmt: skip

    replaced = await service.http.put(f"/agents/{ann}", json={
        "id": ann, "name": "Ann Smith", "address": "+31612345678", "status": "available",
        "queues": {service.queue: {"level": 2, "position": 3}, service.other: None},
    })  # fmt: skip
    assert replaced.status_code == 200
    view = replaced.json()
    assert (view["name"], view["address"], view["status"], view["state"]) == (
        "Ann Smith", "+31612345678", "available", "idle",
    )  # fmt: skip
    assert view["queues"] == {
        service.queue: {"level": 2, "position": 3},
        service.other: {"level": 1, "position": 1},
    }
    assert await service.agent("ann") == view
    listed = (await service.http.get("/agents")).json()["agents"]
    assert [a for a in listed if a["id"] == ann] == [view]
    ids = [a["id"] for a in listed]
    assert ids == sorted(ids)


async def test_a_replaced_agent_keeps_their_status_unless_the_body_names_one(
    service: Service,
) -> None:
    assert (await service.put_agent("bo", status="on_break")).json()["status"] == "on_break"
    again = await service.put_agent("bo", address="+31612345000")
    assert (again.status_code, again.json()["status"]) == (200, "on_break")
    assert again.json()["address"] == "+31612345000"
    named = await service.put_agent("bo", status="available")
    assert (named.status_code, named.json()["status"]) == (200, "available")


async def test_status_is_set_and_answered_with_the_agent(service: Service) -> None:
    await service.put_agent("cy")
    for status in ("available", "on_break", "offline", "available"):
        answer = await service.set_status("cy", status)
        assert answer.status_code == 200
        assert (answer.json()["id"], answer.json()["status"]) == (service.agent_id("cy"), status)
        assert answer.json()["state"] == "idle"
    assert (await service.agent("cy"))["status"] == "available"


async def test_a_deleted_agent_is_gone(service: Service) -> None:
    dee = service.agent_id("dee")
    await service.put_agent("dee", status="available")
    deleted = await service.http.delete(f"/agents/{dee}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    for answer in (
        await service.http.get(f"/agents/{dee}"),
        await service.http.delete(f"/agents/{dee}"),
        await service.set_status("dee", "available"),
    ):
        assert answer.status_code == 404
        assert answer.json() == {"error": "not_found", "reason": f"no agent {dee!r}"}
    assert dee not in [a["id"] for a in (await service.http.get("/agents")).json()["agents"]]
    assert (await service.board())["agents"]["total"] == 0


async def test_an_agent_made_available_is_offered_to_the_caller_waiting(
    service: Service,
) -> None:
    await service.put_agent("bob", status="available", address="+31612340001")
    await service.put_agent("ann", status="on_break", address="+31612340002")
    first = await service.call_in()  # offered to bob at once: his phone rings
    second = await service.call_in()  # waits: bob is busy, ann on a break
    waiting = (await service.board())["waiting"]
    assert [(c["call_id"], c["ringing"], c["agent_id"]) for c in waiting] == [
        (first, True, service.agent_id("bob")),
        (second, False, None),
    ]

    answer = await service.set_status("ann", "available")

    assert answer.status_code == 200
    view = answer.json()
    assert (view["status"], view["state"], view["call_id"]) == ("available", "offered", second)
    assert [to for to, _ in service.bridges()] == ["+31612340001", "+31612340002"]
    waiting = (await service.board())["waiting"]
    assert [(c["call_id"], c["ringing"], c["agent_id"]) for c in waiting] == [
        (first, True, service.agent_id("bob")),
        (second, True, service.agent_id("ann")),
    ]


async def test_an_agent_offered_a_caller_or_in_a_call_is_not_deleted(service: Service) -> None:
    bob = service.agent_id("bob")
    await service.put_agent("bob", status="available", address="+31612340001")
    call_id = await service.call_in()
    offered = await service.http.delete(f"/agents/{bob}")
    assert offered.status_code == 409
    assert offered.json() == {
        "error": "agent_busy", "state": "offered",
        "reason": f"agent {bob!r} is offered a caller; set their status to offline, and "
                  "delete them once the call has ended",
    }  # fmt: skip
    await service.agent_leg(call_id, "+31612340001", "ringing", "ongoing")
    in_call = await service.http.delete(f"/agents/{bob}")
    assert (in_call.status_code, in_call.json()["state"]) == (409, "in_call")
    assert "is in a call" in in_call.json()["reason"]

    # Going offline in a call: they finish it, then are not offered another.
    offline = await service.set_status("bob", "offline")
    assert (offline.json()["status"], offline.json()["state"]) == ("offline", "in_call")
    await service.agent_leg(call_id, "+31612340001", "completed")
    after = await service.agent("bob")
    assert (after["state"], after["calls_today"]) == ("wrap_up", 1)
    assert after["until"] is not None
    assert (await service.http.delete(f"/agents/{bob}")).status_code == 204


async def test_wrap_up_is_ended_early_by_setting_the_agent_available(service: Service) -> None:
    await service.put_agent("bob", status="available", address="+31612340001")
    first = await service.call_in()
    await service.agent_leg(first, "+31612340001", "ringing", "ongoing", "completed")
    assert (await service.agent("bob"))["state"] == "wrap_up"  # for 60 s
    second = await service.call_in()
    assert [c["ringing"] for c in (await service.board())["waiting"]] == [False]

    ended = await service.set_status("bob", "available")

    assert (ended.json()["state"], ended.json()["call_id"]) == ("offered", second)


@pytest.mark.parametrize(
    "agent_id",
    ["-starts-with-a-dash", "x" * 65, "has space", "colon:ed", "caf%C3%A9", ".dot"],
)
async def test_an_agent_id_that_is_not_one_gets_400(service: Service, agent_id: str) -> None:
    body = {"address": "+31612345678"}
    for answer in (
        await service.http.get(f"/agents/{agent_id}"),
        await service.http.put(f"/agents/{agent_id}", json=body),
        await service.http.delete(f"/agents/{agent_id}"),
        await service.http.put(f"/agents/{agent_id}/status", json={"status": "available"}),
    ):
        assert answer.status_code == 400, answer.request.url
        assert answer.json()["error"] == "invalid_agent_id"
        assert "1-64 letters, digits" in answer.json()["reason"]


async def test_the_longest_agent_id_is_one(service: Service) -> None:
    longest = "A" + uuid.uuid4().hex[:20] + "_.-" + "x" * 40
    assert len(longest) == 64
    answer = await service.http.put(f"/agents/{longest}", json={"address": "+31612345678"})
    assert answer.status_code == 201
    assert (answer.json()["id"], answer.json()["name"]) == (longest, longest)
    assert (await service.http.delete(f"/agents/{longest}")).status_code == 204


def invalid_bodies(queue: str) -> list[tuple[Any, str, str]]:
    good = {"address": "+31612345678", "queues": {queue: {"level": 1}}}
    q = f"/queues/{queue}"
    return [
        ([], "/", "an agent is a JSON object"),
        ({**good, "email": "x"}, "/email",
         "unknown field (allowed: address, id, name, queues, status)"),
        ({**good, "id": "someone-else"}, "/id", "is 'someone-else', but the URL names"),
        ({**good, "name": " "}, "/name", "must be a non-empty string"),
        ({"queues": {}}, "/address", "must be an E.164 number (+31612345678) or a sip: URI"),
        ({**good, "address": "0612345678"}, "/address", "must be an E.164 number"),
        ({**good, "queues": [queue]}, "/queues", "must be an object"),
        ({**good, "queues": {"nope": {}}}, "/queues/nope",
         "no queue 'nope' in queues.json (known: "),
        ({**good, "queues": {queue: {"tier": 1}}}, q, "must be an object"),
        ({**good, "queues": {queue: {"level": 0}}}, f"{q}/level", "must be an integer 1..9"),
        ({**good, "queues": {queue: {"level": "1"}}}, f"{q}/level", "must be an integer"),
        ({**good, "queues": {queue: {"position": 0}}}, f"{q}/position",
         "must be an integer 1..10000"),
        ({**good, "status": "busy"}, "/status", "must be one of offline, available, on_break"),
    ]  # fmt: skip


@pytest.mark.parametrize("case", range(len(invalid_bodies("q"))))
async def test_an_invalid_agent_gets_400_with_the_json_path_and_reason(
    service: Service, case: int
) -> None:
    body, path, reason = invalid_bodies(service.queue)[case]
    agent_id = service.agent_id("eve")
    answer = await service.http.put(f"/agents/{agent_id}", json=body)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_agent"
    assert answer.json()["path"] == path
    assert answer.json()["reason"].startswith(reason)
    assert (await service.http.get(f"/agents/{agent_id}")).status_code == 404


async def test_bodies_that_are_not_json_or_too_large_are_refused(service: Service) -> None:
    url = f"/agents/{service.agent_id('fay')}"
    for target in (url, url + "/status"):
        for content in (b"{oops", b"", b"\xff\xfe"):
            answer = await service.http.put(target, content=content)
            assert answer.status_code == 400
            assert answer.json()["error"] == "bad_request"
            assert answer.json()["reason"].startswith("the body is not JSON")
    await service.put_agent("fay")
    huge = json.dumps({"address": "+31612345678", "name": "x" * (64 * 1024)}).encode()

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the body is counted
        for start in range(0, len(huge), 8192):
            yield huge[start : start + 8192]

    for target in (url, url + "/status"):
        for large in (huge, chunked()):
            answer = await service.http.put(target, content=large)
            assert answer.status_code == 413
            assert answer.json() == {"error": "too_large", "reason": "the body is over 64 KiB"}
    assert (await service.agent("fay"))["name"] == "Fay"


@pytest.mark.parametrize(
    ("body", "path", "reason"),
    [
        ({"status": "busy"}, "/status", "must be one of offline, available, on_break"),
        ({}, "/status", "must be one of offline, available, on_break"),
        ({"status": None}, "/status", "must be one of offline, available, on_break"),
        ({"status": "available", "until": 5}, "/until", "unknown field (allowed: status)"),
        (["available"], "/", 'the body must be an object {"status": "available"|"on_break"|'
                             '"offline"}'),
    ],
)  # fmt: skip
async def test_a_bad_status_gets_400(service: Service, body: Any, path: str, reason: str) -> None:
    await service.put_agent("gus", status="on_break")
    answer = await service.http.put(f"/agents/{service.agent_id('gus')}/status", json=body)
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_status", "path": path, "reason": reason}
    assert (await service.agent("gus"))["status"] == "on_break"


async def test_every_agent_endpoint_needs_the_token(service: Service) -> None:
    url = f"/agents/{service.agent_id('hal')}"
    requests = [("GET", "/agents"), ("GET", url), ("PUT", url), ("DELETE", url),
                ("PUT", url + "/status")]  # fmt: skip
    for headers in ({"authorization": ""}, {"authorization": "Bearer wrong-token-0123456789"}):
        for method, path in requests:
            answer = await service.http.request(
                method, path, json={"address": "+31612345678", "status": "available"},
                headers=headers,
            )  # fmt: skip
            assert answer.status_code == 401, (method, path)
            assert answer.json()["error"] == "unauthorized"
    assert (await service.http.get(url)).status_code == 404  # nothing was created


async def test_changes_are_logged_without_the_full_address(service: Service) -> None:
    ivy = service.agent_id("ivy")
    with capture_logs() as logged:
        await service.put_agent("ivy", address="+31612345678")
        await service.put_agent("ivy", address="sip:ivy.private@pbx.example.com")
        await service.set_status("ivy", "available")
        await service.http.delete(f"/agents/{ivy}")
    mine = [e for e in logged if e.get("agent_id") == ivy and e["event"].startswith("agent_")]
    assert [e["event"] for e in mine] == [
        "agent_put", "agent_put", "agent_available", "agent_status_set", "agent_deleted",
    ]  # fmt: skip
    assert [e.get("address") for e in mine[:2]] == ["+31******678", "sip:***@pbx.example.com"]
    assert (mine[0]["created"], mine[1]["created"]) == (True, False)
    assert (mine[3]["status"], mine[3]["before"]) == ("available", "offline")
    text = repr(logged)
    assert "+31612345678" not in text
    assert "ivy.private" not in text
