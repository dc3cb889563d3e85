"""Driving calls: each delivery (or lookup answer) is applied to the call's state
by the engine, committed atomically, logged, and acted on.

A repeated delivery, or one older (``updatedAt``) than what the call's state has
seen on that leg, changes nothing and sends no command. Two deliveries for one
call handled at once never both advance it: the commit is a compare-and-set and
the loser starts again from the winner's state.

Outbound calls: :meth:`CallHandler.place_outbound` records the call under a
reference that travels in the call's ``notification.url`` (``?ref=...``), so a
delivery that arrives before Bird's answer to the create request still finds it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import structlog
from redis.asyncio import Redis

from service.bird import adapter
from service.bird.adapter import Delivery
from service.bird.client import BirdClient, BirdError
from service.core import actions, engine
from service.core.engine import Transition
from service.core.graph import Graph
from service.core.state import CallState, Direction, Phase
from service.runtime import keys
from service.runtime.lookups import Fetch
from service.runtime.registry import Registry
from service.runtime.store import CallStore

log = structlog.get_logger("calls")

# How many delivery fingerprints a call remembers (repeats come close together;
# older repeats are also caught by their updatedAt).
RECENT_DELIVERIES = 32
MAX_COMMIT_ATTEMPTS = 8
# How long an outbound call's reference waits for its first delivery, beyond its
# scheduled time.
OUTBOUND_REF_TTL_S = 24 * 3600


@dataclass(frozen=True)
class Outcome:
    """What the service did with a delivery (returned to Bird in the 2xx body)."""

    status: str  # applied | duplicate | stale | ignored | unknown_call | contended
    detail: str = ""


@dataclass(frozen=True)
class _Plan:
    graph: Graph
    transition: Transition
    expected_version: int


# Given the call's state as loaded (None: unknown) and the time graphs see, what
# to commit: a plan, or an outcome that changes nothing.
Planner = Callable[[CallState | None, float], Awaitable["_Plan | Outcome"]]


class CallHandler:
    def __init__(
        self,
        *,
        store: CallStore,
        redis: Redis,
        client: BirdClient,
        registry: Registry,
        fetch: Fetch,
        notification_url: str,
        new_call_max_age_s: int,
        clock: Callable[[], float] = time.time,
        graph_clock: Callable[[], float] | None = None,
    ) -> None:
        """``clock`` is the real time (ages of deliveries); ``graph_clock`` the time
        graphs see (``hours`` nodes): the same unless a demo or test pins it."""
        self._store = store
        self._redis = redis
        self._client = client
        self._registry = registry
        self._fetch = fetch
        self._notification_url = notification_url
        self._new_call_max_age_s = new_call_max_age_s
        self._clock = clock
        self._graph_clock = graph_clock or clock

    # -- deliveries ------------------------------------------------------------

    async def handle(self, delivery: Delivery, ref: str | None = None) -> Outcome:
        """Apply one Bird delivery. ``ref`` is the outbound reference of the URL it came to."""
        bound = log.bind(call_id=delivery.call_id, delivery=delivery.describe())
        if delivery.leg_id != delivery.call_id:
            bound = bound.bind(leg_id=delivery.leg_id)

        async def plan(current: CallState | None, now: float) -> _Plan | Outcome:
            if current is None:
                # Only a call we have no state for yet needs its outbound record.
                pending = await self._pending_outbound(ref) if ref else None
                if pending is not None:
                    return await self._plan_outbound(delivery.call_id, pending, now, bound)
                return self._plan_new_call(delivery, now, bound)
            if delivery.updated_us < current.seen.get(delivery.leg_id, 0):
                self._log(bound, current, "delivery_stale", "debug")
                return Outcome("stale", "older than what this call has seen")
            if delivery.fingerprint in current.recent:
                self._log(bound, current, "delivery_duplicate", "debug")
                return Outcome("duplicate")
            graph = await self._registry.graph_for(current.graph, current.graph_version)
            if graph is None:
                self._log(bound, current, "graph_version_missing", "error",
                          version=current.graph_version)  # fmt: skip
                return Outcome("ignored", f"graph {current.graph} {current.graph_version} is gone")
            event = adapter.to_event(delivery)
            return _Plan(graph, engine.step(graph, current, event, now), current.version)

        return await self._advance(delivery.call_id, plan, bound, delivery)

    async def _advance(
        self,
        call_id: str,
        plan: Planner,
        bound: Any,
        delivery: Delivery | None = None,
    ) -> Outcome:
        """Load, plan, commit (compare-and-set, retried), log, act."""
        for _ in range(MAX_COMMIT_ATTEMPTS):
            current = await self._store.load(call_id)
            planned = await plan(current, self._graph_clock())
            if isinstance(planned, Outcome):
                return planned
            new_state = planned.transition.state
            if delivery is not None:
                new_state = _remember(new_state, delivery)
            written = await self._store.commit(new_state, expected_version=planned.expected_version)
            if written is None:
                continue  # another worker advanced this call first: start again from its state
            transition = replace(planned.transition, state=written)
            self._log_notes(bound, transition, planned.graph)
            await self._perform(bound, transition)
            return Outcome("applied", delivery.describe() if delivery else "")
        bound.error("delivery_contended", attempts=MAX_COMMIT_ATTEMPTS, graph=None, node=None)
        return Outcome("contended", "the call changed too often; deliver again")

    def _plan_new_call(self, delivery: Delivery, now: float, bound: Any) -> _Plan | Outcome:
        if not delivery.is_new_call_offer:
            bound.info("unknown_call", graph=None, node=None, status=delivery.status)
            return Outcome("unknown_call", "no state for this call and not a new incoming call")
        age_s = self._clock() - delivery.created_us / 1_000_000
        if age_s > self._new_call_max_age_s:
            bound.warning("new_call_too_old", graph=None, node=None, age_s=round(age_s))
            return Outcome("ignored", "a new call this old has long gone: not answered")
        graph = self._registry.for_number(delivery.called)
        if graph is None:
            bound.error(
                "no_graph_for_number", graph=None, node=None, called=delivery.called,
                hint="list the number in a graph's numbers or set IVR_DEFAULT_GRAPH",
            )  # fmt: skip
            return Outcome("ignored", "no graph answers this number")
        transition = engine.begin(
            graph, call_id=delivery.call_id, caller=delivery.caller, called=delivery.called, now=now
        )
        return _Plan(graph, transition, 0)

    # -- lookups (http nodes) --------------------------------------------------

    async def _lookup(self, bound: Any, current: CallState, request: actions.HttpRequest) -> None:
        answer = await self._fetch(request)
        node = current.node

        async def plan(now_state: CallState | None, now: float) -> _Plan | Outcome:
            if (
                now_state is None
                or now_state.phase != Phase.REQUESTING
                or now_state.node != node
                or now_state.version != current.version
            ):
                return Outcome("ignored", "the call moved on while the lookup ran")
            graph = await self._registry.graph_for(now_state.graph, now_state.graph_version)
            assert graph is not None
            return _Plan(graph, engine.step(graph, now_state, answer, now), now_state.version)

        await self._advance(current.call_id, plan, bound)

    # -- outbound calls ----------------------------------------------------------

    async def place_outbound(
        self,
        graph: Graph,
        *,
        to: str,
        from_: str | None,
        variables: Mapping[str, str],
        scheduled_for: str | None,
        delay_s: float = 0.0,
    ) -> str:
        """Ask Bird to call ``to``; the graph runs from ``start`` when they answer.
        Returns Bird's call id. Raises ``BirdError`` when Bird refuses."""
        ref = uuid.uuid4().hex
        pending = {"graph": graph.id, "version": graph.version, "to": to, "from": from_ or "",
                   "vars": dict(variables)}  # fmt: skip
        ttl = int(OUTBOUND_REF_TTL_S + max(delay_s, 0))
        await self._redis.set(keys.outbound(ref), json.dumps(pending), ex=ttl)
        body: dict[str, Any] = {
            "to": to,
            "from": from_,
            "notification": {"url": f"{self._notification_url}?ref={ref}"},
            "scheduledFor": scheduled_for,
        }
        try:
            created = await self._client.create_call(body)
        except BirdError:
            await self._redis.delete(keys.outbound(ref))
            raise
        call_id = str(created.get("id", ""))
        bound = log.bind(call_id=call_id)

        async def plan(current: CallState | None, now: float) -> _Plan | Outcome:
            if current is not None:  # its first delivery was faster than Bird's answer
                return Outcome("applied", "already started")
            return await self._plan_outbound(call_id, pending, now, bound)

        await self._advance(call_id, plan, bound)
        return call_id

    async def _pending_outbound(self, ref: str) -> dict[str, Any] | None:
        raw = await self._redis.get(keys.outbound(ref))
        return json.loads(raw) if raw is not None else None

    async def _plan_outbound(
        self, call_id: str, pending: Mapping[str, Any], now: float, bound: Any
    ) -> _Plan | Outcome:
        found = await self._registry.graph_for(pending["graph"], pending["version"])
        if found is None:
            bound.error("graph_version_missing", graph=pending["graph"], node=None)
            return Outcome("ignored", "the outbound call's graph is gone")
        transition = engine.begin(
            found, call_id=call_id, caller=pending["to"], called=pending["from"], now=now,
            direction=Direction.OUTBOUND, variables=pending["vars"],
        )  # fmt: skip
        return _Plan(found, transition, 0)

    # -- logging and acting ------------------------------------------------------

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
            if isinstance(action, actions.HttpRequest):
                await self._lookup(bound, current, action)
                continue
            name = type(action).__name__.lower()
            try:
                answer = await adapter.perform(
                    self._client, current.call_id, action, notification_url=self._notification_url
                )
            except BirdError as exc:
                await self._refused(bound, current, name, exc)
                return
            self._log(bound, current, "bird_command_sent", "debug", action=name,
                      command_id=_command_id(answer))  # fmt: skip

    async def _refused(self, bound: Any, current: CallState, action: str, error: BirdError) -> None:
        """Bird refused a command. If the call has already ended (the caller hung up
        meanwhile) its own delivery ends the state. Otherwise the caller would be
        left in silence: hang up and end the call, loudly."""
        try:
            status = (await self._client.get_call(current.call_id)).get("status")
        except BirdError:
            status = None
        if status in adapter.FINAL_STATUSES:
            self._log(bound, current, "command_refused_call_ended", "info", action=action,
                      status=status)  # fmt: skip
            return
        self._log(bound, current, "bird_command_failed", "error", action=action, error=str(error))
        if action == "hangup":
            return

        async def plan(now_state: CallState | None, now: float) -> _Plan | Outcome:
            if now_state is None or now_state.ended or now_state.version != current.version:
                return Outcome("ignored")
            graph = await self._registry.graph_for(now_state.graph, now_state.graph_version)
            assert graph is not None
            reason = f"{action} refused by Bird"
            return _Plan(graph, engine.abandon(graph, now_state, reason, now), now_state.version)

        await self._advance(current.call_id, plan, bound)


def _command_id(answer: Mapping[str, Any]) -> str | None:
    command = answer.get("command", answer)
    return command.get("id") if isinstance(command, dict) else None


def _remember(new: CallState, delivery: Delivery) -> CallState:
    seen = dict(new.seen)
    seen[delivery.leg_id] = max(seen.get(delivery.leg_id, 0), delivery.updated_us)
    recent = (*new.recent, delivery.fingerprint)[-RECENT_DELIVERIES:]
    return replace(new, seen=seen, recent=recent)
