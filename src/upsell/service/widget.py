"""``GET /widget.js``: the in-app widget (docs/in-app.md, "The widget"), one static script.

The script ships in the package (``service/static/widget.js``) and is read once. It is answered with
an ETag (a 304 when the browser's copy is current), an hour of caching, and gzip-compressed when the
client accepts it (its compressed form is made once, at level 9).
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Request, Response

router = APIRouter(tags=["in-app"])

MEDIA_TYPE = "text/javascript; charset=utf-8"
#: Browsers keep the script an hour, then ask again with If-None-Match (a 304 when unchanged).
CACHE_CONTROL = "public, max-age=3600"


@dataclass(frozen=True)
class Asset:
    plain: bytes
    gzipped: bytes
    etag: str  # the plain form's; the gzipped form's is the same with -gz

    def tag(self, gz: bool) -> str:
        return f'"{self.etag}-gz"' if gz else f'"{self.etag}"'


@cache
def widget() -> Asset:
    """The widget script, its gzipped bytes and its ETag."""
    plain = files("upsell.service").joinpath("static/widget.js").read_bytes()
    return Asset(
        plain=plain,
        gzipped=gzip.compress(plain, compresslevel=9, mtime=0),
        etag=hashlib.sha256(plain).hexdigest()[:20],
    )


def _accepts_gzip(header: str) -> bool:
    """Accept-Encoding names gzip (or ``*``) with a weight above 0."""
    for part in header.split(","):
        coding, *params = (p.strip().lower() for p in part.split(";"))
        if coding in ("gzip", "*"):
            for param in params:
                name, _, value = param.partition("=")
                if name.strip() == "q":
                    try:
                        return float(value) > 0
                    except ValueError:
                        return False
            return True
    return False


def _matches(if_none_match: str, asset: Asset) -> bool:
    """If-None-Match names this script, in either encoding (the weak comparison of RFC 9110)."""
    if if_none_match.strip() == "*":
        return True
    tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
    return bool(tags & {asset.tag(False), asset.tag(True)})


@router.get(
    "/widget.js",
    response_class=Response,
    responses={
        200: {"content": {"text/javascript": {}}, "description": "The widget script"},
        304: {"description": "The copy named by If-None-Match is current"},
    },
)
async def widget_js(request: Request) -> Response:
    """The in-app widget script (docs/in-app.md): embed it with a publishable key."""
    asset = widget()
    gz = _accepts_gzip(request.headers.get("accept-encoding", ""))
    headers = {
        "ETag": asset.tag(gz),
        "Cache-Control": CACHE_CONTROL,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
        "Access-Control-Allow-Origin": "*",
    }
    if _matches(request.headers.get("if-none-match", ""), asset):
        return Response(status_code=304, headers=headers)
    if gz:
        headers["Content-Encoding"] = "gzip"
    return Response(asset.gzipped if gz else asset.plain, media_type=MEDIA_TYPE, headers=headers)
