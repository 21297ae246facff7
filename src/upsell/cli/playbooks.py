"""`upsell playbooks check` and `upsell playbooks copy`: the decision step's files, checked or copied
into the workspace to edit."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from upsell.cli.console import EXIT_USAGE, err, errors, fail
from upsell.cli.options import WorkspaceOption, open_workspace
from upsell.domain.playbooks import Condition, Playbooks

if TYPE_CHECKING:
    from upsell.templates import TemplateReport

app = typer.Typer(
    name="playbooks",
    help="Check and copy the playbooks, guardrails and message templates (docs/decisions.md).",
    no_args_is_help=True,
)


@app.command("check")
def check(workspace: WorkspaceOption = None) -> None:
    """Validate playbooks.yaml and the templates it names, render every template in every
    language, and list the messages without a translation (they fall back to English).

    Exit status 2 when the playbooks or a template are invalid; missing translations are reported
    but do not fail the check.
    """
    from upsell.config.playbooks import playbook_warnings
    from upsell.templates import sample_facts

    with errors():
        with open_workspace(workspace) as ws:
            loaded = ws.loaded_catalog()
            catalog = loaded.catalog if loaded is not None else None
            found = ws.load_playbooks(catalog)
            templates = ws.templates
        source = "built-in defaults" if found.default else found.file
        print_playbooks(err, found.playbooks, source)
        if catalog is not None:
            text = Path(found.file).read_text(encoding="utf-8")
            for w in playbook_warnings(found.playbooks, catalog, text=text, file=found.file):
                err.print(f"[yellow]{w}[/]", highlight=False, soft_wrap=True)
        report = templates.check(found.playbooks.templates, catalog, sample=sample_facts())
        print_template_report(err, report)
        if any(p.severity == "error" for p in report.problems):
            raise typer.Exit(EXIT_USAGE)
        err.print("The playbooks are valid.", highlight=False)


@app.command("copy")
def copy(
    workspace: WorkspaceOption = None,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite files the workspace already has.")
    ] = False,
) -> None:
    """Copy the built-in playbooks.yaml, templates/ and locale/ into the workspace to edit them.

    The workspace's files then take precedence: playbooks.yaml replaces the built-in one, a
    template or translation file replaces the built-in one of the same name.
    """
    from upsell.templates import DEFAULTS

    with errors():
        with open_workspace(workspace) as ws:
            folder = ws.folder
        pairs = [(DEFAULTS / "playbooks.yaml", folder / "playbooks.yaml")]
        for sub in ("templates", "locale"):
            pairs += [(f, folder / sub / f.name) for f in sorted((DEFAULTS / sub).iterdir())]
        existing = [str(dst) for _, dst in pairs if dst.exists()]
        if existing and not force:
            raise fail(
                f"{len(existing)} files exist already (first: {existing[0]}); use --force to "
                "overwrite them"
            )
        for src, dst in pairs:
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        err.print(
            f"Copied playbooks.yaml and {len(pairs) - 1} template and translation files into "
            f"{folder}. Check them with `upsell playbooks check`.",
            highlight=False,
        )


def _trigger(conditions: tuple[Condition, ...]) -> str:
    parts = []
    for c in conditions:
        value = ", ".join(c.value) if isinstance(c.value, tuple) else str(c.value)
        parts.append(f"{c.fact} {c.op.replace('_', ' ')} {value}")
    return "; ".join(parts) or "(always)"


def print_playbooks(console: Console, playbooks: Playbooks, source: str) -> None:
    console.print(f"\nPlaybooks ({source}):", highlight=False)
    for p in playbooks.playbooks:
        offer = []
        if p.offer.trial_days:
            offer.append(f"{p.offer.trial_days}-day trial")
        if p.offer.discount_percent is not None:
            offer.append(f"{p.offer.discount_percent}% off")
        if p.offer.promotion:
            offer.append(f"promotion {p.offer.promotion}")
        if p.offer.deadline_days:
            offer.append(f"ends after {p.offer.deadline_days} days")
        line = (
            f"  [bold]{p.id}[/]: when {_trigger(p.trigger)} → {p.channel} {p.placement}, "
            f"template {p.template}"
        )
        if offer:
            line += ", " + ", ".join(offer)
        if p.experiment is not None:
            arms = ", ".join(v.id for v in p.experiment.variants)
            line += f"; experiment {p.experiment.id} ({arms})"
        console.print(line, highlight=False, soft_wrap=True)
    s, g = playbooks.settings, playbooks.guardrails
    console.print(
        f"Holdout {s.holdout_share:.0%} (key {s.holdout_key!r}); caps: "
        + "; ".join(c.label for c in g.caps)
        + f"; cooldown after a dismissal {g.dismissed_cooldown_days} days.",
        highlight=False,
        soft_wrap=True,
    )


def print_template_report(console: Console, report: TemplateReport, *, show: int = 8) -> None:
    for p in report.problems:
        style = "yellow" if p.severity == "warning" else "red"
        console.print(f"[{style}]{p}[/]", highlight=False, soft_wrap=True)
    if not report.missing:
        console.print("Every message is translated in every language.", highlight=False)
        return
    for m in report.missing:
        total = len(m.messages) + len(m.terms)
        console.print(
            f"[yellow]{m.language}:[/] {total:,} messages without a translation "
            "(shown in English):",
            highlight=False,
        )
        for text in [*m.messages, *m.terms][:show]:
            console.print(f"  {text}", highlight=False, markup=False, soft_wrap=True)
        if total > show:
            console.print(f"  ... and {total - show:,} more", highlight=False)
