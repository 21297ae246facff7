"""The catalog: loading catalog.yaml, its validation (file, line, key), and the domain queries."""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from upsell.config.catalog import LoadedCatalog, load_catalog, parse_catalog
from upsell.domain.catalog import (
    ActivationRule,
    AddOn,
    Catalog,
    Condition,
    Metric,
    Plan,
    UsagePricedItem,
)
from upsell.domain.money import FxRates, Money
from upsell.errors import CatalogError, CurrencyError, Problem

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "catalog.yaml"
CONTRACT = ROOT.parent / "shared" / "design" / "data-contract.md"

# Line numbers below refer to this text (line 1 is `currency: USD`).
BASE = """\
currency: USD
metrics:
  seats: {kind: gauge, source: {trait: seats}}
  api_calls: {kind: counter, source: {event: API Call}, window: billing_period}
plans:
  - {id: basic, price: {month: 29, year: 290}, limits: {seats: 5}, features: [boards]}
  - {id: pro, price: {month: 99, year: 990}, limits: {seats: 25}, features: [boards, sso]}
"""


def load(text: str) -> LoadedCatalog:
    return parse_catalog(text, "catalog.yaml")


def errors(text: str) -> list[Problem]:
    with pytest.raises(CatalogError) as raised:
        load(text)
    assert all(p.severity == "error" for p in raised.value.problems)
    return list(raised.value.problems)


def only_error(text: str) -> Problem:
    found = errors(text)
    assert len(found) == 1, found
    return found[0]


def example() -> Catalog:
    return load_catalog(EXAMPLE).catalog


# -- the example and the contract ------------------------------------------------------------


def test_example_catalog_loads_with_no_errors_and_no_warnings() -> None:
    loaded = load_catalog(EXAMPLE)
    assert loaded.warnings == ()
    assert loaded.file == str(EXAMPLE)
    assert loaded.sha256 == hashlib.sha256(EXAMPLE.read_bytes()).hexdigest()
    catalog = loaded.catalog
    assert catalog.currency == "USD"
    assert catalog.business_model == "saas"
    assert [p.id for p in catalog.plans] == ["free", "basic", "pro", "enterprise"]
    assert [p.tier for p in catalog.plans] == [0, 1, 2, 3]
    assert catalog.item_ids == {
        "free",
        "basic",
        "pro",
        "enterprise",
        "extra_seats_5",
        "advanced_scheduling",
        "leadbooster",
        "assessment_credit",
    }


def test_example_catalog_is_the_one_in_the_data_contract() -> None:
    if not CONTRACT.exists():
        pytest.skip("the shared design folder is not next to the repository")
    block = re.search(r"### catalog\.yaml.*?```yaml\n(.*?)```", CONTRACT.read_text(), re.S)
    assert block is not None
    assert EXAMPLE.read_text() == block.group(1)


def test_example_catalog_reads_every_section() -> None:
    catalog = example()
    assert catalog.metrics["api_calls"] == Metric(
        "api_calls", "counter", source_event="API Call", window="billing_period"
    )
    assert catalog.metrics["storage_gb"].source_property == "gb"
    assert catalog.metrics["seats"].source_trait == "seats"
    signal = catalog.signals["inbound_leads"]
    assert (signal.event, dict(signal.where), signal.at_least, signal.window_days) == (
        "Lead Captured",
        {"source": "inbound"},
        10,
        30,
    )
    assert catalog.activation == ActivationRule(
        all_of=(Condition("Report Shared", 1), Condition("Project Created", 2))
    )
    enterprise = catalog.plans[3]
    assert enterprise.sales_assisted and not catalog.plans[2].sales_assisted
    assert enterprise.limit("seats") is None
    assert catalog.plans[2].limit("seats") == 25
    assert catalog.plans[2].features == {"boards", "export", "automation", "private_boards"}
    seats = catalog.add_ons[0]
    assert (seats.requires, dict(seats.grants)) == (("basic", "pro"), {"seats": 5})
    assert catalog.add_ons[1].goals == {"save_time"}
    product = catalog.products[0]
    assert (product.goals, product.fits_signals) == (
        frozenset({"grow_revenue"}),
        ("inbound_leads",),
    )
    assert catalog.usage_pricing[0] == UsagePricedItem(
        "assessment_credit", "Assessment credit", Money.of(25, "USD"), "assessments"
    )
    assert catalog.fx.rate("EUR") == Decimal("1.08")
    assert catalog.price_books["EUR"]["pro"]["month"] == Money.of(92, "EUR")
    assert catalog.case_studies[0].customer == "Acme Shop"


# -- price, item, next_plan ------------------------------------------------------------------


def test_price_in_a_currency_with_a_price_book_comes_from_the_book() -> None:
    assert example().price("pro", "month", "EUR") == Money.of(92, "EUR")


def test_price_without_a_book_entry_is_converted_with_fx() -> None:
    price = example().price("basic", "year", "EUR")
    assert price == Money(Decimal(290) / Decimal("1.08"), "EUR")
    assert price is not None and price.as_string() == "268.52"


def test_price_in_the_base_currency_is_the_list_price() -> None:
    assert example().price("pro", "year", "USD") == Money.of(990, "USD")


def test_price_for_an_interval_the_item_is_not_sold_in_is_none() -> None:
    assert example().price("free", "year", "USD") is None
    assert example().price("extra_seats_5", "year", "EUR") is None


def test_usage_priced_item_has_no_interval_price() -> None:
    assert example().price("assessment_credit", "month", "USD") is None


def test_price_in_a_currency_without_an_fx_rate_raises() -> None:
    with pytest.raises(CurrencyError):
        example().price("basic", "month", "JPY")


def test_price_of_an_unknown_item_raises_key_error() -> None:
    with pytest.raises(KeyError):
        example().price("nope", "month", "USD")


def test_item_finds_every_kind_and_plan_only_plans() -> None:
    catalog = example()
    assert isinstance(catalog.item("extra_seats_5"), AddOn)
    assert catalog.item("nope") is None
    assert catalog.plan("extra_seats_5") is None
    assert catalog.plan("pro") == catalog.plans[2]


def test_next_plan_is_the_tier_above_and_none_at_the_top() -> None:
    catalog = example()
    assert catalog.next_plan("basic") == catalog.plans[2]
    assert catalog.next_plan("enterprise") is None
    with pytest.raises(KeyError):
        catalog.next_plan("leadbooster")


def test_activation_rule_holds_when_all_of_and_one_of_any_of_hold() -> None:
    rule = ActivationRule(
        all_of=(Condition("A"),),
        any_of=(Condition("B"), ActivationRule(all_of=(Condition("C"), Condition("D")))),
    )
    assert [c.event for c in rule.conditions()] == ["A", "B", "C", "D"]
    assert rule.is_met(lambda c: c.event in {"A", "B"})
    assert rule.is_met(lambda c: c.event in {"A", "C", "D"})
    assert not rule.is_met(lambda c: c.event in {"A", "C"})
    assert not rule.is_met(lambda c: c.event in {"B", "C", "D"})


def test_nested_activation_rules_are_read() -> None:
    text = BASE + (
        "activation:\n"
        "  any_of:\n"
        "    - {event: Report Shared, within_days: 14, where: {kind: pdf}}\n"
        "    - all_of: [{event: Project Created, at_least: 2}]\n"
    )
    rule = load(text).catalog.activation
    assert rule == ActivationRule(
        any_of=(
            Condition("Report Shared", 1, {"kind": "pdf"}, 14),
            ActivationRule(all_of=(Condition("Project Created", 2),)),
        )
    )


# -- amounts and limits ------------------------------------------------------------------------


def test_free_plan_with_a_zero_price_is_accepted() -> None:
    text = BASE.replace(
        "  - {id: basic", "  - {id: free, price: {month: 0}, limits: {seats: 1}}\n  - {id: basic"
    )
    catalog = load(text).catalog
    assert catalog.plans[0].prices == {"month": Money.of(0, "USD")}
    assert [p.tier for p in catalog.plans] == [0, 1, 2]


@pytest.mark.parametrize(
    ("written", "amount"),
    [("29", "29"), ("29.99", "29.99"), ('"29.99"', "29.99"), ("0.1", "0.1"), ("1e1", "10.0")],
)
def test_prices_may_be_ints_decimal_strings_or_yaml_floats(written: str, amount: str) -> None:
    catalog = load(BASE.replace("month: 29,", f"month: {written},")).catalog
    assert catalog.plans[0].prices["month"].amount == Decimal(amount)


@given(st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False))
def test_a_price_written_as_a_yaml_float_is_read_exactly(amount: Decimal) -> None:
    # The year price is raised first: replacing it after would also hit an amount such as 9900.00.
    text = BASE.replace("year: 990", "year: 10000000").replace("month: 99,", f"month: {amount:f},")
    text = text.replace("month: 29,", "month: 0,")
    assert load(text).catalog.plans[1].prices["month"].amount == amount


def test_a_null_limit_means_unlimited() -> None:
    catalog = load(BASE.replace("limits: {seats: 25}", "limits: {seats: null}")).catalog
    assert catalog.plans[1].limit("seats") is None
    assert "seats" not in catalog.plans[1].limits


# -- shape and type errors, each with file, line and key ---------------------------------------


def test_yaml_syntax_error_gives_the_parser_line() -> None:
    problem = only_error("currency: USD\nplans:\n  - {id: basic, price: {month: 29}\n  - id: pro\n")
    assert problem.file == "catalog.yaml"
    assert problem.line == 4
    assert problem.message.startswith("invalid YAML: ")


def test_duplicate_yaml_key_is_refused_at_its_line() -> None:
    problem = only_error(BASE + "currency: EUR\n")
    assert problem.line == 8
    assert "duplicate key" in problem.message


def test_empty_file_is_refused() -> None:
    assert only_error("").message.startswith("the catalog is empty")


def test_catalog_that_is_not_a_mapping_is_refused() -> None:
    assert only_error("- plans\n").message == "the catalog must be a mapping, got a list"


def test_plan_without_id_or_price_is_refused_at_the_plan_line() -> None:
    text = BASE + "  - {name: Enterprise, features: [boards, sso, audit]}\n"
    text += "  - {id: ultimate, features: [boards, sso, audit, more]}\n"
    found = errors(text)
    assert [(p.key, p.line) for p in found] == [
        ("plans[2].id", 8),
        ("plans[2].price", 8),
        ("plans[3].price", 9),
    ]
    assert found[0].message == "a plan needs 'id', which is missing"


def test_catalog_without_plans_is_refused() -> None:
    problem = only_error("currency: USD\n")
    assert (problem.key, problem.line) == ("plans", 1)
    assert "missing" in problem.message


def test_catalog_with_an_empty_plan_list_is_refused() -> None:
    problem = only_error("currency: USD\nplans: []\n")
    assert (problem.key, problem.line) == ("plans", 2)


def test_negative_price_is_refused_saying_what_was_expected() -> None:
    problem = only_error(BASE.replace("month: 99", "month: -5"))
    assert str(problem) == (
        "catalog.yaml:7: plans[1].price.month: must be a non-negative amount, got -5"
    )


@pytest.mark.parametrize("written", ["'lots'", "1.5", "-1", "true", "[1]"])
def test_limit_that_is_not_a_non_negative_integer_is_refused(written: str) -> None:
    problem = only_error(BASE.replace("limits: {seats: 25}", f"limits: {{seats: {written}}}"))
    assert (problem.key, problem.line) == ("plans[1].limits.seats", 7)
    assert problem.message.startswith("must be a non-negative integer, or null for unlimited")


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        (BASE.replace("currency: USD", "currency: DOLLARS"), "currency", 1),
        (BASE + "fx: {EUR: 1.08, EUROS: 1.1}\n", "fx.EUROS", 8),
        (BASE + "price_books:\n  XYZ: {basic: {month: 27}}\n", "price_books.XYZ", 9),
    ],
)
def test_unknown_currency_is_refused(text: str, key: str, line: int) -> None:
    problem = only_error(text)
    assert (problem.key, problem.line) == (key, line)
    assert "unknown currency" in problem.message and "ISO 4217" in problem.message


def test_lower_case_currency_suggests_the_code() -> None:
    assert "did you mean 'USD'?" in only_error(BASE.replace("USD", "usd")).message


def test_unknown_top_level_key_is_named_with_a_suggestion() -> None:
    problem = only_error(BASE + "add_on: []\n")
    assert (problem.key, problem.line) == ("add_on", 8)
    assert "unknown key 'add_on'" in problem.message
    assert "did you mean 'add_ons'?" in problem.message


def test_unknown_key_inside_a_plan_is_named() -> None:
    problem = only_error(BASE.replace("features: [boards, sso]", "feature: [boards, sso]"))
    assert (problem.key, problem.line) == ("plans[1].feature", 7)
    assert "did you mean 'features'?" in problem.message


def test_unknown_interval_in_a_price_is_refused() -> None:
    problem = only_error(BASE.replace("year: 990", "week: 990"))
    assert (problem.key, problem.message) == (
        "plans[1].price.week",
        "unknown interval 'week': expected month or year",
    )


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("add_ons:\n  - {id: pro, price: {month: 5}}\n", "add_ons[0].id"),
        ("products:\n  - {id: basic, price: {month: 5}}\n", "products[0].id"),
        (
            "usage_pricing:\n  - {id: pro, unit_price: 1, metric: api_calls}\n",
            "usage_pricing[0].id",
        ),
    ],
)
def test_duplicate_item_ids_across_sections_are_refused(section: str, key: str) -> None:
    problem = only_error(BASE + section)
    assert (problem.key, problem.line) == (key, 9)
    assert "duplicate item id" in problem.message


def test_duplicate_plan_ids_are_refused() -> None:
    text = BASE + "  - {id: pro, price: {month: 199}, features: [boards, sso, audit]}\n"
    problem = only_error(text)
    assert (problem.key, problem.line) == ("plans[2].id", 8)
    assert "already used by plans[1]" in problem.message


def test_every_shape_error_is_reported_at_once_in_file_order() -> None:
    text = (
        "currency: usd\n"
        "business_model: sass\n"
        "plans:\n"
        "  - {name: Free, price: {month: -5}}\n"
        "  - {id: basic, price: {month: 9}, sales_assisted: yes}\n"
        "fx: {EUR: 0}\n"
        "colour: blue\n"
    )
    found = errors(text)
    assert [(p.line, p.key) for p in found] == [
        (1, "currency"),
        (2, "business_model"),
        (4, "plans[0].id"),
        (4, "plans[0].price.month"),
        (5, "plans[1].sales_assisted"),
        (6, "fx.EUR"),
        (7, "colour"),
    ]
    assert all(p.file == "catalog.yaml" for p in found)


def test_fx_rate_for_the_base_currency_must_be_one() -> None:
    problem = only_error(BASE + "fx: {USD: 2}\n")
    assert problem.key == "fx.USD"


# -- semantic errors, mapped to lines ----------------------------------------------------------


def test_limit_on_an_unknown_metric_is_refused() -> None:
    problem = only_error(BASE.replace("limits: {seats: 5}", "limits: {seats: 5, projects: 3}"))
    assert (problem.key, problem.line) == ("plans[0].limits.projects", 6)
    assert problem.message.startswith("unknown metric 'projects'")


def test_add_on_granting_an_unknown_metric_is_refused() -> None:
    problem = only_error(BASE + "add_ons:\n  - {id: more, price: {month: 5}, grants: {users: 5}}\n")
    assert (problem.key, problem.line) == ("add_ons[0].grants.users", 9)


def test_add_on_requiring_an_unknown_item_is_refused() -> None:
    problem = only_error(
        BASE + "add_ons:\n  - {id: more, price: {month: 5}, requires: [pro, max]}\n"
    )
    assert (problem.key, problem.line) == ("add_ons[0].requires[1]", 9)
    assert "'max' is unknown" in problem.message


@pytest.mark.parametrize(
    "add_ons",
    [
        "  - {id: a, price: {month: 5}, requires: [b]}\n  - {id: b, price: {month: 5}, requires: [a]}\n",
        "  - {id: a, price: {month: 5}, requires: [pro, a]}\n",
    ],
)
def test_cycle_in_requires_is_refused(add_ons: str) -> None:
    problem = only_error(BASE + "add_ons:\n" + add_ons)
    assert problem.message.startswith("cycle in requires: a -> ")
    assert (problem.key, problem.line) == ("add_ons[0].requires", 9)


def test_add_on_may_require_another_add_on() -> None:
    add_ons = (
        "add_ons:\n"
        "  - {id: a, price: {month: 5}, requires: [pro]}\n"
        "  - {id: b, price: {month: 5}, requires: [a]}\n"
    )
    assert load(BASE + add_ons).catalog.add_ons[1].requires == ("a",)


def test_usage_pricing_on_an_unknown_metric_is_refused() -> None:
    text = BASE + "usage_pricing:\n  - {id: credit, unit_price: 25, metric: assessments}\n"
    problem = only_error(text)
    assert (problem.key, problem.line) == ("usage_pricing[0].metric", 9)


def test_product_fitting_an_unknown_signal_is_refused() -> None:
    text = BASE + (
        "products:\n  - id: leads\n    price: {month: 39}\n    fits: {signals: [inbound_leads]}\n"
    )
    problem = only_error(text)
    assert (problem.key, problem.line) == ("products[0].fits.signals[0]", 11)
    assert problem.message.startswith("unknown signal 'inbound_leads'")


def test_price_book_naming_an_unknown_item_is_refused() -> None:
    text = (
        BASE
        + "fx: {EUR: 1.08}\nprice_books:\n  EUR:\n    basic: {month: 27}\n    max: {month: 1}\n"
    )
    problem = only_error(text)
    assert (problem.key, problem.line) == ("price_books.EUR.max", 12)


def test_price_book_naming_an_interval_the_item_is_not_sold_in_is_refused() -> None:
    text = BASE + "fx: {EUR: 1.08}\nprice_books:\n  EUR:\n    basic: {month: 27}\n"
    text = text.replace("price: {month: 29, year: 290}", "price: {year: 290}")
    text = text.replace("basic: {month: 27}", "basic: {month: 27, year: 270}")
    problem = only_error(text)
    assert (problem.key, problem.line) == ("price_books.EUR.basic.month", 11)


def test_price_book_naming_an_unknown_interval_is_refused() -> None:
    text = BASE + "fx: {EUR: 1.08}\nprice_books:\n  EUR: {basic: {week: 7}}\n"
    assert only_error(text).key == "price_books.EUR.basic.week"


def test_higher_tier_priced_lower_than_the_tier_below_is_refused() -> None:
    problem = only_error(BASE.replace("year: 990", "year: 280"))
    assert (problem.key, problem.line) == ("plans[1].price.year", 7)
    assert "lower than 290" in problem.message


def test_higher_tier_priced_the_same_is_accepted() -> None:
    load(BASE.replace("month: 99", "month: 29"))


def test_local_price_that_inverts_the_tiers_is_refused() -> None:
    text = BASE + "fx: {EUR: 1.08}\nprice_books:\n  EUR: {pro: {month: 20}}\n"
    problem = only_error(text)
    assert (problem.key, problem.line) == ("price_books.EUR.pro.month", 10)


@pytest.mark.parametrize(
    ("lower", "higher"),
    [("{seats: 5}", "{seats: 4}"), ("{}", "{seats: 25}"), ("{seats: null}", "{seats: 99}")],
)
def test_higher_tier_with_a_lower_limit_is_refused(lower: str, higher: str) -> None:
    text = BASE.replace("limits: {seats: 5}", f"limits: {lower}")
    problem = only_error(text.replace("limits: {seats: 25}", f"limits: {higher}"))
    assert (problem.key, problem.line) == ("plans[1].limits.seats", 7)
    assert "limits must not go down as tiers go up" in problem.message


@pytest.mark.parametrize(
    ("source", "key"),
    [
        ("{trait: seats, event: Seat Added}", "metrics.seats.source"),
        ("{}", "metrics.seats.source"),
        ("{trait: seats, property: n}", "metrics.seats.source.property"),
    ],
)
def test_metric_source_gives_exactly_one_of_trait_or_event(source: str, key: str) -> None:
    problem = only_error(BASE.replace("source: {trait: seats}", f"source: {source}"))
    assert (problem.key, problem.line) == (key, 3)


def test_counter_needs_an_event_source() -> None:
    problem = only_error(BASE.replace("source: {event: API Call}", "source: {trait: calls}"))
    assert (problem.key, problem.line) == ("metrics.api_calls.source", 4)
    assert "counter" in problem.message


def test_gauge_may_read_an_event_property() -> None:
    text = BASE.replace("source: {trait: seats}", "source: {event: Seats Counted, property: n}")
    metric = load(text).catalog.metrics["seats"]
    assert (metric.source_event, metric.source_property) == ("Seats Counted", "n")


# -- warnings --------------------------------------------------------------------------------


def test_adjacent_tiers_that_differ_too_little_give_a_warning() -> None:
    text = BASE.replace(
        "limits: {seats: 25}, features: [boards, sso]", "limits: {seats: 7}, features: [boards]"
    )
    loaded = load(text)
    assert len(loaded.warnings) == 1
    warning = loaded.warnings[0]
    assert (warning.severity, warning.key, warning.line, warning.file) == (
        "warning",
        "plans[1]",
        7,
        "catalog.yaml",
    )
    assert "(S1)" in warning.message
    assert str(warning).startswith("catalog.yaml:7: warning: plans[1]: ")


@pytest.mark.parametrize(
    "higher",
    [
        "limits: {seats: 8}, features: [boards]",  # +60 % seats
        "limits: {}, features: [boards]",  # unlimited seats
        "limits: {seats: 5}, features: [boards, sso]",  # a new feature
    ],
)
def test_adjacent_tiers_that_differ_enough_give_no_warning(higher: str) -> None:
    assert load(BASE.replace("limits: {seats: 25}, features: [boards, sso]", higher)).warnings == ()


def test_price_book_currency_without_an_fx_rate_gives_a_warning() -> None:
    loaded = load(BASE + "price_books:\n  EUR: {pro: {month: 92}}\n")
    assert [(w.key, w.line, w.severity) for w in loaded.warnings] == [
        ("price_books.EUR", 9, "warning")
    ]
    assert "cannot be normalised" in loaded.warnings[0].message
    assert loaded.catalog.price("pro", "month", "EUR") == Money.of(92, "EUR")


# -- the domain on its own -----------------------------------------------------------------


def test_check_on_a_catalog_built_in_code_gives_keys_without_lines() -> None:
    usd = FxRates("USD")
    catalog = Catalog(
        currency="USD",
        fx=usd,
        plans=(
            Plan("basic", "Basic", 0, {"month": Money.of(29, "USD")}, {"seats": 5}),
            Plan("pro", "Pro", 2, {"month": Money.of(99, "EUR")}, {"seats": 25}, frozenset({"x"})),
        ),
        metrics={"seats": Metric("seats", "gauge", source_trait="seats")},
    )
    problems = catalog.check()
    assert [(p.key, p.line, p.file) for p in problems] == [
        ("plans[1].price.month", None, ""),
        ("plans[1]", None, ""),
    ]


def test_problem_string_marks_warnings() -> None:
    assert str(Problem("m", "plans[1]", "c.yaml", 3, "warning")) == "c.yaml:3: warning: plans[1]: m"
    assert str(Problem("m", "plans[1]", "c.yaml", 3)) == "c.yaml:3: plans[1]: m"


# -- files -----------------------------------------------------------------------------------


def test_load_catalog_names_the_file_in_problems(tmp_path: Path) -> None:
    path = tmp_path / "catalog.yaml"
    path.write_text(BASE.replace("month: 99", "month: -5"))
    with pytest.raises(CatalogError) as raised:
        load_catalog(path)
    assert raised.value.problems[0].file == str(path)


def test_missing_catalog_file_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read the catalog"):
        load_catalog(tmp_path / "nope.yaml")


def test_parse_catalog_keeps_the_text_and_its_hash() -> None:
    loaded = load(BASE)
    assert loaded.text == BASE
    assert loaded.sha256 == hashlib.sha256(BASE.encode()).hexdigest()


def test_an_items_value_reads_hours_saved_and_revenue_in_the_base_currency() -> None:
    text = BASE + (
        "products:\n"
        "  - {id: leads, price: {month: 39}, value: {revenue_per_month: 400}}\n"
        "  - {id: timer, price: {month: 15}, value: {hours_saved_per_month: 6.5}}\n"
    )
    catalog = load(text).catalog
    leads, timer = catalog.products
    assert leads.value is not None and leads.value.revenue_per_month == Money.of("400", "USD")
    assert leads.value.hours_saved_per_month is None
    assert timer.value is not None and timer.value.hours_saved_per_month == Decimal("6.5")
    assert catalog.plans[0].value is None


def test_an_items_value_must_be_positive_and_known() -> None:
    text = BASE.replace("features: [boards]}", "features: [boards], value: {hours_saved: 3}}", 1)
    problem = only_error(text)
    assert problem.line == 6 and problem.key.startswith("plans[0].value")
    text = BASE.replace(
        "features: [boards]}", "features: [boards], value: {revenue_per_month: -1}}", 1
    )
    problem = only_error(text)
    assert problem.key == "plans[0].value.revenue_per_month" and "positive" in problem.message


def test_an_impossible_unquoted_date_is_a_problem_with_its_line_not_a_crash() -> None:
    problem = only_error(
        BASE + "case_studies:\n  - {industry: x, customer: 2024-02-30, result: y}\n"
    )
    assert problem.line == 9 and "invalid date" in problem.message


# -- stripe: {prices: [...]} ------------------------------------------------------------------

STRIPE = BASE.replace(
    "  - {id: basic, price: {month: 29, year: 290}, limits: {seats: 5}, features: [boards]}\n",
    "  - id: basic\n"
    "    price: {month: 29, year: 290}\n"
    "    limits: {seats: 5}\n"
    "    features: [boards]\n"
    "    stripe: {prices: [price_basic_m, basic_yearly]}\n",
)


def test_stripe_prices_map_a_price_id_or_a_lookup_key_to_the_item() -> None:
    catalog = load(STRIPE).catalog
    basic = catalog.plan("basic")
    assert basic is not None and basic.stripe_prices == ("price_basic_m", "basic_yearly")
    assert catalog.item_for_stripe_price("price_basic_m") == "basic"
    assert catalog.item_for_stripe_price("price_other", "basic_yearly") == "basic"
    assert catalog.item_for_stripe_price("price_other", "pro_yearly") is None
    assert catalog.item_for_stripe_price("price_other") is None


@pytest.mark.parametrize(
    ("written", "key", "message"),
    [
        ("{prices: [price_a], lookup: x}", "plans[0].stripe.lookup", "unknown key 'lookup'"),
        ("{prices: [price_a, 3]}", "plans[0].stripe.prices[1]", "must be non-empty text, got 3"),
        ("{prices: [price_a, price_a]}", "plans[0].stripe.prices[1]", "listed twice"),
        ("{prices: price_a}", "plans[0].stripe.prices", "must be a list"),
        ("[price_a]", "plans[0].stripe", "stripe must be a mapping"),
        ("{}", "plans[0].stripe.prices", "needs 'prices'"),
    ],
)
def test_bad_stripe_prices_are_refused_naming_line_and_key(
    written: str, key: str, message: str
) -> None:
    text = STRIPE.replace("{prices: [price_basic_m, basic_yearly]}", written)
    problem = only_error(text)
    assert (problem.file, problem.line, problem.key) == ("catalog.yaml", 10, key)
    assert message in problem.message


def test_a_stripe_price_listed_under_two_items_is_refused_at_the_second() -> None:
    text = STRIPE.replace(
        "  - {id: pro, price: {month: 99, year: 990}, limits: {seats: 25}, features: [boards, sso]}\n",
        "  - id: pro\n"
        "    price: {month: 99, year: 990}\n"
        "    limits: {seats: 25}\n"
        "    features: [boards, sso]\n"
        "    stripe:\n"
        "      prices:\n"
        "        - pro_monthly\n"
        "        - basic_yearly\n",
    )
    problem = only_error(text)
    assert (problem.line, problem.key) == (18, "plans[1].stripe.prices[1]")
    assert "'basic_yearly' is listed already under plans[0] ('basic')" in problem.message
