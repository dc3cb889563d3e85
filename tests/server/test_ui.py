"""The supervisor page's routes over real HTTP on loopback: the page and its files (no
token, nothing from elsewhere), the diagrams with their traffic, the recent errors."""

from __future__ import annotations

import fnmatch
import io
import json
import re
import time
import tomllib
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest
import structlog
from redis.asyncio import Redis

from service.graphs.loader import load_directory
from service.runtime import errors, keys, line
from service.runtime.serving import bind, serve, url_of
from service.server import ui
from service.server.app import create_app
from tests.paths import ROOT
from tests.support import settings

TOKEN = "ui-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SVG = "{http://www.w3.org/2000/svg}"
# An absolute or protocol-relative URL: the page must fetch nothing from elsewhere.
URL = re.compile(r"(?:https?:)?//[\w-]+(?:\.[\w-]+)+")


def graph_document(graph_id: str) -> dict[str, object]:
    return {
        "id": graph_id,
        "numbers": ["+31970000001"],
        "start": "welcome",
        "nodes": {
            "welcome": {"type": "say", "say": 'Hello <caller> & "friends"', "next": "menu"},
            "menu": {
                "type": "menu",
                "say": "Press 1.",
                "options": {"1": "bye"},
                "on_failure": "bye",
            },
            "bye": {"type": "hangup", "say": "Goodbye."},
        },
    }


@pytest.fixture
def graph_id() -> str:
    return f"ui-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def now() -> float:
    """The service's clock: stopped at the test's start, so that "today" stays one day
    (and the graph set it announces is, like any service's, the latest loaded)."""
    return time.time()


@pytest.fixture
async def service(redis: Redis, graph_id: str, tmp_path: Path, now: float) -> AsyncIterator[str]:
    """The service with one graph of its own (so that its traffic is this test's only)."""
    (tmp_path / f"{graph_id}.json").write_text(json.dumps(graph_document(graph_id)))
    sock = bind()
    app = create_app(
        replace(settings(url_of(sock)), ivr_admin_token=TOKEN),
        redis=redis,
        graphs=load_directory(tmp_path, graph_id),
        clock=lambda: now,
    )
    async with serve(app, sock=sock) as running:
        yield running.url


def svg_of(response: httpx.Response) -> ElementTree.Element:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/svg+xml"
    return ElementTree.fromstring(response.text)  # noqa: S314 - our own output, parsed to check it


def edge_counts(root: ElementTree.Element) -> dict[tuple[str, str], str]:
    return {
        (g.attrib["data-from"], g.attrib["data-exit"]): g.attrib["data-count"]
        for g in root.iter(f"{SVG}g")
        if "data-count" in g.attrib
    }


def caption_of(root: ElementTree.Element) -> str | None:
    captions = [t.text for t in root.iter(f"{SVG}text") if t.attrib.get("class") == "caption"]
    assert len(captions) == 1
    return captions[0]


# --- the page -----------------------------------------------------------------------------


async def test_the_page_and_its_files_are_served_without_the_token_and_hold_no_data(
    service: str, graph_id: str
) -> None:
    async with httpx.AsyncClient(base_url=service) as http:
        page = await http.get("/admin/ui")
        script = await http.get("/admin/ui/app.js")
        style = await http.get("/admin/ui/app.css")
        slash = await http.get("/admin/ui/", follow_redirects=True)
    assert page.status_code == script.status_code == style.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<label for="token">Admin token</label>' in page.text
    assert 'src="ui/app.js"' in page.text
    assert 'href="ui/app.css"' in page.text
    assert graph_id not in page.text  # the data comes from the API, with the token
    assert slash.url.path == "/admin/ui"


def test_the_page_fetches_nothing_from_elsewhere() -> None:
    for name in ui.ASSETS:
        text = ui.asset(name).decode()
        assert URL.findall(text) == [], name
        assert "@import" not in text
        assert "url(" not in text  # no web fonts, no remote images


def test_the_page_s_files_are_package_data() -> None:
    """They install with the package: pyproject's package-data names each of them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["service.server"]
    shipped = sorted(p.name for p in (ROOT / "service" / "server" / "ui").iterdir())
    assert shipped == sorted(ui.ASSETS)
    for name in shipped:
        assert any(fnmatch.fnmatch(f"ui/{name}", pattern) for pattern in patterns), name


# --- diagrams -----------------------------------------------------------------------------


async def test_a_diagram_shows_today_s_traffic_by_default(
    service: str, graph_id: str, redis: Redis, now: float
) -> None:
    today, yesterday = line.today(now), line.today(now - 24 * 3600)
    async with httpx.AsyncClient(base_url=service, headers=AUTH) as http:
        (graph,) = (await http.get("/admin/graphs")).json()["graphs"]
        version = graph["version"]
        await redis.hset(
            keys.graph_traffic_day(graph_id, version, today),
            mapping={"welcome|in": 3, "welcome|out|next": 3, "menu|in": 3,
                     "menu|out|options/1": 2, "menu|end|ended_by_caller": 1},
        )  # fmt: skip
        await redis.hset(  # yesterday: not today's
            keys.graph_traffic_day(graph_id, version, yesterday), "welcome|in", 40
        )
        drawn = svg_of(await http.get(f"/admin/graphs/{graph_id}/diagram.svg"))
        named = svg_of(await http.get(f"/admin/graphs/{graph_id}/diagram.svg?traffic=today"))
    assert ElementTree.tostring(drawn) == ElementTree.tostring(named)
    assert drawn.attrib["data-graph"] == graph_id
    assert drawn.attrib["data-version"] == version
    assert caption_of(drawn) == f"{graph_id} · version {version} · today ({today}, UTC): 3 calls"
    assert edge_counts(drawn) == {
        ("welcome", "next"): "3",
        ("menu", "options/1"): "2",
        ("menu", "on_failure"): "0",
    }
    lines = {
        g.attrib["data-node"]: [t.text for t in g.iter(f"{SVG}text")]
        for g in drawn.iter(f"{SVG}g")
        if "data-node" in g.attrib
    }
    assert lines["menu"] == ["menu", "menu", "Press 1.", "3 in, 1 hung up"]
    assert lines["welcome"] == ["welcome", "say", 'Hello <caller> & "friends"', "3 in"]


async def test_a_diagram_with_all_its_traffic_or_none(
    service: str, graph_id: str, redis: Redis
) -> None:
    async with httpx.AsyncClient(base_url=service, headers=AUTH) as http:
        (graph,) = (await http.get("/admin/graphs")).json()["graphs"]
        await redis.hset(
            keys.graph_traffic(graph_id, graph["version"]),
            mapping={"welcome|in": 12, "welcome|out|next": 12},
        )
        everything = svg_of(await http.get(f"/admin/graphs/{graph_id}/diagram.svg?traffic=all"))
        plain = svg_of(await http.get(f"/admin/graphs/{graph_id}/diagram.svg?traffic=none"))
    assert edge_counts(everything)[("welcome", "next")] == "12"
    assert caption_of(everything) == f"{graph_id} · version {graph['version']} · all time: 12 calls"
    assert edge_counts(plain) == {}
    assert caption_of(plain) == f"{graph_id} · version {graph['version']}"


async def test_a_diagram_needs_the_token_a_known_graph_and_a_known_traffic(
    service: str, graph_id: str
) -> None:
    async with httpx.AsyncClient(base_url=service) as http:
        anonymous = await http.get(f"/admin/graphs/{graph_id}/diagram.svg")
        wrong = await http.get(
            f"/admin/graphs/{graph_id}/diagram.svg", headers={"Authorization": "Bearer nope"}
        )
        unknown = await http.get("/admin/graphs/no-such-graph/diagram.svg", headers=AUTH)
        weekly = await http.get(f"/admin/graphs/{graph_id}/diagram.svg?traffic=week", headers=AUTH)
    assert (anonymous.status_code, wrong.status_code) == (401, 401)
    assert unknown.status_code == 404
    assert unknown.json() == {
        "error": "not_found",
        "reason": f"no graph 'no-such-graph' is served (served: {graph_id})",
    }
    assert weekly.status_code == 400
    assert weekly.json() == {
        "error": "bad_request",
        "reason": "traffic is one of today, all, none, not 'week'",
    }


# --- recent errors ------------------------------------------------------------------------


async def test_recent_errors_show_the_service_s_warnings_newest_first(
    service: str, logged: io.StringIO
) -> None:
    async with httpx.AsyncClient(base_url=service) as http:
        anonymous = await http.get("/admin/errors")
        for n in range(2):  # unsigned deliveries: refused, and logged as warnings
            refused = await http.post("/webhooks/bird", content=f'{{"n": {n}}}')
            assert refused.status_code == 401
        structlog.get_logger("test").error(
            "lookup_failed", call_id="c-9", graph="support-line", node="lookup",
            to="+31612345678",
        )  # fmt: skip
        await errors.RECENT.drained()  # the app's flusher has pushed them to Redis
        found = (await http.get("/admin/errors", headers=AUTH)).json()["errors"]
    assert anonymous.status_code == 401
    newest = found[0]
    assert newest == {
        "at": newest["at"],
        "level": "error",
        "event": "lookup_failed",
        "call_id": "c-9",
        "graph": "support-line",
        "node": "lookup",
        "text": "to=+31******678",
    }
    assert [(e["level"], e["event"]) for e in found[1:3]] == [("warning", "webhook_rejected")] * 2
    assert "signature" in found[1]["text"]
    assert [e["at"] for e in found] == sorted((e["at"] for e in found), reverse=True)
    assert len(found) <= errors.SHOWN
