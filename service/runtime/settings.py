"""Configuration: every environment variable the service reads, read here once.

:func:`Settings.from_env` returns a frozen :class:`Settings` or raises
:class:`SettingsError` naming every variable that is missing or malformed, at once.
Secrets are kept out of ``repr`` so that logging a settings object never leaks them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from service.bird.limits import LIMITS_PER_S
from service.runtime.clock import parse_moment
from service.runtime.redis_client import (
    MAX_CONNECTIONS,
    POOL_TIMEOUT_S,
    RedisUrlError,
    check_url,
)

LOG_FORMATS = ("json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")


class SettingsError(Exception):
    """Settings are missing or malformed. The message is one line naming every one
    (``missing: BIRD_ACCESS_KEY, PUBLIC_BASE_URL; LOG_LEVEL 'loud' is not one of ...``);
    ``problems`` has what is wrong with each malformed one, ``missing`` the names."""

    def __init__(self, missing: list[str], problems: list[str]) -> None:
        parts = ([f"missing: {', '.join(missing)}"] if missing else []) + problems
        super().__init__("; ".join(parts))
        self.missing = missing
        self.problems = problems


@dataclass(frozen=True)
class Settings:
    bird_access_key: str = field(repr=False)
    bird_workspace_id: str
    bird_channel_id: str
    bird_signing_key: str = field(repr=False)
    public_base_url: str
    redis_url: str | None = None
    # The Redis client's pool: at most this many connections (per node of a cluster);
    # a command waits up to redis_pool_timeout_s for one, then the webhook answers 503
    # "overloaded" (service.runtime.redis_client). Long-lived users (the graphs'
    # subscription) keep a few: at least 8.
    redis_max_connections: int = MAX_CONNECTIONS
    redis_pool_timeout_s: float = POOL_TIMEOUT_S
    # Deliveries to POST /webhooks/bird handled at once by this process: one more is
    # answered 503 "overloaded" (Retry-After: 1) at once, and Bird delivers it again.
    ivr_max_in_flight: int = 256
    bird_api_url: str = "https://api.bird.com"
    ivr_graphs_dir: Path = Path("ivr_graphs")
    # Seconds between checks of the graph directory, reloaded (as on SIGHUP) when a file
    # changed: for a directory updated in place (a Kubernetes ConfigMap volume). 0: off.
    ivr_graphs_watch_s: float = 0.0
    ivr_default_graph: str | None = None
    # Bearer token for /admin/* and POST /calls; unset: those endpoints are off.
    ivr_admin_token: str | None = field(default=None, repr=False)
    # Agents to create at start-up (service.runtime.agents.read_agents_file); agents
    # that exist already keep their status and state.
    ivr_agents_file: Path | None = None
    log_format: str = "json"
    log_level: str = "info"
    log_mask_numbers: bool = True
    # Bird retries a failed delivery for about 8 hours (seen: 24) with its ORIGINAL
    # timestamp; a shorter window would turn every retry into a lost delivery.
    webhook_max_age_s: int = 90_000
    # An ended call's state is kept this long, so that late retries still find it
    # and change nothing. Must be at least webhook_max_age_s.
    call_ttl_s: int = 90_000
    # A new call whose first delivery is older than this is not answered: it is a
    # late retry of a call that has long gone.
    new_call_max_age_s: int = 120
    bird_timeout_s: float = 10.0
    # Bird's request limits for this workspace, per second, shared by every replica
    # (service.runtime.ratelimit keeps 90 % of them): the documented 50 GET and 500 POST
    # (PATCH counted as POST) unless Bird agreed others with you.
    bird_get_per_s: int = LIMITS_PER_S["GET"]
    bird_post_per_s: int = LIMITS_PER_S["POST"]
    # The largest request body taken (webhooks, the operator API): 413 beyond, before
    # the rest is read. Bird's deliveries are a few KiB.
    max_body_bytes: int = 1_048_576
    # For trying graphs: the moment graphs see (hours nodes, templates) at start-up,
    # running on from there; webhook signatures, timers and queues stay on real time.
    ivr_clock: datetime | None = None
    # Several worker processes behind one port: the directory (it must exist, emptied
    # before they start) where prometheus-client keeps each process's counters, for
    # GET /metrics to add them up. Unset: one process, its counters in memory.
    prometheus_multiproc_dir: Path | None = None

    @property
    def bird_limits_per_s(self) -> dict[str, int]:
        """Bird's request limits a second, by method (``service.bird.limits``)."""
        post = self.bird_post_per_s
        return {"GET": self.bird_get_per_s, "POST": post, "PATCH": post}

    @property
    def webhook_url(self) -> str:
        """The URL Bird posts to: the subscription's and every call's notification.url."""
        return self.public_base_url + "/webhooks/bird"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        settings = cls(
            bird_access_key=reader.required("BIRD_ACCESS_KEY"),
            bird_workspace_id=reader.required("BIRD_WORKSPACE_ID"),
            bird_channel_id=reader.required("BIRD_CHANNEL_ID"),
            bird_signing_key=reader.required("BIRD_SIGNING_KEY"),
            public_base_url=reader.url("PUBLIC_BASE_URL", required=True).rstrip("/"),
            redis_url=reader.redis_url("REDIS_URL"),
            redis_max_connections=reader.integer(
                "REDIS_MAX_CONNECTIONS", MAX_CONNECTIONS, minimum=8
            ),
            redis_pool_timeout_s=reader.number(
                "REDIS_POOL_TIMEOUT_S", POOL_TIMEOUT_S, minimum=0.01, maximum=60.0
            ),
            ivr_max_in_flight=reader.integer("IVR_MAX_IN_FLIGHT", 256, minimum=1),
            bird_api_url=reader.url("BIRD_API_URL", default="https://api.bird.com").rstrip("/"),
            ivr_graphs_dir=Path(reader.optional("IVR_GRAPHS_DIR") or "ivr_graphs"),
            ivr_graphs_watch_s=float(reader.integer("IVR_GRAPHS_WATCH_S", 0, minimum=0)),
            ivr_default_graph=reader.optional("IVR_DEFAULT_GRAPH"),
            ivr_admin_token=reader.optional("IVR_ADMIN_TOKEN"),
            ivr_agents_file=_path(reader.optional("IVR_AGENTS_FILE")),
            log_format=reader.choice("LOG_FORMAT", LOG_FORMATS, "json"),
            log_level=reader.choice("LOG_LEVEL", LOG_LEVELS, "info"),
            log_mask_numbers=reader.boolean("LOG_MASK_NUMBERS", default=True),
            webhook_max_age_s=reader.integer("WEBHOOK_MAX_AGE_S", 90_000, minimum=60),
            call_ttl_s=reader.integer("CALL_TTL_S", 90_000, minimum=60),
            new_call_max_age_s=reader.integer("NEW_CALL_MAX_AGE_S", 120, minimum=5),
            bird_timeout_s=float(reader.integer("BIRD_TIMEOUT_S", 10, minimum=1)),
            bird_get_per_s=reader.integer("BIRD_GET_PER_S", LIMITS_PER_S["GET"], minimum=1),
            bird_post_per_s=reader.integer("BIRD_POST_PER_S", LIMITS_PER_S["POST"], minimum=1),
            max_body_bytes=reader.integer("MAX_BODY_BYTES", 1_048_576, minimum=4096),
            ivr_clock=reader.moment("IVR_CLOCK"),
            prometheus_multiproc_dir=_path(reader.optional("PROMETHEUS_MULTIPROC_DIR")),
        )
        token = settings.ivr_admin_token
        if token is not None and len(token) < 16:  # not shown: it is a secret
            reader.malformed(f"IVR_ADMIN_TOKEN is {len(token)} characters long, fewer than 16")
        multiproc = settings.prometheus_multiproc_dir
        if multiproc is not None and not multiproc.is_dir():
            reader.malformed(f"PROMETHEUS_MULTIPROC_DIR {str(multiproc)!r} is not a directory")
        ages = ("CALL_TTL_S", "WEBHOOK_MAX_AGE_S")
        if settings.call_ttl_s < settings.webhook_max_age_s and not reader.failed(*ages):
            reader.malformed(
                "CALL_TTL_S must be at least WEBHOOK_MAX_AGE_S "
                f"({settings.call_ttl_s} < {settings.webhook_max_age_s}): late retries "
                "would find no state and could restart an ended call"
            )
        reader.done()
        return settings


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


class _Reader:
    """Reads each variable, noting what is missing or malformed instead of stopping at
    the first: a value that is neither gives its default (or a blank), and :meth:`done`
    raises one :class:`SettingsError` naming them all."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env
        self._missing: list[str] = []
        self._problems: list[str] = []
        self._failed: set[str] = set()

    def malformed(self, problem: str, name: str | None = None) -> None:
        self._problems.append(problem)
        if name is not None:
            self._failed.add(name)

    def failed(self, *names: str) -> bool:
        """Whether any of ``names`` is missing or malformed."""
        return any(name in self._failed for name in names)

    def done(self) -> None:
        if self._missing or self._problems:
            raise SettingsError(self._missing, self._problems)

    def optional(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            self._missing.append(name)
            self._failed.add(name)
            return ""
        return value

    def url(self, name: str, *, default: str | None = None, required: bool = False) -> str:
        value = self.required(name) if required or default is None else self.optional(name)
        if not value:
            return default or ""
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            self.malformed(f"{name} {value!r} is not an http(s) URL", name)
            return default or ""
        if parts.query or parts.fragment:
            self.malformed(f"{name} {value!r} has a query or fragment (it must not)", name)
            return default or ""
        return value

    def redis_url(self, name: str) -> str | None:
        value = self.optional(name)
        if value is None:
            return None
        try:
            check_url(value)
        except RedisUrlError as exc:
            # The URL is not shown: it may hold a password.
            reason = str(exc).removeprefix("REDIS_URL: ")
            self.malformed(f"{name} is not a Redis URL: {reason}", name)
            return None
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = (self.optional(name) or default).lower()
        if value not in choices:
            self.malformed(f"{name} {value!r} is not one of {', '.join(choices)}", name)
            return default
        return value

    def boolean(self, name: str, *, default: bool) -> bool:
        value = self.optional(name)
        if value is None:
            return default
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        self.malformed(f"{name} {value!r} is not true or false", name)
        return default

    def moment(self, name: str) -> datetime | None:
        value = self.optional(name)
        if value is None:
            return None
        try:
            return parse_moment(value)
        except ValueError as exc:
            self.malformed(f"{name} {exc}", name)
            return None

    def number(self, name: str, default: float, *, minimum: float, maximum: float) -> float:
        value = self.optional(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            self.malformed(f"{name} {value!r} is not a number", name)
            return default
        if not minimum <= number <= maximum:  # NaN too
            self.malformed(f"{name} {number:g} is not between {minimum:g} and {maximum:g}", name)
            return default
        return number

    def integer(self, name: str, default: int, *, minimum: int) -> int:
        value = self.optional(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            self.malformed(f"{name} {value!r} is not a whole number", name)
            return default
        if number < minimum:
            self.malformed(f"{name} {number} is less than {minimum}, its minimum", name)
            return default
        return number
