"""Logs as on-call staff read them: JSON lines, numbers masked, secrets never shown."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from service.runtime import logs


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    yield stream
    structlog.reset_defaults()


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
