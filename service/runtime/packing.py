"""How the texts kept for every live call are stored in Redis: the call's state (its
hash's ``doc``, ``service.core.state.CallState`` JSON) and each entry of its journal
(``service.runtime.journal``). Each is deflated against a preset dictionary of the
words such JSON is made of, which brings a live call's keys from about 3.5 KiB to
under 2 KiB (bench/README.md, "Load") for about 15 µs a write.

What is stored is either ``PACKED_V1`` (one byte) and the raw deflate stream
(RFC 1951) made with :data:`DICTIONARY_V1`, or plain JSON text (it starts with ``{``):
what earlier versions wrote stays readable, and :func:`unpack` takes both.

:data:`DICTIONARY_V1` never changes, since what was written with it must stay
readable for as long as a call's keys live: a better dictionary is a new first byte.
Inspect a packed value with ``ivr trace`` (it unpacks), or in Python with
``service.runtime.packing.unpack``.
"""

from __future__ import annotations

import zlib

PACKED_V1 = b"\x01"

# The vocabulary of a call's state and journal, the most frequent last (deflate
# reaches the end of a dictionary with the shortest distances). At most 3,834 bytes:
# what a 4 KiB window can look back on.
DICTIONARY_V1 = (
    b'"callback":false,"graph":"","version":"","command_id":"'
    b'"kind":"delivery","status":"duplicate","detail":"","delivery":"'
    b'"kind":"command","rt":1800000000.000,"action":"hangup","result":"unsure","ms":0.0'
    b',"attempt":1}{"kind":"command","rt":1800000000.000,"action":"record","result":'
    b'"not_performed","ms":0.0,"attempt":1}{"kind":"command","rt":1800000000.000,'
    b'"action":"bridge","result":"accepted","ms":0.0,"attempt":1,"command_id":"'
    b'{"kind":"command","rt":1800000000.000,"action":"answer","result":"accepted",'
    b'"ms":0.0,"attempt":1}{"kind":"command","rt":1800000000.000,"action":"gather",'
    b'"result":"accepted","ms":0.0,"attempt":1}{"kind":"command","rt":1800000000.000,'
    b'"action":"speak","result":"accepted","ms":0.0,"attempt":1}'
    b'"abandon":"given up","outcome":"transferred","outcome":"agent_connected",'
    b'"outcome":"hangup_node","outcome":"caller_hung_up","outcome":"voicemail",'
    b'{"type":"RecordingFinished","recording_id":"","duration_s":'
    b'{"type":"HttpResponded","status":200,"body_b64":"'
    b'{"type":"LineStatus","joined":true,"position":1,'
    b'{"type":"AgentOffered","offer":"","agent":"'
    b'{"type":"AgentUnavailable","leg_id":"","reason":"no-answer","offer":null}'
    b'"via":"record completed""via":"playback completed""via":"bridge completed"'
    b'"do":["record up to 120 s"]"do":["hang up"]"do":["play "'
    b'"do":["bridge to +31 (rings up to 30 s)"]'
    b'"do":["gather up to 1 keys (5 s) after \\"'
    b'"do":["speak \\"'
    b'{"t":1800000000.000,"begin":{"direction":"outbound","caller":"+3","called":"+3",'
    b'"vars":{},"callback":false},"node":null,"path":[],"at":null,"rt":1800000000.000,'
    b'"via":"starting","do":["answer"],"graph":"","version":"'
    b'{"t":1800000000.000,"event":{"type":"CallEnded","status":"completed","by":"callee"}'
    b',"node":"","path":[],"at":"","rt":1800000000.000,"via":"completed","outcome":"'
    b'{"t":1800000000.000,"event":{"type":"AgentHungUp","leg_id":"","offer":null},'
    b'"node":"","path":[],"at":"","rt":1800000000.000,"via":"completed"}'
    b'{"t":1800000000.000,"event":{"type":"AgentConnected","leg_id":"","offer":null},'
    b'"node":"","path":[],"at":"","rt":1800000000.000,"via":"ongoing"}'
    b'{"t":1800000000.000,"event":{"type":"AgentRinging","leg_id":"","offer":null},'
    b'"node":"","path":[],"at":"","rt":1800000000.000,"via":"ringing"}'
    b'{"t":1800000000.000,"event":{"type":"DigitsCollected","digits":"","ok":true},'
    b'"node":"","path":[""],"at":"","rt":1800000000.000,"via":"gather completed","do":["'
    b'{"t":1800000000.000,"event":{"type":"PromptFinished","ok":true},"node":"",'
    b'"path":[""],"at":"","rt":1800000000.000,"via":"say completed","do":["'
    b'{"t":1800000000.000,"event":{"type":"CallAnswered"},"node":"","path":[],"at":"",'
    b'"rt":1800000000.000,"via":"answer completed"}'
    b'{"t":1800000000.000,"event":{"type":"Progress","what":"ringing"},"node":null,'
    b'"path":[],"at":null,"rt":1800000000.000,"via":"ringing"}'
    b'{"t":1800000000.000,"event":{"type":"CallAnswered"},"node":null,"path":[""],'
    b'"at":"","rt":1800000000.000,"via":"ongoing","do":["speak \\"'
    b'{"call_id":"","graph":"","graph_version":"","caller":"+31","called":"+31",'
    b'"direction":"inbound","phase":"connected","node":"","after":null,"attempts":0,'
    b'"steps":0,"vars":{},"agent_leg":null,"line":null,"recordings":[],"outcome":null,'
    b'"started_at":1800000000.0000000,"ended_at":null,"seen":{"":1800000000000000},'
    b'"recent":["","","","","","","",""],"version":0}'
)


# A 4 KiB window holds the whole dictionary, and a small one is quick to set up
# (a 32 KiB window took five times as long for the same bytes). The compressor is
# primed with the dictionary once: each value is packed by a copy of it, which makes
# the same bytes as a new one given the dictionary, without hashing the dictionary's
# 3.8 KB again (44 % fewer instructions a value; valgrind, on a call's states and
# journal entries). Level 6: level 1 takes 21 % fewer instructions for a call's state
# and 10 % fewer for a journal entry, but makes them 10 and 11 bytes larger (the state's
# hash went from 592 to 656 B in Redis at the load bench's talking stage), and the
# journal keeps a dozen entries.
_PRIMED = zlib.compressobj(6, zlib.DEFLATED, -12, 5, zlib.Z_DEFAULT_STRATEGY, DICTIONARY_V1)


def pack(text: str | bytes) -> bytes:
    """``text`` (JSON) as it is stored: ``PACKED_V1`` and its deflate stream."""
    data = text.encode() if isinstance(text, str) else text
    squeeze = _PRIMED.copy()
    return PACKED_V1 + squeeze.compress(data) + squeeze.flush()


def unpack(stored: bytes | str) -> bytes:
    """The JSON text of a stored value (packed or not); ``ValueError`` when it is packed
    and broken."""
    data = stored.encode() if isinstance(stored, str) else stored
    if not data.startswith(PACKED_V1):
        return data
    try:
        inflate = zlib.decompressobj(-15, DICTIONARY_V1)
        return inflate.decompress(data[1:]) + inflate.flush()
    except zlib.error as exc:
        raise ValueError(f"a packed value that does not inflate: {exc}") from None
