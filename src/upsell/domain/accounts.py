"""Accounts (the paying customer: a company or a player) and their users."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Account:
    """One customer account as imported. Timestamps are timezone-aware UTC.

    `currency` and `language` are None when the source did not give them: the catalog currency and
    English apply then (data-contract.md, accounts).
    """

    account_id: str
    created_at: datetime
    name: str | None = None
    industry: str | None = None
    employees: int | None = None
    country: str | None = None
    currency: str | None = None
    language: str | None = None
    email: str | None = None
    traits: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class User:
    """A person inside an account, known from the events they sent."""

    account_id: str
    user_id: str
    first_seen: datetime
    last_seen: datetime
