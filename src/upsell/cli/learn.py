"""`upsell learn`: fit the answers model on the workspace's own outcomes (docs/learning.md)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from upsell.cli.console import errors
from upsell.cli.options import WorkspaceOption, json_option, open_workspace

if TYPE_CHECKING:
    from upsell.domain.answers import Answers


def learn(
    workspace: WorkspaceOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Fit and report, but store nothing.")
    ] = False,
    as_json: Annotated[bool, json_option("Print the fit and its evaluation as JSON.")] = False,
) -> None:
    """Fit who answers which offers from the decisions whose window has closed (treated and held
    out), store the fit for `upsell run` and the real-time triggers, and report the data used,
    cross-validated AUC, Brier score, Qini and calibration."""
    from upsell.flows.learn import evaluation_json
    from upsell.flows.learn import learn as fit

    with errors(), open_workspace(workspace) as ws:
        learned = fit(ws, save=not dry_run)
        settings = ws.playbooks(ws.catalog()).settings.learning
    e = learned.evaluation
    groups = _groups(learned.answers)
    if as_json:
        out = {
            "version": learned.answers.version,
            "data_end": learned.data_end.isoformat(),
            "decisions": learned.decisions,
            "pending": learned.pending,
            "in_use": settings.use and learned.decisions >= settings.min_decisions,
            "evaluation": evaluation_json(e),
            "groups": groups,
        }
        typer.echo(json.dumps(out, indent=2))
        return
    stored = "not stored (--dry-run)" if dry_run else f"stored as version {learned.answers.version}"
    typer.echo(
        f"Fitted on {learned.decisions:,} decisions whose window closed by "
        f"{learned.data_end.date()} ({e.treated:,} treated, {e.held_out:,} held out, "
        f"{e.converted:,} treated converted; {learned.pending:,} still pending): {stored}."
    )
    if not settings.use:
        typer.echo("playbooks.yaml's settings.learning.use is false: runs decide by the prior.")
    elif learned.decisions < settings.min_decisions:
        typer.echo(
            f"Runs keep deciding by the prior until the fit rests on "
            f"{settings.min_decisions:,} decisions (settings.learning.min_decisions)."
        )
    typer.echo("")
    typer.echo("Out of sample (5-fold cross-validation by account):")
    typer.echo(
        f"  AUC of P(accept)     {_num(e.auc)}  (its groups alone: {_num(e.auc_groups)}; "
        f"the prior alone: {_num(e.auc_prior)})"
    )
    typer.echo(f"  Brier score          {_num(e.brier)}  (the prior alone: {_num(e.brier_prior)})")
    typer.echo(f"  Qini (normalised)    {_num(e.qini)}")
    for label, alpha in (("P(accept)", e.treated_alpha), ("buying anyway", e.held_out_alpha)):
        kept = "none (the groups alone did as well)" if alpha is None else f"L2 penalty {alpha:g}"
        typer.echo(f"  per-account model of {label}: {kept}")
    if e.calibration:
        typer.echo("  calibration: decisions, mean P(accept), observed conversion")
        for c in e.calibration:
            typer.echo(f"    {c.decisions:>7,}  {c.predicted:8.4f}  {c.observed:8.4f}")
    typer.echo("")
    typer.echo("By group: treated, converted; P(accept) and P(buying anyway) as multiples of")
    typer.echo("the prior's; the churn a contact adds")
    for g in groups:
        typer.echo(
            f"  {g['group']:<48} {g['treated']:>6,} {g['converted']:>6,}  x{g['multiplier']:.2f}"
            f"  x{g['anyway']:.3f}  {g['churn_push']:+.3f}"
        )


def _groups(answers: Answers) -> list[dict[str, Any]]:
    out = []
    for key, c in sorted(answers.counts.items()):
        parts = key.split("/")
        if len(parts) not in (4, 5):
            continue
        post = answers.posterior(*parts[:4], dearer=len(parts) == 5)
        out.append(
            {
                "group": key,
                "treated": c.treated,
                "converted": c.conversions,
                "held_out": c.held_out,
                "multiplier": round(post.multiplier, 4),
                "anyway": round(post.anyway, 4),
                "churn_push": round(post.churn_push, 4),
            }
        )
    return out


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
