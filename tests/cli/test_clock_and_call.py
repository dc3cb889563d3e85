"""``ivr serve`` with a pinned clock (``IVR_CLOCK``) and ``ivr call`` as a user runs them."""

from __future__ import annotations

import asyncio
import json
import signal

from service.runtime.serving import serve
from service.sim import CallerScript
from tests.cli.test_cli import clean_env, process_against_a_sim
from tests.paths import IVR, ivr

CHRISTMAS = "2026-12-25T11:00+01:00"


def test_ivr_call_is_a_command_that_needs_a_caller_and_a_number() -> None:
    result = ivr("call", "--from", "+31612345678")
    assert result.returncode == 2
    assert result.stderr == (
        "ivr call: error: --from and --to go together: who calls, and which number\n"
    )
    assert "--from NUMBER" in ivr("call", "--help").stdout
    listed = " ".join(ivr("--help").stdout.split())
    assert "call place a call on a running ivr sim and print its transcript" in listed


def test_serve_refuses_a_malformed_ivr_clock_in_one_line() -> None:
    env = clean_env(
        BIRD_ACCESS_KEY="a", BIRD_WORKSPACE_ID="w", BIRD_CHANNEL_ID="c", BIRD_SIGNING_KEY="s",
        PUBLIC_BASE_URL="https://ivr.example.com", IVR_CLOCK="2026-12-25 11:00",
    )  # fmt: skip
    result = ivr("serve", env=env)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1
    assert "IVR_CLOCK needs a UTC offset (e.g. 2026-12-01T10:00+01:00), got '2026-12-25 11:00'" in (
        result.stderr
    )


async def test_serve_with_ivr_clock_shows_graphs_that_moment_and_logs_it(redis_url: str) -> None:
    """Pinned to Christmas Day, the support line is closed whatever the real time: the
    caller hears the after-hours prompt and leaves a voicemail (the pinned Tuesday morning of
    tests/e2e/test_readme_simulator.py finds it open). Signatures stay on the real clock:
    the simulator signs with the real time and every delivery is taken."""
    port, sim, bird_sock, env = process_against_a_sim()
    env.update(REDIS_URL=redis_url, IVR_CLOCK=CHRISTMAS)
    process = await asyncio.create_subprocess_exec(
        *IVR, "serve", "--host", "127.0.0.1", "--port", str(port),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    logged: list[dict[str, object]] = []
    try:
        async with asyncio.timeout(30):
            while not logged or logged[-1]["event"] != "service_listening":
                line = await process.stdout.readline()
                assert line, "ivr serve exited before listening"
                logged.append(json.loads(line))
        async with serve(sim.app, sock=bird_sock):
            call_id = await sim.place_inbound_call(
                CallerScript("christmas", "+31612345678", "+31970102030", ())
            )
            transcript = await sim.wait_ended(call_id, timeout_s=30)
    finally:
        await sim.aclose()
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            _, errors = await process.communicate()
    assert process.returncode == 0, errors.decode()
    (pinned,) = [line for line in logged if line["event"] == "clock_pinned"]
    assert (pinned["level"], pinned["at"]) == ("warning", "2026-12-25T11:00:00+01:00")
    assert transcript.texts("heard")[:2] == [
        "Thanks for calling Acme.",
        "We are closed right now. Please leave a message after the tone and we will call you back.",
    ]
    assert transcript.texts("recorded")
    assert transcript.fits
    assert all(delivery.ok for delivery in sim.deliveries)
