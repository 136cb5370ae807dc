"""The real ``fmfast`` command, run in a subprocess for the CLI tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def fmfast_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``fmfast ARGS`` (this checkout's, through ``python -m``) and capture what it prints."""
    command = [sys.executable, "-m", "fmfast.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, timeout=120)
