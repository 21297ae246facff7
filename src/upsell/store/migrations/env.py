"""Alembic environment for upsell's store.

`upsell.store.db.migrate` passes an open connection in ``config.attributes["connection"]`` and
everything runs on it, inside the caller's transaction. Without one (the ``alembic`` command line
with an ini file), the URL comes from ``sqlalchemy.url`` or ``UPSELL_DATABASE_URL``.
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import context

from upsell.store.schema import metadata

config = context.config


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("UPSELL_DATABASE_URL")
    if not url:
        raise RuntimeError("set sqlalchemy.url or UPSELL_DATABASE_URL to run migrations")
    return url


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=sa.make_url(_url()).get_backend_name() == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from upsell.store.db import connect

    engine = connect(_url())
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
