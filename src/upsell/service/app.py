"""The service's application: one FastAPI app over one open `Workspace`.

`create_app` wires the routers; each router module is one door (Segment, PostHog, Stripe, the
admin API, operations) and calls the store functions and flows the CLI calls.
"""

from __future__ import annotations

from fastapi import FastAPI

from upsell import __version__
from upsell.service import (
    admin,
    checkout,
    demo,
    errors,
    health,
    logs,
    messages,
    metrics,
    posthog,
    scheduler,
    segment,
    stripe,
    triggers,
    widget,
)
from upsell.service.auth import Keys
from upsell.workspace import Workspace

DESCRIPTION = """upsell's HTTP service (docs/service.md): Segment- and PostHog-compatible ingestion,
Stripe webhooks, the admin API, and the in-app widget's messages API (docs/in-app.md). Write keys as HTTP Basic user names (Segment) or in the body;
admin tokens as `Authorization: Bearer`. Every error is JSON `{"code", "message"}`."""


def create_app(ws: Workspace) -> FastAPI:
    """The app serving `ws`; the caller opens and closes the workspace."""
    app = FastAPI(
        title="upsell", version=__version__, description=DESCRIPTION, lifespan=scheduler.lifespan
    )
    app.state.workspace = ws
    app.state.jobs = scheduler.Jobs(ws)
    app.state.keys = Keys(ws.db)
    app.state.metrics = metrics.Metrics(ws.db)
    app.state.triggers = triggers.Triggers(ws, app.state.metrics)
    app.add_middleware(messages.FastMessages)  # innermost: inside CORS and the request log
    app.add_middleware(messages.BrowserOrigins, origins=ws.config.in_app.origins)
    app.add_middleware(logs.RequestLog, observe=app.state.metrics.observe_request)
    errors.install(app)
    app.include_router(messages.router)  # first: every browser polls it (routes match in order)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(admin.router)
    app.include_router(segment.router)
    app.include_router(posthog.router)
    app.include_router(stripe.router)
    app.include_router(checkout.router)
    app.include_router(widget.router)
    app.include_router(demo.router)
    return app
