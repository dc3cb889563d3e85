"""Issue 13 in the engine: spoken answers, pauses, answering machines, recorded bridges."""

from __future__ import annotations

from typing import Any

import pytest

from service.core import actions, engine, events, speech
from service.core.graph import Graph
from service.core.state import Direction, Outcome, Phase
from service.graphs.loader import parse
from tests.core.test_engine_nodes import NOON, begin, bye, graph_of, trace


def spoken_menu(**menu: Any) -> Graph:
    node: dict[str, Any] = {
        "type": "menu",
        "say": "Billing or support?",
        "input": "dtmf speech",
        "speech_locale": "en-GB",
        "phrases": {"1": ["billing", "invoice"], "2": ["technical support", "support"]},
        "options": {"1": "billing", "2": "support"},
        "invalid": {"say": "Sorry?"},
        "on_failure": "bye",
    }
    node.update(menu)
    return graph_of(
        {"entry": node, "billing": bye("Billing."), "support": bye("Support."), "bye": bye("Bye.")}
    )


# -- matching what was said ------------------------------------------------------------


@pytest.mark.parametrize(
    ("said", "chosen"),
    [
        ("billing", ("1", "billing")),
        ("Billing, please!", ("1", "billing")),
        ("uh my INVOICE is wrong", ("1", "invoice")),
        ("I need technical support", ("2", "technical support")),
        ("support", ("2", "support")),
        ("bill", None),  # whole words only
        ("billings", None),
        ("technical", None),  # every word of a phrase, together
        ("support technical", ("2", "support")),
        ("", None),
        ("...", None),
    ],
)
def test_a_phrase_matches_whole_words_whatever_the_case(
    said: str, chosen: tuple[str, str] | None
) -> None:
    phrases = {"1": ["billing", "invoice"], "2": ["technical support", "support"]}
    assert speech.choose(phrases, said) == chosen


def test_the_first_option_in_the_menu_order_wins_when_two_match() -> None:
    assert speech.choose({"2": ["support"], "1": ["billing"]}, "billing support") == (
        "2",
        "support",
    )


# -- menus and collects that hear words --------------------------------------------------


def test_a_spoken_menu_asks_bird_to_listen_in_its_locale() -> None:
    answered = trace(spoken_menu())[-1]
    (gather,) = answered.actions
    assert isinstance(gather, actions.Gather)
    assert (gather.input, gather.speech_locale, gather.max_digits) == ("dtmf speech", "en-GB", 1)


def test_a_keys_only_menu_sends_no_speech_locale() -> None:
    graph = graph_of(
        {"entry": {"type": "menu", "say": "Press 1.", "options": {"1": "bye"},
                   "on_failure": "bye"}, "bye": bye("Bye.")}
    )  # fmt: skip
    (gather,) = trace(graph)[-1].actions
    assert isinstance(gather, actions.Gather)
    assert (gather.input, gather.speech_locale) == ("dtmf", None)


def test_saying_billing_chooses_option_1() -> None:
    said = trace(spoken_menu(), events.DigitsCollected("", speech="Billing please"))[-1]
    assert said.state.node == "billing"
    choice = next(n for n in said.notes if n.event == "menu_choice")
    assert choice.fields == {"said": "billing", "option": "1", "next": "billing"}


def test_a_key_wins_over_what_was_said() -> None:
    pressed = trace(spoken_menu(), events.DigitsCollected("2", speech="billing"))[-1]
    assert pressed.state.node == "support"


def test_words_matching_no_phrase_are_an_invalid_answer_and_not_logged() -> None:
    graph = spoken_menu()
    retried = trace(graph, events.DigitsCollected("", speech="my cat is sick"))[-1]
    assert retried.state.node == "entry"
    assert retried.state.attempts == 1
    assert [a.prompt for a in retried.actions if isinstance(a, actions.Speak)] == [
        actions.Say("Sorry?", "en-GB", "female")
    ]
    note = next(n for n in retried.notes if n.event == "menu_invalid")
    assert note.fields["input"] == "4 words said"
    assert "cat" not in str(retried.notes)


def test_nothing_understood_is_no_input() -> None:
    silent = trace(spoken_menu(), events.DigitsCollected("", speech=""))[-1]
    assert any(n.event == "menu_no_input" for n in silent.notes)


def test_a_keys_only_menu_does_not_hear_words_even_if_bird_sends_them() -> None:
    graph = graph_of(
        {
            "entry": {"type": "menu", "say": "Press 1.", "options": {"1": "one"},
                      "on_failure": "bye"},
            "one": bye("One."),
            "bye": bye("Bye."),
        }
    )  # fmt: skip
    heard = trace(graph, events.DigitsCollected("", speech="one"))[-1]
    assert any(n.event == "menu_no_input" for n in heard.notes)


def collect_graph(**collect: Any) -> Graph:
    node: dict[str, Any] = {
        "type": "collect",
        "say": "Your postcode?",
        "input": "speech",
        "var": "postcode",
        "max_digits": 6,
        "next": "done",
        "on_failure": "bye",
    }
    node.update(collect)
    return graph_of({"entry": node, "done": bye("Postcode {{vars.postcode}}."), "bye": bye("Bye.")})


def test_a_spoken_collect_keeps_what_was_said() -> None:
    said = trace(collect_graph(), events.DigitsCollected("", speech=" 1234 AB "))[-1]
    assert said.state.vars["postcode"] == "1234 AB"
    assert said.state.node == "done"
    assert said.actions[0] == actions.Speak(actions.Say("Postcode 1234 AB.", "en-GB", "female"))


def test_a_spoken_collect_applies_its_pattern_to_the_text() -> None:
    graph = collect_graph(pattern="[0-9]{4} ?[A-Za-z]{2}", max_attempts=1)
    assert trace(graph, events.DigitsCollected("", speech="1234 AB"))[-1].state.node == "done"
    wrong = trace(graph, events.DigitsCollected("", speech="somewhere"))[-1]
    assert wrong.state.node == "bye"
    assert "postcode" not in wrong.state.vars


# -- pause ----------------------------------------------------------------------------------


def test_a_pause_asks_for_silence_then_goes_on_when_it_ends() -> None:
    graph = graph_of(
        {
            "entry": {"type": "pause", "seconds": 3, "next": "hello"},
            "hello": bye("Hello."),
        }
    )
    answered = trace(graph)[-1]
    assert answered.actions == (actions.Pause(3),)
    assert answered.state.phase is Phase.PAUSING
    # Nothing else ends it: a prompt's end or keys are not for it.
    assert not engine.step(graph, answered.state, events.PromptFinished(), NOON).moved
    ended = engine.step(graph, answered.state, events.PauseEnded(), NOON + 3)
    assert ended.state.node == "hello"
    assert isinstance(ended.actions[0], actions.Speak)
    assert actions.describe(actions.Pause(3)) == "pause 3 s"


# -- answering machines ------------------------------------------------------------------


def reminder(on_machine: str | None = "message") -> Graph:
    amd: dict[str, Any] = {"enabled": True}
    if on_machine is not None:
        amd["on_machine"] = on_machine
    return parse(
        {
            "id": "reminder",
            "amd": amd,
            "start": "ask",
            "nodes": {
                "ask": {"type": "menu", "say": "Press 1 to confirm ({{amd}}).",
                        "options": {"1": "yes"}, "on_failure": "bye"},
                "yes": bye("Confirmed."),
                "bye": bye("Bye."),
                "message": bye("This is a message for {{amd}}."),
            },
        },
        "reminder.json",
    )  # fmt: skip


def dialled(graph: Graph) -> Any:
    begun = begin(graph, direction=Direction.OUTBOUND)
    return engine.step(graph, begun.state, events.CallAnswered(), NOON)


def test_a_machine_sends_the_call_to_on_machine_from_where_it_is() -> None:
    graph = reminder()
    asking = dialled(graph)
    assert asking.state.node == "ask"
    (gather,) = asking.actions
    assert isinstance(gather, actions.Gather)
    assert gather.prompt == actions.Say("Press 1 to confirm (unknown).", None, None)
    verdict = events.AnsweredBy("machine", events.Progress("ongoing"))
    machine = engine.step(graph, asking.state, verdict, NOON + 9)
    assert machine.state.amd == "machine"
    assert machine.state.node == "message"
    assert machine.actions == (
        actions.Speak(actions.Say("This is a message for machine.", None, None)),
    )
    entered = next(n for n in machine.notes if n.event == "node_entered")
    assert entered.fields["from_node"] == "ask"
    assert entered.fields["via"] == "amd/on_machine"
    assert [n.event for n in machine.notes][:2] == ["answered_by", "machine_answered"]


def test_a_person_goes_on_and_the_delivery_still_counts() -> None:
    graph = reminder()
    asking = dialled(graph)
    verdict = events.AnsweredBy("human", events.DigitsCollected("1"))
    person = engine.step(graph, asking.state, verdict, NOON + 3)
    assert person.state.amd == "human"
    assert person.state.node == "yes"  # the keys of the same delivery were pressed


def test_only_the_first_verdict_counts() -> None:
    graph = reminder()
    person = engine.step(
        graph, dialled(graph).state, events.AnsweredBy("human", events.Progress("x")), NOON
    )
    later = engine.step(
        graph, person.state, events.AnsweredBy("machine", events.Progress("y")), NOON + 1
    )
    assert later.state.amd == "human"
    assert later.state.node == "ask"
    assert not later.moved


def test_a_verdict_that_moves_nothing_keeps_the_command_the_call_waits_on() -> None:
    graph = reminder()
    person = engine.step(
        graph, dialled(graph).state, events.AnsweredBy("human", events.Progress("x")), NOON
    )
    assert person.state.amd == "human"
    assert not person.moved  # the gather is still pending: the runtime keeps it
    assert person.actions == ()


def test_a_machine_verdict_with_the_hang_up_ends_the_call() -> None:
    graph = reminder()
    verdict = events.AnsweredBy("machine", events.CallEnded("completed", "callee"))
    ended = engine.step(graph, dialled(graph).state, verdict, NOON)
    assert ended.state.phase is Phase.ENDED
    assert ended.state.outcome is Outcome.ENDED_BY_CALLEE
    assert ended.state.amd == "machine"


def test_a_machine_without_on_machine_goes_on_where_it_is() -> None:
    graph = reminder(on_machine=None)
    machine = engine.step(
        graph, dialled(graph).state, events.AnsweredBy("machine", events.Progress("x")), NOON
    )
    assert machine.state.node == "ask"
    assert machine.state.amd == "machine"


def test_a_verdict_while_talking_to_a_person_changes_nothing_but_the_verdict() -> None:
    graph = parse(
        {
            "id": "t",
            "amd": {"enabled": True, "on_machine": "message"},
            "start": "agent",
            "nodes": {
                "agent": {"type": "transfer", "to": "+31201234567", "on_failure": "message"},
                "message": bye("Message."),
            },
        },
        "t.json",
    )
    ringing = dialled(graph)
    assert ringing.state.phase is Phase.BRIDGING
    verdict = events.AnsweredBy("machine", events.Progress("x"))
    after = engine.step(graph, ringing.state, verdict, NOON)
    assert after.state.phase is Phase.BRIDGING
    assert after.actions == ()


# -- recorded bridges ---------------------------------------------------------------------


def test_a_recorded_transfer_keeps_its_recording_even_after_the_call_ended() -> None:
    graph = graph_of(
        {
            "entry": {"type": "transfer", "to": "+31201234567", "record": True,
                      "on_failure": "bye"},
            "bye": bye("Bye."),
        }
    )  # fmt: skip
    ringing = trace(graph)[-1]
    assert ringing.actions[0] == actions.Bridge("+31201234567", None, 30, True)
    talking = engine.step(graph, ringing.state, events.AgentConnected("leg-1"), NOON)
    ended = engine.step(graph, talking.state, events.CallEnded("completed", "caller"), NOON + 60)
    recorded = engine.step(graph, ended.state, events.ConversationRecorded("rec-9", 60.0), NOON)
    assert recorded.state.recordings == ("rec-9",)
    assert recorded.state.phase is Phase.ENDED
    again = engine.step(graph, recorded.state, events.ConversationRecorded("rec-9"), NOON)
    assert not again.moved
    assert again.state.recordings == ("rec-9",)
