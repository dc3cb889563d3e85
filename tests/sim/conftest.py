"""Fixtures of the simulator's tests: a receiver on loopback and simulators serving HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from service.runtime.serving import serve
from service.sim import BirdSimulator
from tests.sim.harness import (
    ACCESS_KEY,
    CHANNEL,
    SIGNING_KEY,
    WORKSPACE,
    MakePeer,
    Peer,
    Receiver,
)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver(SIGNING_KEY)
    async with serve(receiver.app()) as running:
        receiver.base_url = running.url
        yield receiver


@pytest.fixture
async def make_peer(receiver: Receiver) -> AsyncIterator[MakePeer]:
    async with contextlib.AsyncExitStack() as stack:

        async def make(**options: Any) -> Peer:
            sim = BirdSimulator(
                access_key=ACCESS_KEY,
                workspace_id=WORKSPACE,
                channel_id=CHANNEL,
                signing_key=SIGNING_KEY,
                subscription_url=f"{receiver.base_url}/webhooks/bird?tenant=demo",
                **options,
            )
            stack.push_async_callback(sim.aclose)
            running = await stack.enter_async_context(serve(sim.app))
            # Before the server stops: a slow or dropped request still held ends at once.
            stack.callback(sim.release_held_requests)
            http = httpx.AsyncClient(
                base_url=f"{running.url}/workspaces/{WORKSPACE}/channels/{CHANNEL}/calls",
                headers={"Authorization": f"AccessKey {ACCESS_KEY}"},
                trust_env=False,
            )
            stack.push_async_callback(http.aclose)
            return Peer(sim, http, receiver)

        yield make


@pytest.fixture
async def peer(make_peer: MakePeer) -> Peer:
    return await make_peer()
