"""The chat page, the widget loader and their static files over HTTP (the browser tests use them for real)."""

from __future__ import annotations

import httpx

from tests.conftest import SettingsFactory
from tests.stack import running_gateway


async def test_the_root_is_the_chat_page(make_settings: SettingsFactory) -> None:
    async with running_gateway(make_settings()) as url, httpx.AsyncClient(base_url=url) as client:
        page = await client.get("/")
        head = await client.head("/")
    assert page.status_code == 200 and head.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="static/page.js">' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert head.headers["etag"] == page.headers["etag"]


async def test_the_widget_and_its_modules_load_from_another_origin(make_settings: SettingsFactory) -> None:
    book = {"Origin": "https://book.example"}
    async with running_gateway(make_settings()) as url, httpx.AsyncClient(base_url=url, headers=book) as client:
        loader = await client.get("/widget.js")
        modules = [await client.get(f"/static/{name}") for name in ("widget-app.js", "chat-core.js", "markdown.js")]
        stylesheet = await client.get("/static/chat.css")
    for response in (loader, *modules):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/javascript; charset=utf-8"
        assert response.headers["access-control-allow-origin"] == "*"
    assert "data-tutor-url" in loader.text or "tutorUrl" in loader.text
    assert stylesheet.headers["content-type"] == "text/css; charset=utf-8"


async def test_assets_revalidate_and_nothing_else_is_served(make_settings: SettingsFactory) -> None:
    async with running_gateway(make_settings()) as url, httpx.AsyncClient(base_url=url) as client:
        first = await client.get("/static/chat-core.js")
        again = await client.get("/static/chat-core.js", headers={"If-None-Match": first.headers["etag"]})
        missing = [
            await client.get(path)
            for path in ("/static/nope.js", "/static/index.html", "/static/..%2Fpages.py", "/static/../app.py")
        ]
    assert first.headers["cache-control"] == "no-cache"
    assert again.status_code == 304 and again.content == b""
    assert [r.status_code for r in missing] == [404] * len(missing)
