"""The floor of the messages benchmark (bench/messages.py): a bare ASGI app that answers every
request with a fixed 2-byte JSON body, served by the same uvicorn (httptools, uvloop) as
`upsell serve`. Under the same load, its latency is what the machine, the load generator and the
HTTP server cost before upsell does anything."""

from __future__ import annotations

from typing import Any

_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"2")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": b"{}"})
