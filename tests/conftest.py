"""Shared fixtures: a database on SQLite and, when UPSELL_TEST_DATABASE_URL is set, on PostgreSQL;
and the simulated company, built once a session and copied for every test that writes to it.

Each PostgreSQL test gets a schema of its own (``t_<random>``), selected through libpq's
``options=-csearch_path=...``, and dropped with everything in it afterwards.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from backends import BOTH
from cli_runner import run
from live_server import LiveServer, child_env, live_server
from upsell.engine.backends import Backend
from upsell.store.db import connect, migrate, sqlite_url

POSTGRESQL_ENV = "UPSELL_TEST_DATABASE_URL"
#: The simulated company of the command-line and engine tests: 500 accounts over 6 months (from
#: 2025-11-01, the simulator's default start), seed 2.
DEMO_OPTIONS = ("--accounts", 500, "--months", 6, "--seed", 2)


@contextmanager
def empty_database(kind: str, folder: Path) -> Iterator[str]:
    """The URL of an empty database: a SQLite file in `folder`, or a PostgreSQL schema of its
    own (dropped afterwards; skips the test without UPSELL_TEST_DATABASE_URL)."""
    if kind == "sqlite":
        yield sqlite_url(folder)
        return
    base = os.environ.get(POSTGRESQL_ENV)
    if not base:
        pytest.skip(f"PostgreSQL tests need {POSTGRESQL_ENV}=postgresql+psycopg://...")
    schema = f"t_{secrets.token_hex(6)}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = sa.make_url(base)
        url = url.update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database, on each back end in turn."""
    with empty_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def db(database_url: str) -> Iterator[sa.Engine]:
    """A database migrated to the newest schema."""
    db = connect(database_url)
    try:
        migrate(db)
        yield db
    finally:
        db.dispose()


# -- the simulated company ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def demo_company(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`upsell init WS --demo` with DEMO_OPTIONS, built once a session on SQLite (without
    UPSELL_DATABASE_URL): the workspace, and in WS/data the simulator's files (catalog.yaml and the
    accounts, subscriptions and events as Parquet), `simulate(SimConfig(500, 6, seed=2))`'s.

    Every test asking for it shares it: read its files, never write to it, nor run a command on it
    (commands write rollups and SQLite's WAL files); `demo_workspace` is a copy of a test's own.
    `_the_demo_company_stays_as_built` fails a test that changed it.
    """
    ws = tmp_path_factory.mktemp("demo-company") / "ws"
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("UPSELL_DATABASE_URL", raising=False)
        result = run("init", ws, "--demo", *DEMO_OPTIONS)
    assert result.exit_code == 0, result.output
    return ws


@pytest.fixture
def demo_workspace(demo_company: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo company for one test to run commands on and change (in a folder of its
    own, so that the test's tmp_path starts empty)."""
    return Path(shutil.copytree(demo_company, tmp_path_factory.mktemp("demo-workspace") / "ws"))


def _files(folder: Path) -> list[tuple[str, int, int]]:
    return sorted(
        (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
    )


@pytest.fixture(autouse=True)
def _the_demo_company_stays_as_built(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that uses the shared demo company (itself or through a fixture) leaves it as it was."""
    if "demo_company" not in request.fixturenames:
        yield
        return
    company: Path = request.getfixturevalue("demo_company")
    before = _files(company)
    yield
    assert _files(company) == before, "a test wrote to the shared demo company: use a copy"


@pytest.fixture(scope="module", params=BOTH)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Each analytics back end in turn (tests/backends.py), one per test module."""
    b = Backend(request.param)
    try:
        yield b
    finally:
        b.close()


# -- the service ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Served:
    """A live `upsell serve` on a new workspace, with one key of each kind."""

    server: LiveServer
    folder: Path
    database_url: str
    write_key: str
    publishable_key: str
    admin_key: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def store_url(self) -> str:
        """The URL of the served workspace's database (its SQLite file, or the PostgreSQL schema)."""
        url = self.database_url
        return sqlite_url(self.folder) if url.startswith("sqlite") else url


def new_workspace(folder: Path, database_url: str) -> dict[str, str]:
    """A new, empty workspace at `folder` on `database_url`, made in this process (as `upsell
    init` makes it), with one key of each kind; returns the keys' text by kind."""
    from upsell.settings import Settings
    from upsell.store.keys import create_key
    from upsell.workspace import Workspace

    url = None if database_url.startswith("sqlite") else database_url
    with Workspace.create(folder, Settings(database_url=url)) as ws, ws.db.begin() as conn:
        return {
            kind: create_key(conn=conn, kind=kind)[1] for kind in ("write", "publishable", "admin")
        }


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[Served]:
    """`upsell serve` on a new, empty workspace on each database in turn (SQLite, PostgreSQL)."""
    folder = tmp_path / "ws"
    env = child_env(database_url)
    keys = new_workspace(folder, database_url)
    with live_server(folder, env) as server:
        yield Served(
            server, folder, database_url, keys["write"], keys["publishable"], keys["admin"]
        )
