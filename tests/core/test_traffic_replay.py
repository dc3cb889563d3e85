"""Traffic counts and replay, from the engine's transitions alone (no Redis)."""

from __future__ import annotations

from collections import Counter

import pytest

from service.core import engine, events, journal, replay, traffic
from service.core.events import Event
from service.core.graph import Graph
from service.core.journal import Entry
from service.core.replay import ReplayError
from tests.sample_graphs import menu_graph

CALLER = "+31612345678"


def record(graph: Graph, *sequence: Event) -> tuple[list[Entry], Counter[str]]:
    """Run a call through ``graph`` as the runtime does: a journal entry and the
    traffic counts of every step."""
    begun = engine.begin(graph, call_id="c1", caller=CALLER, called="+3197", now=100.0)
    fed: dict[str, object] = {
        "begin": {"direction": "inbound", "caller": CALLER, "called": "+3197", "vars": {}}
    }
    entries = [_entry(fed, 100.0, None, begun)]
    counts: Counter[str] = Counter(traffic.counts(begun.notes))
    state = begun.state
    for i, event in enumerate((events.CallAnswered(), *sequence), start=1):
        step = engine.step(graph, state, event, 100.0 + i)
        entries.append(_entry({"event": journal.event_to_json(event)}, 100.0 + i, state.node, step))
        counts.update(traffic.counts(step.notes))
        state = step.state
    return entries, counts


def _entry(fed: dict[str, object], now: float, node: str | None, step: engine.Transition) -> Entry:
    outcome = step.state.outcome
    raw = journal.entry(fed, now=now, node=node, notes=step.notes, at=step.state.node,
                        outcome=str(outcome) if outcome else None)  # fmt: skip
    return Entry.from_json(raw)


CALLER_PRESSES_2 = (events.PromptFinished(), events.DigitsCollected("2"), events.PromptFinished())


def test_counts_name_every_entry_exit_retry_and_end() -> None:
    _, counts = record(
        menu_graph(),
        events.PromptFinished(),  # welcome said
        events.DigitsCollected("9"),  # invalid
        events.PromptFinished(),  # "Not an option." said
        events.DigitsCollected(""),  # silence
        events.PromptFinished(),  # "I heard nothing." said
        events.DigitsCollected("2"),
        events.PromptFinished(),  # Goodbye said
    )
    assert dict(counts) == {
        "welcome|in": 1,
        "welcome|out|next": 1,
        "menu|in": 1,
        "menu|invalid": 1,
        "menu|silent": 1,
        "menu|out|options/2": 1,
        "bye|in": 1,
        "bye|end|hangup_node": 1,
    }


def test_a_caller_hanging_up_at_the_menu_is_a_drop_off_there() -> None:
    _, counts = record(
        menu_graph(), events.PromptFinished(), events.CallEnded("completed", "caller")
    )
    nodes = traffic.read(counts)
    assert nodes["menu"].entered == 1
    assert nodes["menu"].hung_up == 1
    assert nodes["menu"].here == 0
    assert nodes["welcome"].left == nodes["welcome"].entered == 1


def test_events_round_trip_through_json_bytes_included() -> None:
    kept = (
        events.DigitsCollected("12#"),
        events.HttpResponded(200, b'{"a": "\xff"}'),
        events.CallEnded("completed", "caller"),
        events.AgentOffered("o", "ann", "+31"),
    )
    for event in kept:
        assert journal.event_from_json(journal.event_to_json(event)) == event
    with pytest.raises(ValueError, match="unknown event type"):
        journal.event_from_json({"type": "Nope"})


def test_the_same_graph_replays_the_same_path() -> None:
    entries, _ = record(menu_graph(), *CALLER_PRESSES_2)
    result = replay.replay(menu_graph(), entries)
    assert result.divergence is None
    assert "same path" in result.describe()


def test_a_draft_sending_a_key_elsewhere_diverges_at_that_key() -> None:
    entries, _ = record(menu_graph(), *CALLER_PRESSES_2)
    draft = menu_graph(options={"1": "bye", "2": "agent"})
    result = replay.replay(draft, entries)
    step = result.divergence
    assert step is not None
    assert step.fed == "the caller pressed 2"
    assert step.node == "menu"
    assert step.recorded == ("bye",)
    assert step.draft == ("agent",)
    assert result.steps[-1] is step  # the replay stops at the first divergence
    assert "diverges at step 3" in result.describe()
    assert "bye" in result.describe()
    assert "agent" in result.describe()


def test_a_draft_changing_only_prompts_does_not_diverge() -> None:
    entries, _ = record(menu_graph(), *CALLER_PRESSES_2)
    assert (
        replay.replay(menu_graph(say="Press 2 to leave, 1 for sales."), entries).divergence is None
    )


def test_a_journal_without_its_beginning_is_refused() -> None:
    entries, _ = record(menu_graph(), *CALLER_PRESSES_2)
    with pytest.raises(ReplayError, match="beginning"):
        replay.replay(menu_graph(), entries[1:])
