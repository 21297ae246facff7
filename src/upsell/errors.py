"""The one exception hierarchy of upsell.

Every error carries its context as attributes, so that the CLI can print it and the service can map
it to an HTTP status without parsing messages. The domain raises these; it never raises HTTP errors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


class UpsellError(Exception):
    """Base class of every error upsell raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a warning) in a configuration file.

    `key` is a dotted path into the document (``plans[2].limits.seats``); `line` is 1-based and
    None when the problem is not tied to a place in the file. An "error" makes the file unusable; a
    "warning" is worth fixing but does not stop the file from loading.
    """

    message: str
    key: str = ""
    file: str = ""
    line: int | None = None
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = self.file or "<catalog>"
        if self.line is not None:
            where += f":{self.line}"
        level = "warning: " if self.severity == "warning" else ""
        return f"{where}: {level}{self.key + ': ' if self.key else ''}{self.message}"


class ChannelNotReady(UpsellError):
    """A channel the playbooks deliver through cannot deliver yet: `problems` says what is missing
    (``UPSELL_SMTP_HOST is not set``); `playbooks` are the ids of the playbooks that use it."""

    def __init__(self, channel: str, playbooks: tuple[str, ...], problems: tuple[str, ...]) -> None:
        self.channel = channel
        self.playbooks = playbooks
        self.problems = problems
        super().__init__(
            f"channel {channel} (playbooks {', '.join(playbooks)}) cannot deliver: "
            f"{'; '.join(problems)}. Set it up, or use --dry-run."
        )


class TemplatesError(UpsellError, ValueError):
    """A message template the playbooks name is missing or is not valid Jinja2 (`upsell playbooks
    check` lists every problem)."""


class ProblemsError(UpsellError, ValueError):
    """A workspace file is invalid; `problems` lists every reason, each with file, line and key.

    `heading` is how the command line introduces the list (None: the problems alone)."""

    heading: str | None = None

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class CatalogError(ProblemsError):
    """The catalog (catalog.yaml) is invalid."""

    heading = "the catalog is invalid:"


class ConfigError(ProblemsError):
    """The workspace configuration (config.yaml) is invalid."""


class CurrencyError(UpsellError, ValueError):
    """An unknown ISO 4217 code, a missing exchange rate, or arithmetic across two currencies."""


class WorkspaceError(UpsellError):
    """The workspace is missing, not initialised, or its database cannot be opened."""


class WorkspaceBusy(WorkspaceError):
    """Another process kept the workspace's write lock (an import, a run) longer than this one
    would wait (`timeout` seconds, ``UPSELL_LOCK_TIMEOUT_SECONDS``); `waited` is how long it did."""

    def __init__(self, waited: float, timeout: float) -> None:
        self.waited = waited
        self.timeout = timeout
        super().__init__(
            "workspace busy: another upsell process (import/run) is writing; "
            f"waited {waited:.0f} s (UPSELL_LOCK_TIMEOUT_SECONDS={timeout:g}); try again later"
        )


class ImportRejected(UpsellError, ValueError):
    """A whole input file was refused (missing column, wrong column type, empty, not a table).

    Row-level problems never raise: they go to the rejects file. This is for the file itself.
    """

    def __init__(self, file: str, reason: str, *, line: int | None = None) -> None:
        self.file = file
        self.reason = reason
        self.line = line
        where = f"{file}:{line}" if line is not None else file
        super().__init__(f"{where}: {reason}")


class UnknownAccount(UpsellError, KeyError):
    """An account id that the workspace does not hold."""

    def __init__(self, account_id: str, *, as_of: object = None) -> None:
        self.account_id = account_id
        self.as_of = as_of
        super().__init__(account_id)

    def __str__(self) -> str:
        if self.as_of is None:
            return f"unknown account {self.account_id!r}"
        return (
            f"no account {self.account_id!r} as of {self.as_of}: the workspace does not hold it, "
            "or it signed up later"
        )


class ChannelError(UpsellError, ValueError):
    """A delivery channel that is not registered, or a name that cannot be registered.

    `channel` is the name asked for, `reason` what is wrong with it, and `known` the channel names
    registered at the time (built-ins first), so that the message can offer the alternatives.
    """

    def __init__(self, channel: str, reason: str, *, known: tuple[str, ...] = ()) -> None:
        self.channel = channel
        self.reason = reason
        self.known = tuple(known)
        listed = f" (known channels: {', '.join(self.known)})" if self.known else ""
        super().__init__(f"channel {channel!r}: {reason}{listed}")


class PlaybooksError(ProblemsError):
    """The workspace's playbooks (playbooks.yaml) are invalid."""

    heading = "the playbooks are invalid:"


class NotFittedError(UpsellError, ValueError):
    """A model used before `fit` (scikit-learn's estimator contract)."""
