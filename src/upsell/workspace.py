"""A workspace: one folder holding a company's catalog, data and state (data-contract.md, Workspace).

`Workspace` is the one place that wires upsell together (architecture.md, flows): its database, the
files in its folder (config.yaml, playbooks.yaml, templates/ and locale/), the delivery channels and
the analytics back end, with the process's `Settings` read once by whoever opens it. The command
line and the service are two thin doors onto the same workspace and the flows over it.

By default the data lives in the SQLite file ``upsell.db`` inside the folder; with
``UPSELL_DATABASE_URL`` it lives in that database (PostgreSQL in production) and the folder holds the
files only. Opening a workspace brings its schema up to date (Alembic migrations), so an upgrade of
upsell never needs a separate step. The files are read when first needed and kept; a workspace is a
context manager, and leaving it closes the database and the back end.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from types import TracebackType

import sqlalchemy as sa

from upsell.channels.base import Channel, channel_for, channel_names
from upsell.config.catalog import LoadedCatalog, parse_catalog
from upsell.config.playbooks import LoadedPlaybooks, load_playbooks
from upsell.config.workspace import WorkspaceConfig, load_config
from upsell.domain.catalog import Catalog
from upsell.domain.playbooks import Playbooks
from upsell.engine.backends import Backend, BackendName
from upsell.errors import ChannelNotReady, WorkspaceError
from upsell.settings import Settings
from upsell.store import catalogs as catalog_store
from upsell.store.db import (
    DATABASE_FILE,
    OnWait,
    connect,
    current_revision,
    is_current,
    migrate,
    sqlite_url,
)
from upsell.templates import MessageTemplates

#: Where the engine keeps its files inside the workspace folder (the daily rollups).
ANALYTICS = "analytics"


def _shown(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


class Workspace:
    """An open workspace. Build it with `create` or `open`; `backend` names the analytics back end
    (``duckdb`` or ``pyspark``) its flows compute with."""

    def __init__(
        self,
        folder: Path,
        *,
        url: str,
        db: sa.Engine,
        settings: Settings,
        backend: BackendName = "duckdb",
    ) -> None:
        self.folder = folder
        self.url = url
        self.db = db
        self.settings = settings
        self._backend_name: BackendName = backend
        self._backend: Backend | None = None

    @classmethod
    def create(
        cls, folder: Path, settings: Settings | None = None, *, on_wait: OnWait | None = None
    ) -> Workspace:
        """Make `folder` a new workspace; refuses one that already is."""
        settings = settings or Settings()
        if (folder / DATABASE_FILE).exists():
            raise WorkspaceError(f"{folder} is a workspace already (it has {DATABASE_FILE})")
        if folder.exists() and not folder.is_dir():
            raise WorkspaceError(f"{folder} exists and is not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        url = settings.database_url or sqlite_url(folder)
        db = connect(url, lock_timeout=settings.lock_timeout_seconds, on_wait=on_wait)
        if settings.database_url and current_revision(db) is not None:
            db.dispose()
            raise WorkspaceError(
                f"the database {_shown(url)} holds a workspace already; "
                "point UPSELL_DATABASE_URL at an empty database for a new one"
            )
        migrate(db)
        return cls(folder, url=url, db=db, settings=settings)

    @classmethod
    def open(
        cls,
        folder: Path | None = None,
        settings: Settings | None = None,
        *,
        backend: BackendName = "duckdb",
        on_wait: OnWait | None = None,
    ) -> Workspace:
        """Open an existing workspace (`folder`, else the settings' ``UPSELL_WORKSPACE``),
        migrating its schema to this version of upsell. Its transactions wait for other
        processes' writes up to ``UPSELL_LOCK_TIMEOUT_SECONDS``, telling `on_wait`."""
        settings = settings or Settings()
        folder = folder if folder is not None else settings.workspace
        hint = f"create one with `upsell init {folder}`"
        if not folder.is_dir():
            raise WorkspaceError(f"no workspace at {folder}: the folder does not exist; {hint}")
        if settings.database_url is None and not (folder / DATABASE_FILE).exists():
            raise WorkspaceError(f"no workspace at {folder}: it has no {DATABASE_FILE}; {hint}")
        url = settings.database_url or sqlite_url(folder)
        db = connect(url, lock_timeout=settings.lock_timeout_seconds, on_wait=on_wait)
        if current_revision(db) is None:
            db.dispose()
            raise WorkspaceError(f"the database {_shown(url)} is not initialised; {hint}")
        if not is_current(db):
            migrate(db)
        return cls(folder, url=url, db=db, settings=settings, backend=backend)

    @staticmethod
    def exists(folder: Path, settings: Settings) -> bool:
        """Whether `folder` looks like a workspace (its database file, or the folder when the data
        lives in ``UPSELL_DATABASE_URL``)."""
        if settings.database_url is None:
            return (folder / DATABASE_FILE).exists()
        return folder.is_dir()

    @property
    def shown_url(self) -> str:
        """The database URL with any password hidden, for messages."""
        return _shown(self.url)

    # -- what the workspace holds ---------------------------------------------------------------

    def loaded_catalog(self) -> LoadedCatalog | None:
        """The current (latest imported) catalog with its text, or None before the first import."""
        with self.db.connect() as conn:
            latest = catalog_store.latest_catalog(conn=conn)
        if latest is None:
            return None
        _version, text, source = latest
        return parse_catalog(text, source)

    def catalog(self) -> Catalog:
        """The current catalog; WorkspaceError before the first import."""
        loaded = self.loaded_catalog()
        if loaded is None:
            raise WorkspaceError(
                f"{self.folder} has no catalog yet: import one with `upsell import --catalog F`"
            )
        return loaded.catalog

    @cached_property
    def config(self) -> WorkspaceConfig:
        """config.yaml's settings (the defaults without one)."""
        return load_config(self.folder)

    def load_playbooks(self, catalog: Catalog | None = None) -> LoadedPlaybooks:
        """playbooks.yaml (or the built-in one), checked against `catalog` and the known channels."""
        return load_playbooks(self.folder, catalog=catalog, channels=channel_names())

    def playbooks(self, catalog: Catalog) -> Playbooks:
        return self.load_playbooks(catalog).playbooks

    @cached_property
    def templates(self) -> MessageTemplates:
        """The message templates and translations: the workspace's over upsell's own."""
        return MessageTemplates(self.folder)

    def channels(self, playbooks: Playbooks) -> dict[str, Channel]:
        """Every channel the playbooks deliver through, built from the settings; ChannelNotReady
        names the first that cannot deliver (no SMTP host, no webhook URL)."""
        out: dict[str, Channel] = {}
        for name in sorted({p.channel for p in playbooks.playbooks}):
            channel = channel_for(name, self.settings)
            problems = channel.problems()
            if problems:
                users = tuple(p.id for p in playbooks.playbooks if p.channel == name)
                raise ChannelNotReady(name, users, tuple(problems))
            out[name] = channel
        return out

    @property
    def analytics(self) -> Path:
        """The folder of the engine's files (rollups)."""
        return self.folder / ANALYTICS

    @property
    def rollups(self) -> Path:
        return self.analytics / "rollups"

    @property
    def backend(self) -> Backend:
        """The analytics back end, started on first use and kept until `close`."""
        if self._backend is None:
            self._backend = Backend(self._backend_name)
        return self._backend

    def new_backend(self, threads: int | None = None) -> Backend:
        """Another analytics back end of the workspace's kind, for a thread of its own (the
        service's trigger worker), with `threads` threads; the caller closes it."""
        return Backend(self._backend_name, threads=threads)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        self.db.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
