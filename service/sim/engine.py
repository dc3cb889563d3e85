"""How simulated calls behave: statuses, commands, bridges, and the deliveries they cause.

Time is simulated: one simulated second lasts ``time_scale`` real seconds. Each call has one
worker task that runs its commands in the order received; a hang-up (by the service, the
caller, or ``hangupAfterBridge``) acts at once, cancels what is running and drops the rest.

Bridges (docs/bird-contract.md A4, A9). Each bridge is one *offer* to an agent: a new leg that
follows the agent's script for that offer (:mod:`service.sim.scripts`) and reports
``ringing``, then ``ongoing`` and ``completed``, or ``no-answer``/``busy``/``failed``, to the
bridge's ``notification.url`` (``parentId`` set). The bridge command's own outcome (A3) is
sent when the leg ends: ``completed`` if the agent answered, else ``failed``. With
``hangupAfterBridge: true`` the caller's leg ends after a conversation; otherwise the caller's
leg stays up and takes new commands, whether the agent missed the offer or hung up.
``/hangup`` on a leg's id ends that leg (``completed``; ``cancelled`` if its bridge had not
started ringing yet), reported to the leg's ``notification.url``.

Two behaviours Bird does not document are options, so that the service is tested both ways:

- ``interrupting_commands`` (A7, default False). False: a command posted while another runs
  starts when that one ends. True: a ``say``, ``playback``, ``gather`` or ``bridge`` posted
  to its endpoint while a ``say`` or ``playback`` runs cuts that prompt short at once (its
  outcome is ``completed``; the transcript says ``interrupted``) and runs next, before any
  command queued earlier. Other commands, and callFlow items, wait their turn.
- ``leave_ringing_legs`` (A11, default True). True: when the caller's call ends while an
  agent's leg still rings, the leg is left ringing until its ``ringTimeout`` and then ends
  ``no-answer``, unless the service hangs it up first. False: it ends with the caller
  (``completed``). Either way a leg that was answered ends with the caller (``completed``)
  and one whose bridge had not started ringing ends ``cancelled``.

Prompts (A8): ``say`` and ``playback`` play ``loop`` times in all and stop after ``timeout``
seconds when it is positive (outcome ``completed`` either way). There is no infinite loop: a
``loop`` below 1 plays once (Bird's schema already rejects a ``loop`` that is no integer).

Speech (A14): a ``gather`` hears keys when its ``input`` (default ``dtmf``) has ``dtmf`` and
words (a script's ``say:TEXT``) when it has ``speech``; its result is ``{"keys", "speech"}``,
what it did not hear being ``""``. Words said to a gather of keys only, or keys pressed to a
gather of speech only, are not heard: it times out with nothing.

Answering machines (A13): an outbound call's callee may be an answering machine
(:class:`~service.sim.scripts.MachineScript`); once it answers it greets, beeps and records
every prompt played after the beep (the transcript's ``machine_recorded``), stays silent at
every gather and hangs up at its longest message. With ``amdSettings.enabled`` (createCall, or
a bridge for its agent's leg) Bird's verdict is one more delivery of the call carrying
``amdResult``, as every later delivery of it does; when it comes: :mod:`service.sim.amd`.
"""

from __future__ import annotations

import asyncio
import collections
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import structlog

from service.runtime.clock import PinnedClock
from service.sim import transcript as tr
from service.sim.amd import HUMAN_VERDICT_S, MACHINE, AmdSettings, plan_machine
from service.sim.calls import ENDED_STATUSES, Command, Direction, SimCall
from service.sim.delivery import Deliverer, DeliveryAttempt, Envelope, Outgoing
from service.sim.faults import (
    DELIVERY_DELAYED,
    DELIVERY_DUPLICATE,
    DELIVERY_REPLAY,
    FaultDice,
    Faults,
)
from service.sim.scripts import (
    HANGUP,
    SILENCE,
    AgentScript,
    CalleeScript,
    CallerScript,
    MachineScript,
    speaking_seconds,
    spoken,
)
from service.sim.transcript import Entry, Offer, Transcript

log = structlog.get_logger("sim")

MEDIA_COMMANDS = frozenset({"say", "playback", "gather", "record", "bridge", "pause"})
INTERRUPTIBLE = frozenset({"say", "playback"})
"""What a command posted meanwhile may cut short (``interrupting_commands``, A7)."""
INTERRUPTING = frozenset({"say", "playback", "gather", "bridge"})
"""What cuts a running prompt short when posted (``interrupting_commands``, A7)."""
DEFAULT_AGENT = AgentScript()
DEFAULT_CALLEE = CalleeScript()
GATHER_TIMEOUT_S = 5.0
RING_TIMEOUT_S = 30.0
KEY_PRESS_S = 0.3
THINK_S = 1.0
BEEP_S = 0.5

Outcome = tuple[str, dict[str, Any]]


class _PersonHungUp(Exception):
    """The simulated person hung up while a command was running."""


@dataclass(frozen=True)
class PromptPlan:
    """How long a ``say`` or ``playback`` (or a gather's prompt) plays (A8)."""

    one_play_s: float
    plays: int
    """``loop``: the total number of plays (1 when absent or below 1)."""
    timeout_s: float | None
    """``timeout``: the prompt stops after this many seconds (None when absent or not > 0)."""

    @property
    def full_s(self) -> float:
        return self.one_play_s * self.plays

    @property
    def seconds(self) -> float:
        """How long it plays: every loop, or up to its timeout."""
        return self.full_s if self.timeout_s is None else min(self.full_s, self.timeout_s)

    @property
    def stopped_by_timeout(self) -> bool:
        return self.timeout_s is not None and self.timeout_s < self.full_s


def plan_prompt(name: str, options: Mapping[str, Any]) -> PromptPlan:
    """The :class:`PromptPlan` of a ``say`` (``name`` ``say``) or ``playback`` body."""
    if name == "say":
        one_play_s = max(0.5, 0.06 * len(str(options.get("text", ""))))
    else:
        media = options.get("media") or []
        one_play_s = 2.0 * len(media)
    loop = _integer(options.get("loop"))
    plays = loop if loop is not None and loop > 1 else 1
    timeout = _integer(options.get("timeout"))
    timeout_s = float(timeout) if timeout is not None and timeout > 0 else None
    return PromptPlan(one_play_s, plays, timeout_s)


def say_seconds(options: Mapping[str, Any]) -> float:
    return plan_prompt("say", options).seconds


def playback_seconds(options: Mapping[str, Any]) -> float:
    return plan_prompt("playback", options).seconds


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _prompt_text(name: str, options: Mapping[str, Any]) -> str:
    if name == "say":
        return str(options.get("text", ""))
    return "audio: " + ", ".join(options.get("media") or [])


def _listens(options: Mapping[str, Any]) -> frozenset[str]:
    """What a gather hears: ``dtmf`` and/or ``speech`` (its ``input``, ``dtmf`` by default)."""
    given = options.get("input")
    return frozenset(given.split() if isinstance(given, str) else ("dtmf",))


def _nothing(listens: frozenset[str]) -> str:
    """What a silent person did not do, for the gather's transcript entry."""
    if "speech" not in listens:
        return "pressed nothing"
    return "said nothing" if "dtmf" not in listens else "pressed nothing and said nothing"


def _number(value: Any, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value)


class CallEngine:
    """The simulated network: every call, its people, its commands and its deliveries."""

    def __init__(
        self,
        *,
        channel_id: str,
        signing_key: str,
        subscription_url: str,
        agents: Mapping[str, AgentScript] | None = None,
        callees: Mapping[str, CalleeScript] | None = None,
        time_scale: float = 0.01,
        duplicate_deliveries: bool = False,
        replay_stale: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
        answer_timeout_s: float = 30.0,
        answer_timeout_min_real_s: float = 2.0,
        max_attempts: int = 5,
        retry_delay_s: float = 1.0,
        channel_number: str = "+31850000000",
        faults: Faults | None = None,
        interrupting_commands: bool = False,
        leave_ringing_legs: bool = True,
        at: datetime | None = None,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.channel_id = channel_id
        self.subscription_url = subscription_url
        self.agents: dict[str, AgentScript] = dict(agents or {})
        self.callees: dict[str, CalleeScript] = dict(callees or {})
        self.time_scale = time_scale
        self.duplicate_deliveries = duplicate_deliveries
        self.replay_stale = replay_stale
        self.answer_timeout_s = answer_timeout_s
        self.answer_timeout_min_real_s = answer_timeout_min_real_s
        self.channel_number = channel_number
        self.interrupting_commands = interrupting_commands
        """A7: a prompt posted while a prompt plays cuts it short (module docstring)."""
        self.leave_ringing_legs = leave_ringing_legs
        """A11: an agent's leg still ringing when the caller hangs up is left ringing."""
        self.calls: dict[str, SimCall] = {}
        self.agent_offers: collections.Counter[str] = collections.Counter()
        """How many bridges (offers) each agent number has had so far."""
        self.callee_offers: collections.Counter[str] = collections.Counter()
        """How many outbound calls each callee number has had so far."""
        self.faults = faults or Faults()
        self.fault_counts: collections.Counter[str] = collections.Counter()
        """How many faults of each kind were injected (names: :mod:`service.sim.faults`)."""
        self.dice = FaultDice(self.faults)
        self.at = at
        """The simulator's clock is pinned to this moment at start, running on (``ivr sim
        --at``): transcripts tell when each call was placed on it. Bird's own timestamps stay
        real (the service checks their age)."""
        self._pinned = PinnedClock(at) if at is not None else None
        self.on_settled: list[Callable[[Transcript], None]] = []
        """Called with a call's transcript once it has settled (:meth:`wait_ended`)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._progress = asyncio.Event()
        self._closed = False
        self._deliverer = Deliverer(
            signing_key=signing_key,
            sleep=self._sleep,
            transport=transport,
            max_attempts=max_attempts,
            retry_delay_s=retry_delay_s,
        )

    # ----------------------------------------------------------------- public API

    @property
    def deliveries(self) -> list[DeliveryAttempt]:
        """Every delivery attempt made so far, in order, with its answer."""
        return self._deliverer.attempts

    async def place_inbound_call(
        self, script: CallerScript, *, origin: str = tr.ORIGIN_SCRIPT
    ) -> str:
        """A person calls the IVR number: the call is delivered (``voice.inbound``) and rings.
        ``origin``: who placed it (:data:`service.sim.transcript.ORIGIN_CONTROL`, ...)."""
        call = self._new_call(
            from_number=script.from_number,
            to_number=script.to_number,
            direction="incoming",
            status="starting",
            event="voice.inbound",
            delivery_url=self.subscription_url,
            party="caller",
            script_name=script.name,
            inputs=script.inputs,
            hangup_after_s=script.hangup_after_s,
            voicemail_s=script.voicemail_s,
            origin=origin,
        )
        self._deliver(call)
        self._set_status(call, "ringing")
        self._note(call, tr.RINGING)
        self._spawn_timer(call, self._await_answer(call))
        return call.id

    async def place_inbound_calls(
        self, scripts: Iterable[CallerScript], *, every_s: float = 0.0
    ) -> list[str]:
        """Place many callers, one every ``every_s`` simulated seconds (0: all at once).

        Returns their call ids in the order of ``scripts``; wait for them with
        :meth:`wait_all_ended`.
        """
        if every_s < 0 or every_s != every_s:
            raise ValueError(f"every_s must be >= 0, got {every_s}")
        call_ids: list[str] = []
        for index, script in enumerate(scripts):
            if index and every_s > 0:
                await self._sleep(every_s)
            call_ids.append(await self.place_inbound_call(script))
        return call_ids

    async def wait_all_ended(self, call_ids: Iterable[str], timeout_s: float) -> list[Transcript]:
        """:meth:`wait_ended` of every call, all at once; their transcripts, in order.

        A call not ended within ``timeout_s`` raises :meth:`wait_ended`'s ``TimeoutError``.
        """
        waits = [self.wait_ended(call_id, timeout_s) for call_id in call_ids]
        return list(await asyncio.gather(*waits))

    def transcript(self, call_id: str) -> Transcript:
        """The transcript of a call (for an agent leg: of the call it belongs to)."""
        transcript = self._call(call_id).root.transcript
        assert transcript is not None
        return transcript

    async def wait_ended(self, call_id: str, timeout_s: float) -> Transcript:
        """Wait until the call has ended and every delivery of it (and its legs) was answered.

        Its agents' legs too must have ended: a leg left ringing after the caller hung up
        (``leave_ringing_legs``) ends at its ring timeout or when the service hangs it up.
        """
        call = self._call(call_id).root
        try:
            async with asyncio.timeout(timeout_s):
                await call.settled.wait()
        except TimeoutError:
            family = self._family(call)
            pending = sum(member.pending_deliveries for member in family)
            active = [f"{m.party} leg {m.id}: {m.status}" for m in family if not m.ended]
            transcript = self.transcript(call.id)
            raise TimeoutError(
                f"call {call.id} ({transcript.script_name}) has not ended within {timeout_s} s: "
                f"status {call.status}; still active: {', '.join(active) or 'none'}; "
                f"{pending} deliveries not yet answered.\n{transcript.render()}"
            ) from None
        return self.transcript(call.id)

    def set_callee(self, number: str, script: CalleeScript) -> None:
        """Script the callee of the outbound calls to ``number`` from now on (its offers
        are counted anew)."""
        self.callees[number] = script
        self.callee_offers.pop(number, None)

    def settled(self, call_id: str) -> bool:
        """Whether the call (and its legs) ended and its deliveries were answered."""
        return self._call(call_id).root.settled.is_set()

    async def follow(
        self, call_id: str, closing: asyncio.Event | None = None
    ) -> AsyncIterator[Entry]:
        """The entries of the call's transcript, those so far and those to come, until it has
        settled (as :meth:`wait_ended` waits) or ``closing`` is set."""
        root = self._call(call_id).root
        entries = self.transcript(root.id).entries
        sent = 0
        while True:
            progress = self._progress  # before looking: a later change sets this one
            while sent < len(entries):
                sent += 1
                yield entries[sent - 1]
            if root.settled.is_set() or (closing is not None and closing.is_set()):
                return
            waits = [asyncio.ensure_future(progress.wait())]
            if closing is not None:
                waits.append(asyncio.ensure_future(closing.wait()))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()

    async def aclose(self) -> None:
        """Cancel every running task and close the delivery client."""
        if self._closed:
            return
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._deliverer.aclose()

    # ------------------------------------------------------- used by the HTTP layer

    def _call(self, call_id: str) -> SimCall:
        try:
            return self.calls[call_id]
        except KeyError:
            raise KeyError(f"no simulated call {call_id!r}") from None

    def create_outbound_call(
        self, body: Mapping[str, Any], scheduled_for: datetime | None
    ) -> SimCall:
        """``POST /calls``: dial the callee of ``body["to"]`` per its :class:`CalleeScript`."""
        to = str(body["to"])
        callee = self.callees.get(to, DEFAULT_CALLEE)
        answer = self._next_offer(self.callee_offers, to, callee.answer)
        notification = body.get("notification")
        url = notification.get("url") if isinstance(notification, dict) else None
        now = datetime.now(UTC)
        scheduled = scheduled_for is not None and scheduled_for > now
        call = self._new_call(
            from_number=str(body.get("from") or self.channel_number),
            to_number=to,
            direction="outgoing",
            status="scheduled" if scheduled else "accepted",
            event="voice.outbound",
            delivery_url=url or self.subscription_url,
            party="callee",
            script_name=callee.name,
            inputs=callee.inputs,
            hangup_after_s=callee.hangup_after_s,
            voicemail_s=callee.voicemail_s,
            origin=tr.ORIGIN_OUTBOUND,
            scripted=to in self.callees,
        )
        call.scheduled_for = scheduled_for
        call.notification = dict(notification) if isinstance(notification, dict) else None
        call.machine = callee.machine
        transcript = self._transcript(call)
        tags = body.get("tags")
        if isinstance(tags, list):
            call.tags = [str(tag).lower() for tag in tags]
            transcript.tags = list(call.tags)
        transcript.record = body.get("record") is True
        flow = body.get("callFlow")
        if isinstance(flow, list) and flow:
            call.deferred_flow = self._flow_commands(call, flow)
        delay_s = (scheduled_for - now).total_seconds() if scheduled and scheduled_for else 0.0
        self._spawn_timer(call, self._dial(call, answer, body, delay_s))
        return call

    def new_bridge_leg(self, call: SimCall, options: Mapping[str, Any]) -> SimCall:
        """The agent's leg of a bridge: a new outgoing call whose parent is ``call``."""
        notification = options.get("notification")
        url = notification.get("url") if isinstance(notification, dict) else None
        leg = self._new_call(
            from_number=str(options.get("from") or call.from_number),
            to_number=str(options["to"]),
            direction="outgoing",
            status="starting",
            event="voice.outbound",
            delivery_url=url or self.subscription_url,
            party="agent",
            parent=call,
        )
        leg.started = False
        leg.notification = dict(notification) if isinstance(notification, dict) else None
        call.children.append(leg)
        return leg

    def new_command(
        self,
        call: SimCall,
        name: str,
        options: Mapping[str, Any] | None,
        *,
        call_flow_id: str | None = None,
        conditions: list[dict[str, Any]] | None = None,
    ) -> Command:
        command = Command(
            id=str(uuid.uuid4()),
            call_id=call.id,
            name=name,
            options=dict(options or {}),
            call_flow_id=call_flow_id,
            conditions=conditions,
        )
        if name == "bridge" and call_flow_id is None:
            command.leg = self.new_bridge_leg(call, command.options)
        if name == "record":
            command.recording_id = str(uuid.uuid4())
        return command

    def enqueue(self, call: SimCall, command: Command) -> None:
        """Queue a command; with ``interrupting_commands``, a prompt or bridge posted to its
        endpoint while a prompt plays cuts that prompt short and runs next."""
        if command.name == "answer":
            call.answer_pending = True
            call.answered_event.set()
        running = call.running
        if (
            self.interrupting_commands
            and command.call_flow_id is None
            and command.name in INTERRUPTING
            and running is not None
            and running.name in INTERRUPTIBLE
        ):
            call.urgent.append(command)
            if call.interrupted_by is None:
                call.interrupted_by = command.name
                call.interrupt.set()
            return
        call.queue.put_nowait(command)

    def start_flow(self, call: SimCall, flow: list[dict[str, Any]]) -> None:
        """``PATCH`` with ``callFlow``: its commands run after those already queued."""
        commands = self._flow_commands(call, flow)
        call.touch()
        if call.direction == "outgoing" and call.party == "callee" and not call.answered:
            call.deferred_flow.extend(commands)
            return
        for command in commands:
            self.enqueue(call, command)

    def hang_up(self, call: SimCall, cause: str | None = None) -> None:
        """The service hangs up (``/hangup`` or ``PATCH status: completed``): at once."""
        if call.status == "scheduled" or (call.party == "agent" and not call.started):
            status = "cancelled"
        elif cause == "busy" and not call.answered:
            status = "busy"
        else:
            status = "completed"
        self._end_call(call, status, "api", reason=cause)

    # ------------------------------------------------------------------ internals

    def _new_call(
        self,
        *,
        from_number: str,
        to_number: str,
        direction: Direction,
        status: str,
        event: str,
        delivery_url: str,
        party: str,
        parent: SimCall | None = None,
        script_name: str = "",
        inputs: tuple[str, ...] = (),
        hangup_after_s: float | None = None,
        voicemail_s: float = 3.0,
        origin: str = tr.ORIGIN_SCRIPT,
        scripted: bool = True,
    ) -> SimCall:
        call = SimCall(
            id=str(uuid.uuid4()),
            channel_id=self.channel_id,
            from_number=from_number,
            to_number=to_number,
            direction=direction,
            status=status,
            event=event,
            delivery_url=delivery_url,
            t0=asyncio.get_running_loop().time(),
            ordinal=len(self.calls),
            party=party,
            parent=parent,
            inputs=collections.deque(inputs),
            hangup_after_s=hangup_after_s,
            voicemail_s=voicemail_s,
        )
        call.updated_at = call.created_at
        if parent is None:
            call.transcript = Transcript(
                call.id, script_name, from_number, to_number, origin=origin, scripted=scripted
            )
            if self._pinned is not None and self.at is not None:
                started = datetime.fromtimestamp(self._pinned(), self.at.tzinfo)
                call.transcript.started_at = started
        self.calls[call.id] = call
        call.worker = self._spawn(self._work(call), f"sim-call-{call.id}")
        return call

    def _flow_commands(self, call: SimCall, flow: list[dict[str, Any]]) -> list[Command]:
        flow_id = str(uuid.uuid4())
        commands: list[Command] = []
        for item in flow:
            conditions = item.get("conditions")
            command = self.new_command(
                call,
                str(item.get("command")),
                item.get("options"),
                call_flow_id=flow_id,
                conditions=list(conditions) if conditions else None,
            )
            command.flow_entry = command.answer()
            commands.append(command)
        call.call_flow = {"id": flow_id, "commands": [c.flow_entry for c in commands]}
        return commands

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _spawn_timer(self, call: SimCall, coro: Coroutine[Any, Any, None]) -> None:
        call.timers.append(self._spawn(coro, f"sim-timer-{call.id}"))

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulator task failed", task=task.get_name(), exc_info=task.exception())

    async def _sleep(self, sim_s: float) -> None:
        await asyncio.sleep(max(0.0, sim_s) * self.time_scale)

    def _at(self, call: SimCall) -> float:
        return (asyncio.get_running_loop().time() - call.root.t0) / self.time_scale

    @staticmethod
    def _transcript(call: SimCall) -> Transcript:
        """The transcript ``call`` is told in (its root call's)."""
        transcript = call.root.transcript
        assert transcript is not None
        return transcript

    def _note(self, call: SimCall, kind: str, text: str = "") -> None:
        transcript = self._transcript(call)
        if call.party == "agent":
            text = f"(agent {call.to_number}) {text}".rstrip()
        transcript.add(self._at(call), kind, text)
        self._changed()

    def _changed(self) -> None:
        """Wake whoever waits for a transcript to change (:meth:`wait_for`, :meth:`follow`)."""
        self._progress.set()
        self._progress = asyncio.Event()

    async def wait_for(self, call_id: str, kind: str, contains: str = "",
                       timeout_s: float = 30.0) -> None:  # fmt: skip
        """Wait until the call's transcript has an entry of ``kind`` whose text
        contains ``contains`` (e.g. the caller has heard a prompt)."""
        transcript = self.transcript(call_id)
        async with asyncio.timeout(timeout_s):
            while not any(e.kind == kind and contains in e.text for e in transcript.entries):
                await self._progress.wait()

    def _family(self, call: SimCall) -> list[SimCall]:
        members = [call]
        for child in call.children:
            members.extend(self._family(child))
        return members

    # ---------------------------------------------------------------- deliveries

    def _deliver(
        self, call: SimCall, command: Command | None = None, outcome: Outcome | None = None
    ) -> None:
        call.touch()
        payload = call.to_json()
        if command is not None and outcome is not None:
            status, result = outcome
            payload["command"] = {
                "id": command.id,
                "callId": call.id,
                "callFlowId": command.call_flow_id,
                "command": command.name,
                "status": status,
                "result": result,
            }
        envelope = Envelope.build(call.id, call.delivery_url, call.event, payload)
        duplicate, delay_s = self.dice.delivery(
            f"call-{call.ordinal}/delivery", always_duplicate=self.duplicate_deliveries
        )
        if duplicate:
            self.fault_counts[DELIVERY_DUPLICATE] += 1
        outgoing = Outgoing(envelope, duplicate)
        call.pending_deliveries += 1
        if self.faults.delivery_delay_s > 0:
            # Each delivery on its own after its own delay: close ones overtake each other.
            if delay_s > 0:
                self.fault_counts[DELIVERY_DELAYED] += 1
            self._spawn(self._send_later(call, outgoing, delay_s), f"sim-deliver-{call.id}")
            return
        call.outbox.append(outgoing)
        if call.sender is None or call.sender.done():
            call.sender = self._spawn(self._send_outbox(call), f"sim-deliver-{call.id}")

    async def _send_outbox(self, call: SimCall) -> None:
        while call.outbox:
            outgoing = call.outbox.popleft()
            try:
                await self._send(call, outgoing)
            finally:
                call.pending_deliveries -= 1
                self._check_settled(call.root)

    async def _send_later(self, call: SimCall, outgoing: Outgoing, delay_s: float) -> None:
        try:
            await self._sleep(delay_s)
            await self._send(call, outgoing)
        finally:
            call.pending_deliveries -= 1
            self._check_settled(call.root)

    async def _send(self, call: SimCall, outgoing: Outgoing) -> None:
        envelope = outgoing.envelope
        await self._deliverer.send(envelope, "original")
        if outgoing.duplicate:
            await self._deliverer.send(envelope, "duplicate")
        if self.replay_stale and call.last_sent is not None:
            self.fault_counts[DELIVERY_REPLAY] += 1
            await self._deliverer.send(call.last_sent, "replay")
        call.last_sent = envelope

    def _check_settled(self, root: SimCall) -> None:
        if root.settled.is_set():
            return
        family = self._family(root)
        if all(m.ended for m in family) and all(m.pending_deliveries == 0 for m in family):
            root.settled.set()
            self._changed()
            if root.transcript is not None:
                for listener in list(self.on_settled):
                    try:
                        listener(root.transcript)
                    except Exception:
                        log.exception("simulator on_settled listener failed", call_id=root.id)

    # ------------------------------------------------------------------- statuses

    def _set_status(
        self,
        call: SimCall,
        status: str,
        *,
        source: str | None = None,
        reason: str | None = None,
        deliver: bool = True,
    ) -> None:
        now = datetime.now(UTC)
        call.status = status
        if status == "ringing":
            call.ringing_at = now
        elif status == "ongoing":
            call.answered_at = now
            call.answered_loop_time = asyncio.get_running_loop().time()
        elif status in ENDED_STATUSES:
            call.ended_at = now
            call.hangup_source = source
            call.reason = reason
            if call.answered_loop_time is not None:
                talked = asyncio.get_running_loop().time() - call.answered_loop_time
                call.duration = round(talked / self.time_scale)
        if deliver:
            self._deliver(call)
        else:
            call.touch()

    def _end_call(
        self, call: SimCall, status: str, source: str, *, reason: str | None = None
    ) -> None:
        """End ``call`` now: cancel what runs on it, drop what is queued, end its legs."""
        if call.ended:
            return
        current = asyncio.current_task()
        for timer in call.timers:
            if timer is not current:
                timer.cancel()
        if call.worker is not None and call.worker is not current:
            call.worker.cancel()
        while not call.queue.empty():
            call.queue.get_nowait().set_status("cancelled")
        while call.urgent:
            call.urgent.popleft().set_status("cancelled")
        for command in call.deferred_flow:
            command.set_status("cancelled")
        call.deferred_flow = []
        # A leg the service was told of (bridgedCall) reports its end even if it never rang.
        deliver = call.started or call.party == "agent"
        self._set_status(call, status, source=source, reason=reason, deliver=deliver)
        call.ended_event.set()
        if call.party == "agent":
            self._leg_ended(call, status, source)
        for child in call.children:
            if child.ended or child.left_ringing:
                continue
            if child.started and not child.answered and self.leave_ringing_legs:
                self._leave_ringing(child)
                continue
            child.ended_with_parent = True
            if child.started:
                self._end_call(child, "completed", source)
            else:
                self._end_call(child, "cancelled", "none")
        transcript = call.transcript
        if transcript is not None:
            transcript.unused = tuple(call.inputs)
            transcript.ended = True
            transcript.final_status = status
            transcript.hangup_source = source
            detail = f"{status} (hangupSource: {source}"
            detail += f", reason: {reason})" if reason else ")"
            self._note(call, tr.ENDED, detail)
        self._check_settled(call.root)

    def _answered(self, call: SimCall) -> None:
        """The call is connected (answered by the service, or picked up by the callee)."""
        call.answered_event.set()
        self._set_status(call, "ongoing")
        if call.party != "agent":
            self._note(call, tr.ANSWERED)
        if call.hangup_after_s is not None:
            self._spawn_timer(call, self._hang_up_later(call, call.hangup_after_s))

    def _person_hangs_up(self, call: SimCall, why: str) -> None:
        """The simulated person hangs up (A5): one ``completed`` delivery, nothing more."""
        self._note(call, tr.CALLER_HUNG_UP, f"the {call.party} hung up {why}".rstrip())
        source = "caller" if call.direction == "incoming" else "callee"
        self._end_call(call, "completed", source)

    async def _hang_up_later(self, call: SimCall, after_s: float) -> None:
        await self._sleep(after_s)
        self._person_hangs_up(call, f"after {after_s:g} s")

    async def _await_answer(self, call: SimCall) -> None:
        wait = max(self.answer_timeout_s * self.time_scale, self.answer_timeout_min_real_s)
        try:
            async with asyncio.timeout(wait):
                await call.answered_event.wait()
        except TimeoutError:
            self._note(call, tr.NOTE, f"not answered within {self.answer_timeout_s:g} s")
            self._end_call(call, "no-answer", "timeout")

    async def _dial(
        self, call: SimCall, answer: AgentScript, body: Mapping[str, Any], delay_s: float
    ) -> None:
        """An outbound call: (scheduled ->) starting -> ringing -> the callee's choice."""
        if delay_s > 0:
            await self._sleep(delay_s)
        await self._sleep(0.2)
        self._set_status(call, "starting")
        await self._sleep(0.5)
        self._set_status(call, "ringing")
        self._note(call, tr.RINGING)
        if answer.behavior in ("busy", "failed"):
            self._note(call, tr.NOTE, f"callee is {answer.behavior}")
            self._end_call(call, answer.behavior, "callee" if answer.behavior == "busy" else "none")
            return
        ring_timeout = _number(body.get("ringTimeout"), RING_TIMEOUT_S)
        if answer.behavior != "answer" or answer.answer_after_s >= ring_timeout:
            await self._sleep(ring_timeout)
            self._note(call, tr.NOTE, f"callee did not answer within {ring_timeout:g} s")
            self._end_call(call, "no-answer", "timeout")
            return
        await self._sleep(answer.answer_after_s)
        self._answered(call)
        self._detect(call, AmdSettings.of(body))
        flow, call.deferred_flow = call.deferred_flow, []
        for command in flow:
            self.enqueue(call, command)
        max_duration = _number(body.get("maxDuration"), 14400.0)
        self._spawn_timer(call, self._end_later(call, max_duration))

    # ------------------------------------------------- answering machines (A13)

    def _detect(self, call: SimCall, amd: AmdSettings | None) -> None:
        """Whoever answered ``call`` starts: its answering machine greets, or with detection
        on Bird hears a person say hello."""
        if call.machine is not None:
            self._spawn_timer(call, self._machine(call, call.machine, amd))
        elif amd is not None:
            self._spawn_timer(call, self._human_verdict(call, amd))

    async def _human_verdict(self, call: SimCall, amd: AmdSettings) -> None:
        await self._sleep(HUMAN_VERDICT_S)
        self._verdict(call, amd.human(), "")

    async def _machine(
        self, call: SimCall, machine: MachineScript, amd: AmdSettings | None
    ) -> None:
        """The answering machine: greeting, beep, recording, Bird's verdict, hang-up, each at
        its moment from the answer (:func:`service.sim.amd.plan_machine`)."""
        plan = plan_machine(machine, amd)
        self._transcript(call).machine = True
        self._note(call, tr.NOTE, "an answering machine answered")
        if machine.greeting:
            self._note(call, tr.SAID, machine.greeting)
        # (moment, rank, action): at one moment the recording starts before the verdict.
        events: list[tuple[float, int, Callable[[], None]]] = [
            (plan.tape_from_s, 0, lambda: self._start_tape(call, machine)),
            (plan.hangs_up_at_s, 2, lambda: self._machine_hangs_up(call, machine)),
        ]
        if amd is not None and plan.verdict_at_s is not None:
            result = amd.result(MACHINE, plan.verdict_speech)
            when = "after the beep" if plan.after_beep else "before the beep"
            if not machine.beep:
                when = "no beep heard"
            events.append((plan.verdict_at_s, 1, lambda: self._verdict(call, result, when)))
        elapsed = 0.0
        for moment, _, action in sorted(events, key=lambda event: event[:2]):
            await self._sleep(moment - elapsed)
            elapsed = max(elapsed, moment)
            action()

    def _start_tape(self, call: SimCall, machine: MachineScript) -> None:
        call.taping = True
        if machine.beep:
            self._note(call, tr.BEEP, "the answering machine records from now on")
        else:
            self._note(call, tr.NOTE, "no beep: the answering machine records from now on")

    def _machine_hangs_up(self, call: SimCall, machine: MachineScript) -> None:
        why = f"when its answering machine had recorded {machine.max_message_s:g} s"
        self._person_hangs_up(call, why)

    def _verdict(self, call: SimCall, result: dict[str, str], when: str) -> None:
        """Bird's verdict (A13): one delivery carrying ``amdResult``, as every later one does."""
        call.amd_result = result
        if call.parent is None:
            self._transcript(call).amd_result = dict(result)
        self._deliver(call)
        detail = f"{result['result']}" + (f", {when}" if when else "")
        self._note(call, tr.AMD, f'{detail}: "{result["speech"]}"')

    def _tape(self, call: SimCall, text: str, whole: bool) -> None:
        """A prompt has been played on a call an answering machine took: it is on its tape
        when it was played after the beep (``whole``), its end when the beep came meanwhile."""
        if call.machine is None or not call.taping:
            return
        if whole:
            self._transcript(call).machine_recorded.append(text)
            self._note(call, tr.MACHINE_RECORDED, text)
        else:
            self._note(call, tr.NOTE, f"the answering machine recorded only the end of: {text}")

    async def _end_later(self, call: SimCall, after_s: float) -> None:
        await self._sleep(after_s)
        self._note(call, tr.NOTE, f"maxDuration of {after_s:g} s reached")
        self._end_call(call, "completed", "timeout")

    # ------------------------------------------------------------------- commands

    async def _work(self, call: SimCall) -> None:
        """Run the call's commands one at a time, in the order received."""
        while True:
            command = call.urgent.popleft() if call.urgent else await call.queue.get()
            if not self._conditions_hold(call, command):
                command.set_status("skipped")
                continue
            command.set_status("running")
            call.running, call.interrupted_by = command, None
            call.interrupt = asyncio.Event()
            try:
                outcome = await self._run(call, command)
            except _PersonHungUp as hung_up:
                command.set_status("cancelled")
                self._person_hangs_up(call, str(hung_up))
                return
            except asyncio.CancelledError:
                command.set_status("cancelled")
                raise
            finally:
                call.running = None
            if outcome is None or call.ended:
                return
            command.set_status(outcome[0])
            self._deliver(call, command, outcome)
            bridged = command.name == "bridge" and outcome[0] == "completed"
            if bridged and command.options.get("hangupAfterBridge") is True:
                self._end_call(call, "completed", "callee")
                return

    @staticmethod
    def _conditions_hold(call: SimCall, command: Command) -> bool:
        for condition in command.conditions or []:
            variable = condition.get("variable", "keys")
            actual = call.last_speech if variable == "speech" else call.last_keys
            expected = str(condition.get("value", ""))
            operator = condition.get("operator", "eq")
            if operator in ("eq", "=="):
                holds = actual == expected
            elif operator in ("ne", "!="):
                holds = actual != expected
            else:
                holds = expected in actual
            if not holds:
                return False
        return True

    async def _run(self, call: SimCall, command: Command) -> Outcome | None:
        name, options = command.name, command.options
        if name == "hangup":
            cause = options.get("cause")
            self.hang_up(call, cause if isinstance(cause, str) else None)
            return None
        if name == "answer":
            if call.direction != "incoming" or call.answered:
                return ("failed", {})
            self._answered(call)
            return ("completed", {})
        if name == "ringing":
            if call.direction != "incoming" or call.answered:
                return ("failed", {})
            if call.status != "ringing":
                self._set_status(call, "ringing")
            return ("completed", {})
        if name in MEDIA_COMMANDS and not call.answered:
            return ("failed", {})
        if name in ("say", "playback"):
            return await self._prompt(call, name, options)
        if name == "gather":
            return await self._gather(call, options)
        if name == "record":
            return await self._record(call, command)
        if name == "bridge":
            return await self._bridge(call, command)
        if name == "pause":
            await self._sleep(_number(options.get("length"), 1.0))
            return ("completed", {})
        return ("failed", {})

    async def _gather(self, call: SimCall, options: Mapping[str, Any]) -> Outcome:
        """Play the prompt, then take the person's next input: keys, words, silence (A3, A14)."""
        prompt_s, heard = 0.0, ""
        for kind in ("say", "playback"):
            prompt = options.get(kind)
            if isinstance(prompt, dict):
                heard = _prompt_text(kind, prompt)
                self._note(call, tr.HEARD, heard)
                prompt_s = plan_prompt(kind, prompt).seconds
                break
        timeout = _number(options.get("timeout"), GATHER_TIMEOUT_S)
        if call.machine is not None:
            return await self._machine_gather(call, heard, prompt_s, timeout)
        ran_out = not call.inputs  # the script has nothing for this gather: silence
        value = call.inputs.popleft() if call.inputs else SILENCE
        if value == HANGUP:
            await self._sleep(prompt_s / 2)
            raise _PersonHungUp("during the prompt")
        await self._sleep(prompt_s)
        listens = _listens(options)
        keys = speech = ""
        words = spoken(value)
        if value == SILENCE:
            await self._sleep(timeout)
            if ran_out:
                self._transcript(call).ran_out.append(heard)
            why = " (no input left in the script)" if ran_out else ""
            self._note(call, tr.SILENCE, f"{_nothing(listens)} within {timeout:g} s{why}")
        elif words is not None:
            speech = await self._speak(call, words, listens, timeout)
        else:
            keys = await self._press(call, value, options, listens, timeout)
        call.last_keys, call.last_speech = keys, speech
        return ("completed", {"keys": keys, "speech": speech})

    async def _press(
        self,
        call: SimCall,
        value: str,
        options: Mapping[str, Any],
        listens: frozenset[str],
        wait_s: float,
    ) -> str:
        """The person presses ``value``: the keys the gather takes (``""``: it hears no keys)."""
        max_keys = options.get("maxNumKeys")
        limit = max_keys if isinstance(max_keys, int) and max_keys > 0 else None
        end_key = options.get("endKey")
        keys, pressed, finished = "", "", False
        for key in value:
            pressed += key
            if key == end_key:
                finished = True
                break
            keys += key
            if limit is not None and len(keys) >= limit:
                finished = True
                break
        await self._sleep(THINK_S + KEY_PRESS_S * len(pressed))
        self._note(call, tr.PRESSED, pressed)
        if "dtmf" not in listens:
            self._note(call, tr.NOTE, f"not heard: the gather listens for speech only ({pressed})")
            await self._sleep(wait_s)
            return ""
        if not finished:
            await self._sleep(wait_s)
        return keys

    async def _speak(
        self, call: SimCall, words: str, listens: frozenset[str], wait_s: float
    ) -> str:
        """The person says ``words``: the speech the gather takes (``""``: it hears no speech)."""
        await self._sleep(THINK_S + speaking_seconds(words))
        self._note(call, tr.SAID, words)
        if "speech" in listens:
            return words
        self._note(call, tr.NOTE, f'not heard: the gather listens for keys only ("{words}")')
        await self._sleep(wait_s)
        return ""

    async def _machine_gather(
        self, call: SimCall, heard: str, prompt_s: float, wait_s: float
    ) -> Outcome:
        """An answering machine records the gather's prompt, and presses and says nothing."""
        taping = call.taping
        await self._sleep(prompt_s)
        if heard:
            self._tape(call, heard, taping)
        await self._sleep(wait_s)
        self._note(call, tr.SILENCE, f"the answering machine gave nothing within {wait_s:g} s")
        call.last_keys = call.last_speech = ""
        return ("completed", {"keys": "", "speech": ""})

    async def _record(self, call: SimCall, command: Command) -> Outcome:
        options = command.options
        if options.get("beep", True) is not False:
            self._note(call, tr.HEARD, "(beep)")
            await self._sleep(BEEP_S)
        length = call.voicemail_s
        max_length = options.get("maxLength")
        if isinstance(max_length, int) and 0 < max_length < length:
            length = float(max_length)
        await self._sleep(length)
        self._note(call, tr.RECORDED, f"a message of {length:g} s")
        recording_id = command.recording_id or str(uuid.uuid4())
        return ("completed", {"recordingId": recording_id, "duration": round(length)})

    async def _prompt(self, call: SimCall, name: str, options: Mapping[str, Any]) -> Outcome:
        """A ``say`` or ``playback``: ``loop`` plays, up to ``timeout`` (A8), maybe cut short;
        an answering machine records it (A13)."""
        text = _prompt_text(name, options)
        self._note(call, tr.HEARD, text)
        plan = plan_prompt(name, options)
        loop = _integer(options.get("loop"))
        if loop is not None and loop < 1:
            self._note(call, tr.NOTE, f"loop {loop} plays once: there is no infinite loop")
        taping = call.taping
        played_s, interrupted_by = await self._play(call, plan.seconds)
        self._tape(call, text, taping)
        if interrupted_by is not None:
            cut = f"{name} cut short after {played_s:.1f} s by a {interrupted_by} posted meanwhile"
            self._note(call, tr.INTERRUPTED, cut)
        elif plan.stopped_by_timeout:
            self._note(call, tr.NOTE, f"{name} stopped at its timeout of {plan.seconds:g} s")
        elif plan.plays > 1:
            self._note(call, tr.NOTE, f"{name} played {plan.plays} times")
        return ("completed", {})

    async def _play(self, call: SimCall, sim_s: float) -> tuple[float, str | None]:
        """Play for ``sim_s`` unless a command cuts it short: (seconds played, its name)."""
        started = asyncio.get_running_loop().time()
        if call.urgent:  # taken while commands posted after it wait: cut short at once
            call.interrupted_by = call.interrupted_by or call.urgent[0].name
        else:
            try:
                async with asyncio.timeout(max(0.0, sim_s) * self.time_scale):
                    await call.interrupt.wait()
            except TimeoutError:
                return sim_s, None
        played = (asyncio.get_running_loop().time() - started) / self.time_scale
        return min(played, sim_s), call.interrupted_by or "command"

    async def _bridge(self, call: SimCall, command: Command) -> Outcome:
        """Offer the call to an agent: ring the leg and wait until it has ended (A4, A9)."""
        options = command.options
        leg = command.leg
        if leg is None:
            leg = command.leg = self.new_bridge_leg(call, options)
        if leg.ended:  # the service hung the leg up before the bridge began
            return ("failed", {})
        target = leg.to_number
        script = self.agents.get(target, DEFAULT_AGENT)
        agent = self._next_offer(self.agent_offers, target, script)
        leg.ring_timeout_s = _number(options.get("ringTimeout"), RING_TIMEOUT_S)
        transcript = call.root.transcript
        assert transcript is not None
        leg.offer = Offer(
            at=round(self._at(call), 3),
            agent=target,
            leg_id=leg.id,
            offer_number=self.agent_offers[target],
            record=options.get("record") is True,
        )
        transcript.offers.append(leg.offer)
        self._note(call, tr.TRANSFERRING, f"to {target} (rings up to {leg.ring_timeout_s:g} s)")
        leg.started = True
        self._set_status(leg, "ringing")
        self._spawn_timer(leg, self._agent_leg(leg, agent, options))
        await leg.ended_event.wait()
        return ("completed", {}) if leg.answered else ("failed", {})

    @staticmethod
    def _next_offer(
        counts: collections.Counter[str], number: str, script: AgentScript
    ) -> AgentScript:
        """The script of the next offer to ``number`` (counted in ``counts``)."""
        index = counts[number]
        counts[number] += 1
        return script.for_offer(index)

    async def _agent_leg(
        self, leg: SimCall, agent: AgentScript, options: Mapping[str, Any]
    ) -> None:
        """The agent's side of one offer: ring, then answer, talk and hang up, or not."""
        if agent.behavior in ("busy", "failed"):
            self._end_call(leg, agent.behavior, "callee" if agent.behavior == "busy" else "none")
            return
        ring_timeout = leg.ring_timeout_s
        answers = agent.behavior == "answer" and agent.answer_after_s < ring_timeout
        rang_s = agent.answer_after_s if answers else ring_timeout
        await self._sleep(rang_s)
        if leg.left_ringing:  # nobody to put through: it rings on to its timeout (A11)
            await self._sleep(ring_timeout - rang_s)
        if leg.left_ringing or not answers:
            self._end_call(leg, "no-answer", "timeout")
            return
        self._answered(leg)
        self._detect(leg, AmdSettings.of(options))
        if leg.offer is not None:
            leg.offer.outcome = tr.OFFER_ANSWERED
        self._note(leg.root, tr.REACHED, leg.to_number)
        transcript = leg.root.transcript
        assert transcript is not None
        transcript.reached = leg.to_number
        max_duration = _number(options.get("maxDuration"), 28800.0)
        await self._sleep(min(agent.talk_s, max_duration))
        self._end_call(leg, "completed", "callee" if agent.talk_s <= max_duration else "timeout")

    def _leave_ringing(self, leg: SimCall) -> None:
        """The caller's call ended while ``leg`` rang: leave it ringing (A11)."""
        leg.left_ringing = True
        if leg.offer is not None:
            leg.offer.left_ringing = True
        self._note(
            leg.root,
            tr.AGENT_LEFT_RINGING,
            f"{leg.to_number} still rings, left up {_after_caller_left(leg.root)}",
        )

    def _leg_ended(self, leg: SimCall, status: str, source: str) -> None:
        """Tell the caller's transcript how an agent's leg ended, and settle its offer."""
        root, target, offer = leg.root, leg.to_number, leg.offer
        if offer is None:
            why = "the service hung it up" if source == "api" else "the caller's call ended"
            self._note(
                root, tr.AGENT_CANCELLED, f"the call to {target} ended before it rang: {why}"
            )
            return
        if leg.answered:
            talked = f"after {leg.duration} s"
            if leg.ended_with_parent:
                offer.ended_by = (
                    "caller" if root.hangup_source in ("caller", "callee") else "service"
                )
                text = f"the call to {target} ended with the caller's call {talked}"
            elif source == "api":
                offer.ended_by = "service"
                text = f"the service hung up the call to {target} {talked}"
            elif source == "timeout":
                offer.ended_by = "timeout"
                text = f"the call to {target} reached its maxDuration {talked}"
            else:
                offer.ended_by = "agent"
                text = f"{target} hung up {talked}"
            self._note(root, tr.AGENT_HUNG_UP, text)
            return
        left = f", left ringing {_after_caller_left(root)}" if leg.left_ringing else ""
        if status == "busy":
            offer.outcome = tr.OFFER_BUSY
            self._note(root, tr.AGENT_BUSY, f"{target} is busy")
        elif status == "failed":
            offer.outcome = tr.OFFER_FAILED
            self._note(root, tr.AGENT_FAILED, f"the call to {target} failed")
        elif status == "no-answer":
            offer.outcome = tr.OFFER_MISSED
            text = f"{target} did not answer within {leg.ring_timeout_s:g} s{left}"
            self._note(root, tr.AGENT_NO_ANSWER, text)
        elif leg.ended_with_parent:
            offer.outcome = tr.OFFER_ENDED_WITH_CALLER
            text = f"the call to {target} ended with the caller's call while it rang"
            self._note(root, tr.AGENT_CANCELLED, text)
        else:
            offer.outcome = tr.OFFER_HUNG_UP_BY_SERVICE
            text = f"the service hung up the call to {target} while it rang{left}"
            self._note(root, tr.AGENT_CANCELLED, text)


def _after_caller_left(root: SimCall) -> str:
    if root.hangup_source in ("caller", "callee"):
        return f"after the {root.party} hung up"
    return f"after the {root.party}'s call ended"
