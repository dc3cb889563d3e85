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


def settings_read() -> dict[str, bool]:
    """Every variable ``service/runtime/settings.py`` reads, and whether it is required."""
    source = (ROOT / "service" / "runtime" / "settings.py").read_text()
    found = re.findall(r'reader\.(\w+)\(\s*"([A-Z_]+)"([^)]*)\)', source)
    assert found, "no settings found"
    return {name: how == "required" or "required=True" in rest for how, name, rest in found}


def readme_settings_table() -> dict[str, bool]:
    """The settings of the README's table, and whether it says they are required."""
    table: dict[str, bool] = {}
    for line in README.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.strip().startswith("| `") and len(cells) == 3 and cells[1] in ("yes", "no"):
            table.update(
                dict.fromkeys(re.findall(r"`([A-Z][A-Z_]+)`", cells[0]), cells[1] == "yes")
            )
    return table


def test_every_setting_is_in_the_readme_table_and_the_env_example() -> None:
    settings = settings_read()
    assert readme_settings_table() == settings  # every one, and which are required
    example = (ROOT / "deploy" / "ivr.env.example").read_text()
    set_there = set(re.findall(r"^([A-Z][A-Z_]+)=", example, flags=re.M))
    commented = set(re.findall(r"^# ([A-Z][A-Z_]+)=", example, flags=re.M))
    # The required ones to fill in; the optional ones shown, commented out.
    assert set_there == {name for name, required in settings.items() if required}
    assert commented == {name for name, required in settings.items() if not required}
    # The README section it points to exists.
    sections = re.findall(r'see README, "([^"]+)"', example)
    assert sections
    headings = re.findall(r"^#+ (.+)$", README, flags=re.M)
    assert [name for name in sections if name not in headings] == []


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


NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}  # fmt: skip
# "9 calls", "three agents", "eight callers", "1 outbound reminder", "four scripted calls".
COUNTED = re.compile(
    rf"\b(\d+|{'|'.join(NUMBER_WORDS)})\s+"
    r"(?:(?:scripted|simulated|demo|inbound|outbound|incoming|appointment|more|other)\s+){0,2}"
    r"(calls?|callers?|agents?|reminders?)\b",
    flags=re.IGNORECASE,
)


def counts(text: str) -> list[tuple[str, int]]:
    """What ``text`` counts: ``("calls", 9)``, ``("agents", 3)``, ..."""
    text = " ".join(text.split())
    return [
        (
            noun.lower().rstrip("s"),
            int(number) if number.isdigit() else NUMBER_WORDS[number.lower()],
        )
        for number, noun in COUNTED.findall(text)
    ]


def demo_help_line() -> str:
    """The demo's line of ``ivr --help``, with its continuation lines."""
    lines = ivr("--help").stdout.splitlines()
    (start,) = [i for i, line in enumerate(lines) if line.split()[:1] == ["demo"]]
    indent = len(lines[start]) - len(lines[start].lstrip())
    found = [lines[start]]
    for line in lines[start + 1 :]:
        if not line.strip() or len(line) - len(line.lstrip()) <= indent:
            break
        found.append(line)
    return " ".join(" ".join(found).split())


def demo_paragraphs() -> dict[str, str]:
    """Every text that says what the demo does, by where it is."""
    quick_start = README[README.index("## Quick start") :]
    places = {
        "README.md, Quick start": quick_start[: quick_start.index("\n## ", 1)],
        "ivr --help": demo_help_line(),
        "ivr demo --help": " ".join(ivr("demo", "--help").stdout.split()),
        "the demo's first line": demo.banner("+31970102030"),
        "service/cli/demo.py": demo.__doc__ or "",
    }
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for index, paragraph in enumerate(path.read_text().split("\n\n")):
            if re.search(r"\bdemo\b", paragraph):
                places[f"{path.relative_to(ROOT)}, paragraph {index + 1}"] = paragraph
    return places


def test_the_readme_the_help_and_the_demo_agree_on_what_the_demo_does() -> None:
    """The README, ``ivr --help``, ``ivr demo --help``, the line the demo starts with and
    its docstring give the counts of the demo's actual call list and agents."""
    callers = len(demo.demo_calls("+31970102030"))
    truth = {"call": callers + demo.REMINDERS, "caller": callers, "agent": len(demo.CENTER),
             "reminder": demo.REMINDERS}  # fmt: skip
    assert truth == {"call": 10, "caller": 8, "agent": 3, "reminder": 2}  # as the texts say
    assert truth["call"] == demo.CALLS
    wrong = [
        f"{where}: {number} {noun}s, but the demo has {truth[noun]}"
        for where, text in demo_paragraphs().items()
        for noun, number in counts(text)
        if number != truth[noun]
    ]
    assert wrong == []
    # Each place says it, not only none contradicts it.
    (make_demo,) = [line for line in README.splitlines() if line.startswith("make demo")]
    assert "a call center of 3 agents and 10 calls" in make_demo
    assert "a call center of 3 agents and 10 calls (8 callers, 2 outbound reminders)" in (
        demo_help_line()
    )
    demo_help = " ".join(ivr("demo", "--help").stdout.split())
    assert "Seat 3 agents (PUT /agents/{id}) and place 10 calls" in demo_help
    assert "8 callers of the support line" in demo_help
    assert "and 2 outbound appointment reminders" in demo_help
    assert "seats three agents" in README
    assert "places ten calls: eight callers" in README
    assert demo.banner("+31970102030").startswith(
        "ivr demo: 10 calls: 8 to +31970102030 (support-line) and 2 outbound reminders (one "
        "reaches an answering machine); 3 agents."
    )
    docstring = " ".join((demo.__doc__ or "").split())
    assert "seats three agents" in docstring
    assert "places ten calls: eight callers" in docstring


def test_counts_are_found_in_prose() -> None:
    assert counts("three scripted calls; four callers and one outbound reminder; 9\n calls") == [
        ("call", 3), ("caller", 4), ("reminder", 1), ("call", 9)
    ]  # fmt: skip


def test_the_readme_s_agents_file_is_one_the_service_takes() -> None:
    agents = read_agents_file(ROOT / "deploy" / "agents.example.json", queues_of(SHIPPED_SET))
    assert [(agent.id, status) for agent, status in agents] == [
        ("ann", "available"),
        ("dan", "available"),
    ]
    assert "IVR_AGENTS_FILE=deploy/agents.example.json" in README


def test_every_variable_the_readme_commands_use_is_a_setting_or_explained() -> None:
    settings = set(re.findall(r"^\s*\| `([A-Z_]+)` \|", README, flags=re.M))
    blocks = re.findall(r"```(?:sh|bash)\n(.*?)```", README, flags=re.S)
    prose = re.sub(r"```.*?```", "", README, flags=re.S)
    used = {name for block in blocks for name in re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", block)}
    assert used, "no variables found"
    unexplained = sorted(n for n in used if n not in settings and f"`${n}`" not in prose)
    assert unexplained == []
