"""Every Redis key the service uses, named in one place.

A call's keys share the hash tag ``{call_id}`` so that, on a Redis Cluster, all
of one call's keys live in one slot and a Lua script may touch them together.
"""

from __future__ import annotations

PREFIX = "ivr"


def call(call_id: str) -> str:
    """Hash: ``v`` (version, for compare-and-set), ``doc`` (the CallState JSON) and,
    while the call waits on a command, ``cs`` and ``cmd`` (its seq and JSON)."""
    return f"{PREFIX}:call:{{{call_id}}}"


def timers(channel_id: str = "") -> str:
    """Sorted set: call ids by when their pending command is next due (ms), for any
    replica serving the channel to claim (``service.runtime.timers``): deployments
    for other channels sharing the Redis never fire them. Written in one script with
    a call's hash: on a Redis Cluster both must then share a slot."""
    return f"{PREFIX}:timers:{channel_id}" if channel_id else f"{PREFIX}:timers"


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
