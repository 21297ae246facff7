"""The demo company as a workspace a live server can serve, on SQLite or on PostgreSQL.

On SQLite it is a copy of the session's `demo_company` (tests/conftest.py); on PostgreSQL a new
workspace in a schema of its own, into which the demo company's files are imported. Either way its
playbooks deliver in-app only (no SMTP server or webhook to set up), and it has an admin key and a
write key.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from conftest import POSTGRESQL_ENV
from live_server import BIN, child_env
from upsell.store.db import sqlite_url

#: Every offer in-app: nothing to set up for a run to deliver.
PLAYBOOKS = """\
settings:
  contact_cost: {in_app: 0}
guardrails:
  caps: []
playbooks:
  - {id: app, trigger: {kind: [upsell, add_on, cross_sell]}, channel: in_app, placement: modal,
     template: limit_reached}
  - {id: keep, trigger: {kind: save}, channel: in_app, placement: banner, template: save}
"""


@dataclass(frozen=True)
class Company:
    folder: Path
    database_url: str
    env: dict[str, str]
    admin_key: str
    write_key: str

    def db(self) -> sa.Engine:
        return sa.create_engine(self.database_url, poolclass=sa.NullPool)


def upsell(env: dict[str, str], *args: object) -> str:
    """`upsell ARGS` in a child process with `env`; its stdout."""
    done = subprocess.run(
        [str(BIN / "upsell"), *map(str, args)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@contextmanager
def demo_company_on(kind: str, demo_company: Path, where: Path) -> Iterator[Company]:
    """The demo company as a workspace in `where`/ws on `kind` (sqlite or postgresql)."""
    folder = where / "ws"
    admin: sa.Engine | None = None
    schema = ""
    if kind == "sqlite":
        shutil.copytree(demo_company, folder)
        url = sqlite_url(folder)
    else:
        base = os.environ.get(POSTGRESQL_ENV)
        if not base:
            pytest.skip(f"PostgreSQL tests need {POSTGRESQL_ENV}=postgresql+psycopg://...")
        schema = f"t_{secrets.token_hex(6)}"
        admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        parsed = sa.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        url = parsed.render_as_string(hide_password=False)
    env = child_env(url)
    try:
        if kind != "sqlite":
            data = demo_company / "data"
            upsell(env, "init", folder)
            upsell(
                env, "import", "-w", folder, "--catalog", data / "catalog.yaml",
                "--accounts", data / "accounts.parquet",
                "--subscriptions", data / "subscriptions.parquet",
                "--events", data / "events.parquet",
            )  # fmt: skip
        (folder / "playbooks.yaml").write_text(PLAYBOOKS)
        keys = {
            kind: upsell(env, "keys", "create", "-w", folder, "--kind", kind).strip()
            for kind in ("admin", "write")
        }
        yield Company(folder, url, env, keys["admin"], keys["write"])
    finally:
        if admin is not None:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            admin.dispose()
