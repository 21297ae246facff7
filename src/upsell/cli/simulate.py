"""`upsell simulate`, and the demo company that `upsell init --demo` and `upsell demo` build.

These are the only commands that simulate: the simulator (`upsell.simulator`) is imported inside
them, when they run, so that no other command loads it.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from upsell.cli.console import EXIT_INVALID_INPUT, err, errors, fail
from upsell.cli.imports import print_results, progress_bar
from upsell.domain.catalog import BUSINESS_MODELS

if TYPE_CHECKING:
    from upsell.settings import Settings
    from upsell.simulator.files import Simulated
    from upsell.simulator.world import SimConfig

DEMO_DATA = "data"

AccountsOption = Annotated[
    int, typer.Option("--accounts", metavar="N", min=1, help="Number of simulated accounts.")
]
MonthsOption = Annotated[
    int,
    typer.Option("--months", metavar="M", min=1, max=120, help="Months of history to simulate."),
]
ModelOption = Annotated[
    str,
    typer.Option(
        "--model",
        metavar="MODEL",
        help=f"Business model of the simulated company: {' | '.join(BUSINESS_MODELS)}.",
    ),
]
SeedOption = Annotated[
    int,
    typer.Option(
        "--seed", metavar="S", min=0, help="Random seed; the same seed gives the same files."
    ),
]
StartOption = Annotated[
    str,
    typer.Option(
        "--start", metavar="DATE", help="First day of the simulated history (YYYY-MM-DD)."
    ),
]


def sim_config(accounts: int, months: int, model: str, seed: int, start: str) -> SimConfig:
    """The options of a simulated company, checked."""
    from upsell.simulator.world import SimConfig

    if model not in BUSINESS_MODELS:
        raise fail(f"--model must be one of {', '.join(BUSINESS_MODELS)}, got {model!r}")
    try:
        first = date.fromisoformat(start)
    except ValueError:
        raise fail(f"--start must be a date such as 2025-11-01, got {start!r}") from None
    return SimConfig(accounts=accounts, months=months, model=model, seed=seed, start=first)


def simulate(
    out: Annotated[
        Path,
        typer.Option(
            "--out", metavar="DIR", help="Folder to write the files into.", show_default=False
        ),
    ],
    accounts: AccountsOption = 5000,
    months: MonthsOption = 12,
    model: ModelOption = "saas",
    seed: SeedOption = 0,
    start: StartOption = "2025-11-01",
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite files a previous run wrote.")
    ] = False,
) -> None:
    """Write a simulated company's catalog and data files into DIR, without importing them.

    DIR receives catalog.yaml, accounts.parquet, subscriptions.parquet, events.parquet (the shapes of
    docs/data-formats.md) and simulation.json (the settings and row counts). The same settings always
    write the same bytes. How the simulated customers behave is described in docs/simulator.md.
    """
    config = sim_config(accounts, months, model, seed, start)
    with errors():
        write_files(config, out, force=force)


def write_files(config: SimConfig, folder: Path, *, force: bool = False) -> Simulated:
    """Simulate `config` into `folder`, with a progress bar, and say what was written."""
    from upsell.simulator.files import simulate as simulate_files

    columns = (TextColumn("simulating {task.fields[when]}"), BarColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("simulate", total=config.days, when=config.start.isoformat())

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, when=(config.start + timedelta(days=done)).isoformat())

        done = simulate_files(config, folder, force=force, progress=progress)
    err.print(
        f"Simulated {config.model} company (seed {config.seed}, {config.months} months from "
        f"{config.start}): {done.accounts:,} accounts, {done.subscriptions:,} subscription rows, "
        f"{done.events:,} events in {folder}.",
        highlight=False,
        soft_wrap=True,
    )
    return done


#: The demo workspace's config.yaml: `upsell serve` on it also serves the demo page (/demo).
DEMO_CONFIG = """\
# The demo company's settings (docs/in-app.md): `upsell serve` serves a demo host page at /demo.
in_app:
  demo_page: true
"""


def build_demo(directory: Path, config: SimConfig, settings: Settings, weeks: int = 0) -> None:
    """A new workspace in `directory` filled with a simulated company (files kept in data/), whose
    config.yaml turns on the demo page; with `weeks`, its last weeks are replayed through `upsell
    run` (upsell.simulator.replay)."""
    if weeks:
        _replay(directory, config, settings, weeks)
    else:
        _import(directory, config, settings)
    (directory / "config.yaml").write_text(DEMO_CONFIG)


def _import(directory: Path, config: SimConfig, settings: Settings) -> None:
    from upsell.ingest.importer import import_catalog, import_table
    from upsell.workspace import Workspace

    with Workspace.create(directory, settings) as ws:
        data = write_files(config, directory / DEMO_DATA, force=True)
        catalog = import_catalog(db=ws.db, path=data.catalog).loaded.catalog
        results = []
        for kind, path in (
            ("accounts", data.accounts_file),
            ("subscriptions", data.subscriptions_file),
            ("events", data.events_file),
        ):
            with progress_bar(path, always=True) as progress:
                results.append(
                    import_table(
                        db=ws.db,
                        kind=kind,  # type: ignore[arg-type]
                        path=path,
                        catalog=catalog,
                        strict=True,
                        progress=progress,
                    )
                )
        print_results(results)
        if any(r.rejected for r in results):
            raise fail(
                "the simulated data did not import cleanly (a bug in upsell)", EXIT_INVALID_INPUT
            )


def _replay(directory: Path, config: SimConfig, settings: Settings, weeks: int) -> None:
    from upsell.simulator.replay import Week, replay_weeks, warm_up
    from upsell.simulator.world import World
    from upsell.workspace import Workspace

    warm = config.days - weeks * 7
    if warm < 1:
        raise fail(f"--weeks {weeks} do not fit in the {config.days} simulated days")
    with Workspace.create(directory, settings) as ws:
        world = World(config)
        with err.status(f"Simulating the first {warm} days of {config.accounts:,} accounts"):
            load = warm_up(world, warm, ws, directory / DEMO_DATA)

        def report(week: Week) -> None:
            err.print(
                f"  week of {week.day}: {len(week.result.lines):,} offers, "
                f"{len(week.result.held_out):,} held out, {week.step.offers_accepted:,} accepted",
                highlight=False,
            )

        err.print(
            f"Replaying the last {weeks} weeks: each week `upsell run` decides, the simulated "
            "customers answer, the week is imported.",
            highlight=False,
        )
        with err.status("Running the weeks"):
            replay_weeks(world, ws, load, weeks=weeks, on_week=report)
