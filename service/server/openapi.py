"""``GET /openapi.json``: the service's HTTP API as an OpenAPI 3.1 document.

The document is written here, in one place, and served as :func:`document` builds it
(without a token: it holds no data). It describes every route of
``service.server.app``: each request (bodies, parameters, the webhook's signature
headers) and every answer, with its status codes and JSON Schemas, as the handlers
answer them. ``tests/server/test_openapi.py`` checks both ways: every route of the
app is documented and every documented one exists, and the answers to requests
generated from the document are the documented ones.

Patterns and enumerations come from the code that enforces them (agent ids and
statuses, POST /calls' fields, queue strategies and counters), so that the two do not
drift apart. A new route needs its entry in :func:`paths`; the test names any that
is missing.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Sequence
from importlib import metadata
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from service.bird import signature
from service.bird.deliveries import HANDLED_EVENTS
from service.core.queues import AGENT_STATES, AGENT_STATUSES, STRATEGIES
from service.runtime.board import COUNTERS
from service.server import agents, outbound, webhooks
from service.server.bodies import BODY_TIMEOUT_S

Schema = dict[str, Any]

OPENAPI_VERSION = "3.1.0"
# service.bird.deliveries.is_call_id: what the service takes for a call id.
CALL_ID = "^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
AGENT_ID = agents.AGENT_ID.pattern
# service.runtime.agents.parse_agent: an agent's address.
E164 = r"^\+[0-9]{7,15}$"
SIP = r"^sip:[^ ]+$"
ISO = "ISO 8601, UTC, to the millisecond (2026-12-01T10:15:02.113Z)"


# -- builders that keep the document below short -----------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(
    properties: dict[str, Schema],
    required: Sequence[str] | None = None,
    *,
    extra: bool = False,
    description: str | None = None,
) -> Schema:
    """A JSON object of ``properties``, all of them required unless ``required`` says
    which, and no other property unless ``extra``."""
    schema: Schema = {"type": "object", "properties": properties,
                      "required": list(properties if required is None else required),
                      "additionalProperties": extra}  # fmt: skip
    return {**schema, "description": description} if description else schema


def text(description: str | None = None, **keywords: Any) -> Schema:
    schema: Schema = {"type": "string", **keywords}
    return {**schema, "description": description} if description else schema


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def moment(description: str = ISO) -> Schema:
    return text(description, format="date-time")


def count(description: str | None = None) -> Schema:
    schema: Schema = {"type": "integer", "minimum": 0}
    return {**schema, "description": description} if description else schema


def seconds(description: str | None = None) -> Schema:
    schema: Schema = {"type": "number", "minimum": 0}
    return {**schema, "description": description} if description else schema


def array(items: Schema) -> Schema:
    return {"type": "array", "items": items}


def mapping(values: Schema, description: str | None = None) -> Schema:
    schema: Schema = {"type": "object", "additionalProperties": values}
    return {**schema, "description": description} if description else schema


def error(*codes: str, description: str | None = None, **extra: Schema) -> Schema:
    """An error: ``{"error": CODE, "reason": "..."}``, with ``extra`` fields."""
    code = {"const": codes[0]} if len(codes) == 1 else {"enum": list(codes)}
    fields = {"error": {"type": "string", **code}, "reason": text("what is wrong"), **extra}
    return obj(fields, description=description)


def answer(description: str, schema: Schema | None = None) -> dict[str, Any]:
    """A response: JSON of ``schema``, or no body without one."""
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def answer_as(description: str, *media_types: str) -> dict[str, Any]:
    """A response that is not JSON: text, in one of ``media_types``."""
    content = {media: {"schema": {"type": "string"}} for media in media_types}
    return {"description": description, "content": content}


def shared(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def json_body(schema: str, **examples: Any) -> dict[str, Any]:
    """A required JSON request body of the component ``schema``, with examples."""
    named = {name: {"value": value} for name, value in examples.items()}
    media = {"schema": ref(schema), "examples": named}
    return {"required": True, "content": {"application/json": media}}


def path_parameter(name: str, schema: Schema, example: str | None = None) -> dict[str, Any]:
    parameter: dict[str, Any] = {"name": name, "in": "path", "required": True, "schema": schema}
    if example is not None:
        parameter["examples"] = {example: {"value": example}}
    return parameter


def query_parameter(name: str, schema: Schema, description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}  # fmt: skip


def operation(
    operation_id: str,
    tag: str,
    summary: str,
    responses: dict[str, Any],
    *,
    token: bool = False,
    description: str | None = None,
    parameters: Sequence[dict[str, Any]] = (),
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An operation; with ``token``, behind the admin token (401, 403)."""
    found: dict[str, Any] = {"operationId": operation_id, "tags": [tag], "summary": summary}
    if description:
        found["description"] = description
    if parameters:
        found["parameters"] = list(parameters)
    if body is not None:
        found["requestBody"] = body
    if token:
        found["security"] = [{"adminToken": []}]
        responses = {**responses, "401": shared("Unauthorized"), "403": shared("Off")}
    found["responses"] = dict(sorted(responses.items()))
    return found


# Every endpoint that reads a body (service.server.bodies): 408 and 413 before anything.
BODY_REFUSED = {"408": shared("TooSlow"), "413": shared("TooLarge")}
REDIS_AWAY = {"503": shared("Unavailable")}


# -- the schemas ---------------------------------------------------------------------------

ERRORS: dict[str, Schema] = {
    "Error": obj({"error": text("a code"), "reason": text("what is wrong")}, extra=True,
                 description="Every error: a code and why (some add fields)."),
    "Unavailable": error("unavailable", description="Redis does not answer; try again."),
    "Overloaded": error("overloaded", description="This process has more deliveries than "
                        "IVR_MAX_IN_FLIGHT (the webhook), or no Redis connection came free "
                        "within REDIS_POOL_TIMEOUT_S; nothing changed, try again."),
    "TooLarge": error("too_large", description="The body is over the endpoint's limit."),
    "TooSlow": error("too_slow", description=f"The body did not all come in {BODY_TIMEOUT_S:g} s."),
    "InvalidRequest": obj(
        {"error": {"const": "invalid_request"},
         "reason": text("why the body is not JSON"),
         "problems": {**array(text("/field: what is wrong with the value given")),
                      "minItems": 1}},
        required=["error", "problems"],
        description="POST /calls: every problem of the request.",
    ),
    "AgentError": error(
        "invalid_agent", "invalid_status", path=text("the JSON pointer of what is wrong"),
        description="A body that is not an agent (or a status): one problem, and where.",
    ),
}  # fmt: skip

AGENTS: dict[str, Schema] = {
    "Membership": obj(
        {"level": {"type": "integer", "minimum": 1, "maximum": 9,
                   "description": "level 1 is offered first (default 1)"},
         "position": {"type": "integer", "minimum": 1, "maximum": 10000,
                      "description": "the order of the top-down strategy (default 1)"}},
        required=[],
    ),
    "AgentInput": obj(
        {"address": {"description": "what the bridge dials",
                     "anyOf": [text("E.164", pattern=E164), text("a sip: URI", pattern=SIP)]},
         "name": text("shown in GET /agents (default: the id)", pattern=r"\S"),
         "queues": mapping(nullable(ref("Membership")),
                           "by queue of the current queues.json; null: the defaults"),
         "status": {"enum": list(AGENT_STATUSES),
                    "description": "a new agent's (default offline); kept unless given"},
         "id": text("if given, the id of the URL", pattern=AGENT_ID)},
        required=["address"],
        description="An agent to create or replace (docs/agents.md).",
    ),
    "AgentStatusInput": obj({"status": {"enum": list(AGENT_STATUSES)}}),
    "Agent": obj(
        {"id": text(pattern=AGENT_ID),
         "name": text(),
         "address": text(),
         "queues": mapping(obj({"level": {"type": "integer"},
                                "position": {"type": "integer"}})),
         "status": {"enum": list(AGENT_STATUSES), "description": "their own choice"},
         "state": {"enum": list(AGENT_STATES), "description": "the line's view"},
         "until": nullable({"type": "number",
                            "description": "when wrap_up or cooldown ends (Unix seconds)"}),
         "call_id": nullable(text("the caller offered, talked to or wrapped up after")),
         "queue": nullable(text("that caller's queue")),
         "missed_in_a_row": count("offers missed since the last one answered"),
         "calls_today": count("since midnight UTC"),
         "talk_s_today": seconds()},
        description="An agent as GET /agents/{agent_id} shows them.",
    ),
    "AgentList": obj({"agents": array(ref("Agent"))}),
}  # fmt: skip

BOARD: dict[str, Schema] = {
    "strategy": {"enum": list(STRATEGIES)},
    "waiting": array(obj({
        "call_id": text("a call, or cb:ID: a callback holding its place"),
        "position": {"type": "integer", "minimum": 1},
        "waited_s": seconds(),
        "priority": {"type": "integer"},
        "ringing": {"type": "boolean"},
        "agent_id": nullable(text("the agent offered to them")),
        "callback": {"type": "boolean"},
    })),
    "callbacks_pending": count(),
    "longest_wait_s": seconds(),
    "agents": obj({
        "total": count(),
        "by_state": obj({state: count() for state in AGENT_STATES}),
        "by_status": obj({status: count() for status in AGENT_STATUSES}),
    }),
    "today": obj({
        "day": text("the UTC day", format="date"),
        **{counter: count() for counter in COUNTERS},
        "average_wait_s": nullable(seconds()),
        "average_handle_s": nullable(seconds()),
    }),
}  # fmt: skip
BOARD_AT = moment(f"when the board was read: {ISO}")

QUEUES: dict[str, Schema] = {
    "QueueBoard": obj(BOARD, description="One queue: who waits, its agents, today."),
    "QueueList": obj({"queues": mapping(ref("QueueBoard")), "at": BOARD_AT}),
    "Queue": obj({"name": text(), **BOARD, "at": BOARD_AT}),
}

SUMMARY: dict[str, Schema] = {
    "call_id": text(pattern=CALL_ID),
    "graph": text(),
    "version": text(),
    "node": nullable(text()),
    "phase": text(),
    "direction": {"enum": ["inbound", "outbound"]},
    "caller": text("masked unless LOG_MASK_NUMBERS=false"),
    "called": text("masked unless LOG_MASK_NUMBERS=false"),
    "started_at": moment(),
    "updated_at": moment(),
    "age_s": seconds(),
}

CALLS: dict[str, Schema] = {
    "CallRequest": obj(
        {"to": text("an E.164 number or a sip:/sips: URI",
                    pattern=outbound.DESTINATION.pattern),
         "graph": text("the id of a loaded graph"),
         "vars": {"type": "object", "description": "the graph's variables (its params)",
                  "propertyNames": {"pattern": f"^{outbound.VARIABLE.pattern}$"},
                  "additionalProperties": {"type": ["string", "number"]}},
         "from": nullable(text("the number shown to the callee",
                               pattern=outbound.E164.pattern)),
         "scheduled_for": nullable(text("when to call, with a time zone; in the future",
                                        format="date-time"))},
        required=["to", "graph"],
        description="An outbound call: Bird dials `to`; when they answer, `graph` runs.",
    ),
    "CallPlaced": obj({"call_id": text(), "graph": text(), "version": text(), "to": text(),
                       "scheduled_for": nullable(moment("as given, normalized"))}),
    "CallSummary": obj(SUMMARY, description="A call as the operator routes list it."),
    "CallList": obj({"calls": array(ref("CallSummary")), "count": count()}),
    "CallView": obj({
        "call": obj({**SUMMARY, "ended": {"type": "boolean"}, "outcome": nullable(text()),
                     "recordings": {"type": "array", "items": text(),
                                    "description": "Voicemails' and recorded bridges' ids"},
                     "amd": nullable(text("Who answered, by machine detection: human, "
                                          "machine or unknown"))}),
        "pending": nullable(obj(
            {"action": text(), "status": text(), "attempts": count(), "due_at": moment()},
            description="the command the call waits on",
        )),
        "timeline": array(obj(
            {"at": moment(),
             "kind": {"enum": ["begin", "delivery", "step", "command", "error"]},
             "text": text()},
            extra=True,
        )),
    }),
    "ErrorLog": obj({"errors": array(obj({
        "at": moment(),
        "level": {"enum": ["warning", "error", "critical"]},
        "event": text(),
        "call_id": nullable(text()),
        "graph": nullable(text()),
        "node": nullable(text()),
        "text": text(),
    }))}, description="The latest warnings and errors logged, newest first."),
}  # fmt: skip

GRAPHS: dict[str, Schema] = {
    "GraphSet": obj({
        "graphs": array(obj({"id": text(), "version": text(), "source": text(),
                             "numbers": array(text()), "warnings": array(text())})),
        "default": nullable(text("the graph of numbers no graph lists")),
        "queues": array(text()),
        "loaded_at": {"type": "number", "description": "Unix seconds"},
        "load_errors": array(text()),
    }),
    "ReloadResult": obj({
        "reloaded": {"type": "boolean"},
        "changed": mapping(obj({"from": nullable(text()), "to": nullable(text())}),
                           "by graph: the version before and after (null: none)"),
        "problems": array(text()),
        "versions": mapping(text()),
    }),
}  # fmt: skip

BIRD: dict[str, Schema] = {
    "BirdDelivery": obj(
        {"service": {"const": "channels"},
         "event": {"enum": list(HANDLED_EVENTS)},
         "payload": obj(
             {"id": text("the call (or leg)", pattern=CALL_ID),
              "parentId": nullable(text("a bridge's agent leg: the caller's call",
                                        pattern=CALL_ID)),
              "status": text("starting, ringing, ongoing, completed, no-answer, busy, ...",
                             minLength=1),
              "direction": text("incoming or outgoing"),
              "from": text(),
              "to": text(),
              "createdAt": text(format="date-time"),
              "updatedAt": text("orders a call's deliveries", format="date-time"),
              "hangupSource": nullable(text("caller, callee, api, ...")),
              "command": obj(
                  {"id": text(),
                   "command": text("say, gather, bridge, ...", minLength=1),
                   "status": text("completed or failed", minLength=1),
                   "result": {"type": "object",
                              "description": "gather: keys; record: recordingId, duration"}},
                  required=["command", "status"], extra=True,
              )},
             required=["id", "status", "updatedAt"], extra=True,
         )},
        extra=True,
        description="A voice delivery as far as the service reads it (docs/bird-contract.md, "
        "A1-A6). Any other JSON is taken, and ignored.",
    ),
    "DeliveryTaken": {"anyOf": [
        obj({"status": {"enum": ["applied", "duplicate", "stale", "ignored", "unknown_call",
                                 "contended"]},
             "detail": text()}),
        obj({"status": {"const": "ignored"}, "reason": text("not a voice call event")}),
    ]},
}  # fmt: skip

PROBES: dict[str, Schema] = {
    "Alive": obj({"status": {"const": "ok"}}),
    "Failing": obj({"status": {"const": "failing"}, "reason": text()}),
    **{name: obj({"status": {"const": status},
                  "checks": obj({"redis": text("ok, or why not"),
                                 "graphs": text("N loaded, or none loaded")})})
       for name, status in (("Ready", "ready"), ("NotReady", "not ready"))},
}  # fmt: skip

# On a 503 "overloaded" (service.server.unavailable).
RETRY_AFTER = {
    "Retry-After": {
        "required": False,
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
        "description": "seconds; on an overloaded answer",
    }
}

# The answers several operations share.
RESPONSES: dict[str, Any] = {
    "Unauthorized": {
        "description": "No bearer token, or not the right one.",
        "headers": {"WWW-Authenticate": {"required": True, "schema": {"const": "Bearer"}}},
        "content": {"application/json": {"schema": error("unauthorized")}},
    },
    "Off": answer("IVR_ADMIN_TOKEN is not set: the operator routes are off.",
                  error("disabled")),
    "TooSlow": answer(f"The body did not all come in {BODY_TIMEOUT_S:g} s.", ref("TooSlow")),
    "TooLarge": answer("The body is over the endpoint's limit (413 before it is read).",
                       ref("TooLarge")),
    "Unavailable": {
        **answer("Redis does not answer (unavailable), or no Redis connection came free "
                 "within REDIS_POOL_TIMEOUT_S (overloaded): nothing changed, try again.",
                 {"anyOf": [ref("Unavailable"), ref("Overloaded")]}),
        "headers": RETRY_AFTER,
    },
    "BadAgentId": answer("Not an agent id (1-64 letters, digits, '_', '.' or '-', starting "
                         "with a letter or a digit).", error("invalid_agent_id")),
    "NoAgent": answer("No such agent.", error("not_found")),
    "NotAnAgent": answer("A bad agent id, a body that is not JSON, or not what the endpoint "
                         "takes (`path` says where).",
                         {"anyOf": [error("invalid_agent_id", "bad_request",
                                          "client_disconnected"), ref("AgentError")]}),
}  # fmt: skip


# -- the operations ------------------------------------------------------------------------

ANN = {
    "name": "Ann",
    "address": "+31612345678",
    "status": "available",
    "queues": {"support": {"level": 1, "position": 1}, "billing": {"level": 2}},
}
REMINDER = {"to": "+31612345678", "graph": "appointment-reminder",
            "vars": {"name": "Ann", "date": "1 December", "time": "10:00"}}  # fmt: skip
SCHEDULED = {"to": "sip:ann@pbx.example.com", "graph": "support-line", "from": "+31970102030",
             "scheduled_for": "2099-12-01T10:00:00+01:00"}  # fmt: skip
AGENT = path_parameter("agent_id", text(pattern=AGENT_ID), "ann")


def webhook() -> dict[str, Any]:
    reference = text(pattern=f"^{webhooks.OUR_REFERENCE.pattern}$")
    headers = [
        (signature.SIGNATURE_HEADER, True, "base64(HMAC-SHA256(signingKey, timestamp + '\\n' "
         "+ URL + '\\n' + SHA256(body))), over PUBLIC_BASE_URL's URL, query included"),
        (signature.TIMESTAMP_HEADER, True, "Unix seconds (or milliseconds, or ISO 8601), at "
         "most WEBHOOK_MAX_AGE_S old"),
        (signature.REQUEST_ID_HEADER, False, "logged; not signed"),
    ]  # fmt: skip
    return operation(
        "birdWebhook", "Bird", "Bird's deliveries: the subscription's and every call's",
        {
            "200": answer("Taken: what was done, or why nothing was.", ref("DeliveryTaken")),
            "400": answer("Not a delivery this service reads, or a ?ref=/?offer= it never "
                          "gives.", error("bad_request", "client_disconnected")),
            "401": answer("The signature is missing, wrong or too old: nothing changed.",
                          error("unauthorized")),
            **BODY_REFUSED,
            "503": {
                **answer("Redis does not answer (unavailable), or this process is overloaded "
                         "(answered at once, nothing changed): Bird delivers it again later.",
                         {"anyOf": [ref("Unavailable"), ref("Overloaded")]}),
                "headers": RETRY_AFTER,
            },
        },
        description="Signed by Bird with the subscription's signing key (BIRD_SIGNING_KEY); "
        "413 comes before the signature is checked, the signature before the body is read.",
        parameters=[
            *({"name": name, "in": "header", "required": required, "schema": text(),
               "description": description} for name, required, description in headers),
            query_parameter("ref", reference, "an outbound call's (in its notification.url)"),
            query_parameter("offer", reference, "an offer to an agent (in the bridge's "
                            "notification.url)"),
        ],
        body=json_body("BirdDelivery"),
    )  # fmt: skip


def paths() -> dict[str, dict[str, Any]]:
    """Every path of the app, and each of its methods."""
    return {
        "/webhooks/bird": {"post": webhook()},
        "/healthz": {"get": operation(
            "healthz", "Probes", "Liveness: this process works",
            {"200": answer("Alive.", ref("Alive")),
             "503": answer("The embedded Redis (a part of this process) is down.",
                           ref("Failing"))},
        )},
        "/readyz": {"get": operation(
            "readyz", "Probes", "Readiness: Redis answers and graphs are loaded",
            {"200": answer("Ready.", ref("Ready")),
             "503": answer("Not ready: the checks say why.", ref("NotReady"))},
        )},
        "/metrics": {"get": operation(
            "metrics", "Probes", "Prometheus metrics: counts only, never a number or an id",
            {"200": answer_as("Prometheus' text format; OpenMetrics when Accept asks for it.",
                              "text/plain", "application/openmetrics-text")},
        )},
        "/openapi.json": {"get": operation(
            "openapi", "Probes", "This document",
            {"200": answer("The OpenAPI 3.1 document.",
                           {"type": "object", "required": ["openapi", "info", "paths"]})},
        )},
        "/admin/graphs": {"get": operation(
            "listGraphs", "Graphs", "The graphs loaded, their versions and warnings",
            {"200": answer("The graph set.", ref("GraphSet"))}, token=True,
        )},
        "/admin/graphs/reload": {"post": operation(
            "reloadGraphs", "Graphs", "Read the graph directory again (no body)",
            {"200": answer("Reloaded: new calls get the new versions.", ref("ReloadResult")),
             "422": answer("Refused, with its problems: the last good set keeps serving.",
                           ref("ReloadResult")),
             **REDIS_AWAY},
            token=True,
        )},
        "/admin/graphs/{graph_id}/diagram.svg": {"get": operation(
            "graphDiagram", "Graphs", "A graph drawn, with its traffic",
            {"200": answer_as("The diagram.", "image/svg+xml"),
             "400": answer("Not a traffic this endpoint draws.", error("bad_request")),
             "404": answer("No such graph.", error("not_found")),
             **REDIS_AWAY},
            token=True,
            parameters=[
                path_parameter("graph_id", text(), "support-line"),
                query_parameter("traffic", {"enum": ["today", "all", "none"]},
                                "the traffic drawn on the edges"),
            ],
        )},
        "/admin/calls": {"get": operation(
            "listCalls", "Calls", "The live calls, oldest first",
            {"200": answer("The live calls.", ref("CallList")), **REDIS_AWAY},
            token=True,
            parameters=[query_parameter("graph", text(), "only this graph's calls")],
        )},
        "/admin/calls/{call_id}": {"get": operation(
            "getCall", "Calls", "One call: its state, the command it waits on, its timeline",
            {"200": answer("The call.", ref("CallView")),
             "400": answer("Not a call id (letters, digits, '-' and '_', at most 128).",
                           error("bad_request")),
             "404": answer("No such call: unknown, or ended more than CALL_TTL_S ago.",
                           error("not_found")),
             **REDIS_AWAY},
            token=True,
            parameters=[path_parameter("call_id", text(pattern=CALL_ID))],
        )},
        "/admin/errors": {"get": operation(
            "listErrors", "Calls", "The latest warnings and errors logged",
            {"200": answer("Newest first.", ref("ErrorLog")), **REDIS_AWAY}, token=True,
        )},
        "/admin/ui": {"get": operation(
            "supervisorPage", "Supervisor page",
            "The supervisor page: no token, it holds no data (it asks for the token)",
            {"200": answer_as("The page.", "text/html")},
        )},
        "/admin/ui/app.js": {"get": operation(
            "supervisorScript", "Supervisor page", "The supervisor page's script (no token)",
            {"200": answer_as("The script.", "text/javascript")},
        )},
        "/admin/ui/app.css": {"get": operation(
            "supervisorStyle", "Supervisor page", "The supervisor page's style (no token)",
            {"200": answer_as("The style sheet.", "text/css")},
        )},
        "/calls": {"post": operation(
            "placeCall", "Calls", "Place an outbound IVR call",
            {"202": answer("Placed (or scheduled).", ref("CallPlaced")),
             "400": answer("The client went away mid-body.", error("client_disconnected")),
             "422": answer("A bad request, a body that is not JSON included: every problem.",
                           ref("InvalidRequest")),
             "502": answer("Bird refused the call.", error("bird_refused")),
             **BODY_REFUSED, **REDIS_AWAY},
            token=True,
            body=json_body("CallRequest", reminder=REMINDER, scheduled=SCHEDULED),
        )},
        "/agents": {"get": operation(
            "listAgents", "Agents", "Every agent",
            {"200": answer("The agents, by id.", ref("AgentList")), **REDIS_AWAY}, token=True,
        )},
        "/agents/{agent_id}": {
            "parameters": [AGENT],
            "get": operation(
                "getAgent", "Agents", "One agent",
                {"200": answer("The agent.", ref("Agent")), "400": shared("BadAgentId"),
                 "404": shared("NoAgent"), **REDIS_AWAY},
                token=True,
            ),
            "put": operation(
                "putAgent", "Agents", "Create or replace an agent",
                {"200": answer("Replaced: their state and today's counters stay.",
                               ref("Agent")),
                 "201": answer("Created.", ref("Agent")),
                 "400": shared("NotAnAgent"),
                 "404": answer("Deleted meanwhile.", error("not_found")),
                 **BODY_REFUSED, **REDIS_AWAY},
                token=True,
                description="Every change makes the agent's queues look for work at once.",
                body=json_body("AgentInput", ann=ANN,
                               sip={"address": "sip:bob@pbx.example.com",
                                    "queues": {"billing": None}}),
            ),
            "delete": operation(
                "deleteAgent", "Agents", "Remove an agent",
                {"204": answer("Removed."), "400": shared("BadAgentId"),
                 "404": shared("NoAgent"),
                 "409": answer("Offered a caller or in a call: set them offline, and delete "
                               "them once the call has ended.",
                               error("agent_busy", state={"enum": list(AGENT_STATES)})),
                 **REDIS_AWAY},
                token=True,
            ),
        },
        "/agents/{agent_id}/status": {
            "parameters": [AGENT],
            "put": operation(
                "setAgentStatus", "Agents", "Set an agent's status",
                {"200": answer("The agent.", ref("Agent")), "400": shared("NotAnAgent"),
                 "404": shared("NoAgent"), **BODY_REFUSED, **REDIS_AWAY},
                token=True,
                body=json_body("AgentStatusInput", on_break={"status": "on_break"}),
            ),
        },
        "/queues": {"get": operation(
            "listQueues", "Queues", "Every queue of queues.json: who waits, agents, today",
            {"200": answer("The queues, by name.", ref("QueueList")), **REDIS_AWAY},
            token=True,
        )},
        "/queues/{name}": {"get": operation(
            "getQueue", "Queues", "One queue",
            {"200": answer("The queue.", ref("Queue")),
             "404": answer("Not a queue of the current queues.json.", error("not_found")),
             **REDIS_AWAY},
            token=True,
            parameters=[path_parameter("name", text(), "support")],
        )},
    }  # fmt: skip


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the service."""
    try:
        version = metadata.version("bird-ivr")
    except metadata.PackageNotFoundError:  # a source tree that is not installed
        version = "0.0.0"
    description = (
        "Bird posts every call event to POST /webhooks/bird. Operators manage graphs, "
        "calls, agents and queues behind the admin bearer token (IVR_ADMIN_TOKEN): 401 "
        "without it or with a wrong one, 403 when it is not set. Every GET also answers "
        'HEAD. Errors are JSON, {"error": CODE, "reason": "..."}; POST /calls\' bad '
        'requests are {"error": "invalid_request", "problems": [...]}.'
    )
    schemas = {**ERRORS, **AGENTS, **QUEUES, **CALLS, **GRAPHS, **BIRD, **PROBES}
    tags = ["Bird", "Probes", "Graphs", "Calls", "Agents", "Queues", "Supervisor page"]
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "bird-ivr", "version": version, "description": description,
                 "license": {"name": "MIT", "identifier": "MIT"}},
        "tags": [{"name": tag} for tag in tags],
        "paths": paths(),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "responses": RESPONSES,
            "securitySchemes": {"adminToken": {
                "type": "http", "scheme": "bearer",
                "description": "IVR_ADMIN_TOKEN (16+ characters); unset, the operator "
                "routes answer 403.",
            }},
        },
    }  # fmt: skip


@functools.cache
def _served() -> bytes:
    return json.dumps(document(), ensure_ascii=False).encode("utf-8")


def make_endpoint() -> Callable[[Request], Awaitable[Response]]:
    """``GET /openapi.json``."""

    async def openapi_json(_: Request) -> Response:
        return Response(_served(), media_type="application/json")

    return openapi_json
