"""Same output before and after a change that should change no behaviour (issue 12's check).

Builds the demo company from scratch with two versions of upsell (a git revision, and this
checkout) and compares, byte for byte after normalising what must differ (the report's
``generated_at`` and the temporary folders):

- the output of ``upsell demo`` (the first run: simulate, replay 8 weeks, summarise) and of a
  second ``upsell demo --json`` on the workspace it built;
- ``upsell run --as-of 2026-11-01 --dry-run --out decisions.jsonl``;
- ``upsell report --out report.json``, and the page ``upsell demo`` wrote (report.html).

The other revision runs from a ``git worktree`` with this checkout's virtual environment (its
``src`` first on ``PYTHONPATH``), so both sides use the same pinned libraries. Each side also
reports the wall time of ``upsell run --dry-run`` (the median of three runs).

    .venv/bin/python bench/same_output.py                  # against the revision before issue 12
    .venv/bin/python bench/same_output.py --against HEAD~3 # against any revision
    .venv/bin/python bench/same_output.py --keep /tmp/out  # keep both sides' files to diff them

Where a number changed on purpose because two copies of one rule disagreed, `KNOWN` lists the
change with the reason; it is applied to the other revision's output before comparing. Exit
status 0 when everything is the same, 1 when something differs (the first differences are shown).
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
#: The last revision before issue 12's redesign.
BEFORE = "6bfefe6"
AS_OF = "2026-11-01"
WORKSPACE = "demo-workspace"
OUTPUTS = (
    "demo.txt",
    "demo.json",
    "run.txt",
    "decisions.jsonl",
    "report.txt",
    "report.json",
    "report.html",
)
GENERATED = re.compile(r"generated \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")

#: Changes made on purpose: (file, text before, text after, why). Applied to the other side.
KNOWN: tuple[tuple[str, str, str, str], ...] = (
    (
        "demo.txt",
        "MRR $146,857.92 (ARR $1,762,295.07)",
        "MRR $146,857.92 (ARR $1,762,295.04)",
        "store/summary.py computed ARR from the unrounded MRR; ARR is 12 x the MRR shown "
        "(metrics.md), as the report always had it",
    ),
)


@dataclass
class Side:
    name: str
    folder: Path
    env: dict[str, str]
    dry_run_seconds: list[float]


def _upsell(side: Side, *args: str, out: str | None = None) -> str:
    """Run the CLI of `side` in its folder; its stderr and stdout go to `out`. Returns stdout."""
    command = [str(PYTHON), "-c", "from upsell.cli.app import main; main()", *args]
    done = subprocess.run(
        command, cwd=side.folder, env=side.env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(
            f"{side.name}: upsell {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}"
        )
    if out is not None:
        (side.folder / out).write_text(done.stderr + done.stdout, encoding="utf-8")
    return done.stdout


def record(side: Side) -> None:
    _upsell(side, "demo", "-w", WORKSPACE, out="demo.txt")
    (side.folder / "demo.json").write_text(
        _upsell(side, "demo", "-w", WORKSPACE, "--json"), "utf-8"
    )
    page = (side.folder / WORKSPACE / "report.html").read_text("utf-8")
    (side.folder / "report.html").write_text(GENERATED.sub("generated (normalised)", page), "utf-8")
    for _ in range(3):
        start = time.perf_counter()
        _upsell(
            side,
            "run",
            "-w",
            WORKSPACE,
            "--as-of",
            AS_OF,
            "--dry-run",
            "--out",
            "decisions.jsonl",
            out="run.txt",
        )
        side.dry_run_seconds.append(time.perf_counter() - start)
    _upsell(side, "report", "-w", WORKSPACE, "--out", "report.json", out="report.txt")
    report = json.loads((side.folder / "report.json").read_text("utf-8"))
    report["generated_at"] = "(normalised)"
    (side.folder / "report.json").write_text(json.dumps(report, indent=2), "utf-8")


def _normalised(side: Side, name: str, known: bool) -> list[str]:
    text = (side.folder / name).read_text("utf-8").replace(str(side.folder), "<folder>")
    if known:
        for file, before, after, _why in KNOWN:
            if file == name:
                text = text.replace(before, after)
    return text.splitlines()


def compare(other: Side, this: Side, *, shown: int = 40) -> bool:
    same = True
    for name in OUTPUTS:
        a, b = _normalised(other, name, known=True), _normalised(this, name, known=False)
        if a == b:
            print(f"  {name}: the same ({len(b):,} lines)")
            continue
        same = False
        diff = list(
            difflib.unified_diff(
                a, b, f"{other.name}/{name}", f"{this.name}/{name}", n=1, lineterm=""
            )
        )
        print(f"  {name}: DIFFERENT ({len(diff):,} diff lines; the first {shown}):")
        for line in diff[:shown]:
            print(f"    {line[:200]}")
    return same


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--against", default=BEFORE, help=f"the other revision (default {BEFORE})")
    parser.add_argument("--keep", type=Path, help="copy both sides' outputs into this folder")
    args = parser.parse_args(argv)
    if not PYTHON.exists():
        raise SystemExit(f"{PYTHON} is missing: run `make test` or `make demo` first")
    with tempfile.TemporaryDirectory(prefix="upsell-same-") as tmp:
        work = Path(tmp)
        tree = work / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.against],
            check=True,
            capture_output=True,
        )
        try:
            base = {k: v for k, v in os.environ.items() if not k.startswith("UPSELL_")}
            base["COLUMNS"] = "100"
            sides = []
            for name, src in ((args.against, tree / "src"), ("this checkout", ROOT / "src")):
                folder = work / name.replace(" ", "-").replace("/", "-")
                folder.mkdir()
                env = {**base, "PYTHONPATH": str(src)}
                sides.append(Side(name, folder, env, []))
            for side in sides:
                print(f"{side.name}: building the demo and recording its outputs ...", flush=True)
                record(side)
            other, this = sides
            print(f"Comparing {other.name} with {this.name}:")
            same = compare(other, this)
            for side in sides:
                median = statistics.median(side.dry_run_seconds)
                runs = ", ".join(f"{s:.2f}" for s in side.dry_run_seconds)
                print(f"  upsell run --dry-run, {side.name}: median {median:.2f} s ({runs})")
            for file, _before, _after, why in KNOWN:
                print(f"  known change in {file}: {why}")
            if args.keep is not None:
                for side in sides:
                    target = args.keep / side.folder.name
                    target.mkdir(parents=True, exist_ok=True)
                    for name in OUTPUTS:
                        shutil.copyfile(side.folder / name, target / name)
                print(f"Outputs kept in {args.keep}")
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                check=False,
                capture_output=True,
            )
    print("The same." if same else "Something differs.")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
