"""Queues and agents, in our own terms (docs/queues.md, docs/agents.md). Pure.

A :class:`Queue` is one entry of ``queues.json`` (``service.graphs.queues`` reads and
checks the file); an :class:`Agent` is a person who may be offered callers of the
queues they belong to (kept live in Redis by ``service.runtime.agents``). Nothing
here does I/O: the engine reads a queue's settings to hold a caller, the runtime's
line (``service.runtime.line``) to choose an agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast, get_args

from service.core.graph import Graph, GraphSet, Prompt

Strategy = Literal[
    "longest-idle", "round-robin", "fewest-calls", "least-talk-time", "top-down", "random"
]  # fmt: skip
STRATEGIES: tuple[str, ...] = get_args(Strategy)

AgentStatus = Literal["offline", "available", "on_break"]
"""The person's choice."""
AGENT_STATUSES: tuple[str, ...] = get_args(AgentStatus)

AgentState = Literal["idle", "offered", "in_call", "wrap_up", "cooldown"]
"""The system's view: ``offered`` while their phone rings for a caller, ``wrap_up``
after a call and ``cooldown`` after a missed or busy offer, each until a time."""
AGENT_STATES: tuple[str, ...] = get_args(AgentState)

# Tier levels an agent may have in a queue (level 1 is offered first).
MIN_LEVEL, MAX_LEVEL = 1, 9
# Caller priorities of a queue node (higher first).
MIN_PRIORITY, MAX_PRIORITY = 0, 9

DEFAULT_HOLD = Prompt(say="All our agents are busy. Please stay on the line.")
DEFAULT_CALLBACK_OFFER = Prompt(
    say="To be called back when it is your turn, without losing your place, press 1."
)


@dataclass(frozen=True, kw_only=True)
class Queue:
    """One queue of ``queues.json``, with the defaults of docs/queues.md."""

    name: str
    strategy: Strategy = "longest-idle"
    ring_timeout_s: int = 20
    wrap_up_s: int = 10
    max_no_answer: int = 3
    no_answer_delay_s: int = 30
    busy_delay_s: int = 30
    tier_wait_s: int = 0
    hold: Prompt = DEFAULT_HOLD
    hold_segment_s: int = 20
    announce_position: bool = True
    announce_every_s: int = 60
    max_wait_s: int = 600
    callback_after_s: int | None = None
    callback_offer: Prompt = DEFAULT_CALLBACK_OFFER
    no_agents_grace_s: int = 60
    callback_retry_s: int = 300
    callback_attempts: int = 3
    locale: str | None = None
    voice: str | None = None
    description: str = ""

    @property
    def offers_callback(self) -> bool:
        return self.callback_after_s is not None


@dataclass(frozen=True)
class Membership:
    """An agent's place in one queue: its tier ``level`` and its ``position`` (for
    the ``top-down`` strategy)."""

    level: int = 1
    position: int = 1


@dataclass(frozen=True, kw_only=True)
class Agent:
    """An agent as configured (``PUT /agents/{id}``); the live ``status`` and
    ``state`` are kept beside it by ``service.runtime.agents``."""

    id: str
    name: str
    address: str  # E.164 or a sip: URI: what the bridge dials
    queues: Mapping[str, Membership] = field(default_factory=dict)


def queues_of(loaded: Graph | GraphSet) -> Mapping[str, Queue]:
    """The queues a loaded graph (or graph set) carries, typed: ``Graph.queues`` is
    declared ``Mapping[str, Any]`` because ``service.core.graph`` cannot import this
    module (it imports that one)."""
    return cast(Mapping[str, Queue], loaded.queues)
