"""Driving calls. Every reason to advance a call is a *trigger*: a Bird delivery
(:class:`Delivered`), a lookup's answer (:class:`LookupAnswered`), an outbound call
Bird just accepted (:class:`OutboundPlaced`) or a command Bird refused
(:class:`CommandRefused`). :meth:`CallHandler.apply` handles each in the same
steps: *load* the call's state, *plan* what the trigger does to it (the engine's
transition, or an :class:`Handled` that changes nothing), *commit* the new state
atomically, then log the engine's notes and *act* (commands to Bird, lookups).

A repeated delivery, or one older (``updatedAt``) than what the call's state has
seen on that leg, changes nothing and sends no command. Two triggers for one call
handled at once never both advance it: the commit is a compare-and-set and the
loser plans again from the winner's state.

Outbound calls: :meth:`CallHandler.place_outbound` records the call under a
reference that travels in the call's ``notification.url`` (``?ref=...``), so a
delivery that arrives before Bird's answer to the create request still finds it.

A command Bird refuses on a call that has not ended would leave the caller in
silence: the call is abandoned (hung up and ended, loudly).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, assert_never

import structlog
from redis.asyncio import Redis

from service.bird.commands import BirdCalls
from service.bird.deliveries import Delivery, to_event
from service.bird.errors import BirdError
from service.core import actions, engine
from service.core.actions import Action
from service.core.engine import Transition
from service.core.events import HttpResponded
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
class Handled:
    """What the service did with a trigger (for a delivery: returned to Bird in the
    2xx body). Not how a call ended: that is ``service.core.state.Outcome``."""

    status: Literal["applied", "duplicate", "stale", "ignored", "unknown_call", "contended"]
    detail: str = ""


@dataclass(frozen=True)
class PendingOutbound:
    """An outbound call we asked Bird to place, kept under its reference
    (``keys.outbound``) until its first delivery."""

    graph: str
    version: str
    to: str
    from_: str
    variables: Mapping[str, str]

    def to_json(self) -> str:
        return json.dumps(
            {
                "graph": self.graph,
                "version": self.version,
                "to": self.to,
                "from": self.from_,
                "vars": dict(self.variables),
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> PendingOutbound:
        data = json.loads(raw)
        return cls(data["graph"], data["version"], data["to"], data["from"], data["vars"])


# -- triggers: why a call advances ----------------------------------------------


@dataclass(frozen=True)
class Delivered:
    """Bird delivered news of the call; ``ref`` is the outbound reference of the
    URL it came to."""

    delivery: Delivery
    ref: str | None = None


@dataclass(frozen=True)
class LookupAnswered:
    """A lookup (``http`` node) answered, asked at ``node`` by the state ``version``."""

    node: str | None
    version: int
    answer: HttpResponded


@dataclass(frozen=True)
class OutboundPlaced:
    """Bird accepted the outbound call we asked for."""

    pending: PendingOutbound


@dataclass(frozen=True)
class CommandRefused:
    """Bird refused ``action``, sent by the state ``version``, and the call is live."""

    action: str
    version: int


Trigger = Delivered | LookupAnswered | OutboundPlaced | CommandRefused


@dataclass(frozen=True)
class _Plan:
    """What to commit: the transition's state, if the call is still at ``expected_version``."""

    graph: Graph
    transition: Transition
    expected_version: int
    detail: str = ""  # of what is Handled, once applied

    def remembering(self, delivery: Delivery) -> _Plan:
        """The same plan, with the call remembering ``delivery`` (repeats, late ones)."""
        state = _remember(self.transition.state, delivery)
        transition = replace(self.transition, state=state)
        return replace(self, transition=transition, detail=delivery.describe())


class CallHandler:
    def __init__(
        self,
        *,
        store: CallStore,
        redis: Redis,
        bird: BirdCalls,
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
        self._bird = bird
        self._registry = registry
        self._fetch = fetch
        self._notification_url = notification_url
        self._new_call_max_age_s = new_call_max_age_s
        self._clock = clock
        self._graph_clock = graph_clock or clock

    # -- the ways in ---------------------------------------------------------------

    async def handle(self, delivery: Delivery, ref: str | None = None) -> Handled:
        """Apply one Bird delivery. ``ref`` is the outbound reference of the URL it came to."""
        bound = log.bind(call_id=delivery.call_id, delivery=delivery.describe())
        if delivery.leg_id != delivery.call_id:
            bound = bound.bind(leg_id=delivery.leg_id)
        return await self.apply(delivery.call_id, Delivered(delivery, ref), bound)

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
        pending = PendingOutbound(graph.id, graph.version, to, from_ or "", dict(variables))
        ttl = int(OUTBOUND_REF_TTL_S + max(delay_s, 0))
        await self._redis.set(keys.outbound(ref), pending.to_json(), ex=ttl)
        try:
            call_id = await self._bird.create_call(
                to=to,
                from_=from_,
                notification_url=f"{self._notification_url}?ref={ref}",
                scheduled_for=scheduled_for,
            )
        except BirdError:
            await self._redis.delete(keys.outbound(ref))
            raise
        await self.apply(call_id, OutboundPlaced(pending))
        return call_id

    # -- the loop: load, plan, commit, act -------------------------------------------

    async def apply(self, call_id: str, trigger: Trigger, bound: Any = None) -> Handled:
        """Advance the call by ``trigger``. ``bound`` is the logger bound to what is
        being handled (by default: the call)."""
        bound = bound if bound is not None else log.bind(call_id=call_id)
        for _ in range(MAX_COMMIT_ATTEMPTS):
            current = await self._store.load(call_id)
            plan = await self._plan(call_id, trigger, current, self._graph_clock(), bound)
            if isinstance(plan, Handled):
                return plan
            transition = plan.transition
            written = await self._store.commit(
                transition.state, expected_version=plan.expected_version
            )
            if written is None:
                continue  # another worker advanced this call first: plan again from its state
            self._log_notes(bound, transition, plan.graph)
            await self._act(bound, written, transition.actions)
            return Handled("applied", plan.detail)
        bound.error("delivery_contended", attempts=MAX_COMMIT_ATTEMPTS, graph=None, node=None)
        return Handled("contended", "the call changed too often; deliver again")

    async def _plan(
        self, call_id: str, trigger: Trigger, current: CallState | None, now: float, bound: Any
    ) -> _Plan | Handled:
        """Given the call's state as loaded (None: unknown) and the time graphs see,
        what to commit: a plan, or an outcome that changes nothing."""
        match trigger:
            case Delivered():
                return await self._plan_delivery(trigger, current, now, bound)
            case LookupAnswered():
                return await self._plan_lookup_answer(trigger, current, now)
            case OutboundPlaced():
                return await self._plan_placed(call_id, trigger, current, now, bound)
            case CommandRefused():
                return await self._plan_abandon(trigger, current, now)
            case _:  # pragma: no cover
                assert_never(trigger)

    async def _act(self, bound: Any, current: CallState, todo: tuple[Action, ...]) -> None:
        """Perform the committed transition's actions, in order: lookups here,
        everything else by Bird. A command Bird refuses stops the rest."""
        for action in todo:
            if isinstance(action, actions.HttpRequest):
                await self._look_up(bound, current, action)
                continue
            name = type(action).__name__.lower()
            try:
                receipt = await self._bird.perform(
                    current.call_id, action, notification_url=self._notification_url
                )
            except BirdError as exc:
                await self._refused(bound, current, name, exc)
                return
            self._log(bound, current, "bird_command_sent", "debug", action=name,
                      command_id=receipt.command_id)  # fmt: skip

    # -- planning, one method per trigger ----------------------------------------------

    async def _plan_delivery(
        self, trigger: Delivered, current: CallState | None, now: float, bound: Any
    ) -> _Plan | Handled:
        """A new call, or the next event of a known one; the call remembers the delivery."""
        if current is None:
            planned = await self._plan_first_delivery(trigger, now, bound)
        else:
            planned = await self._plan_next_delivery(trigger.delivery, current, now, bound)
        if isinstance(planned, Handled):
            return planned
        return planned.remembering(trigger.delivery)

    async def _plan_first_delivery(
        self, trigger: Delivered, now: float, bound: Any
    ) -> _Plan | Handled:
        delivery = trigger.delivery
        # Only a call we have no state for yet needs its outbound record.
        pending = await self._pending_outbound(trigger.ref) if trigger.ref else None
        if pending is not None:
            return await self._begin_outbound(delivery.call_id, pending, now, bound)
        return self._begin_inbound(delivery, now, bound)

    async def _plan_next_delivery(
        self, delivery: Delivery, current: CallState, now: float, bound: Any
    ) -> _Plan | Handled:
        if delivery.updated_us < current.seen.get(delivery.leg_id, 0):
            self._log(bound, current, "delivery_stale", "debug")
            return Handled("stale", "older than what this call has seen")
        if delivery.fingerprint in current.recent:
            self._log(bound, current, "delivery_duplicate", "debug")
            return Handled("duplicate")
        graph = await self._registry.graph_for(current.graph, current.graph_version)
        if graph is None:
            self._log(bound, current, "graph_version_missing", "error",
                      version=current.graph_version)  # fmt: skip
            return Handled("ignored", f"graph {current.graph} {current.graph_version} is gone")
        return _Plan(graph, engine.step(graph, current, to_event(delivery), now), current.version)

    async def _plan_lookup_answer(
        self, trigger: LookupAnswered, current: CallState | None, now: float
    ) -> _Plan | Handled:
        if (
            current is None
            or current.phase != Phase.REQUESTING
            or current.node != trigger.node
            or current.version != trigger.version
        ):
            return Handled("ignored", "the call moved on while the lookup ran")
        graph = await self._graph_of(current)
        return _Plan(graph, engine.step(graph, current, trigger.answer, now), current.version)

    async def _plan_placed(
        self,
        call_id: str,
        trigger: OutboundPlaced,
        current: CallState | None,
        now: float,
        bound: Any,
    ) -> _Plan | Handled:
        if current is not None:  # its first delivery was faster than Bird's answer
            return Handled("applied", "already started")
        return await self._begin_outbound(call_id, trigger.pending, now, bound)

    async def _plan_abandon(
        self, trigger: CommandRefused, current: CallState | None, now: float
    ) -> _Plan | Handled:
        if current is None or current.ended or current.version != trigger.version:
            return Handled("ignored")
        graph = await self._graph_of(current)
        reason = f"{trigger.action} refused by Bird"
        return _Plan(graph, engine.abandon(graph, current, reason, now), current.version)

    def _begin_inbound(self, delivery: Delivery, now: float, bound: Any) -> _Plan | Handled:
        if not delivery.is_new_call_offer:
            bound.info("unknown_call", graph=None, node=None, status=delivery.status)
            return Handled("unknown_call", "no state for this call and not a new incoming call")
        age_s = self._clock() - delivery.created_us / 1_000_000
        if age_s > self._new_call_max_age_s:
            bound.warning("new_call_too_old", graph=None, node=None, age_s=round(age_s))
            return Handled("ignored", "a new call this old has long gone: not answered")
        graph = self._registry.for_number(delivery.called)
        if graph is None:
            bound.error(
                "no_graph_for_number", graph=None, node=None, called=delivery.called,
                hint="list the number in a graph's numbers or set IVR_DEFAULT_GRAPH",
            )  # fmt: skip
            return Handled("ignored", "no graph answers this number")
        transition = engine.begin(
            graph, call_id=delivery.call_id, caller=delivery.caller, called=delivery.called, now=now
        )
        return _Plan(graph, transition, 0)

    async def _begin_outbound(
        self, call_id: str, pending: PendingOutbound, now: float, bound: Any
    ) -> _Plan | Handled:
        found = await self._registry.graph_for(pending.graph, pending.version)
        if found is None:
            bound.error("graph_version_missing", graph=pending.graph, node=None)
            return Handled("ignored", "the outbound call's graph is gone")
        transition = engine.begin(
            found, call_id=call_id, caller=pending.to, called=pending.from_, now=now,
            direction=Direction.OUTBOUND, variables=pending.variables,
        )  # fmt: skip
        return _Plan(found, transition, 0)

    async def _pending_outbound(self, ref: str) -> PendingOutbound | None:
        raw = await self._redis.get(keys.outbound(ref))
        return PendingOutbound.from_json(raw) if raw is not None else None

    async def _graph_of(self, current: CallState) -> Graph:
        """The graph version a live call runs on (kept while calls run on it)."""
        graph = await self._registry.graph_for(current.graph, current.graph_version)
        assert graph is not None
        return graph

    # -- acting: lookups, and Bird refusing a command ------------------------------------

    async def _look_up(self, bound: Any, current: CallState, request: actions.HttpRequest) -> None:
        answer = await self._fetch(request)
        answered = LookupAnswered(current.node, current.version, answer)
        await self.apply(current.call_id, answered, bound)

    async def _refused(self, bound: Any, current: CallState, action: str, error: BirdError) -> None:
        """Bird refused a command. If the call has already ended (the caller hung up
        meanwhile) its own delivery ends the state. Otherwise the caller would be
        left in silence: hang up and end the call, loudly."""
        found = await self._bird.call_status(current.call_id)
        if found is not None and found.ended:
            self._log(bound, current, "command_refused_call_ended", "info", action=action,
                      status=found.status)  # fmt: skip
            return
        self._log(bound, current, "bird_command_failed", "error", action=action, error=str(error))
        if action == "hangup":
            return
        await self.apply(current.call_id, CommandRefused(action, current.version), bound)

    # -- logging -----------------------------------------------------------------------

    @staticmethod
    def _log(bound: Any, current: CallState, event: str, level: str, **fields: Any) -> None:
        getattr(bound, level)(event, graph=current.graph, node=current.node, **fields)

    @staticmethod
    def _log_notes(bound: Any, transition: Transition, graph: Graph) -> None:
        for note in transition.notes:
            getattr(bound, note.level)(note.event, graph=graph.id, node=note.node, **note.fields)


def _remember(new: CallState, delivery: Delivery) -> CallState:
    seen = dict(new.seen)
    seen[delivery.leg_id] = max(seen.get(delivery.leg_id, 0), delivery.updated_us)
    recent = (*new.recent, delivery.fingerprint)[-RECENT_DELIVERIES:]
    return replace(new, seen=seen, recent=recent)
