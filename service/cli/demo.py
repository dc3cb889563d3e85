"""``ivr demo``: the whole product on one machine, with nothing to configure.

Starts a real embedded Redis (or uses ``REDIS_URL``), the Bird simulator and the
service on free loopback ports, places four scripted calls through the support
line and one outbound appointment reminder through ``POST /calls``, and prints
each call's transcript with the service's log lines for it. Exits 0 when every
call ended where its graph says it should.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import uuid
from collections import defaultdict
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import structlog

from service.core.graph import GraphSet
from service.graphs.loader import GraphError, load_directory
from service.runtime import logs
from service.runtime.clock import PinnedClock
from service.runtime.redis_server import redis_url_or_embedded
from service.runtime.serving import bind, serve, url_of
from service.runtime.settings import Settings
from service.runtime.store import connect
from service.server.app import create_app
from service.sim import AgentScript, BirdSimulator, CalleeScript, CallerScript, Transcript

GRAPH = "support-line"
BILLING = "+31201234567"
BUSINESS_BILLING = "+31201234599"
TECH = "sip:tech@pbx.example.com"
AGENTS = {
    BILLING: AgentScript("answer", answer_after_s=4.0, talk_s=30.0),
    BUSINESS_BILLING: AgentScript("answer", answer_after_s=3.0, talk_s=20.0),
    TECH: AgentScript("answer", answer_after_s=6.0, talk_s=45.0),
}
AMSTERDAM = ZoneInfo("Europe/Amsterdam")
OPEN = datetime(2026, 12, 1, 10, 0, tzinfo=AMSTERDAM)  # a Tuesday morning
HOLIDAY = datetime(2026, 12, 25, 11, 0, tzinfo=AMSTERDAM)  # Christmas Day


@dataclass(frozen=True)
class DemoCall:
    script: CallerScript
    expect_reached: str | None
    expect_last_heard: str | None = None
    at: datetime = OPEN

    def problems(self, transcript: Transcript) -> list[str]:
        found = []
        if not transcript.ended:
            found.append("the call did not end")
        if transcript.reached != self.expect_reached:
            found.append(f"reached {transcript.reached!r}, expected {self.expect_reached!r}")
        heard = transcript.texts("heard")
        if self.expect_last_heard and (not heard or self.expect_last_heard not in heard[-1]):
            found.append(f"last heard {heard[-1:]!r}, expected {self.expect_last_heard!r}")
        return found


def demo_calls(number: str) -> list[DemoCall]:
    return [
        DemoCall(CallerScript("straight to a person", "+31612345678", number, ("2",)), TECH),
        DemoCall(
            CallerScript(
                "a wrong key, then billing with an account number",
                "+31687654321",
                number,
                ("9", "1", "12345678#"),
            ),
            BILLING,
        ),
        DemoCall(
            CallerScript("silence until on_failure", "+31611122233", number, ()),
            None,
            expect_last_heard="Goodbye.",
        ),
        DemoCall(
            CallerScript("Christmas Day: voicemail", "+31655544433", number, (), voicemail_s=6),
            None,
            expect_last_heard="Thank you. Goodbye.",
            at=HOLIDAY,
        ),
    ]


REMINDED = "+31611111111"
CALLEES = {REMINDED: CalleeScript("confirms", AgentScript("answer", answer_after_s=3), ("1",))}
REMINDER_VARS = {"name": "Ann", "date": "1 December", "time": "10:00"}


async def _outbound_call(
    settings: Settings, sim: BirdSimulator, book: _LogBook, index: int
) -> list[str]:
    """An appointment reminder placed through the operator API, as a back office would."""
    request = {"to": REMINDED, "graph": "appointment-reminder", "vars": REMINDER_VARS}
    print(
        f"=== Call {index}: outbound appointment reminder (POST /calls {json.dumps(request)}) ==="
    )
    async with httpx.AsyncClient(base_url=settings.public_base_url) as http:
        answer = await http.post(
            "/calls", json=request,
            headers={"Authorization": f"Bearer {settings.ivr_admin_token}"},
        )  # fmt: skip
    if answer.status_code != 202:
        return [f"call {index}: POST /calls answered {answer.status_code}: {answer.text}"]
    call_id = answer.json()["call_id"]
    transcript = await sim.wait_ended(call_id, timeout_s=60)
    print(transcript.render())
    print("--- service log ---")
    for line in book.lines.pop(call_id, []):
        print(f"  {line}")
    print()
    heard = transcript.texts("heard")
    if not heard or "is confirmed" not in heard[-1]:
        return [f"call {index}: the reminder was not confirmed: heard {heard!r}"]
    return []


class _LogBook:
    """Keeps every log line, rendered for the console, under its call id."""

    def __init__(self) -> None:
        self.lines: dict[str, list[str]] = defaultdict(list)
        self._render = structlog.dev.ConsoleRenderer(colors=False, sort_keys=False)

    def __call__(self, event_dict: MutableMapping[str, Any]) -> None:
        line = dict(event_dict)
        key = str(line.pop("call_id", None) or "")
        line.pop("timestamp", None)
        self.lines[key].append(str(self._render(None, "", line)))


def loopback_settings(service_url: str, bird_url: str, **overrides: Any) -> Settings:
    """Service settings for a service and a simulator side by side on loopback,
    with fresh random keys."""
    values: dict[str, Any] = {
        "bird_access_key": secrets.token_urlsafe(24),
        "bird_workspace_id": str(uuid.uuid4()),
        "bird_channel_id": str(uuid.uuid4()),
        "bird_signing_key": secrets.token_urlsafe(24),
        "public_base_url": service_url,
        "bird_api_url": bird_url,
        "ivr_default_graph": GRAPH,
        "log_format": "console",
    }
    values.update(overrides)
    return Settings(**values)


def simulator_for(settings: Settings, **options: Any) -> BirdSimulator:
    """A Bird simulator that accepts this service's keys and delivers to its webhook."""
    return BirdSimulator(
        access_key=settings.bird_access_key,
        workspace_id=settings.bird_workspace_id,
        channel_id=settings.bird_channel_id,
        signing_key=settings.bird_signing_key,
        subscription_url=settings.webhook_url,
        **options,
    )


def _load_graphs() -> GraphSet:
    directory = Path(os.environ.get("IVR_GRAPHS_DIR") or "ivr_graphs")
    try:
        graphs = load_directory(directory, GRAPH)
    except GraphError as exc:
        raise SystemExit(
            f"ivr demo: cannot load the graphs in {directory} (run it from the project root "
            f"or set IVR_GRAPHS_DIR):\n{exc}"
        ) from None
    return graphs


async def run() -> int:
    graphs = _load_graphs()
    number = graphs.graphs[GRAPH].numbers[0]
    book = _LogBook()
    logs.configure(log_format="console", level="info", sink=book, quiet=True)
    service_sock, bird_sock = bind(), bind()
    settings = loopback_settings(
        url_of(service_sock), url_of(bird_sock), ivr_admin_token=secrets.token_urlsafe(24)
    )
    sim = simulator_for(settings, agents=AGENTS, callees=CALLEES, time_scale=0.02)
    clock = PinnedClock(OPEN)
    calls = demo_calls(number)
    failures: list[str] = []
    print(f"ivr demo: {len(calls)} scripted calls to {number} ({GRAPH})\n")
    with redis_url_or_embedded(os.environ.get("REDIS_URL")) as redis_url:
        redis = connect(redis_url)
        app = create_app(settings, redis=redis, graphs=graphs, graph_clock=clock)
        try:
            async with serve(sim.app, sock=bird_sock), serve(app, sock=service_sock):
                for index, call in enumerate(calls, 1):
                    clock.pin(call.at)
                    call_id = await sim.place_inbound_call(call.script)
                    transcript = await sim.wait_ended(call_id, timeout_s=60)
                    print(f"=== Call {index}: {call.script.name} ({call.at:%a %d %b %H:%M %Z}) ===")
                    print(transcript.render())
                    print("--- service log ---")
                    for line in book.lines.pop(call_id, []):
                        print(f"  {line}")
                    print()
                    failures += [f"call {index}: {p}" for p in call.problems(transcript)]
                clock.pin(OPEN)
                failures += await _outbound_call(settings, sim, book, len(calls) + 1)
        finally:
            await sim.aclose()
            await redis.aclose()
    rejected = [r for r in sim.requests if not r.accepted]
    failures += [f"Bird simulator rejected {r.method} {r.path}: {r.problems}" for r in rejected]
    if failures:
        print("ivr demo: FAILED", *failures, sep="\n  ", file=sys.stderr)
        return 1
    print(f"ivr demo: all {len(calls) + 1} calls ended where their graph says; "
          f"{len(sim.requests)} requests to Bird, all valid.")  # fmt: skip
    return 0
