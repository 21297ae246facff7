"""What the benchmark sections say about the machine and the code they ran on, and where they keep
their files."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / ".data"  # generated inputs and work files (gitignored)


def git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "--no-optional-locks", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return ""
    return done.stdout.strip()


def commit() -> str:
    """The short commit, and whether the working tree had uncommitted changes."""
    found = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain"):
        found += " (with uncommitted changes)"
    return found


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def cpus() -> str:
    """The CPUs this process may run on, and their model: "2 x AMD EPYC"."""
    return f"{len(os.sched_getaffinity(0))} x {cpu_model()}"


def about(upsell: str) -> str:
    """The code and machine a section ran on, for its first paragraph; `upsell` is what
    `upsell --version` printed."""
    return (
        f"with {upsell.strip() or 'upsell'} at commit {commit()}, on {cpus()} with "
        f"{memory_total()} memory"
    )
