"""A docs folder rendered as a Docusaurus-like site and served from 127.0.0.1, with its ``sitemap.xml``.

For tests and the evaluation only: indexing "a deployed Docusaurus site by its sitemap" needs a site, and
nothing may reach the internet. Pages follow the classic theme's markup closely enough to exercise what
matters: the article inside navigation, sidebar, breadcrumbs, table of contents, edit link, pagination and
footer; headings with ``id`` anchors and ``#`` links; admonitions; code blocks as token lines with a copy
button; the optional end tags (``</p>``, ``</li>``, ``</td>``…) left out, as Docusaurus Faster's minifier
does; and the pages around the docs (home, search, blog, a tag listing) that are not part of the book.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from markdown_it import MarkdownIt
from markdown_it.token import Token
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from worker.knowledge.doc_routes import HeadingSlugger, doc_route
from worker.knowledge.documents import DocumentError
from worker.knowledge.front_matter import split_front_matter
from worker.knowledge.markdown_chunks import read_markdown_file
from worker.knowledge.markdown_parser import new_parser
from worker.knowledge.sources import markdown_files

SITE_TITLE = "Physical AI Book"
_ESM_LINE = re.compile(r"^(?:import|export)\s.*$")
_EXPLICIT_ANCHOR = re.compile(r"\s*\{#([^}\s]+)\}\s*$")
# what the HTML standard lets a page leave out, and Docusaurus Faster's minifier does (code is escaped text)
_OPTIONAL_END_TAG = re.compile(r"</(?:p|li|dt|dd|thead|tbody|tr|th|td)>")

Endpoint = Callable[[Request], Any]


@dataclass
class Page:
    route: str  # e.g. "/docs/ros2/nodes-and-topics"
    title: str
    doc: str  # the source file, relative to the folder
    html: str


@dataclass
class RenderedSite:
    pages: dict[str, Page] = field(default_factory=dict)  # route -> page
    other: dict[str, str] = field(default_factory=dict)  # route -> html of non-doc pages
    skipped: list[tuple[str, str]] = field(default_factory=list)  # files Docusaurus would refuse


def render_site(folder: Path, base_path: str = "/docs") -> RenderedSite:
    """Every page of the docs folder, plus a home page, a search page, a blog post and a tag listing."""
    site = RenderedSite()
    base = "/" + base_path.strip("/") if base_path.strip("/") else ""
    parser = _renderer()
    entries: list[tuple[str, str, str, str]] = []  # route, title, doc, body html
    for path, doc in markdown_files(folder):
        if any(part.startswith("_") for part in PurePosixPath(doc).parts):
            continue
        try:
            text = read_markdown_file(path)
            front, body = split_front_matter(text.replace("\r\n", "\n"))
            if front.get("draft") is True:
                continue
            route = base + doc_route(doc, front)
        except DocumentError as exc:
            site.skipped.append((doc, str(exc)))
            continue
        body = _strip_esm(body)
        env: dict[str, Any] = {"slugger": HeadingSlugger(), "toc": []}
        rendered = _OPTIONAL_END_TAG.sub("", parser.render(body, env))
        title_value = front.get("title")
        has_h1 = "<h1" in rendered
        title = str(title_value) if isinstance(title_value, str | int | float) and str(title_value).strip() else ""
        if not title:
            match = re.search(r"<h1[^>]*>(.*?)</h1>", rendered, re.DOTALL)
            title = _text(match.group(1)) if match else PurePosixPath(doc).stem
        if not has_h1:
            rendered = f"<header><h1>{html.escape(title)}</h1></header>\n{rendered}"
        entries.append((route.rstrip("/") or "/", title, doc, rendered + _toc_marker(env["toc"])))
    sidebar = "".join(
        f'<li class="theme-doc-sidebar-item-link menu__list-item"><a class="menu__link" href="{r}">'
        f"{html.escape(t)}</a></li>"
        for r, t, _, _ in entries
    )
    for index, (route, title, doc, body) in enumerate(entries):
        body, toc = _split_toc(body)
        previous = entries[index - 1] if index > 0 else None
        following = entries[index + 1] if index + 1 < len(entries) else None
        site.pages[route] = Page(
            route, title, doc, _doc_page(route, title, doc, body, toc, sidebar, previous, following)
        )
    site.other["/"] = _home_page()
    site.other["/search"] = _search_page()
    site.other["/blog/welcome"] = _blog_page()
    site.other[f"{base}/tags/robotics"] = _tags_page([(r, t) for r, t, _, _ in entries[:5]])
    return site


def site_app(
    site: RenderedSite,
    *,
    handlers: dict[str, Endpoint] | None = None,
    extra_sitemap_paths: Sequence[str] = (),
) -> Starlette:
    """Serve ``site`` and its ``/sitemap.xml`` (URLs built from the request's own host and port).

    ``handlers`` replace or add routes (a test's slow, failing or odd pages); their paths are listed in
    the sitemap too, as are ``extra_sitemap_paths``."""
    handlers = dict(handlers or {})

    async def sitemap(request: Request) -> Response:
        root = str(request.base_url).rstrip("/")
        paths = [*site.other, *site.pages, *handlers, *extra_sitemap_paths]
        entries = "".join(
            f"<url><loc>{html.escape(root + path)}</loc><changefreq>weekly</changefreq><priority>0.5</priority></url>"
            for path in dict.fromkeys(paths)
            if path != "/sitemap.xml"
        )
        body = f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>'
        return Response(body, media_type="application/xml")

    async def page(request: Request) -> Response:
        path = "/" + request.path_params["path"].strip("/")
        if path in handlers:
            result: Response = await handlers[path](request)
            return result
        if path in site.pages:
            return HTMLResponse(site.pages[path].html)
        if path in site.other:
            return HTMLResponse(site.other[path])
        return PlainTextResponse("Page Not Found", status_code=404)

    routes = [Route("/sitemap.xml", sitemap)] if "/sitemap.xml" not in handlers else []
    routes.append(Route("/{path:path}", page))
    return Starlette(routes=routes)


# --------------------------------------------------------------------------------------------------
# Markdown -> Docusaurus-like HTML


def _strip_esm(body: str) -> str:
    out: list[str] = []
    fence: str | None = None
    for line in body.split("\n"):
        stripped = line.strip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
        elif fence is not None and stripped.startswith(fence):
            fence = None
        if fence is None and _ESM_LINE.match(line):
            continue
        out.append(line)
    return "\n".join(out)


def _text(fragment: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", fragment)).strip()


def _renderer() -> MarkdownIt:
    md = new_parser()
    rules = md.renderer.rules

    def heading_open(tokens: Sequence[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
        token = tokens[idx]
        inline = tokens[idx + 1]
        level = int(token.tag[1])
        text = "".join(child.content for child in inline.children or [] if child.type in {"text", "code_inline"})
        explicit = _EXPLICIT_ANCHOR.search(text)
        if explicit is not None:
            anchor = env["slugger"].reserve(explicit.group(1))
            for child in inline.children or []:
                if child.type == "text":
                    child.content = _EXPLICIT_ANCHOR.sub("", child.content)
            text = _EXPLICIT_ANCHOR.sub("", text)
        else:
            anchor = env["slugger"].slug(text)
        if level == 1:
            return "<header><h1>"
        env["toc"].append((level, anchor, text))
        token.meta = {"anchor": anchor, "label": text}
        return f'<h{level} class="anchor anchorWithStickyNavbar_LWe7" id="{html.escape(anchor)}">'

    def heading_close(tokens: Sequence[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
        level = int(tokens[idx].tag[1])
        if level == 1:
            return "</h1></header>\n"
        opening = next(t for t in reversed(tokens[:idx]) if t.type == "heading_open")
        anchor = html.escape(opening.meta.get("anchor", ""))
        label = html.escape(opening.meta.get("label", ""))
        return (
            f'<a href="#{anchor}" class="hash-link" aria-label="Direct link to {label}" '
            f'title="Direct link to {label}">\u200b</a></h{level}>\n'
        )

    def fence(tokens: Sequence[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
        token = tokens[idx]
        language = token.info.strip().split(" ")[0] or "text"
        lines = token.content.rstrip("\n").split("\n")
        body = "".join(
            f'<span class="token-line" style="color:#393A34"><span class="token plain">{html.escape(line)}</span>'
            "<br></span>"
            for line in lines
        )
        return (
            f'<div class="language-{html.escape(language)} codeBlockContainer_Ckt0 theme-code-block">'
            f'<div class="codeBlockContent_biex"><pre tabindex="0" class="prism-code language-{html.escape(language)}'
            f' codeBlock_bY9V thin-scrollbar"><code class="codeBlockLines_e6Vv">{body}</code></pre>'
            '<div class="buttonGroup__atx"><button type="button" aria-label="Copy code to clipboard" '
            'title="Copy" class="clean-btn">Copy</button></div></div></div>\n'
        )

    def admonition_open(tokens: Sequence[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
        token = tokens[idx]
        kind = html.escape(token.info or "note")
        title = html.escape(str((token.meta or {}).get("title") or kind))
        return (
            f'<div class="theme-admonition theme-admonition-{kind} admonition_xJq3 alert alert--info">'
            f'<div class="admonitionHeading_Gvgb"><span class="admonitionIcon_Rf37"><svg viewBox="0 0 14 16">'
            f'<path></path></svg></span>{title}</div><div class="admonitionContent_BuS1">'
        )

    def admonition_close(tokens: Sequence[Token], idx: int, options: Any, env: dict[str, Any]) -> str:
        return "</div></div>\n"

    rules["heading_open"] = heading_open
    rules["heading_close"] = heading_close
    rules["fence"] = fence
    rules["admonition_open"] = admonition_open
    rules["admonition_close"] = admonition_close
    return md


_TOC_START = "<!--toc:"


def _toc_marker(toc: list[tuple[int, str, str]]) -> str:
    items = "".join(
        f'<li><a href="#{html.escape(anchor)}" class="table-of-contents__link toc-highlight">'
        f"{html.escape(label)}</a></li>"
        for level, anchor, label in toc
        if level <= 3
    )
    return f"{_TOC_START}{items}-->"


def _split_toc(body: str) -> tuple[str, str]:
    start = body.rfind(_TOC_START)
    if start < 0:
        return body, ""
    return body[:start], body[start + len(_TOC_START) : -3]


def _navbar() -> str:
    return (
        '<nav aria-label="Main" class="navbar navbar--fixed-top"><div class="navbar__inner">'
        f'<a class="navbar__brand" href="/"><b class="navbar__title text--truncate">{SITE_TITLE}</b></a>'
        '<a class="navbar__item navbar__link" href="/docs/">Book</a>'
        '<a class="navbar__item navbar__link" href="/blog/welcome">Blog</a></div></nav>'
    )


def _footer() -> str:
    return (
        '<footer class="footer footer--dark"><div class="container container-fluid">'
        f'<div class="footer__copyright">Copyright © 2025 {SITE_TITLE}. Built with Docusaurus.</div>'
        "</div></footer>"
    )


def _document(title: str, html_class: str, content: str) -> str:
    return (
        f'<!doctype html><html lang="en" dir="ltr" class="{html_class}" data-has-hydrated="false"><head>'
        f'<meta charset="UTF-8"><title>{html.escape(title)} | {SITE_TITLE}</title>'
        '<link rel="stylesheet" href="/assets/css/styles.css"></head><body class="navigation-with-keyboard">'
        f'<div id="__docusaurus">{_navbar()}{content}{_footer()}</div>'
        '<script src="/assets/js/runtime~main.js" defer></script></body></html>'
    )


def _doc_page(
    route: str,
    title: str,
    doc: str,
    body: str,
    toc: str,
    sidebar: str,
    previous: tuple[str, str, str, str] | None,
    following: tuple[str, str, str, str] | None,
) -> str:
    pagination = ""
    if previous is not None:
        pagination += (
            f'<a class="pagination-nav__link pagination-nav__link--prev" href="{previous[0]}">'
            f'<div class="pagination-nav__sublabel">Previous</div>'
            f'<div class="pagination-nav__label">{html.escape(previous[1])}</div></a>'
        )
    if following is not None:
        pagination += (
            f'<a class="pagination-nav__link pagination-nav__link--next" href="{following[0]}">'
            f'<div class="pagination-nav__sublabel">Next</div>'
            f'<div class="pagination-nav__label">{html.escape(following[1])}</div></a>'
        )
    doc_id = html.escape(PurePosixPath(doc).with_suffix("").as_posix())
    content = (
        '<div class="main-wrapper mainWrapper_z2l0"><div class="docsWrapper_hBAB"><div class="docRoot_UBD9">'
        '<aside class="theme-doc-sidebar-container docSidebarContainer_YfHR"><nav aria-label="Docs sidebar" '
        f'class="menu thin-scrollbar menu_SIkG"><ul class="theme-doc-sidebar-menu menu__list">{sidebar}</ul></nav>'
        '</aside><main class="docMainContainer_TBSr"><div class="container padding-top--md padding-bottom--lg">'
        '<div class="row"><div class="col docItemCol_VOVn"><div class="docItemContainer_Djhp"><article>'
        '<nav class="theme-doc-breadcrumbs breadcrumbsContainer_Z_bl" aria-label="Breadcrumbs">'
        '<ul class="breadcrumbs"><li class="breadcrumbs__item"><a class="breadcrumbs__link" href="/">Home</a></li>'
        f'<li class="breadcrumbs__item breadcrumbs__item--active"><span class="breadcrumbs__link">'
        f"{html.escape(title)}</span></li></ul></nav>"
        '<div class="tocCollapsible_ETCw theme-doc-toc-mobile tocMobile_ITEo"><button type="button" '
        'class="clean-btn tocCollapsibleButton_TO0P">On this page</button></div>'
        f'<div class="theme-doc-markdown markdown">{body}</div>'
        '<footer class="theme-doc-footer docusaurus-mt-lg"><div class="theme-doc-footer-edit-meta-row row">'
        f'<div class="col"><a href="https://github.com/example/book/edit/main/docs/{html.escape(doc)}" '
        'target="_blank" rel="noopener noreferrer" class="theme-edit-this-page">Edit this page</a></div>'
        "</div></footer></article>"
        f'<nav class="pagination-nav docusaurus-mt-lg" aria-label="Docs pages">{pagination}</nav></div></div>'
        '<div class="col col--3"><div class="tableOfContents_bqdL thin-scrollbar theme-doc-toc-desktop">'
        f'<ul class="table-of-contents table-of-contents__left-border">{toc}</ul></div></div></div></div>'
        "</main></div></div></div>"
    )
    html_class = (
        "docs-wrapper plugin-docs plugin-id-default docs-version-current docs-doc-page "
        f"docs-doc-id-{doc_id.replace('/', '-')}"
    )
    return _document(title, html_class, content)


def _home_page() -> str:
    content = (
        '<header class="hero hero--primary heroBanner_qdFl"><div class="container">'
        f'<h1 class="hero__title">{SITE_TITLE}</h1><p class="hero__subtitle">Robots that act in the world, '
        'from ROS 2 to vision-language-action models.</p><a class="button button--secondary" href="/docs/">'
        'Start reading</a></div></header><main><section class="features_t9lD"><div class="container">'
        "<p>Learn at your own pace with hands-on chapters.</p></div></section></main>"
    )
    return _document("Home", "plugin-pages plugin-id-default", content)


def _search_page() -> str:
    content = (
        '<div class="main-wrapper"><div class="container margin-vert--lg"><h1>Search the documentation</h1>'
        '<form class="searchQueryInput"><input type="search" name="q"></form></div></div>'
    )
    return _document("Search", "search-page-wrapper plugin-theme-search-algolia", content)


def _blog_page() -> str:
    content = (
        '<div class="main-wrapper"><div class="container margin-vert--lg"><div class="row"><main class="col col--7">'
        '<article itemprop="blogPost"><header><h1 class="title_f1Hy" itemprop="headline">Welcome</h1></header>'
        '<div class="markdown" itemprop="articleBody"><p>Announcing the first edition of the book and its '
        "companion tutor.</p></div></article></main></div></div></div>"
    )
    return _document("Welcome", "blog-wrapper blog-post-page plugin-blog plugin-id-default", content)


def _tags_page(pages: list[tuple[str, str]]) -> str:
    items = "".join(
        f'<article class="margin-vert--lg"><a href="{route}"><h2>{html.escape(title)}</h2></a>'
        "<p>A chapter tagged robotics.</p></article>"
        for route, title in pages
    )
    content = (
        '<div class="main-wrapper"><div class="container margin-vert--lg"><div class="row"><main class="col">'
        f'<header class="margin-bottom--xl"><h1>{len(pages)} docs tagged with "robotics"</h1></header>'
        f"<section>{items}</section></main></div></div></div>"
    )
    return _document("robotics", "docs-wrapper plugin-docs plugin-id-default docs-tags-doc-list-page", content)
