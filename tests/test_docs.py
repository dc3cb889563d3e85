"""The documentation shows what the code does."""

from __future__ import annotations

import re
from pathlib import Path

from service import render
from service.graphs import load_file

README = Path("README.md").read_text()


def test_the_readme_diagram_is_what_ivr_render_prints() -> None:
    (block,) = re.findall(r"```mermaid\n(.*?)```", README, flags=re.S)
    assert block == render.mermaid(load_file(Path("ivr_graphs/support-line.json")))


def test_the_readme_starts_with_the_two_commands() -> None:
    first_blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.S)[0]
    commands = [line.split("#")[0].strip() for line in first_blocks.splitlines()]
    assert commands == ["make demo", "make test"]


def test_every_setting_is_documented() -> None:
    settings = Path("service/settings.py").read_text()
    names = set(re.findall(r'reader\.\w+\(\s*"([A-Z_]+)"', settings))
    assert names, "no settings found"
    missing = sorted(n for n in names if f"`{n}`" not in README)
    assert missing == []
