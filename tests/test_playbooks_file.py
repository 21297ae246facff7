"""playbooks.yaml: the default file, trigger forms, every problem named by file, line and key,
checks against the catalog, and the domain's matching and checks."""

from __future__ import annotations

import os
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from upsell.config.catalog import parse_catalog
from upsell.config.playbooks import (
    DEFAULT_PLAYBOOKS,
    PLAYBOOKS_FILE,
    LoadedPlaybooks,
    load_playbooks,
    parse_playbooks,
    playbook_warnings,
)
from upsell.domain.catalog import Catalog
from upsell.domain.playbooks import (
    DEFAULT_CAPS,
    DEFAULT_CONTACT_COST,
    DEFAULT_REACH_DAYS,
    Cap,
    Condition,
    DecisionSettings,
    Experiment,
    Guardrails,
    Offer,
    Playbook,
    Playbooks,
    Promotion,
    PromotionRun,
    Variant,
)
from upsell.errors import PlaybooksError, Problem, UpsellError

ROOT = Path(__file__).resolve().parents[1]

BOOK = """\
playbooks:
  - id: p
    channel: email
    placement: email
    template: t
"""


def catalog() -> Catalog:
    path = ROOT / "examples" / "catalog.yaml"
    return parse_catalog(path.read_text(encoding="utf-8"), "examples/catalog.yaml").catalog


def problems(text: str, catalog: Catalog | None = None) -> list[Problem]:
    with pytest.raises(PlaybooksError) as raised:
        parse_playbooks(text, "playbooks.yaml", catalog=catalog)
    return raised.value.problems


def only_problem(text: str, catalog: Catalog | None = None) -> Problem:
    found = problems(text, catalog)
    assert len(found) == 1, found
    return found[0]


def where(p: Problem) -> tuple[str, int | None, str]:
    return p.file, p.line, p.key


def trigger(conditions: str) -> tuple[Condition, ...]:
    """The trigger of a playbook whose trigger section is `conditions` (indented 6 spaces)."""
    text = BOOK + "    trigger:\n" + conditions
    return parse_playbooks(text).playbooks[0].trigger


# -- the default file and where playbooks come from ---------------------------------------------


def test_the_default_file_loads_and_holds_what_its_yaml_says() -> None:
    text = DEFAULT_PLAYBOOKS.read_text(encoding="utf-8")
    books = parse_playbooks(text, os.fspath(DEFAULT_PLAYBOOKS), catalog=catalog())
    assert [p.id for p in books.playbooks] == [
        "enterprise-csm",
        "limit-reached-modal",
        "limit-approaching-banner",
        "usage-break-even-email",
        "save-help-csm",
        "save-discount",
        "save-modal",
        "save-at-risk-banner",
        "cross-sell-qbr",
        "cross-sell-email",
    ]
    modal = books.playbooks[1]
    assert (modal.channel, modal.placement, modal.template) == ("in_app", "modal", "limit_reached")
    assert modal.offer == Offer(trial_days=14)
    assert modal.experiment == Experiment(
        "limit-modal-trial-length", (Variant("A"), Variant("B", offer=Offer(trial_days=21)))
    )
    assert modal.with_variant(modal.experiment.variants[1]).offer.trial_days == 21
    assert books.playbooks[8].trigger == (
        Condition("kind", "equals", "cross_sell"),
        Condition("employees", "at_least", 50),
    )
    assert books.promotions == ()
    assert books.guardrails == Guardrails()
    assert books.guardrails.caps == DEFAULT_CAPS
    assert dict(books.guardrails.reach_days) == {
        "in_app": 7,
        "email": 3,
        "csm_task": 14,
        "webhook": 1,
    }
    assert books.settings == DecisionSettings()
    assert books.settings.contact_cost["email"] == Decimal("0.10")
    assert "csm_upgrade" in books.templates
    assert playbook_warnings(books, catalog(), text=text) == []


def test_a_workspace_without_playbooks_yaml_uses_the_default(tmp_path: Path) -> None:
    loaded = load_playbooks(tmp_path)
    assert loaded.default is True
    assert loaded.file == os.fspath(DEFAULT_PLAYBOOKS)
    assert len(loaded.playbooks.playbooks) == 10


def test_a_workspace_file_wins_over_the_default(tmp_path: Path) -> None:
    (tmp_path / PLAYBOOKS_FILE).write_text(BOOK, encoding="utf-8")
    loaded = load_playbooks(tmp_path)
    assert loaded == LoadedPlaybooks(
        playbooks=Playbooks((Playbook("p", "email", "email", "t"),)),
        file=os.fspath(tmp_path / PLAYBOOKS_FILE),
        default=False,
    )


def test_a_workspace_file_that_is_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    (tmp_path / PLAYBOOKS_FILE).write_bytes(b"playbooks: []\n# caf\xe9\n")
    with pytest.raises(PlaybooksError) as raised:
        load_playbooks(tmp_path)
    [p] = raised.value.problems
    assert (p.file, p.line) == (os.fspath(tmp_path / PLAYBOOKS_FILE), 2)


@pytest.mark.parametrize(
    "text", ["", "# nothing yet\n", "playbooks:\n", "playbooks: []\nsettings: {}\nguardrails:\n"]
)
def test_an_empty_file_or_section_means_no_playbooks_and_the_defaults(text: str) -> None:
    assert parse_playbooks(text) == Playbooks(playbooks=())


def test_contact_costs_and_reach_days_merge_over_the_defaults_and_caps_replace_them() -> None:
    books = parse_playbooks(
        "settings:\n"
        "  holdout: {share: 0.2}\n"
        "  months_retained: 6\n"
        "  contact_cost: {email: 0.25}\n"
        "guardrails:\n"
        "  caps: [{channel: email, max: 1, days: 7}]\n"
        "  dismissed_cooldown_days: 10\n"
        "  purchase_cooldown_days: 14\n"
        "  csm_owner_trait: owner\n"
        "  csm_task_open_days: 21\n"
        "  quiet: {signup_days: 3, open_ticket: false}\n"
        "  promotions: {max_per_12_months: 4}\n"
        "  reach_days: {email: 5}\n"
    )
    s, g = books.settings, books.guardrails
    assert (s.holdout_share, s.holdout_key, s.months_retained) == (0.2, "holdout", 6.0)
    assert dict(s.contact_cost) == {**DEFAULT_CONTACT_COST, "email": Decimal("0.25")}
    assert g.caps == (Cap(max=1, days=7, channel="email"),)
    assert (g.dismissed_cooldown_days, g.quiet_signup_days) == (10, 3)
    assert g.purchase_cooldown_days == 14
    assert (g.csm_owner_trait, g.csm_task_open_days) == ("owner", 21)
    assert (g.quiet_open_ticket, g.quiet_payment_failed) == (False, True)
    assert g.promotion_max_per_12_months == 4
    assert dict(g.reach_days) == {**DEFAULT_REACH_DAYS, "email": 5}


def test_promotion_days_may_be_quoted_or_not_and_offers_name_them() -> None:
    books = parse_playbooks(
        "promotions:\n"
        "  - id: spring\n"
        "    percent: 20\n"
        "    months: 3\n"
        "    runs:\n"
        "      - {from: 2025-03-01, to: '2025-03-14'}\n" + BOOK + "    offer: {promotion: spring}\n"
    )
    assert books.promotions == (
        Promotion("spring", Decimal(20), 3, (PromotionRun(date(2025, 3, 1), date(2025, 3, 14)),)),
    )
    assert books.playbooks[0].offer == Offer(promotion="spring")


def test_an_offer_with_a_discount_and_a_deadline() -> None:
    books = parse_playbooks(
        BOOK + "    offer: {discount: {percent: 15, months: 2}, deadline_days: 10}\n"
    )
    assert books.playbooks[0].offer == Offer(
        discount_percent=Decimal(15), discount_months=2, deadline_days=10
    )


# -- trigger forms ------------------------------------------------------------------------------


def test_a_scalar_is_equals() -> None:
    assert trigger("      route: csm\n      activated: true\n") == (
        Condition("route", "equals", "csm"),
        Condition("activated", "equals", True),
    )


def test_a_list_is_any_of() -> None:
    assert trigger("      kind: [upsell, add_on]\n") == (
        Condition("kind", "any_of", ("upsell", "add_on")),
    )


def test_a_scalar_for_a_set_fact_is_any_of_that_value() -> None:
    assert trigger("      reasons: near_limit\n") == (
        Condition("reasons", "any_of", ("near_limit",)),
    )


def test_a_mapping_gives_one_condition_per_op_and_numbers_stay_numbers() -> None:
    conditions = trigger(
        "      employees: {at_least: 10, at_most: 200}\n"
        "      score: {at_least: 0.5}\n"
        "      country: {none_of: NO}\n"
        "      industry: {any_of: [retail, ecommerce]}\n"
        "      signals: {equals: [inbound_leads]}\n"
    )
    assert conditions == (
        Condition("employees", "at_least", 10),
        Condition("employees", "at_most", 200),
        Condition("score", "at_least", 0.5),
        Condition("country", "none_of", ("NO",)),
        Condition("industry", "any_of", ("retail", "ecommerce")),
        Condition("signals", "equals", ("inbound_leads",)),
    )
    assert type(conditions[0].value) is int
    assert type(conditions[2].value) is float


# -- problems, each with file, line and key -----------------------------------------------------


def test_an_unknown_section_is_named_with_a_suggestion() -> None:
    p = only_problem("playbook: []\n")
    assert where(p) == ("playbooks.yaml", 1, "playbook")
    assert "did you mean 'playbooks'?" in p.message


def test_an_unknown_fact_lists_the_known_ones() -> None:
    p = only_problem(BOOK + "    trigger:\n      kind: upsell\n      employes: {at_least: 5}\n")
    assert where(p) == ("playbooks.yaml", 8, "playbooks[0].trigger.employes")
    assert "unknown fact 'employes'" in p.message
    assert "did you mean 'employees'?" in p.message
    assert "tenure_days" in p.message


def test_a_value_of_the_wrong_type_is_named() -> None:
    p = only_problem(BOOK + "    offer:\n      trial_days: two weeks\n")
    assert where(p) == ("playbooks.yaml", 7, "playbooks[0].offer.trial_days")
    assert "non-negative integer" in p.message


def test_a_number_fact_without_at_least_or_at_most_is_reported_by_the_check() -> None:
    p = only_problem(BOOK + "    trigger: {employees: 50}\n")
    assert where(p) == ("playbooks.yaml", 6, "playbooks[0].trigger.employees")
    assert "use at_least or at_most" in p.message


def test_a_flag_fact_takes_true_or_false() -> None:
    p = only_problem(BOOK + "    trigger: {activated: [yes]}\n")
    assert p.key == "playbooks[0].trigger.activated"
    assert "true or false" in p.message


def test_a_missing_required_key_is_named() -> None:
    p = only_problem("playbooks:\n  - id: p\n    channel: email\n    placement: email\n")
    assert where(p) == ("playbooks.yaml", 2, "playbooks[0].template")
    assert "needs 'template'" in p.message


@pytest.mark.parametrize(
    ("value", "message"),
    [("'2025-13-01'", "is no day"), ("next week", "YYYY-MM-DD"), ("2025-03-01 10:00:00", "10:00")],
)
def test_a_run_day_that_is_no_day_is_named(value: str, message: str) -> None:
    p = only_problem(
        "promotions:\n  - id: spring\n    percent: 20\n    runs:\n"
        f"      - from: {value}\n        to: 2025-03-14\n"
    )
    assert where(p) == ("playbooks.yaml", 5, "promotions[0].runs[0].from")
    assert message in p.message


def test_an_unquoted_impossible_date_is_named_by_its_line() -> None:
    p = only_problem(
        "promotions:\n  - id: spring\n    percent: 20\n    runs:\n"
        "      - {from: 2025-03-01, to: 2025-02-30}\n"
    )
    assert (p.file, p.line) == ("playbooks.yaml", 5)
    assert "invalid date" in p.message


def test_an_unknown_promotion_is_named() -> None:
    p = only_problem(BOOK + "    offer: {promotion: spring}\n")
    assert where(p) == ("playbooks.yaml", 6, "playbooks[0].offer.promotion")
    assert "unknown promotion 'spring'" in p.message


def test_a_placement_the_channel_does_not_offer_is_named() -> None:
    p = only_problem(BOOK.replace("placement: email", "placement: banner"))
    assert where(p) == ("playbooks.yaml", 4, "playbooks[0].placement")
    assert "email has no placement 'banner'" in p.message


def test_a_variant_placement_the_channel_does_not_offer_is_named() -> None:
    text = BOOK + (
        "    experiment:\n      id: e\n      variants:\n        - {id: A}\n"
        "        - {id: B, placement: modal}\n"
    )
    p = only_problem(text)
    assert where(p) == ("playbooks.yaml", 10, "playbooks[0].experiment.variants[1].placement")


def test_a_deadline_shorter_than_the_channel_reach_is_named() -> None:
    p = only_problem(BOOK + "    offer:\n      deadline_days: 2\n")
    assert where(p) == ("playbooks.yaml", 7, "playbooks[0].offer.deadline_days")
    assert "shorter than reaching an account by email takes (3 days" in p.message


def test_a_promotion_that_runs_too_often_is_named() -> None:
    text = (
        "promotions:\n"
        "  - id: sale\n"
        "    percent: 20\n"
        "    runs:\n"
        "      - {from: 2025-01-01, to: 2025-01-14}\n"
        "      - {from: 2025-05-01, to: 2025-05-14}\n"
        "      - {from: 2025-09-01, to: 2025-09-14}\n"
    )
    p = only_problem(text)
    assert where(p) == ("playbooks.yaml", 4, "promotions[0].runs")
    assert "runs 3 times in the 12 months from 2025-01-01; at most 2" in p.message
    assert parse_playbooks(text + "guardrails: {promotions: {max_per_12_months: 3}}\n")


def test_a_holdout_share_of_one_or_more_is_named() -> None:
    p = only_problem("settings:\n  holdout:\n    share: 1.5\n")
    assert where(p) == ("playbooks.yaml", 3, "settings.holdout.share")
    assert "below 1" in p.message


def test_a_holdout_share_per_kind_and_per_playbook_is_read() -> None:
    books = parse_playbooks(
        "settings:\n"
        "  holdout: {share: 0.2, kinds: {save: 0.03, cross_sell: 0.25}}\n"
        + BOOK
        + "    holdout: 0.01\n"
    )
    assert dict(books.settings.holdout_by_kind) == {"save": 0.03, "cross_sell": 0.25}
    assert books.playbooks[0].holdout == 0.01


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("settings:\n  holdout:\n    kinds: {save: 1}\n", 3, "settings.holdout.kinds.save"),
        ("settings:\n  holdout:\n    kinds: {saves: 0.1}\n", 3, "settings.holdout.kinds.saves"),
        (BOOK + "    holdout: -0.1\n", 6, "playbooks[0].holdout"),
    ],
)
def test_a_holdout_share_per_kind_or_playbook_out_of_range_or_of_no_kind_is_named(
    text: str, line: int, key: str
) -> None:
    p = only_problem(text)
    assert where(p) == ("playbooks.yaml", line, key)


def test_a_template_name_must_name_a_file() -> None:
    p = only_problem(BOOK.replace("template: t", "template: ../secret"))
    assert where(p) == ("playbooks.yaml", 5, "playbooks[0].template")
    assert "lower-case letters" in p.message


@pytest.mark.parametrize("value", ["''", "7", "[a]"])
def test_ids_are_non_empty_text(value: str) -> None:
    p = only_problem(BOOK.replace("id: p", f"id: {value}"))
    assert p.key == "playbooks[0].id"


def test_a_cap_on_an_unknown_channel_is_named() -> None:
    p = only_problem("guardrails:\n  caps:\n    - {channel: e-mail, max: 1, days: 7}\n")
    assert where(p) == ("playbooks.yaml", 3, "guardrails.caps[0].channel")


def test_a_channel_a_plugin_registers_is_accepted_when_named() -> None:
    text = BOOK.replace("channel: email", "channel: slack").replace("email\n", "dm\n")
    assert only_problem(text).key == "playbooks[0].channel"
    books = parse_playbooks(text, channels=("in_app", "email", "csm_task", "webhook", "slack"))
    assert books.playbooks[0].channel == "slack"


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    text = (
        "playbooks:\n"  # 1
        "  - id: broken\n"  # 2: no template
        "    channel: email\n"  # 3
        "    placement: email\n"  # 4
        "  - id: p\n"  # 5
        "    channel: in_app\n"  # 6
        "    placement: popup\n"  # 7: no such placement
        "    template: t\n"  # 8
        "    trigger: {colour: red}\n"  # 9: unknown fact
        "settings:\n"  # 10
        "  holdout: {share: 1.5}\n"  # 11: out of range
        "  months_retained: a year\n"  # 12: not a number
        "extra: 1\n"  # 13: unknown section
    )
    found = problems(text)
    assert [(p.line, p.key) for p in found] == [
        (2, "playbooks[0].template"),
        (7, "playbooks[1].placement"),
        (9, "playbooks[1].trigger.colour"),
        (11, "settings.holdout.share"),
        (12, "settings.months_retained"),
        (13, "extra"),
    ]
    assert all(p.file == "playbooks.yaml" for p in found)
    error = PlaybooksError(found)
    assert isinstance(error, UpsellError) and isinstance(error, ValueError)
    assert str(error).splitlines()[0] == (
        "playbooks.yaml:2: playbooks[0].template: a playbook needs 'template', which is missing"
    )


def test_a_consequence_of_a_reported_problem_is_not_reported_again() -> None:
    text = BOOK + "    experiment:\n      id: e\n      variants:\n        - {id: A}\n        - {}\n"
    p = only_problem(text)
    assert p.key == "playbooks[0].experiment.variants[1].id"


# -- against the catalog ------------------------------------------------------------------------


def test_a_plan_the_catalog_does_not_sell_is_an_error() -> None:
    text = BOOK + "    trigger:\n      plan: [basic, platinum]\n"
    assert parse_playbooks(text).playbooks[0].trigger
    p = only_problem(text, catalog())
    assert where(p) == ("playbooks.yaml", 7, "playbooks[0].trigger.plan")
    assert "'platinum' is not an item of the catalog" in p.message


def test_a_signal_the_catalog_does_not_name_is_an_error() -> None:
    p = only_problem(BOOK + "    trigger: {signals: outbound_leads}\n", catalog())
    assert p.key == "playbooks[0].trigger.signals"
    assert "inbound_leads" in p.message


def test_a_reason_code_no_rule_gives_is_an_error() -> None:
    text = BOOK + "    trigger:\n      reasons: [near_limit, almost_full]\n"
    for found in (problems(text), problems(text, catalog())):
        [p] = found
        assert where(p) == ("playbooks.yaml", 7, "playbooks[0].trigger.reasons")
        assert "unknown reason 'almost_full'" in p.message


def test_an_industry_without_a_case_study_is_only_a_warning() -> None:
    text = BOOK + "    trigger:\n      industry: [ecommerce, mining]\n"
    books = parse_playbooks(text, catalog=catalog())
    [w] = playbook_warnings(books, catalog(), text=text)
    assert (w.severity, w.line, w.key) == ("warning", 7, "playbooks[0].trigger.industry")
    assert "'mining'" in w.message
    assert playbook_warnings(books, catalog())[0].line is None


# -- the domain: matching and checks ------------------------------------------------------------

FACTS = {"plan": "pro", "employees": 40, "reasons": frozenset({"near_limit", "break_even"})}


@pytest.mark.parametrize(
    ("condition", "holds"),
    [
        (Condition("plan", "equals", "pro"), True),
        (Condition("plan", "equals", "basic"), False),
        (Condition("plan", "any_of", ("basic", "pro")), True),
        (Condition("plan", "none_of", ("basic", "pro")), False),
        (Condition("plan", "none_of", ("basic",)), True),
        (Condition("employees", "at_least", 40), True),
        (Condition("employees", "at_least", 41), False),
        (Condition("employees", "at_most", 40), True),
        (Condition("employees", "at_most", 39.5), False),
        (Condition("plan", "at_least", 1), False),
        (Condition("reasons", "any_of", ("near_limit",)), True),
        (Condition("reasons", "any_of", ("churn_risk",)), False),
        (Condition("reasons", "none_of", ("churn_risk",)), True),
        (Condition("reasons", "none_of", ("break_even", "churn_risk")), False),
        (Condition("reasons", "equals", ("break_even", "near_limit")), True),
        (Condition("reasons", "equals", ("break_even",)), False),
    ],
)
def test_a_condition_holds_by_its_op(condition: Condition, holds: bool) -> None:
    assert condition.holds(FACTS) is holds


@pytest.mark.parametrize("op", ["equals", "any_of", "at_least", "at_most"])
def test_a_missing_fact_fails_every_op_but_none_of(op: str) -> None:
    value = 5 if op.startswith("at_") else ("x",)
    assert not Condition("nps", op, value).holds({"nps": None})  # type: ignore[arg-type]
    assert Condition("nps", "none_of", ("x",)).holds({"nps": None})
    assert Condition("industry", "none_of", ("x",)).holds({})


def test_a_playbook_matches_when_every_condition_holds() -> None:
    book = Playbook(
        "p",
        "email",
        "email",
        "t",
        trigger=(Condition("plan", "equals", "pro"), Condition("employees", "at_least", 50)),
    )
    assert not book.matches(FACTS)
    assert book.matches({**FACTS, "employees": 50})
    assert Playbook("p", "email", "email", "t").matches({})


def test_the_check_finds_duplicates_short_experiments_and_discounts_without_deadline() -> None:
    book = Playbook(
        "p",
        "email",
        "email",
        "t",
        offer=Offer(discount_percent=Decimal(10)),
        experiment=Experiment("e", (Variant("A", weight=0),)),
    )
    books = Playbooks(
        (book, book),
        guardrails=Guardrails(caps=(Cap(max=1, days=7, placement="modal"),)),
    )
    keys = {p.key for p in books.check()}
    assert {
        "playbooks[1].id",
        "playbooks[1].experiment.id",
        "playbooks[0].experiment",
        "playbooks[0].experiment.variants[0].weight",
        "playbooks[0].offer.discount",
        "guardrails.caps[0].placement",
    } <= keys
    assert Playbooks(()).check() == []
