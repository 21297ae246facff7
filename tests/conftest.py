"""Shared fixtures: a database on SQLite and, when UPSELL_TEST_DATABASE_URL is set, on PostgreSQL.

Each PostgreSQL test gets a schema of its own (``t_<random>``), selected through libpq's
``options=-csearch_path=...``, and dropped with everything in it afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from upsell.store.db import connect, migrate, sqlite_url

POSTGRESQL_ENV = "UPSELL_TEST_DATABASE_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database, on each back end in turn."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
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


@pytest.fixture
def db(database_url: str) -> Iterator[sa.Engine]:
    """A database migrated to the newest schema."""
    db = connect(database_url)
    try:
        migrate(db)
        yield db
    finally:
        db.dispose()
