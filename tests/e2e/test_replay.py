"""``ivr replay``: a call recorded through the simulator, replayed against drafts."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from redis.asyncio import Redis

from service.cli.main import main
from service.sim import CallerScript
from tests.e2e.test_e2e import NUMBER, stack
from tests.paths import SHIPPED_GRAPHS


def draft_of_the_support_line(tmp_path: Path, options: dict[str, str] | None = None) -> Path:
    """A copy of the shipped graphs (queues.json included), with the main menu's
    options replaced when given."""
    folder = tmp_path / "draft"
    shutil.copytree(SHIPPED_GRAPHS, folder)
    path = folder / "support-line.json"
    if options is not None:
        document = json.loads(path.read_text())
        document["nodes"]["main-menu"]["options"] = options
        path.write_text(json.dumps(document, indent=2))
    return path


async def replay(
    capsys: pytest.CaptureFixture[str], redis_url: str, call_id: str, draft: Path, *more: str
) -> tuple[int, str, str]:
    argv = ["replay", call_id, "--graph", str(draft), "--redis-url", redis_url, *more]
    code = await asyncio.to_thread(main, argv)
    out, err = capsys.readouterr()
    return code, out, err


async def test_a_recorded_call_replays_against_a_changed_draft_and_shows_where_it_diverges(
    redis: Redis, redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A caller presses a wrong key, then 2 for a technician; nobody is seated, so
    # they leave a voicemail (the recorded path).
    async with stack(redis) as s:
        call_id, transcript = await s.call(
            CallerScript("replayed", "+31612345670", NUMBER, ("7", "2"))
        )
    assert transcript.texts("pressed") == ["7", "2"]

    same = draft_of_the_support_line(tmp_path / "same")
    code, out, _ = await replay(capsys, redis_url, call_id, same)
    assert code == 0, out
    assert "the draft walks the same path as the call" in out

    swapped = draft_of_the_support_line(tmp_path / "swapped", {"1": "tech", "2": "account-number"})
    code, out, _ = await replay(capsys, redis_url, call_id, swapped)
    assert code == 1
    assert "the caller pressed 2 at main-menu: tech" in out
    assert "the draft: account-number" in out
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith("the draft diverges at step")
    assert "the caller went tech" in verdict
    assert "the draft goes account-number" in verdict

    code, out, _ = await replay(capsys, redis_url, call_id, swapped, "--json")
    found = json.loads(out)
    assert (code, found["diverges"]) == (1, True)
    assert found["divergence"]["recorded"] == ["tech"]
    assert found["divergence"]["draft"] == ["account-number"]


async def test_replay_of_an_unknown_call_or_without_redis_is_one_clear_error(
    redis_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    draft = draft_of_the_support_line(tmp_path)
    code, out, err = await replay(capsys, redis_url, "0" * 32, draft)
    assert (code, out) == (2, "")
    assert err.startswith("ivr: error: no journal for call")
    assert "Traceback" not in err
    monkeypatch.delenv("REDIS_URL", raising=False)
    code = await asyncio.to_thread(main, ["replay", "0" * 32, "--graph", str(draft)])
    assert code == 2
    assert "set REDIS_URL" in capsys.readouterr().err
