"""Settings from the environment: defaults, and one clear line for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.runtime.settings import Settings, SettingsError

REQUIRED = {
    "BIRD_ACCESS_KEY": "ak-secret",
    "BIRD_WORKSPACE_ID": "ws",
    "BIRD_CHANNEL_ID": "ch",
    "BIRD_SIGNING_KEY": "sk-secret",
    "PUBLIC_BASE_URL": "https://ivr.example.com/",
}


def test_defaults() -> None:
    settings = Settings.from_env(REQUIRED)
    assert settings.redis_url is None
    assert settings.bird_api_url == "https://api.bird.com"
    assert settings.ivr_graphs_dir == Path("ivr_graphs")
    assert settings.ivr_default_graph is None
    assert settings.log_format == "json"
    assert settings.log_level == "info"
    assert settings.log_mask_numbers is True
    assert settings.webhook_url == "https://ivr.example.com/webhooks/bird"


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            **REQUIRED,
            "REDIS_URL": "redis://localhost:6379/2",
            "BIRD_API_URL": "http://127.0.0.1:8089",
            "IVR_GRAPHS_DIR": "/srv/graphs",
            "IVR_DEFAULT_GRAPH": "support-line",
            "LOG_FORMAT": "console",
            "LOG_LEVEL": "DEBUG",
            "LOG_MASK_NUMBERS": "false",
        }
    )
    assert settings.redis_url == "redis://localhost:6379/2"
    assert settings.bird_api_url == "http://127.0.0.1:8089"
    assert settings.ivr_graphs_dir == Path("/srv/graphs")
    assert settings.ivr_default_graph == "support-line"
    assert (settings.log_format, settings.log_level) == ("console", "debug")
    assert settings.log_mask_numbers is False


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_a_missing_required_setting_is_named(name: str) -> None:
    env = {k: v for k, v in REQUIRED.items() if k != name}
    with pytest.raises(SettingsError, match=f"^missing: {name}$"):
        Settings.from_env(env)


def test_every_missing_and_malformed_setting_is_named_at_once() -> None:
    env = {"BIRD_CHANNEL_ID": "ch", "LOG_LEVEL": "loud", "LOG_MASK_NUMBERS": "maybe",
           "WEBHOOK_MAX_AGE_S": "soon", "IVR_ADMIN_TOKEN": "short-secret"}  # fmt: skip
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert str(caught.value) == (
        "missing: BIRD_ACCESS_KEY, BIRD_WORKSPACE_ID, BIRD_SIGNING_KEY, PUBLIC_BASE_URL; "
        "LOG_LEVEL 'loud' is not one of debug, info, warning, error; "
        "LOG_MASK_NUMBERS 'maybe' is not true or false; "
        "WEBHOOK_MAX_AGE_S 'soon' is not a whole number; "
        "IVR_ADMIN_TOKEN is 12 characters long, fewer than 16"
    )
    assert caught.value.missing == [
        "BIRD_ACCESS_KEY",
        "BIRD_WORKSPACE_ID",
        "BIRD_SIGNING_KEY",
        "PUBLIC_BASE_URL",
    ]
    assert "short-secret" not in str(caught.value)  # a secret is never shown


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PUBLIC_BASE_URL", "ivr.example.com"),
        ("PUBLIC_BASE_URL", "https://ivr.example.com/?a=1"),
        ("BIRD_API_URL", "ftp://bird"),
        ("REDIS_URL", "localhost:6379"),
        ("REDIS_URL", "redis+sentinel://sentinel-1:26379"),  # no /SERVICE
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "loud"),
        ("LOG_MASK_NUMBERS", "maybe"),
        ("WEBHOOK_MAX_AGE_S", "soon"),
        ("CALL_TTL_S", "1"),
        ("IVR_MAX_IN_FLIGHT", "0"),
        ("IVR_MAX_IN_FLIGHT", "many"),
        ("REDIS_MAX_CONNECTIONS", "4"),
        ("REDIS_POOL_TIMEOUT_S", "0"),
        ("REDIS_POOL_TIMEOUT_S", "nan"),
        ("REDIS_POOL_TIMEOUT_S", "soon"),
    ],
)
def test_a_malformed_setting_is_named(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"^{name} ") as caught:
        Settings.from_env({**REQUIRED, name: value})
    assert "\n" not in str(caught.value)


def test_state_must_outlive_the_retry_window() -> None:
    with pytest.raises(SettingsError, match="CALL_TTL_S must be at least WEBHOOK_MAX_AGE_S"):
        Settings.from_env({**REQUIRED, "CALL_TTL_S": "3600", "WEBHOOK_MAX_AGE_S": "7200"})


def test_secrets_stay_out_of_repr() -> None:
    text = repr(Settings.from_env(REQUIRED))
    assert "ak-secret" not in text
    assert "sk-secret" not in text


def test_settings_are_frozen() -> None:
    settings = Settings.from_env(REQUIRED)
    with pytest.raises(AttributeError):
        settings.log_level = "debug"  # type: ignore[misc]


def test_the_agents_file_is_optional_and_read_as_a_path() -> None:
    assert Settings.from_env(REQUIRED).ivr_agents_file is None
    assert Settings.from_env({**REQUIRED, "IVR_AGENTS_FILE": "  "}).ivr_agents_file is None
    settings = Settings.from_env({**REQUIRED, "IVR_AGENTS_FILE": " /etc/ivr/agents.json "})
    assert settings.ivr_agents_file == Path("/etc/ivr/agents.json")


def test_the_body_limit_is_a_setting_with_a_floor() -> None:
    base = {"BIRD_ACCESS_KEY": "k", "BIRD_WORKSPACE_ID": "w", "BIRD_CHANNEL_ID": "c",
            "BIRD_SIGNING_KEY": "s", "PUBLIC_BASE_URL": "https://ivr.example.com"}  # fmt: skip
    assert Settings.from_env(base).max_body_bytes == 1_048_576
    assert Settings.from_env({**base, "MAX_BODY_BYTES": "65536"}).max_body_bytes == 65536
    with pytest.raises(SettingsError, match="MAX_BODY_BYTES"):
        Settings.from_env({**base, "MAX_BODY_BYTES": "10"})


def test_overload_settings_have_defaults_and_are_read() -> None:
    defaults = Settings.from_env(REQUIRED)
    assert (defaults.ivr_max_in_flight, defaults.redis_max_connections) == (256, 128)
    assert defaults.redis_pool_timeout_s == 2.0
    overload = {"IVR_MAX_IN_FLIGHT": "64", "REDIS_MAX_CONNECTIONS": "32",
                "REDIS_POOL_TIMEOUT_S": "0.5"}  # fmt: skip
    read = Settings.from_env({**REQUIRED, **overload})
    assert (read.ivr_max_in_flight, read.redis_max_connections) == (64, 32)
    assert read.redis_pool_timeout_s == 0.5
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**REQUIRED, "REDIS_POOL_TIMEOUT_S": "120"})
    assert str(caught.value) == "REDIS_POOL_TIMEOUT_S 120 is not between 0.01 and 60"


def test_birds_request_limits_are_the_documented_ones_unless_set() -> None:
    defaults = Settings.from_env(REQUIRED)
    assert defaults.bird_limits_per_s == {"GET": 50, "POST": 500, "PATCH": 500}
    raised = Settings.from_env({**REQUIRED, "BIRD_GET_PER_S": "100", "BIRD_POST_PER_S": "2000"})
    assert raised.bird_limits_per_s == {"GET": 100, "POST": 2000, "PATCH": 2000}
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**REQUIRED, "BIRD_POST_PER_S": "0"})
    assert "BIRD_POST_PER_S" in str(caught.value)
