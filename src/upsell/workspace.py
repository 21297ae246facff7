"""A workspace: one folder holding a company's catalog, data and state (data-contract.md, Workspace).

By default the data lives in the SQLite file ``upsell.db`` inside the folder; with
``UPSELL_DATABASE_URL`` it lives in that database (PostgreSQL in production) and the folder holds the
files only. Opening a workspace brings its schema up to date (Alembic migrations), so an upgrade of upsell
never needs a separate step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from upsell.errors import WorkspaceError
from upsell.sources.catalog import LoadedCatalog, parse_catalog
from upsell.store import catalogs as catalog_store
from upsell.store.db import (
    DATABASE_FILE,
    connect,
    current_revision,
    is_current,
    migrate,
    sqlite_url,
)


def _shown(url: str) -> str:
    return sa.make_url(url).render_as_string(hide_password=True)


@dataclass(frozen=True)
class Workspace:
    folder: Path
    url: str
    engine: sa.Engine

    @classmethod
    def create(cls, folder: Path, *, database_url: str | None = None) -> Workspace:
        """Make `folder` a new workspace; refuses one that already is."""
        if (folder / DATABASE_FILE).exists():
            raise WorkspaceError(f"{folder} is a workspace already (it has {DATABASE_FILE})")
        if folder.exists() and not folder.is_dir():
            raise WorkspaceError(f"{folder} exists and is not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        url = database_url or sqlite_url(folder)
        engine = connect(url)
        if database_url and current_revision(engine) is not None:
            engine.dispose()
            raise WorkspaceError(
                f"the database {_shown(url)} holds a workspace already; "
                "point UPSELL_DATABASE_URL at an empty database for a new one"
            )
        migrate(engine)
        return cls(folder=folder, url=url, engine=engine)

    @classmethod
    def open(cls, folder: Path, *, database_url: str | None = None) -> Workspace:
        """Open an existing workspace, migrating its schema to this version of upsell."""
        hint = f"create one with `upsell init {folder}`"
        if not folder.is_dir():
            raise WorkspaceError(f"no workspace at {folder}: the folder does not exist; {hint}")
        if database_url is None and not (folder / DATABASE_FILE).exists():
            raise WorkspaceError(f"no workspace at {folder}: it has no {DATABASE_FILE}; {hint}")
        url = database_url or sqlite_url(folder)
        engine = connect(url)
        if current_revision(engine) is None:
            engine.dispose()
            raise WorkspaceError(f"the database {_shown(url)} is not initialised; {hint}")
        if not is_current(engine):
            migrate(engine)
        return cls(folder=folder, url=url, engine=engine)

    @property
    def shown_url(self) -> str:
        """The database URL with any password hidden, for messages."""
        return _shown(self.url)

    def catalog(self) -> LoadedCatalog | None:
        """The current (latest imported) catalog, or None before the first import."""
        with self.engine.connect() as conn:
            latest = catalog_store.latest_catalog(conn=conn)
        if latest is None:
            return None
        _version, text, source = latest
        return parse_catalog(text, source)

    def close(self) -> None:
        self.engine.dispose()
