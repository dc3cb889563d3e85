"""Handling one delivery for a call: load its state, apply the engine, commit
atomically, log what happened, then drive the call through Bird.

A repeated delivery, or one older (``updatedAt``) than what the call's state has
seen on that leg, changes nothing and sends no command. Two deliveries for one
call handled at once never both advance it: the commit is a compare-and-set and
the loser starts again from the winner's state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import structlog

from service import engine
from service.bird import adapter
from service.bird.adapter import Delivery
from service.bird.client import BirdClient, BirdError
from service.engine import Transition
from service.graphs import Graph, GraphSet
from service.state import CallState
from service.store import CallStore

log = structlog.get_logger("calls")

# How many delivery fingerprints a call remembers (repeats come close together;
# older repeats are also caught by their updatedAt).
RECENT_DELIVERIES = 32
MAX_COMMIT_ATTEMPTS = 8


@dataclass(frozen=True)
class Outcome:
    """What the service did with a delivery (returned to Bird in the 2xx body)."""

    status: str  # applied | duplicate | stale | ignored | unknown_call | contended
    detail: str = ""


class CallHandler:
    def __init__(
        self,
        *,
        store: CallStore,
        client: BirdClient,
        graphs: Callable[[], GraphSet],
        notification_url: str,
        new_call_max_age_s: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._client = client
        self._graphs = graphs
        self._notification_url = notification_url
        self._new_call_max_age_s = new_call_max_age_s
        self._clock = clock

    async def handle(self, delivery: Delivery) -> Outcome:
        bound = log.bind(call_id=delivery.call_id, delivery=delivery.describe())
        if delivery.leg_id != delivery.call_id:
            bound = bound.bind(leg_id=delivery.leg_id)
        for _ in range(MAX_COMMIT_ATTEMPTS):
            current = await self._store.load(delivery.call_id)
            now = self._clock()
            if current is None:
                planned = self._plan_new_call(delivery, now, bound)
                if isinstance(planned, Outcome):
                    return planned
                graph, transition = planned
                expected = 0
            else:
                if delivery.updated_us < current.seen.get(delivery.leg_id, 0):
                    self._log(bound, current, "delivery_stale", "debug")
                    return Outcome("stale", "older than what this call has seen")
                if delivery.fingerprint in current.recent:
                    self._log(bound, current, "delivery_duplicate", "debug")
                    return Outcome("duplicate")
                found = self._graph_for(current)
                if found is None:
                    self._log(bound, current, "graph_missing", "error")
                    return Outcome("ignored", f"graph {current.graph!r} is not loaded")
                graph = found
                event = adapter.to_event(delivery)
                transition = engine.step(graph, current, event, now)
                expected = current.version
            new_state = _remember(transition.state, delivery)
            written = await self._store.commit(new_state, expected_version=expected)
            if written is None:
                continue  # another worker advanced this call first: start again from its state
            transition = replace(transition, state=written)
            self._log_notes(bound, transition, graph)
            await self._perform(bound, transition)
            return Outcome("applied", delivery.describe())
        bound.error("delivery_contended", attempts=MAX_COMMIT_ATTEMPTS, graph=None, node=None)
        return Outcome("contended", "the call changed too often; deliver again")

    def _plan_new_call(
        self, delivery: Delivery, now: float, bound: Any
    ) -> tuple[Graph, Transition] | Outcome:
        if not delivery.is_new_call_offer:
            bound.info("unknown_call", graph=None, node=None, status=delivery.status)
            return Outcome("unknown_call", "no state for this call and not a new incoming call")
        age_s = now - delivery.created_us / 1_000_000
        if age_s > self._new_call_max_age_s:
            bound.warning("new_call_too_old", graph=None, node=None, age_s=round(age_s))
            return Outcome("ignored", "a new call this old has long gone: not answered")
        graph = self._graphs().for_number(delivery.called)
        if graph is None:
            bound.error(
                "no_graph_for_number", graph=None, node=None, called=delivery.called,
                hint="list the number in a graph's numbers or set IVR_DEFAULT_GRAPH",
            )  # fmt: skip
            return Outcome("ignored", "no graph answers this number")
        transition = engine.begin(
            graph,
            call_id=delivery.call_id,
            caller=delivery.caller,
            called=delivery.called,
            now=now,
        )
        return graph, transition

    def _graph_for(self, current: CallState) -> Graph | None:
        return self._graphs().graphs.get(current.graph)

    @staticmethod
    def _log(bound: Any, current: CallState, event: str, level: str, **fields: Any) -> None:
        getattr(bound, level)(event, graph=current.graph, node=current.node, **fields)

    @staticmethod
    def _log_notes(bound: Any, transition: Transition, graph: Graph) -> None:
        for note in transition.notes:
            getattr(bound, note.level)(note.event, graph=graph.id, node=note.node, **note.fields)

    async def _perform(self, bound: Any, transition: Transition) -> None:
        current = transition.state
        for action in transition.actions:
            name = type(action).__name__.lower()
            try:
                await adapter.perform(
                    self._client,
                    current.call_id,
                    action,
                    notification_url=self._notification_url,
                )
            except BirdError as exc:
                self._log(
                    bound, current, "bird_command_failed", "error", action=name, error=str(exc)
                )
                return
            self._log(bound, current, "bird_command_sent", "debug", action=name)


def _remember(new: CallState, delivery: Delivery) -> CallState:
    seen = dict(new.seen)
    seen[delivery.leg_id] = max(seen.get(delivery.leg_id, 0), delivery.updated_us)
    recent = (*new.recent, delivery.fingerprint)[-RECENT_DELIVERIES:]
    return replace(new, seen=seen, recent=recent)
