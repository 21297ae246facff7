"""The report (data-contract.md, report.json): typed, with its JSON form in one place.

`upsell.flows.report.build_report` fills a `Report` from the engine's tables and the formulas of
`upsell.domain.metrics`; the command line prints it, `upsell.report` draws it as a page, and
`Report.to_json` writes report.json. `Report.from_json` reads that form back (a page can be drawn
from a saved report.json). Money is a `Decimal` in the base currency, rounded half-even to cents;
ratios are fractions (1.04 = 104 %); None is a number that does not exist (no cohort to divide by).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from upsell.domain.calendar import iso
from upsell.domain.metrics import CAUSES, Cause, MetricSettings, TimeToUpsell, ratio

JSON = dict[str, Any]


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _decimal(value: Any) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


def _required(value: Any) -> Decimal:
    return Decimal(str(value))


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _time_to_upsell(j: Mapping[str, Any]) -> TimeToUpsell:
    def day(key: str) -> int | None:
        value = j.get(key)
        return None if value is None else int(value)

    return TimeToUpsell(day("median"), day("p25"), day("p75"), int(j.get("upsells") or 0))


@dataclass(frozen=True)
class Month:
    """One calendar month: MRR at its start and end, the movements and expansion by cause, paying
    accounts at its end, NDR and GRR of its starting cohort and over the trailing twelve months,
    and the headline ratios (metrics.md)."""

    month: str  # YYYY-MM
    mrr_start: Decimal
    mrr_end: Decimal
    new: Decimal
    reactivation: Decimal
    expansion: Decimal
    expansion_by_cause: Mapping[Cause, Decimal]
    contraction: Decimal
    churn: Decimal
    paying_accounts: int
    ndr: float | None
    grr: float | None
    arr: Decimal
    arpa: Decimal | None
    quick_ratio: float | None
    ndr_ttm: float | None
    grr_ttm: float | None
    upgrades: int
    upsell_conversion: float | None

    def to_json(self) -> JSON:
        money = ("mrr_start", "mrr_end", "new", "reactivation", "expansion")
        return {
            "month": self.month,
            **{k: str(getattr(self, k)) for k in money},
            "expansion_by_cause": {c: str(v) for c, v in self.expansion_by_cause.items()},
            "contraction": str(self.contraction),
            "churn": str(self.churn),
            "paying_accounts": self.paying_accounts,
            "ndr": self.ndr,
            "grr": self.grr,
            "arr": str(self.arr),
            "arpa": _money(self.arpa),
            "quick_ratio": self.quick_ratio,
            "ndr_ttm": self.ndr_ttm,
            "grr_ttm": self.grr_ttm,
            "upgrades": self.upgrades,
            "upsell_conversion": self.upsell_conversion,
        }

    @classmethod
    def from_json(cls, j: Mapping[str, Any]) -> Month:
        causes = j.get("expansion_by_cause") or {}
        return cls(
            month=str(j["month"]),
            mrr_start=_required(j["mrr_start"]),
            mrr_end=_required(j["mrr_end"]),
            new=_required(j["new"]),
            reactivation=_required(j["reactivation"]),
            expansion=_required(j["expansion"]),
            expansion_by_cause={c: _required(causes[c]) for c in CAUSES if c in causes},
            contraction=_required(j["contraction"]),
            churn=_required(j["churn"]),
            paying_accounts=int(j["paying_accounts"]),
            ndr=_float(j.get("ndr")),
            grr=_float(j.get("grr")),
            arr=_required(j["arr"]),
            arpa=_decimal(j.get("arpa")),
            quick_ratio=_float(j.get("quick_ratio")),
            ndr_ttm=_float(j.get("ndr_ttm")),
            grr_ttm=_float(j.get("grr_ttm")),
            upgrades=int(j.get("upgrades") or 0),
            upsell_conversion=_float(j.get("upsell_conversion")),
        )


@dataclass(frozen=True)
class Summary:
    """The period's headline numbers: the last month's MRR, ARR, paying accounts and ARPA, the
    trailing-twelve-month NDR and GRR, and the period's quick ratio, LTV, upsell conversion, average
    upgrade, time to upsell and reach (metrics.md)."""

    mrr: Decimal
    arr: Decimal
    paying_accounts: int
    arpa: Decimal | None
    ndr_ttm: float | None
    grr_ttm: float | None
    quick_ratio: float | None
    ltv: Decimal | None
    ltv_uplift: Decimal | None
    upsell_conversion: float | None
    average_upgrade_value: Decimal | None
    time_to_upsell_days: TimeToUpsell
    reach: float | None

    def to_json(self) -> JSON:
        return {
            "mrr": str(self.mrr),
            "arr": str(self.arr),
            "paying_accounts": self.paying_accounts,
            "arpa": _money(self.arpa),
            "ndr_ttm": self.ndr_ttm,
            "grr_ttm": self.grr_ttm,
            "quick_ratio": self.quick_ratio,
            "ltv": _money(self.ltv),
            "ltv_uplift": _money(self.ltv_uplift),
            "upsell_conversion": self.upsell_conversion,
            "average_upgrade_value": _money(self.average_upgrade_value),
            "time_to_upsell_days": asdict(self.time_to_upsell_days),
            "reach": self.reach,
        }

    @classmethod
    def from_json(cls, j: Mapping[str, Any]) -> Summary:
        return cls(
            mrr=_required(j["mrr"]),
            arr=_required(j["arr"]),
            paying_accounts=int(j["paying_accounts"]),
            arpa=_decimal(j.get("arpa")),
            ndr_ttm=_float(j.get("ndr_ttm")),
            grr_ttm=_float(j.get("grr_ttm")),
            quick_ratio=_float(j.get("quick_ratio")),
            ltv=_decimal(j.get("ltv")),
            ltv_uplift=_decimal(j.get("ltv_uplift")),
            upsell_conversion=_float(j.get("upsell_conversion")),
            average_upgrade_value=_decimal(j.get("average_upgrade_value")),
            time_to_upsell_days=_time_to_upsell(j.get("time_to_upsell_days") or {}),
            reach=_float(j.get("reach")),
        )


@dataclass(frozen=True)
class Funnel:
    """Offers of one kind, channel, playbook or variant: the (account, run) pairs eligible (an
    offer decided, held out, or refused by a guardrail), the offers contacted (delivered, not held
    out), opened or clicked, clicked, converted within the attribution window, and still pending
    (their window is still open); conversion = converted / (contacted - pending). Beside the
    funnel, no step of it: the contacted offers dismissed (closed by the customer within the
    window; one may still have been clicked or converted)."""

    eligible: int
    contacted: int
    opened: int
    clicked: int
    converted: int
    pending: int
    dismissed: int
    conversion: float | None

    @property
    def dismissal(self) -> float | None:
        """The share of the contacted offers that were dismissed (None when none was contacted)."""
        return ratio(self.dismissed, self.contacted)

    @classmethod
    def from_json(cls, j: Mapping[str, Any]) -> Funnel:
        """A funnel row; a count it lacks is 0 (a report.json written before ``dismissed``)."""
        counts = ("eligible", "contacted", "opened", "clicked", "converted", "pending", "dismissed")
        values = {k: int(j.get(k) or 0) for k in counts}
        return cls(**values, conversion=_float(j.get("conversion")))


FUNNELS = ("by_kind", "by_channel", "by_playbook", "by_variant")


@dataclass(frozen=True)
class Offers:
    """The offer funnel by kind, channel, playbook and variant (``experiment/variant``)."""

    by_kind: Mapping[str, Funnel] = field(default_factory=dict)
    by_channel: Mapping[str, Funnel] = field(default_factory=dict)
    by_playbook: Mapping[str, Funnel] = field(default_factory=dict)
    by_variant: Mapping[str, Funnel] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in FUNNELS)

    def to_json(self) -> JSON:
        return {name: {k: asdict(f) for k, f in getattr(self, name).items()} for name in FUNNELS}

    @classmethod
    def from_json(cls, j: Mapping[str, Any]) -> Offers:
        return cls(
            **{
                name: {str(k): Funnel.from_json(v) for k, v in (j.get(name) or {}).items()}
                for name in FUNNELS
            }
        )


@dataclass(frozen=True)
class Incremental:
    """What the offers earned over the holdout (metrics.md): incremental expansion MRR and its
    interval (None when a group is too small for one), the groups' sizes and per-account means."""

    expansion_mrr: Decimal
    ci_low: Decimal | None
    ci_high: Decimal | None
    treated_accounts: int
    holdout_accounts: int
    per_account_treated: Decimal
    per_account_holdout: Decimal
    confidence: float

    def to_json(self) -> JSON:
        return {
            "expansion_mrr": str(self.expansion_mrr),
            "ci_low": _money(self.ci_low),
            "ci_high": _money(self.ci_high),
            "treated_accounts": self.treated_accounts,
            "holdout_accounts": self.holdout_accounts,
            "per_account_treated": str(self.per_account_treated),
            "per_account_holdout": str(self.per_account_holdout),
            "confidence": self.confidence,
        }

    @classmethod
    def from_json(cls, j: Mapping[str, Any]) -> Incremental | None:
        if not j or j.get("expansion_mrr") is None:
            return None
        return cls(
            expansion_mrr=_required(j["expansion_mrr"]),
            ci_low=_decimal(j.get("ci_low")),
            ci_high=_decimal(j.get("ci_high")),
            treated_accounts=int(j["treated_accounts"]),
            holdout_accounts=int(j["holdout_accounts"]),
            per_account_treated=_required(j["per_account_treated"]),
            per_account_holdout=_required(j["per_account_holdout"]),
            confidence=float(j.get("confidence") or 0.95),
        )


@dataclass(frozen=True)
class CohortAge:
    """A signup cohort `age` months after its signup month: NDR and logo retention against the
    accounts that paid at the end of the signup month, its MRR and paying accounts, and the share
    of its accounts that used a feature that month (None without usage data)."""

    age: int
    ndr: float | None
    logo_retention: float | None
    mrr: Decimal
    paying_accounts: int
    feature_adoption: float | None

    @classmethod
    def from_json(cls, j: Mapping[str, Any]) -> CohortAge:
        return cls(
            age=int(j["age"]),
            ndr=_float(j.get("ndr")),
            logo_retention=_float(j.get("logo_retention")),
            mrr=_required(j.get("mrr") or 0),
            paying_accounts=int(j.get("paying_accounts") or 0),
            feature_adoption=_float(j.get("feature_adoption")),
        )

    def to_json(self) -> JSON:
        return {**asdict(self), "mrr": str(self.mrr)}


@dataclass(frozen=True)
class Cohort:
    """The accounts that signed up in one month (`cohort`, YYYY-MM), by age."""

    cohort: str
    accounts: int
    ages: tuple[CohortAge, ...]

    def to_json(self) -> JSON:
        return {
            "cohort": self.cohort,
            "accounts": self.accounts,
            "ages": [a.to_json() for a in self.ages],
        }

    @classmethod
    def from_json(cls, j: Mapping[str, Any]) -> Cohort:
        return cls(
            cohort=str(j["cohort"]),
            accounts=int(j["accounts"]),
            ages=tuple(CohortAge.from_json(a) for a in j.get("ages") or ()),
        )


@dataclass(frozen=True)
class TopOpportunity:
    """One of the opportunities or offers listed at the end of the report, and why."""

    account_id: str
    kind: str
    offer_id: str
    expected_mrr_delta: Decimal
    currency: str
    score: float
    sentence: str

    @classmethod
    def from_line(cls, line: Mapping[str, Any]) -> TopOpportunity:
        """From an opportunity or decision line (data-contract.md): the sentence is the line's
        own, or its reasons' texts joined."""
        reasons = line.get("reasons") or []
        sentence = line.get("sentence") or "; ".join(str(r.get("text", "")) for r in reasons)
        return cls(
            account_id=str(line["account_id"]),
            kind=str(line["kind"]),
            offer_id=str(line["offer_id"]),
            expected_mrr_delta=_required(line["expected_mrr_delta"]),
            currency=str(line["currency"]),
            score=float(line["score"]),
            sentence=str(sentence),
        )

    def to_json(self) -> JSON:
        return {**asdict(self), "expected_mrr_delta": str(self.expected_mrr_delta)}


@dataclass(frozen=True)
class Report:
    """The revenue report of the months from `first`'s to `last`'s (data-contract.md)."""

    currency: str
    locale: str
    first: date
    last: date
    generated_at: datetime
    workspace: str
    settings: MetricSettings
    summary: Summary
    months: tuple[Month, ...]
    offers: Offers
    incremental: Incremental | None
    cohorts: tuple[Cohort, ...]
    top_opportunities: tuple[TopOpportunity, ...]

    def to_json(self) -> JSON:
        """report.json: every key of data-contract.md's report, in its order."""
        return {
            "currency": self.currency,
            "locale": self.locale,
            "from": self.first.isoformat(),
            "to": self.last.isoformat(),
            "generated_at": iso(self.generated_at.replace(microsecond=0)),
            "workspace": self.workspace,
            "settings": asdict(self.settings),
            "summary": self.summary.to_json(),
            "months": [m.to_json() for m in self.months],
            "offers": self.offers.to_json(),
            "incremental": {} if self.incremental is None else self.incremental.to_json(),
            "cohorts": [c.to_json() for c in self.cohorts],
            "top_opportunities": [t.to_json() for t in self.top_opportunities],
        }

    @classmethod
    def from_json(cls, j: Mapping[str, Any]) -> Report:
        """A report from its JSON form (report.json)."""
        s = j.get("settings") or {}
        settings = MetricSettings(
            **{k: s[k] for k in MetricSettings.__dataclass_fields__ if k in s}
        )
        return cls(
            currency=str(j["currency"]),
            locale=str(j.get("locale") or "en"),
            first=date.fromisoformat(str(j["from"])),
            last=date.fromisoformat(str(j["to"])),
            generated_at=datetime.fromisoformat(str(j["generated_at"])),
            workspace=str(j.get("workspace") or ""),
            settings=settings,
            summary=Summary.from_json(j["summary"]),
            months=tuple(Month.from_json(m) for m in j.get("months") or ()),
            offers=Offers.from_json(j.get("offers") or {}),
            incremental=Incremental.from_json(j.get("incremental") or {}),
            cohorts=tuple(Cohort.from_json(c) for c in j.get("cohorts") or ()),
            top_opportunities=tuple(
                TopOpportunity.from_line(t) for t in j.get("top_opportunities") or ()
            ),
        )
