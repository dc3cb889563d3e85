"""Structured logs: JSON in production, a readable console in development.

Every line about a call carries ``call_id``, ``graph``, ``node`` and ``event``
(``service.runtime.calls`` binds them). Whatever logs, the line goes the same way:
the standard library's loggers (uvicorn's own messages, asyncio's "Task exception was
never retrieved", any library) are rendered by the same processors, and an exception
is one line too, its traceback as structured fields (``exception``: a list of frames
in JSON). Two processors protect what on-call staff read:

- :func:`redact_secrets` drops the value of any key that looks like a secret;
- :func:`mask_numbers` masks phone numbers in every string value, keeping the first
  two and last three digits (``+31*******030``), by one rule: an E.164 number (``+``
  and 7-15 digits) wherever it stands, whatever follows it (``+31612345678x``,
  ``..._+31612345678.json``); a value that is nothing but 7-15 digits (a number
  without its ``+``); and the user part of a ``sip:``/``sips:`` URI. Digits inside
  other text (a UUID, ``10000000 ms``, a URL's id) are left alone.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Mapping, MutableMapping
from types import TracebackType
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from service.runtime import errors

_SECRET_KEY = re.compile(r"(access_?key|signing_?key|secret|token|authorization|password)", re.I)
_E164 = re.compile(r"(?<![\d+])\+\d{7,15}(?!\d)")
_BARE_NUMBER = re.compile(r"\s*\d{7,15}\s*")
_SIP_USER = re.compile(r"(sips?:)([^@\s]+)@")

REDACTED = "[redacted]"


def mask_number(text: str) -> str:
    """``+31612345678`` -> ``+31******678``: the first two and the last three digits kept."""
    digits = "".join(c for c in text if c.isdigit())
    if len(digits) < 7:
        return text
    plus = "+" if text.startswith("+") else ""
    return plus + digits[:2] + "*" * (len(digits) - 5) + digits[-3:]


def mask_text(text: str) -> str:
    """``text`` with every phone number in it masked (the rule of the logs)."""
    return _mask_text(text)


def _mask_text(text: str) -> str:
    if "+" not in text and "sip" not in text:
        # Neither an E.164 number nor a SIP URI (most values): only a bare number, of
        # 7 digits or more, is masked.
        if len(text) >= 7 and _BARE_NUMBER.fullmatch(text):
            return mask_number(text.strip())
        return text
    if _BARE_NUMBER.fullmatch(text):
        return mask_number(text.strip())
    text = _SIP_USER.sub(lambda m: m.group(1) + "***@", text)
    return _E164.sub(lambda m: mask_number(m.group(0)), text)


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return _mask_text(value)
    if isinstance(value, dict):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(v) for v in value]
    return value


def mask_numbers(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    for key, value in event_dict.items():
        if key not in ("timestamp", "level", "logger", "call_id", "graph", "node"):
            event_dict[key] = _mask_value(value)
    return event_dict


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    for key in event_dict:
        if _is_secret(key):
            event_dict[key] = REDACTED
    return event_dict


# Whether a key names a secret, by key (the keys logged are the code's: a few hundred).
_SECRET_KEYS: dict[str, bool] = {}
_SECRET_KEYS_KEPT = 4096


def _is_secret(key: str) -> bool:
    secret = _SECRET_KEYS.get(key)
    if secret is None:
        secret = _SECRET_KEY.search(key) is not None
        if len(_SECRET_KEYS) < _SECRET_KEYS_KEPT:
            _SECRET_KEYS[key] = secret
    return secret


class _Stamp:
    """The UTC time of a line, as structlog's ``TimeStamper(fmt="iso", utc=True)`` writes
    it (``datetime.isoformat``: ``2030-01-02T03:04:05.678901Z``, without the fraction in
    the rare microsecond that has none); the date and time of the current second made
    once."""

    def __init__(self, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._clock_ns = clock_ns
        self._second = -1
        self._prefix = ""

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        second, micros = divmod(self._clock_ns() // 1000, 1_000_000)
        if second != self._second:
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        event_dict["timestamp"] = f"{self._prefix}.{micros:06d}Z" if micros else f"{self._prefix}Z"
        return event_dict


timestamp = _Stamp()


def _drop(_: WrappedLogger, __: str, ___: EventDict) -> EventDict:
    raise structlog.DropEvent


def _from_stdlib(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """A standard library record as our lines: its logger's name as ``logger``, and
    the call context keys present (``null``) like on every line."""
    record = event_dict.get("_record")
    if record is not None:
        event_dict.setdefault("logger", record.name)
    for key in ("call_id", "graph", "node"):
        event_dict.setdefault(key, None)
    return event_dict


def _log_uncaught(
    kind: type[BaseException], error: BaseException, trace: TracebackType | None
) -> None:
    """An exception nobody caught, as one log line (then the process exits as usual)."""
    structlog.get_logger("service").critical(
        "uncaught_exception", exc_info=(kind, error, trace), call_id=None, graph=None, node=None
    )


def _configure_stdlib(
    shared: list[Processor],
    exceptions: list[Processor],
    renderer: Processor,
    level: str,
    stream: TextIO | None,
    quiet: bool,
) -> None:
    """Route every standard library logger (uvicorn, asyncio, libraries) through the
    same processors, one line per record, to the same stream."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_log_level, _from_stdlib, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *exceptions,
                    renderer],
    )  # fmt: skip
    handler: logging.Handler = (
        logging.NullHandler() if quiet else logging.StreamHandler(stream or sys.stdout)
    )
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(logging.getLevelNamesMapping()[level.upper()])
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "asyncio"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True
    # httpx says "HTTP Request: POST ..." at info for every request (httpcore, at debug,
    # says much more): the service logs each request to Bird itself, with the call it
    # is about (bird_command_sent at debug, its failures at warning), and counts them
    # (ivr_bird_requests_total). Their own lines only at LOG_LEVEL=debug.
    chatty = logging.DEBUG if level == "debug" else logging.WARNING
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(chatty)


LogSink = Callable[[MutableMapping[str, Any]], None]


def _shared(printer: structlog.PrintLogger) -> Callable[..., structlog.PrintLogger]:
    """A logger factory that gives every logger the same ``printer`` (structlog's
    ``PrintLoggerFactory`` makes one for every ``bind``: every delivery)."""

    def factory(*_: Any) -> structlog.PrintLogger:
        return printer

    return factory


def configure(
    *,
    log_format: str = "json",
    level: str = "info",
    mask: bool = True,
    stream: TextIO | None = None,
    sink: LogSink | None = None,
    quiet: bool = False,
    context: Mapping[str, Any] | None = None,
) -> None:
    """Configure structlog, and the standard library's logging, for the whole process.

    ``sink`` receives a copy of every event dict after masking (the demo uses it to
    print each call's log lines under its transcript); ``quiet`` then writes nothing.
    ``context``: fields every line of this process carries (a worker's index and pid).
    """
    shared: list[Processor] = [
        timestamp,
        redact_secrets,
    ]
    if context:
        fields = dict(context)

        def _context(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
            for name, value in fields.items():
                event_dict.setdefault(name, value)
            return event_dict

        shared.append(_context)
    renderer: Processor
    if log_format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=False, sort_keys=False)
    else:
        renderer = structlog.processors.JSONRenderer(sort_keys=False)
    # The exception rendered first, so that masking sees its text too.
    exceptions: list[Processor] = [
        structlog.processors.format_exc_info
        if log_format == "console"
        else structlog.processors.dict_tracebacks
    ]
    if mask:
        exceptions.append(mask_numbers)
    # Warnings and errors, as shown (masked whatever LOG_MASK_NUMBERS says), for the
    # supervisor page's "recent errors" (GET /admin/errors).
    exceptions.append(errors.RECENT.processor(mask=None if mask else _mask_value))
    _configure_stdlib(shared, exceptions, renderer, level, stream, quiet)
    sys.excepthook = _log_uncaught
    processors: list[Processor] = [structlog.processors.add_log_level, *shared, *exceptions]
    if sink is not None:
        tee = sink

        def _tee(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
            tee(dict(event_dict))
            return event_dict

        processors.append(_tee)
    if quiet:
        processors.append(_drop)
    processors.append(renderer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=_shared(structlog.PrintLogger(stream or sys.stdout)),
        cache_logger_on_first_use=False,
    )
