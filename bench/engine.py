"""Engine transitions per second: a full support-line call, answered to transfer."""

from __future__ import annotations

import time
from pathlib import Path

from service.core import engine, events
from service.graphs.loader import load_file

CALL: list[events.Event] = [
    events.CallAnswered(),
    events.PromptFinished(),
    events.DigitsCollected("9"),
    events.PromptFinished(),
    events.DigitsCollected("1"),
    events.AgentRinging("leg"),
    events.AgentConnected("leg"),
    events.CallEnded("completed", "callee"),
]


def main(calls: int = 20_000) -> None:
    graph = load_file(Path("ivr_graphs/support-line.json"))
    started = time.perf_counter()
    for n in range(calls):
        transition = engine.begin(graph, call_id=str(n), caller="+31600000000", called="+3197",
                                  now=0.0)  # fmt: skip
        for event in CALL:
            transition = engine.step(graph, transition.state, event, 1.0)
        assert transition.state.ended
    elapsed = time.perf_counter() - started
    steps = calls * (len(CALL) + 1)
    print(f"engine: {steps / elapsed:,.0f} transitions/s ({elapsed / calls * 1e6:.0f} us per call)")


if __name__ == "__main__":
    main()
