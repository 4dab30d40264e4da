"""The chat page at ``/``, the book widget's loader at ``/widget.js`` and the static files both load.

The front end is plain JavaScript modules and CSS in ``gateway/static`` (no build step). The files are few
and small, so they are read once, when this module is imported: a request can only name one of them (no
path from a URL ever reaches the filesystem), and each carries an ETag so browsers revalidate cheaply.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, Response, status

STATIC_DIR = Path(__file__).with_name("static")

_MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}

# The page's second lock (the first: answers become DOM text, never parsed as HTML): only this origin's
# own scripts, styles, images and socket. 'self' covers ws:/wss: to the same host (CSP level 3).
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'"
)

# The widget runs on the book's origin and imports its modules and stylesheet from here; module scripts
# are fetched in CORS mode, so every asset says any origin may use it (they are public and cookie-free).
_CROSS_ORIGIN = {"Access-Control-Allow-Origin": "*", "Cross-Origin-Resource-Policy": "cross-origin"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str
    etag: str


def load_assets(directory: Path) -> dict[str, Asset]:
    assets: dict[str, Asset] = {}
    for path in sorted(directory.iterdir()):
        media_type = _MEDIA_TYPES.get(path.suffix)
        if media_type is not None and path.is_file():
            body = path.read_bytes()
            assets[path.name] = Asset(body, media_type, f'"{hashlib.sha256(body).hexdigest()[:24]}"')
    return assets


ASSETS = load_assets(STATIC_DIR)


def asset_response(request: Request, asset: Asset, extra_headers: dict[str, str]) -> Response:
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
    headers.update(extra_headers)
    wanted = {tag.strip().removeprefix("W/") for tag in request.headers.get("if-none-match", "").split(",")}
    if asset.etag in wanted or "*" in wanted:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)


router = APIRouter(include_in_schema=False)


@router.api_route("/", methods=["GET", "HEAD"])
async def chat_page(request: Request) -> Response:
    """The chat (and what Spaces probes: it must answer 200 to GET and HEAD)."""
    return asset_response(
        request, ASSETS["index.html"], {"Content-Security-Policy": PAGE_POLICY, "Referrer-Policy": "same-origin"}
    )


@router.api_route("/widget.js", methods=["GET", "HEAD"])
async def widget_loader(request: Request) -> Response:
    return asset_response(request, ASSETS["widget.js"], _CROSS_ORIGIN)


@router.api_route("/static/{name}", methods=["GET", "HEAD"])
async def static_asset(name: str, request: Request) -> Response:
    asset = ASSETS.get(name)
    if asset is None or name == "index.html":
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    return asset_response(request, asset, _CROSS_ORIGIN)
