"""Docs that cannot drift (datasette's test_docs): the CLI reference, settings and reserved events."""

from __future__ import annotations

from pathlib import Path

from upsell.cli import docs
from upsell.domain.events import RESERVED_EVENTS
from upsell.ingest.rows import COLUMNS
from upsell.settings import Settings

ROOT = Path(__file__).parent.parent


def test_cli_reference_is_generated_from_the_cli() -> None:
    assert (ROOT / "docs" / "cli.md").read_text() == docs.render(), "run `make docs`"


def test_every_command_is_in_the_cli_reference_and_the_readme_tour() -> None:
    reference = (ROOT / "docs" / "cli.md").read_text()
    readme = (ROOT / "README.md").read_text()
    for command in docs.commands():
        assert f"## upsell {command}" in reference
        assert f"upsell {command}" in readme


def test_every_setting_is_documented() -> None:
    """The workspace's variables in data-formats.md, the channels' in decisions.md, the service's
    (``UPSELL_SERVICE_*``, ``UPSELL_STRIPE_*``) in service.md."""
    formats = (ROOT / "docs" / "data-formats.md").read_text()
    decisions = (ROOT / "docs" / "decisions.md").read_text()
    service = (ROOT / "docs" / "service.md").read_text()
    for name in Settings.model_fields:
        if name.startswith(("smtp_", "webhook_", "csm_")):
            text = decisions
        elif name.startswith(("service_", "stripe_")):
            text = service
        else:
            text = formats
        assert f"UPSELL_{name.upper()}" in text, name


def test_every_reserved_event_and_input_column_is_documented() -> None:
    text = (ROOT / "docs" / "data-formats.md").read_text()
    for event in RESERVED_EVENTS:
        assert f"`{event}`" in text
    for kind, columns in COLUMNS.items():
        for column in columns:
            assert f"| {column.name} |" in text, f"{kind}.{column.name}"


def test_readme_quick_start_is_exactly_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    quick = readme.split("## Quick start", 1)[1].split("```", 2)[1]
    assert quick.strip().splitlines() == ["make demo", "make test"]


def test_every_decision_setting_fact_and_refusal_is_documented() -> None:
    from upsell.config._playbooks_reader import GUARDRAILS_KEYS, SETTINGS_KEYS
    from upsell.domain.decisions import REFUSALS
    from upsell.domain.playbooks import FACTS

    text = (ROOT / "docs" / "decisions.md").read_text()
    for code in REFUSALS:
        assert f"`{code}`" in text, code
    for fact in FACTS:
        assert f"| `{fact}` |" in text, fact
    for key in (*SETTINGS_KEYS, *GUARDRAILS_KEYS):
        assert f"`{key}" in text, key


def test_every_metric_setting_is_documented() -> None:
    from upsell.config.workspace import METRIC_KEYS

    text = (ROOT / "docs" / "metrics.md").read_text()
    for key in METRIC_KEYS:
        assert f"| `{key}` |" in text, key


def test_the_architecture_page_names_every_layer() -> None:
    """docs/architecture.md's table has a row for every package and top-level module of upsell."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    src = ROOT / "src" / "upsell"
    layers = {p.name + "/" for p in src.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    layers |= {p.name for p in src.glob("*.py") if p.stem not in ("__init__", "errors")}
    for layer in sorted(layers - {"defaults/"}):
        assert f"| `{layer}` |" in text, layer


def test_every_offer_kind_channel_placement_and_response_is_documented() -> None:
    from upsell.domain.events import RESPONSE_EVENTS
    from upsell.domain.offers import KINDS, PLACEMENTS

    decisions = (ROOT / "docs" / "decisions.md").read_text()
    formats = (ROOT / "docs" / "data-formats.md").read_text()
    kinds = next(line for line in decisions.splitlines() if line.startswith("| `kind` |"))
    assert all(kind in kinds for kind in KINDS), kinds
    placements = next(line for line in decisions.splitlines() if line.startswith("| `placement` |"))
    for channel, names in PLACEMENTS.items():
        assert f"{channel}: " + ", ".join(f"`{n}`" for n in names) in placements.replace(
            " and ", ", "
        ), channel
    for event, response in RESPONSE_EVENTS.items():
        row = next(line for line in formats.splitlines() if line.startswith(f"| `{event}` |"))
        assert f"response `{response}`" in row, event
