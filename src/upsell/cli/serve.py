"""`upsell serve`: the HTTP service on a workspace (docs/service.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from upsell.cli.console import errors, say
from upsell.cli.options import WorkspaceOption, open_workspace


def serve(
    workspace: WorkspaceOption = None,
    host: Annotated[
        str, typer.Option("--host", metavar="HOST", help="The address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", metavar="PORT", min=0, max=65535, help="The port.")
    ] = 8000,
) -> None:
    """Serve the workspace over HTTP: Segment, PostHog and Stripe ingestion, the admin API.

    Runs until interrupted (Ctrl-C or SIGTERM), then finishes the requests in flight.
    """
    import uvicorn

    from upsell.service.app import create_app

    with errors(), open_workspace(workspace) as ws:
        app = create_app(ws)
        say(f"Serving {ws.folder} on http://{host}:{port} (API docs at /docs).")
        uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30)
