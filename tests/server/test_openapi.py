"""The OpenAPI document (``GET /openapi.json``) against the service it describes.

1. It is a valid OpenAPI 3.1 document, and every JSON Schema in it is valid.
2. It documents every route and method of the app, and nothing the app does not have.
3. The app answers as documented: schemathesis sends each operation its documented
   examples, boundary cases and generated requests (valid and invalid), first with
   the credentials it generated (a wrong token or none: 401 on operator routes), then
   with the admin token, and checks every answer's status code, content type, headers
   and body against the document; it also checks that invalid requests are refused,
   that missing required headers are, that undocumented methods get 405, and that a
   route behind the token refuses requests without it. A signed webhook (which cannot
   be generated), the operator routes with no token configured (403) and every route
   while Redis is away are checked by hand, against the same document.

The app is the real one, with the shipped graphs and a real Redis, served over
loopback. The generated requests are deterministic and few (a bounded run).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest
import schemathesis
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from openapi_spec_validator import OpenAPIV31SpecValidator
from redis.asyncio import Redis
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from starlette.routing import BaseRoute, Mount, Route

from service.graphs.loader import load_directory
from service.runtime.redis_server import EmbeddedRedis
from service.runtime.serving import bind, serve, url_of
from service.server.app import create_app
from service.server.openapi import document
from tests.paths import SHIPPED_GRAPHS
from tests.support import RecordingBird, call_delivery, settings, signed_headers

TOKEN = "openapi-test-token-0123456789"
AUTHORIZED = {"Authorization": f"Bearer {TOKEN}"}
GRAPHS = load_directory(SHIPPED_GRAPHS, "support-line")
DOCUMENT = document()
METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
# Each answer's status code, content type, headers and body, as documented.
ANSWER_CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# And what requests generated from the document must get: invalid ones refused, a
# missing required header refused, an undocumented method 405, the token enforced.
REQUEST_CHECKS = [*ANSWER_CHECKS, negative_data_rejection, missing_required_header,
                  unsupported_method, allow_header_conformance]  # fmt: skip
SCHEMA = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=schemathesis.Config.from_dict(
        {
            # Few, deterministic, not shrunk: a bounded run, failing or not. No unknown
            # query parameters: the app ignores them, as HTTP APIs do.
            "generation": {
                "max-examples": 8,
                "deterministic": True,
                "database": "none",
                "no-shrink": True,
                "allow-extra-parameters": False,
            },
            "phases": {"stateful": {"enabled": False}},
            "suppress-health-check": ["too_slow", "filter_too_much"],
        }
    ),
)
# A value for each path parameter of the document, for the requests made by hand.
PATH_VALUES = {"agent_id": "openapi-ann", "name": "support", "graph_id": "support-line",
               "call_id": "openapi-call"}  # fmt: skip


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    """``(method, path, operation)`` of every documented operation."""
    paths = DOCUMENT["paths"].items()
    return [(method.upper(), path, item[method])
            for path, item in paths for method in METHODS if method in item]  # fmt: skip


def secured(operation: dict[str, Any]) -> bool:
    return bool(operation.get("security"))


def differences(
    method: str, path: str, answer: httpx.Response, checks: list[CheckFunction], **request: Any
) -> str | None:
    """How ``answer`` to ``method path`` differs from what the document says, if it does."""
    names = re.findall(r"\{(\w+)\}", path)
    request.setdefault("path_parameters", {name: PATH_VALUES[name] for name in names})
    case = SCHEMA[path][method].Case(**request)
    try:
        case.validate_response(answer, checks=checks)
    except FailureGroup as failures:
        return str(failures)
    return None


def conforms(method: str, path: str, answer: httpx.Response, **request: Any) -> None:
    found = differences(method, path, answer, ANSWER_CHECKS, **request)
    if found is not None:
        pytest.fail(f"{method} {path}: {found}", pytrace=False)


def example_body(operation: dict[str, Any]) -> Any:
    """The operation's first documented request example (None: it takes no body)."""
    if "requestBody" not in operation:
        return None
    examples = operation["requestBody"]["content"]["application/json"].get("examples", {})
    return next(iter(examples.values()))["value"] if examples else {}


def filled(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)


# -- 1. the document ----------------------------------------------------------------


def every_schema(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every JSON Schema of the document: media types', parameters', headers' and the
    components'."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "schema" and isinstance(value, dict):
                yield f"{where}/schema", value
            elif where == "#/components/schemas":
                yield f"{where}/{key}", value
            yield from every_schema(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from every_schema(value, f"{where}/{index}")


def test_the_document_is_valid_openapi_3_1_with_valid_schemas() -> None:
    assert DOCUMENT["openapi"].startswith("3.1.")
    OpenAPIV31SpecValidator(DOCUMENT).validate()  # raises, naming the problem
    schemas = dict(every_schema(DOCUMENT))
    assert len(schemas) > 50
    for where, schema in schemas.items():
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            pytest.fail(f"{where} is not a valid JSON Schema: {exc}")


def test_every_operator_route_needs_the_token_and_says_so() -> None:
    scheme = DOCUMENT["components"]["securitySchemes"]["adminToken"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for method, path, operation in operations():
        public = path in ("/webhooks/bird", "/healthz", "/readyz", "/metrics", "/openapi.json")
        public = public or path.startswith("/admin/ui")
        assert secured(operation) != public, f"{method} {path}"
        if secured(operation):
            assert {"401", "403"} <= set(operation["responses"]), f"{method} {path}"


# -- 2. the routes ----------------------------------------------------------------------


def template(path: str) -> str:
    """A path without its parameters' names and convertors: ``/agents/{}``."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def app_routes(routes: list[BaseRoute], prefix: str = "") -> set[tuple[str, str]]:
    """``(method, path)`` of every route (HEAD left out: Starlette answers it for every
    GET); a mounted app (static files) as ``GET prefix/{path}``."""
    found: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Route):
            methods = set(route.methods or ())
            if "GET" in methods:
                methods.discard("HEAD")
            found |= {(method, prefix + route.path) for method in methods}
        elif isinstance(route, Mount) and route.routes:
            found |= app_routes(route.routes, prefix + route.path)
        elif isinstance(route, Mount):
            found.add(("GET", prefix + route.path + "/{path}"))
        else:
            raise AssertionError(f"a kind of route this test does not know: {route!r}")
    return found


def test_every_route_of_the_app_is_documented_and_every_documented_one_exists() -> None:
    app = create_app(settings("http://127.0.0.1:1"), redis=Redis(), graphs=GRAPHS)  # no I/O
    served = {(method, template(path)): f"{method} {path}" for method, path in
              app_routes(app.routes)}  # fmt: skip
    documented = {(method, template(path)): f"{method} {path}" for method, path, _ in
                  operations()}  # fmt: skip
    undocumented = sorted(served[key] for key in served.keys() - documented.keys())
    missing = sorted(documented[key] for key in documented.keys() - served.keys())
    assert undocumented == [], f"routes the document does not describe: {undocumented}"
    assert missing == [], f"documented operations the app does not have: {missing}"


# -- 3. the answers -----------------------------------------------------------------------


@dataclass
class Service:
    url: str
    bird: RecordingBird

    @property
    def webhook(self) -> str:
        return self.url + "/webhooks/bird"


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    """The app with the admin token, the shipped graphs and a recording Bird, served
    on loopback from a thread of its own (schemathesis' requests block), on a Redis of
    its own: the agents it creates join the shipped queues, which no other test's
    callers may wait in."""
    bird = RecordingBird()
    started = threading.Event()
    running: list[tuple[str, asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def run(redis_url: str) -> None:
        stop = asyncio.Event()
        redis = Redis.from_url(redis_url)
        sock = bind()
        app = create_app(
            replace(settings(url_of(sock)), ivr_admin_token=TOKEN),
            redis=redis,
            graphs=GRAPHS,
            graphs_dir=SHIPPED_GRAPHS,
            bird_transport=httpx.MockTransport(bird),
        )
        try:
            async with serve(app, sock=sock) as server:
                running.append((server.url, asyncio.get_running_loop(), stop))
                started.set()
                await stop.wait()
        finally:
            started.set()
            await redis.aclose()

    with EmbeddedRedis() as redis_server:
        thread = threading.Thread(target=asyncio.run, args=(run(redis_server.url),))
        thread.start()
        try:
            started.wait(30)
            assert running, "the service did not start"
            yield Service(running[0][0], bird)
        finally:
            if running:
                _, loop, stop = running[0]
                loop.call_soon_threadsafe(stop.set)
            thread.join(30)


@SCHEMA.parametrize()
# With ids of their own: pytest (9.2) names a test by its function and parametrize ids
# only, so without them every operation's test would have the same node id.
@pytest.mark.parametrize("credentials", ["generated", "admin"])
def test_answers_to_generated_requests_are_as_documented(
    case: schemathesis.Case[Any], credentials: str, service: Service
) -> None:
    """As generated, a request to a route behind the token has a wrong token or none:
    401. With the admin token, a 2xx answer is also checked to need it."""
    if credentials == "generated":
        answer = case.call_and_validate(base_url=service.url, checks=REQUEST_CHECKS)
        if secured(case.operation.definition.raw) and answer.status_code != 405:
            assert answer.status_code == 401
    else:
        case.call_and_validate(base_url=service.url, headers=AUTHORIZED,
                               checks=[*REQUEST_CHECKS, ignored_auth])  # fmt: skip


@pytest.mark.parametrize(
    ("method", "path", "url", "body", "status"),
    [
        # JSON Schema patterns are ECMA 262: `$` is the end of the text, a final
        # newline included; digits are 0-9.
        ("PUT", "/agents/{agent_id}", "/agents/ann%0A", {"address": "+31612345678"}, 400),
        ("PUT", "/agents/{agent_id}", "/agents/openapi-digits", {"address": "+²²²²²²²²"}, 400),
        ("POST", "/calls", "/calls", {"to": "+31612345678\n", "graph": "support-line"}, 422),
        ("POST", "/calls", "/calls",
         {"to": "+31612345678", "graph": "support-line", "from": "+31970102030\n"}, 422),
    ],
)  # fmt: skip
def test_values_the_document_rules_out_are_refused(
    service: Service, method: str, path: str, url: str, body: Any, status: int
) -> None:
    """Values generation is unlikely to find, beside the document's patterns."""
    answer = httpx.request(method, service.url + url, json=body, headers=AUTHORIZED)
    assert answer.status_code == status, answer.text
    conforms(method, path, answer)


def test_openapi_json_is_served_without_a_token(service: Service) -> None:
    answer = httpx.get(service.url + "/openapi.json")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == DOCUMENT
    conforms("GET", "/openapi.json", answer)


def test_signed_deliveries_and_the_call_they_make_are_answered_as_documented(
    service: Service,
) -> None:
    """The webhook's happy path (a signature cannot be generated from the document),
    a repeat, an event the service does not act on, and the call as the operator
    routes show it."""
    call_id = f"openapi-{uuid.uuid4()}"
    new_call = call_delivery(call_id, "starting", updated=time.time())
    other = b'{"service": "channels", "event": "message.created", "payload": {}}'
    answers = []
    with httpx.Client(base_url=service.url) as http:
        for body in (new_call, new_call, other):
            answer = http.post(service.webhook, content=body,
                               headers=signed_headers(service.webhook, body))  # fmt: skip
            conforms("POST", "/webhooks/bird", answer)
            answers.append(answer.json())
        listed = http.get("/admin/calls", headers=AUTHORIZED)
        one = http.get(f"/admin/calls/{call_id}", headers=AUTHORIZED)
    assert [a["status"] for a in answers] == ["applied", "duplicate", "ignored"]
    assert "answer" in service.bird.commands
    conforms("GET", "/admin/calls", listed)
    conforms("GET", "/admin/calls/{call_id}", one, path_parameters={"call_id": call_id})
    assert call_id in [call["call_id"] for call in listed.json()["calls"]]
    assert one.json()["call"]["call_id"] == call_id
    assert one.json()["timeline"], "a call that was answered has a timeline"


async def test_with_no_token_set_every_operator_route_answers_403(redis: Redis) -> None:
    app = create_app(settings("http://testserver"), redis=redis, graphs=GRAPHS)
    assert settings("http://testserver").ivr_admin_token is None
    transport = httpx.ASGITransport(app=app)
    checked = 0
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        for method, path, operation in operations():
            if not secured(operation):
                continue
            body = example_body(operation)
            answer = await http.request(method, filled(path), json=body, headers=AUTHORIZED)
            assert answer.status_code == 403, f"{method} {path}: {answer.text}"
            assert answer.json()["error"] == "disabled"
            conforms(method, path, answer)
            checked += 1
    assert checked >= 10


async def test_while_redis_is_away_every_answer_is_documented() -> None:
    """503 (try again) where Redis is needed, and never an undocumented answer."""
    nothing_there = bind()
    away = Redis.from_url(f"{url_of(nothing_there).replace('http', 'redis')}/0")
    nothing_there.close()  # connections to it are refused from now on
    sock = bind()
    app = create_app(replace(settings(url_of(sock)), ivr_admin_token=TOKEN), redis=away,
                     graphs=GRAPHS, graphs_dir=SHIPPED_GRAPHS,
                     bird_transport=httpx.MockTransport(RecordingBird()))  # fmt: skip
    failures: list[str] = []
    statuses: dict[str, int] = {}
    async with serve(app, sock=sock) as running, httpx.AsyncClient(base_url=running.url) as http:
        for method, path, operation in operations():
            if path == "/webhooks/bird":
                body = call_delivery(f"openapi-{uuid.uuid4()}", "starting", updated=time.time())
                url = running.url + path
                answer = await http.post(url, content=body, headers=signed_headers(url, body))
            else:
                answer = await http.request(method, filled(path), headers=AUTHORIZED,
                                            json=example_body(operation))  # fmt: skip
            statuses[f"{method} {path}"] = answer.status_code
            # 503 is no server error here: it is documented, and what the client needs.
            found = differences(method, path, answer, ANSWER_CHECKS[1:])
            if found is not None:
                failures.append(f"{method} {path}: {found}")
    await away.aclose()
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)
    assert statuses["POST /webhooks/bird"] == 503  # Bird delivers it again later
    assert statuses["GET /readyz"] == 503
    assert statuses["GET /healthz"] == 200  # an external Redis: this process is fine
    assert statuses["GET /agents"] == statuses["GET /queues"] == statuses["POST /calls"] == 503
