"""The options several commands share, and opening the workspace they name."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from upsell.cli.console import say

if TYPE_CHECKING:
    from upsell.workspace import Workspace

WorkspaceOption = Annotated[
    Path | None,
    typer.Option(
        "--workspace",
        "-w",
        metavar="DIR",
        envvar="UPSELL_WORKSPACE",
        help="Workspace folder (default: the current folder).",
        show_default=False,
    ),
]


def _engine_name(value: str) -> str:
    from upsell.engine.backends import BACKENDS

    if value not in BACKENDS:
        raise typer.BadParameter(f"must be one of {', '.join(BACKENDS)}, got {value!r}")
    return value


EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        metavar="NAME",
        callback=_engine_name,
        help="Engine back end: duckdb | pyspark.",
    ),
]
RebuildOption = Annotated[
    bool, typer.Option("--rebuild", help="Rebuild the daily rollups from all events.")
]


def as_of_option(help: str) -> Any:
    """``--as-of DATE``, required; parse it with `as_of`."""
    return typer.Option("--as-of", metavar="DATE", help=help)


def out_option(help: str) -> Any:
    """``--out F``: the file a command writes."""
    return typer.Option("--out", metavar="F", help=help)


def json_option(help: str) -> Any:
    """``--json``: machine-readable output on stdout."""
    return typer.Option("--json", help=help)


#: The days a command line may name: a day far outside them is a typo, and date arithmetic (a
#: year back, a month on) would leave Python's calendar.
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2999, 12, 31)


def as_of(value: str) -> date:
    """A day given on the command line (``YYYY-MM-DD``; a timestamp, which must be a valid one, is
    cut to its day), from `FIRST_DAY` to `LAST_DAY`."""
    try:
        day = datetime.fromisoformat(value).date() if len(value) > 10 else date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date: use YYYY-MM-DD") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise typer.BadParameter(
            f"{value!r} is out of range: use a day from {FIRST_DAY} to {LAST_DAY}"
        )
    return day


def open_workspace(folder: Path | None, engine: str = "duckdb") -> Workspace:
    """The workspace a command works on, with the process's settings read here, once.

    Commands import the workspace and the flows when they run, not when the command line starts,
    so that ``upsell --help`` and a mistyped option answer at once."""
    from upsell.settings import Settings
    from upsell.workspace import Workspace

    return Workspace.open(
        folder,
        Settings(),
        backend="pyspark" if engine == "pyspark" else "duckdb",
        on_wait=waiting_message(),
    )


def waiting_message() -> Callable[[float, float], None]:
    """What a command says while it waits for another process's writes: at once, then every
    10 seconds (docs/operations.md, "Concurrency")."""
    said = [-1.0]

    def on_wait(waited: float, timeout: float) -> None:
        if said[0] < 0 or waited - said[0] >= 10:
            said[0] = waited
            say(
                "waiting for the workspace: another upsell process (import/run) is writing "
                f"({waited:.0f} s so far, at most {timeout:g} s: UPSELL_LOCK_TIMEOUT_SECONDS)"
            )

    return on_wait
