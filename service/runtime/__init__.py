"""Running calls: settings, logs, Redis (the embedded server, key names, the call
store, graph versions), and the call handler that loads a call, plans its next step
with the engine, commits it and acts on it through Bird.

Knows Redis and Bird's typed facade (``service.bird``); knows no HTTP framework.
"""
