"""Recent errors: the service's warning and error log lines, for the supervisor page.

:meth:`RecentErrors.processor` is a structlog processor (``service.runtime.logs`` puts it
in the chain after masking, so what it keeps is what the logs show) that copies every
``warning``, ``error`` and ``critical`` line into a bounded in-process buffer: an append
to a deque and nothing more, from whichever thread logs. It never waits on Redis.

:meth:`RecentErrors.keep_flushing`, a task of the app's lifespan, moves them soon after
to a capped Redis list (``keys.recent_errors``: the newest :data:`KEPT`, expiring
:data:`TTL_S` after the last push), so that every replica's page shows every replica's
errors; :func:`read_recent_errors` reads them back (``GET /admin/errors``).

An entry: ``{"at" (ISO, UTC, ms), "level", "event", "call_id", "graph", "node", "text"}``;
``text`` is the rest of the line in one readable line (``error='timed out' status=503``,
an exception as its type and message), at most :data:`TEXT_CHARS` characters.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from structlog.typing import EventDict, Processor, WrappedLogger

from service.runtime import keys

log = structlog.get_logger("errors")

LEVELS = frozenset({"warning", "error", "critical"})
BUFFERED = 200  # lines waiting in this process for the next flush (the oldest dropped)
KEPT = 200  # lines in the Redis list, all replicas together
TTL_S = 3 * 24 * 3600
SHOWN = 100  # at most this many in GET /admin/errors
TEXT_CHARS = 300
EVENT_CHARS = 120
RETRY_S = 2.0

# Shown as fields of the entry, not in its text.
_OWN_FIELDS = frozenset({"timestamp", "level", "logger", "event", "call_id", "graph", "node"})
_LEFT_OUT = frozenset(
    {"exception", "exc_info", "stack", "stack_info", "_record", "_from_structlog"}
)

Mask = Callable[[Any], Any]


def _cut(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _moment(value: Any) -> str:
    """An ISO timestamp of the logs as ``2026-12-01T10:15:02.113Z`` (now, if unreadable)."""
    moment = datetime.now(UTC)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            moment = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return (
            value if value and not any(c.isspace() or c in "='\"" for c in value) else repr(value)
        )
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:  # a circular structure
        return repr(value)


def _exception(value: Any) -> str | None:
    """An exception of the line as ``ValueError: boom``: from ``dict_tracebacks`` (JSON
    logs: a list of exceptions, the one raised first) or ``format_exc_info`` (text)."""
    if isinstance(value, list) and value and isinstance(value[0], Mapping):
        first = value[0]
        kind, message = first.get("exc_type", "Exception"), first.get("exc_value", "")
        return f"{kind}: {message}" if message else str(kind)
    if isinstance(value, str):
        lines = [line for line in value.splitlines() if line.strip()]
        return lines[-1].strip() if lines else None
    return None


def error_entry(event_dict: Mapping[str, Any], mask: Mask | None = None) -> dict[str, Any]:
    """What the page shows of a log line. ``mask``: applied to its texts (when the
    log chain has not masked them already)."""
    shown: Mask = mask if mask is not None else (lambda value: value)
    rest = [
        f"{key}={_shown(shown(value))}"
        for key, value in event_dict.items()
        if key not in _OWN_FIELDS and key not in _LEFT_OUT and value is not None
    ]
    exception = _exception(event_dict.get("exception"))
    if exception:
        rest.append(f"exception={shown(exception)!r}")
    event = str(shown(str(event_dict.get("event", ""))))
    text = " ".join(rest)

    def context(key: str) -> str | None:
        value = event_dict.get(key)
        return None if value is None else _cut(str(value), EVENT_CHARS)

    return {
        "at": _moment(event_dict.get("timestamp")),
        "level": str(event_dict.get("level", "warning")).lower(),
        "event": _cut(event, EVENT_CHARS),
        "call_id": context("call_id"),
        "graph": context("graph"),
        "node": context("node"),
        "text": _cut(text, TEXT_CHARS),
    }


@dataclass
class _Flusher:
    """A running :meth:`RecentErrors.keep_flushing`: how to wake it, and how it tells
    that a flush is done."""

    loop: asyncio.AbstractEventLoop
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    flushed: asyncio.Condition = field(default_factory=asyncio.Condition)


class RecentErrors:
    """The buffer of warning and error lines of this process, and its flush to Redis."""

    def __init__(self, capacity: int = BUFFERED) -> None:
        self._pending: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._in_flight = 0
        self._flushers: list[_Flusher] = []
        self.dropped = 0
        """Lines dropped because the buffer was full (Redis away for long)."""

    def processor(self, mask: Mask | None = None) -> Processor:
        """The structlog processor that keeps warnings and errors here. ``mask``: to
        mask their texts (when the chain does not: ``LOG_MASK_NUMBERS=false``)."""

        def keep(_: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
            level = str(event_dict.get("level", method_name)).lower()
            if level in LEVELS:
                # Keeping a copy must never cost the line itself.
                with contextlib.suppress(Exception):
                    self.remember(error_entry(event_dict, mask))
            return event_dict

        return keep

    def remember(self, entry: dict[str, Any]) -> None:
        """Buffer ``entry`` and wake the flushers (safe from any thread)."""
        if self._pending.maxlen is not None and len(self._pending) >= self._pending.maxlen:
            self.dropped += 1
        self._pending.append(entry)
        for flusher in list(self._flushers):
            with contextlib.suppress(RuntimeError):  # its loop has closed
                flusher.loop.call_soon_threadsafe(flusher.wake.set)

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self, redis: Redis, channel_id: str = "") -> int:
        """Push the buffered lines to the channel's list; how many. On failure they go
        back into the buffer (the newest kept) and the error is raised."""
        batch: list[dict[str, Any]] = []
        while self._pending:
            try:
                batch.append(self._pending.popleft())
            except IndexError:  # emptied meanwhile
                break
        if not batch:
            return 0
        key = keys.recent_errors(channel_id)
        self._in_flight += 1
        try:
            async with redis.pipeline(transaction=True) as pipe:
                # LPUSH puts each at the head in turn: the newest ends first.
                pipe.lpush(key, *(json.dumps(entry, ensure_ascii=False) for entry in batch))
                pipe.ltrim(key, 0, KEPT - 1)
                pipe.expire(key, TTL_S)
                await pipe.execute()
        except BaseException:
            kept = [*batch, *self._pending]
            self._pending.clear()
            self._pending.extend(kept)  # a full buffer drops the oldest
            raise
        finally:
            self._in_flight -= 1
        return len(batch)

    def keep_flushing(self, redis: Redis, channel_id: str = "") -> Coroutine[Any, Any, None]:
        """A task's work (``asyncio.create_task(recent.keep_flushing(...))``, in a running
        event loop; it is one of the flushers from this call on): flush whenever lines
        arrive, until cancelled, then once more, briefly. While Redis is away, retry every
        :data:`RETRY_S` seconds, the lines kept here meanwhile."""
        flusher = _Flusher(asyncio.get_running_loop())
        self._flushers.append(flusher)
        return self._flush_loop(flusher, redis, channel_id)

    async def _flush_loop(self, flusher: _Flusher, redis: Redis, channel_id: str) -> None:
        failing = False
        try:
            while True:
                if not self._pending:
                    await flusher.wake.wait()
                flusher.wake.clear()
                try:
                    await self.flush(redis, channel_id)
                except (RedisError, OSError) as exc:
                    if not failing:
                        log.warning("recent_errors_not_flushed", error=str(exc),
                                    retry_in_s=RETRY_S, call_id=None, graph=None,
                                    node=None)  # fmt: skip
                    failing = True
                    await asyncio.sleep(RETRY_S)
                    continue
                failing = False
                async with flusher.flushed:
                    flusher.flushed.notify_all()
        except asyncio.CancelledError:
            with contextlib.suppress(RedisError, OSError, TimeoutError):
                await asyncio.wait_for(self.flush(redis, channel_id), 1.0)
            raise
        finally:
            self._flushers.remove(flusher)

    async def drained(self) -> None:
        """Wait until every line buffered so far is in Redis (flushed by the
        :meth:`keep_flushing` running in this event loop)."""
        loop = asyncio.get_running_loop()
        flusher = next((f for f in self._flushers if f.loop is loop), None)
        if flusher is None:
            raise RuntimeError("no keep_flushing task runs in this event loop")
        async with flusher.flushed:
            await flusher.flushed.wait_for(lambda: not self._pending and not self._in_flight)


RECENT = RecentErrors()
"""This process's buffer: in the log chain (``service.runtime.logs.configure``), flushed
by the app (``service.server.app``)."""


async def read_recent_errors(
    redis: Redis, channel_id: str = "", limit: int = SHOWN
) -> list[dict[str, Any]]:
    """The channel's latest warning and error lines, newest first, at most ``limit``."""
    raw = await redis.lrange(keys.recent_errors(channel_id), 0, KEPT - 1)
    entries = []
    for item in raw:
        try:
            entry = json.loads(item)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("at"), str):
            entries.append(entry)
    entries.sort(key=lambda entry: entry["at"], reverse=True)  # replicas flush apart
    return entries[:limit]
