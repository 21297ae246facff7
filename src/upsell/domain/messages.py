"""The facts a message is written from: the customer's own numbers and the value of the offer (S6).

`message_facts` turns a decision into the plain values a message template fills in: who the account
is, what it is offered at which price (the catalog's price book for the account's currency, S17),
what the offer adds (features, higher limits), the reasons with their numbers, a case study from the
account's industry, the trial, the discount and the deadline. It formats nothing: the templates
format money, numbers and dates for the account's locale (upsell.templates), so that every language
gets its own conventions from CLDR.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from babel import Locale, UnknownLocaleError

from upsell.domain.catalog import AddOn, Catalog, Plan, Product
from upsell.domain.decisions import Decision
from upsell.domain.money import MONTHS_IN_INTERVAL, Interval, Money
from upsell.domain.opportunities import Opportunity
from upsell.domain.opportunities.saves import MOTIVES
from upsell.domain.signals import AccountSignals
from upsell.domain.wording import feature_name, metric_name

#: The languages upsell ships message catalogs for; any other falls back to English.
LANGUAGES = ("en", "nl", "it", "nb", "de", "fr")
DEFAULT_LANGUAGE = "en"


@dataclass(frozen=True)
class Limit:
    """A limit the offer raises: `before` and `after` (None: unlimited)."""

    metric: str
    label: str
    before: float | None
    after: float | None


def locale_for(language: str | None, country: str | None) -> str:
    """The CLDR locale of an account: its language, in its country when CLDR knows that pair
    (``nl`` + ``BE`` -> ``nl_BE``; ``no`` is read as ``nb``). Unknown: English."""
    lang = (language or DEFAULT_LANGUAGE).replace("-", "_").split("_")[0].lower()
    lang = {"no": "nb", "nn": "nb"}.get(lang, lang)
    if country:
        try:
            return str(Locale.parse(f"{lang}_{country.upper()}"))
        except (UnknownLocaleError, ValueError):
            pass
    try:
        return str(Locale.parse(lang))
    except (UnknownLocaleError, ValueError):
        return DEFAULT_LANGUAGE


def known_locale(text: str) -> bool:
    """Whether CLDR knows `text` as a locale (``de``, ``nl_BE``, ``pt-BR``)."""
    try:
        Locale.parse(text.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return False
    return True


def language_of(locale: str) -> str:
    """The message catalog a locale reads: ``nl_BE`` -> ``nl``; unsupported -> ``en``."""
    lang = locale.split("_")[0]
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


def expires_at(deadline: date | None) -> datetime | None:
    """The instant an offer ends: the end of its deadline day, UTC."""
    if deadline is None:
        return None
    return datetime.combine(deadline + timedelta(days=1), time(), UTC)


def message_facts(
    decision: Decision,
    signals: AccountSignals,
    catalog: Catalog,
    *,
    account_name: str | None = None,
) -> dict[str, Any]:
    """The values a template fills in (docs/decisions.md lists them); money as `Money`, dates as
    `date`, reasons as dicts with their numbers."""
    o = decision.opportunity
    currency = o.expected_mrr_delta.currency
    interval: Interval = "year" if signals.plan_interval == "year" else "month"
    item = catalog.item(o.item_id)
    from_item = catalog.item(o.from_item_id) if o.from_item_id else None
    price = catalog.monthly_price(o.item_id, currency, interval)
    case = next((c for c in catalog.case_studies if c.industry == signals.industry), None)
    return {
        "account": {
            "id": signals.account_id,
            "name": account_name or signals.account_id,
            "industry": signals.industry,
            "employees": signals.employees,
            "tenure_days": signals.tenure_days,
        },
        "kind": o.kind,
        "offer_id": o.offer_id,
        "playbook": decision.playbook.id,
        "placement": decision.placement,
        "variant": decision.variant,
        "item": {
            "id": o.item_id,
            "name": item.name if item is not None else o.item_id,
            "kind": catalog.kind_of(o.item_id) or "item",
            "price": price,
            "interval": interval,
            "months_in_interval": MONTHS_IN_INTERVAL[interval],
        },
        "from_item": None if from_item is None else {"id": from_item.id, "name": from_item.name},
        "save": _save(o, item, from_item),
        "delta": o.expected_mrr_delta,
        "reasons": [_reason(r.to_json()) for r in o.reasons],
        "gained": _gained(catalog, signals, from_item, item, {r.metric for r in o.reasons}),
        "value": _value(catalog, item, price),
        "case_study": None
        if case is None
        else {"customer": case.customer, "result": case.result, "industry": case.industry},
        "trial_days": decision.trial_days if o.kind != "save" else 0,
        "discount_percent": decision.discount_percent,
        "discount_months": decision.discount_months,
        "promotion": decision.promotion.id if decision.promotion is not None else None,
        "deadline": decision.deadline,
        "checkout": {
            "account_id": signals.account_id,
            "item_id": o.item_id,
            "offer_id": o.offer_id,
            "from_item_id": o.from_item_id or "",
            "kind": o.kind,
            "trial_days": str(decision.trial_days),
            "variant": decision.variant or "",
        },
    }


def _save(o: Opportunity, item: object, from_item: object) -> dict[str, Any] | None:
    """What a save answers, for its wording: `request` (``cancel``, ``downgrade``, or ``risk``
    when nothing was asked), `move` (``keep`` the plan, a ``lower`` or ``higher`` plan, or
    ``add`` an add-on), `to_plan` (the name of the plan a downgrade asked for) and `motive`
    (why it asked to cancel: ``too_expensive``, ``missing_feature``, ``not_using``)."""
    if o.kind != "save":
        return None
    codes = [r.code for r in o.reasons]
    request = (
        "cancel"
        if "cancel_requested" in codes
        else "downgrade"
        if "downgrade_requested" in codes
        else "risk"
    )
    if o.item_id == o.from_item_id:
        move = "keep"
    elif isinstance(item, Plan) and isinstance(from_item, Plan):
        move = "lower" if item.tier < from_item.tier else "higher"
    else:
        move = "add"
    down = next((r for r in o.reasons if r.code == "downgrade_requested"), None)
    to_plan = down.values.get("to_plan_name", down.values.get("to_plan")) if down else None
    motive = next((c for c in codes if c in MOTIVES), None)
    return {"request": request, "move": move, "to_plan": to_plan, "motive": motive}


def _value(catalog: Catalog, item: object, price: Money | None) -> dict[str, Any] | None:
    """The catalog's value of the item (S6): hours saved a month, revenue a month in the price's
    currency, and the ROI (revenue over price) when both are known."""
    value = item.value if isinstance(item, Plan | AddOn | Product) else None
    if value is None:
        return None
    revenue = None
    if value.revenue_per_month is not None:
        currency = price.currency if price is not None else catalog.currency
        revenue = catalog.fx.convert(value.revenue_per_month, currency)
    roi = None
    if revenue is not None and price is not None and price.amount > 0:
        roi = float(revenue.amount / price.amount)
    hours = value.hours_saved_per_month
    return {"hours_saved": None if hours is None else float(hours), "revenue": revenue, "roi": roi}


def _reason(j: Mapping[str, object]) -> dict[str, Any]:
    metric = j.get("metric")
    feature = j.get("feature")
    values = {k: v for k, v in j.items() if k not in ("code", "metric", "feature", "text")}
    return {
        "code": j["code"],
        "metric": metric,
        "metric_label": metric_name(metric) if isinstance(metric, str) else None,
        "feature": feature,
        "feature_label": feature_name(feature) if isinstance(feature, str) else None,
        "values": values,
        "text": j["text"],
    }


def _gained(
    catalog: Catalog,
    signals: AccountSignals,
    from_item: object,
    item: object,
    mentioned: set[str | None],
) -> dict[str, list[Any]]:
    """What the offered item adds: features the account lacks, and the limits it raises — those
    the reasons speak of when they speak of any (a message about seats need not list storage)."""
    have: set[str] = set()
    current = from_item if isinstance(from_item, Plan) else None
    if current is None and signals.plan_id:
        named = catalog.plan(signals.plan_id)
        current = named if isinstance(named, Plan) else None
    if current is not None:
        have |= current.features
    for h in signals.holdings:
        held = catalog.item(h.item_id)
        if isinstance(held, AddOn | Product):
            have |= held.features
    features: list[str] = []
    limits: list[Limit] = []
    if isinstance(item, Plan | AddOn | Product):
        features = [feature_name(f) for f in sorted(item.features - have)]
    if isinstance(item, Plan):
        for metric, u in sorted(signals.metrics.items()):
            after = item.limits.get(metric)
            before = u.limit
            if before is not None and (after is None or after > before):
                limits.append(Limit(metric, metric_name(metric), before, after))
    elif isinstance(item, AddOn):
        for metric, grant in sorted(item.grants.items()):
            usage = signals.metrics.get(metric)
            before = usage.limit if usage is not None else None
            if before is not None:
                limits.append(Limit(metric, metric_name(metric), before, before + grant))
    if any(x.metric in mentioned for x in limits):
        limits = [x for x in limits if x.metric in mentioned]
    return {"features": features, "limits": limits}
