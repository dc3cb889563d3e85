"""What a new user met (issue 10), as they met it: ``ivr simulate`` errors printed once,
keys and numbers checked, plain JSON texts and colour in a terminal; ``ivr serve`` ports
checked; ``ivr demo`` deaf to a production environment."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from service.cli import demo
from tests.paths import SHIPPED_GRAPHS, ivr

SUPPORT = "ivr_graphs/support-line.json"
OPEN = ("--at", "2026-12-01T10:00+01:00")
ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def env(**extra: str) -> dict[str, str]:
    """The user's environment, without colour settings unless given."""
    found = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    return {**found, **extra}


# -- ivr simulate ----------------------------------------------------------------------


def test_a_script_that_does_not_fit_prints_its_error_once_on_stderr() -> None:
    done = ivr("simulate", SUPPORT, "--keys", "1", *OPEN, env=env())
    assert done.returncode == 1
    assert done.stderr == (
        "ivr simulate: node account-number asks for input and the script has none left\n"
    )
    assert "asks for input" not in done.stdout  # not in the transcript as well
    assert "error" not in done.stdout
    # The transcript ends where the call stopped: the prompt that asked.
    last = done.stdout.splitlines()[-1].split()
    assert last[:2] == ["account-number", "hears"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--keys", "abc"], "--keys 'abc': 'abc' is not keys; each entry is keys (digits 0-9, "
                            "* and #) or _ for silence, comma-separated: 1,4321#,_,2"),
        (["--keys", "1,x2,_"], "--keys '1,x2,_': 'x2' is not keys"),
        (["--keys", "1,,2"], "--keys '1,,2': entry 2 is empty"),
        (["--caller", "abc"], "--caller: 'abc' is not an E.164 number (+ and 7-15 digits, e.g. "
                              "+31612345678)"),
        (["--caller", "0612345678"], "--caller: '0612345678' is not an E.164 number"),
        (["--called", "+31"], "--called: '+31' is not an E.164 number"),
    ],
)  # fmt: skip
def test_keys_and_numbers_that_are_not_are_refused(args: list[str], message: str) -> None:
    done = ivr("simulate", SUPPORT, *OPEN, *args, env=env())
    assert done.returncode == 2
    assert done.stderr.startswith(f"ivr: error: {message}")
    assert len(done.stderr.splitlines()) == 1
    assert done.stdout == ""


def test_good_keys_and_numbers_are_taken() -> None:
    done = ivr("simulate", SUPPORT, *OPEN, "--keys", " 1, 4321# ,123456#", "--caller",
               "+31612345678", "--called", "+31970102030", env=env())  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "caller +31612345678, our number +31970102030" in done.stdout
    star = ivr("simulate", SUPPORT, *OPEN, "--keys", "_,*,_,#", env=env())
    assert "is not keys" not in star.stderr


def test_json_texts_are_plain() -> None:
    done = ivr("simulate", SUPPORT, *OPEN, "--keys", "1,4321#,123456#", "--json", env=env())
    assert done.returncode == 0, done.stderr
    lines = json.loads(done.stdout)["lines"]
    assert {"node": "welcome", "kind": "hears", "text": "Thanks for calling Acme."} in lines
    assert {"node": "main-menu", "kind": "presses", "text": "1"} in lines
    holds = [line for line in lines if line["kind"] == "hold"]
    assert holds[0]["text"].startswith("All our billing specialists are busy.")
    assert holds[0]["detail"] == "for 30 s, until an agent is free"
    assert not [line for line in lines if '"' in line["text"]]


def test_the_text_transcript_shows_what_was_heard_without_quote_marks() -> None:
    done = ivr("simulate", SUPPORT, *OPEN, "--keys", "1,4321#,123456#", env=env())
    assert "  welcome         hears       Thanks for calling Acme.\n" in done.stdout
    assert '"' not in done.stdout


def test_the_transcript_is_coloured_in_a_terminal_only() -> None:
    args = ("simulate", SUPPORT, *OPEN, "--keys", "1,4321#,123456#")
    plain = ivr(*args, env=env())  # a pipe: no colour
    coloured = ivr(*args, env=env(FORCE_COLOR="1"))  # as in a terminal
    refused = ivr(*args, env=env(FORCE_COLOR="1", NO_COLOR="1"))
    assert ESCAPE.search(plain.stdout) is None
    assert ESCAPE.search(refused.stdout) is None
    assert ESCAPE.sub("", coloured.stdout) == plain.stdout
    assert "presses     \x1b[1m4321#\x1b[0m" in coloured.stdout  # the caller's keys: bold
    assert "hears       Thanks for calling Acme.\n" in coloured.stdout  # heard: plain
    assert coloured.stdout.splitlines()[-1] == (
        "\x1b[32mended: agent_connected at node billing after 7 steps\x1b[0m"
    )


def test_errors_are_red_in_a_terminal() -> None:
    short = ivr("simulate", SUPPORT, "--keys", "1", *OPEN, env=env(FORCE_COLOR="1"))
    assert short.stderr == (
        "\x1b[1;31mivr simulate: node account-number asks for input and the script has none "
        "left\x1b[0m\n"
    )
    bad = ivr("simulate", SUPPORT, "--keys", "abc", env=env(FORCE_COLOR="1"))
    assert bad.stderr.startswith("\x1b[1;31mivr: error: --keys 'abc'")


# -- ivr serve --port ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("port", "shown"), [("99999", "99999"), ("65536", "65536"), ("-1", "-1"), ("http", "'http'")]
)
def test_serve_refuses_a_port_that_is_not_one(port: str, shown: str) -> None:
    done = ivr("serve", "--port", port, env=env())  # before any setting is read
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1] == (
        f"ivr serve: error: argument --port: {shown} is not a port number (0-65535)"
    )
    assert done.stdout == ""


# -- ivr demo --------------------------------------------------------------------------


def test_the_demo_loads_the_shipped_graphs_whatever_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    production = tmp_path / "production-graphs"
    production.mkdir()
    (production / "other.json").write_text("{")  # would not load
    monkeypatch.setenv("IVR_GRAPHS_DIR", str(production))
    monkeypatch.chdir(tmp_path)  # no ivr_graphs/ here either
    assert demo.shipped_graphs() == SHIPPED_GRAPHS
    graphs = demo._load_graphs()
    assert set(graphs.graphs) == {"support-line", "appointment-reminder"}


def test_the_demo_help_says_it_ignores_redis_url_and_the_graphs_dir() -> None:
    text = " ".join(ivr("demo", "--help", env=env()).stdout.split())
    assert "Uses REDIS_URL when set" not in text
    assert ("Always runs on its own embedded Redis (gone when it ends) and the shipped graphs "
            "(ivr_graphs/), whatever REDIS_URL and IVR_GRAPHS_DIR say.") in text  # fmt: skip
