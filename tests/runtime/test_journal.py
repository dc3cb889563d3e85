"""A call's timeline, as read from its journal's entries (service.runtime.journal)."""

from __future__ import annotations

import json

from service.core import actions
from service.runtime.journal import command_note, delivery_note, timeline


def test_each_entry_becomes_lines_in_order_with_real_times() -> None:
    docs = [
        {"t": 5.0, "rt": 100.0, "begin": {"direction": "inbound", "caller": "+31612345678",
                                           "called": "+31970102030"},
         "node": None, "path": [], "at": None, "via": "starting", "do": ["answer"],
         "graph": "support-line", "version": "v1"},
        json.loads(command_note(100.01, action="answer", result="accepted", ms=6.66, attempt=1)),
        {"t": 6.0, "rt": 101.0, "event": {"type": "DigitsCollected", "digits": "1", "ok": True},
         "node": "menu", "path": ["billing"], "at": "billing", "via": "gather completed"},
        json.loads(delivery_note(101.5, delivery="gather completed", status="duplicate")),
        json.loads(command_note(102.0, action="say", result="refused", detail="422 bad text")),
        {"t": 7.0, "rt": 102.1, "abandon": "speak refused by Bird", "node": "billing", "path": [],
         "at": "billing", "outcome": "abandoned"},
        {"t": 8.0, "rt": 103.0, "event": {"type": "CallEnded", "status": "completed"},
         "node": "billing", "path": [], "at": "billing", "outcome": "abandoned"},
    ]  # fmt: skip
    lines = [(m.at, m.kind, m.node, m.text) for m in timeline(docs)]
    assert lines == [
        (100.0, "delivery", None, "starting: applied"),
        (100.0, "begin", None, "inbound call +31612345678 -> +31970102030; graph support-line v1; "
                               "do answer"),
        (100.01, "command", None, "bird answer: accepted in 6.7 ms"),
        (101.0, "delivery", "menu", "gather completed: applied"),
        (101.0, "step", "menu", "DigitsCollected(digits='1', ok=True); -> billing"),
        (101.5, "delivery", None, "gather completed: duplicate"),
        (102.0, "error", None, "bird say: refused: 422 bad text"),
        (102.1, "error", "billing", "given up: speak refused by Bird; ended: abandoned"),
        (103.0, "step", "billing", "CallEnded(status='completed')"),  # ended: said once
    ]  # fmt: skip


def test_an_action_is_described_in_one_line_and_a_lookup_without_its_query() -> None:
    lookup = actions.HttpRequest("GET", "https://crm.example/accounts?key=s3cret", {}, None, 2000)
    assert actions.describe(lookup) == "lookup GET https://crm.example/accounts"
    gather = actions.Gather(actions.Say("Press 1."), max_digits=1, timeout_s=5, end_key="#")
    assert actions.describe(gather) == 'gather up to 1 keys (5 s, ends with #) after "Press 1."'
    offer = actions.Bridge("+31201234567", None, ring_timeout_s=20, offer="o1")
    assert actions.describe(offer) == "offer to agent +31201234567 (rings up to 20 s)"
