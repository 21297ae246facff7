"""`upsell serve`: the HTTP service on a workspace (docs/service.md)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from upsell.cli.console import errors
from upsell.cli.options import WorkspaceOption, open_workspace

log = logging.getLogger("upsell.service")
#: How long a thread may hold the GIL while another waits for it (Python's default: 5 ms).
SWITCH_SECONDS = 0.0005


class _Stopped(BaseException):
    """SIGTERM or SIGINT, after uvicorn has drained the requests in flight (or before it ran)."""


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

    Runs until interrupted (Ctrl-C or SIGTERM), then finishes the requests in flight and exits 0.
    Logs are JSON lines on stderr.
    """
    # uvicorn handles SIGTERM and SIGINT while it serves: it stops accepting, drains the requests
    # in flight, then raises the signal again with the handler it found, this one.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop)
    with contextlib.suppress(_Stopped):
        _serve(workspace, host, port)
    _leave_cut_requests()


def _serve(workspace: Path | None, host: str, port: int) -> None:
    import uvicorn

    from upsell.service import logs
    from upsell.service.app import create_app

    with errors(), open_workspace(workspace) as ws:
        settings = ws.settings
        logs.configure(settings.service_log_level)
        app = create_app(ws)
        # The event loop answers the requests; the worker threads (ingestion, the messages API's
        # refresh) must not keep it waiting for the GIL for Python's default 5 ms.
        sys.setswitchinterval(SWITCH_SECONDS)
        log.info("serving %s on http://%s:%d (API docs at /docs)", ws.folder, host, port)
        if ws.config.in_app.demo_page:
            log.info("the demo page: http://%s:%d/demo", host, port)
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_config=None,
            log_level=settings.service_log_level,
            access_log=False,
            timeout_graceful_shutdown=settings.service_shutdown_seconds,
        )


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def _leave_cut_requests() -> None:
    """Exit now, even if a request cut at the shutdown timeout still has a worker thread blocked in
    the database (Python would wait for it): its answer was never sent, and its transaction is
    rolled back when the connection goes."""
    busy = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if busy:
        log.warning("exiting with %d request thread(s) still busy", len(busy))
        logging.shutdown()
        os._exit(0)
