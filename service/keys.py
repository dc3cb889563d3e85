"""Every Redis key the service uses, named in one place.

A call's keys share the hash tag ``{call_id}`` so that, on a Redis Cluster, all
of one call's keys live in one slot and a Lua script may touch them together.
"""

from __future__ import annotations

PREFIX = "ivr"


def call(call_id: str) -> str:
    """Hash: ``v`` (version, for compare-and-set) and ``doc`` (the CallState JSON)."""
    return f"{PREFIX}:call:{{{call_id}}}"
