"""What a caller said, matched against a menu's phrases. Pure.

A phrase matches an answer when its words appear in the answer, together and in
order, whatever the case and punctuation: "billing" matches "Billing, please" and
"uh billing"; "credit card" matches "my credit card"; "bill" does not match
"billing" (whole words only). Speech recognisers return words in lower or mixed
case without punctuation guarantees (A14), so both sides are reduced to their
words in lower case (``str.casefold``) before they are compared.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

_WORD = re.compile(r"\w+(?:'\w+)*")


def words(text: str) -> tuple[str, ...]:
    """The words of ``text``, case-folded: ``"It's Billing!"`` -> ``("it's", "billing")``."""
    return tuple(_WORD.findall(text.casefold()))


def contains(answer: Sequence[str], phrase: Sequence[str]) -> bool:
    """Whether the words ``phrase`` appear in ``answer``, together and in order."""
    size = len(phrase)
    if size == 0:
        return False
    return any(tuple(answer[i : i + size]) == tuple(phrase) for i in range(len(answer) - size + 1))


def choose(phrases: Mapping[str, Sequence[str]], said: str) -> tuple[str, str] | None:
    """The option (and the phrase of it) that ``said`` chooses: the first option, in
    the menu's order, one of whose phrases it contains; None when none matches."""
    answer = words(said)
    if not answer:
        return None
    for option, candidates in phrases.items():
        for phrase in candidates:
            if contains(answer, words(phrase)):
                return option, phrase
    return None
