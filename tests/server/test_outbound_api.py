"""POST /calls refusals: each says what is wrong with the value given ("required" only
for a field that is missing), and every bad request, a body that is not JSON
included, is a 422 as the README says."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from service.graphs.loader import load_directory
from service.runtime.registry import Registry
from service.runtime.serving import bind, serve, url_of
from service.server.app import create_app
from service.server.outbound import parse_request
from tests.paths import ROOT, SHIPPED_GRAPHS
from tests.support import RecordingBird, settings

GRAPHS = load_directory(SHIPPED_GRAPHS, "support-line")
REGISTRY = Registry(Redis(), GRAPHS)  # never connects
NOW = 1_800_000_000.0  # 2027-01-15
REMINDER = {"name": "Ann", "date": "1 December", "time": "10:00"}
GOOD = {"to": "+31612345678", "graph": "appointment-reminder", "vars": REMINDER}
E164 = "an E.164 number (+ and 7-15 digits, e.g. +31612345678)"
LOADED = "appointment-reminder, support-line"


def problems(body: Any) -> list[str]:
    parsed = parse_request(body, REGISTRY, NOW)
    assert isinstance(parsed, list), parsed
    return parsed


def test_a_good_request_parses() -> None:
    assert not isinstance(parse_request(GOOD, REGISTRY, NOW), list)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"to": "abc"}, f"/to: 'abc' is not {E164} or a sip: URI"),
        ({"to": 31612345678}, f"/to: 31612345678 is not {E164} or a sip: URI"),
        ({"to": None}, f"/to: null is not {E164} or a sip: URI"),
        ({"graph": "nope"}, f"/graph: 'nope' is not a loaded graph (loaded: {LOADED})"),
        ({"graph": ["x"]}, f'/graph: ["x"] is not a loaded graph (loaded: {LOADED})'),
        ({"vars": "Ann"}, "/vars: 'Ann' is not an object of names to values"),
        ({"vars": {**REMINDER, "x": []}}, "/vars/x: [] is not a string or a number"),
        ({"vars": {**REMINDER, "x": True}}, "/vars/x: true is not a string or a number"),
        ({"vars": {**REMINDER, "1x": "a"}},
         "/vars/1x: '1x' is not a variable name (letters, digits and _, not starting with a "
         "digit)"),
        ({"from": "me"}, f"/from: 'me' is not {E164}"),
        ({"from": "sip:me@pbx.example.com"}, f"/from: 'sip:me@pbx.example.com' is not {E164}"),
        ({"scheduled_for": "tomorrow"},
         "/scheduled_for: 'tomorrow' is not an ISO-8601 date-time with a time zone (e.g. "
         "2026-12-01T10:00:00+01:00)"),
        ({"scheduled_for": "2027-01-20T10:00:00"},
         "/scheduled_for: '2027-01-20T10:00:00' is not an ISO-8601 date-time with a time zone"
         " (e.g. 2026-12-01T10:00:00+01:00)"),
        ({"scheduled_for": "2020-01-01T10:00:00+00:00"},
         "/scheduled_for: '2020-01-01T10:00:00+00:00' is in the past; it must be in the "
         "future"),
        ({"when": 1},
         "/when: unknown field (allowed: from, graph, scheduled_for, to, vars)"),
    ],
)  # fmt: skip
def test_a_value_given_is_refused_with_what_is_wrong_with_it(
    change: dict[str, Any], problem: str
) -> None:
    found = problems({**GOOD, **change})
    assert found == [problem]
    assert "required" not in problem  # it was given


def test_required_is_said_of_missing_fields_only() -> None:
    assert problems({}) == [
        f"/to: required: {E164} or a sip: URI",
        f"/graph: required: the id of a loaded graph ({LOADED})",
    ]
    assert problems({**GOOD, "vars": {"name": "Ann"}}) == [
        "/vars/date: required by graph appointment-reminder",
        "/vars/time: required by graph appointment-reminder",
    ]


def test_a_long_value_is_cut_short_in_its_problem() -> None:
    (problem,) = problems({**GOOD, "to": "x" * 5000})
    assert problem.startswith("/to: 'xxx")
    assert len(problem) < 200


def test_a_body_that_is_not_an_object_says_what_it_is() -> None:
    assert problems([1]) == ["/: the body must be a JSON object, got [1]"]
    assert problems("hello") == ["/: the body must be a JSON object, got 'hello'"]


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"{oops", "the body is not JSON"), (b"", "the body is not JSON")],
)
async def test_a_body_that_is_not_json_is_a_bad_request_422(
    redis: Redis, content: bytes, reason: str
) -> None:
    sock = bind()
    guarded = replace(settings(url_of(sock)), ivr_admin_token="right-token-123456")
    app = create_app(guarded, redis=redis, graphs=GRAPHS,
                     bird_transport=httpx.MockTransport(RecordingBird()))  # fmt: skip
    headers = {"Authorization": "Bearer right-token-123456"}
    async with serve(app, sock=sock) as running, httpx.AsyncClient() as http:
        answer = await http.post(running.url + "/calls", content=content, headers=headers)
        given = await http.post(running.url + "/calls", json={**GOOD, "to": "abc"},
                                headers=headers)  # fmt: skip
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_request"
    assert answer.json()["reason"].startswith(reason)
    assert answer.json()["problems"] == [f"/: {answer.json()['reason']}"]
    assert given.status_code == 422
    assert given.json() == {"error": "invalid_request",
                            "problems": [f"/to: 'abc' is not {E164} or a sip: URI"]}  # fmt: skip


def test_the_readme_says_what_post_calls_answers() -> None:
    readme = " ".join((ROOT / "README.md").read_text().split())
    section = readme[readme.index("`POST /calls` with") : readme.index("## How it behaves")]
    assert "A bad request, a body that is not JSON included, gets `422`" in section
    assert "`413`" in section
    assert "`400`" not in section
