"""Configuration: every environment variable the service reads, read here once.

:func:`Settings.from_env` returns a frozen :class:`Settings` or raises
:class:`SettingsError` naming the first variable that is missing or malformed.
Secrets are kept out of ``repr`` so that logging a settings object never leaks them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

LOG_FORMATS = ("json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")


class SettingsError(Exception):
    """A setting is missing or malformed. The message is one line naming it."""


@dataclass(frozen=True)
class Settings:
    bird_access_key: str = field(repr=False)
    bird_workspace_id: str
    bird_channel_id: str
    bird_signing_key: str = field(repr=False)
    public_base_url: str
    redis_url: str | None = None
    bird_api_url: str = "https://api.bird.com"
    ivr_graphs_dir: Path = Path("ivr_graphs")
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
    # The largest request body taken (webhooks, the operator API): 413 beyond, before
    # the rest is read. Bird's deliveries are a few KiB.
    max_body_bytes: int = 1_048_576

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
            bird_api_url=reader.url("BIRD_API_URL", default="https://api.bird.com").rstrip("/"),
            ivr_graphs_dir=Path(reader.optional("IVR_GRAPHS_DIR") or "ivr_graphs"),
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
            max_body_bytes=reader.integer("MAX_BODY_BYTES", 1_048_576, minimum=4096),
        )
        token = settings.ivr_admin_token
        if token is not None and len(token) < 16:
            raise SettingsError("IVR_ADMIN_TOKEN must be at least 16 characters long")
        if settings.call_ttl_s < settings.webhook_max_age_s:
            raise SettingsError(
                "CALL_TTL_S must be at least WEBHOOK_MAX_AGE_S "
                f"({settings.call_ttl_s} < {settings.webhook_max_age_s}): late retries "
                "would find no state and could restart an ended call"
            )
        return settings


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def optional(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def required(self, name: str) -> str:
        value = self.optional(name)
        if value is None:
            raise SettingsError(f"{name} is required but not set")
        return value

    def url(self, name: str, *, default: str | None = None, required: bool = False) -> str:
        value = self.optional(name)
        if value is None:
            if required or default is None:
                raise SettingsError(
                    f"{name} is required but not set (e.g. https://ivr.example.com)"
                )
            return default
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SettingsError(f"{name} must be an http(s) URL, got {value!r}")
        if parts.query or parts.fragment:
            raise SettingsError(f"{name} must not have a query or fragment, got {value!r}")
        return value

    def redis_url(self, name: str) -> str | None:
        value = self.optional(name)
        if value is None:
            return None
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise SettingsError(f"{name} must be a redis://, rediss:// or unix:// URL")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = (self.optional(name) or default).lower()
        if value not in choices:
            raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
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
        raise SettingsError(f"{name} must be true or false, got {value!r}")

    def integer(self, name: str, default: int, *, minimum: int) -> int:
        value = self.optional(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(f"{name} must be a whole number, got {value!r}") from None
        if number < minimum:
            raise SettingsError(f"{name} must be at least {minimum}, got {number}")
        return number
