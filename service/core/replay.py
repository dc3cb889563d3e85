"""Replaying a call against a draft graph: feed the engine, step by step, what the
call's journal (:mod:`service.core.journal`) says the caller and Bird did, and find
the first step where the draft walks other nodes than the call did. Pure.

The inputs are replayed as they came (keys, silences, agents' answers, lookups'
answers, at their times), so a draft that only changes prompts walks the same
path; one that sends a key elsewhere, or checks other opening hours, diverges at
the step that reaches the change. Past the first divergence the recorded inputs
answer questions the draft did not ask, so the replay stops there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.core import engine, events
from service.core.graph import Graph
from service.core.journal import Entry, path_of
from service.core.state import CallState, Direction


class ReplayError(Exception):
    """The journal cannot be replayed (empty, or a kind of call replay does not model)."""


@dataclass(frozen=True)
class Step:
    """One replayed step: what was fed, the nodes the call walked, the draft's."""

    index: int
    t: float
    fed: str
    node: str | None
    recorded: tuple[str, ...]
    draft: tuple[str, ...]
    recorded_outcome: str | None
    draft_outcome: str | None

    @property
    def same(self) -> bool:
        return self.recorded == self.draft and self.recorded_outcome == self.draft_outcome


@dataclass(frozen=True)
class Replay:
    """The steps replayed, in order, up to and including the first divergence."""

    call_id: str
    started_at: float
    steps: tuple[Step, ...]

    @property
    def divergence(self) -> Step | None:
        return next((step for step in self.steps if not step.same), None)

    def describe(self) -> str:
        """Where the draft diverges, in words (or that it does not)."""
        step = self.divergence
        if step is None:
            return f"the draft walks the same path as the call, {len(self.steps)} steps"
        where = f" at {step.node}" if step.node else ""
        return (
            f"the draft diverges at step {step.index} (+{step.t - self.started_at:.1f} s): "
            f"{step.fed}{where}: the caller went {_walk(step.recorded, step.recorded_outcome)}, "
            f"the draft goes {_walk(step.draft, step.draft_outcome)}"
        )


def replay(graph: Graph, entries: Sequence[Entry], call_id: str = "") -> Replay:
    """Replay ``entries`` (a call's journal, oldest first) against ``graph``."""
    if not entries or entries[0].begin is None:
        raise ReplayError("the journal does not start with the call's beginning (expired?)")
    begun = entries[0].begin
    if begun.get("callback"):
        raise ReplayError("a callback's follow-up call starts inside a queue: not replayed")
    first = entries[0]
    transition = engine.begin(
        graph,
        call_id=call_id or "replay",
        caller=str(begun.get("caller", "")),
        called=str(begun.get("called", "")),
        now=first.t,
        direction=Direction(begun.get("direction", Direction.INBOUND)),
        variables={str(k): str(v) for k, v in dict(begun.get("vars") or {}).items()},
    )
    state = transition.state
    steps = [_step(0, first, "the call started", None, transition)]
    for index, entry in enumerate(entries[1:], start=1):
        if not steps[-1].same:
            break
        before = state
        if entry.event is not None:
            transition = engine.step(graph, state, entry.event, entry.t)
            fed = describe(entry.event)
        elif entry.abandon is not None:
            transition = engine.abandon(graph, state, entry.abandon, entry.t)
            fed = f"the service gave up ({entry.abandon})"
        else:
            continue  # an entry of a kind this version does not replay
        state = transition.state
        steps.append(_step(index, entry, fed, before, transition))
    return Replay(call_id, first.t, tuple(steps))


def _step(
    index: int, entry: Entry, fed: str, before: CallState | None, transition: engine.Transition
) -> Step:
    outcome = transition.state.outcome
    return Step(
        index=index,
        t=entry.t,
        fed=fed,
        node=entry.node if entry.node is not None else (before.node if before else None),
        recorded=entry.path,
        draft=tuple(path_of(transition.notes)),
        recorded_outcome=entry.outcome,
        draft_outcome=str(outcome) if outcome is not None else None,
    )


def _walk(path: Sequence[str], outcome: str | None) -> str:
    walked = " -> ".join(path) if path else "nowhere (stays)"
    return f"{walked}, the call ends ({outcome})" if outcome else walked


def describe(event: events.Event) -> str:
    """What an event was, in the caller's terms."""
    match event:
        case events.DigitsCollected(digits=""):
            return "the caller pressed nothing"
        case events.DigitsCollected():
            return f"the caller pressed {event.digits}"
        case events.CallAnswered():
            return "the call was answered"
        case events.PromptFinished():
            return "a prompt finished"
        case events.CallEnded(by="caller"):
            return "the caller hung up"
        case events.CallEnded():
            return f"the call ended ({event.status})"
        case events.AgentOffered():
            return f"agent {event.agent_id} was offered the call"
        case events.AgentRinging():
            return "the agent's phone rang"
        case events.AgentConnected():
            return "the agent answered"
        case events.AgentUnavailable():
            return f"the agent did not take the call ({event.reason})"
        case events.AgentHungUp():
            return "the agent hung up"
        case events.RecordingFinished():
            return "a recording ended"
        case events.HttpResponded():
            return f"a lookup answered {event.status or event.error}"
        case events.LineStatus():
            return f"the line answered: position {event.position}"
        case events.Progress():
            return f"progress ({event.what})"
    return type(event).__name__  # pragma: no cover
