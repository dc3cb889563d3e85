"""The engine's ``queue`` node fed events: joining, hold segments, announcements only
when the position improved, offers, misses, answers, the caller leaving, and the
line changes each transition asks for."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from service.core import actions, engine, events
from service.core import line as changes
from service.core.engine import Transition, announcement
from service.core.graph import Graph
from service.core.queues import Queue
from service.core.state import CallState, Outcome, Phase, Waiting
from service.graphs.loader import parse

T0 = 1_800_000_000.0


def queue_graph(**settings: Any) -> Graph:
    graph = parse(
        {
            "id": "line-test",
            "start": "wait",
            "nodes": {
                "wait": {
                    "type": "queue",
                    "queue": "support",
                    "priority": 2,
                    "on_timeout": "sorry",
                    "on_no_agents": "closed",
                    "on_callback": "bye",
                },
                "sorry": {"type": "hangup", "say": "Sorry, nobody could take your call."},
                "closed": {"type": "hangup", "say": "Nobody is available."},
                "bye": {"type": "hangup", "say": "We will call you back."},
            },
        },
        "line-test.json",
    )
    queue = Queue(name="support", **settings)
    return replace(graph, queues={"support": queue})


class Call:
    """Feeds a call events and keeps its state, as the runtime would."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.now = T0
        started = engine.begin(graph, call_id="c1", caller="+31600000001",
                               called="+31970000000", now=T0)  # fmt: skip
        self.state: CallState = started.state
        self.last = self.feed(events.CallAnswered())

    def feed(self, event: events.Event, after_s: float = 0.0) -> Transition:
        self.now += after_s
        self.last = engine.step(self.graph, self.state, event, self.now)
        self.state = self.last.state
        return self.last

    @property
    def action(self) -> actions.Action | None:
        return self.last.actions[0] if self.last.actions else None

    def notes(self) -> list[str]:
        return [n.event for n in self.last.notes]


def in_line(call: Call, position: int = 3, available: int = 2, wait: float = 200.0) -> None:
    call.feed(events.LineStatus(True, position, available, wait))


def test_entering_a_queue_asks_the_line_and_holds_once_joined() -> None:
    call = Call(queue_graph(announce_position=False))
    assert call.state.phase is Phase.QUEUED
    assert call.action == actions.AskLine("support", 2)
    in_line(call)
    assert "joined" in call.notes()
    hold = call.action
    assert isinstance(hold, actions.Speak)
    assert hold.max_s == 20
    assert hold.loop
    assert call.state.line is not None
    assert call.state.line.waiting is Waiting.HOLDING
    assert not call.last.line  # joining is the line's own answer, not a change


def test_nobody_available_on_arrival_goes_to_on_no_agents() -> None:
    call = Call(queue_graph())
    call.feed(events.LineStatus(False, agents_available=0))
    assert call.state.node == "closed"
    assert call.state.line is None


def test_the_position_is_announced_only_when_it_improved() -> None:
    call = Call(queue_graph(announce_every_s=10))
    in_line(call, position=3, wait=240)
    said = call.action
    assert isinstance(said, actions.Speak)
    assert isinstance(said.prompt, actions.Say)
    assert said.prompt.text == "You are number 3 in line. The expected wait is about 4 minutes."
    call.feed(events.PromptFinished(), after_s=5)  # the announcement played: hold
    assert isinstance(call.action, actions.Speak)
    assert call.action.max_s == 20
    asked = call.feed(events.PromptFinished(), after_s=20)  # a segment played: ask again
    assert asked.actions == (actions.AskLine("support", 2),)
    in_line(call, position=3)  # same place: no announcement, hold again
    assert "position_announced" not in call.notes()
    call.feed(events.PromptFinished(), after_s=20)
    in_line(call, position=4)  # worse (someone with priority came): silent
    assert "position_announced" not in call.notes()
    call.feed(events.PromptFinished(), after_s=20)
    in_line(call, position=2, wait=50)
    assert "position_announced" in call.notes()
    assert isinstance(call.action, actions.Speak)
    assert call.action.prompt == actions.Say(
        "You are number 2 in line. The expected wait is less than a minute.", None, None
    )


def test_an_offer_rings_the_agent_and_takes_the_offer() -> None:
    call = Call(queue_graph())
    in_line(call)
    call.feed(events.AgentOffered("o1", "ann", "+31610000001"))
    assert call.action == actions.Bridge("+31610000001", None, 20, False, "o1")
    assert call.last.line == (changes.TakeOffer("support", "o1"),)
    assert call.state.phase is Phase.BRIDGING
    # The hold segment that was playing ends now: nothing happens.
    call.feed(events.PromptFinished())
    assert not call.last.moved


def test_a_missed_offer_puts_the_caller_back_on_hold() -> None:
    call = Call(queue_graph())
    in_line(call)
    call.feed(events.AgentOffered("o1", "ann", "+31610000001"))
    call.feed(events.AgentUnavailable("leg-1", "no-answer", "o1"))
    assert call.last.line == (changes.OfferMissed("support", "o1", "no-answer"),)
    assert call.state.phase is Phase.QUEUED
    assert isinstance(call.action, actions.Speak)
    assert "missed" in call.notes()


def test_news_of_an_old_offer_changes_nothing() -> None:
    call = Call(queue_graph())
    in_line(call)
    call.feed(events.AgentOffered("o1", "ann", "+31610000001"))
    call.feed(events.AgentUnavailable("leg-1", "no-answer", "o1"))
    call.feed(events.AgentOffered("o2", "bob", "+31610000002"))
    for late in (
        events.AgentUnavailable("leg-1", "no-answer", "o1"),  # a repeat of o1's news
        events.AgentUnavailable(None, "failed"),  # o1's bridge command failing
        events.AgentConnected("leg-1", "o1"),
    ):
        call.feed(late)
        assert not call.last.moved
        assert not call.last.line
    assert call.state.line is not None
    assert call.state.line.offer == "o2"


def test_answered_then_either_side_hangs_up_wraps_the_agent_up() -> None:
    for ending in (events.CallEnded("completed", "caller"), events.AgentHungUp("leg-2", "o1")):
        call = Call(queue_graph())
        in_line(call)
        call.feed(events.AgentOffered("o1", "ann", "+31610000001"))
        answered = call.feed(events.AgentConnected("leg-2", "o1"))
        assert answered.line == (changes.OfferAnswered("support", "o1"),)
        assert call.state.phase is Phase.CONNECTED
        ended = call.feed(ending, after_s=120)
        assert ended.line == (changes.AgentCallEnded("support", "o1"),)
        assert call.state.outcome is Outcome.AGENT_CONNECTED


def test_hanging_up_while_waiting_leaves_the_line() -> None:
    call = Call(queue_graph())
    in_line(call)
    call.feed(events.CallEnded("completed", "caller"), after_s=30)
    assert call.last.line == (changes.LeaveLine("support", "abandoned", None),)
    assert "abandoned" in call.notes()


def test_hanging_up_while_an_agent_rings_releases_them_and_hangs_up_the_leg() -> None:
    call = Call(queue_graph())
    in_line(call)
    call.feed(events.AgentOffered("o1", "ann", "+31610000001"))
    call.feed(events.AgentRinging("leg-9", "o1"))
    call.feed(events.CallEnded("completed", "caller"))
    assert call.last.line == (changes.LeaveLine("support", "abandoned", "o1"),)
    assert call.action == actions.HangupLeg("leg-9")  # A11
    # The agent's leg answering afterwards is hung up too.
    call.feed(events.AgentConnected("leg-9", "o1"))
    assert call.action == actions.HangupLeg("leg-9")


def test_waiting_past_max_wait_goes_to_on_timeout() -> None:
    call = Call(queue_graph(max_wait_s=60, announce_position=False))
    in_line(call)
    segment = call.action
    assert isinstance(segment, actions.Speak)
    assert segment.max_s == 20
    call.feed(events.PromptFinished(), after_s=45)
    in_line(call)
    last = call.action
    assert isinstance(last, actions.Speak)
    assert last.max_s == 15
    call.feed(events.PromptFinished(), after_s=15)
    in_line(call)
    assert call.last.line == (changes.LeaveLine("support", "timed_out", None),)
    assert call.state.node == "sorry"


def test_nobody_available_for_the_grace_period_goes_to_on_no_agents() -> None:
    call = Call(queue_graph(no_agents_grace_s=20, announce_position=False))
    in_line(call)
    call.feed(events.PromptFinished(), after_s=20)
    in_line(call, available=0)
    assert call.state.node == "wait"
    call.feed(events.PromptFinished(), after_s=20)
    in_line(call, available=0)
    assert call.last.line == (changes.LeaveLine("support", "no_agents", None),)
    assert call.state.node == "closed"


def test_a_long_wait_offers_a_callback_and_1_takes_it() -> None:
    call = Call(queue_graph(callback_after_s=120, announce_position=False))
    in_line(call, wait=300)
    offer = call.action
    assert isinstance(offer, actions.Gather)
    assert offer.max_digits == 1
    call.feed(events.DigitsCollected("1"))
    assert call.last.line == (changes.LeaveLine("support", "callback", None),)
    assert call.state.node == "bye"


def test_an_offer_during_the_callback_question_is_taken() -> None:
    call = Call(queue_graph(callback_after_s=120, announce_position=False))
    in_line(call, wait=300)
    call.feed(events.AgentOffered("o1", "ann", "+31610000001"))
    assert isinstance(call.action, actions.Bridge)
    call.feed(events.DigitsCollected("1"))  # the gather's late outcome
    assert not call.last.moved


def test_announcements_read_naturally() -> None:
    assert announcement(1, None) == "You are next in line."
    assert announcement(5, 61) == "You are number 5 in line. The expected wait is about 1 minute."


def test_a_miss_past_max_wait_takes_on_timeout_instead_of_holding_again() -> None:
    call = Call(queue_graph(announce_position=False, max_wait_s=60))
    in_line(call)
    call.feed(events.AgentOffered("o1", "ann", "+31610000001"), after_s=50)
    call.feed(events.AgentUnavailable("leg-a", "no-answer", "o1"), after_s=20)
    assert call.last.line == (
        changes.OfferMissed("support", "o1", "no-answer"),
        changes.LeaveLine("support", "timed_out", None),
    )
    assert call.state.node == "sorry"
    assert "timed_out" in call.notes()
