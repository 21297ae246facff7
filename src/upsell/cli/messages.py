"""`upsell messages --user U`: what the in-app widget would show a user now (docs/in-app.md)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from upsell.cli.console import errors, say
from upsell.cli.options import WorkspaceOption, json_option, open_workspace


def messages(
    user: Annotated[str, typer.Option("--user", metavar="U", help="The user's id (userId).")],
    account: Annotated[
        str | None,
        typer.Option("--account", metavar="A", help="Only this account of the user's."),
    ] = None,
    workspace: WorkspaceOption = None,
    as_json: Annotated[bool, json_option("Print the messages as GET /v1/messages does.")] = False,
) -> None:
    """Show the in-app messages GET /v1/messages would serve this user now, after the
    display-time guardrails (answered, expired, superseded, caps). Records nothing."""
    from datetime import UTC, datetime

    from upsell.flows.messages import messages_for
    from upsell.service.messages import message_json

    with errors(), open_workspace(workspace) as ws:
        found = messages_for(ws, user_id=user, account_id=account, now=datetime.now(UTC))
    if as_json:
        shown = [message_json(m.contact, due_today=m.due_today) for m in found]
        typer.echo(json.dumps({"messages": shown}, indent=2, ensure_ascii=False))
        return
    if not found:
        say(f"Nothing to show {user} now (GET /v1/messages would answer 204).")
        return
    for m in found:
        c = m.contact
        message = dict(c.message or {})
        typer.echo(f"{c.contact_id}  {c.account_id}  {c.placement}  {c.offer_id}")
        typer.echo(f"    {message.get('subject', '')}")
        due = f"  due today {m.due_today.as_string()} {m.due_today.currency}" if m.due_today else ""
        typer.echo(f"    [{message.get('cta', '')}] expires {message.get('expires_at')}{due}")
