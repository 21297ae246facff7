"""`upsell init`: a new workspace, empty or filled with a simulated company."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from upsell.cli.console import err, errors
from upsell.cli.simulate import (
    AccountsOption,
    ModelOption,
    MonthsOption,
    SeedOption,
    StartOption,
    build_demo,
    sim_config,
)


def init(
    directory: Annotated[
        Path, typer.Argument(help="Folder for the new workspace (created if missing).")
    ],
    demo: Annotated[
        bool,
        typer.Option(
            "--demo", help="Fill the workspace with a simulated company (see `upsell simulate`)."
        ),
    ] = False,
    accounts: AccountsOption = 5000,
    months: MonthsOption = 12,
    model: ModelOption = "saas",
    seed: SeedOption = 0,
    start: StartOption = "2025-11-01",
    weeks: Annotated[
        int,
        typer.Option(
            "--weeks",
            metavar="W",
            min=0,
            help="Replay the company's last W weeks through weekly `upsell run`s (with --demo).",
        ),
    ] = 0,
) -> None:
    """Create a new, empty workspace in DIRECTORY (with --demo: a simulated company in it).

    The workspace keeps its data in DIRECTORY/upsell.db (SQLite), or in the database named by
    UPSELL_DATABASE_URL (e.g. postgresql+psycopg://user@host/db) when that is set. With --demo the
    simulated files are kept in DIRECTORY/data and imported; --accounts, --months, --model, --seed
    and --start shape the company and are ignored without --demo. --weeks W simulates all but the
    last W weeks, then runs the default playbooks each week while the simulated customers answer
    (offers, responses, a holdout: what `upsell report` measures).
    """
    from upsell.settings import Settings
    from upsell.workspace import Workspace

    settings = Settings()
    if demo:
        config = sim_config(accounts, months, model, seed, start)
        with errors():
            build_demo(directory, config, settings, weeks)
        err.print(
            f"Created demo workspace {directory}. Next: upsell demo -w {directory}", highlight=False
        )
        return
    with errors():
        ws = Workspace.create(directory, settings)
        ws.close()
    err.print(
        f"Created workspace {directory} (database: {ws.shown_url}).",
        highlight=False,
        soft_wrap=True,
    )
    err.print(
        f"Next: upsell import -w {directory} --catalog catalog.yaml --accounts accounts.csv "
        "--subscriptions subscriptions.csv --events events.jsonl",
        highlight=False,
        soft_wrap=True,
    )
