"""Builders shared by the tests: settings, signed deliveries, a recording Bird."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
from redis.asyncio import Redis

from service.bird import signature
from service.bird.commands import BirdCalls
from service.cli.demo import OPEN
from service.core.actions import HttpRequest
from service.core.events import HttpResponded
from service.core.graph import GraphSet
from service.runtime.calls import CallHandler
from service.runtime.clock import PinnedClock
from service.runtime.lookups import Fetch
from service.runtime.registry import Registry
from service.runtime.settings import Settings
from service.runtime.store import CallStore

SIGNING_KEY = "test-signing-key"


def settings(public_base_url: str, bird_api_url: str = "http://bird.invalid") -> Settings:
    return Settings.from_env(
        {
            "BIRD_ACCESS_KEY": "test-access-key",
            "BIRD_WORKSPACE_ID": str(uuid.uuid4()),
            "BIRD_CHANNEL_ID": str(uuid.uuid4()),
            "BIRD_SIGNING_KEY": SIGNING_KEY,
            "PUBLIC_BASE_URL": public_base_url,
            "BIRD_API_URL": bird_api_url,
            "IVR_DEFAULT_GRAPH": "support-line",
            "LOG_FORMAT": "console",
        }
    )


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def call_delivery(
    call_id: str,
    status: str,
    *,
    updated: float,
    to: str = "+31970102030",
    command: Mapping[str, Any] | None = None,
    **payload: Any,
) -> bytes:
    call: dict[str, Any] = {
        "id": call_id,
        "from": "+31612345678",
        "to": to,
        "direction": "incoming",
        "status": status,
        "createdAt": iso(updated - 1),
        "updatedAt": iso(updated),
    }
    call.update(payload)
    if command is not None:
        call["command"] = dict(command)
    return json.dumps({"service": "channels", "event": "voice.inbound", "payload": call}).encode()


def signed_headers(url: str, body: bytes, *, key: str = SIGNING_KEY) -> dict[str, str]:
    timestamp = str(int(time.time()))
    return {
        "content-type": "application/json",
        signature.SIGNATURE_HEADER: signature.sign(key, timestamp, url, body),
        signature.TIMESTAMP_HEADER: timestamp,
        signature.REQUEST_ID_HEADER: str(uuid.uuid4()),
    }


class RecordingBird:
    """A MockTransport handler answering every command 202 and keeping the requests."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, request.url.path.rsplit("/", 1)[-1], body))
        return httpx.Response(202, json={"id": str(uuid.uuid4()), "status": "queued"})

    @property
    def commands(self) -> list[str]:
        return [name for _, name, _ in self.requests]


def recording_bird_calls(bird: RecordingBird) -> BirdCalls:
    """Bird's calls as the service reaches them, answered by ``bird``."""
    return BirdCalls.for_channel(base_url="http://bird.invalid", access_key="k", workspace_id="w",
                                 channel_id="c", transport=httpx.MockTransport(bird))  # fmt: skip


def handler_for(
    redis: Redis,
    bird: BirdCalls,
    graphs: GraphSet,
    *,
    fetch: Fetch | None = None,
    store: CallStore | None = None,
    graph_clock: Callable[[], float] | None = None,
    clock: Callable[[], float] | None = None,
) -> CallHandler:
    """A CallHandler as the app builds it, for tests and benchmarks without HTTP.
    Graphs see a Tuesday morning (the support line is open) unless told otherwise."""

    async def no_lookups(request: HttpRequest) -> HttpResponded:
        raise AssertionError(f"unexpected lookup {request}")

    return CallHandler(
        store=store or CallStore(redis, ended_ttl_s=600),
        redis=redis,
        bird=bird,
        registry=Registry(redis, graphs),
        fetch=fetch or no_lookups,
        notification_url="https://ivr.example.com/webhooks/bird",
        new_call_max_age_s=120,
        graph_clock=graph_clock or PinnedClock(OPEN),
        clock=clock or time.time,
        rng=random.Random(7),
    )


def log_lines(lines: list[dict[str, Any]], event: str, **fields: object) -> list[dict[str, Any]]:
    """The log lines (event dicts) of ``event`` whose ``fields`` have these values."""
    return [
        line for line in lines
        if line["event"] == event and all(line.get(k) == v for k, v in fields.items())
    ]  # fmt: skip
