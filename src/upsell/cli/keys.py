"""`upsell keys create|list|revoke`: the API keys of the service (docs/service.md, "Keys")."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from upsell.cli.console import err, errors, fail, say
from upsell.cli.options import WorkspaceOption, json_option, open_workspace

app = typer.Typer(
    name="keys",
    help="Create, list and revoke the service's API keys (docs/service.md).",
    no_args_is_help=True,
)

KINDS = ("write", "publishable", "admin")


def _kind(value: str) -> str:
    if value not in KINDS:
        raise typer.BadParameter(f"must be one of {', '.join(KINDS)}, got {value!r}")
    return value


@app.command("create")
def create(
    kind: Annotated[
        str,
        typer.Option(
            "--kind",
            metavar="KIND",
            callback=_kind,
            help="write (sends data: Segment, PostHog, Stripe backfills) | publishable (the "
            "browser widget) | admin (reads and triggers: a Bearer token).",
        ),
    ],
    name: Annotated[
        str | None, typer.Option("--name", metavar="N", help="A label to recognise the key by.")
    ] = None,
    workspace: WorkspaceOption = None,
) -> None:
    """Make a key and print it on stdout, once: only a hash of it is stored."""
    from upsell.store.keys import create_key

    with errors(), open_workspace(workspace) as ws, ws.db.begin() as conn:
        key, text = create_key(conn=conn, kind=kind, name=name)
    typer.echo(text)
    say(
        f"Created {key.kind} key {key.key_id}{f' ({name})' if name else ''}. Keep it now: "
        "upsell stores only its hash and cannot show it again."
    )


@app.command("list")
def list_(
    workspace: WorkspaceOption = None,
    as_json: Annotated[bool, json_option("Print the keys as JSON on stdout.")] = False,
) -> None:
    """List the keys (never their secrets): id, kind, name, created, revoked."""
    from upsell.store.keys import list_keys

    with errors(), open_workspace(workspace) as ws, ws.db.connect() as conn:
        keys = list_keys(conn=conn)
    if as_json:
        rows = [
            {
                "key_id": k.key_id,
                "kind": k.kind,
                "name": k.name,
                "created_at": k.created_at.isoformat(),
                "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
            }
            for k in keys
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    if not keys:
        say("No keys yet: make one with `upsell keys create --kind write`.")
        return
    table = Table("key id", "kind", "name", "created", "revoked")
    for k in keys:
        table.add_row(
            k.key_id,
            k.kind,
            k.name or "",
            k.created_at.strftime("%Y-%m-%d %H:%M"),
            k.revoked_at.strftime("%Y-%m-%d %H:%M") if k.revoked_at else "",
        )
    Console().print(table)


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(metavar="KEY_ID", help="The key's id (or the key).")],
    workspace: WorkspaceOption = None,
) -> None:
    """Revoke a key: from now on it gets 401 (a server notices within 5 seconds)."""
    from upsell.store.keys import revoke_key

    with errors(), open_workspace(workspace) as ws, ws.db.begin() as conn:
        key = revoke_key(conn=conn, key_id=key_id)
    if key is None:
        raise fail(f"no key {key_id!r} in this workspace: `upsell keys list` shows them")
    err.print(f"Revoked {key.kind} key {key.key_id}.", highlight=False)


@app.command("secret")
def secret(
    purpose: Annotated[
        str,
        typer.Argument(
            metavar="PURPOSE",
            help="user_token (signs user ids for the widget) | checkout (signs the offer token "
            "handed to your checkout).",
        ),
    ],
    rotate: Annotated[
        bool,
        typer.Option("--rotate", help="Replace the secret: tokens signed with the old one fail."),
    ] = False,
    workspace: WorkspaceOption = None,
) -> None:
    """Print a signing secret of the workspace (made on first use), for your backend to sign
    user ids or verify offer tokens with (docs/in-app.md)."""
    from upsell.store.secrets import PURPOSES, rotate_secret, signing_secret

    if purpose not in PURPOSES:
        raise fail(f"no signing secret {purpose!r}: choose one of {', '.join(PURPOSES)}")
    with errors(), open_workspace(workspace) as ws, ws.db.begin() as conn:
        text = (rotate_secret if rotate else signing_secret)(conn=conn, purpose=purpose)
    typer.echo(text)
    if rotate:
        say(f"Rotated the {purpose} secret: a running server uses it within 5 seconds.")
