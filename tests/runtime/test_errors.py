"""Recent errors: the warning and error lines of the logs, kept in the process, flushed to
a capped Redis list that every replica shares, read back newest first (real Redis)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import threading
import uuid
from typing import Any

import pytest
import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from service.runtime import errors, keys, logs
from service.runtime.errors import KEPT, SHOWN, TTL_S, RecentErrors, read_recent_errors


@pytest.fixture
def channel() -> str:
    return f"test-errors-{uuid.uuid4()}"


def entry(event: str, at: str, **fields: Any) -> dict[str, Any]:
    return {"at": at, "level": "error", "event": event, "call_id": None, "graph": None,
            "node": None, "text": "", **fields}  # fmt: skip


async def test_the_log_chain_keeps_warnings_and_errors_as_one_masked_line_each(
    redis: Redis, channel: str, captured: io.StringIO
) -> None:
    logs.configure(log_format="json", stream=captured)
    await errors.RECENT.flush(redis, f"{channel}-before")  # whatever earlier tests logged
    log = structlog.get_logger("test")
    log.info("call_answered", call_id="c-0", graph="support-line", node="welcome")
    log.warning("bird_slow", call_id="c-1", graph="support-line", node="main-menu",
                to="+31612345678", elapsed_ms=1234, reason="took long")  # fmt: skip
    try:
        raise ValueError("the CRM answered 500 for +31201234567")
    except ValueError:
        log.exception("lookup_failed", call_id="c-2", graph="support-line", node="lookup")
    logging.getLogger("uvicorn.error").error("Exception in ASGI application")
    assert await errors.RECENT.flush(redis, channel) == 3
    found = await read_recent_errors(redis, channel)
    assert [(e["level"], e["event"]) for e in found] == [
        ("error", "Exception in ASGI application"),
        ("error", "lookup_failed"),
        ("warning", "bird_slow"),
    ]
    slow = found[2]
    assert (slow["call_id"], slow["graph"], slow["node"]) == ("c-1", "support-line", "main-menu")
    assert slow["text"] == "to=+31******678 elapsed_ms=1234 reason='took long'"
    assert slow["at"].endswith("Z")
    assert slow["at"][:19] in json.loads(captured.getvalue().splitlines()[1])["timestamp"]
    failed = found[1]
    assert failed["text"] == "exception='ValueError: the CRM answered 500 for +31******567'"
    assert (found[0]["call_id"], found[0]["graph"], found[0]["node"]) == (None, None, None)
    assert "31612345678" not in json.dumps(found)
    # The log lines themselves are as they were.
    written = [json.loads(line) for line in captured.getvalue().splitlines()]
    assert [line["event"] for line in written][:3] == [
        "call_answered",
        "bird_slow",
        "lookup_failed",
    ]
    assert written[1]["to"] == "+31******678"


async def test_numbers_are_masked_even_when_the_logs_are_not(
    redis: Redis, channel: str, captured: io.StringIO
) -> None:
    logs.configure(log_format="console", stream=captured, mask=False)
    await errors.RECENT.flush(redis, f"{channel}-before")
    structlog.get_logger("test").error("transfer_failed", to="31201234567", note="to +31612345678")
    await errors.RECENT.flush(redis, channel)
    (found,) = await read_recent_errors(redis, channel)
    assert found["text"] == "to=31******567 note='to +31******678'"
    assert "+31612345678" in captured.getvalue()  # the logs chose not to mask


async def test_the_list_is_capped_expires_and_shows_the_newest_hundred(
    redis: Redis, channel: str
) -> None:
    recent = RecentErrors(capacity=KEPT + 50)
    for n in range(KEPT + 50):
        recent.remember(entry(f"e{n}", f"2026-12-01T10:{n // 60:02d}:{n % 60:02d}.000Z"))
    assert await recent.flush(redis, channel) == KEPT + 50
    assert await redis.llen(keys.recent_errors(channel)) == KEPT
    assert 0 < await redis.ttl(keys.recent_errors(channel)) <= TTL_S
    shown = await read_recent_errors(redis, channel)
    assert len(shown) == SHOWN
    assert [e["event"] for e in shown[:3]] == [f"e{KEPT + 49}", f"e{KEPT + 48}", f"e{KEPT + 47}"]


async def test_every_replica_s_errors_show_newest_first_whoever_flushed_last(
    redis: Redis, channel: str
) -> None:
    one, two = RecentErrors(), RecentErrors()
    one.remember(entry("on_one_early", "2026-12-01T10:00:01.000Z"))
    two.remember(entry("on_two", "2026-12-01T10:00:02.000Z"))
    one.remember(entry("on_one_late", "2026-12-01T10:00:03.000Z"))
    await one.flush(redis, channel)
    await two.flush(redis, channel)  # flushed last, yet not the newest
    found = await read_recent_errors(redis, channel)
    assert [e["event"] for e in found] == ["on_one_late", "on_two", "on_one_early"]


async def test_a_full_buffer_drops_its_oldest_lines_and_counts_them(
    redis: Redis, channel: str
) -> None:
    recent = RecentErrors(capacity=3)
    for n in range(5):
        recent.remember(entry(f"e{n}", f"2026-12-01T10:00:0{n}.000Z"))
    assert (recent.pending, recent.dropped) == (3, 2)
    await recent.flush(redis, channel)
    assert [e["event"] for e in await read_recent_errors(redis, channel)] == ["e4", "e3", "e2"]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_while_redis_is_away_the_lines_wait_in_the_process(
    redis: Redis, channel: str
) -> None:
    recent = RecentErrors()
    recent.remember(entry("first", "2026-12-01T10:00:01.000Z"))
    away = Redis(host="127.0.0.1", port=closed_port(), retry=Retry(NoBackoff(), 0))
    with pytest.raises((RedisError, OSError)):
        await recent.flush(away, channel)
    await away.aclose()
    recent.remember(entry("second", "2026-12-01T10:00:02.000Z"))
    assert recent.pending == 2
    assert await recent.flush(redis, channel) == 2
    assert [e["event"] for e in await read_recent_errors(redis, channel)] == ["second", "first"]


async def test_the_flusher_moves_lines_as_they_come_from_any_thread_and_the_rest_at_the_end(
    redis: Redis, channel: str
) -> None:
    recent = RecentErrors()
    keep = recent.processor()
    flushing = asyncio.create_task(recent.keep_flushing(redis, channel))
    line = {"event": "from_the_loop", "level": "warning", "timestamp": "2026-12-01T10:00:01Z"}
    assert keep(None, "warning", dict(line)) == line  # the line goes on unchanged
    await recent.drained()
    assert [e["event"] for e in await read_recent_errors(redis, channel)] == ["from_the_loop"]

    def in_a_thread() -> None:
        keep(None, "error", {"event": "from_a_thread", "level": "error",
                             "timestamp": "2026-12-01T10:00:02Z"})  # fmt: skip

    worker = threading.Thread(target=in_a_thread)
    worker.start()
    worker.join()
    await recent.drained()
    found = await read_recent_errors(redis, channel)
    assert [e["event"] for e in found] == ["from_a_thread", "from_the_loop"]

    keep(None, "info", {"event": "not_kept", "level": "info"})
    keep(None, "error", {"event": "at_the_end", "level": "error",
                         "timestamp": "2026-12-01T10:00:03Z"})  # fmt: skip
    flushing.cancel()  # before it ran: its last flush takes it
    with pytest.raises(asyncio.CancelledError):
        await flushing
    found = await read_recent_errors(redis, channel)
    assert [e["event"] for e in found] == ["at_the_end", "from_a_thread", "from_the_loop"]
