"""Logs as on-call staff read them: JSON lines, numbers masked, secrets never shown."""

from __future__ import annotations

import io
import json
import logging
import sys
from datetime import UTC, datetime

import httpx
import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.core import engine
from service.runtime import logs
from service.runtime.serving import serve
from tests.sample_graphs import support_line_with_transfers


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_the_call_context(captured: io.StringIO) -> None:
    logs.configure(log_format="json", stream=captured)
    structlog.get_logger().info("node_entered", call_id="c-1", graph="g", node="menu")
    (line,) = lines(captured)
    assert line["event"] == "node_entered"
    assert (line["call_id"], line["graph"], line["node"]) == ("c-1", "g", "menu")
    assert line["level"] == "info"
    assert "timestamp" in line


def test_phone_numbers_are_masked_by_default(captured: io.StringIO) -> None:
    logs.configure(log_format="json", stream=captured)
    structlog.get_logger().info(
        "transfer_started", call_id="c-1", to="+31201234567", text="Hello +31612345678",
        sip="sip:jane@pbx.example.com", nested={"from": "+31612345678"},
    )  # fmt: skip
    (line,) = lines(captured)
    dumped = json.dumps(line)
    assert "31201234567" not in dumped
    assert "31612345678" not in dumped
    assert "jane" not in dumped
    assert line["to"] == "+31******567"
    assert line["text"] == "Hello +31******678"
    assert line["call_id"] == "c-1"


def test_masking_can_be_turned_off(captured: io.StringIO) -> None:
    logs.configure(log_format="json", stream=captured, mask=False)
    structlog.get_logger().info("x", to="+31201234567")
    assert lines(captured)[0]["to"] == "+31201234567"


def test_secrets_are_redacted(captured: io.StringIO) -> None:
    logs.configure(log_format="json", stream=captured)
    structlog.get_logger().info("oops", access_key="ak", signing_key="sk", authorization="x")
    line = lines(captured)[0]
    assert line["access_key"] == line["signing_key"] == line["authorization"] == logs.REDACTED


def test_console_format_is_readable(captured: io.StringIO) -> None:
    logs.configure(log_format="console", stream=captured)
    structlog.get_logger().info("call_answered", call_id="c-1", graph="g", node=None)
    text = captured.getvalue()
    assert "call_answered" in text
    assert "call_id=c-1" in text
    assert not text.startswith("{")


def test_level_filters(captured: io.StringIO) -> None:
    logs.configure(log_format="json", level="warning", stream=captured)
    structlog.get_logger().info("quiet")
    structlog.get_logger().warning("loud")
    assert [line["event"] for line in lines(captured)] == ["loud"]


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("+31687654321x", "+31******321x"),
        ("called +31687654321_", "called +31******321_"),
        ("file-+31687654321.wav", "file-+31******321.wav"),
        ("+31687654321-2", "+31******321-2"),
        ("tel:+31687654321", "tel:+31******321"),
        ("0687654321", "06*****321"),
        ("sips:0687654321@pbx.example.com", "sips:***@pbx.example.com"),
    ],
)
def test_a_number_is_masked_whatever_stands_around_it(
    captured: io.StringIO, text: str, masked: str
) -> None:
    logs.configure(log_format="json", stream=captured)
    structlog.get_logger().error("no_graph_for_number", called=text)
    assert lines(captured)[0]["called"] == masked


@pytest.mark.parametrize(
    "text",
    [
        "waited 10000000 ms",
        "https://api.bird.com/calls/550e8400-e29b-41d4-a716-446655440000/say",
        "550e8400-e29b-41d4-a716-446655440000",
        "version 1700000000123",
        "recording 12345678901234567890",
    ],
)
def test_durations_and_ids_are_left_alone(captured: io.StringIO, text: str) -> None:
    logs.configure(log_format="json", stream=captured)
    structlog.get_logger().info("x", detail=text)
    assert lines(captured)[0]["detail"] == text


def test_call_started_names_the_caller_masked(captured: io.StringIO) -> None:
    logs.configure(log_format="json", stream=captured)
    graph = support_line_with_transfers().graphs["support-line"]
    started = engine.begin(graph, call_id="c-9", caller="+31612345678", called="+31970102030",
                           now=1_800_000_000.0)  # fmt: skip
    (note,) = [n for n in started.notes if n.event == "call_started"]
    structlog.get_logger().info(note.event, call_id="c-9", graph=graph.id, node=note.node,
                                **note.fields)  # fmt: skip
    line = lines(captured)[0]
    assert (line["caller"], line["called"]) == ("+31******678", "+31******030")


async def test_the_servers_own_errors_are_json_lines_with_the_exception_as_fields(
    captured: io.StringIO,
) -> None:
    logs.configure(log_format="json", stream=captured)

    async def broken(_: Request) -> Response:
        raise RuntimeError("caller +31612345678 broke it")

    app = Starlette(routes=[Route("/boom", broken)])
    async with serve(app) as running, httpx.AsyncClient() as http:
        answer = await http.get(running.url + "/boom")
    assert answer.status_code == 500
    written = captured.getvalue().splitlines()
    parsed = [json.loads(line) for line in written]  # every line is one JSON document
    (failure,) = [line for line in parsed if line.get("exception")]
    assert failure["logger"].startswith("uvicorn")
    assert failure["level"] == "error"
    frames = failure["exception"]
    assert isinstance(frames, list)
    assert frames[0]["exc_type"] == "RuntimeError"
    assert "31612345678" not in captured.getvalue()
    assert (failure["call_id"], failure["graph"], failure["node"]) == (None, None, None)


def test_a_library_logging_a_number_is_masked_in_the_same_json(captured: io.StringIO) -> None:
    logs.configure(log_format="json", stream=captured)
    logging.getLogger("some.library").warning("dialling %s failed", "+31612345678")
    (line,) = lines(captured)
    assert line["event"] == "dialling +31******678 failed"
    assert (line["level"], line["logger"]) == ("warning", "some.library")


@pytest.mark.parametrize(("level", "logged"), [("info", 0), ("debug", 1)])
async def test_httpx_s_line_per_request_only_at_debug(
    captured: io.StringIO, level: str, logged: int
) -> None:
    logs.configure(log_format="json", level=level, stream=captured)
    answer = httpx.MockTransport(lambda request: httpx.Response(202))
    async with httpx.AsyncClient(transport=answer) as client:
        await client.post("http://bird.test/calls/c-1/say")
    said = [line for line in lines(captured) if str(line["event"]).startswith("HTTP Request")]
    assert len(said) == logged


def test_an_exception_nobody_caught_is_one_json_line(captured: io.StringIO) -> None:
    logs.configure(log_format="json", stream=captured)
    try:
        raise ValueError("bad input from +31612345678")
    except ValueError as error:
        sys.excepthook(type(error), error, error.__traceback__)
    (line,) = lines(captured)
    assert (line["event"], line["level"]) == ("uncaught_exception", "critical")
    frames = line["exception"]
    assert isinstance(frames, list)
    assert frames[0]["exc_type"] == "ValueError"
    assert "31612345678" not in captured.getvalue()


def _masked_by_the_rule(text: str) -> str:
    """The masking rule, applied in full to any text (what the logs must show)."""
    if logs._BARE_NUMBER.fullmatch(text):
        return logs.mask_number(text.strip())
    text = logs._SIP_USER.sub(lambda m: m.group(1) + "***@", text)
    return logs._E164.sub(lambda m: logs.mask_number(m.group(0)), text)


@given(
    st.text(alphabet=st.sampled_from(list("0123456789+ sip:@.-\t\nab٣")), max_size=30)
    | st.text(max_size=30)
)
def test_masking_follows_the_rule_for_any_text(text: str) -> None:
    assert logs.mask_text(text) == _masked_by_the_rule(text)


def test_a_key_is_a_secret_or_not_whatever_was_asked_before() -> None:
    for _ in range(2):  # the second time from what is kept
        assert logs._is_secret("bird_access_key")
        assert logs._is_secret("Authorization")
        assert not logs._is_secret("call_id")


@given(st.integers(min_value=0, max_value=4_102_444_800 * 10**9))
def test_a_line_s_time_is_written_as_structlog_s_iso_utc_stamp(ns: int) -> None:
    stamp = logs._Stamp(clock_ns=lambda: ns)
    seconds, micros = divmod(ns // 1000, 1_000_000)
    expected = datetime.fromtimestamp(seconds, UTC).replace(microsecond=micros)
    written = expected.isoformat().replace("+00:00", "Z")
    for _ in range(2):  # the second time from the second's date and time kept
        assert stamp(None, "info", {})["timestamp"] == written


def test_lines_carry_the_time_they_were_logged(captured: io.StringIO) -> None:
    logs.configure(log_format="json", stream=captured)
    before = datetime.now(UTC)
    structlog.get_logger().info("x")
    after = datetime.now(UTC)
    (line,) = lines(captured)
    logged = datetime.fromisoformat(str(line["timestamp"]).replace("Z", "+00:00"))
    assert before <= logged <= after
