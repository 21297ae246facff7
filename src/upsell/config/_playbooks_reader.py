"""The first pass over playbooks.yaml: shapes and types, building `Playbooks` as it goes.

`PlaybooksReader.document` reads the whole file (unknown and missing keys, ids, template names,
days, numbers, the facts and tests of triggers as `upsell.config.playbooks` describes them). Like
every `Reader` it never raises on a bad file: it records each error (file, line, key) in `errors`
and builds what it can, dropping an entry it cannot build, so that one run reports every problem
and the second pass (`Playbooks.check` and the checks in `upsell.config.playbooks`) can still look
at the rest. Because dropped entries shift the indices of the built value, `kept` records which
file indices each list kept; `upsell.config.playbooks` maps the second pass's keys back through it.

The key tuples are the vocabulary of the file; `upsell.config.playbooks` exports them, and the docs
test holds docs/decisions.md to them.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from ruamel.yaml.scalarbool import ScalarBoolean

from upsell.config._yaml import At, Reader, is_int, plain, show
from upsell.domain.answers import Learning
from upsell.domain.offers import KINDS
from upsell.domain.playbooks import (
    DEFAULT_CONTACT_COST,
    DEFAULT_REACH_DAYS,
    FACTS,
    OPS,
    Cap,
    Condition,
    DecisionSettings,
    Experiment,
    Fact,
    Guardrails,
    Offer,
    Op,
    Playbook,
    Playbooks,
    Promotion,
    PromotionRun,
    Value,
    Variant,
)

#: The sections of playbooks.yaml, in the order the docs list them.
SECTIONS = ("settings", "guardrails", "promotions", "playbooks")
SETTINGS_KEYS = (
    "holdout", "months_retained", "contact_cost", "checkout_url", "save_url", "learning",
)  # fmt: skip
HOLDOUT_KEYS = ("share", "key", "kinds")
LEARNING_KEYS = (
    "use", "refit_days", "min_decisions", "explore", "strength", "churn_strength",
)  # fmt: skip
GUARDRAILS_KEYS = (
    "caps",
    "dismissed_cooldown_days",
    "purchase_cooldown_days",
    "csm_owner_trait",
    "csm_task_open_days",
    "quiet",
    "promotions",
    "reach_days",
    "same_offer_days",
)
QUIET_KEYS = ("signup_days", "open_ticket", "payment_failed")
PROMOTION_KEYS = ("id", "percent", "months", "runs")
PLAYBOOK_KEYS = (
    "id",
    "description",
    "trigger",
    "offer",
    "channel",
    "placement",
    "template",
    "experiment",
    "anchor",
    "holdout",
)
OFFER_KEYS = ("trial_days", "discount", "deadline_days", "promotion")
VARIANT_KEYS = ("id", "weight", "template", "placement", "offer")

#: Template names name files: lower-case letters, digits, ``_`` and ``-``.
TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]*")

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
#: Stands in for a promotion's unreadable percent, so that the offers naming the promotion are
#: still checked; playbooks are never returned while any error stands, so it never leaks out.
_NO_PERCENT = Decimal(50)


class PlaybooksReader(Reader):
    """Builds what it can and collects every error. `kept` maps the key of each list read (with
    the file's indices) to the file index of every entry it kept, so that the keys of problems
    found in the built value can be mapped back to the file."""

    def __init__(self, file: str) -> None:
        super().__init__(file)
        self.kept: dict[str, list[int]] = {}

    def document(self, root: Any) -> Playbooks:
        top = self.fields(root, At("", 1), "the playbooks file", (), SECTIONS)
        if top is None:
            return Playbooks(playbooks=())
        settings = self.get(top, "settings", self.settings) or DecisionSettings()
        guardrails = self.get(top, "guardrails", self.guardrails) or Guardrails()
        promotions = self.get(top, "promotions", self.promotions) or ()
        playbooks = self.get(top, "playbooks", self.playbooks) or ()
        return Playbooks(playbooks, promotions, guardrails, settings)

    def listed(self, value: Any, at: At, what: str) -> list[tuple[int, Any, At]]:
        """`items` with their index; call `keep` for each one built."""
        self.kept.setdefault(at.key, [])
        return [(i, v, item_at) for i, (v, item_at) in enumerate(self.items(value, at, what))]

    def keep(self, at: At, index: int) -> None:
        self.kept.setdefault(at.key, []).append(index)

    # -- scalars ----------------------------------------------------------------------------

    def number(self, value: Any, at: At) -> float | None:
        if (is_int(value) or isinstance(value, float)) and math.isfinite(value):
            return float(value)
        self.fail(at.key, at.line, f"must be a number, got {show(value)}")
        return None

    def share(self, value: Any, at: At) -> float | None:
        """A holdout share: at least 0 and below 1."""
        if (is_int(value) or isinstance(value, float)) and 0 <= value < 1:
            return float(value)
        self.fail(at.key, at.line, f"must be at least 0 and below 1, got {show(value)}")
        return None

    def months(self, value: Any, at: At) -> int | None:
        if is_int(value) and value >= 1:
            return int(value)
        self.fail(at.key, at.line, f"must be a number of months, at least 1, got {show(value)}")
        return None

    def day(self, value: Any, at: At) -> date | None:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str) and _DAY.fullmatch(value):
            try:
                return date.fromisoformat(value)
            except ValueError as e:
                self.fail(at.key, at.line, f"is no day: {e}")
                return None
        shown = value.isoformat(" ") if isinstance(value, datetime) else show(value)
        self.fail(at.key, at.line, f"must be a day written YYYY-MM-DD, got {shown}")
        return None

    def template(self, value: Any, at: At) -> str | None:
        name = self.text(value, at)
        if name is not None and not TEMPLATE_NAME.fullmatch(name):
            self.fail(
                at.key,
                at.line,
                f"template names name files: lower-case letters, digits, _ and -, starting with "
                f"a letter or digit; got {name!r}",
            )
            return None
        return name

    def description(self, value: Any, at: At) -> str:
        if value is None or isinstance(value, str):
            return str(value or "")
        self.fail(at.key, at.line, f"must be text, got {show(value)}")
        return ""

    # -- settings and guardrails -------------------------------------------------------------

    def settings(self, value: Any, at: At) -> DecisionSettings:
        if value is None:
            return DecisionSettings()
        f = self.fields(value, at, "settings", (), SETTINGS_KEYS)
        if f is None:
            return DecisionSettings()
        given: dict[str, Any] = {}
        holdout = self.get(
            f, "holdout", lambda v, a: self.fields(v, a, "holdout", (), HOLDOUT_KEYS)
        )
        if holdout:
            given["holdout_share"] = self.get(holdout, "share", self.number)
            given["holdout_key"] = self.get(holdout, "key", self.text)
            kinds = self.get(holdout, "kinds", lambda v, a: self.entries(v, a, "kinds"))
            if kinds is not None:
                shares: dict[str, float] = {}
                for kind, v, kind_at in kinds:
                    if kind not in KINDS:
                        self.fail(
                            kind_at.key,
                            kind_at.line,
                            f"is no kind of offer; choose {', '.join(KINDS)}",
                        )
                        continue
                    share = self.share(v, kind_at)
                    if share is not None:
                        shares[kind] = share
                given["holdout_by_kind"] = MappingProxyType(shares)
        given["months_retained"] = self.get(f, "months_retained", self.number)
        costs = self.get(f, "contact_cost", lambda v, a: self.entries(v, a, "channels"))
        if costs is not None:
            read = {name: self.amount(v, cost_at) for name, v, cost_at in costs}
            given["contact_cost"] = MappingProxyType(
                {**DEFAULT_CONTACT_COST, **{k: v for k, v in read.items() if v is not None}}
            )
        given["checkout_url"] = self.get(f, "checkout_url", self.text)
        given["save_url"] = self.get(f, "save_url", self.text)
        learning = self.get(
            f, "learning", lambda v, a: self.fields(v, a, "learning", (), LEARNING_KEYS)
        )
        if learning:
            taught: dict[str, Any] = {
                "use": self.get(learning, "use", self.flag),
                "refit_days": self.get(learning, "refit_days", self.count),
                "min_decisions": self.get(learning, "min_decisions", self.count),
                "explore": self.get(learning, "explore", self.flag),
                "strength": self.get(learning, "strength", self.number),
                "churn_strength": self.get(learning, "churn_strength", self.number),
            }
            given["learning"] = Learning(**{k: v for k, v in taught.items() if v is not None})
        return DecisionSettings(**{k: v for k, v in given.items() if v is not None})

    def guardrails(self, value: Any, at: At) -> Guardrails:
        if value is None:
            return Guardrails()
        f = self.fields(value, at, "guardrails", (), GUARDRAILS_KEYS)
        if f is None:
            return Guardrails()
        given: dict[str, Any] = {}
        given["caps"] = self.get(f, "caps", self.caps)
        given["dismissed_cooldown_days"] = self.get(f, "dismissed_cooldown_days", self.count)
        given["same_offer_days"] = self.get(f, "same_offer_days", self.count)
        given["purchase_cooldown_days"] = self.get(f, "purchase_cooldown_days", self.count)
        given["csm_owner_trait"] = self.get(f, "csm_owner_trait", self.text)
        given["csm_task_open_days"] = self.get(f, "csm_task_open_days", self.count)
        quiet = self.get(f, "quiet", lambda v, a: self.fields(v, a, "quiet", (), QUIET_KEYS))
        if quiet:
            given["quiet_signup_days"] = self.get(quiet, "signup_days", self.count)
            given["quiet_open_ticket"] = self.get(quiet, "open_ticket", self.flag)
            given["quiet_payment_failed"] = self.get(quiet, "payment_failed", self.flag)
        limit = self.get(
            f,
            "promotions",
            lambda v, a: self.fields(v, a, "promotions", (), ("max_per_12_months",)),
        )
        if limit:
            given["promotion_max_per_12_months"] = self.get(limit, "max_per_12_months", self.count)
        reach = self.get(f, "reach_days", lambda v, a: self.entries(v, a, "channels"))
        if reach is not None:
            read = {name: self.count(v, reach_at) for name, v, reach_at in reach}
            given["reach_days"] = MappingProxyType(
                {**DEFAULT_REACH_DAYS, **{k: v for k, v in read.items() if v is not None}}
            )
        return Guardrails(**{k: v for k, v in given.items() if v is not None})

    def caps(self, value: Any, at: At) -> tuple[Cap, ...]:
        out = []
        for i, v, cap_at in self.listed(value, at, "caps"):
            f = self.fields(v, cap_at, "a cap", ("max", "days"), ("channel", "placement"))
            if f is None:
                continue
            cap_max, days = self.get(f, "max", self.count), self.get(f, "days", self.count)
            channel = self.get(f, "channel", self.text)
            placement = self.get(f, "placement", self.text)
            if (
                cap_max is None
                or days is None
                or any(
                    name in f and read is None
                    for name, read in (("channel", channel), ("placement", placement))
                )
            ):
                continue
            out.append(Cap(max=cap_max, days=days, channel=channel, placement=placement))
            self.keep(at, i)
        return tuple(out)

    # -- promotions --------------------------------------------------------------------------

    def promotions(self, value: Any, at: At) -> tuple[Promotion, ...]:
        out = []
        for i, v, promo_at in self.listed(value, at, "promotions"):
            f = self.fields(v, promo_at, "a promotion", ("id", "percent", "runs"), PROMOTION_KEYS)
            if f is None:
                continue
            promo_id = self.get(f, "id", self.text)
            percent = self.get(f, "percent", self.amount)
            months = self.get(f, "months", self.months)
            runs = self.get(f, "runs", self.runs) or ()
            if promo_id is None:
                continue
            out.append(Promotion(promo_id, percent or _NO_PERCENT, months, runs))
            self.keep(at, i)
        return tuple(out)

    def runs(self, value: Any, at: At) -> tuple[PromotionRun, ...]:
        out = []
        for i, v, run_at in self.listed(value, at, "runs"):
            f = self.fields(v, run_at, "a run", ("from", "to"))
            if f is None:
                continue
            start, end = self.get(f, "from", self.day), self.get(f, "to", self.day)
            if start is not None and end is not None:
                out.append(PromotionRun(start, end))
                self.keep(at, i)
        return tuple(out)

    # -- playbooks ---------------------------------------------------------------------------

    def playbooks(self, value: Any, at: At) -> tuple[Playbook, ...]:
        out = []
        required = ("id", "channel", "placement", "template")
        for i, v, book_at in self.listed(value, at, "playbooks"):
            f = self.fields(v, book_at, "a playbook", required, PLAYBOOK_KEYS)
            if f is None:
                continue
            book_id, channel, placement = (self.get(f, k, self.text) for k in required[:3])
            template = self.get(f, "template", self.template)
            trigger = self.get(f, "trigger", self.trigger) or ()
            offer = self.get(f, "offer", self.offer) or Offer()
            experiment = self.get(f, "experiment", self.experiment)
            description = self.get(f, "description", self.description) or ""
            anchor = self.get(f, "anchor", self.text)
            holdout = self.get(f, "holdout", self.share)
            if book_id is None or channel is None or placement is None or template is None:
                continue
            out.append(
                Playbook(
                    id=book_id,
                    channel=channel,
                    placement=placement,
                    template=template,
                    trigger=trigger,
                    offer=offer,
                    experiment=experiment,
                    description=description,
                    anchor=anchor,
                    holdout=holdout,
                )
            )
            self.keep(at, i)
        return tuple(out)

    def offer(self, value: Any, at: At) -> Offer:
        """An offer; null means nothing beyond the item."""
        if value is None:
            return Offer()
        f = self.fields(value, at, "an offer", (), OFFER_KEYS)
        if f is None:
            return Offer()
        percent, months = self.get(f, "discount", self.discount) or (None, None)
        trial_days = self.get(f, "trial_days", self.count)
        return Offer(
            trial_days=trial_days or 0,
            discount_percent=percent,
            discount_months=months,
            deadline_days=self.get(f, "deadline_days", self.count),
            promotion=self.get(f, "promotion", self.text),
        )

    def discount(self, value: Any, at: At) -> tuple[Decimal | None, int | None]:
        f = self.fields(value, at, "a discount", ("percent",), ("months",))
        if f is None:
            return None, None
        return self.get(f, "percent", self.amount), self.get(f, "months", self.months)

    def experiment(self, value: Any, at: At) -> Experiment | None:
        f = self.fields(value, at, "an experiment", ("id", "variants"))
        if f is None:
            return None
        experiment_id = self.get(f, "id", self.text)
        variants = self.get(f, "variants", self.variants)
        if experiment_id is None or variants is None:
            return None
        return Experiment(experiment_id, variants)

    def variants(self, value: Any, at: At) -> tuple[Variant, ...]:
        out = []
        for i, v, variant_at in self.listed(value, at, "variants"):
            f = self.fields(v, variant_at, "a variant", ("id",), VARIANT_KEYS)
            if f is None:
                continue
            variant_id = self.get(f, "id", self.text)
            weight = self.get(f, "weight", self.number)
            template = self.get(f, "template", self.template)
            placement = self.get(f, "placement", self.text)
            offer = self.get(f, "offer", self.offer)
            if variant_id is None:
                continue
            out.append(
                Variant(variant_id, 1.0 if weight is None else weight, template, placement, offer)
            )
            self.keep(at, i)
        return tuple(out)

    # -- triggers ----------------------------------------------------------------------------

    def trigger(self, value: Any, at: At) -> tuple[Condition, ...]:
        out: list[Condition] = []
        for name, v, fact_at in self.entries(value, at, "facts"):
            fact = FACTS.get(name)
            if fact is None:
                hint = difflib.get_close_matches(name, FACTS, n=1)
                self.fail(
                    fact_at.key,
                    fact_at.line,
                    f"unknown fact {name!r}"
                    + (f" (did you mean {hint[0]!r}?)" if hint else "")
                    + f"; known: {', '.join(FACTS)}",
                )
                continue
            out += self.conditions(fact, v, fact_at)
        return tuple(out)

    def conditions(self, fact: Fact, value: Any, at: At) -> list[Condition]:
        """A fact's tests: a mapping of ops, a list (any_of) or a scalar (equals; any_of for a
        set)."""
        if isinstance(value, Mapping):
            found = self.fields(value, at, f"the test of {fact.name}", (), OPS)
            if found is None:
                return []
            if not value:
                self.fail(at.key, at.line, f"needs a test: {', '.join(OPS)}")
            ops = {op: found[op] for op in OPS if op in found}
            tests = [self.test(fact, op, v, op_at) for op, (v, op_at) in ops.items()]
        elif isinstance(value, list):
            tests = [self.test(fact, "any_of", value, at)]
        else:
            tests = [self.test(fact, "any_of" if fact.type == "set" else "equals", value, at)]
        return [c for c in tests if c is not None]

    def test(self, fact: Fact, op: Op, value: Any, at: At) -> Condition | None:
        """One condition, or None after reporting why not. Only mismatches `Playbooks.check` does
        not see are reported here: a flag takes true or false, at_least and at_most a number, a
        text fact text."""
        name = fact.name
        if fact.type == "flag":
            if op == "equals" and isinstance(value, bool | ScalarBoolean):
                return Condition(name, op, bool(value))
            self.fail(at.key, at.line, f"{name} is true or false: write {name}: true or false")
            return None
        if op in ("at_least", "at_most"):
            number = plain(value)
            if (is_int(value) or isinstance(value, float)) and math.isfinite(number):
                return Condition(name, op, number)
            self.fail(at.key, at.line, f"{op} needs a number, got {show(value)}")
            return None
        if isinstance(value, list) or op != "equals" or fact.type == "set":
            if isinstance(value, list) and op == "equals" and fact.type != "set":
                self.fail(at.key, at.line, "equals takes one value; use any_of for a list")
                return None
            values = self.values(fact, value, at)
            if values is None:
                return None
            return Condition(name, op, values)
        if fact.type == "number":
            if isinstance(value, Mapping | list) or value is None:
                self.fail(at.key, at.line, f"needs a value, got {show(value)}")
                return None
            scalar: Value = plain(value)
            return Condition(name, op, scalar)
        text = self.text(value, at)
        return None if text is None else Condition(name, op, text)

    def values(self, fact: Fact, value: Any, at: At) -> tuple[str, ...] | None:
        """A list or one value as a tuple of text; for a number fact (which `Playbooks.check`
        rejects with these ops) any scalars are accepted, written as text."""
        listed = self.items(value, at, "values") if isinstance(value, list) else [(value, at)]
        if not listed:
            self.fail(at.key, at.line, "needs at least one value")
            return None
        out = []
        for v, item_at in listed:
            if fact.type == "number" and (is_int(v) or isinstance(v, float | str)):
                out.append(str(plain(v)))
                continue
            text = self.text(v, item_at)
            if text is None:
                return None
            out.append(text)
        return tuple(out)
