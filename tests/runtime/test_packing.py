"""What a live call keeps in Redis is packed: smaller, read back exactly, and the JSON
written before packing existed still reads."""

from __future__ import annotations

import json
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.runtime.packing import DICTIONARY_V1, PACKED_V1, pack, unpack

STATE = json.dumps({
    "call_id": "f60b9e4c-c610-4e9d-b9d4-f2701f8b8f4d", "graph": "support-line",
    "graph_version": "20c1e13d43f3b958", "caller": "+31612345678", "called": "+31970000000",
    "direction": "inbound", "phase": "connected", "node": "sales", "after": None,
    "attempts": 0, "steps": 3, "vars": {}, "agent_leg": "a2169869", "line": None,
    "recordings": [], "outcome": None, "started_at": 1795750469.3821416, "ended_at": None,
    "seen": {"f60b9e4c": 1795750474430234}, "recent": ["2ccdd8ad3c40959e"], "version": 8,
}, separators=(",", ":"))  # fmt: skip


def test_a_call_s_state_packs_to_under_half_and_reads_back_exactly() -> None:
    packed = pack(STATE)
    assert packed.startswith(PACKED_V1)
    assert len(packed) < len(STATE) / 2
    assert unpack(packed) == STATE.encode()


def test_json_written_before_packing_reads_as_it_is() -> None:
    assert unpack(STATE) == STATE.encode()
    assert unpack(STATE.encode()) == STATE.encode()


def test_a_broken_packed_value_is_a_value_error_not_garbage() -> None:
    with pytest.raises(ValueError, match="does not inflate"):
        unpack(PACKED_V1 + b"\xff\xff\xff")


@given(st.text())
def test_any_text_reads_back_exactly(text: str) -> None:
    assert unpack(pack(text)) == text.encode()


def test_the_whole_dictionary_fits_the_window_it_is_used_with() -> None:
    assert len(DICTIONARY_V1) <= (1 << 12) - 262


def test_packing_makes_the_bytes_a_new_compressor_with_the_dictionary_makes() -> None:
    # The primed compressor's copies keep nothing of one value for the next.
    journal = '{"kind":"command","rt":1795750470.123,"action":"say","result":"accepted"}'
    for text in (STATE, journal, STATE, "", journal * 3):
        fresh = zlib.compressobj(6, zlib.DEFLATED, -12, 5, zlib.Z_DEFAULT_STRATEGY, DICTIONARY_V1)
        assert pack(text) == PACKED_V1 + fresh.compress(text.encode()) + fresh.flush()
