"""The IVR core: pure, no I/O.

The graph model, a call's state, the events that happen on a call, the actions the
engine asks for, and the engine itself: ``(graph, state, event, now) -> (state,
actions, notes)``. Nothing here imports Redis, httpx, Starlette, structlog or
jsonschema (an import-linter contract in ``.importlinter`` keeps it so); most of the
service's behaviour is tested by feeding the engine events.
"""
