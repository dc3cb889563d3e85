"""Colour in the terminal, and plain text everywhere else.

A stream gets colour when it is a terminal, ``NO_COLOR`` is unset or empty
(https://no-color.org) and ``TERM`` is not ``dumb``; ``FORCE_COLOR`` (non-empty)
turns it on for a pipe. Every command styles its output through one
:class:`Style` per stream, so that errors, warnings and transcripts look apart
in a terminal and a file or CI log gets the same text without escape codes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TextIO

_CODES = {
    "error": "1;31",  # bold red
    "warning": "33",  # yellow
    "ok": "32",  # green
    "info": "36",  # cyan
    "dim": "2",
    "bold": "1",
}


def wants_colour(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """Whether text written to ``stream`` should be coloured."""
    env = os.environ if environ is None else environ
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    if env.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Style:
    """Wraps text in the escape codes of its kind, or returns it as it is."""

    def __init__(self, stream: TextIO, *, colour: bool | None = None) -> None:
        self.stream = stream
        self.colour = wants_colour(stream) if colour is None else colour

    def paint(self, kind: str, text: str) -> str:
        if not self.colour or not text:
            return text
        return f"\x1b[{_CODES[kind]}m{text}\x1b[0m"

    def error(self, text: str) -> str:
        return self.paint("error", text)

    def warning(self, text: str) -> str:
        return self.paint("warning", text)

    def ok(self, text: str) -> str:
        return self.paint("ok", text)

    def info(self, text: str) -> str:
        return self.paint("info", text)

    def dim(self, text: str) -> str:
        return self.paint("dim", text)

    def bold(self, text: str) -> str:
        return self.paint("bold", text)

    def line(self, kind: str, text: str) -> None:
        """Print ``text`` on this stream, styled as ``kind``."""
        print(self.paint(kind, text), file=self.stream)
