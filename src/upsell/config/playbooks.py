"""Read the workspace's playbooks.yaml into `Playbooks`, naming file, line and key in every problem.

A workspace without a ``playbooks.yaml`` uses the built-in `DEFAULT_PLAYBOOKS`. Every section is
optional: an empty file means no playbooks with the default guardrails and settings. Given
``settings.contact_cost`` and ``guardrails.reach_days`` replace the defaults only for the channels
they name; given ``guardrails.caps`` replace the default caps entirely.

A trigger maps a fact (`upsell.domain.playbooks.FACTS`) to a test:

- a scalar: ``equals`` that value (for a fact that is a set, such as ``reasons``: ``any_of`` it);
- a list of text: ``any_of`` those values;
- a mapping with keys among ``at_least, at_most, any_of, none_of, equals``: one condition per key
  (``any_of`` and ``none_of`` take a list or a single value, kept as a tuple of text).

Reading follows catalog.yaml's loader, whose YAML and line-finding helpers it shares: the first
pass checks shapes and types (unknown and missing keys, ids, template names, dates, numbers); then
`Playbooks.check` and the checks here find what no single key shows (unknown channels,
placements and promotions, deadlines shorter than a channel's reach, promotion calendars, reason
codes no rule gives). Every error of both passes raises at once as `PlaybooksError`, in file order.
An entry the first pass had to drop does not shift the keys of the second pass, and a second-pass
problem about a key the first pass already reported is left out.

With a `Catalog`, trigger values it does not know are errors too: ``plan``, ``item_id`` and
``from_item_id`` values that are not its item ids, ``signals`` that are not its named signals.
``industry`` values no case study has are only warnings: `playbook_warnings` returns them, since
a playbook may well target an industry without social proof.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ruamel.yaml.scalarbool import ScalarBoolean

from upsell.config._yaml import (
    INDEX,
    At,
    Reader,
    is_int,
    line_of,
    parse_yaml,
    plain,
    read_utf8,
    show,
)
from upsell.domain.catalog import Catalog
from upsell.domain.offers import CHANNELS, PLACEMENTS
from upsell.domain.opportunities import REASON_CODES
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
from upsell.errors import PlaybooksError, Problem

PLAYBOOKS_FILE = "playbooks.yaml"
#: The built-in playbooks, used by a workspace without a playbooks.yaml of its own.
DEFAULT_PLAYBOOKS: Path = Path(__file__).parent.parent / "defaults" / "playbooks.yaml"

#: The sections of playbooks.yaml, in the order the docs list them.
SECTIONS = ("settings", "guardrails", "promotions", "playbooks")
SETTINGS_KEYS = ("holdout", "months_retained", "contact_cost", "checkout_url")
HOLDOUT_KEYS = ("share", "key")
GUARDRAILS_KEYS = ("caps", "dismissed_cooldown_days", "quiet", "promotions", "reach_days")
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
)
OFFER_KEYS = ("trial_days", "discount", "deadline_days", "promotion")
VARIANT_KEYS = ("id", "weight", "template", "placement", "offer")

#: Template names name files: lower-case letters, digits, ``_`` and ``-``.
TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9_\-]*")
#: Trigger facts whose values are catalog item ids.
ITEM_FACTS = ("plan", "item_id", "from_item_id")

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
#: ruamel reads an unquoted ``2024-02-30`` as a date and fails with a plain ValueError.
#: Stands in for a promotion's unreadable percent, so that the offers naming the promotion are
#: still checked; playbooks are never returned while any error stands, so it never leaks out.
_NO_PERCENT = Decimal(50)


@dataclass(frozen=True)
class LoadedPlaybooks:
    """Checked playbooks and where they came from; `default` when the built-in file was used."""

    playbooks: Playbooks
    file: str
    default: bool


def load_playbooks(
    folder: str | os.PathLike[str],
    *,
    catalog: Catalog | None = None,
    channels: tuple[str, ...] = CHANNELS,
) -> LoadedPlaybooks:
    """Read ``playbooks.yaml`` in the workspace folder, or the built-in default when there is none.

    Raises `PlaybooksError` listing every problem; see `parse_playbooks` for `catalog` and
    `channels`.
    """
    path = Path(folder) / PLAYBOOKS_FILE
    default = not path.exists()
    file = os.fspath(DEFAULT_PLAYBOOKS if default else path)
    text = read_utf8(file, "the playbooks", PlaybooksError)
    return LoadedPlaybooks(
        playbooks=parse_playbooks(text, file, catalog=catalog, channels=channels),
        file=file,
        default=default,
    )


def parse_playbooks(
    text: str,
    file: str = PLAYBOOKS_FILE,
    *,
    catalog: Catalog | None = None,
    channels: tuple[str, ...] = CHANNELS,
) -> Playbooks:
    """Check playbooks YAML given as text; `file` is only used to name it in problems.

    `channels` are the channel names playbooks may use (a plugin's channel joins the built-ins);
    with a `catalog`, trigger values it does not know are errors as well. Raises `PlaybooksError`
    with every error, sorted by line; warnings never raise (see `playbook_warnings`).
    """
    root = _root(text, file)
    if root is None:
        return Playbooks(playbooks=())
    reader = _PlaybooksReader(file)
    playbooks = reader.document(root)
    checked = [
        *playbooks.check(channels),
        *_check_channels(playbooks, channels),
        *_check_reasons(playbooks),
        *(p for p in _against_catalog(playbooks, catalog) if p.severity == "error"),
    ]
    located = []
    for problem in checked:
        key = _original_key(problem.key, reader.kept)
        if any(_related(key, e.key) for e in reader.errors):
            continue  # a consequence of an error the first pass reported
        located.append(replace(problem, key=key, file=file, line=line_of(root, key)))
    problems = [*reader.errors, *located]
    if problems:
        raise PlaybooksError(sorted(problems, key=lambda p: p.line or 0))
    return playbooks


def playbook_warnings(
    playbooks: Playbooks,
    catalog: Catalog,
    *,
    text: str | None = None,
    file: str = PLAYBOOKS_FILE,
) -> list[Problem]:
    """Warnings about checked `playbooks` against `catalog`: trigger industries no case study has.

    Give the playbooks' `text` to have each warning's line found; without it, lines are None.
    """
    warnings = [p for p in _against_catalog(playbooks, catalog) if p.severity == "warning"]
    root = _root(text, file) if text is not None else None
    return [
        replace(p, file=file, line=line_of(root, p.key) if root is not None else None)
        for p in warnings
    ]


# -- the first pass: shapes and types -------------------------------------------------------


def _root(text: str, file: str) -> Any:
    """The YAML document, or `PlaybooksError` naming where it is not YAML."""
    return parse_yaml(text, file, PlaybooksError)


class _PlaybooksReader(Reader):
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
        given["months_retained"] = self.get(f, "months_retained", self.number)
        costs = self.get(f, "contact_cost", lambda v, a: self.entries(v, a, "channels"))
        if costs is not None:
            read = {name: self.amount(v, cost_at) for name, v, cost_at in costs}
            given["contact_cost"] = MappingProxyType(
                {**DEFAULT_CONTACT_COST, **{k: v for k, v in read.items() if v is not None}}
            )
        given["checkout_url"] = self.get(f, "checkout_url", self.text)
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


# -- the second pass: what no single key shows ------------------------------------------------


def _check_channels(playbooks: Playbooks, channels: tuple[str, ...]) -> list[Problem]:
    """Channels and placements named by caps, contact costs and reach days."""
    known = tuple(dict.fromkeys((*CHANNELS, *channels)))
    listed = ", ".join(known)
    problems = []
    for k, cap in enumerate(playbooks.guardrails.caps):
        if cap.channel is not None and cap.channel not in known:
            problems.append(
                Problem(
                    f"unknown channel {cap.channel!r}; known: {listed}",
                    f"guardrails.caps[{k}].channel",
                )
            )
        allowed = PLACEMENTS.get(cap.channel or "")
        if cap.placement is not None and allowed is not None and cap.placement not in allowed:
            problems.append(
                Problem(
                    f"{cap.channel} has no placement {cap.placement!r}; choose {', '.join(allowed)}",
                    f"guardrails.caps[{k}].placement",
                )
            )
    for at, names in (
        ("settings.contact_cost", playbooks.settings.contact_cost),
        ("guardrails.reach_days", playbooks.guardrails.reach_days),
    ):
        for name in names:
            if name not in known:
                problems.append(
                    Problem(f"unknown channel {name!r}; known: {listed}", f"{at}.{name}")
                )
    return problems


def _check_reasons(playbooks: Playbooks) -> list[Problem]:
    """Reason codes in triggers that no opportunity rule gives."""
    problems = []
    for n, p in enumerate(playbooks.playbooks):
        for c in p.trigger:
            if c.fact != "reasons":
                continue
            for v in _texts(c.value):
                if v not in REASON_CODES:
                    hint = difflib.get_close_matches(v, REASON_CODES, n=1)
                    problems.append(
                        Problem(
                            f"unknown reason {v!r}"
                            + (f" (did you mean {hint[0]!r}?)" if hint else "")
                            + f"; known: {', '.join(REASON_CODES)}",
                            f"playbooks[{n}].trigger.reasons",
                        )
                    )
    return problems


def _against_catalog(playbooks: Playbooks, catalog: Catalog | None) -> list[Problem]:
    """Trigger values `catalog` does not know: errors for items and signals, warnings for
    industries without a case study."""
    if catalog is None:
        return []
    items = ", ".join(sorted(catalog.item_ids)) or "none"
    signals = ", ".join(catalog.signals) or "none are defined"
    industries = tuple(dict.fromkeys(c.industry for c in catalog.case_studies))
    problems = []
    for n, p in enumerate(playbooks.playbooks):
        for c in p.trigger:
            at = f"playbooks[{n}].trigger.{c.fact}"
            for v in _texts(c.value):
                if c.fact in ITEM_FACTS and catalog.item(v) is None:
                    problems.append(
                        Problem(f"{v!r} is not an item of the catalog; its items: {items}", at)
                    )
                elif c.fact == "signals" and v not in catalog.signals:
                    problems.append(
                        Problem(f"unknown signal {v!r}; the catalog's signals: {signals}", at)
                    )
                elif c.fact == "industry" and v not in industries:
                    have = ", ".join(industries) or "none"
                    problems.append(
                        Problem(
                            f"no case study of the catalog is in industry {v!r} "
                            f"(case studies' industries: {have})",
                            at,
                            severity="warning",
                        )
                    )
    return problems


def _texts(value: Value) -> tuple[str, ...]:
    if isinstance(value, tuple):
        return value
    return (value,) if isinstance(value, str) else ()


def _original_key(key: str, kept: Mapping[str, list[int]]) -> str:
    """`key` of the built value with the file's indices, through the reader's `kept` lists."""
    out, last = "", 0
    for m in INDEX.finditer(key):
        out += key[last : m.start()]
        index = int(m.group(1))
        indices = kept.get(out)
        if indices is not None and index < len(indices):
            index = indices[index]
        out += f"[{index}]"
        last = m.end()
    return out + key[last:]


def _related(key: str, other: str) -> bool:
    """Whether one key is the other or holds it (``a.b`` holds ``a.b.c`` and ``a.b[0]``)."""
    return _holds(key, other) or _holds(other, key)


def _holds(outer: str, inner: str) -> bool:
    return inner == outer or (outer != "" and inner.startswith((outer + ".", outer + "[")))
