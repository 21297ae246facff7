"""Read catalog.yaml into a checked `Catalog`, naming file, line and key in every problem.

Validation runs in two passes. The first reads the YAML (keeping line numbers) and checks shapes and
types: required and unknown keys, amounts, limits, currencies, choices. It reports every such error
at once. Only a file that passes it is built into a domain `Catalog`, whose `check` then finds the
semantic problems (unknown metrics, `requires` cycles, tiers that go down in price, ...); their keys
are mapped back to lines here. Errors raise `CatalogError`; warnings come back in `LoadedCatalog`.

Amounts may be written as integers, decimal strings or YAML floats; a float is read through its
shortest text form (``str(0.1) == "0.1"``), so the amount stays exactly what the file says.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from upsell.config._yaml import (
    At,
    Reader,
    in_file_order,
    is_int,
    line_of,
    one_of,
    parse_yaml,
    plain,
    read_utf8,
    show,
)
from upsell.domain.catalog import (
    BUSINESS_MODELS,
    METRIC_KINDS,
    ActivationRule,
    AddOn,
    BusinessModel,
    CaseStudy,
    Catalog,
    Condition,
    ItemValue,
    Metric,
    MetricKind,
    Plan,
    Product,
    UsagePricedItem,
    UsageSignal,
    Window,
)
from upsell.domain.money import INTERVALS, FxRates, Interval, Money, is_currency
from upsell.errors import CatalogError, Problem

TOP_LEVEL_KEYS = (
    "currency",
    "business_model",
    "metrics",
    "signals",
    "activation",
    "plans",
    "add_ons",
    "products",
    "usage_pricing",
    "fx",
    "price_books",
    "case_studies",
)

SOURCE_KEYS = ("trait", "event", "property", "up", "down")

#: Stands in for an invalid base currency so that the rest of the file can still be checked; a
#: catalog is never built while any error stands, so it never leaks out.
_NO_CURRENCY = "XXX"


@dataclass(frozen=True)
class LoadedCatalog:
    """A catalog that passed every check, with the text it came from and its warnings."""

    catalog: Catalog
    text: str
    file: str
    warnings: tuple[Problem, ...]
    sha256: str


def load_catalog(path: str | os.PathLike[str]) -> LoadedCatalog:
    """Read and check a catalog.yaml; raise `CatalogError` listing every error found."""
    file = os.fspath(path)
    return parse_catalog(read_utf8(file, "the catalog", CatalogError), file)


def parse_catalog(text: str, file: str = "<catalog>") -> LoadedCatalog:
    """Check catalog YAML given as text; `file` is only used to name it in problems."""
    root = parse_yaml(text, file, CatalogError)
    reader = _CatalogReader(file)
    catalog = reader.read(root)
    if reader.errors or catalog is None:
        raise CatalogError(in_file_order(reader.errors))
    located = [
        replace(p, file=file, line=line_of(root, p.key) if p.line is None else p.line)
        for p in catalog.check()
    ]
    located = in_file_order(located)
    errors = [p for p in located if p.severity == "error"]
    if errors:
        raise CatalogError(errors)
    return LoadedCatalog(
        catalog=catalog,
        text=text,
        file=file,
        warnings=tuple(p for p in located if p.severity == "warning"),
        sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
    )


class _CatalogReader(Reader):
    """The first pass over catalog.yaml: shapes and types. Collects every error and builds what it
    can."""

    def currency(self, value: Any, at: At) -> str | None:
        if isinstance(value, str) and is_currency(str(value)):
            return str(value)
        hint = ""
        if isinstance(value, str) and is_currency(value.upper()):
            hint = f" (did you mean {value.upper()!r}?)"
        self.fail(
            at.key,
            at.line,
            f"unknown currency {show(value)}{hint}: expected an ISO 4217 code such as USD or EUR",
        )
        return None

    def prices(self, value: Any, at: At, currency: str) -> dict[Interval, Money]:
        out: dict[Interval, Money] = {}
        if not isinstance(value, Mapping):
            self.fail(
                at.key,
                at.line,
                f"must be a mapping of interval to amount such as {{month: 29}}, got {show(value)}",
            )
            return out
        if not value:
            self.fail(at.key, at.line, f"must give an amount for {one_of(INTERVALS)}")
        for name, v, price_at in self.entries(value, at, "intervals"):
            interval = next((i for i in INTERVALS if i == name), None)
            if interval is None:
                self.fail(
                    price_at.key,
                    price_at.line,
                    f"unknown interval {name!r}: expected {one_of(INTERVALS)}",
                )
                continue
            amount = self.amount(v, price_at)
            if amount is not None:
                out[interval] = Money(amount, currency)
        return out

    # -- the catalog ------------------------------------------------------------------------

    def read(self, root: Any) -> Catalog | None:
        if root is None:
            self.fail("", 1, "the catalog is empty: expected a mapping with currency and plans")
            return None
        top = self.fields(root, At("", 1), "the catalog", ("currency", "plans"), TOP_LEVEL_KEYS)
        if top is None:
            return None
        currency = self.get(top, "currency", self.currency)
        base = currency or _NO_CURRENCY
        business_model: BusinessModel | None = "saas"
        if "business_model" in top:
            business_model = self.choice(*top["business_model"], BUSINESS_MODELS)
        metrics = self.get(top, "metrics", self.metrics) or {}
        signals = self.get(top, "signals", self.signals) or {}
        activation = self.get(top, "activation", self.rule)
        plans = self.get(top, "plans", lambda v, at: self.plans(v, at, base)) or ()
        add_ons = self.get(top, "add_ons", lambda v, at: self.add_ons(v, at, base)) or ()
        products = self.get(top, "products", lambda v, at: self.products(v, at, base)) or ()
        usage = self.get(top, "usage_pricing", lambda v, at: self.usage(v, at, base)) or ()
        fx = self.get(top, "fx", lambda v, at: self.fx(v, at, base)) or {}
        books = self.get(top, "price_books", self.price_books) or {}
        case_studies = self.get(top, "case_studies", self.case_studies) or ()
        if self.errors or currency is None or business_model is None:
            return None
        return Catalog(
            currency=currency,
            business_model=business_model,
            metrics=metrics,
            signals=signals,
            activation=activation,
            plans=plans,
            add_ons=add_ons,
            products=products,
            usage_pricing=usage,
            fx=FxRates(currency, fx),
            price_books=books,
            case_studies=case_studies,
        )

    def metrics(self, value: Any, at: At) -> dict[str, Metric]:
        out: dict[str, Metric] = {}
        for metric_id, v, metric_at in self.entries(value, at, "metrics"):
            f = self.fields(v, metric_at, "a metric", ("kind", "source"), ("window",))
            if f is None:
                continue
            kind: MetricKind | None = None
            if "kind" in f:
                kind = self.choice(*f["kind"], METRIC_KINDS)
            source = None
            if "source" in f:
                source = self.fields(*f["source"], "a metric source", (), SOURCE_KEYS)
            window = self.get(f, "window", self.window)
            if kind is None or source is None:
                continue
            trait, event, prop, up, down = (
                self.get(source, name, self.text) for name in SOURCE_KEYS
            )
            out[metric_id] = Metric(metric_id, kind, trait, event, prop, window, up, down)
        return out

    def window(self, value: Any, at: At) -> Window:
        if value is None:
            return None
        if value == "billing_period":
            return "billing_period"
        if is_int(value) and value > 0:
            return int(value)
        self.fail(
            at.key,
            at.line,
            f"must be billing_period or a positive number of days, got {show(value)}",
        )
        return None

    def where(self, value: Any, at: At) -> dict[str, Any]:
        return {name: plain(v) for name, v, _ in self.entries(value, at, "event properties")}

    def signals(self, value: Any, at: At) -> dict[str, UsageSignal]:
        out: dict[str, UsageSignal] = {}
        for signal_id, v, signal_at in self.entries(value, at, "signals"):
            f = self.fields(
                v, signal_at, "a signal", ("event", "window_days"), ("where", "at_least")
            )
            if f is None:
                continue
            event = self.get(f, "event", self.text)
            where = self.get(f, "where", self.where) or {}
            at_least = self.count(*f["at_least"]) if "at_least" in f else 1
            window_days = self.get(f, "window_days", self.count)
            if event is not None and at_least is not None and window_days is not None:
                out[signal_id] = UsageSignal(signal_id, event, where, at_least, window_days)
        return out

    def rule(self, value: Any, at: At) -> ActivationRule | None:
        if value is None and at.key == "activation":
            return None  # `activation:` left empty: no activation rule
        f = self.fields(value, at, "an activation rule", (), ("all_of", "any_of"))
        if f is None:
            return None
        all_of = self.get(f, "all_of", self.rule_parts) or ()
        any_of = self.get(f, "any_of", self.rule_parts) or ()
        return ActivationRule(all_of, any_of)

    def rule_parts(self, value: Any, at: At) -> tuple[Condition | ActivationRule, ...]:
        out: list[Condition | ActivationRule] = []
        for v, part_at in self.items(value, at, "conditions"):
            part: Condition | ActivationRule | None
            if isinstance(v, Mapping) and "event" not in v and ("all_of" in v or "any_of" in v):
                part = self.rule(v, part_at)
            else:
                part = self.condition(v, part_at)
            if part is not None:
                out.append(part)
        return tuple(out)

    def condition(self, value: Any, at: At) -> Condition | None:
        f = self.fields(
            value,
            at,
            "a condition (or a nested rule with all_of/any_of)",
            ("event",),
            ("at_least", "where", "within_days"),
        )
        if f is None:
            return None
        event = self.get(f, "event", self.text)
        at_least = self.count(*f["at_least"]) if "at_least" in f else 1
        where = self.get(f, "where", self.where) or {}
        within_days = None
        if "within_days" in f and f["within_days"][0] is not None:
            within_days = self.count(*f["within_days"])
        if event is None or at_least is None:
            return None
        return Condition(event, at_least, where, within_days)

    def limits(self, value: Any, at: At) -> dict[str, int]:
        out: dict[str, int] = {}
        for metric, v, limit_at in self.entries(value, at, "metric limits"):
            if v is None:
                continue  # null: unlimited, the same as leaving the metric out
            if is_int(v) and v >= 0:
                out[metric] = int(v)
            else:
                self.fail(
                    limit_at.key,
                    limit_at.line,
                    f"must be a non-negative integer, or null for unlimited, got {show(v)}",
                )
        return out

    def grants(self, value: Any, at: At) -> dict[str, int]:
        out: dict[str, int] = {}
        for metric, v, grant_at in self.entries(value, at, "metric grants"):
            amount = self.count(v, grant_at)
            if amount is not None:
                out[metric] = amount
        return out

    def plans(self, value: Any, at: At, currency: str) -> tuple[Plan, ...]:
        out = []
        for tier, (v, plan_at) in enumerate(self.items(value, at, "plans")):
            f = self.fields(
                v,
                plan_at,
                "a plan",
                ("id", "price"),
                ("name", "limits", "features", "sales_assisted", "value", "stripe"),
            )
            if f is None:
                continue
            plan_id = self.get(f, "id", self.text)
            prices = self.get(f, "price", lambda v, at: self.prices(v, at, currency)) or {}
            name = self.get(f, "name", self.text) or plan_id
            limits = self.get(f, "limits", self.limits) or {}
            features = frozenset(self.get(f, "features", self.texts) or ())
            sales_assisted = self.get(f, "sales_assisted", self.flag) or False
            value = self.get(f, "value", lambda v, at: self.value(v, at, currency))
            stripe = self.get(f, "stripe", self.stripe) or ()
            if plan_id is not None and name is not None:
                out.append(
                    Plan(
                        plan_id, name, tier, prices, limits, features, sales_assisted, value, stripe
                    )
                )
        return tuple(out)

    def add_ons(self, value: Any, at: At, currency: str) -> tuple[AddOn, ...]:
        out = []
        for v, add_on_at in self.items(value, at, "add-ons"):
            f = self.fields(
                v,
                add_on_at,
                "an add-on",
                ("id", "price"),
                ("name", "requires", "grants", "features", "goals", "value", "stripe"),
            )
            if f is None:
                continue
            add_on_id = self.get(f, "id", self.text)
            prices = self.get(f, "price", lambda v, at: self.prices(v, at, currency)) or {}
            name = self.get(f, "name", self.text) or add_on_id
            requires = self.get(f, "requires", self.texts) or ()
            grants = self.get(f, "grants", self.grants) or {}
            features = frozenset(self.get(f, "features", self.texts) or ())
            goals = frozenset(self.get(f, "goals", self.texts) or ())
            value = self.get(f, "value", lambda v, at: self.value(v, at, currency))
            stripe = self.get(f, "stripe", self.stripe) or ()
            if add_on_id is not None and name is not None:
                out.append(
                    AddOn(add_on_id, name, prices, requires, grants, features, goals, value, stripe)
                )
        return tuple(out)

    def products(self, value: Any, at: At, currency: str) -> tuple[Product, ...]:
        out = []
        for v, product_at in self.items(value, at, "products"):
            f = self.fields(
                v,
                product_at,
                "a product",
                ("id", "price"),
                ("name", "goals", "fits", "features", "value", "stripe"),
            )
            if f is None:
                continue
            product_id = self.get(f, "id", self.text)
            prices = self.get(f, "price", lambda v, at: self.prices(v, at, currency)) or {}
            name = self.get(f, "name", self.text) or product_id
            goals = frozenset(self.get(f, "goals", self.texts) or ())
            fits = self.get(f, "fits", lambda v, at: self.fields(v, at, "fits", (), ("signals",)))
            signals = self.get(fits or {}, "signals", self.texts) or ()
            features = frozenset(self.get(f, "features", self.texts) or ())
            value = self.get(f, "value", lambda v, at: self.value(v, at, currency))
            stripe = self.get(f, "stripe", self.stripe) or ()
            if product_id is not None and name is not None:
                out.append(
                    Product(product_id, name, prices, goals, signals, features, value, stripe)
                )
        return tuple(out)

    def value(self, value: Any, at: At, currency: str) -> ItemValue | None:
        """``value: {hours_saved_per_month, revenue_per_month}``: what the item is worth."""
        f = self.fields(value, at, "value", (), ("hours_saved_per_month", "revenue_per_month"))
        if f is None:
            return None
        hours = self.get(f, "hours_saved_per_month", lambda v, a: self.amount(v, a, positive=True))
        revenue = self.get(f, "revenue_per_month", lambda v, a: self.amount(v, a, positive=True))
        if hours is None and revenue is None:
            return None
        return ItemValue(hours, None if revenue is None else Money(revenue, currency))

    def stripe(self, value: Any, at: At) -> tuple[str, ...]:
        """``stripe: {prices: [price_1Pq..., pro_monthly]}``: the Stripe price ids or lookup keys
        billed as this item (docs/service.md, "Stripe")."""
        f = self.fields(value, at, "stripe", ("prices",))
        if f is None or "prices" not in f:
            return ()
        out: list[str] = []
        for v, price_at in self.items(*f["prices"], "Stripe price ids or lookup keys"):
            price = self.text(v, price_at)
            if price is None:
                continue
            if price != price.strip():
                self.fail(price_at.key, price_at.line, f"{price!r} has spaces around it")
            elif price in out:
                self.fail(price_at.key, price_at.line, f"{price!r} is listed twice")
            else:
                out.append(price)
        return tuple(out)

    def usage(self, value: Any, at: At, currency: str) -> tuple[UsagePricedItem, ...]:
        out = []
        for v, usage_at in self.items(value, at, "usage-priced items"):
            f = self.fields(
                v, usage_at, "a usage-priced item", ("id", "unit_price", "metric"), ("name",)
            )
            if f is None:
                continue
            usage_id = self.get(f, "id", self.text)
            unit_price = self.get(f, "unit_price", self.amount)
            metric = self.get(f, "metric", self.text)
            name = self.get(f, "name", self.text) or usage_id
            if usage_id and name and metric and unit_price is not None:
                out.append(UsagePricedItem(usage_id, name, Money(unit_price, currency), metric))
        return tuple(out)

    def fx(self, value: Any, at: At, base: str) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for code, v, rate_at in self.entries(value, at, "currencies"):
            currency = self.currency(code, rate_at)
            rate = self.amount(v, rate_at, positive=True)
            if currency is None or rate is None:
                continue
            if currency == base and rate != 1:
                self.fail(
                    rate_at.key,
                    rate_at.line,
                    f"{base} is the catalog currency: its rate is 1 by definition, got {rate}",
                )
                continue
            out[currency] = rate
        return out

    def price_books(self, value: Any, at: At) -> dict[str, dict[str, Mapping[Interval, Money]]]:
        out: dict[str, dict[str, Mapping[Interval, Money]]] = {}
        for code, v, book_at in self.entries(value, at, "currencies"):
            currency = self.currency(code, book_at)
            book: dict[str, Mapping[Interval, Money]] = {
                item_id: self.prices(prices, item_at, currency or _NO_CURRENCY)
                for item_id, prices, item_at in self.entries(v, book_at, "items")
            }
            if currency is not None:
                out[currency] = book
        return out

    def case_studies(self, value: Any, at: At) -> tuple[CaseStudy, ...]:
        out = []
        for v, case_at in self.items(value, at, "case studies"):
            f = self.fields(v, case_at, "a case study", ("industry", "customer", "result"))
            if f is None:
                continue
            industry, customer, result = (
                self.get(f, name, self.text) for name in ("industry", "customer", "result")
            )
            if industry is not None and customer is not None and result is not None:
                out.append(CaseStudy(industry, customer, result))
        return tuple(out)
