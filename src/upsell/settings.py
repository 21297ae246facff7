"""Settings read once, at the edge (CLI, service), from the environment: ``UPSELL_*`` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Process-wide settings; passed explicitly to whatever needs them, never a global.

    - ``UPSELL_WORKSPACE``: the workspace folder (default: the current folder).
    - ``UPSELL_DATABASE_URL``: a SQLAlchemy URL (``postgresql+psycopg://user@host/db``) to keep the
      workspace's data in PostgreSQL instead of the SQLite file ``upsell.db`` in the folder.
    """

    model_config = SettingsConfigDict(env_prefix="UPSELL_", extra="ignore")

    workspace: Path = Path(".")
    database_url: str | None = None
