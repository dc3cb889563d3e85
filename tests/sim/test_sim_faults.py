"""Fault injection: Bird on a bad day, seen by a peer over real HTTP on loopback."""

from __future__ import annotations

import argparse
import asyncio
import re
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest

from service.runtime.serving import serve
from service.sim import BirdSimulator, Faults
from service.sim import cli as sim_cli
from service.sim.faults import PROBABILITIES, SECONDS, FaultDice
from tests.sim.harness import (
    ACCESS_KEY,
    AGENT,
    CALLER,
    CHANNEL,
    IVR,
    SIGNING_KEY,
    WORKSPACE,
    MakePeer,
    Peer,
    Received,
    Receiver,
    assert_one_line_error,
    channel_client,
    free_port,
    script,
    set_keys,
    set_real_keys,
)

IMPATIENT_S = 0.3
"""The client's timeout in the slow and dropped tests (real seconds)."""


def answers(peer: Peer) -> list[str | None]:
    return [r.fault for r in peer.sim.requests if r.operation == "answerCall"]


def updated_at(item: Received) -> float:
    moment = datetime.strptime(item.call["updatedAt"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.replace(tzinfo=UTC).timestamp()


# ------------------------------------------------------------------------- API faults


async def test_no_faults_by_default(peer: Peer) -> None:
    call_id = await peer.inbound(script())
    await peer.answer(call_id)
    await peer.hang_up(call_id)
    assert peer.sim.faults == Faults()
    assert not peer.sim.faults.enabled
    assert peer.sim.fault_counts == Counter()
    assert all(r.fault is None and r.performed and not r.rejected for r in peer.sim.requests)
    assert peer.sim.performed(call_id, "answer") == 1
    assert peer.sim.performed(call_id, "answerCall") == 1
    assert peer.sim.performed(call_id, "hangup") == 1
    assert peer.sim.performed(call_id, "say") == 0


@pytest.mark.parametrize(
    ("faults", "statuses"),
    [
        (Faults(seed=1, api_error=1.0), {500: "internal_error", 503: "service_unavailable"}),
        (Faults(seed=1, api_rate_limited=1.0), {429: "rate_limited"}),
    ],
)
async def test_api_errors_answer_without_performing(
    make_peer: MakePeer, faults: Faults, statuses: dict[int, str]
) -> None:
    peer = await make_peer(faults=faults)
    call_id = await peer.inbound(script())
    seen: set[int] = set()
    for _ in range(6):
        response = await peer.send(call_id, "answer")
        body = response.json()
        assert set(body) == {"code", "message"}
        assert statuses[response.status_code] == body["code"]
        seen.add(response.status_code)
    assert seen == set(statuses)  # seed 1 draws both 500 and 503
    created = await peer.http.post(peer.calls_url, json={"to": AGENT})
    assert created.status_code in statuses

    # Bird did none of it: the call still rings, and no call was created.
    got = await peer.http.get(f"/{call_id}")  # GET has its own faults: none here
    assert (got.status_code, got.json()["status"]) == (200, "ringing")
    assert [r.status for r in peer.receiver.for_call(call_id)] == ["starting", "ringing"]
    assert list(peer.sim.calls) == [call_id]
    assert peer.sim.performed(call_id, "answer") == 0
    faulted = [r for r in peer.sim.requests if r.method == "POST"]
    assert len(faulted) == 7
    for record in faulted:
        expected = "rate-limited" if record.status == 429 else f"error-{record.status}"
        assert record.fault == expected
        assert record.code == statuses[record.status]
        assert (record.performed, record.accepted, record.rejected) == (False, False, False)
    assert peer.sim.fault_counts == Counter(r.fault for r in faulted)


async def test_a_request_bird_rejects_is_never_faulted(make_peer: MakePeer) -> None:
    peer = await make_peer(faults=Faults(api_error=1.0, get_error=1.0))
    call_id = await peer.inbound(script())
    unknown = str(uuid.uuid4())
    wrong_key = {"Authorization": "AccessKey not-the-key"}
    rejected = [
        (await peer.send(call_id, "say", {"text": "too early"}), 422),  # call state
        (await peer.send(call_id, "say", {"txt": "hello"}), 422),  # schema
        (await peer.http.post(f"/{call_id}/answer", headers=wrong_key), 401),
        (await peer.http.get(f"/{call_id}", headers=wrong_key), 401),
        (await peer.send(unknown, "answer"), 404),
        (await peer.http.get(f"/{unknown}"), 404),
        (await peer.http.post(peer.calls_url, json={"to": AGENT, "ringTimeout": 2}), 422),
        (await peer.http.post(f"/{call_id}/answer", content=b"{"), 400),
    ]
    assert [response.status_code for response, _ in rejected] == [s for _, s in rejected]
    assert all(r.rejected and r.fault is None and not r.performed for r in peer.sim.requests)
    assert peer.sim.fault_counts == Counter()
    # ... while a request Bird would carry out is faulted.
    assert (await peer.send(call_id, "answer")).status_code in (500, 503)
    assert (await peer.http.get(f"/{call_id}")).status_code in (500, 503)
    assert sum(peer.sim.fault_counts.values()) == 2


async def test_api_slow_is_performed_and_answered_late(make_peer: MakePeer) -> None:
    peer = await make_peer(faults=Faults(api_slow=1.0, slow_answer_s=1.0))
    call_id = await peer.inbound(script())
    with pytest.raises(httpx.ReadTimeout):
        await peer.http.post(f"/{call_id}/answer", timeout=IMPATIENT_S)
    await peer.status(call_id, "ongoing")  # Bird answered the call all the same
    assert peer.sim.performed(call_id, "answer") == 1
    (record,) = [r for r in peer.sim.requests if r.operation == "answerCall"]
    assert (record.fault, record.status, record.performed) == ("slow", 202, True)
    assert record.response["command"] == "answer"

    started = time.monotonic()
    patient = await peer.http.post(f"/{call_id}/say", json={"text": "Hello."}, timeout=10)
    assert time.monotonic() - started >= 1.0
    assert patient.status_code == 202
    assert patient.json()["command"] == "say"
    assert peer.sim.fault_counts == Counter({"slow": 2})


@pytest.mark.parametrize("performed", [True, False])
async def test_api_dropped_never_answers(make_peer: MakePeer, performed: bool) -> None:
    faults = Faults(api_dropped=1.0, dropped_performed=1.0 if performed else 0.0)
    peer = await make_peer(faults=faults)
    call_id = await peer.inbound(script())
    with pytest.raises(httpx.ReadTimeout):
        await peer.http.post(f"/{call_id}/answer", timeout=IMPATIENT_S)
    (record,) = [r for r in peer.sim.requests if r.operation == "answerCall"]
    assert (record.status, record.performed) == (0, performed)
    if performed:
        await peer.status(call_id, "ongoing")
        assert record.fault == "dropped-performed"
        assert record.response["command"] == "answer"  # what Bird would have answered
    else:
        assert (await peer.http.get(f"/{call_id}")).json()["status"] == "ringing"
        assert record.fault == "dropped-not-performed"
        assert record.response is None
    assert peer.sim.performed(call_id, "answer") == int(performed)
    assert peer.sim.fault_counts == Counter({record.fault: 1})


async def test_a_held_request_ends_when_its_client_gives_up(receiver: Receiver) -> None:
    """No release_held_requests here: the server stops at once all the same."""
    sim = BirdSimulator(
        access_key=ACCESS_KEY,
        workspace_id=WORKSPACE,
        channel_id=CHANNEL,
        signing_key=SIGNING_KEY,
        subscription_url=f"{receiver.base_url}/webhooks/bird",
        faults=Faults(api_dropped=1.0, api_slow=0.0, drop_hold_s=30.0),
    )
    headers = {"Authorization": f"AccessKey {ACCESS_KEY}"}
    try:
        async with httpx.AsyncClient(headers=headers, trust_env=False) as http:
            async with serve(sim.app) as running:
                calls = f"{running.url}/workspaces/{WORKSPACE}/channels/{CHANNEL}/calls"
                call_id = await sim.place_inbound_call(script())
                with pytest.raises(httpx.ReadTimeout):
                    await http.post(f"{calls}/{call_id}/answer", timeout=IMPATIENT_S)
                stopping = time.monotonic()
            assert time.monotonic() - stopping < 5.0  # not the 30 s hold
    finally:
        await sim.aclose()
    assert sim.fault_counts.total() == 1


async def test_a_client_that_outwaits_the_hold_gets_a_gateway_timeout(
    make_peer: MakePeer,
) -> None:
    peer = await make_peer(faults=Faults(api_dropped=1.0, dropped_performed=1.0, drop_hold_s=0.3))
    call_id = await peer.inbound(script())
    response = await peer.http.post(f"/{call_id}/answer", timeout=10)
    assert response.status_code == 504
    assert response.json()["code"] == "gateway_timeout"
    (record,) = [r for r in peer.sim.requests if r.operation == "answerCall"]
    assert (record.status, record.fault, record.performed) == (504, "dropped-performed", True)
    await peer.status(call_id, "ongoing")


async def test_releasing_held_requests_ends_them_at_once(make_peer: MakePeer) -> None:
    peer = await make_peer(faults=Faults(api_dropped=1.0, dropped_performed=1.0))
    call_id = await peer.inbound(script())
    waiting = asyncio.create_task(peer.http.post(f"/{call_id}/answer", timeout=20))
    await peer.status(call_id, "ongoing")  # performed, and held (for 30 s)
    assert not waiting.done()
    peer.sim.release_held_requests()
    async with asyncio.timeout(5):
        response = await waiting
    assert response.status_code == 504


async def test_get_faults_are_configured_apart(make_peer: MakePeer) -> None:
    peer = await make_peer(faults=Faults(get_rate_limited=1.0))
    call_id = await peer.inbound(script())
    got = await peer.http.get(f"/{call_id}")
    assert got.status_code == 429
    assert got.json()["code"] == "rate_limited"
    await peer.answer(call_id)  # commands are not faulted
    await peer.hang_up(call_id)
    faulted = [(r.method, r.fault) for r in peer.sim.requests if r.fault]
    assert faulted == [("GET", "rate-limited")]

    commands_only = await make_peer(faults=Faults(api_error=1.0))
    other = await commands_only.inbound(script())
    assert (await commands_only.http.get(f"/{other}")).status_code == 200
    assert (await commands_only.send(other, "answer")).status_code in (500, 503)


async def test_the_same_seed_gives_the_same_faults_to_each_call(make_peer: MakePeer) -> None:
    """Per call, whatever the order the requests of concurrent calls arrive in."""

    async def run(seed: int, interleaved: bool) -> tuple[list[list[str | None]], Counter[str]]:
        faults = Faults(seed=seed, api_error=0.3, api_rate_limited=0.3)
        peer = await make_peer(faults=faults, answer_timeout_s=1000.0)
        calls = [await peer.inbound(script()), await peer.inbound(script())]
        order = (
            [calls[i % 2] for i in range(16)] if interleaved else sorted(calls * 8, key=calls.index)
        )
        for call_id in order:
            assert (await peer.send(call_id, "ringing")).status_code in (202, 429, 500, 503)
        per_call = [[r.fault for r in peer.sim.requests_for(c)] for c in calls]
        return per_call, peer.sim.fault_counts

    first, first_counts = await run(7, interleaved=False)
    again, again_counts = await run(7, interleaved=True)
    other, _ = await run(8, interleaved=False)
    assert first == again
    assert first_counts == again_counts
    assert first != other
    assert {None, "rate-limited"} <= set(first[0] + first[1])
    assert {"error-500", "error-503"} & set(first[0] + first[1])


# -------------------------------------------------------------------- delivery faults


async def test_delivery_duplicate_sends_some_deliveries_twice(make_peer: MakePeer) -> None:
    faults = Faults(seed=0, delivery_duplicate=0.5)
    dice = FaultDice(faults)
    twice = [dice.delivery("call-0/delivery", always_duplicate=False)[0] for _ in range(5)]
    assert 0 < sum(twice) < 5  # seed 0: some, not all
    peer = await make_peer(faults=faults)
    call_id = await peer.inbound(script())
    await peer.answer(call_id)
    await peer.hang_up(call_id)

    expected: list[str] = []
    for duplicate in twice:
        expected += ["original", "duplicate"] if duplicate else ["original"]
    assert [d.kind for d in peer.sim.deliveries] == expected
    received = peer.receiver.for_call(call_id)
    assert len(received) == len(expected)
    for index, kind in enumerate(expected):
        if kind == "duplicate":
            original, again = received[index - 1], received[index]
            assert again.envelope == original.envelope
            assert again.timestamp == original.timestamp
            assert again.request_id != original.request_id
    assert all(item.signature_error is None for item in received)
    assert peer.sim.fault_counts == Counter({"delivery-duplicate": sum(twice)})


async def test_delivery_delay_reorders_close_deliveries_but_not_updated_at(
    make_peer: MakePeer,
) -> None:
    faults = Faults(seed=1, delivery_delay_s=40.0)  # simulated seconds: 0.4 s real at most
    dice = FaultDice(faults)
    delays = [dice.delivery("call-0/delivery", always_duplicate=False)[1] for _ in range(5)]
    # 'starting' and 'ringing' happen together; with seed 1 'ringing' waits far less.
    assert delays[0] > delays[1] + 20
    peer = await make_peer(faults=faults)
    call_id = await peer.sim.place_inbound_call(script())
    await peer.status(call_id, "starting")
    first, second = peer.receiver.for_call(call_id)[:2]
    assert (first.status, second.status) == ("ringing", "starting")
    assert updated_at(second) < updated_at(first)  # updatedAt still orders them (A6)
    # 'starting' carries the moment it happened, not the moment it was sent.
    assert second.arrived - updated_at(second) >= delays[0] * peer.sim.time_scale - 0.05
    assert abs(int(second.timestamp) - updated_at(second)) <= 1

    await peer.answer(call_id)
    await peer.hang_up(call_id)  # waits until every delayed delivery was answered
    received = peer.receiver.for_call(call_id)
    by_moment = sorted(received, key=updated_at)
    assert [r.status for r in by_moment] == [
        "starting",
        "ringing",
        "ongoing",
        "ongoing",
        "completed",
    ]
    assert [r.status for r in received] != [r.status for r in by_moment]
    assert all(item.signature_error is None for item in received)
    assert peer.sim.fault_counts == Counter({"delivery-delayed": 5})


# ------------------------------------------------------------------------ the Faults


def test_faults_parse_and_describe() -> None:
    faults = Faults.parse(" api_error=0.1, api_slow=0.05,delivery_duplicate=0.5,", seed=7)
    assert faults == Faults(seed=7, api_error=0.1, api_slow=0.05, delivery_duplicate=0.5)
    assert faults.enabled
    assert faults.describe() == "api_error=0.1,api_slow=0.05,delivery_duplicate=0.5 (seed 7)"
    assert Faults.parse("") == Faults()
    assert Faults().describe() == "none (seed 0)"
    assert Faults.parse("delivery_delay_s=2.5").delivery_delay_s == 2.5


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("api_eror=0.1", "unknown fault 'api_eror' (known: api_error,"),
        ("api_error=1.5", "api_error must be between 0 and 1, got 1.5"),
        ("get_slow=-0.1", "get_slow must be between 0 and 1, got -0.1"),
        ("api_error=often", "fault api_error must be a number, got 'often'"),
        ("api_error=nan", "api_error must be a number"),
        ("api_error", "fault 'api_error' is not NAME=VALUE"),
        ("api_error=0.6,api_dropped=0.6", "must not exceed 1 (one fault per request), got 1.2"),
        ("drop_hold_s=-1", "drop_hold_s must be a number of seconds >= 0"),
    ],
)
def test_faults_refuse_bad_values(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Faults.parse(spec)


def test_the_dice_draw_as_configured() -> None:
    assert FaultDice(Faults()).api_fault("call-0/api", get=False) is None
    dice = FaultDice(Faults(seed=3, api_error=0.2, api_slow=0.2, api_dropped=0.2))
    drawn = Counter(dice.api_fault("create", get=False) for _ in range(5000))
    for kind, share in {
        None: 0.4,
        "slow": 0.2,
        "error-500": 0.1,
        "error-503": 0.1,
        "dropped-performed": 0.1,
        "dropped-not-performed": 0.1,
    }.items():
        assert abs(drawn[kind] / 5000 - share) < 0.03, (kind, drawn)
    assert dice.api_fault("create", get=True) is None  # GET faults are their own
    again = FaultDice(Faults(seed=3, api_error=0.2, api_slow=0.2, api_dropped=0.2))
    assert Counter(again.api_fault("create", get=False) for _ in range(5000)) == drawn


# ------------------------------------------------------------------------------ CLI


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ivr sim")
    sim_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_cli_help_documents_every_fault() -> None:
    parser = argparse.ArgumentParser(prog="ivr sim")
    sim_cli.add_arguments(parser)
    text = parser.format_help()
    assert "--faults NAME=VALUE[,...]" in text
    assert "--seed SEED" in text
    for name in (*PROBABILITIES, *SECONDS):
        assert name in text, name


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--faults", "api_eror=0.1"), "--faults: unknown fault 'api_eror'"),
        (("--faults", "api_error=1.1"), "--faults: api_error must be between 0 and 1, got 1.1"),
        (("--faults", "api_slow=0.1", "--faults", "api_slow=x"), "must be a number, got 'x'"),
        (("--faults", "api_error=0.1", "--seed", "seven"), "--seed must be an integer"),
    ],
)
async def test_cli_refuses_bad_faults_in_one_line(
    argv: tuple[str, ...],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_keys(monkeypatch)
    assert await sim_cli.run(_args("--webhook-url", "http://x/h", *argv)) == 2
    assert_one_line_error(capsys, message)


async def test_cli_runs_with_faults(
    receiver: Receiver, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    async with channel_client(port) as http:

        async def hang_up_when_ringing(item: Received) -> None:
            if item.status == "ringing" and item.command is None:
                await http.post(f"/{item.call_id}/hangup")

        receiver.react = hang_up_when_ringing
        set_real_keys(monkeypatch)
        args = _args(
            "--port",
            str(port),
            "--webhook-url",
            f"{receiver.base_url}/webhooks/bird",
            "--call",
            f"{CALLER}>{IVR}",
            "--exit-after-calls",
            "--call-timeout",
            "20",
            "--faults",
            "delivery_duplicate=1",
            "--seed",
            "3",
        )
        status = await sim_cli.run(args)

    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "faults: delivery_duplicate=1 (seed 3)" in captured.err
    assert "faults injected: delivery-duplicate=3" in captured.err  # starting, ringing, completed
    statuses = [item.status for item in receiver.received]
    assert statuses == ["starting", "starting", "ringing", "ringing", "completed", "completed"]
