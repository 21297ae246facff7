"""The tables of the store (SQLAlchemy Core), one `metadata` for all of them.

Migrations in `upsell/store/migrations` must create exactly these tables; a test compares the two
with Alembic's autogenerate. Events and subscription items carry no foreign key to accounts: imports
check account ids in batches and write rejects instead of failing on a constraint.
"""

from __future__ import annotations

import sqlalchemy as sa

from upsell.domain.contacts import CONTACT_STATUSES, RESPONSE_KINDS
from upsell.domain.money import INTERVALS
from upsell.domain.offers import KINDS
from upsell.domain.subscriptions import STATUSES
from upsell.store.types import JSON, DecimalText, UTCDateTime

#: The kinds of API key (docs/service.md): a write key sends data, a publishable key is the
#: browser's (the in-app widget), an admin token reads and triggers.
KEY_KINDS = ("write", "publishable", "admin")
#: The states of a run of the daily job, from the scheduler, the admin API or the CLI.
RUN_STATUSES = ("queued", "running", "succeeded", "failed")
RUN_TRIGGERS = ("schedule", "api", "cli")
#: What became of a Stripe event (docs/service.md, "Stripe").
STRIPE_OUTCOMES = ("applied", "partial", "unmapped", "stale", "ignored")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    """A CHECK that the column holds one of the domain's Literal values.

    Alembic's autogenerate does not compare CHECK constraints: a new value in the domain needs a
    migration, and tests/test_store.py stores every value to prove the database accepts it.
    """
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("account_id", sa.String, primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("name", sa.String),
    sa.Column("industry", sa.String),
    sa.Column("employees", sa.Integer),
    sa.Column("country", sa.String),
    sa.Column("currency", sa.String),
    sa.Column("language", sa.String),
    sa.Column("email", sa.String),
    sa.Column("traits", JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

users = sa.Table(
    "users",
    metadata,
    sa.Column("account_id", sa.String, primary_key=True),
    sa.Column("user_id", sa.String, primary_key=True),
    sa.Column("first_seen", UTCDateTime, nullable=False),
    sa.Column("last_seen", UTCDateTime, nullable=False),
    sa.Index(None, "user_id"),
)

subscription_items = sa.Table(
    "subscription_items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("item_id", sa.String, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("interval", sa.String, nullable=False),
    sa.Column("unit_price", DecimalText, nullable=False),
    sa.Column("currency", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("account_id", "item_id", "started_at"),
    sa.CheckConstraint(_one_of("interval", INTERVALS), name="interval"),
    sa.CheckConstraint(_one_of("status", STATUSES), name="status"),
    sa.Index(None, "account_id"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("message_id", sa.String, nullable=False, unique=True),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("user_id", sa.String),
    sa.Column("event", sa.String, nullable=False),
    sa.Column("timestamp", UTCDateTime, nullable=False),
    sa.Column("properties", JSON, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Index(None, "account_id", "timestamp"),
    sa.Index(None, "event", "timestamp"),
)

catalog_versions = sa.Table(
    "catalog_versions",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("sha256", sa.String, nullable=False, unique=True),
    sa.Column("source", sa.String, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("imported_at", UTCDateTime, nullable=False),
)

contacts = sa.Table(
    "contacts",
    metadata,
    sa.Column("contact_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("user_id", sa.String),
    sa.Column("as_of", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("offer_id", sa.String, nullable=False),
    sa.Column("item_id", sa.String, nullable=False),
    sa.Column("channel", sa.String, nullable=False),
    sa.Column("placement", sa.String),
    sa.Column("playbook", sa.String),
    sa.Column("experiment", sa.String),
    sa.Column("variant", sa.String),
    sa.Column("held_out", sa.Boolean, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("message", JSON, nullable=False),
    sa.Column("expected_mrr_delta", DecimalText),
    sa.Column("currency", sa.String),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("promotion", sa.String),
    sa.Column("detail", sa.String),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("delivered_at", UTCDateTime),
    sa.Column("decision", JSON),
    # The widget's answers to an in-app contact (POST /v1/messages/{id}/events), each set once.
    sa.Column("shown_at", UTCDateTime),
    sa.Column("clicked_at", UTCDateTime),
    sa.Column("dismissed_at", UTCDateTime),
    sa.Column("converted_at", UTCDateTime),
    # What put the account on the trigger queue (``Limit Reached``, ``trait seats``) when a
    # real-time trigger decided the contact; None for the daily run's.
    sa.Column("trigger", sa.String),
    # The process delivering the contact now (`store.locks.holder_id`) and until when its claim
    # holds; both None when no delivery is in flight (store/contacts.py, `claim_delivery`).
    sa.Column("claimed_by", sa.String),
    sa.Column("lease_until", UTCDateTime),
    sa.UniqueConstraint("account_id", "offer_id", "channel", "as_of"),
    sa.Index(None, "account_id", "as_of"),
    sa.CheckConstraint(_one_of("kind", KINDS), name="kind"),
    sa.CheckConstraint(_one_of("status", CONTACT_STATUSES), name="status"),
)

responses = sa.Table(
    "responses",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("contact_id", sa.Integer, sa.ForeignKey("contacts.contact_id"), nullable=False),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("response", sa.String, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("properties", JSON, nullable=False),
    sa.CheckConstraint(_one_of("response", RESPONSE_KINDS), name="response"),
    sa.Index(None, "contact_id"),
    sa.Index(None, "account_id"),
)

refusals = sa.Table(
    "refusals",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("as_of", UTCDateTime, nullable=False),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("offer_id", sa.String, nullable=False),
    sa.Column("playbook", sa.String),
    sa.Column("guardrail", sa.String, nullable=False),
    sa.Column("detail", sa.String, nullable=False),
    sa.Index(None, "as_of"),
    sa.Index(None, "account_id"),
)

import_watermarks = sa.Table(
    "import_watermarks",
    metadata,
    sa.Column("kind", sa.String, primary_key=True),
    sa.Column("source", sa.String, primary_key=True),
    sa.Column("bytes_done", sa.BigInteger, nullable=False),
    sa.Column("rows_done", sa.BigInteger, nullable=False),
    sa.Column("prefix_sha256", sa.String, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String, primary_key=True),
    sa.Column("kind", sa.String, nullable=False),
    sa.Column("name", sa.String),
    sa.Column("secret_sha256", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime),
    sa.CheckConstraint(_one_of("kind", KEY_KINDS), name="kind"),
)

# Who a user is, from Segment's identify and group calls and PostHog's $identify and
# $groupidentify: the account of the user's latest group call, and the user's own traits.
identities = sa.Table(
    "identities",
    metadata,
    sa.Column("user_id", sa.String, primary_key=True),
    sa.Column("account_id", sa.String),
    sa.Column("email", sa.String),
    sa.Column("language", sa.String),
    sa.Column("traits", JSON, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index(None, "account_id"),
)

# alias calls: an earlier id (an anonymousId, a previousId) that now means `user_id`.
aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("alias", sa.String, primary_key=True),
    sa.Column("user_id", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index(None, "user_id"),
)

# Events whose account is not known yet: kept until the user's group call names it, then moved to
# `events`. A message_id is in at most one of the two tables.
pending_events = sa.Table(
    "pending_events",
    metadata,
    sa.Column(
        "seq",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("message_id", sa.String, nullable=False, unique=True),
    sa.Column("user_id", sa.String),
    sa.Column("anonymous_id", sa.String),
    sa.Column("event", sa.String, nullable=False),
    sa.Column("timestamp", UTCDateTime, nullable=False),
    sa.Column("properties", JSON, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Index(None, "user_id"),
    sa.Index(None, "anonymous_id"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("as_of", UTCDateTime, nullable=False),
    sa.Column("trigger", sa.String, nullable=False),
    sa.Column("status", sa.String, nullable=False),
    sa.Column("requested_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("summary", JSON),
    sa.Column("error", sa.String),
    sa.CheckConstraint(_one_of("status", RUN_STATUSES), name="status"),
    sa.CheckConstraint(_one_of("trigger", RUN_TRIGGERS), name="trigger"),
    sa.Index(None, "as_of"),
)

# The lock row that keeps two servers on one SQLite file from running the same job at once
# (PostgreSQL uses an advisory lock instead). A lock past `expires_at` is free.
locks = sa.Table(
    "locks",
    metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("holder", sa.String, nullable=False),
    sa.Column("acquired_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
)

# Stripe (docs/service.md, "Stripe"). Which account a Stripe customer is: from the customer's
# metadata (``upsell_account_id``) the first time it is seen.
stripe_customers = sa.Table(
    "stripe_customers",
    metadata,
    sa.Column("customer_id", sa.String, primary_key=True),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index(None, "account_id"),
)

# Each Stripe subscription item and the subscription_items row that holds it now (row_id None: it
# holds none, the item ended or cannot be mapped).
stripe_items = sa.Table(
    "stripe_items",
    metadata,
    sa.Column("stripe_item_id", sa.String, primary_key=True),
    sa.Column("subscription_id", sa.String, nullable=False),
    sa.Column("account_id", sa.String, nullable=False),
    sa.Column("row_id", sa.Integer),
    sa.Column("price_id", sa.String, nullable=False),
    sa.Column("cancel_at_period_end", sa.Boolean, nullable=False),
    sa.Column("current_period_start", UTCDateTime),
    sa.Column("current_period_end", UTCDateTime),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index(None, "subscription_id"),
)

# The latest event applied to each Stripe object (a customer, a subscription): an event older
# than it changes nothing.
stripe_objects = sa.Table(
    "stripe_objects",
    metadata,
    sa.Column("object_id", sa.String, primary_key=True),
    sa.Column("event_id", sa.String, nullable=False),
    sa.Column("event_type", sa.String, nullable=False),
    sa.Column("event_created", UTCDateTime, nullable=False),
)

# Every Stripe event received, once, with what became of it. An event of a customer not mapped to
# an account yet keeps its payload, and is applied when the customer is mapped.
stripe_events = sa.Table(
    "stripe_events",
    metadata,
    sa.Column("event_id", sa.String, primary_key=True),
    sa.Column("type", sa.String, nullable=False),
    sa.Column("object_id", sa.String),
    sa.Column("customer_id", sa.String),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("outcome", sa.String, nullable=False),
    sa.Column("detail", sa.String),
    sa.Column("payload", JSON),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.CheckConstraint(_one_of("outcome", STRIPE_OUTCOMES), name="outcome"),
    sa.Index(None, "outcome"),
    sa.Index(None, "customer_id"),
)


signing_secrets = sa.Table(
    "signing_secrets",
    metadata,
    # The workspace's HMAC secrets, made on first use: "user_token" (the widget's signed user
    # ids) and "checkout" (the offer token handed to the company's checkout).
    sa.Column("purpose", sa.String, primary_key=True),
    sa.Column("secret", sa.String, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)


# The real-time trigger queue (docs/in-app.md, "Real-time triggers"): one row per account that a
# trigger ever queued. Pending while `due_at` is set (from `enqueued_at`, the earliest trigger not
# decided yet, or later when the account was decided by a trigger less than a cooldown ago); a
# worker claims it with a lease (`claimed_by` until `claimed_until`); a trigger arriving while it
# is claimed sets `requeued_at`, so that it is decided again after. Written in the transaction
# that stores the events or traits that triggered it.
trigger_queue = sa.Table(
    "trigger_queue",
    metadata,
    sa.Column("account_id", sa.String, primary_key=True),
    sa.Column("reason", sa.String, nullable=False),
    sa.Column("enqueued_at", UTCDateTime),
    sa.Column("due_at", UTCDateTime),
    sa.Column("requeued_at", UTCDateTime),
    sa.Column("claimed_by", sa.String),
    sa.Column("claimed_until", UTCDateTime),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("decided_at", UTCDateTime),
    sa.Column("cool_until", UTCDateTime),
    sa.Index(None, "due_at"),
)

#: Fitted models (`upsell learn`, docs/learning.md): one row a fit, the parameters the decision
#: step reads and the fit's out-of-sample evaluation; the newest of a name is in use.
models = sa.Table(
    "models",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String, nullable=False),
    sa.Column("fitted_at", UTCDateTime, nullable=False),
    sa.Column("data_end", UTCDateTime),
    sa.Column("decisions", sa.Integer, nullable=False),
    sa.Column("params", JSON, nullable=False),
    sa.Column("evaluation", JSON),
    sa.Index(None, "name"),
)
