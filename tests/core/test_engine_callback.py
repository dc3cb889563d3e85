"""The engine's ``callback`` node and a callback's follow-up call, fed events: the
booking keeps the caller's place, the follow-up call asks for 1 before it rings the
reserved agent, and every way it can fail frees that agent in the same step."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from service.core import actions, engine, events
from service.core import line as changes
from service.core.graph import Amd, Graph
from service.core.queues import Queue
from service.core.state import InLine, Outcome, Phase, Waiting
from service.graphs.loader import parse
from tests.core.test_engine_queue import T0, Call, in_line

CALLER = "+31600000001"
OURS = "+31970000000"
AGENT = "+31201234567"


def callback_graph(**settings: Any) -> Graph:
    graph = parse(
        {
            "id": "callback-test",
            "start": "menu",
            "nodes": {
                "menu": {
                    "type": "menu",
                    "say": "To wait press 1, to be called back press 2.",
                    "options": {"1": "wait", "2": "call-back"},
                    "on_failure": "bye",
                },
                "wait": {
                    "type": "queue",
                    "queue": "support",
                    "priority": 4,
                    "on_timeout": "bye",
                    "on_no_agents": "bye",
                    "on_callback": "call-back",
                },
                "call-back": {
                    "type": "callback",
                    "queue": "support",
                    "say": "We will call you back when it is your turn.",
                    "next": "bye",
                },
                "bye": {"type": "hangup", "say": "Goodbye."},
            },
        },
        "callback-test.json",
    )
    queue = Queue(name="support", callback_after_s=60, announce_position=False, **settings)
    return replace(graph, queues={"support": queue})


def waiting_in_line(graph: Graph) -> Call:
    call = Call(graph)
    call.feed(events.DigitsCollected("1"), after_s=4)
    in_line(call, wait=600)  # the expected wait is over callback_after_s: offered
    assert call.state.line is not None
    assert call.state.line.waiting is Waiting.CALLBACK_OFFER
    return call


def test_pressing_1_books_a_callback_at_the_callers_own_place() -> None:
    call = waiting_in_line(callback_graph())
    call.feed(events.DigitsCollected("1"), after_s=30)
    assert call.last.line == (
        changes.LeaveLine("support", "callback", None),
        changes.BookCallback("support", CALLER, OURS, 4, "callback-test", "call-back"),
    )  # fmt: skip
    assert {"callback", "callback_requested"} <= set(call.notes())
    requested = next(n for n in call.last.notes if n.event == "callback_requested")
    assert requested.fields["kept_place"] is True
    assert requested.fields["callback"] == changes.callback_id("support", CALLER)
    confirmation = call.action
    assert isinstance(confirmation, actions.Speak)
    assert confirmation.prompt == actions.Say("We will call you back when it is your turn.")
    assert call.state.line is None
    call.feed(events.PromptFinished(), after_s=3)
    assert call.state.node == "bye"


def test_a_callback_asked_for_outside_the_line_takes_a_place_from_now() -> None:
    call = Call(callback_graph())
    call.feed(events.DigitsCollected("2"), after_s=6)
    assert call.last.line == (
        changes.BookCallback("support", CALLER, OURS, 0, "callback-test", "call-back"),
    )


def test_an_unknown_caller_number_cannot_be_called_back() -> None:
    graph = callback_graph()
    started = engine.begin(graph, call_id="c2", caller="anonymous", called=OURS, now=T0)
    answered = engine.step(graph, started.state, events.CallAnswered(), T0)
    pressed = engine.step(graph, answered.state, events.DigitsCollected("2"), T0 + 2)
    assert not pressed.line
    assert "callback_impossible" in [n.event for n in pressed.notes]
    assert pressed.state.node == "bye"


def test_one_callback_per_queue_and_number_whatever_the_call() -> None:
    ids = {changes.callback_id("support", CALLER) for _ in range(3)}
    assert len(ids) == 1
    assert changes.callback_id("billing", CALLER) not in ids
    assert changes.callback_id("support", "+31600000002") not in ids
    assert CALLER[1:] not in next(iter(ids))


class FollowUp:
    """A callback's follow-up call, as the runtime starts and feeds it."""

    def __init__(self, graph: Graph, attempt: int = 1) -> None:
        self.graph = graph
        self.now = T0 + 600
        self.place = InLine(queue="support", priority=4, joined_at=T0 + 4, offer="o1",
                            agent_id="ann", callback="cb1", address=AGENT,
                            attempt=attempt)  # fmt: skip
        self.last = engine.begin_callback(graph, call_id="f1", number=CALLER, line_number=OURS,
                                          now=self.now, waiting=self.place,
                                          node="call-back")  # fmt: skip
        self.state = self.last.state

    def feed(self, event: events.Event, after_s: float = 0.0) -> engine.Transition:
        self.now += after_s
        self.last = engine.step(self.graph, self.state, event, self.now)
        self.state = self.last.state
        return self.last

    def notes(self) -> list[str]:
        return [n.event for n in self.last.notes]


def test_the_follow_up_call_takes_its_offer_and_dials_the_customer() -> None:
    follow = FollowUp(callback_graph())
    assert follow.last.actions == (actions.Dial(),)
    assert follow.last.line == (changes.TakeOffer("support", "o1", "cb1"),)
    assert follow.state.node == "call-back"
    assert follow.state.line is not None
    assert follow.state.line.waiting is Waiting.CALLING
    assert "callback_placed" in follow.notes()


def test_answered_pressed_1_connected_then_ended_like_a_caller_of_the_queue() -> None:
    follow = FollowUp(callback_graph())
    follow.feed(events.CallAnswered(), after_s=5)
    asked = follow.last.actions[0]
    assert isinstance(asked, actions.Gather)
    assert isinstance(asked.prompt, actions.Say)
    assert "press 1" in asked.prompt.text
    assert asked.max_digits == 1
    confirming = follow.state.line
    assert confirming is not None
    assert confirming.waiting is Waiting.CALLBACK_CONFIRM
    assert not follow.last.line
    follow.feed(events.DigitsCollected("1"), after_s=3)
    assert follow.last.actions == (actions.Bridge(AGENT, None, 20, False, "o1"),)
    assert follow.state.phase is Phase.BRIDGING
    follow.feed(events.AgentRinging("leg-a", "o1"))
    follow.feed(events.AgentConnected("leg-a", "o1"), after_s=4)
    assert follow.last.line == (changes.OfferAnswered("support", "o1", "cb1"),)
    assert {"answered", "callback_connected"} <= set(follow.notes())
    ended = follow.feed(events.AgentHungUp("leg-a", "o1"), after_s=60)
    assert ended.line == (changes.AgentCallEnded("support", "o1"),)
    assert follow.state.outcome is Outcome.AGENT_CONNECTED


def test_not_answered_frees_the_agent_and_schedules_a_retry() -> None:
    follow = FollowUp(callback_graph(callback_retry_s=120))
    follow.feed(events.CallEnded("no-answer"), after_s=30)
    assert follow.last.line == (changes.CallbackFailed("support", "o1", "cb1", "no-answer"),)
    failed = next(n for n in follow.last.notes if n.event == "callback_failed")
    assert failed.fields["retry_in_s"] == 120
    assert follow.state.phase is Phase.ENDED


def test_no_key_frees_the_agent_says_so_and_hangs_up() -> None:
    follow = FollowUp(callback_graph(), attempt=3)
    follow.feed(events.CallAnswered(), after_s=5)
    follow.feed(events.DigitsCollected("", ok=True), after_s=8)
    assert follow.last.line == (changes.CallbackFailed("support", "o1", "cb1", "no_key"),)
    failed = next(n for n in follow.last.notes if n.event == "callback_failed")
    assert failed.fields["retry_in_s"] is None  # the third of callback_attempts (3)
    said = follow.last.actions[0]
    assert isinstance(said, actions.Speak)
    follow.feed(events.PromptFinished(), after_s=2)
    assert follow.last.actions == (actions.Hangup(),)
    assert not follow.last.line  # the place was settled once, with the key


def test_a_customer_who_hangs_up_while_the_agent_rings_frees_the_agent_and_the_leg() -> None:
    follow = FollowUp(callback_graph())
    follow.feed(events.CallAnswered(), after_s=5)
    follow.feed(events.DigitsCollected("1"), after_s=2)
    follow.feed(events.AgentRinging("leg-a", "o1"))
    follow.feed(events.CallEnded("completed", by="callee"), after_s=3)
    assert follow.last.line == (changes.CallbackFailed("support", "o1", "cb1", "hung_up"),)
    assert follow.last.actions == (actions.HangupLeg("leg-a"),)


def test_an_agent_who_misses_puts_the_callback_back_and_the_customer_is_told() -> None:
    follow = FollowUp(callback_graph())
    follow.feed(events.CallAnswered(), after_s=5)
    follow.feed(events.DigitsCollected("1"), after_s=2)
    follow.feed(events.AgentUnavailable("leg-a", "no-answer", "o1"), after_s=20)
    assert follow.last.line == (changes.OfferMissed("support", "o1", "no-answer", "cb1"),)
    said = follow.last.actions[0]
    assert isinstance(said, actions.Speak)
    assert isinstance(said.prompt, actions.Say)
    assert "call you back" in said.prompt.text
    assert follow.state.line is None
    follow.feed(events.CallEnded("completed", by="callee"), after_s=1)
    assert not follow.last.line  # hanging up now changes the line no more


def test_news_of_another_offer_changes_nothing_on_a_follow_up_call() -> None:
    follow = FollowUp(callback_graph())
    follow.feed(events.CallAnswered(), after_s=5)
    follow.feed(events.DigitsCollected("1"), after_s=2)
    late = follow.feed(events.AgentConnected("leg-old", "o0"))
    assert not late.moved
    assert follow.state.phase is Phase.BRIDGING


def test_the_place_and_the_callback_offer_are_one_prompt_when_both_are_due() -> None:
    graph = callback_graph()
    queue = replace(graph.queues["support"], announce_position=True)
    call = Call(replace(graph, queues={"support": queue}))
    call.feed(events.DigitsCollected("1"), after_s=4)
    in_line(call, position=2, wait=600)
    offer = call.action
    assert isinstance(offer, actions.Gather)
    assert isinstance(offer.prompt, actions.Say)
    assert offer.prompt.text.startswith("You are number 2 in line. The expected wait is")
    assert offer.prompt.text.endswith("press 1.")
    assert {"position_announced", "callback_offered"} <= set(call.notes())
    call.feed(events.DigitsCollected(""), after_s=5)  # not taken: hold, and no repeat
    call.feed(events.PromptFinished(), after_s=20)
    in_line(call, position=2, wait=580)
    assert isinstance(call.action, actions.Speak)
    assert "position_announced" not in call.notes()


def test_every_line_note_of_a_follow_up_call_names_its_callback() -> None:
    follow = FollowUp(callback_graph())
    follow.feed(events.CallAnswered(), after_s=5)
    follow.feed(events.DigitsCollected("1"), after_s=2)
    follow.feed(events.AgentUnavailable("leg-a", "busy", "o1"), after_s=1)
    missed = next(n for n in follow.last.notes if n.event == "missed")
    assert missed.fields["callback"] == "cb1"


def test_a_machine_answering_a_callback_gives_the_agent_back_and_leaves_the_message() -> None:
    follow = FollowUp(replace(callback_graph(), amd=Amd(True, "bye")))
    follow.feed(events.CallAnswered(), after_s=5)
    verdict = events.AnsweredBy("machine", events.Progress("ongoing"))
    machine = follow.feed(verdict, after_s=8)
    assert machine.line == (changes.CallbackFailed("support", "o1", "cb1", "machine"),)
    assert follow.state.line is None
    assert follow.state.node == "bye"
    assert machine.actions == (actions.Speak(actions.Say("Goodbye.", None, None)),)
    assert {"answered_by", "callback_failed", "machine_answered"} <= set(follow.notes())
