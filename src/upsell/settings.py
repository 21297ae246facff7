"""Settings read once, at the edge (the CLI, the service), from the environment: ``UPSELL_*``.

One `Settings` per process, built where the process starts and passed explicitly to the `Workspace`
(which hands the channel settings to the channels); nothing inside upsell reads the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Process-wide settings; passed explicitly to whatever needs them, never a global.

    The workspace (docs/data-formats.md):

    - ``UPSELL_WORKSPACE``: the workspace folder (default: the current folder).
    - ``UPSELL_DATABASE_URL``: a SQLAlchemy URL (``postgresql+psycopg://user@host/db``) to keep the
      workspace's data in PostgreSQL instead of the SQLite file ``upsell.db`` in the folder.
    - ``UPSELL_LOCK_TIMEOUT_SECONDS``: how long a command waits for another process writing to
      the workspace (an import; on SQLite any writer) before it stops with "workspace busy", exit
      2 (default 300; docs/operations.md, "Concurrency").

    Email, the ``email`` channel (docs/decisions.md):

    - ``UPSELL_SMTP_HOST``: the SMTP server; unset, the email channel reports a problem and sends
      nothing.
    - ``UPSELL_SMTP_PORT``: its port (default 25; usually 587 with STARTTLS, 465 with SSL).
    - ``UPSELL_SMTP_USER`` and ``UPSELL_SMTP_PASSWORD``: log in with these when the user is set.
    - ``UPSELL_SMTP_FROM``: the From address (default ``upsell@localhost``).
    - ``UPSELL_SMTP_STARTTLS``: upgrade the connection with STARTTLS (default false).
    - ``UPSELL_SMTP_SSL``: connect over TLS from the start, SMTPS (default false; not with STARTTLS).
    - ``UPSELL_SMTP_TIMEOUT``: seconds to wait on the server (default 30).

    Webhooks, the ``webhook`` and ``csm_task`` channels (docs/decisions.md):

    - ``UPSELL_WEBHOOK_URL``: the http(s) URL that decisions are POSTed to.
    - ``UPSELL_CSM_TASK_URL``: the URL that CSM tasks are POSTed to (default: the webhook URL).
    - ``UPSELL_WEBHOOK_SECRET``: the HMAC-SHA256 key of the ``X-Upsell-Signature`` header; unset, the
      requests are not signed.
    - ``UPSELL_WEBHOOK_TIMEOUT``: seconds to wait for each response (default 10).
    - ``UPSELL_WEBHOOK_RETRIES``: retries after the first attempt, on connection errors, timeouts,
      HTTP 429 and 5xx (default 4).
    - ``UPSELL_WEBHOOK_BACKOFF_SECONDS``: the wait before the first retry, doubled at each retry
      after it (default 1.0).

    The service, ``upsell serve`` (docs/service.md, "Operations"):

    - ``UPSELL_SERVICE_LOG_LEVEL``: debug, info (default: one line a request), warning or error.
    - ``UPSELL_SERVICE_SHUTDOWN_SECONDS``: on SIGTERM, how long requests in flight may take to
      finish before they are cancelled (default 30).
    - ``UPSELL_SERVICE_METRICS_AUTH``: ``/metrics`` needs an admin token (default false).
    - ``UPSELL_SERVICE_MAX_CLOCK_SKEW_HOURS`` and ``UPSELL_SERVICE_POSTHOG_GROUP_TYPE``: Segment and
      PostHog ingestion (docs/service.md, "Segment" and "PostHog").
    - ``UPSELL_SERVICE_TRIGGERS``: real-time triggers (docs/in-app.md): ingestion queues the accounts
      an event or trait change may make an offer right for, and the server decides for them at once
      (default true; false: neither, the daily run decides).
    - ``UPSELL_SERVICE_TRIGGER_WORKER``: this server decides the queued triggers (default true;
      false: it only queues them, for another server on the same database to decide).
    - ``UPSELL_SERVICE_TRIGGER_COOLDOWN_SECONDS``: a trigger for an account decided by a trigger
      less than this long ago waits until then (default 60).

    Stripe, ``POST /webhooks/stripe`` (docs/service.md, "Stripe"):

    - ``UPSELL_STRIPE_WEBHOOK_SECRET``: the endpoint's signing secret (``whsec_...``), or several
      separated by commas while a secret is rolled; unset, the endpoint is off (404).
    - ``UPSELL_STRIPE_ACCOUNT_METADATA_KEY``: the customer metadata key holding the upsell
      account id (default ``upsell_account_id``).
    """

    model_config = SettingsConfigDict(env_prefix="UPSELL_", extra="ignore")

    workspace: Path = Path(".")
    database_url: str | None = None
    lock_timeout_seconds: float = Field(default=300, ge=0)

    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "upsell@localhost"
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_timeout: float = Field(default=30, gt=0)

    webhook_url: str | None = None
    csm_task_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_timeout: float = Field(default=10, gt=0)
    webhook_retries: int = Field(default=4, ge=0)
    webhook_backoff_seconds: float = Field(default=1.0, ge=0)

    service_log_level: Literal["debug", "info", "warning", "error"] = "info"
    service_shutdown_seconds: int = Field(default=30, ge=0)
    service_metrics_auth: bool = False
    # The messages API's copy of the in-app queue (docs/in-app.md): seconds between two looks for
    # what other processes stored (0: at every request).
    service_messages_refresh_seconds: float = Field(default=0.25, ge=0, le=60)

    # Segment and PostHog ingestion (docs/service.md): how far ahead of the server's clock a
    # timestamp (or a request's sentAt, either way) may be; the PostHog group type of accounts.
    service_max_clock_skew_hours: float = Field(default=24, gt=0)
    service_posthog_group_type: str | None = None
    # Real-time triggers (docs/in-app.md, "Real-time triggers").
    service_triggers: bool = True
    service_trigger_worker: bool = True
    service_trigger_cooldown_seconds: float = Field(default=60, ge=0)
    stripe_webhook_secret: SecretStr | None = None
    stripe_account_metadata_key: str = Field(default="upsell_account_id", min_length=1)
