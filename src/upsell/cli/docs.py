"""Render the CLI reference (docs/cli.md) from the CLI itself, so the two cannot drift.

``python -m upsell.cli.docs > docs/cli.md`` (or ``make docs``); a test fails when docs/cli.md differs.
"""

from __future__ import annotations

import inspect
from typing import Any

import typer
from typer.core import TyperArgument, TyperGroup, TyperOption

from upsell.cli.app import app

HEADER = """# Command-line reference

Generated from the CLI by `make docs` (`python -m upsell.cli.docs`); do not edit by hand.

Every command that works on a workspace takes `--workspace DIR` (`-w`, or the `UPSELL_WORKSPACE`
environment variable; default: the current folder). With `UPSELL_DATABASE_URL` set, the workspace's
data lives in that database instead of `DIR/upsell.db`.

Exit status: 0 success; 1 the command ran but found invalid input (rejects written); 2 usage or
configuration error. Progress and tables go to stderr; machine-readable output (`--json`) to stdout.
"""


def _option_row(param: Any) -> str:
    metavar = f" {param.metavar}" if getattr(param, "metavar", None) else ""
    names = ", ".join(f"`{name}{metavar}`" for name in [*param.opts, *param.secondary_opts])
    help_text = " ".join((getattr(param, "help", None) or "").split())
    envvar = getattr(param, "envvar", None)
    if envvar:
        help_text += f" Environment: `{envvar}`."
    default = param.default
    if (
        isinstance(param, TyperOption)
        and param.show_default is not False
        and default not in (None, False)
    ):
        help_text += f" Default: `{default}`."
    return f"| {names} | {help_text.strip()} |"


def _command(name: str, command: Any) -> list[str]:
    arguments = [p for p in command.params if isinstance(p, TyperArgument)]
    usage = " ".join(["[OPTIONS]", *((p.name or "").upper() for p in arguments)])
    lines = [f"## upsell {name}", "", "```", f"upsell {name} {usage}", "```", ""]
    lines += [inspect.cleandoc(command.help or ""), ""]
    options = [p for p in command.params if isinstance(p, TyperOption)]
    for argument in arguments:
        help_text = " ".join((getattr(argument, "help", None) or "").split())
        lines += [f"Argument `{(argument.name or '').upper()}`: {help_text}", ""]
    if options:
        lines += ["| option | meaning |", "|---|---|"]
        lines += [_option_row(p) for p in options]
        lines += ["| `--help` | Show the command's help and exit. |", ""]
    return lines


def render() -> str:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    lines = [HEADER]
    lines += ["## upsell", "", inspect.cleandoc(group.help or ""), ""]
    lines += ["| option | meaning |", "|---|---|"]
    lines += [_option_row(p) for p in group.params if isinstance(p, TyperOption)]
    lines += [""]
    for name in group.list_commands(typer.Context(group)):
        command = group.get_command(typer.Context(group), name)
        assert command is not None
        lines += _command(name, command)
    return "\n".join(lines).rstrip() + "\n"


def commands() -> list[str]:
    """The names of every command, for the documentation test."""
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    return list(group.list_commands(typer.Context(group)))


if __name__ == "__main__":
    print(render(), end="")
