"""The workspace configuration file: defaults, types, ranges, and problems named by line and key."""

from __future__ import annotations

from dataclasses import fields
from decimal import Decimal
from pathlib import Path

import pytest

from upsell.config.workspace import (
    CONFIG_FILE,
    POLICY_KEYS,
    SECTIONS,
    WorkspaceConfig,
    load_config,
    parse_config,
)
from upsell.domain.opportunities import Policy
from upsell.errors import ConfigError, Problem, ProblemsError, UpsellError

ROOT = Path(__file__).resolve().parents[1]


def problems(text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as raised:
        parse_config(text, "config.yaml")
    return raised.value.problems


def only_problem(text: str) -> Problem:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


def test_a_workspace_without_config_yaml_gets_the_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path) == WorkspaceConfig()
    assert load_config(tmp_path).opportunities == Policy()


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "opportunities:\n", "opportunities: {}\n"])
def test_an_empty_file_or_section_means_the_defaults(text: str) -> None:
    assert parse_config(text) == WorkspaceConfig()


def test_values_are_read_with_the_type_of_their_default(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).write_text(
        "opportunities:\n"
        "  min_tenure_days: 7\n"
        "  require_activation: false\n"
        "  price_anchor_share: 0.25\n"
        "  small_company_max_delta: '75.50'\n"
        "  min_lift: 2\n"
        "  near_limit_utilisation: 0.9\n"
    )
    policy = load_config(tmp_path).opportunities
    assert policy == Policy(
        min_tenure_days=7,
        require_activation=False,
        price_anchor_share=Decimal("0.25"),
        small_company_max_delta=Decimal("75.50"),
        min_lift=2.0,
        near_limit_utilisation=0.9,
    )
    assert isinstance(policy.min_lift, float)
    assert isinstance(policy.price_anchor_share, Decimal)


def _changed(default: object, taken: list[object]) -> object:
    """A valid value other than `default` and than every value in `taken`: a bool flipped, a count
    one or more above, a number or Decimal amount halved (so shares stay between 0 and 1)."""
    if isinstance(default, bool):
        return not default
    value = default
    while value == default or value in taken:
        if isinstance(default, int):
            value += 1  # type: ignore[operator]
        else:
            value = value / 2 if value else type(default)("0.5")  # type: ignore[operator]
    return value


def test_config_yaml_sets_every_policy_field() -> None:
    """Each of Policy's fields, written into config.yaml with a value of its own (unlike its default
    and unlike every other field's), is read back into that field with its default's type: a field
    config.yaml cannot set, or a key read into another field, fails."""
    defaults = Policy()
    changed: dict[str, object] = {}
    for f in fields(Policy):
        changed[f.name] = _changed(getattr(defaults, f.name), list(changed.values()))
    expected = Policy(**changed)  # type: ignore[arg-type]
    assert expected.check() == [], "every changed value is in its range"

    def yaml(value: object) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    text = "opportunities:\n" + "".join(f"  {k}: {yaml(v)}\n" for k, v in changed.items())
    policy = parse_config(text).opportunities
    for f in fields(Policy):
        read, default = getattr(policy, f.name), getattr(defaults, f.name)
        assert read != default, f"{f.name} kept its default"
        assert read == changed[f.name], f.name
        assert type(read) is type(default), f.name
    assert policy == expected


def test_an_unknown_key_is_named_with_its_line_and_a_suggestion() -> None:
    p = only_problem("opportunities:\n  min_tenure_days: 7\n  min_tenure: 3\n")
    assert (p.file, p.line, p.key) == ("config.yaml", 3, "opportunities.min_tenure")
    assert "did you mean 'min_tenure_days'?" in p.message
    assert str(p).startswith("config.yaml:3: opportunities.min_tenure: unknown key")


def test_an_unknown_section_names_the_allowed_ones() -> None:
    p = only_problem("opportunities: {}\nguardrails:\n  max_offers: 2\n")
    assert (p.line, p.key) == (2, "guardrails")
    assert "expected opportunities" in p.message
    assert SECTIONS == ("opportunities", "metrics", "report", "schedule", "in_app")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("min_tenure_days: two", "must be a non-negative integer, got 'two'"),
        ("min_tenure_days: 1.5", "must be a non-negative integer, got 1.5"),
        ("require_activation: 1", "must be true or false, got 1"),
        ("min_lift: high", "must be a number, got 'high'"),
        ("min_lift: true", "must be a number, got true"),
        ("price_anchor_share: thirty", "must be a non-negative amount, got 'thirty'"),
    ],
)
def test_a_wrong_type_is_named_with_its_line_and_key(line: str, expected: str) -> None:
    p = only_problem(f"# tuned for the demo\nopportunities:\n  {line}\n")
    assert p.line == 3
    assert p.key == "opportunities." + line.split(":")[0]
    assert p.message == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("min_tenure_days: -3", "must be a non-negative integer, got -3"),
        ("near_limit_days: -1", "must be a non-negative integer, got -1"),
        ("price_anchor_share: 1.5", "must be between 0 and 1, got 1.5"),
        ("churn_decline_ratio: -0.2", "must be between 0 and 1, got -0.2"),
        ("min_confidence: 2", "must be between 0 and 1, got 2.0"),
        ("min_lift: -1", "must not be negative, got -1.0"),
        ("churn_min_signals: 0", "must be at least 1, got 0"),
        ("small_company_max_delta: -5", "must be a non-negative amount, got -5"),
    ],
)
def test_a_value_out_of_range_is_named_with_its_line_and_key(line: str, expected: str) -> None:
    p = only_problem(f"opportunities:\n  min_employees: 3\n  {line}\n")
    assert p.line == 3
    assert p.key == "opportunities." + line.split(":")[0]
    assert p.message == expected


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    found = problems(
        "opportunities:\n  min_support: 3\n  min_tenure_days: x\n  bogus: 1\nreports: {}\n"
    )
    assert [(p.line, p.key) for p in found] == [
        (2, "opportunities.min_support"),
        (3, "opportunities.min_tenure_days"),
        (4, "opportunities.bogus"),
        (5, "reports"),
    ]


def test_the_error_message_names_file_line_and_key() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config("opportunities:\n  min_tenure_days: -3\n", "acme/config.yaml")
    assert str(raised.value) == (
        "acme/config.yaml:2: opportunities.min_tenure_days: must be a non-negative integer, got -3"
    )


def test_a_section_that_is_not_a_mapping_is_refused() -> None:
    p = only_problem("opportunities: [1, 2]\n")
    assert (p.line, p.key) == (1, "opportunities")
    assert "must be a mapping" in p.message


def test_a_file_that_is_not_a_mapping_is_refused() -> None:
    assert "must be a mapping" in only_problem("- opportunities\n").message


def test_invalid_yaml_is_a_config_error_with_its_line() -> None:
    p = only_problem("opportunities:\n  min_tenure_days: [7\n")
    assert p.line is not None and p.line >= 2
    assert p.message.startswith("invalid YAML")


def test_a_file_that_is_not_utf8_is_refused(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE).write_bytes(b"opportunities:\n  min_tenure_days: 7 # \xff\n")
    with pytest.raises(ConfigError) as raised:
        load_config(tmp_path)
    assert raised.value.problems[0].line == 2
    assert raised.value.problems[0].file.endswith(CONFIG_FILE)


def test_config_error_is_a_problems_error_like_the_catalogs_and_the_playbooks() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config("x: 1\n")
    assert isinstance(raised.value, ProblemsError)
    assert isinstance(raised.value, UpsellError)
    assert isinstance(raised.value, ValueError)
    assert [p.key for p in raised.value.problems] == ["x"]


def test_every_policy_key_and_gate_is_documented_with_its_default() -> None:
    from upsell.domain.opportunities import GATES

    text = (ROOT / "docs" / "opportunities.md").read_text()
    for name in POLICY_KEYS:
        default = getattr(Policy(), name)
        shown = str(default).lower() if isinstance(default, bool) else str(default)
        assert f"| `{name}` | `{shown}` |" in text, name
    for gate in GATES:
        assert f"`{gate}`" in text, gate


def test_the_metrics_section_sets_metrics_md_settings() -> None:
    from upsell.domain.metrics import MetricSettings

    config = parse_config(
        "metrics:\n  reactivation_window_days: 90\n  churn_at: period_end\n"
        "  gross_margin: 0.7\n  attribution_days: 21\n"
    )
    assert config.metrics == MetricSettings(
        reactivation_window_days=90, churn_at="period_end", gross_margin=0.7, attribution_days=21
    )
    assert parse_config("metrics:\n  reactivation_window_days: null\n").metrics == MetricSettings()


def test_bad_metrics_settings_are_named_with_their_line() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config(
            "metrics:\n  churn_at: never\n  usage_in_mrr: true\n  gross_margin: 1.5\n",
            "config.yaml",
        )
    keys = [(p.line, p.key) for p in raised.value.problems]
    assert keys == [
        (2, "metrics.churn_at"),
        (3, "metrics.usage_in_mrr"),
        (4, "metrics.gross_margin"),
    ]


def test_the_report_section_sets_the_locale() -> None:
    assert parse_config("report:\n  locale: de\n").locale == "de"
    assert parse_config("").locale == "en"
    p = only_problem("report:\n  locale: xx_QQ_zz\n")
    assert (p.line, p.key) == (2, "report.locale")


def test_the_in_app_section_sets_the_widgets_origins_tokens_and_polling() -> None:
    from upsell.config.workspace import InAppSettings

    config = parse_config(
        'in_app:\n  origins: ["https://App.example.com/", "http://localhost:3000"]\n'
        "  require_user_token: true\n  poll_seconds: 120\n"
    )
    assert config.in_app == InAppSettings(
        origins=("https://app.example.com", "http://localhost:3000"),
        require_user_token=True,
        poll_seconds=120,
    )
    assert parse_config("").in_app == InAppSettings()
    with pytest.raises(ConfigError) as raised:
        parse_config(
            'in_app:\n  origins: ["app.example.com", "https://a.example/path"]\n'
            "  poll_seconds: 5\n  require_user_token: maybe\n",
            "config.yaml",
        )
    keys = [(p.line, p.key) for p in raised.value.problems]
    assert keys == [
        (2, "in_app.origins[0]"),
        (2, "in_app.origins[1]"),
        (3, "in_app.poll_seconds"),
        (4, "in_app.require_user_token"),
    ]
    assert "https://app.example.com" in raised.value.problems[0].message
