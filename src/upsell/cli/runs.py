"""`upsell run` and `upsell playbooks`: the tables on the terminal."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from rich import box
from rich.console import Console
from rich.table import Table

from upsell.domain.playbooks import Condition, Playbooks
from upsell.runs import RunResult
from upsell.templates import TemplateReport


def _counts(console: Console, title: str, header: str, counts: Iterable[tuple[str, int]]) -> None:
    rows = list(counts)
    if not rows:
        return
    t = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    t.add_column(header, no_wrap=True)
    t.add_column("count", justify="right", no_wrap=True)
    for name, n in rows:
        t.add_row(name, f"{n:,}")
    console.print(t)


def print_run(console: Console, r: RunResult) -> None:
    lines = r.lines
    what = "decided (dry run: nothing recorded or sent)" if r.dry_run else "decided"
    value = sum(float(line.get("expected_value") or 0) for line in lines)
    console.print(
        f"\nAs of {r.as_of}: {len(lines):,} offers {what}, "
        f"{len(r.held_out) + r.held_out_reused:,} held out, "
        f"{r.opportunities.accounts:,} accounts; expected value {value:,.2f} (base currency)"
        + (f"; {r.reused:,} accounts kept the decision of an earlier run" if r.reused else "")
        + ".",
        highlight=False,
        soft_wrap=True,
    )
    _counts(console, "Offers by kind", "kind", Counter(x["kind"] for x in lines).most_common())
    _counts(
        console,
        "Offers by channel",
        "channel",
        Counter(f"{x['channel']} {x['placement']}" for x in lines).most_common(),
    )
    _counts(
        console,
        "Offers by playbook",
        "playbook",
        Counter(
            x["playbook"] + (f" ({x['variant']})" if x.get("variant") else "") for x in lines
        ).most_common(),
    )
    _counts(
        console,
        "Refusals by guardrail",
        "guardrail",
        Counter(x.guardrail for x in r.refusals).most_common(),
    )
    _counts(console, "Accounts stopped by an opportunity gate", "gate", r.gates.most_common())
    if r.delivered:
        _counts(
            console,
            "Deliveries",
            "channel: status",
            sorted((f"{c}: {s}", n) for (c, s), n in r.delivered.items()),
        )
    for account_id, channel, detail in r.failures[:10]:
        console.print(
            f"[yellow]failed:[/] {account_id} by {channel}: {detail}",
            highlight=False,
            soft_wrap=True,
        )
    if r.failures:
        console.print(
            f"{len(r.failures):,} deliveries failed; run the same --as-of again to retry them.",
            highlight=False,
        )


def print_message(console: Console, line: dict[str, object]) -> None:
    """One decision's message in full, as the customer would read it."""
    m = line["message"]
    assert isinstance(m, dict)
    console.print(
        f"\nFor example, {line['account_id']} ({line['playbook']}, {line['channel']} "
        f"{line['placement']}, {m['locale']}):",
        highlight=False,
    )
    console.print(f"  [bold]{m['subject']}[/]", highlight=False, soft_wrap=True)
    for paragraph in str(m["body"]).split("\n\n"):
        console.print(f"  {paragraph}", highlight=False, soft_wrap=True, markup=False)
    console.print(f"  [{m['cta']}] {m['cta_url']}", highlight=False, soft_wrap=True, markup=False)


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
