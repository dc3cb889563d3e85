"""Every Redis key the service uses, named in one place.

The keys that scripts change together (a call's state, journal and timer with the
line's queues and agents, the live calls, traffic counts) start with ``TAGGED``:
they share the hash tag ``{ivr}``, so that on a Redis Cluster they live in one slot
and each script runs on one node (docs/scaling.md). The keys read and written one
at a time (graph versions, outbound references, rate counters, recent errors)
start with ``PREFIX`` and spread over the cluster.
"""

from __future__ import annotations

PREFIX = "ivr"
TAGGED = "{ivr}"


def call(call_id: str) -> str:
    """Hash: ``v`` (version, for compare-and-set), ``doc`` (the CallState JSON, packed:
    ``service.runtime.packing``), ``p`` (how many times its pending command changed) and,
    while the call waits on a command, ``cs`` and ``cmd`` (its seq and JSON)."""
    return f"{TAGGED}:call:{call_id}"


def call_journal(call_id: str) -> str:
    """List: what happened on the call, oldest first, one JSON entry per committed
    step (``service.runtime.journal``: its inputs, the nodes it walked) or note, each
    packed (``service.runtime.packing``), capped and kept as long as the call's hash
    (``ivr replay`` and ``ivr trace`` read it)."""
    return f"{TAGGED}:call:{call_id}:journal"


def graph_traffic(graph_id: str, version: str) -> str:
    """Hash: traffic counts of one graph version, per node (``service.core.traffic``:
    ``NODE|in``, ``NODE|out|EXIT``, ``NODE|invalid``, ``NODE|silent``,
    ``NODE|end|OUTCOME``), written with each call's commit (``ivr stats``)."""
    return f"{TAGGED}:traffic:{graph_id}:{version}"


def graph_traffic_day(graph_id: str, version: str, day: str) -> str:
    """Hash: the same counts as ``graph_traffic``, of one UTC day (YYYY-MM-DD) only
    (the supervisor page's "today"); kept ``store.TRAFFIC_DAY_TTL_S``."""
    return f"{TAGGED}:traffic:{graph_id}:{version}:day:{day}"


def live_calls(channel_id: str = "") -> str:
    """Hash: call id -> what the supervisor sees of a live call, JSON ``{"graph",
    "version", "node", "phase", "direction", "caller", "called", "started",
    "updated"}`` (times in ms, numbers unmasked), written by each commit of the call
    and removed by the one that ends it (``GET /admin/calls``, the live-calls gauge)."""
    return f"{TAGGED}:calls:live:{channel_id}" if channel_id else f"{TAGGED}:calls:live"


def recent_errors(channel_id: str = "") -> str:
    """List: the service's latest warning and error log lines, newest first, one JSON
    object each (``{"at", "level", "event", "call_id", "graph", "node", "text"}``,
    numbers masked), pushed by every replica serving the channel
    (``service.runtime.errors``), capped at ``errors.KEPT`` and expiring
    ``errors.TTL_S`` after the last push (``GET /admin/errors``)."""
    return f"{PREFIX}:errors:{channel_id}" if channel_id else f"{PREFIX}:errors"


def timers(channel_id: str = "") -> str:
    """Sorted set: call ids by when their pending command is next due (ms), for any
    replica serving the channel to claim (``service.runtime.timers``): deployments
    for other channels sharing the Redis never fire them. Written in one script with
    a call's hash: on a Redis Cluster both must then share a slot."""
    return f"{TAGGED}:timers:{channel_id}" if channel_id else f"{TAGGED}:timers"


def graph_version(graph_id: str, version: str) -> str:
    """String: one graph version's canonical JSON, for every replica to read."""
    return f"{PREFIX}:graph:{graph_id}:{version}"


def outbound(ref: str) -> str:
    """String: an outbound call we asked Bird to place, until its first delivery
    (``ref`` travels in the call's notification URL)."""
    return f"{PREFIX}:outbound:{ref}"


def current_graphs() -> str:
    """String: the graph set every replica serves, ``{"default", "versions": {id:
    version}}``, written by the replica that reloaded it last."""
    return f"{PREFIX}:graphs:current"


def graphs_channel() -> str:
    """Pub/sub channel: a reload announces the new current set here."""
    return f"{PREFIX}:graphs:reloaded"


def rate(workspace_id: str, method: str, second: int) -> str:
    """Counter: requests of ``method`` to Bird for this workspace in that second
    (``service.runtime.ratelimit``); expires after two seconds."""
    return f"{PREFIX}:rate:{workspace_id}:{method}:{second}"


# -- the line: queues, agents, offers (service.runtime.line) --------------------------
#
# The line's scripts touch an agent's keys in every queue the agent belongs to, so
# they name keys from these functions at run time (``line.KEY_FUNCTIONS`` renders
# them as Lua): on a Redis Cluster that is allowed because they share one hash tag
# with the keys the scripts declare.


def agents() -> str:
    """Hash: agent id -> the agent as configured (JSON, ``PUT /agents/{id}``)."""
    return f"{TAGGED}:agents"


def agent(agent_id: str) -> str:
    """Hash: an agent's live fields: ``status``, ``state``, ``until`` (ms), the
    ``offer``, ``call`` and ``queue`` they are busy with, ``address``, ``m`` (their
    queues as JSON ``{queue: [level, position]}``), ``missed`` (offers missed in a
    row), ``calls`` and ``talk_ms`` (on ``day``), ``last_offer`` and ``since`` (ms)."""
    return f"{TAGGED}:agent:{agent_id}"


def queue_waiting(queue: str) -> str:
    """Sorted set: the callers waiting in ``queue`` (call ids), by place: priority
    first, then when they joined (``line.place_score``)."""
    return f"{TAGGED}:queue:{queue}:waiting"


def queue_offered(queue: str) -> str:
    """Sorted set: the callers of ``queue`` whose offer rings now, by place."""
    return f"{TAGGED}:queue:{queue}:offered"


def queue_entry(queue: str, call_id: str) -> str:
    """Hash: one caller's place in ``queue``: ``score``, ``joined`` (ms),
    ``priority`` and the ``offer`` ringing for them."""
    return f"{TAGGED}:queue:{queue}:entry:{call_id}"


def queue_callbacks(queue: str) -> str:
    """Sorted set: the callbacks pending in ``queue`` (``cb:ID``), by place, whether
    waiting their turn, being called, or waiting for a retry; their entries
    (``queue_entry(queue, "cb:ID")``) also hold ``kind`` (``callback``), ``number``,
    ``from``, ``graph``, ``node``, ``attempts``, ``retry_at`` (ms) and ``call`` (the
    follow-up call)."""
    return f"{TAGGED}:queue:{queue}:callbacks"


def queue_idle(queue: str, level: int | str) -> str:
    """Sorted set: agents of ``queue`` at tier ``level`` who may be offered a caller
    now (available and idle), scored by the queue's strategy (lowest first)."""
    return f"{TAGGED}:queue:{queue}:idle:{level}"


def queue_available(queue: str) -> str:
    """Hash: tier level -> how many agents of ``queue`` at that level are
    ``available`` (whatever their state)."""
    return f"{TAGGED}:queue:{queue}:available"


def queue_config(queue: str) -> str:
    """Hash: what the line's scripts need of ``queue``'s settings (``strategy``,
    ``tier_wait_ms``, ``wrap_up_ms``, ``max_no_answer``, ``no_answer_delay_ms``,
    ``busy_delay_ms``, ``callback_retry_ms``, ``callback_attempts``), written from
    queues.json."""
    return f"{TAGGED}:queue:{queue}:config"


def queue_stats(queue: str, day: str) -> str:
    """Hash: counters of ``queue`` on ``day`` (UTC, YYYY-MM-DD): ``joined``,
    ``answered``, ``abandoned``, ``timed_out``, ``no_agents``, ``callback``,
    ``wait_ms`` (of the answered), ``handled``, ``handle_ms``,
    ``callbacks_requested``, ``callbacks_connected`` and ``callbacks_failed``."""
    return f"{TAGGED}:queue:{queue}:stats:{day}"


def offer(offer_id: str) -> str:
    """Hash: one offer of a caller to an agent: ``queue``, ``call``, ``agent``,
    ``status`` (``chosen`` until the call takes it, then ``taken``, ``connected``)
    and ``lease`` (ms: when a ``chosen`` offer is taken back)."""
    return f"{TAGGED}:offer:{offer_id}"


def timer_member(kind: str, ident: str) -> str:
    """A member of ``timers`` that is not a call: ``agent:ID`` (a wrap-up or
    cooldown ends), ``offer:ID`` (an offer's lease expires) or ``callback:QUEUE:ID``
    (a callback is tried again)."""
    return f"{kind}:{ident}"
