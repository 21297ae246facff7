"""Messages: the facts a template is filled with, the locale, and the rendering in every language."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from upsell.config.catalog import parse_catalog
from upsell.domain.decisions import Decision
from upsell.domain.messages import LANGUAGES, expires_at, language_of, locale_for, message_facts
from upsell.domain.money import Money
from upsell.domain.opportunities import Opportunity, Reason
from upsell.domain.playbooks import Offer, Playbook, Promotion, PromotionRun
from upsell.domain.signals import AccountSignals, MetricUsage
from upsell.domain.subscriptions import SubscriptionItem
from upsell.simulator.profiles import catalog_text
from upsell.templates import MessageTemplates, build_url, default_html, sample_facts

AT = datetime(2026, 6, 1, tzinfo=UTC)
CATALOG = parse_catalog(catalog_text("saas"), "saas.yaml").catalog


def signals(**changes: object) -> AccountSignals:
    base: dict[str, object] = {
        "account_id": "a-1",
        "as_of": AT,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "tenure_days": 151,
        "mrr": Money.of("29.16", "USD"),
        "industry": "ecommerce",
        "employees": 12,
        "country": "DE",
        "currency": "EUR",
        "language": "de",
        "plan_id": "basic",
        "plan_interval": "month",
        "holdings": (
            SubscriptionItem(
                account_id="a-1",
                item_id="basic",
                started_at=datetime(2026, 1, 1, tzinfo=UTC),
                unit_price=Money.of("27", "EUR"),
            ),
        ),
        "metrics": {
            "seats": MetricUsage("seats", "gauge", 5, limit=5),
            "projects": MetricUsage("projects", "gauge", 2, limit=3),
        },
    }
    base.update(changes)
    return AccountSignals(**base)  # type: ignore[arg-type]


def decision(item: str = "pro", kind: str = "upsell", **playbook: object) -> Decision:
    o = Opportunity(
        account_id="a-1",
        as_of=AT,
        kind=kind,  # type: ignore[arg-type]
        offer_id=f"{kind}:basic->{item}" if kind == "upsell" else f"{kind}:{item}",
        item_id=item,
        from_item_id="basic" if kind == "upsell" else None,
        expected_mrr_delta=Money.of("65", "EUR"),
        expected_mrr_delta_base=Money.of("70.20", "USD"),
        score=0.8,
        reasons=(
            Reason("limit_reached", "5 of 5 seats", metric="seats", values={"used": 5, "limit": 5}),
        ),
    )
    book = Playbook("p", "in_app", "modal", "limit_reached", **playbook)  # type: ignore[arg-type]
    return Decision(o, book, None, p_accept=0.1, expected_value=80.0)


def test_the_price_comes_from_the_price_book_of_the_accounts_currency() -> None:
    facts = message_facts(decision(), signals(), CATALOG, account_name="Acme GmbH")
    assert facts["item"]["price"] == Money.of("92", "EUR")
    assert facts["item"]["name"] == "Pro" and facts["from_item"]["name"] == "Basic"
    assert facts["account"]["name"] == "Acme GmbH"
    assert facts["delta"] == Money.of("65", "EUR")


def test_what_the_upgrade_adds_speaks_of_the_limits_the_reasons_name() -> None:
    gained = message_facts(decision(), signals(), CATALOG)["gained"]
    assert [(x.metric, x.before, x.after) for x in gained["limits"]] == [("seats", 5, 25)]
    assert gained["features"] == ["Automation", "Private boards"]


def test_the_case_study_is_the_one_of_the_accounts_industry() -> None:
    assert message_facts(decision(), signals(), CATALOG)["case_study"]["customer"] == "Acme Shop"
    assert message_facts(decision(), signals(industry="mining"), CATALOG)["case_study"] is None


def test_the_value_of_a_product_gives_its_roi_in_the_accounts_currency() -> None:
    value = message_facts(decision("leadbooster", "cross_sell"), signals(), CATALOG)["value"]
    revenue = CATALOG.fx.convert(Money.of("400", "USD"), "EUR")
    assert value["revenue"] == revenue
    price = CATALOG.price("leadbooster", "month", "EUR")
    assert price is not None
    assert value["roi"] == pytest.approx(float(revenue.amount / price.amount))
    assert message_facts(decision(), signals(), CATALOG)["value"] is None


def test_a_promotion_sets_the_discount_and_the_deadline_of_the_facts() -> None:
    spring = Promotion(
        "spring", Decimal("20"), 3, (PromotionRun(date(2026, 5, 20), date(2026, 6, 14)),)
    )
    d = decision(offer=Offer(promotion="spring"))
    d = Decision(d.opportunity, d.playbook, None, 0.1, 80.0, date(2026, 6, 14), spring)
    facts = message_facts(d, signals(), CATALOG)
    assert (facts["discount_percent"], facts["discount_months"]) == (20.0, 3)
    assert facts["deadline"] == date(2026, 6, 14)
    assert expires_at(facts["deadline"]) == datetime(2026, 6, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("language", "country", "locale"),
    [
        ("de", "DE", "de_DE"),
        ("nl", "BE", "nl_BE"),
        ("no", "NO", "nb_NO"),
        ("pt-BR", None, "pt"),
        ("en", "XX", "en"),
        (None, None, "en"),
        ("zz", None, "en"),
    ],
)
def test_the_locale_is_the_language_in_the_country(
    language: str | None, country: str | None, locale: str
) -> None:
    assert locale_for(language, country) == locale


def test_an_unsupported_language_reads_the_english_messages() -> None:
    assert language_of("pt") == "en" and language_of("nb_NO") == "nb"


def test_the_checkout_url_encodes_every_value() -> None:
    url = build_url(
        "https://x.example/buy?a={account_id}&o={offer_id}&n={nothing}",
        {"account_id": "a 1", "offer_id": "upsell:basic->pro"},
    )
    assert url == "https://x.example/buy?a=a%201&o=upsell%3Abasic-%3Epro&n="


def test_the_html_part_escapes_the_text() -> None:
    page = default_html("<b>", "a & b\n\nc", "Go", "https://x/?a=1&b=2", "nl_NL")
    assert "<b>" not in page.split("<body", 1)[1]
    assert (
        "a &amp; b" in page and 'href="https://x/?a=1&amp;b=2"' in page and 'lang="nl-NL"' in page
    )


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", MessageTemplates().names())
def test_every_template_renders_in_every_language(name: str, language: str) -> None:
    templates = MessageTemplates()
    message = templates.render(
        name, sample_facts(), locale=language, checkout_url="https://x/{item_id}", html_part=True
    )
    assert message["subject"] and message["body"] and message["cta"]
    assert message["cta_url"] == "https://x/pro"
    if language != "en":
        english = templates.render(
            name, sample_facts(), locale="en", checkout_url="https://x", html_part=False
        )
        assert message["subject"] != english["subject"], "translated"


def test_french_plurals_follow_the_french_rule_not_the_english_one() -> None:
    fr = MessageTemplates()._translations("fr")
    assert (fr.plural(0), fr.plural(1), fr.plural(2)) == (0, 0, 1)
    singular = "You hit it %(count)s time in the last 30 days."
    plural = "You hit it %(count)s times in the last 30 days."
    assert fr.ungettext(singular, plural, 0) == fr.ungettext(singular, plural, 1)


CSM_TEMPLATES = ("csm_upgrade", "qbr_cross_sell")


@pytest.mark.parametrize("name", CSM_TEMPLATES)
def test_talking_points_speak_to_the_csm_about_the_customer(name: str) -> None:
    points = MessageTemplates().render(
        name, sample_facts(), locale="en", checkout_url="https://x", html_part=False
    )["talking_points"]
    assert "They use 23 of their 25 seats." in " ".join(points)
    second_person = [
        p for p in points if {"you", "your"} & set(p.lower().replace(".", " ").split())
    ]
    assert second_person == []


@pytest.mark.parametrize("language", [x for x in LANGUAGES if x != "en"])
@pytest.mark.parametrize("name", CSM_TEMPLATES)
def test_talking_points_in_every_language_are_not_the_customers_sentences(
    name: str, language: str
) -> None:
    """No talking point is the sentence the customer would read, and each is translated."""
    templates = MessageTemplates()
    facts = sample_facts()
    common = templates.environment(language).get_template("_common.j2").make_module(facts)
    to_customer = {str(common.reason(r)).strip() for r in facts["reasons"]} - {""}
    to_customer |= {str(common.gained_text()).strip(), str(common.terms()).strip()}
    points = templates.render(
        name, facts, locale=language, checkout_url="https://x", html_part=False
    )["talking_points"]
    english = templates.render(name, facts, locale="en", checkout_url="https://x", html_part=False)[
        "talking_points"
    ]
    assert not [p for p in points if any(s and s in p for s in to_customer)]
    untranslatable = {r["text"] for r in facts["reasons"]}  # a reason without a sentence
    assert not set(points) & set(english) - untranslatable


def test_every_shipped_language_translates_every_shipped_message() -> None:
    templates = MessageTemplates()
    report = templates.check(templates.names(), sample=sample_facts())
    assert report.problems == []
    assert [(m.language, m.messages) for m in report.missing if m.messages] == []


def save_decision(
    item: str, *, request: Reason, motive: str | None = None, discount: bool = False
) -> Decision:
    """A save of a Pro account: keep Pro (`item` pro), Basic instead, or an add-on."""
    extra = (Reason(motive, f"says {motive}"),) if motive else ()
    offer_id = "save:pro" if item == "pro" else f"save:pro->{item}"
    o = Opportunity(
        account_id="a-1",
        as_of=AT,
        kind="save",
        offer_id=offer_id,
        item_id=item,
        from_item_id="pro",
        expected_mrr_delta=Money.of("92", "EUR"),
        expected_mrr_delta_base=Money.of("99", "USD"),
        score=0.9,
        reasons=(request, *extra),
    )
    offer = Offer(discount_percent=Decimal(20), discount_months=3, deadline_days=14)
    book = Playbook("save", "in_app", "modal", "save", offer=offer if discount else Offer())
    deadline = date(2026, 6, 15) if discount else None
    return Decision(o, book, None, p_accept=0.3, expected_value=80.0, deadline=deadline)


CANCEL = Reason("cancel_requested", "asked to cancel")
DOWNGRADE = Reason(
    "downgrade_requested",
    "asked to downgrade to Basic",
    values={"to_plan": "basic", "to_plan_name": "Basic"},
)
RISK = Reason("churn_risk", "at risk of leaving: NPS 3")


def save_message(d: Decision, locale: str = "en") -> dict[str, Any]:
    pro = signals(plan_id="pro", holdings=())
    return MessageTemplates().render(
        "save",
        message_facts(d, pro, CATALOG),
        locale=locale,
        checkout_url="https://x/{item_id}",
    )


def test_a_save_says_cancel_or_downgrade_and_names_the_plan_it_offers() -> None:
    cancel = save_message(save_decision("pro", request=CANCEL))
    assert (cancel["subject"], cancel["cta"]) == ("Before you cancel Pro", "Keep Pro")
    down = save_message(save_decision("pro", request=DOWNGRADE))
    assert down["subject"] == "Before you downgrade from Pro"
    lower = save_message(save_decision("basic", request=CANCEL, motive="too_expensive"))
    assert lower["subject"] == "Instead of cancelling: Basic keeps what you use"
    assert lower["cta"] == "Switch to Basic"
    risk = save_message(save_decision("basic", request=RISK))
    assert risk["subject"] == "Basic may fit you better"
    add = save_message(
        save_decision("advanced_scheduling", request=CANCEL, motive="missing_feature")
    )
    assert add["subject"] == "Before you cancel: Advanced scheduling has what you were missing"
    assert add["cta"] == "Add Advanced scheduling"


def test_a_save_for_price_offers_its_discount() -> None:
    d = save_decision("pro", request=CANCEL, motive="too_expensive", discount=True)
    message = save_message(d)
    assert message["cta"] == "Keep Pro at 20% off"
    assert "20% off for the first 3 months." in message["body"]


@pytest.mark.parametrize("language", [x for x in LANGUAGES if x != "en"])
def test_cancel_and_downgrade_read_differently_in_every_language(language: str) -> None:
    english = {
        "cancel": save_message(save_decision("pro", request=CANCEL))["subject"],
        "downgrade": save_message(save_decision("pro", request=DOWNGRADE))["subject"],
    }
    cancel = save_message(save_decision("pro", request=CANCEL), language)["subject"]
    down = save_message(save_decision("pro", request=DOWNGRADE), language)["subject"]
    assert cancel != down
    assert cancel != english["cancel"] and down != english["downgrade"], "translated"
