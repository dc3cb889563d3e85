"""Templates in graph texts: ``{{caller}}``, ``{{called}}``, ``{{call_id}}``, ``{{vars.NAME}}``.

Rendering is pure and never fails at run time: an unknown or unset name renders
as an empty string (the graph validator reports reads of unset variables).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\}\}")


def names(text: str) -> list[str]:
    """The names a template reads, in order: ``["caller", "vars.account"]``."""
    return [m.group(1) for m in PLACEHOLDER.finditer(text)]


def render(text: str, context: Mapping[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: context.get(m.group(1), ""), text)
