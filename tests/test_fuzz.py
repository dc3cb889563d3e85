"""Property-based tests: whatever a client, Bird or an editor sends, every parser answers
with the project's own error types (a reason for a 4xx, a ``FILE: /path: message``),
never with another exception. Bounded: the whole module runs in seconds."""

from __future__ import annotations

import json
import string
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from service.bird import signature
from service.bird.deliveries import DeliveryError, UnhandledDelivery, parse_delivery, to_event
from service.core import jsondoc
from service.graphs import schema
from service.graphs.loader import GraphError, load_directory, load_file, parse
from service.graphs.queues import parse_queues
from service.runtime.agents import AgentError, parse_agent
from service.runtime.registry import Registry
from service.server.outbound import OutboundRequest, parse_request
from tests.paths import SHIPPED_GRAPHS

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])  # fmt: skip

# JSON values, with the texts and numbers that broke parsers before: lone surrogates,
# control characters, huge and non-finite numbers.
texts = st.text(alphabet=st.characters(codec=None), max_size=40) | st.sampled_from(
    ["\ud800", "a\nb", "\x00", "../../calls", "+31612345678x", "NaN", "9" * 5000, ""]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=5),
    max_leaves=20,
)


def payloads() -> st.SearchStrategy[dict[str, Any]]:
    """A call payload with every field Bird sends, any of them any JSON value."""
    fields = ["id", "parentId", "from", "to", "status", "direction", "createdAt", "updatedAt",
              "hangupSource", "command"]  # fmt: skip
    plausible = {
        "id": st.uuids().map(str) | json_values,
        "status": st.sampled_from(["starting", "ringing", "ongoing", "completed", "no-answer"])
        | json_values,
        "updatedAt": st.just("2026-11-23T18:00:01Z") | json_values,
        "command": st.fixed_dictionaries(
            {"command": st.sampled_from(["say", "gather", "record", "bridge", "answer"]),
             "status": st.sampled_from(["completed", "failed"]), "result": json_values}
        ) | json_values,
    }  # fmt: skip
    return st.fixed_dictionaries(
        {}, optional={name: plausible.get(name, json_values) for name in fields}
    )


def refusal(call: Callable[[], object], *allowed: type[Exception]) -> Exception | None:
    """What ``call`` raised of ``allowed`` (None when it returned); anything else
    raised fails the test."""
    try:
        call()
    except allowed as refused:
        return refused
    return None


def every_line_starts(refused: Exception, prefix: str) -> bool:
    """Each problem of a GraphError is one ``FILE: /path: message`` line."""
    return all(line.startswith(prefix) for line in str(refused).splitlines())


def envelope(payload: Any) -> bytes:
    body = {"service": "channels", "event": "voice.inbound", "payload": payload}
    return json.dumps(body, allow_nan=True).encode("utf-8", "surrogatepass")


@FUZZ
@given(st.binary(max_size=300) | payloads().map(envelope) | json_values.map(envelope))
def test_a_delivery_parses_or_is_refused_with_a_reason(body: bytes) -> None:
    refused = refusal(lambda: parse_delivery(body), DeliveryError, UnhandledDelivery)
    if refused is not None:
        assert str(refused)
        return
    delivery = parse_delivery(body)
    to_event(delivery)  # what the delivery means: never an error
    delivery.describe()
    assert delivery.fingerprint


@FUZZ
@given(st.one_of(st.none(), texts), st.one_of(st.none(), texts), st.binary(max_size=64))
def test_a_signature_verifies_or_is_refused_with_a_reason(
    given_signature: str | None, timestamp: str | None, body: bytes
) -> None:
    refused = refusal(
        lambda: signature.verify(
            signing_key="key", signature=given_signature, timestamp=timestamp,
            url="https://ivr.example.com/webhooks/bird", body=body, now=1_800_000_000.0,
            max_age_s=90_000,
        ),
        signature.SignatureError,
    )  # fmt: skip
    assert refused is None or str(refused)


@FUZZ
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_json_text_is_read_or_refused_with_a_reason(text: bytes) -> None:
    refused = refusal(lambda: jsondoc.load(text), jsondoc.JSONTextError)
    assert refused is None or str(refused)


REGISTRY = Registry(Redis(), load_directory(SHIPPED_GRAPHS, "support-line"))  # never connects


@FUZZ
@given(
    json_values
    | st.fixed_dictionaries(
        {},
        optional={
            "to": json_values | st.just("+31612345678"),
            "graph": json_values | st.just("support-line"),
            "vars": json_values,
            "from": json_values,
            "scheduled_for": json_values,
        },
    )
)
def test_an_outbound_request_parses_or_lists_its_problems(body: Any) -> None:
    parsed = parse_request(body, REGISTRY, 1_800_000_000.0)
    assert isinstance(parsed, OutboundRequest) or all(
        isinstance(p, str) and p.startswith("/") for p in parsed
    )  # fmt: skip


@FUZZ
@given(st.text(alphabet=string.ascii_letters + string.digits + "-_.", min_size=1, max_size=20),
       json_values | st.fixed_dictionaries({}, optional={
           "name": json_values, "address": json_values | st.just("+31612345678"),
           "queues": json_values, "status": json_values}))  # fmt: skip
def test_an_agent_parses_or_is_refused_with_a_path(agent_id: str, document: Any) -> None:
    refused = refusal(lambda: parse_agent(agent_id, document, {"support": object()}), AgentError)
    assert refused is None or str(refused).startswith("/")


def node_documents() -> st.SearchStrategy[Any]:
    node = st.fixed_dictionaries(
        {"type": st.sampled_from(["say", "menu", "collect", "branch", "set", "hours",
                                  "transfer", "queue", "callback", "voicemail", "http",
                                  "hangup"]) | json_values},
        optional={name: json_values for name in ("say", "next", "options", "pattern", "cases",
                                                 "to", "queue", "url", "vars", "var")},
    )  # fmt: skip
    return st.fixed_dictionaries(
        {"id": st.just("fuzz") | json_values, "start": st.just("a") | json_values,
         "nodes": st.dictionaries(st.sampled_from(["a", "b", "x\n"]) | texts, node,
                                  max_size=4) | json_values},
        optional={"numbers": json_values, "locale": json_values, "queues": json_values},
    )  # fmt: skip


@FUZZ
@given(node_documents() | json_values)
def test_a_graph_document_loads_or_lists_its_problems(document: Any) -> None:
    refused = refusal(lambda: parse(document, "fuzz.json"), GraphError)
    assert refused is None or every_line_starts(refused, "fuzz.json: /")


@FUZZ
@given(st.binary(max_size=300) | node_documents().map(
    lambda d: json.dumps(d).encode("utf-8", "surrogatepass")))  # fmt: skip
def test_a_graph_file_loads_or_lists_its_problems(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "fuzz.json"
        path.write_bytes(content)
        refused = refusal(lambda: load_file(path), GraphError)
        assert refused is None or every_line_starts(refused, f"{path}: /")


@FUZZ
@given(
    json_values | st.fixed_dictionaries({"queues": st.dictionaries(texts, json_values, max_size=3)})
)
def test_a_queues_document_parses_or_lists_its_problems(document: Any) -> None:
    refused = refusal(lambda: parse_queues(document, "queues.json"), GraphError)
    assert refused is None or every_line_starts(refused, "queues.json: /")


@FUZZ
@given(node_documents())
def test_the_schema_check_node_by_node_finds_what_the_whole_schema_finds(document: Any) -> None:
    whole = schema._problems(schema._schema_validator(), "g.json", document)
    assert schema.problems("g.json", document) == whole
