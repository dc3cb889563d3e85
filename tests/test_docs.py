"""The documentation shows what the code does."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from service.cli import demo
from service.core.queues import queues_of
from service.graphs import render
from service.graphs.loader import load_directory, load_file
from service.runtime.agents import read_agents_file
from tests.paths import ROOT, SHIPPED_GRAPHS, ivr

README = (ROOT / "README.md").read_text()
SHIPPED_SET = load_directory(SHIPPED_GRAPHS, "support-line")


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


# A path of this repository as docs and docstrings cite it (``service/bird/client.py``,
# ``docs/graphs.md``), or a bare Markdown file name (``README.md``: at the root, or
# beside the document that links it).
CITED_PATH = re.compile(
    r"(?<![\w/.-])((?:service|tests|bench|docs|deploy|ivr_graphs)/[\w/.-]*\w|[\w-]+\.md)\b"
)


def cited_paths(text: str) -> set[str]:
    return {match.group(1) for match in CITED_PATH.finditer(text)}


def test_every_file_that_docs_and_docstrings_cite_exists() -> None:
    sources = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "bench" / "README.md"]
    for folder in ("service", "tests", "bench"):
        sources += (ROOT / folder).rglob("*.py")
    missing = sorted(
        f"{source.relative_to(ROOT)}: {cited}"
        for source in sources
        if source != Path(__file__).resolve()  # its examples below are not citations
        for cited in cited_paths(source.read_text())
        if not (ROOT / cited).exists() and not (source.parent / cited).exists()
    )
    assert missing == []


def test_cited_paths_are_found_in_prose_and_code() -> None:
    text = "see docs/graphs.md, `service/bird/client.py` and BIRD_API.md (A3); ivr_graphs/"
    assert cited_paths(text) == {"docs/graphs.md", "service/bird/client.py", "BIRD_API.md"}


DOTTED = re.compile(r"(?<![\w.])service(?:\.\w+)+")


def resolves(dotted: str) -> bool:
    """Whether ``service.x.y`` names a module of the package, or something in one."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            if not hasattr(found, name):
                return False
            found = getattr(found, name)
        return True
    return False


def test_every_module_that_docs_and_docstrings_name_exists() -> None:
    # Not tests/: there ``service`` is also the name of a running service in a test.
    sources = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *(ROOT / "service").rglob("*.py")]
    unresolved = sorted(
        f"{source.relative_to(ROOT)}: {dotted}"
        for source in sources
        for dotted in set(DOTTED.findall(source.read_text()))
        if not resolves(dotted)
    )
    assert unresolved == []


def test_a_dotted_name_resolves_to_a_module_or_what_it_holds() -> None:
    assert resolves("service.core.engine")
    assert resolves("service.core.engine.step")
    assert not resolves("service.engine")
    assert not resolves("service.core.engine.no_such_thing")


def test_the_readme_the_help_and_the_demo_agree_on_what_the_demo_does() -> None:
    calls, agents = demo.CALLS, len(demo.CENTER)
    (make_demo,) = [line for line in README.splitlines() if line.startswith("make demo")]
    assert f"a call center of {agents} agents and {calls} calls" in make_demo
    help_text = " ".join(ivr("--help").stdout.split())
    assert f"a call center of {agents} agents and {calls} calls" in help_text
    demo_help = " ".join(ivr("demo", "--help").stdout.split())
    assert f"Seat {agents} agents (PUT /agents/{{id}}) and place {calls} calls" in demo_help
    assert f"{calls - 1} callers of the support line" in demo_help
    words = {3: "three", 8: "eight", 9: "nine"}
    assert f"seats {words[agents]} agents" in README
    assert f"places {words[calls]} calls: {words[calls - 1]} callers" in README


def test_the_readme_s_agents_file_is_one_the_service_takes() -> None:
    agents = read_agents_file(ROOT / "deploy" / "agents.example.json", queues_of(SHIPPED_SET))
    assert [(agent.id, status) for agent, status in agents] == [
        ("ann", "available"),
        ("dan", "available"),
    ]
    assert "IVR_AGENTS_FILE=deploy/agents.example.json" in README
