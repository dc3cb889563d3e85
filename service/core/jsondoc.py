"""JSON text from outside (a webhook, an API request, a graph file), read into Python
values or refused with a reason in plain words, never with another exception.

``json.loads`` alone raises more than ``JSONDecodeError`` on hostile text: a
``ValueError`` for an integer of more than 4300 digits, ``RecursionError`` for deep
nesting, ``UnicodeDecodeError`` for bytes that are not UTF-8; and it accepts a lone
UTF-16 surrogate (``"\\ud800"``), a string no key, log line or hash can encode.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A \u escape of a UTF-16 surrogate: the only way JSON text can hold a lone one (UTF-8
# bytes cannot), so the costlier check runs only for texts that have one.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class JSONTextError(ValueError):
    """The text is not JSON this service reads; ``reason`` says why, to follow the
    name of what was read ("body is nested too deeply")."""

    def __init__(self, reason: str, syntax: json.JSONDecodeError | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.syntax = syntax
        """The syntax error, with its ``msg``, ``lineno`` and ``colno``, if that is why."""


def load(text: bytes | str) -> Any:
    """The JSON value of ``text``, or :class:`JSONTextError`."""
    try:
        data = text.encode("utf-8") if isinstance(text, str) else text  # a raw surrogate fails
        document = json.loads(data)
        if _SURROGATE_ESCAPE.search(data):  # only a \uD800-\uDFFF escape can make one
            json.dumps(document, ensure_ascii=False).encode("utf-8")
    except json.JSONDecodeError as exc:
        raise JSONTextError(f"is not JSON: {exc}", exc) from None
    except UnicodeDecodeError as exc:
        raise JSONTextError(f"is not JSON: {exc}") from None
    except UnicodeEncodeError:
        raise JSONTextError("holds a lone surrogate (an invalid \\u escape)") from None
    except RecursionError:
        raise JSONTextError("is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise JSONTextError(f"is not JSON we can read: {exc}") from None
    return document
