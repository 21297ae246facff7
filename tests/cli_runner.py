"""The one way tests run the command line: in-process, through Typer's test runner."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from upsell.cli.app import app


def run(*args: object) -> Result:
    """`upsell ARGS...`; every argument is turned into text (paths, numbers)."""
    return CliRunner().invoke(app, [str(a) for a in args])
