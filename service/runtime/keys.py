"""Every Redis key the service uses, named in one place.

A call's keys share the hash tag ``{call_id}`` so that, on a Redis Cluster, all
of one call's keys live in one slot and a Lua script may touch them together.
"""

from __future__ import annotations

PREFIX = "ivr"


def call(call_id: str) -> str:
    """Hash: ``v`` (version, for compare-and-set) and ``doc`` (the CallState JSON)."""
    return f"{PREFIX}:call:{{{call_id}}}"


def graph_version(graph_id: str, version: str) -> str:
    """String: one graph version's canonical JSON, for every replica to read."""
    return f"{PREFIX}:graph:{graph_id}:{version}"


def outbound(ref: str) -> str:
    """String: an outbound call we asked Bird to place, until its first delivery
    (``ref`` travels in the call's notification URL)."""
    return f"{PREFIX}:outbound:{ref}"
