"""The service's logs: one JSON object a line on stderr, each tagged with its request's id.

`RequestLog` is a pure ASGI middleware (no per-request objects beyond a closure): it takes the
request's ``X-Request-ID`` (or makes one), keeps it in `request_id` for every record logged while the
request runs, returns it in the response's ``X-Request-ID``, and writes one access line per request
(method, path, status, duration_ms). It also hands the route template, status and duration to the
metrics (`upsell.service.metrics`). `configure` replaces uvicorn's text logs with `JsonFormatter`.
"""

from __future__ import annotations

import json
import logging
import logging.config
import re
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: The id of the request being served, in every log record made while it runs.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)

#: The route label of a request that matched no route (a 404): raw paths would be unbounded.
UNMATCHED = "<unmatched>"

access_log = logging.getLogger("upsell.access")

# An incoming X-Request-ID is kept when it is 1 to 128 visible ASCII characters; otherwise a new one.
_GOOD_ID = re.compile(rb"[\x21-\x7e]{1,128}")
# The attributes every LogRecord has; anything else on a record came as `extra=` and is logged.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's coloured copy of the message
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """A record as one JSON line of ASCII: time, level, logger, message, request_id, the `extra`
    fields, and the exception's traceback (``exception``)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id.get()
        if rid is not None:
            line["request_id"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # ASCII only: a path or a name may hold U+2028, U+0085 or other characters that some
        # line readers (Python's str.splitlines among them) take for line breaks.
        return json.dumps(line, default=str, ensure_ascii=True)


def config(level: str) -> dict[str, Any]:
    """The `logging.config.dictConfig` of `upsell serve`: every logger, uvicorn's included, as JSON
    on stderr at `level`; uvicorn's own access log off (`RequestLog` writes one line instead)."""
    name = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": name},
        "loggers": {
            "uvicorn": {"handlers": [], "level": name, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": name, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            # Alembic says which database it is on each time /readyz reads the migration.
            "alembic": {"level": "WARNING"},
        },
    }


def configure(level: str) -> None:
    """Log as `config` says, Python's warnings included."""
    logging.config.dictConfig(config(level))
    logging.captureWarnings(True)


Observe = Callable[[str, str, int, float], None]


class RequestLog:
    """ASGI middleware: the request id, one access line a request, and `observe(route, method,
    status, seconds)` for the metrics. An exception out of the app counts as a 500: the error
    handler outside this middleware answers it and logs the traceback with the same request id."""

    def __init__(self, app: ASGIApp, observe: Observe) -> None:
        self.app = app
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        rid = _incoming_id(scope) or uuid.uuid4().hex
        # Not reset on the way out: the server error handler, outside this middleware, logs with it.
        # Each request runs in its own task (its own copy of the context), so it cannot leak.
        request_id.set(rid)
        header = (b"x-request-id", rid.encode("ascii"))
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:  # an error, or the cancellation of a request cut at shutdown
            status = 500  # what the server answers for both
            raise
        finally:
            seconds = time.perf_counter() - start
            method, path = scope["method"], scope["path"]
            status = status or 499  # as nginx: the client left before an answer was started
            template = _template(scope, status)
            self.observe(template, method, status, seconds)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %d",
                    method,
                    path,
                    status,
                    extra={
                        "method": method,
                        "path": path,
                        "route": template,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 3),
                    },
                )


def _template(scope: Scope, status: int) -> str:
    """The route's template (``/admin/runs/{run_id}``); for the few plain Starlette routes (FastAPI's
    /openapi.json and /docs), which name no route in the scope, their path when they answered."""
    route = scope.get("route")
    if route is not None:
        path: str = route.path
        return path
    return scope["path"] if "endpoint" in scope and status < 400 else UNMATCHED


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            return value.decode("ascii") if _GOOD_ID.fullmatch(value) else None
    return None
