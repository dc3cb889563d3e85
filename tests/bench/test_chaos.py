"""The chaos bench (bench/chaos.py) in the normal suite: a short run with every fault on
(two in-process workers behind the proxy, Redis restarted mid-run; no SIGKILL), and its
detectors seeing what they are there to see."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.chaos import (
    AGENTS,
    DEFINITIONS,
    NUMBER,
    SALES,
    ChaosConfig,
    Evidence,
    Keys,
    Stopwatch,
    render,
    run,
)
from service.runtime.serving import bind, serve, url_of
from service.sim import BirdSimulator, CallerScript
from service.sim.faults import DELIVERY_DELAYED, DELIVERY_DUPLICATE

SECTIONS = ("double_actions", "stuck", "lost", "given_up", "state_disagreements")


async def test_a_short_chaos_run_finds_no_double_stuck_or_lost_call(tmp_path: Path) -> None:
    config = ChaosConfig(
        calls=20,
        seed=3,
        place_over_s=2.0,
        time_scale=0.02,
        bird_timeout_s=0.5,
        workers="inprocess",
        kill_worker=False,
        restart_redis=True,
        service_clock_speed=6.0,
        answer_timeout_real_s=20.0,
        max_wait_s=60.0,
        out_dir=tmp_path,
    )
    report = await run(config)
    data = report.data

    assert set(data) >= {"run", "faults", "first_prompt_s", "scenarios", *SECTIONS, "ok"}
    for key in SECTIONS:
        assert set(data[key]) == {"calls", "definition", "by_reason", "call_ids"}
        assert data[key]["definition"] == DEFINITIONS[key]
        assert len(data[key]["call_ids"]) == data[key]["calls"]
    assert data["run"]["calls"] == 20
    assert sum(s["placed"] for s in data["scenarios"].values()) == 20
    faults = data["faults"]
    assert faults["api"]["total"] > 0
    assert set(faults["api"]["injected"]) == set(faults["get"]["injected"])
    assert faults["delivery"][DELIVERY_DUPLICATE] > 0
    assert faults["delivery"][DELIVERY_DELAYED] > 0
    assert "redis-restart" in faults["infrastructure"]
    first = data["first_prompt_s"]
    assert first["calls"] > 0
    assert first["p50"] is not None
    assert first["p50"] <= first["p99"] <= first["max"]
    assert json.loads((tmp_path / "report.json").read_text()) == data
    assert "NOT OK" not in render(report)

    counted = (data["double_actions"]["calls"], data["stuck"]["calls"], data["lost"]["calls"])
    assert counted == (0, 0, 0), render(report)
    assert report.ok


async def _answered(http: httpx.AsyncClient, call_id: str) -> None:
    assert (await http.post(f"/{call_id}/answer")).status_code == 202


async def test_the_detectors_see_doubled_commands_and_a_stuck_call() -> None:
    """Driven by hand: two prompts and two bridges at once on one call (doubles), a
    call answered and then left in silence (stuck)."""

    async def accept(_: Request) -> Response:
        return Response(status_code=204)

    hook = Starlette(routes=[Route("/webhooks/bird", accept, methods=["POST"])])
    hook_sock, bird_sock = bind(), bind()
    keys = Keys()
    sim = BirdSimulator(
        access_key=keys.access_key,
        workspace_id=keys.workspace_id,
        channel_id=keys.channel_id,
        signing_key=keys.signing_key,
        subscription_url=url_of(hook_sock) + "/webhooks/bird",
        agents=AGENTS,
        time_scale=0.01,
    )
    stopwatch = Stopwatch(sim.app)
    calls = f"{url_of(bird_sock)}/workspaces/{keys.workspace_id}/channels/{keys.channel_id}/calls"
    try:
        async with (
            serve(hook, sock=hook_sock),
            serve(stopwatch, sock=bird_sock),
            httpx.AsyncClient(
                base_url=calls, headers={"Authorization": f"AccessKey {keys.access_key}"}
            ) as http,
        ):
            doubled, idle, calm = [
                await sim.place_inbound_call(CallerScript(name, f"+3160000000{n}", NUMBER))
                for n, name in enumerate(("doubled", "idle", "calm"))
            ]
            for call_id in (doubled, idle, calm):
                await _answered(http, call_id)
            # The first prompt lasts a minute of simulated time (0.6 s here), so the
            # second is surely taken while it plays, however slow the machine.
            for text in ("one " * 250, "two"):
                assert (await http.post(f"/{doubled}/say", json={"text": text})).is_success
            for _ in range(2):
                assert (await http.post(f"/{doubled}/bridge", json={"to": SALES})).is_success
            assert (await http.post(f"/{calm}/say", json={"text": "only one"})).is_success
            await sim.wait_for(calm, "heard", "only one", timeout_s=10)
            for _ in range(200):  # every delivery of the idle and calm calls answered
                if not any(sim.calls[c].pending_deliveries for c in (idle, calm)):
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.1)  # the say of "only one" has finished (0.5 s simulated)
            evidence = Evidence(sim, stopwatch)
            found = evidence.double_actions(sim.calls[doubled])
            assert "2 bridges performed" in found
            assert any("prompt command(s) taken while another" in f for f in found), found
            assert evidence.double_actions(sim.calls[calm]) == []
            assert evidence.double_actions(sim.calls[idle]) == []
            assert evidence.stuck(sim.calls[idle])
            assert not evidence.stuck(sim.calls[doubled])  # its bridges still run
    finally:
        sim.release_held_requests()
        await sim.aclose()
