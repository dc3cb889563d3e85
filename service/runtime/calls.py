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

Queues: a transition's changes to the line (``service.core.line``) are committed
with its state (``CallStore.commit_changes``). Whenever a commit, an agent's timer or
an agent's status frees an agent or puts a caller back in line, :meth:`CallHandler.dispatch`
asks the line (``service.runtime.line``) for offers and hands each to its caller's
call (:class:`Offered`); an offer the call cannot take is taken back at once.

Outbound calls: :meth:`CallHandler.place_outbound` records the call under a
reference that travels in the call's ``notification.url`` (``?ref=...``), so a
delivery that arrives before Bird's answer to the create request still finds it.
A callback's offer becomes such a call (:meth:`CallHandler.place_callback`), whose
first commit takes the offer; Bird refusing to place it fails the attempt, and a
call placed for an offer the line took back meanwhile is hung up at once.

The command a transition decides is the call's pending command
(``service.runtime.outbox``), committed with the state that decided it and then
sent (*act*); Bird's answer is acknowledged in the call. A repeated delivery of a
step whose command is still due, and the call's durable timer
(``service.runtime.timers``, :meth:`CallHandler.fire`), send it again or read the
call back from Bird, so that neither a dying worker nor a lost answer leaves a
caller in silence. A command Bird refuses, or still does not take after
``outbox.RETRY_HORIZON_S``, on a call that has not ended, would leave the caller in
silence too: the call is abandoned (hung up and ended, loudly), and the hang-up is
retried until Bird confirms it or the call is gone.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, assert_never

import structlog
from redis.asyncio import Redis

from service.bird.commands import (
    BirdCalls,
    CallStatus,
    CommandReceipt,
    NotPerformed,
    Refused,
    Unsure,
)
from service.bird.deliveries import Delivery, to_event
from service.bird.errors import BirdError
from service.core import actions, engine, events, journal, traffic
from service.core.engine import Transition
from service.core.events import HttpResponded
from service.core.graph import Graph
from service.core.state import CallState, Direction, InLine
from service.runtime import journal as call_journal
from service.runtime import keys, metrics, outbox
from service.runtime.line import CallbackCall, Line, LineResult, Offer
from service.runtime.lookups import Fetch
from service.runtime.outbox import Pending
from service.runtime.registry import Registry
from service.runtime.store import KEEP, CallStore, Conflict, Keep, OfferGone, StoredCall

log = structlog.get_logger("calls")

# How many delivery fingerprints a call remembers (repeats come close together;
# older repeats are also caught by their updatedAt).
RECENT_DELIVERIES = 32
MAX_COMMIT_ATTEMPTS = 8
# How long an outbound call's reference waits for its first delivery, beyond its
# scheduled time.
OUTBOUND_REF_TTL_S = 24 * 3600
# At most this many offers are made in a row for one queue by one dispatch.
DISPATCH_BURST = 50


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
    callback: InLine | None = None  # a callback's follow-up call: its place and offer
    node: str | None = None  # the callback node

    def to_json(self) -> str:
        return json.dumps(
            {
                "graph": self.graph,
                "version": self.version,
                "to": self.to,
                "from": self.from_,
                "vars": dict(self.variables),
                "callback": self.callback.to_dict() if self.callback is not None else None,
                "node": self.node,
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> PendingOutbound:
        data = json.loads(raw)
        callback = data.get("callback")
        return cls(data["graph"], data["version"], data["to"], data["from"], data["vars"],
                   InLine.from_dict(callback) if callback else None, data.get("node"))  # fmt: skip


# -- triggers: why a call advances ----------------------------------------------


@dataclass(frozen=True)
class Delivered:
    """Bird delivered news of the call; ``ref`` is the outbound reference of the
    URL it came to."""

    delivery: Delivery
    ref: str | None = None
    offer: str | None = None  # the queue offer an agent leg's URL names (A10)


@dataclass(frozen=True)
class LookupAnswered:
    """A command the service performs itself, the pending command ``seq``, answered:
    a lookup (``http`` node, or the line for ``AskLine``), or a pause's timer."""

    seq: int
    answer: HttpResponded | events.LineStatus | events.PauseEnded


@dataclass(frozen=True)
class Offered:
    """The line offers the caller an agent (``service.runtime.line``)."""

    offer: Offer


@dataclass(frozen=True)
class OutboundPlaced:
    """Bird accepted the outbound call we asked for."""

    pending: PendingOutbound


@dataclass(frozen=True)
class CommandRefused:
    """Bird refused the pending command ``seq`` (named ``action``), or did not take
    it within the retry horizon, and the call is live: give the call up."""

    action: str
    seq: int


@dataclass(frozen=True)
class BirdShows:
    """Read back from Bird, the call shows what its late delivery would have said
    (it ended, it was answered, the command Bird accepted has had its outcome) while
    it waited on the pending command ``seq``."""

    event: events.Event
    seq: int


Trigger = Delivered | LookupAnswered | OutboundPlaced | CommandRefused | BirdShows | Offered


@dataclass(frozen=True)
class _Plan:
    """What to commit: the transition's state, if the call is still at ``expected_version``."""

    graph: Graph
    transition: Transition
    expected_version: int
    fed: Mapping[str, Any]  # what the engine was fed, for the call's journal
    now: float  # the time the graph saw
    detail: str = ""  # of what is Handled, once applied
    via: str = ""  # the delivery that caused the step

    def journal_entry(self, before: CallState | None, real_now: float) -> str:
        """The call's journal entry for this step (``service.core.journal``, with
        what ``service.runtime.journal`` adds for the call's timeline)."""
        state = self.transition.state
        extra: dict[str, Any] = {"rt": round(real_now, 3)}
        if self.via:
            extra["via"] = self.via
        if self.transition.actions:
            extra["do"] = [actions.describe(action) for action in self.transition.actions]
        if before is None:
            extra.update(graph=state.graph, version=state.graph_version)
        return journal.entry(
            self.fed, now=self.now, node=before.node if before is not None else None,
            notes=self.transition.notes, at=state.node,
            outcome=str(state.outcome) if state.outcome is not None else None, extra=extra,
        )  # fmt: skip

    def remembering(self, delivery: Delivery) -> _Plan:
        """The same plan, with the call remembering ``delivery`` (repeats, late ones)."""
        state = _remember(self.transition.state, delivery)
        transition = replace(self.transition, state=state)
        described = delivery.describe()
        return replace(self, transition=transition, detail=described, via=described)


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
        rng: random.Random | None = None,
        line: Line | None = None,
    ) -> None:
        """``clock`` is the real time (ages of deliveries, when commands are due);
        ``graph_clock`` the time graphs see (``hours`` nodes): the same unless a demo
        or test pins it. ``rng`` draws the jitter of retries."""
        self._store = store
        self._redis = redis
        self._bird = bird
        self._registry = registry
        self._fetch = fetch
        self._notification_url = notification_url
        self._new_call_max_age_s = new_call_max_age_s
        self._clock = clock
        self._graph_clock = graph_clock or clock
        self._rng = rng or random.Random()
        self._line = line or Line(redis, channel_id=store.channel_id, clock=clock)

    # -- the ways in ---------------------------------------------------------------

    async def handle(
        self, delivery: Delivery, ref: str | None = None, offer: str | None = None
    ) -> Handled:
        """Apply one Bird delivery. ``ref`` is the outbound reference of the URL it came
        to, ``offer`` the queue offer (an agent leg's news)."""
        bound = log.bind(call_id=delivery.call_id, delivery=delivery.describe())
        if delivery.leg_id != delivery.call_id:
            bound = bound.bind(leg_id=delivery.leg_id)
        handled = await self.apply(delivery.call_id, Delivered(delivery, ref, offer), bound)
        if handled.status in ("duplicate", "stale", "contended"):
            note = call_journal.delivery_note(
                self._clock(), delivery=delivery.describe(), status=handled.status,
                detail=handled.detail,
            )  # fmt: skip
            await self._store.note(delivery.call_id, note)
        if handled.status in ("duplicate", "stale"):
            # Bird delivers again what we did not answer: a worker may have died
            # between committing a step and sending its command.
            await self.fire(delivery.call_id, bound)
        return handled

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
        pending = PendingOutbound(graph.id, graph.version, to, from_ or "", dict(variables))
        call_id = await self._start_outbound(pending, scheduled_for, delay_s, graph)
        await self.apply(call_id, OutboundPlaced(pending))
        return call_id

    async def _start_outbound(
        self, pending: PendingOutbound, scheduled_for: str | None, delay_s: float, graph: Graph
    ) -> str:
        """Record ``pending`` under a new reference and ask Bird to place it, with the
        graph's machine detection and tags."""
        ref = uuid.uuid4().hex
        ttl = int(OUTBOUND_REF_TTL_S + max(delay_s, 0))
        await self._redis.set(keys.outbound(ref), pending.to_json(), ex=ttl)
        started = time.monotonic()
        try:
            call_id = await self._bird.create_call(
                to=pending.to,
                from_=pending.from_ or None,
                notification_url=f"{self._notification_url}?ref={ref}",
                scheduled_for=scheduled_for,
                amd=graph.amd,
                tags=graph.tags,
            )
        except BirdError:
            await self._redis.delete(keys.outbound(ref))
            raise
        later = f", scheduled for {scheduled_for}" if scheduled_for else ""
        note = call_journal.command_note(
            self._clock(), action="create_call", result="placed",
            ms=(time.monotonic() - started) * 1000, detail=f"to {pending.to}{later}",
        )  # fmt: skip
        await self._store.note(call_id, note)
        return call_id

    async def place_callback(self, offer: Offer) -> None:
        """Call a callback's customer back for the agent ``offer`` reserved: the
        follow-up call runs at the callback node of the graph that booked it (its
        current version)."""
        callback = offer.callback
        assert callback is not None
        bound = log.bind(call_id=None, queue=offer.queue, agent_id=offer.agent_id,
                         callback=callback.callback, offer=offer.offer)  # fmt: skip
        graph = self._registry.get(callback.graph)
        if graph is None:
            bound.error("callback_failed", graph=callback.graph, node=callback.node,
                        reason="its graph is not loaded", attempt=callback.attempt)  # fmt: skip
            await self.dispatch(await self._line.callback_unplaced(offer.offer))
            return
        # The line's times are the real clock's; the call's are the graphs' clock's.
        waiting = _callback_place(offer, callback, self._graph_clock() - self._clock())
        node = callback.node if callback.node in graph.nodes else None
        pending = PendingOutbound(graph.id, graph.version, callback.number, callback.line_number,
                                  {}, waiting, node)  # fmt: skip
        try:
            call_id = await self._start_outbound(pending, None, 0.0, graph)
        except BirdError as exc:
            bound.warning("callback_failed", graph=graph.id, node=node, reason=str(exc),
                          attempt=callback.attempt)  # fmt: skip
            await self.dispatch(await self._line.callback_unplaced(offer.offer))
            return
        await self.apply(call_id, OutboundPlaced(pending))

    async def _hang_up_orphan(self, call_id: str, bound: Any) -> None:
        bound.warning("callback_call_orphaned", call_id=call_id, graph=None, node=None)
        await self._bird.perform(call_id, actions.Hangup(), notification_url=self._notification_url)

    async def fire_timer(self, member: str) -> None:
        """A durable timer is due (``service.runtime.timers``): a call's, an agent's
        (a wrap-up or cooldown ends), an offer's (its lease expires) or a callback's
        (it is tried again)."""
        kind, _, ident = member.partition(":")
        if kind == "agent" and ident:
            await self.dispatch(await self._line.agent_due(ident))
        elif kind == "offer" and ident:
            await self.dispatch(await self._line.reap(ident))
        elif kind == "callback" and ":" in ident:
            queue, _, callback = ident.partition(":")
            await self.dispatch(await self._line.callback_due(queue, callback))
        else:
            await self.fire(member)

    async def dispatch(self, result: LineResult | None = None, *queues: str) -> None:
        """Log what a line change did to agents, then make every offer the line can
        in the queues it woke (and ``queues``): each goes to its caller's call, and
        an offer the call cannot take is taken back at once."""
        if result is not None:
            self._log_agents(log.bind(call_id=None), result)
        woken = list(dict.fromkeys([*(result.dispatch if result else ()), *queues]))
        for queue in woken:
            for _ in range(DISPATCH_BURST):
                offer = await self._line.dispatch(queue)
                if offer is None:
                    break
                if offer.callback is not None:
                    await self.place_callback(offer)
                    continue
                handled = await self.apply(offer.call_id, Offered(offer))
                if handled.status == "applied":
                    continue
                stored = await self._store.load_call(offer.call_id)
                waiting = stored.state.line if stored is not None else None
                gone = stored is None or stored.state.ended or waiting is None
                drop = gone or (waiting is not None and waiting.queue != queue)
                log.warning("offer_taken_back", call_id=offer.call_id, queue=queue,
                            agent_id=offer.agent_id, offer=offer.offer, graph=None, node=None,
                            reason=handled.detail, caller_dropped=drop)  # fmt: skip
                taken_back = await self._line.take_back(offer.offer, drop_caller=drop)
                await self.dispatch(replace(taken_back, dispatch=()))
                if not drop:
                    break  # the caller is live but not taking offers now: try later

    async def fire(self, call_id: str, bound: Any = None) -> None:
        """The call's timer is due (or Bird delivered a step again): take the next
        step for its pending command, if that is due now."""
        bound = bound if bound is not None else log.bind(call_id=call_id)
        stored = await self._store.load_call(call_id)
        if stored is None or stored.pending is None:
            await self._store.forget_timer(call_id)
            return
        pending, now = stored.pending, self._clock()
        if pending.until > now:
            await self._store.update_pending(call_id, pending.seq, pending)  # re-arm its timer
            return
        match pending.status:
            case "queued":
                await self._resend(bound, stored, pending, attempts=pending.attempts + 1)
            case "sending" if isinstance(pending.action, actions.Answer | actions.Hangup):
                await self._look_back(bound, stored, pending)  # reading the call settles it
            case "sending":
                # The worker sending it died, or Redis was away when Bird answered:
                # give its outcome the time to arrive before reading the call back.
                window = outbox.outcome_window_s(pending.action)
                unsure = pending.becomes("unsure", now + window)
                await self._store.update_pending(call_id, pending.seq, unsure)
            case "sent" | "unsure":
                await self._look_back(bound, stored, pending)

    # -- the loop: load, plan, commit, act -------------------------------------------

    async def apply(self, call_id: str, trigger: Trigger, bound: Any = None) -> Handled:
        """Advance the call by ``trigger``. ``bound`` is the logger bound to what is
        being handled (by default: the call)."""
        bound = bound if bound is not None else log.bind(call_id=call_id)
        # The call as this worker last wrote it, when it remembers it: the commit then
        # checks it is still current, and a lost race brings the call as it is.
        stored = await self._store.load_call(call_id, remembered=True)
        for _ in range(MAX_COMMIT_ATTEMPTS):
            plan = await self._plan(call_id, trigger, stored, self._graph_clock(), bound)
            if isinstance(plan, Handled):
                if self._store.remembers(stored):
                    # Nothing to write, decided from memory: decide from Redis instead.
                    stored = await self._store.load_call(call_id)
                    continue
                return plan
            transition = plan.transition
            pending = self._pending_of(transition, plan.expected_version + 1, stored)
            try:
                done = await self._store.commit_changes(
                    transition.state, expected_version=plan.expected_version, pending=pending,
                    changes=transition.line,
                    journal=plan.journal_entry(
                        stored.state if stored is not None else None, self._clock()
                    ),
                    traffic=traffic.counts(transition.notes), loaded=stored,
                )  # fmt: skip
            except OfferGone:
                if stored is None:
                    # A callback's follow-up call, placed for an offer the line took
                    # back meanwhile (its lease passed): nobody may talk to the
                    # customer on it, and the callback has its place again.
                    await self._hang_up_orphan(call_id, bound)
                return Handled("ignored", "the offer was taken back")
            if isinstance(done, Conflict):
                stored = done.current  # another worker advanced this call first: plan again
                continue
            written, line_result = done
            try:
                if isinstance(pending, Pending):
                    await self._send(bound, written, pending)
            finally:
                # Counted and logged once its command is out: not in the way of it.
                _count(stored, written)
                self._log_notes(bound, transition, plan.graph)
                self._log_agents(bound, line_result)
            if line_result.dispatch:
                await self.dispatch(None, *line_result.dispatch)
            return Handled("applied", plan.detail)
        bound.error("delivery_contended", attempts=MAX_COMMIT_ATTEMPTS, graph=None, node=None)
        return Handled("contended", "the call changed too often; deliver again")

    def _pending_of(
        self, transition: Transition, seq: int, stored: StoredCall | None
    ) -> Pending | Keep | None:
        """The call's pending command after ``transition``: the action it asks for,
        none, or (when the event moved nothing) the one the call already waits on."""
        if not transition.moved:
            return KEEP
        assert len(transition.actions) <= 1, "a call waits on one command at a time"
        if not transition.actions:
            return None
        action = transition.actions[0]
        if isinstance(action, actions.HangupLeg) and action.leg_id is None:
            # The agent's leg of the bridge the call waited on, as Bird named it.
            before = stored.pending if stored is not None else None
            if before is None or not isinstance(before.action, actions.Bridge) or not before.leg:
                return None  # never named: Bird ends it at its ring timeout
            action = actions.HangupLeg(before.leg)
        return outbox.sending(seq, action, self._clock())

    async def _plan(
        self,
        call_id: str,
        trigger: Trigger,
        stored: StoredCall | None,
        now: float,
        bound: Any,
    ) -> _Plan | Handled:
        """Given the call as loaded (None: unknown) and the time graphs see, what to
        commit: a plan, or what was done instead (nothing)."""
        match trigger:
            case Delivered():
                return await self._plan_delivery(trigger, stored, now, bound)
            case LookupAnswered():
                return await self._plan_answer(stored, trigger.seq, trigger.answer, now)
            case OutboundPlaced():
                return await self._plan_placed(call_id, trigger, stored, now, bound)
            case CommandRefused():
                return await self._plan_abandon(trigger, stored, now)
            case BirdShows():
                return await self._plan_answer(stored, trigger.seq, trigger.event, now)
            case Offered():
                return await self._plan_offer(trigger.offer, stored, now)
            case _:  # pragma: no cover
                assert_never(trigger)

    # -- planning, one method per trigger ----------------------------------------------

    async def _plan_delivery(
        self, trigger: Delivered, stored: StoredCall | None, now: float, bound: Any
    ) -> _Plan | Handled:
        """A new call, or the next event of a known one; the call remembers the delivery."""
        if stored is None:
            planned = await self._plan_first_delivery(trigger, now, bound)
        else:
            planned = await self._plan_next_delivery(trigger, stored.state, now, bound)
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
        self, trigger: Delivered, current: CallState, now: float, bound: Any
    ) -> _Plan | Handled:
        delivery = trigger.delivery
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
        event = to_event(delivery)
        if isinstance(event, events.AGENT_NEWS):
            event = replace(event, offer=trigger.offer)
        return _plan_step(graph, current, event, now)

    async def _plan_answer(
        self, stored: StoredCall | None, seq: int, event: events.Event, now: float
    ) -> _Plan | Handled:
        """What the call's pending command ``seq`` led to (a lookup's answer, or what
        Bird shows of the call), unless the call has moved on since."""
        if stored is None or stored.pending is None or stored.pending.seq != seq:
            return Handled("ignored", "the call moved on meanwhile")
        current = stored.state
        graph = await self._graph_of(current)
        return _plan_step(graph, current, event, now)

    async def _plan_offer(
        self, offer: Offer, stored: StoredCall | None, now: float
    ) -> _Plan | Handled:
        if stored is None:
            return Handled("unknown_call", "no state for the offered call")
        current = stored.state
        graph = await self._graph_of(current)
        event = events.AgentOffered(offer.offer, offer.agent_id, offer.address)
        plan = _plan_step(graph, current, event, now)
        if not plan.transition.moved:
            return Handled("ignored", f"the call is {current.phase}, not waiting in line")
        return plan

    async def _plan_placed(
        self,
        call_id: str,
        trigger: OutboundPlaced,
        stored: StoredCall | None,
        now: float,
        bound: Any,
    ) -> _Plan | Handled:
        if stored is not None:  # its first delivery was faster than Bird's answer
            return Handled("applied", "already started")
        return await self._begin_outbound(call_id, trigger.pending, now, bound)

    async def _plan_abandon(
        self, trigger: CommandRefused, stored: StoredCall | None, now: float
    ) -> _Plan | Handled:
        if stored is None or stored.pending is None or stored.pending.seq != trigger.seq:
            return Handled("ignored", "the call moved on meanwhile")
        current = stored.state
        graph = await self._graph_of(current)
        reason = f"{trigger.action} refused by Bird"
        transition = engine.abandon(graph, current, reason, now)
        return _Plan(graph, transition, current.version, {"abandon": reason}, now)

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
        return _Plan(graph, transition, 0, _begun(transition.state), now)

    async def _begin_outbound(
        self, call_id: str, pending: PendingOutbound, now: float, bound: Any
    ) -> _Plan | Handled:
        found = await self._registry.graph_for(pending.graph, pending.version)
        if found is None:
            bound.error("graph_version_missing", graph=pending.graph, node=None)
            return Handled("ignored", "the outbound call's graph is gone")
        if pending.callback is not None:
            transition = engine.begin_callback(
                found, call_id=call_id, number=pending.to, line_number=pending.from_, now=now,
                waiting=pending.callback, node=pending.node,
            )  # fmt: skip
            return _Plan(found, transition, 0, _begun(transition.state, callback=True), now)
        transition = engine.begin(
            found, call_id=call_id, caller=pending.to, called=pending.from_, now=now,
            direction=Direction.OUTBOUND, variables=pending.variables,
        )  # fmt: skip
        return _Plan(found, transition, 0, _begun(transition.state), now)

    async def _pending_outbound(self, ref: str) -> PendingOutbound | None:
        raw = await self._redis.get(keys.outbound(ref))
        return PendingOutbound.from_json(raw) if raw is not None else None

    async def _graph_of(self, current: CallState) -> Graph:
        """The graph version a live call runs on (kept while calls run on it)."""
        graph = await self._registry.graph_for(current.graph, current.graph_version)
        assert graph is not None
        return graph

    # -- acting: sending the pending command, and what Bird made of it ----------------

    async def _send(self, bound: Any, current: CallState, pending: Pending) -> None:
        """Send the call's pending command (this worker holds it), and keep in the
        call what became of it."""
        action, call_id = pending.action, current.call_id
        if isinstance(action, actions.HttpRequest):
            answer = await self._fetch(action)
            await self.apply(call_id, LookupAnswered(pending.seq, answer), bound)
            return
        if isinstance(action, actions.AskLine):
            status = await self._line.ask(call_id, action.queue, action.priority)
            if status.joined:
                await self.dispatch(None, action.queue)  # an agent may be free for them now
            await self.apply(call_id, LookupAnswered(pending.seq, status), bound)
            return
        if isinstance(action, actions.Dial | actions.Pause):
            return  # placed already, or the silence of a pause: nothing to send
        name = type(action).__name__.lower()
        started = time.monotonic()
        sent = await self._bird.perform(call_id, action, notification_url=self._notification_url)
        now = self._clock()

        def noted(result: str, detail: str = "", command_id: str | None = None) -> str:
            return call_journal.command_note(
                now, action=name, result=result, ms=(time.monotonic() - started) * 1000,
                attempt=pending.attempts, detail=detail, command_id=command_id,
            )  # fmt: skip

        match sent:
            case CommandReceipt():
                self._log(bound, current, "bird_command_sent", "debug", action=name,
                          command_id=sent.command_id, already_done=sent.already_done,
                          attempt=pending.attempts)  # fmt: skip
                window = outbox.outcome_window_s(action)
                accepted = replace(pending.becomes("sent", now + window), leg=sent.leg_id)
                done = None if isinstance(action, actions.Hangup | actions.HangupLeg) else accepted
                said = noted("accepted", "already done" if sent.already_done else "",
                             sent.command_id)  # fmt: skip
                await self._store.update_pending(call_id, pending.seq, done, journal=said)
            case NotPerformed():
                await self._retry_later(bound, current, pending, name, sent.reason,
                                        noted("not_performed", sent.reason))  # fmt: skip
            case Unsure():
                self._log(bound, current, "bird_command_unsure", "warning", action=name,
                          error=sent.reason, attempt=pending.attempts)  # fmt: skip
                window = outbox.outcome_window_s(action)
                unsure = pending.becomes("unsure", now + window)
                said = noted("unsure", sent.reason)
                await self._store.update_pending(call_id, pending.seq, unsure, journal=said)
            case Refused() if isinstance(action, actions.HangupLeg):
                # The leg is over already, or Bird never knew it: nothing rings.
                said = noted("refused", "the leg is over")
                await self._store.update_pending(call_id, pending.seq, None, journal=said)
            case Refused(call_ended=True) | Refused(call_status=None):
                # The caller hung up meanwhile (or Bird could not say): its own
                # delivery ends the state, or the timer reads the call back.
                self._log(bound, current, "command_refused_call_ended", "info", action=name,
                          status=sent.call_status)  # fmt: skip
                unsure = pending.becomes("unsure", now + outbox.MARGIN_S)
                said = noted("refused", f"the call is {sent.call_status or 'unknown'}")
                await self._store.update_pending(call_id, pending.seq, unsure, journal=said)
            case Refused():
                self._log(bound, current, "bird_command_failed", "error", action=name,
                          error=sent.reason)  # fmt: skip
                if isinstance(action, actions.Hangup):
                    await self._retry_later(bound, current, pending, name, sent.reason,
                                            noted("refused", sent.reason))  # fmt: skip
                else:
                    await self._store.note(call_id, noted("refused", sent.reason))
                    await self.apply(call_id, CommandRefused(name, pending.seq), bound)
            case _:  # pragma: no cover
                assert_never(sent)

    async def _retry_later(
        self, bound: Any, current: CallState, pending: Pending, name: str, reason: str, noted: str
    ) -> None:
        """Bird surely did not perform the command (``noted``: its journal note):
        send it again after a backoff, within the retry horizon; a hang-up for as
        long as the call lives."""
        now = self._clock()
        hangup = isinstance(pending.action, actions.Hangup)
        cap = outbox.HANGUP_RETRY_CAP_S if hangup else outbox.RETRY_CAP_S
        delay = outbox.retry_delay_s(pending.attempts, self._rng, cap_s=cap)
        if not hangup and now + delay - pending.since > outbox.RETRY_HORIZON_S:
            given_s = round(now - pending.since, 1)
            self._log(bound, current, "bird_command_failed", "error", action=name, error=reason,
                      attempts=pending.attempts, gave_up_after_s=given_s)  # fmt: skip
            await self._store.note(current.call_id, noted)
            await self.apply(current.call_id, CommandRefused(name, pending.seq), bound)
            return
        metrics.command_retried(name)
        self._log(bound, current, "bird_command_retrying", "warning", action=name, error=reason,
                  attempt=pending.attempts, retry_in_s=round(delay, 2))  # fmt: skip
        queued = pending.becomes("queued", now + delay)
        await self._store.update_pending(current.call_id, pending.seq, queued, journal=noted)

    async def _resend(
        self, bound: Any, stored: StoredCall, pending: Pending, *, attempts: int
    ) -> None:
        """Take the pending command (a lease, fenced by its seq) and send it."""
        taken = pending.becomes("sending", self._clock() + outbox.LEASE_S, attempts=attempts)
        if pending.looks and pending.status != "queued":
            taken = replace(taken, since=self._clock())  # retried anew after a look
        # Fenced by the call as loaded: of two workers that found it due (its timer,
        # a repeated delivery), only the first takes it.
        if await self._store.update_pending(stored.state.call_id, pending.seq, taken,
                                            loaded=stored):  # fmt: skip
            await self._send(bound, stored.state, taken)

    async def _look_back(self, bound: Any, stored: StoredCall, pending: Pending) -> None:
        """The pending command's outcome is late: read the call back from Bird. Over:
        end it; answered while we waited on our answer: go on; a command Bird accepted:
        take its outcome as it must have been; otherwise send the command again, and
        after ``outbox.MAX_LOOKS`` looks give the call up (an answer and a hang-up are
        always safe to send again: reading the call back says they did not happen)."""
        current, action = stored.state, pending.action
        name = type(action).__name__.lower()
        if isinstance(action, actions.Pause):  # its silence is over: no need to ask Bird
            await self.apply(
                current.call_id, LookupAnswered(pending.seq, events.PauseEnded()), bound
            )
            return
        if isinstance(action, actions.HttpRequest | actions.AskLine):
            looked = replace(pending, looks=pending.looks + 1)
            await self._resend(bound, stored, looked, attempts=pending.attempts + 1)
            return
        started = time.monotonic()
        found = await self._bird.call_status(current.call_id)
        self._log(bound, current, "call_read_back", "warning", action=name,
                  pending=pending.status, status=found.status if found else None)  # fmt: skip
        note = call_journal.command_note(
            self._clock(), action="read_call", result="read" if found else "not_read",
            ms=(time.monotonic() - started) * 1000,
            detail=f"{name} {pending.status}: the call is {found.status if found else 'unknown'}",
        )  # fmt: skip
        await self._store.note(current.call_id, note)
        always_safe = isinstance(action, actions.Answer | actions.Hangup | actions.HangupLeg)
        if found is None:  # Bird cannot be asked now: look again later (not a look)
            later = self._clock() + outbox.retry_delay_s(pending.looks + 1, self._rng)
            await self._store.update_pending(current.call_id, pending.seq,
                                             pending.becomes(pending.status, later))  # fmt: skip
            return
        pending = replace(pending, looks=pending.looks + 1)
        if found.ended:
            await self._bird_shows_ended(bound, stored, pending, found)
        elif isinstance(action, actions.Answer | actions.Dial) and found.answered:
            await self.apply(current.call_id, BirdShows(events.CallAnswered(), pending.seq), bound)
        elif isinstance(action, actions.Dial) and pending.looks <= outbox.MAX_LOOKS:
            # Still ringing, or scheduled for later: nothing to send; look again later.
            scheduled = found.status == "scheduled"
            looks = pending.looks - 1 if scheduled else pending.looks
            wait = outbox.SCHEDULED_LOOK_S if scheduled else outbox.outcome_window_s(action)
            waiting = replace(pending.becomes("sent", self._clock() + wait), looks=looks)
            await self._store.update_pending(current.call_id, pending.seq, waiting)
        elif pending.status == "sent" and not always_safe:
            await self._outcome_of_accepted(bound, stored, pending)
        elif pending.looks > outbox.MAX_LOOKS and not always_safe:
            self._log(bound, current, "bird_command_failed", "error", action=name,
                      error="no outcome after resending", attempts=pending.attempts)  # fmt: skip
            await self.apply(current.call_id, CommandRefused(name, pending.seq), bound)
        else:
            await self._resend(bound, stored, pending, attempts=pending.attempts + 1)

    async def _outcome_of_accepted(self, bound: Any, stored: StoredCall, pending: Pending) -> None:
        """Bird accepted the command (it is never sent again) and the call lives, but
        its outcome is late: take it as it must have been by now."""
        current, action, now = stored.state, pending.action, self._clock()
        event: events.Event
        match action:
            case actions.Speak():
                event = events.PromptFinished()
            case actions.Gather():
                event = events.DigitsCollected("", ok=False)
            case actions.Record():
                event = events.RecordingFinished(None, ok=False)
            case actions.Bridge(offer=offer):
                leg = await self._bird.call_status(pending.leg) if pending.leg else None
                if leg is not None and leg.answered:
                    event = events.AgentConnected(pending.leg or "", offer)
                elif leg is not None and leg.unreachable_as is not None:
                    event = events.AgentUnavailable(pending.leg, leg.unreachable_as, offer)
                elif pending.looks <= outbox.MAX_LOOKS:  # ringing, or unknown: wait
                    later = pending.becomes("sent", now + outbox.outcome_window_s(action))
                    await self._store.update_pending(current.call_id, pending.seq, later)
                    return
                else:
                    event = events.AgentUnavailable(pending.leg, "failed", offer)
            case _:
                raise AssertionError(f"no outcome to take for {action!r}")
        name = type(action).__name__.lower()
        self._log(bound, current, "outcome_assumed", "warning", action=name,
                  assumed=type(event).__name__)  # fmt: skip
        await self.apply(current.call_id, BirdShows(event, pending.seq), bound)

    async def _bird_shows_ended(
        self, bound: Any, stored: StoredCall, pending: Pending, found: CallStatus
    ) -> None:
        if stored.state.ended or found.ended_as is None:
            await self._store.update_pending(stored.state.call_id, pending.seq, None)
            return
        ended = BirdShows(events.CallEnded(found.ended_as, None), pending.seq)
        await self.apply(stored.state.call_id, ended, bound)

    # -- logging -----------------------------------------------------------------------

    @staticmethod
    def _log(bound: Any, current: CallState, event: str, level: str, **fields: Any) -> None:
        getattr(bound, level)(event, graph=current.graph, node=current.node, **fields)

    @staticmethod
    def _log_agents(bound: Any, result: LineResult) -> None:
        """What the call's changes did to agents: one line each, with ``agent_id``."""
        for agent_id, event, queue in result.agents:
            metrics.agent_event(event, queue or None)
            bound.info(f"agent_{event}", agent_id=agent_id, queue=queue or None,
                       graph=None, node=None)  # fmt: skip

    @staticmethod
    def _log_notes(bound: Any, transition: Transition, graph: Graph) -> None:
        for note in transition.notes:
            getattr(bound, note.level)(note.event, graph=graph.id, node=note.node, **note.fields)


def _count(stored: StoredCall | None, written: CallState) -> None:
    """The metrics of calls started and ended, for a step just committed."""
    if stored is None:
        metrics.call_started(written.graph, str(written.direction))
    if written.ended and (stored is None or not stored.state.ended):
        metrics.call_ended(written.graph, str(written.outcome))


def _plan_step(graph: Graph, current: CallState, event: events.Event, now: float) -> _Plan:
    """The plan of feeding ``event`` to the call as it stands."""
    transition = engine.step(graph, current, event, now)
    return _Plan(graph, transition, current.version, {"event": journal.event_to_json(event)}, now)


def _begun(state: CallState, *, callback: bool = False) -> dict[str, Any]:
    """What a new call's journal keeps of how it began."""
    begun = {"direction": str(state.direction), "caller": state.caller, "called": state.called,
             "vars": dict(state.vars), "callback": callback}  # fmt: skip
    return {"begin": begun}


def _callback_place(offer: Offer, callback: CallbackCall, graph_offset_s: float) -> InLine:
    """A callback's place in line and offer, as its follow-up call holds them (times
    on the graphs' clock: ``graph_offset_s`` ahead of the line's)."""
    return InLine(
        queue=offer.queue,
        priority=callback.priority,
        joined_at=callback.joined_at + graph_offset_s,
        offer=offer.offer,
        agent_id=offer.agent_id,
        callback=callback.callback,
        address=offer.address,
        attempt=callback.attempt,
    )


def _remember(new: CallState, delivery: Delivery) -> CallState:
    seen = dict(new.seen)
    seen[delivery.leg_id] = max(seen.get(delivery.leg_id, 0), delivery.updated_us)
    recent = (*new.recent, delivery.fingerprint)[-RECENT_DELIVERIES:]
    return replace(new, seen=seen, recent=recent)
