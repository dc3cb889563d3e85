"""The documentation shows what the code does."""

from __future__ import annotations

import re

from service.graphs import render
from service.graphs.loader import load_file
from tests.paths import ROOT, SHIPPED_GRAPHS

README = (ROOT / "README.md").read_text()


def test_the_readme_diagram_is_what_ivr_render_prints() -> None:
    (block,) = re.findall(r"```mermaid\n(.*?)```", README, flags=re.S)
    assert block == render.mermaid(load_file(SHIPPED_GRAPHS / "support-line.json"))


def test_the_readme_starts_with_the_two_commands() -> None:
    first_blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.S)[0]
    commands = [line.split("#")[0].strip() for line in first_blocks.splitlines()]
    assert commands == ["make demo", "make test"]


def test_every_setting_is_documented() -> None:
    settings = (ROOT / "service" / "runtime" / "settings.py").read_text()
    names = set(re.findall(r'reader\.\w+\(\s*"([A-Z_]+)"', settings))
    assert names, "no settings found"
    missing = sorted(n for n in names if f"`{n}`" not in README)
    assert missing == []
