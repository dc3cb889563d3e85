"""The outbox against a real Redis: a call's pending command is committed with its
state, acknowledged when Bird has it, retried when Bird surely did not perform it,
read back when its outcome is late, and taken over when its worker died.

Bird is a MockTransport scripted per command; time is a clock the test moves.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from service.bird.deliveries import Delivery
from service.core import actions
from service.core.state import Outcome, Phase
from service.runtime import keys, outbox
from service.runtime.calls import CallHandler
from service.runtime.outbox import Pending
from service.runtime.store import CallStore
from service.runtime.timers import CLAIM_LEASE_S, TimerLoop
from tests.runtime.test_calls import completed, status
from tests.sample_graphs import support_line_with_transfers
from tests.support import handler_for, recording_bird_calls

GRAPHS = support_line_with_transfers()  # the outbox's tests: a transfer, not a queue
Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def pass_(self, seconds: float) -> None:
        self.now += seconds


class ScriptedBird:
    """Answers each command from its script in turn (then 202), and a call's GET
    with ``call_status``. ``performed`` counts what Bird did, per command."""

    def __init__(self, call_status: str = "ringing", **script: list[Answer]) -> None:
        self.script = {name: list(answers) for name, answers in script.items()}
        self.call_status = call_status
        self.leg_status = "ringing"  # of an agent's leg a bridge created
        self.failing_reads = 0  # so many next GETs answer 503
        self.sent: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        name = request.url.path.rsplit("/", 1)[-1]
        if request.method == "GET" and self.failing_reads:
            self.failing_reads -= 1
            return unavailable()
        if request.method == "GET":
            status = self.leg_status if name.startswith("leg-") else self.call_status
            return httpx.Response(200, json={"id": name, "status": status})
        self.sent.append(name)
        if name == "calls":  # createCall
            return httpx.Response(202, json={"id": str(uuid.uuid4()), "status": "queued"})
        if name == "bridge" and not self.script.get(name):
            leg = {"id": f"leg-{uuid.uuid4()}", "status": "starting"}
            return httpx.Response(202, json={"command": {"id": "cmd"}, "bridgedCall": leg})
        answers = self.script.get(name) or []
        answer = answers.pop(0) if answers else httpx.Response(202, json={"id": "cmd"})
        return answer(request) if callable(answer) else answer


def unavailable() -> httpx.Response:
    return httpx.Response(503, json={"code": "unavailable", "message": "try later"})


def no_answer(request: httpx.Request) -> httpx.Response:
    raise httpx.ReadTimeout("no answer", request=request)


class WorkerDied(BaseException):
    """A worker killed while it sends (nothing after it runs)."""


def dies(request: httpx.Request) -> httpx.Response:
    raise WorkerDied


class Call:
    """One call of the support line through a handler with a scripted Bird."""

    def __init__(self, redis: Redis, bird: ScriptedBird, clock: Clock) -> None:
        self.id = str(uuid.uuid4())
        self.bird = bird
        self.clock = clock
        self.calls = recording_bird_calls(bird)  # type: ignore[arg-type]
        self.store = CallStore(redis, ended_ttl_s=600)
        self.redis = redis
        self.handler: CallHandler = handler_for(
            redis, self.calls, GRAPHS, store=self.store, clock=clock
        )
        self.updated = clock.now

    def status(self, value: str, **fields: Any) -> Delivery:
        self.updated += 1
        return status(self.id, value, updated=self.updated, **fields)

    def completed(self, command: str, **result: Any) -> Delivery:
        self.updated += 1
        return completed(command, updated=self.updated, call_id=self.id, **result)

    async def answer(self) -> None:
        """Bird offers the call and, once answered, reports it connected."""
        await self.handler.handle(self.status("starting"))
        await self.handler.handle(self.status("ongoing"))

    async def pending(self) -> Pending | None:
        stored = await self.store.load_call(self.id)
        assert stored is not None
        return stored.pending

    async def timer(self) -> float | None:
        score = await self.redis.zscore(keys.timers(), self.id)
        return None if score is None else score / 1000

    async def when_due(self) -> None:
        """Move time to when the pending command is due, and fire its timer."""
        pending = await self.pending()
        assert pending is not None
        self.clock.now = max(self.clock.now, pending.until + 0.001)
        await self.handler.fire(self.id)


@pytest.fixture
def clock() -> Clock:
    return Clock()


async def test_an_answered_call_waits_on_its_prompt_with_a_timer(
    redis: Redis, clock: Clock
) -> None:
    call = Call(redis, ScriptedBird(), clock)
    await call.handler.handle(call.status("starting"))
    answer = await call.pending()
    assert answer is not None
    assert (type(answer.action).__name__, answer.status) == ("Answer", "sent")
    await call.handler.handle(call.status("ongoing"))
    prompt = await call.pending()
    assert prompt is not None
    assert (type(prompt.action).__name__, prompt.status) == ("Speak", "sent")
    assert prompt.seq > answer.seq
    assert await call.timer() == pytest.approx(prompt.until, abs=0.002)
    assert call.bird.sent == ["answer", "say"]


async def test_a_step_that_ends_the_call_leaves_nothing_pending_and_no_timer(
    redis: Redis, clock: Clock
) -> None:
    call = Call(redis, ScriptedBird(), clock)
    await call.handler.handle(call.status("starting"))
    await call.handler.handle(call.status("completed", hangup_source="caller"))
    assert await call.pending() is None
    assert await call.timer() is None


async def test_a_5xx_on_a_prompt_sends_it_again_later_and_keeps_the_caller(
    redis: Redis, clock: Clock
) -> None:
    """Root cause 1: one failed command no longer hangs up the caller."""
    call = Call(redis, ScriptedBird(say=[unavailable()]), clock)
    await call.answer()
    queued = await call.pending()
    assert queued is not None
    assert (queued.status, call.bird.sent) == ("queued", ["answer", "say"])
    assert queued.until > clock.now
    await call.when_due()
    sent = await call.pending()
    assert sent is not None
    assert (sent.status, sent.attempts) == ("sent", 2)
    assert call.bird.sent == ["answer", "say", "say"]
    state = await call.store.load(call.id)
    assert state is not None
    assert not state.ended


async def test_a_timed_out_answer_is_settled_by_reading_the_call_back(
    redis: Redis, clock: Clock
) -> None:
    """Root cause 1: a timed-out answer used to reject the call."""
    call = Call(redis, ScriptedBird(call_status="ongoing", answer=[no_answer]), clock)
    await call.handler.handle(call.status("starting"))
    pending = await call.pending()
    assert pending is not None
    assert pending.status == "sent"  # Bird shows the call answered: done, not sent twice
    assert call.bird.sent == ["answer"]
    state = await call.store.load(call.id)
    assert state is not None
    assert state.phase == Phase.ANSWERING


async def test_a_command_bird_never_takes_is_given_up_after_the_horizon_then_hung_up(
    redis: Redis, clock: Clock
) -> None:
    call = Call(redis, ScriptedBird(say=[unavailable() for _ in range(50)]), clock)
    start = clock.now
    await call.answer()
    while (pending := await call.pending()) is not None and not isinstance(
        pending.action, actions.Hangup
    ):
        await call.when_due()
    state = await call.store.load(call.id)
    assert state is not None
    assert (state.phase, state.outcome) == (Phase.ENDED, Outcome.BIRD_REFUSED)
    says = call.bird.sent.count("say")
    assert says >= 4
    assert clock.now - start <= outbox.RETRY_HORIZON_S
    assert call.bird.sent[-1] == "hangup"
    assert await call.pending() is None  # Bird took the hang-up


async def test_a_hangup_bird_does_not_take_is_sent_until_it_does(
    redis: Redis, clock: Clock
) -> None:
    """Root cause 2: a failed hang-up left the caller on a silent line."""
    bird = ScriptedBird(
        call_status="ongoing",
        say=[httpx.Response(400, json={"code": "invalid", "message": "no"})],
        hangup=[unavailable() for _ in range(5)],
    )
    call = Call(redis, bird, clock)
    await call.answer()
    for _ in range(5):
        pending = await call.pending()
        assert pending is not None
        assert (type(pending.action).__name__, pending.status) == ("Hangup", "queued")
        await call.when_due()
    assert bird.sent == ["answer", "say", *["hangup"] * 6]
    assert await call.pending() is None
    assert await call.timer() is None


async def test_a_worker_that_died_before_its_answer_is_replaced_by_birds_redelivery(
    redis: Redis, clock: Clock
) -> None:
    """Root cause 3: the redelivery of a committed step was taken as a duplicate and
    its command never sent."""
    call = Call(redis, ScriptedBird(answer=[dies]), clock)
    starting = call.status("starting")
    with pytest.raises(WorkerDied):
        await call.handler.handle(starting)
    held = await call.pending()
    assert held is not None
    assert held.status == "sending"
    # Bird delivers again (no 2xx came) while the lease may still be held: wait.
    assert (await call.handler.handle(starting)).status == "duplicate"
    assert call.bird.sent == ["answer"]
    clock.pass_(outbox.LEASE_S + 1)
    assert (await call.handler.handle(starting)).status == "duplicate"
    assert call.bird.sent == ["answer", "answer"]  # read back (ringing), then answered
    answered = await call.pending()
    assert answered is not None
    assert (answered.status, answered.attempts) == ("sent", 2)


async def test_a_prompt_whose_worker_died_is_sent_again_only_once_its_outcome_is_late(
    redis: Redis, clock: Clock
) -> None:
    """Root cause 3 for a prompt: Bird may have played it; wait for its outcome first."""
    bird = ScriptedBird(call_status="ongoing", say=[dies])
    call = Call(redis, bird, clock)
    await call.handler.handle(call.status("starting"))
    ongoing = call.status("ongoing")
    with pytest.raises(WorkerDied):
        await call.handler.handle(ongoing)
    clock.pass_(outbox.LEASE_S + 1)
    await call.handler.handle(ongoing)
    unsure = await call.pending()
    assert unsure is not None
    assert unsure.status == "unsure"
    assert bird.sent == ["answer", "say"]
    await call.when_due()
    assert bird.sent == ["answer", "say", "say"]


async def test_a_prompt_that_bird_may_have_played_is_not_sent_again_when_it_ends(
    redis: Redis, clock: Clock
) -> None:
    bird = ScriptedBird(call_status="ongoing", say=[no_answer])
    call = Call(redis, bird, clock)
    await call.answer()
    unsure = await call.pending()
    assert unsure is not None
    assert unsure.status == "unsure"
    await call.handler.handle(call.completed("say"))  # it was played after all
    menu = await call.pending()
    assert menu is not None
    assert type(menu.action).__name__ == "Gather"
    assert bird.sent == ["answer", "say", "gather"]


async def test_a_late_outcome_on_a_call_that_is_over_ends_the_call(
    redis: Redis, clock: Clock
) -> None:
    bird = ScriptedBird(call_status="ongoing")
    call = Call(redis, bird, clock)
    await call.answer()
    bird.call_status = "completed"  # and its delivery never comes
    await call.when_due()
    state = await call.store.load(call.id)
    assert state is not None
    assert (state.phase, state.outcome) == (Phase.ENDED, Outcome.ENDED_BY_BIRD)
    assert await call.pending() is None
    assert bird.sent == ["answer", "say"]


async def test_the_timer_loop_fires_due_calls_once_and_leases_them(
    redis: Redis, clock: Clock
) -> None:
    fired: list[str] = []

    async def handle(call_id: str) -> None:
        fired.append(call_id)

    due, later = f"due-{uuid.uuid4()}", f"later-{uuid.uuid4()}"
    await redis.zadd(keys.timers(), {due: int(clock.now * 1000) - 1})
    await redis.zadd(keys.timers(), {later: int((clock.now + 60) * 1000)})
    loop = TimerLoop(redis, handle, clock=clock)
    await loop.fire_due()
    assert due in fired
    assert later not in fired
    leased = await redis.zscore(keys.timers(), due)
    assert leased == pytest.approx((clock.now + CLAIM_LEASE_S) * 1000, abs=2)
    fired.clear()
    await loop.fire_due()
    assert due not in fired  # not again while its lease runs
    await redis.zrem(keys.timers(), due, later)


EVERY_ACTION: list[actions.Action] = [
    actions.Answer(),
    actions.Speak(actions.Say("Hello {{caller}}.", locale="en-GB", voice="female")),
    actions.Speak(actions.Play(("https://cdn.example.com/a.wav", "https://cdn.example.com/b.wav"))),
    actions.Gather(actions.Say("Press 1."), max_digits=8, timeout_s=5, end_key="#"),
    actions.Bridge("+31201234567", "+31970102030", 20, record=True),
    actions.Record(120, "#", beep=True, transcribe=False),
    actions.HttpRequest("POST", "https://crm.test/x", {"X-Key": "v"}, {"a": [1, {"b": None}]}, 900),
    actions.Hangup(),
]


@pytest.mark.parametrize("action", EVERY_ACTION, ids=lambda a: type(a).__name__)
def test_every_action_survives_the_outbox_as_json(action: actions.Action) -> None:
    pending = Pending(7, action, "queued", until=12.5, since=10.0, attempts=3)
    assert Pending.from_json(pending.to_json()) == pending


def test_retry_delays_grow_with_jitter_and_stay_under_their_cap() -> None:
    rng = random.Random(1)
    delays = [outbox.retry_delay_s(n, rng) for n in range(12)]
    assert delays[0] < delays[3] < delays[6]
    assert all(d <= outbox.RETRY_CAP_S for d in delays)
    assert max(delays) > outbox.RETRY_CAP_S / 2
    assert len({round(d, 6) for d in delays[8:]}) == 4  # capped, yet never in lockstep


def test_a_commands_outcome_is_awaited_for_its_own_time_and_a_margin() -> None:
    window = outbox.outcome_window_s
    bridge = actions.Bridge("+31201234567", None, 20)
    assert window(bridge) == 20 + outbox.MARGIN_S
    long_text = actions.Speak(actions.Say("x" * 300))
    assert window(long_text) == 30 + outbox.MARGIN_S
    gather = actions.Gather(actions.Say(""), max_digits=2, timeout_s=5)
    assert window(gather) == 15 + outbox.MARGIN_S


async def test_a_timer_whose_handling_fails_does_not_stop_the_others(
    redis: Redis, clock: Clock
) -> None:
    fired: list[str] = []

    async def handle(call_id: str) -> None:
        if call_id.startswith("broken"):
            raise ValueError("a bug in one call")
        fired.append(call_id)

    broken, fine = f"broken-{uuid.uuid4()}", f"fine-{uuid.uuid4()}"
    await redis.zadd(keys.timers(), {broken: int(clock.now * 1000) - 2})
    await redis.zadd(keys.timers(), {fine: int(clock.now * 1000) - 1})
    await TimerLoop(redis, handle, clock=clock).fire_due()
    assert fine in fired
    assert await redis.zscore(keys.timers(), broken) is not None  # it fires again later
    await redis.zrem(keys.timers(), broken, fine)


@pytest.mark.parametrize(
    ("bird_shows", "phase", "outcome", "sent"),
    [
        ("ongoing", Phase.PROMPTING, None, ["calls", "say"]),  # answered: the graph runs
        ("no-answer", Phase.ENDED, Outcome.NOT_ANSWERED_NO_ANSWER, ["calls"]),
    ],
)
async def test_an_outbound_call_whose_news_never_comes_is_read_back_from_bird(
    redis: Redis, clock: Clock, bird_shows: str, phase: Phase, outcome: Outcome | None,
    sent: list[str],
) -> None:  # fmt: skip
    bird = ScriptedBird(call_status="ringing")
    call = Call(redis, bird, clock)
    call.id = await call.handler.place_outbound(
        GRAPHS.graphs["support-line"], to="+31612345678", from_=None, variables={},
        scheduled_for=None,
    )  # fmt: skip
    dialling = await call.pending()
    assert dialling is not None
    assert (type(dialling.action).__name__, dialling.status) == ("Dial", "sent")
    await call.when_due()  # still ringing: look again later, nothing sent
    assert bird.sent == ["calls"]
    bird.call_status = bird_shows  # and its delivery is lost
    await call.when_due()
    state = await call.store.load(call.id)
    assert state is not None
    assert (state.phase, state.outcome) == (phase, outcome)
    assert bird.sent == sent


async def test_a_prompt_bird_took_whose_end_never_comes_is_taken_as_played(
    redis: Redis, clock: Clock
) -> None:
    bird = ScriptedBird(call_status="ongoing")
    call = Call(redis, bird, clock)
    await call.answer()
    await call.when_due()  # "Thanks for calling" was taken; its end is lost
    assert bird.sent == ["answer", "say", "gather"]  # the menu, never the welcome again
    state = await call.store.load(call.id)
    assert state is not None
    assert (state.node, state.phase) == ("main-menu", Phase.GATHERING)


async def dial_technician(call: Call) -> None:
    """The support line's caller presses 2: a bridge to the technician, which Bird takes."""
    await call.answer()
    await call.handler.handle(call.completed("say"))
    await call.handler.handle(call.completed("gather", keys="2"))
    bridge = await call.pending()
    assert bridge is not None
    assert (type(bridge.action).__name__, bridge.status) == ("Bridge", "sent")
    assert bridge.leg is not None


async def test_a_bridge_bird_took_is_never_sent_again_while_its_leg_rings(
    redis: Redis, clock: Clock
) -> None:
    bird = ScriptedBird(call_status="ongoing")
    call = Call(redis, bird, clock)
    await dial_technician(call)
    await call.when_due()
    await call.when_due()  # the agent's leg still rings, its news lost: wait
    assert bird.sent.count("bridge") == 1
    waiting = await call.pending()
    assert waiting is not None
    assert (waiting.status, waiting.attempts, waiting.looks) == ("sent", 1, 2)
    bird.leg_status = "no-answer"
    await call.when_due()
    assert bird.sent.count("bridge") == 1
    state = await call.store.load(call.id)
    assert state is not None
    assert state.node == "no-agents"  # the transfer's on_failure: voicemail next


async def test_a_bridge_bird_took_whose_agent_answered_connects_the_call(
    redis: Redis, clock: Clock
) -> None:
    bird = ScriptedBird(call_status="ongoing")
    call = Call(redis, bird, clock)
    await dial_technician(call)
    bird.leg_status = "ongoing"
    await call.when_due()
    state = await call.store.load(call.id)
    assert state is not None
    assert state.phase == Phase.CONNECTED
    assert await call.pending() is None


async def test_a_command_retried_after_a_look_gets_a_whole_horizon_again(
    redis: Redis, clock: Clock
) -> None:
    """Waiting for an unsure prompt's outcome does not eat its retry horizon."""
    bird = ScriptedBird(call_status="ongoing", say=[no_answer, unavailable(), unavailable()])
    call = Call(redis, bird, clock)
    await call.answer()
    unsure = await call.pending()
    assert unsure is not None
    assert unsure.until - clock.now > outbox.RETRY_HORIZON_S / 4  # it waits its outcome
    await call.when_due()  # read back: live, sent again: 503
    await call.when_due()  # 503 again
    await call.when_due()  # taken
    sent = await call.pending()
    assert sent is not None
    assert (sent.status, sent.attempts, sent.looks) == ("sent", 4, 1)
    state = await call.store.load(call.id)
    assert state is not None
    assert not state.ended


async def test_a_refusal_when_bird_cannot_say_whether_the_call_lives_does_not_give_up(
    redis: Redis, clock: Clock
) -> None:
    refused = httpx.Response(422, json={"code": "call_not_active", "message": "ended"})
    bird = ScriptedBird(call_status="ongoing", say=[refused])
    bird.failing_reads = 1
    call = Call(redis, bird, clock)
    await call.answer()
    unsure = await call.pending()
    assert unsure is not None
    assert unsure.status == "unsure"
    bird.call_status = "completed"
    await call.when_due()
    state = await call.store.load(call.id)
    assert state is not None
    assert state.outcome != Outcome.BIRD_REFUSED


async def test_reading_the_call_back_when_bird_cannot_answer_is_not_a_look(
    redis: Redis, clock: Clock
) -> None:
    """A chaos run's lost calls: failed reads used up the looks, and the call was
    given up without the command ever being sent again."""
    bird = ScriptedBird(call_status="ongoing", say=[no_answer])
    call = Call(redis, bird, clock)
    await call.answer()
    bird.failing_reads = outbox.MAX_LOOKS + 2
    for _ in range(outbox.MAX_LOOKS + 2):
        await call.when_due()
    waiting = await call.pending()
    assert waiting is not None
    assert (waiting.status, waiting.looks) == ("unsure", 0)
    await call.when_due()  # Bird answers the read: live, so the prompt goes again
    assert bird.sent == ["answer", "say", "say"]
    state = await call.store.load(call.id)
    assert state is not None
    assert not state.ended
