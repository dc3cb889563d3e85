"""Where the project's files are, whatever the working directory of the test run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_GRAPHS = ROOT / "ivr_graphs"

# The ``ivr`` command as a process, as a user runs it from the project's root.
IVR = [sys.executable, "-m", "service"]


def ivr(*args: str, env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [*IVR, *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60, check=False
    )
