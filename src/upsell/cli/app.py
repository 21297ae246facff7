"""The `upsell` command line (data-contract.md, "The command line").

Exit status: 0 success; 1 the command ran but found invalid input (rejects written); 2 usage or
configuration error. Tables and progress go to stderr; machine-readable output (``--json``) to stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from upsell import __version__
from upsell.errors import CatalogError, ImportRejected, UpsellError
from upsell.settings import Settings
from upsell.sources.importer import FileImport, import_catalog, import_table
from upsell.sources.importer import Progress as ProgressCallback
from upsell.sources.rows import Kind
from upsell.workspace import Workspace

EXIT_OK, EXIT_INVALID_INPUT, EXIT_USAGE = 0, 1, 2
PROGRESS_MIN_BYTES = 4 << 20

app = typer.Typer(
    name="upsell",
    help=(
        "upsell finds which customers are ready for an upgrade, an add-on or a complementary "
        "product, decides the one offer worth making, and measures what it earned.\n\n"
        "Start with `upsell init DIR`, then `upsell import -w DIR --catalog catalog.yaml "
        "--accounts accounts.csv --subscriptions subscriptions.csv --events events.jsonl`."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

err = Console(stderr=True)

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


def _version(value: bool) -> None:
    if value:
        typer.echo(f"upsell {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """upsell: from usage signal to offer to measured revenue."""


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def _errors() -> Iterator[None]:
    """Turn upsell's errors into a message on stderr and the documented exit status."""
    try:
        yield
    except CatalogError as exc:
        err.print("[bold red]error:[/] the catalog is invalid:", highlight=False)
        for problem in exc.problems:
            err.print(f"  {problem}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    except ImportRejected as exc:
        raise _fail(str(exc), EXIT_INVALID_INPUT) from None
    except UpsellError as exc:
        raise _fail(str(exc), EXIT_USAGE) from None


def _open(workspace: Path | None) -> Workspace:
    settings = Settings()
    return Workspace.open(workspace or settings.workspace, database_url=settings.database_url)


@app.command()
def init(
    directory: Annotated[
        Path, typer.Argument(help="Folder for the new workspace (created if missing).")
    ],
) -> None:
    """Create a new, empty workspace in DIRECTORY.

    The workspace keeps its data in DIRECTORY/upsell.db (SQLite), or in the database named by
    UPSELL_DATABASE_URL (e.g. postgresql+psycopg://user@host/db) when that is set.
    """
    with _errors():
        ws = Workspace.create(directory, database_url=Settings().database_url)
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


@app.command("import")
def import_(
    workspace: WorkspaceOption = None,
    catalog: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="catalog.yaml: plans, add-ons, products, metrics, prices.",
            show_default=False,
        ),
    ] = None,
    accounts: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="Accounts file (.csv, .jsonl or .parquet).", show_default=False
        ),
    ] = None,
    subscriptions: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="Subscriptions file: one row per period an item was held.",
            show_default=False,
        ),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE", help="Usage events file, in Segment's track shape.", show_default=False
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Store nothing from a file that has any invalid row (and stop there)."
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print what was imported as JSON on stdout.")
    ] = False,
) -> None:
    """Import the catalog and data files into the workspace, in that order.

    Invalid rows are written to FILE.rejects.jsonl with their row number and reason; the valid rows
    of that file are stored (with --strict, none are). Importing the same file again stores nothing
    new; a subscriptions or events file that grew is read on from where the last import stopped.
    Exit status 1 when any row was rejected.
    """
    if not any((catalog, accounts, subscriptions, events)):
        raise _fail(
            "nothing to import: give --catalog, --accounts, --subscriptions or --events", EXIT_USAGE
        )
    results: list[FileImport] = []
    rejected_file: ImportRejected | None = None
    skipped: list[str] = []
    summary: dict[str, object] = {}
    with _errors():
        ws = _open(workspace)
        try:
            if catalog is not None:
                done = import_catalog(engine=ws.engine, path=catalog)
                for warning in done.loaded.warnings:
                    err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
                state = "new version" if done.created else "unchanged"
                err.print(f"Catalog {catalog}: version {done.version} ({state}).", highlight=False)
                summary["catalog"] = {
                    "file": str(catalog),
                    "version": done.version,
                    "created": done.created,
                }
            loaded = ws.catalog()
            given: list[tuple[Kind, Path | None]] = [
                ("accounts", accounts),
                ("subscriptions", subscriptions),
                ("events", events),
            ]
            files = [(kind, path) for kind, path in given if path is not None]
            for position, (kind, path) in enumerate(files):
                try:
                    with _progress(path) as progress:
                        result = import_table(
                            engine=ws.engine,
                            kind=kind,
                            path=path,
                            catalog=loaded.catalog if loaded else None,
                            strict=strict,
                            progress=progress,
                        )
                except ImportRejected as exc:
                    rejected_file = exc
                    skipped = [str(p) for _, p in files[position + 1 :]]
                    break
                results.append(result)
                if strict and result.rejected:
                    skipped = [str(p) for _, p in files[position + 1 :]]
                    break
        finally:
            ws.close()
    _print_results(results)
    if skipped and rejected_file is None:
        err.print(
            f"Not imported (--strict stops at the first file with rejects): {', '.join(skipped)}"
        )
    if rejected_file is not None:
        message = f"{rejected_file}\nNothing was stored from {rejected_file.file}"
        if skipped:
            message += f"; not imported either: {', '.join(skipped)}"
        raise _fail(message + ".", EXIT_INVALID_INPUT)
    if as_json:
        summary["files"] = [r.as_dict() for r in results]
        typer.echo(json.dumps(summary, indent=2))
    if any(r.rejected for r in results):
        raise typer.Exit(EXIT_INVALID_INPUT)


@contextmanager
def _progress(path: Path) -> Iterator[ProgressCallback | None]:
    size = path.stat().st_size if path.is_file() else 0
    if size < PROGRESS_MIN_BYTES:
        yield None
        return
    columns = (
        TextColumn(f"{path.name}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task("import", total=size)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _print_results(results: list[FileImport]) -> None:
    if not results:
        return
    table = Table(title="Imported", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("file", "kind", "rows", "new", "updated", "unchanged", "rejected"):
        table.add_column(
            name,
            justify="left" if name in ("file", "kind") else "right",
            no_wrap=True,
            min_width=len(name),
        )
    for r in results:
        table.add_row(
            r.file.name,
            r.kind,
            f"{r.read:,}",
            f"{r.new:,}",
            f"{r.updated:,}",
            f"{r.unchanged:,}",
            f"[red]{r.rejected:,}[/]" if r.rejected else "0",
        )
    err.print(table)
    for r in results:
        if r.resumed_after_row:
            err.print(f"{r.file}: resumed after row {r.resumed_after_row:,} (imported before).")
        if r.rejected:
            state = "nothing stored (--strict)" if not r.stored else "valid rows stored"
            err.print(
                f"[red]{r.file}: {r.rejected:,} rows rejected[/], {state}; reasons in {r.rejects_file}",
                highlight=False,
                soft_wrap=True,
            )
            for line in r.first_rejects:
                err.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted; the file being imported was rolled back")
        sys.exit(130)
