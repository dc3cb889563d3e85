"""Bird on a bad day, end to end: the simulator injects one fault at one place and
the call still ends where its graph says, without Bird doing anything twice.

Each test is a root cause of lost calls found in a chaos run (issue 7); each failed
before the outbox, the retries and the timers."""

from __future__ import annotations

from redis.asyncio import Redis

from service.cli.demo import DAN
from service.sim import CallerScript
from service.sim.faults import DROPPED_NOT_PERFORMED, ERROR_503, RATE_LIMITED, SLOW
from service.sim.transcript import CALLER_HUNG_UP
from tests.e2e.test_e2e import NUMBER, stack

# A short timeout, so that "answered too late" happens within a test.
FAST = {"bird_timeout_s": 1.0}


async def test_a_prompt_bird_fails_to_take_is_sent_again_and_the_caller_is_not_hung_up(
    redis: Redis,
) -> None:
    """Root cause 1: one failed command used to hang up the caller."""
    async with stack(redis, seated=(DAN,)) as s:
        s.sim.inject("gather", ERROR_503, RATE_LIMITED, ERROR_503, ERROR_503)
        call_id, transcript = await s.call(CallerScript("retry", "+31612345678", NUMBER, ("2",)))
    assert transcript.reached == DAN.address
    gathers = [r for r in s.sim.requests_for(call_id) if r.operation == "gather"]
    assert [r.fault for r in gathers] == [ERROR_503, RATE_LIMITED, ERROR_503, ERROR_503, None]
    assert s.sim.performed(call_id, "gather") == 1


async def test_an_answer_bird_performed_but_answered_too_late_is_not_sent_twice(
    redis: Redis,
) -> None:
    """Root cause 1: a timed-out answer used to reject the call."""
    async with stack(redis, service_options=FAST, seated=(DAN,)) as s:
        s.sim.inject("answer", SLOW)
        call_id, transcript = await s.call(CallerScript("slow", "+31612345678", NUMBER, ("2",)))
    assert transcript.reached == DAN.address
    assert s.sim.performed(call_id, "answer") == 1
    assert "hangup" not in s.commands_to(call_id)


async def test_an_answer_that_never_reached_bird_is_sent_again(redis: Redis) -> None:
    """A command lost on the way (no answer, not performed) is read back and resent."""
    # The caller lets it ring longer than the answer's timeout and retry take.
    async with stack(
        redis, service_options=FAST, answer_timeout_min_real_s=10.0, seated=(DAN,)
    ) as s:
        s.sim.inject("answer", DROPPED_NOT_PERFORMED)
        call_id, transcript = await s.call(CallerScript("lost", "+31612345678", NUMBER, ("2",)))
    assert transcript.reached == DAN.address
    assert s.sim.performed(call_id, "answer") == 1
    assert [r.fault for r in s.sim.requests_for(call_id) if r.operation == "answerCall"] == [
        DROPPED_NOT_PERFORMED, None,
    ]  # fmt: skip


async def test_a_hangup_bird_fails_to_take_is_sent_until_it_does(redis: Redis) -> None:
    """Root cause 2: a failed hang-up left the caller on a silent line."""
    async with stack(redis) as s:
        s.sim.inject("hangup", ERROR_503, ERROR_503, ERROR_503)
        call_id, transcript = await s.call(CallerScript("silent", "+31611122233", NUMBER, ()))
    assert transcript.ended
    assert transcript.texts("heard")[-1] == "Goodbye."
    assert CALLER_HUNG_UP not in [entry.kind for entry in transcript.entries]
    hangups = [r for r in s.sim.requests_for(call_id) if r.operation == "hangupCall"]
    assert [r.fault for r in hangups] == [ERROR_503, ERROR_503, ERROR_503, None]
    assert s.sim.performed(call_id, "hangup") == 1
