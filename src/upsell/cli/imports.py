"""`upsell import`: the catalog and the data files into the workspace, with progress and a table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from upsell.cli.console import EXIT_INVALID_INPUT, err, errors, fail
from upsell.cli.options import WorkspaceOption, json_option, open_workspace
from upsell.errors import ImportRejected

if TYPE_CHECKING:
    from upsell.columns import InputTable
    from upsell.ingest.importer import FileImport
    from upsell.ingest.importer import Progress as ProgressCallback
    from upsell.ingest.stripe_import import StripeImport

#: Files smaller than this import without a progress bar.
PROGRESS_MIN_BYTES = 4 << 20


def _file(help: str) -> Any:
    """An option naming one file to import (no default shown: none is imported by default)."""
    return typer.Option(metavar="FILE", help=help, show_default=False)


def import_(
    workspace: WorkspaceOption = None,
    catalog: Annotated[
        Path | None, _file("catalog.yaml: plans, add-ons, products, metrics, prices.")
    ] = None,
    accounts: Annotated[Path | None, _file("Accounts file (.csv, .jsonl or .parquet).")] = None,
    subscriptions: Annotated[
        Path | None, _file("Subscriptions file: one row per period an item was held.")
    ] = None,
    events: Annotated[Path | None, _file("Usage events file, in Segment's track shape.")] = None,
    stripe_events: Annotated[
        Path | None,
        _file("A dump of Stripe event objects (.jsonl), applied as the Stripe webhook would."),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Store nothing from a file that has any invalid row (and stop there)."
        ),
    ] = False,
    as_json: Annotated[bool, json_option("Print what was imported as JSON on stdout.")] = False,
) -> None:
    """Import the catalog and data files into the workspace, in that order.

    Invalid rows are written to FILE.rejects.jsonl with their row number and reason; the valid rows
    of that file are stored (with --strict, none are). Importing the same file again stores nothing
    new; a subscriptions or events file that grew is read on from where the last import stopped.
    Exit status 1 when any row was rejected. --stripe-events comes last: a backfill of Stripe's
    customers, subscriptions and invoices, applied in the events' `created` order
    (docs/service.md, "Stripe").
    """
    from upsell.ingest.importer import import_catalog, import_table

    if not any((catalog, accounts, subscriptions, events, stripe_events)):
        raise fail(
            "nothing to import: give --catalog, --accounts, --subscriptions, --events or "
            "--stripe-events"
        )
    stripe_result: StripeImport | None = None
    results: list[FileImport] = []
    rejected_file: ImportRejected | None = None
    skipped: list[str] = []
    summary: dict[str, object] = {}
    with errors(), open_workspace(workspace) as ws:
        if catalog is not None:
            done = import_catalog(db=ws.db, path=catalog)
            for warning in done.loaded.warnings:
                err.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
            state = "new version" if done.created else "unchanged"
            err.print(f"Catalog {catalog}: version {done.version} ({state}).", highlight=False)
            summary["catalog"] = {
                "file": str(catalog),
                "version": done.version,
                "created": done.created,
            }
        loaded = ws.loaded_catalog()
        given: list[tuple[InputTable, Path | None]] = [
            ("accounts", accounts),
            ("subscriptions", subscriptions),
            ("events", events),
        ]
        files = [(kind, path) for kind, path in given if path is not None]
        for position, (kind, path) in enumerate(files):
            try:
                with progress_bar(path) as progress:
                    result = import_table(
                        db=ws.db,
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
        if stripe_events is not None and (skipped or rejected_file):
            skipped.append(str(stripe_events))
        elif stripe_events is not None:
            from upsell.ingest.stripe_import import import_stripe_events

            try:
                stripe_result = import_stripe_events(
                    db=ws.db,
                    path=stripe_events,
                    metadata_key=ws.settings.stripe_account_metadata_key,
                    strict=strict,
                )
            except ImportRejected as exc:
                rejected_file = exc
    print_results(results)
    print_stripe(stripe_result)
    if skipped and rejected_file is None:
        err.print(
            f"Not imported (--strict stops at the first file with rejects): {', '.join(skipped)}"
        )
    if rejected_file is not None:
        message = f"{rejected_file}\nNothing was stored from {rejected_file.file}"
        if skipped:
            message += f"; not imported either: {', '.join(skipped)}"
        raise fail(message + ".", EXIT_INVALID_INPUT)
    if as_json:
        summary["files"] = [r.as_dict() for r in results]
        if stripe_result is not None:
            summary["stripe_events"] = stripe_result.as_dict()
        typer.echo(json.dumps(summary, indent=2))
    if any(r.rejected for r in results) or (stripe_result and stripe_result.rejected):
        raise typer.Exit(EXIT_INVALID_INPUT)


@contextmanager
def progress_bar(path: Path, *, always: bool = False) -> Iterator[ProgressCallback | None]:
    """A progress bar of `path`'s bytes while it imports (only for large files unless `always`)."""
    size = path.stat().st_size if path.is_file() else 0
    if size < PROGRESS_MIN_BYTES and not always:
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


def print_results(results: list[FileImport]) -> None:
    """The table of what each file's import did, and the first rejects of each."""
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
        if r.pending:
            err.print(
                f"{r.file}: events waiting for their account: {r.pending:,} (no group call or "
                "context.groupId for their user yet); they are attributed when it comes."
            )
        if r.rejected:
            state = "nothing stored (--strict)" if not r.stored else "valid rows stored"
            err.print(
                f"[red]{r.file}: {r.rejected:,} rows rejected[/], {state}; reasons in {r.rejects_file}",
                highlight=False,
                soft_wrap=True,
            )
            for line in r.first_rejects:
                err.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)


def print_stripe(result: StripeImport | None) -> None:
    """The table of what a Stripe events dump did, and the first rejects and unmapped events."""
    if result is None:
        return
    from upsell.ingest.stripe_import import COUNTS

    table = Table(title="Stripe events", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    names = ("file", "events", *COUNTS, "rejected")
    for name in names:
        table.add_column(name, justify="left" if name == "file" else "right", no_wrap=True)
    counts = [f"{result.outcomes[name]:,}" for name in COUNTS]
    rejected = f"[red]{result.rejected:,}[/]" if result.rejected else "0"
    table.add_row(result.file.name, f"{result.read:,}", *counts, rejected)
    err.print(table)
    for line in result.first_unmapped:
        err.print(f"  not mapped: {line}", highlight=False, markup=False, soft_wrap=True)
    if result.rejected:
        state = "nothing stored (--strict)" if not result.stored else "the other events stored"
        err.print(
            f"[red]{result.file}: {result.rejected:,} lines rejected[/], {state}; reasons in "
            f"{result.rejects_file}",
            highlight=False,
            soft_wrap=True,
        )
        for line in result.first_rejects:
            err.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)
