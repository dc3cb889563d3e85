"""The engine, fed event sequences: what the caller hears, where the call goes."""

from __future__ import annotations

from collections.abc import Sequence

from service.core import actions, engine, events
from service.core.actions import Action
from service.core.engine import Transition
from service.core.events import Event
from service.core.graph import Graph
from service.core.state import Phase
from tests.sample_graphs import looping_graph, menu_graph

CALLER = "+31612345678"


def start(graph: Graph) -> Transition:
    begun = engine.begin(graph, call_id="call-1", caller=CALLER, called="+3197", now=100.0)
    return engine.step(graph, begun.state, events.CallAnswered(), 101.0)


def run(graph: Graph, *sequence: Event) -> tuple[Transition, list[Action]]:
    """Start a call, feed it ``sequence``; the last transition and every action taken."""
    transition = start(graph)
    taken = list(transition.actions)
    for event in sequence:
        transition = engine.step(graph, transition.state, event, 102.0)
        taken.extend(transition.actions)
    return transition, taken


def said(taken: Sequence[Action]) -> list[str]:
    """The texts the caller hears, gather prompts included."""
    texts = []
    for action in taken:
        prompt = getattr(action, "prompt", None)
        if isinstance(prompt, actions.Say):
            texts.append(prompt.text)
    return texts


def test_a_new_inbound_call_is_answered_before_anything_plays() -> None:
    graph = menu_graph()
    begun = engine.begin(graph, call_id="c", caller=CALLER, called="+3197", now=5.0)
    assert begun.actions == (actions.Answer(),)
    assert begun.state.phase == Phase.ANSWERING
    assert begun.state.node is None
    assert begun.state.started_at == 5.0


def test_once_answered_the_start_node_plays_with_graph_defaults_and_templates() -> None:
    transition = start(menu_graph())
    assert transition.actions == (
        actions.Speak(actions.Say(f"Hello {CALLER}.", locale="en-GB", voice="female")),
    )
    assert transition.state.node == "welcome"


def test_say_then_menu_gathers_one_key_with_the_menu_prompt_and_timeout() -> None:
    transition, _ = run(menu_graph(), events.PromptFinished())
    (gather,) = transition.actions
    assert isinstance(gather, actions.Gather)
    assert gather.max_digits == 1
    assert gather.timeout_s == 4
    assert gather.prompt == actions.Say("Press 1 for sales, 2 to leave.", "en-GB", "female")
    assert transition.state.phase == Phase.GATHERING


def test_a_valid_key_transfers_with_the_ring_timeout() -> None:
    transition, _ = run(menu_graph(), events.PromptFinished(), events.DigitsCollected("1"))
    assert transition.actions == (actions.Bridge("+31201234567", None, 15, False),)
    assert transition.state.node == "agent"
    assert transition.state.phase == Phase.BRIDGING


def test_a_wrong_key_says_invalid_then_asks_again() -> None:
    graph = menu_graph()
    transition, taken = run(graph, events.PromptFinished(), events.DigitsCollected("9"))
    assert said(taken)[-1] == "Not an option."
    assert transition.state.attempts == 1
    transition = engine.step(graph, transition.state, events.PromptFinished(), 103.0)
    (gather,) = transition.actions
    assert isinstance(gather, actions.Gather)
    transition = engine.step(graph, transition.state, events.DigitsCollected("2"), 104.0)
    assert transition.state.node == "bye"
    assert said(list(transition.actions)) == ["Goodbye."]


def test_silence_says_no_input_and_after_max_attempts_goes_to_on_failure() -> None:
    graph = menu_graph(max_attempts=2)
    transition, taken = run(
        graph,
        events.PromptFinished(),  # welcome
        events.DigitsCollected(""),  # silence 1
        events.PromptFinished(),  # "I heard nothing."
        events.DigitsCollected(""),  # silence 2: exhausted
        events.PromptFinished(),  # "I heard nothing." again, then on_failure
    )
    assert said(taken) == [
        f"Hello {CALLER}.",
        "Press 1 for sales, 2 to leave.",
        "I heard nothing.",
        "Press 1 for sales, 2 to leave.",
        "I heard nothing.",
        "Goodbye.",
    ]
    assert transition.state.node == "bye"
    notes = [n.event for n in transition.notes]
    assert notes == ["node_entered"]


def test_menu_without_retry_prompts_asks_again_directly() -> None:
    graph = menu_graph(invalid=None, no_input=None)
    transition, _ = run(graph, events.PromptFinished(), events.DigitsCollected("5"))
    (gather,) = transition.actions
    assert isinstance(gather, actions.Gather)
    assert transition.state.phase == Phase.GATHERING
    assert transition.state.attempts == 1


def test_mixed_wrong_and_silent_tries_count_together() -> None:
    graph = menu_graph(max_attempts=2)
    transition, _ = run(
        graph,
        events.PromptFinished(),
        events.DigitsCollected("7"),
        events.PromptFinished(),
        events.DigitsCollected(""),
    )
    assert transition.state.attempts == 2
    assert transition.state.after == "failure"
    assert any(n.event == "menu_failed" for n in transition.notes)


def test_hangup_node_speaks_then_hangs_up_and_ends_the_call() -> None:
    graph = menu_graph()
    transition, _ = run(graph, events.PromptFinished(), events.DigitsCollected("2"))
    transition = engine.step(graph, transition.state, events.PromptFinished(), 110.0)
    assert transition.actions == (actions.Hangup(),)
    assert transition.state.ended
    assert transition.state.outcome == "hangup_node"
    assert transition.state.ended_at == 110.0


def test_agent_no_answer_busy_or_failure_takes_on_failure() -> None:
    graph = menu_graph()
    for reason in ("no-answer", "busy", "failed"):
        transition, _ = run(
            graph,
            events.PromptFinished(),
            events.DigitsCollected("1"),
            events.AgentRinging("leg-2"),
            events.AgentUnavailable("leg-2", reason),
        )
        assert transition.state.node == "sorry", reason
        assert said(list(transition.actions)) == ["Nobody is free."]
        assert any(n.fields.get("reason") == reason for n in transition.notes)


def test_a_second_failure_report_for_the_same_transfer_changes_nothing() -> None:
    graph = menu_graph()
    transition, _ = run(
        graph,
        events.PromptFinished(),
        events.DigitsCollected("1"),
        events.AgentUnavailable("leg-2", "no-answer"),
    )
    # Bird also reports the failed bridge command on the caller's leg.
    again = engine.step(graph, transition.state, events.AgentUnavailable(None, "failed"), 120.0)
    assert again.actions == ()
    assert again.state.node == "sorry"


def test_connected_call_ends_when_the_caller_leg_ends() -> None:
    graph = menu_graph()
    transition, _ = run(
        graph,
        events.PromptFinished(),
        events.DigitsCollected("1"),
        events.AgentConnected("leg-2"),
        events.AgentHungUp("leg-2"),
        events.CallEnded("completed", "callee"),
    )
    assert transition.state.ended
    assert transition.state.outcome == "transferred"
    assert transition.state.agent_leg == "leg-2"
    assert transition.actions == ()


def test_caller_hanging_up_mid_menu_ends_cleanly_and_sends_nothing() -> None:
    graph = menu_graph()
    transition, _ = run(graph, events.PromptFinished(), events.CallEnded("completed", "caller"))
    assert transition.state.ended
    assert transition.state.outcome == "ended_by_caller"
    assert transition.actions == ()
    # Whatever still arrives afterwards changes nothing.
    for late in (events.DigitsCollected("1"), events.PromptFinished(), events.CallAnswered()):
        after = engine.step(graph, transition.state, late, 200.0)
        assert after.actions == ()
        assert after.state == transition.state


def test_events_out_of_phase_are_ignored() -> None:
    graph = menu_graph()
    transition = start(graph)  # prompting the welcome
    for stray in (
        events.DigitsCollected("1"),
        events.AgentConnected("x"),
        events.AgentUnavailable("x", "busy"),
        events.CallAnswered(),
        events.Progress("ringing"),
    ):
        after = engine.step(graph, transition.state, stray, 150.0)
        assert after.actions == ()
        assert after.state == transition.state
        assert [n.event for n in after.notes] == ["event_ignored"]


def test_failed_gather_counts_as_no_input() -> None:
    graph = menu_graph()
    transition, taken = run(graph, events.PromptFinished(), events.DigitsCollected("1", ok=False))
    assert said(taken)[-1] == "I heard nothing."
    assert transition.state.attempts == 1


def test_step_guard_hangs_up_a_loop_after_200_steps() -> None:
    graph = looping_graph()
    transition = start(graph)
    prompts = 1
    while not transition.state.ended:
        transition = engine.step(graph, transition.state, events.PromptFinished(), 300.0)
        prompts += 1
        assert prompts < 1000, "the step guard never fired"
    assert transition.state.steps == engine.MAX_STEPS + 1
    assert transition.state.outcome == "step_limit"
    assert transition.actions == (actions.Hangup(),)
    first = transition.notes[0]
    assert (first.event, first.level) == ("step_limit_exceeded", "error")


def test_the_engine_does_not_mutate_the_state_it_is_given() -> None:
    graph = menu_graph()
    before = start(graph).state
    snapshot = before.to_json()
    engine.step(graph, before, events.PromptFinished(), 1.0)
    assert before.to_json() == snapshot


def test_a_call_bird_cannot_drive_is_abandoned_loudly_with_a_hangup() -> None:
    transition, _ = run(menu_graph(), events.PromptFinished())
    abandoned = engine.abandon(menu_graph(), transition.state, "gather refused by Bird", 103.0)
    assert abandoned.actions == (actions.Hangup(),)
    assert (abandoned.state.phase, abandoned.state.outcome) == (Phase.ENDED, "bird_refused")
    assert abandoned.state.ended_at == 103.0
    assert next((n.event, n.level) for n in abandoned.notes) == ("call_abandoned", "error")


def test_an_ended_call_is_not_abandoned_twice() -> None:
    ended, _ = run(menu_graph(), events.CallEnded("completed", "caller"))
    again = engine.abandon(menu_graph(), ended.state, "hangup refused by Bird", 104.0)
    assert again.actions == ()
    assert again.state == ended.state


def test_a_leg_ended_by_bird_itself_says_so() -> None:
    transition, _ = run(menu_graph(), events.CallEnded("completed", None))
    assert transition.state.outcome == "ended_by_bird"
