"""The IVR graph model (docs/graphs.md): a graph, its nodes and their exits. Pure.

A graph file becomes these objects in ``service.graphs.loader``, which checks the
file first; here every node is a frozen dataclass whose required fields (its exits
among them) have no defaults, and :data:`Node` is the union of every node type, so
that code which handles nodes by type is checked for completeness by the type
checker (``match node: ... case _: assert_never(node)``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

NodeType = Literal[
    "say", "menu", "collect", "branch", "set", "hours", "transfer", "queue", "voicemail",
    "callback", "http", "pause", "hangup",
]  # fmt: skip
InputMode = Literal["dtmf", "speech", "dtmf speech"]
"""What a menu or collect takes from the caller: keys, words, or either."""
Operator = Literal["eq", "ne", "in", "matches", "lt", "le", "gt", "ge", "exists"]
Severity = Literal["error", "warning"]

# Nodes a path may end on (the call leaves the graph's hands there).
TERMINAL_TYPES: frozenset[NodeType] = frozenset(
    {"hangup", "transfer", "queue", "voicemail", "callback"}
)
# Nodes that wait for the caller: every loop must pass through one.
WAITING_TYPES: frozenset[NodeType] = frozenset({"menu", "collect"})


def pointer(parts: Iterable[object]) -> str:
    """A JSON pointer (RFC 6901) from its parts: ``["nodes", "a/b"]`` -> ``/nodes/a~1b``."""
    escaped = [str(p).replace("~", "~0").replace("/", "~1") for p in parts]
    return "/" + "/".join(escaped)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a graph file, at a JSON path of it."""

    file: str
    path: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        """One line: control characters of a path or message (a key "x\\n" in the
        file) are shown escaped, so that a problem never breaks into two lines."""
        label = "" if self.severity == "error" else f"{self.severity}: "
        return _one_line(f"{self.file}: {self.path}: {label}{self.message}")


def _one_line(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


@dataclass(frozen=True)
class Prompt:
    say: str | None = None
    play: tuple[str, ...] = ()
    locale: str | None = None
    voice: str | None = None


@dataclass(frozen=True, kw_only=True)
class NodeBase:
    """What every node has. ``exits`` maps each exit's JSON path below the node
    (``next``, ``options/1``, ``cases/0/next``) to the node it names, in file order."""

    type: ClassVar[NodeType]
    id: str
    prompt: Prompt | None = None
    exits: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class SayNode(NodeBase):
    type: ClassVar[NodeType] = "say"
    next: str


@dataclass(frozen=True, kw_only=True)
class MenuNode(NodeBase):
    """Chooses one of ``options`` by a key, or (``input`` with speech) by saying one
    of the option's ``phrases``."""

    type: ClassVar[NodeType] = "menu"
    options: Mapping[str, str]
    timeout_s: int = 5
    input: InputMode = "dtmf"
    speech_locale: str | None = None
    phrases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    max_attempts: int = 3
    invalid: Prompt | None = None
    no_input: Prompt | None = None
    on_failure: str


@dataclass(frozen=True, kw_only=True)
class CollectNode(NodeBase):
    type: ClassVar[NodeType] = "collect"
    var: str
    min_digits: int = 1
    max_digits: int
    end_key: str = "#"
    timeout_s: int = 5
    input: InputMode = "dtmf"
    speech_locale: str | None = None
    pattern: str | None = None
    max_attempts: int = 3
    invalid: Prompt | None = None
    no_input: Prompt | None = None
    next: str
    on_failure: str


@dataclass(frozen=True)
class Case:
    var: str
    op: Operator
    value: Any
    next: str


@dataclass(frozen=True, kw_only=True)
class BranchNode(NodeBase):
    type: ClassVar[NodeType] = "branch"
    cases: tuple[Case, ...]
    default: str


@dataclass(frozen=True, kw_only=True)
class SetNode(NodeBase):
    type: ClassVar[NodeType] = "set"
    vars: Mapping[str, str]
    next: str


@dataclass(frozen=True, kw_only=True)
class HoursNode(NodeBase):
    type: ClassVar[NodeType] = "hours"
    timezone: str
    weekly: Mapping[str, tuple[str, ...]]
    holidays: tuple[str, ...] = ()
    open: str
    closed: str


@dataclass(frozen=True, kw_only=True)
class TransferNode(NodeBase):
    type: ClassVar[NodeType] = "transfer"
    to: str
    from_: str | None = None
    ring_timeout_s: int = 30
    record: bool = False
    on_failure: str


@dataclass(frozen=True, kw_only=True)
class QueueNode(NodeBase):
    """Waits in line for an agent of ``queue`` (its settings: ``queues.json``,
    :class:`service.core.queues.Queue`); ``on_callback`` is where a caller goes who
    accepts the queue's callback offer (absent: the queue must not offer one)."""

    type: ClassVar[NodeType] = "queue"
    queue: str
    priority: int = 0
    record: bool = False
    on_timeout: str
    on_no_agents: str
    on_callback: str | None = None


@dataclass(frozen=True, kw_only=True)
class VoicemailNode(NodeBase):
    type: ClassVar[NodeType] = "voicemail"
    max_length_s: int = 120
    end_key: str = "#"
    beep: bool = True
    transcribe: bool = False
    next: str


@dataclass(frozen=True, kw_only=True)
class CallbackNode(NodeBase):
    type: ClassVar[NodeType] = "callback"
    queue: str
    next: str


@dataclass(frozen=True, kw_only=True)
class HttpNode(NodeBase):
    type: ClassVar[NodeType] = "http"
    url: str
    method: str = "GET"
    headers: Mapping[str, str] = field(default_factory=dict)
    body: Any = None
    timeout_ms: int = 2000
    save: Mapping[str, str] = field(default_factory=dict)
    next: str
    on_error: str


@dataclass(frozen=True, kw_only=True)
class PauseNode(NodeBase):
    """``seconds`` of silence, then ``next``."""

    type: ClassVar[NodeType] = "pause"
    seconds: int
    next: str


@dataclass(frozen=True, kw_only=True)
class HangupNode(NodeBase):
    type: ClassVar[NodeType] = "hangup"


Node = (
    SayNode
    | MenuNode
    | CollectNode
    | BranchNode
    | SetNode
    | HoursNode
    | TransferNode
    | QueueNode
    | VoicemailNode
    | CallbackNode
    | HttpNode
    | PauseNode
    | HangupNode
)
"""Every node type; ``match`` on it with ``assert_never`` to handle each."""

# Node types the engine runs: all of them today. A type the format names before the
# engine runs it is left out here, and the service refuses to load a graph that
# uses it (``service.graphs.loader``) rather than fail on a caller.
RUNNABLE_TYPES: frozenset[NodeType] = frozenset(
    {"say", "menu", "collect", "branch", "set", "hours", "transfer", "queue", "callback",
     "voicemail", "http", "pause", "hangup"}
)  # fmt: skip


@dataclass(frozen=True)
class Amd:
    """Answering-machine detection for a graph's outbound calls and callbacks: when a
    machine answers, the call goes to ``on_machine`` (None: it goes on where it is)
    after the beep. ``word_count`` and ``beep_timeout_s``: None leaves Bird's default."""

    enabled: bool
    on_machine: str | None = None
    word_count: int | None = None
    beep_timeout_s: int | None = None


def speaks(mode: InputMode) -> bool:
    """Whether a gather of ``mode`` listens for words."""
    return "speech" in mode


@dataclass(frozen=True)
class Graph:
    id: str
    start: str
    nodes: Mapping[str, Node]
    version: str
    numbers: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    description: str = ""
    locale: str | None = None
    voice: str | None = None
    amd: Amd | None = None
    tags: tuple[str, ...] = ()
    source: str = ""
    document: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    warnings: tuple[Problem, ...] = field(default=(), compare=False)
    # The queues of queues.json (name -> service.core.queues.Queue; typed as Any because
    # core.queues imports this module: read them typed with service.core.queues.queues_of).
    # Attached when loaded; not the graph's content, so not part of its version.
    queues: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def machine_entry(graph: Graph) -> str | None:
    """The node a call answered by a machine goes to (``amd.on_machine``), when the
    graph detects machines: it may be entered from wherever the call is."""
    amd = graph.amd
    if amd is None or not amd.enabled or amd.on_machine not in graph.nodes:
        return None
    return amd.on_machine


@dataclass(frozen=True)
class GraphSet:
    """The loaded graphs, and which graph answers which called number."""

    graphs: Mapping[str, Graph]
    default: str | None = None
    # name -> service.core.queues.Queue (see Graph.queues); empty without queues.json.
    queues: Mapping[str, Any] = field(default_factory=dict)

    def for_number(self, called: str) -> Graph | None:
        for graph in self.graphs.values():
            if called in graph.numbers:
                return graph
        return self.graphs.get(self.default) if self.default else None
