"""How every command talks: tables and messages on stderr, errors as a message and an exit status.

Exit status (data-contract.md): 0 success; 1 the command ran but found invalid input (rejects
written); 2 usage or configuration error. Machine-readable output (``--json``) goes to stdout.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from upsell.errors import ImportRejected, ProblemsError, UpsellError

EXIT_OK, EXIT_INVALID_INPUT, EXIT_USAGE = 0, 1, 2

err = Console(stderr=True)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print `message` as an error; raise what this returns to exit with `code`."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True, soft_wrap=True)
    return typer.Exit(code)


@contextmanager
def errors() -> Iterator[None]:
    """Turn upsell's errors into a message on stderr and the documented exit status."""
    try:
        yield
    except ProblemsError as exc:
        if exc.heading is None:
            raise fail(str(exc)) from None
        err.print(f"[bold red]error:[/] {exc.heading}", highlight=False)
        for problem in exc.problems:
            err.print(f"  {problem}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    except ImportRejected as exc:
        raise fail(str(exc), EXIT_INVALID_INPUT) from None
    except UpsellError as exc:
        raise fail(str(exc)) from None
    except Exception as exc:
        # SQLite's "database is locked" past UPSELL_LOCK_TIMEOUT_SECONDS, from any write.
        from upsell.errors import WorkspaceBusy
        from upsell.settings import Settings
        from upsell.store.db import is_locked

        if is_locked(exc):
            timeout = Settings().lock_timeout_seconds
            raise fail(str(WorkspaceBusy(timeout, timeout))) from None
        raise


def say(message: str) -> None:
    """One line (or paragraph) to the user, on stderr, wrapped by the terminal only."""
    err.print(message, highlight=False, soft_wrap=True)
