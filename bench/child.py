"""Running a measured child process: wall time, CPU time and peak RSS of one `upsell` command or one
step of a section.

Every measurement of the benchmark is a process of its own, so that its time and memory are its own
and include what a user would pay (interpreter start-up, imports): the installed command line
(`.venv/bin/upsell`, exactly as a user runs it) for the import and simulator sections, and
`bench/run.py --signals-step ...` or `--metrics-step ...` for the steps of the signals and metrics
sections. The parent reaps the child with `os.wait4`, which gives that process's own resource usage;
for PySpark, whose JVM is a child of the child, a thread also polls the summed RSS of the process
tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from host import ROOT  # bench/host.py, next to this file

UPSELL = ROOT / ".venv" / "bin" / "upsell"
RUN = ROOT / "bench" / "run.py"  # the driver; `--signals-step` and `--metrics-step` run one step


@dataclass(frozen=True)
class Run:
    """One finished child process: exit status, wall time, peak RSS and its output."""

    args: tuple[str, ...]
    returncode: int
    wall_seconds: float
    peak_rss_kib: int
    stdout: str
    stderr: str
    cpu_seconds: float = 0.0  # user + system time of the process, from the same wait4
    tree_peak_kib: int = 0  # with `poll`: the peak of the summed RSS of it and its descendants

    @property
    def peak_rss_mib(self) -> float:
        return self.peak_rss_kib / 1024

    def summary(self) -> dict[str, Any] | None:
        """The `--json` output, or None when there is none."""
        try:
            parsed = json.loads(self.stdout)
        except json.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, dict) else None

    def failure(self) -> str:
        tail = self.stderr.strip().splitlines()[-5:]
        return f"`upsell {' '.join(self.args)}` exited with {self.returncode}: " + " / ".join(tail)


def child_env(database_url: str | None) -> dict[str, str]:
    """The environment for `upsell`: ours without UPSELL_* settings, plus the database if given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UPSELL_")}
    if database_url:
        env["UPSELL_DATABASE_URL"] = database_url
    return env


def run_cli(
    args: Sequence[str],
    env: Mapping[str, str],
    *,
    program: Sequence[str] | None = None,
    poll: bool = False,
) -> Run:
    """Run `upsell ARGS` (or `program ARGS`) and measure it: wall time, and the child's own peak
    RSS from wait4.

    Output goes to temporary files (no pipes to drain), so the child can be reaped with `os.wait4`,
    which returns that process's resource usage; ru_maxrss is in KiB on Linux. With `poll`, a thread
    also samples the summed RSS of the child and its descendants in /proc twice a second (PySpark's
    JVM is a child of the child, which wait4 does not count); the peak is the higher of the two.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        command = [*(program or [str(UPSELL)]), *args]
        proc = subprocess.Popen(command, stdout=out, stderr=err, env=dict(env))
        poller = _TreeRss(proc.pid) if poll else None
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        if poller is not None:
            poller.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait again
        out.seek(0)
        err.seek(0)
        return Run(
            args=tuple(args),
            returncode=proc.returncode,
            wall_seconds=wall,
            peak_rss_kib=max(usage.ru_maxrss, poller.peak_kib if poller else 0),
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            tree_peak_kib=poller.peak_kib if poller else 0,
        )


def run_step(flag: str, kind: str, data: Path, work: Path, backend: str) -> Run:
    """`bench/run.py FLAG KIND DATA WORK BACKEND` (FLAG `--signals-step` or `--metrics-step`) in a
    child process, measured with the RSS of its children polled (PySpark's JVM); the step prints
    its result as JSON on its last line of output."""
    program = (sys.executable, str(RUN), flag)
    return run_cli(
        [kind, str(data), str(work), backend], child_env(None), program=program, poll=True
    )


def for_scale(baseline: Run) -> str:
    """The sentence that puts peaks in proportion: what `upsell --version` alone takes."""
    return (
        f"For scale: `upsell --version` alone peaks at {baseline.peak_rss_mib:.0f} MiB RSS "
        f"({baseline.wall_seconds:.1f} s) on this machine."
    )


class _TreeRss(threading.Thread):
    """Polls the summed VmRSS of a process and its descendants (KiB) until stopped."""

    def __init__(self, pid: int, every: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.pid, self.every, self.peak_kib = pid, every, 0
        self._done = threading.Event()
        self.start()

    def stop(self) -> None:
        self._done.set()
        self.join()

    def run(self) -> None:
        while not self._done.wait(self.every):
            parents: dict[int, int] = {}
            rss: dict[int, int] = {}
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    fields = stat.read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                pid = int(stat.parent.name)
                parents[pid] = int(fields[1])  # ppid; fields[21] is rss in pages
                rss[pid] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 1024
            tree: set[int] = set()
            new = {self.pid}
            while new:
                tree |= new
                new = {pid for pid, ppid in parents.items() if ppid in new} - tree
            self.peak_kib = max(self.peak_kib, sum(rss.get(pid, 0) for pid in tree))
