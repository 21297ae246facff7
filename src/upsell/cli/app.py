"""The `upsell` command line (data-contract.md, "The command line"): one module per command.

Every command is a thin door onto a `upsell.workspace.Workspace` and the flows over it
(`upsell.flows`); `upsell.cli.console` turns upsell's errors into the documented exit status.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from upsell import __version__
from upsell.cli import (
    demo,
    imports,
    init,
    keys,
    learn,
    messages,
    opportunities,
    playbooks,
    report,
    run,
    serve,
    simulate,
)
from upsell.cli.console import err

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


app.command("init")(init.init)
app.command("simulate")(simulate.simulate)
app.command("demo")(demo.demo)
app.command("opportunities")(opportunities.opportunities)
app.command("run")(run.run)
app.add_typer(playbooks.app)
app.command("report")(report.report)
app.command("import")(imports.import_)
app.add_typer(keys.app)
app.command("serve")(serve.serve)
app.command("messages")(messages.messages)
app.command("learn")(learn.learn)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted; the file being imported was rolled back")
        sys.exit(130)
