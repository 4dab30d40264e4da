"""A published Docusaurus page back to Markdown: only the article, with the site's own heading anchors."""

from __future__ import annotations

import pytest

from worker.knowledge.documents import DocumentError
from worker.knowledge.html_pages import escape, page_markdown
from worker.knowledge.markdown_chunks import chunk_document


def docusaurus_page(article: str, *, html_class: str = "docs-wrapper plugin-docs docs-doc-page") -> str:
    return f"""<!doctype html><html class="{html_class}"><head><title>Walking | My Book</title></head><body>
<nav class="navbar"><a href="/">My Book</a><a href="/docs/">Docs</a></nav>
<aside class="theme-doc-sidebar-container"><ul><li><a href="/docs/a">Sidebar entry</a></li></ul></aside>
<main><article>
<nav class="theme-doc-breadcrumbs"><a href="/">Home</a></nav>
<div class="theme-doc-toc-mobile"><button>On this page</button></div>
<div class="theme-doc-markdown markdown">{article}</div>
<footer class="theme-doc-footer"><a class="theme-edit-this-page" href="#">Edit this page</a></footer>
</article><nav class="pagination-nav"><a href="/docs/b">Next chapter</a></nav></main>
<div class="theme-doc-toc-desktop"><ul class="table-of-contents"><li><a href="#gait">Gait</a></li></ul></div>
<footer class="footer">Copyright footer text</footer><script>var tracking = 1;</script></body></html>"""


CODE_BLOCK = (
    '<div class="language-python codeBlockContainer_a theme-code-block"><div class="codeBlockContent_b">'
    '<pre class="prism-code language-python"><code>'
    '<span class="token-line"><span class="token keyword">def</span> step(t):<br></span>'
    '<span class="token-line">    return t * 2  # *not* emphasis<br></span></code></pre>'
    '<div class="buttonGroup"><button aria-label="Copy code to clipboard">Copy</button></div></div></div>'
)
ARTICLE = f"""<header><h1>Walking Robots</h1></header>
<p>Legs are <strong>hard</strong> to control; see <code>gait_planner</code> and <a href="/x">the planner</a>.</p>
<h2 class="anchor" id="gait-phases">Gait phases
<a href="#gait-phases" class="hash-link" aria-label="Direct link">&#8203;</a></h2>
<ul><li>Stance: the foot is down</li><li>Swing: the foot moves<ul><li>nested detail</li></ul></li></ul>
<div class="theme-admonition theme-admonition-tip alert">
<div class="admonitionHeading_x"><span><svg></svg></span>tip</div>
<div class="admonitionContent_y"><p>Keep the centre of mass low.</p></div></div>
<h3 class="anchor" id="custom-id">Timing in practice<a href="#custom-id" class="hash-link">&#8203;</a></h3>
{CODE_BLOCK}
<table><thead><tr><th>Phase</th><th>Share</th></tr></thead><tbody><tr><td>Stance</td><td>60 %</td></tr></tbody></table>
<p>Math like 2 * 3 * 4 and a &lt;T&gt; generic and # not a heading and [brackets] stay text.</p>"""


def test_only_the_article_is_kept() -> None:
    page = page_markdown(docusaurus_page(ARTICLE))
    assert page.title == "Walking Robots"
    text = page.markdown
    for noise in ("Sidebar entry", "Home", "On this page", "Edit this page", "Next chapter", "Copyright", "tracking"):
        assert noise not in text
    assert "\u200b" not in text and "Copy" not in text


def test_headings_keep_the_sites_anchors_and_chunk_to_its_urls() -> None:
    page = page_markdown(docusaurus_page(ARTICLE))
    assert "## Gait phases {#gait-phases}" in page.markdown
    assert "### Timing in practice {#custom-id}" in page.markdown
    chunks = chunk_document(
        page.markdown, "walking", "/docs", page_url="https://book.example/docs/walking", title=page.title
    )
    assert [c.url for c in chunks] == [
        "https://book.example/docs/walking",
        "https://book.example/docs/walking#gait-phases",
        "https://book.example/docs/walking#custom-id",
    ]
    assert chunks[2].heading == "Walking Robots > Gait phases > Timing in practice"


def test_blocks_come_back_as_markdown() -> None:
    chunks = chunk_document(page_markdown(docusaurus_page(ARTICLE)).markdown, "walking", "/docs")
    text = "\n\n".join(c.text for c in chunks)
    assert "Legs are hard to control; see `gait_planner` and the planner." in text
    assert "- Stance: the foot is down" in text and "nested detail" in text
    assert "Tip: Keep the centre of mass low." in text
    assert "```python\ndef step(t):\n    return t * 2  # *not* emphasis\n```" in text
    assert "| Phase | Share |" in text and "| Stance | 60 % |" in text
    assert "Math like 2 * 3 * 4 and a <T> generic and # not a heading and [brackets] stay text." in text


@pytest.mark.parametrize(
    "text", ["*stars* and _under_", "<Component prop={x}/>", "# hash", "1. not a list", "- not a bullet", "a | b"]
)
def test_escaped_text_reads_back_as_itself(text: str) -> None:
    (chunk,) = chunk_document(f"# T\n\n{escape(text)}\n", "t.md", "/docs")
    assert chunk.text == text


def test_pages_that_are_not_docs_are_refused() -> None:
    with pytest.raises(DocumentError, match="no article content"):
        page_markdown("<html><body><div>Just a landing page</div></body></html>")
    listing = docusaurus_page("<p>x</p>", html_class="docs-wrapper plugin-docs docs-tags-doc-list-page")
    with pytest.raises(DocumentError, match="docs-tags-doc-list-page"):
        page_markdown(listing)
    with pytest.raises(DocumentError, match="no text"):
        page_markdown(docusaurus_page("<header><h1></h1></header><p>   </p>"))


def test_a_plain_site_falls_back_to_main_content() -> None:
    page = page_markdown(
        "<html><head><title>Notes - Site</title></head><body><nav>menu</nav>"
        "<main><h2 id='intro'>Intro</h2><p>Plain text.</p></main></body></html>"
    )
    assert page.title == "Notes"
    assert "## Intro {#intro}" in page.markdown and "menu" not in page.markdown


MINIFIED_ARTICLE = (
    # as Docusaurus Faster's minifier writes it: optional end tags (</p>, </li>, </th>, </td>, </tr>) left
    # out, attributes unquoted, a <p> ended by the <div> that follows it
    "<header><h1>Walking Robots</h1></header>"
    "<p>Legs are <strong>hard</strong> to control; see <code>gait_planner</code> and <a href=/x>the planner</a>."
    '<h2 class="anchor anchorTargetStickyNavbar_x" id=gait-phases>Gait phases<a href=#gait-phases class=hash-link>'
    "&#8203;</a></h2><ul><li class>Stance: the foot is down<li class>Swing: the foot moves<ul><li>nested detail"
    "</ul></ul><p>Phases at a glance:<table><thead><tr><th>Phase<th>Share<tbody><tr><td>Stance<td>60 %<tr>"
    "<td>Swing<td>40 %</table><p>Math like 2 * 3 * 4 stays text.<p>The end."
)


def test_minified_html_without_optional_end_tags_reads_as_a_browser_reads_it() -> None:
    markdown = page_markdown(docusaurus_page(MINIFIED_ARTICLE)).markdown
    assert markdown == (
        "# Walking Robots\n\n"
        "Legs are **hard** to control; see `gait_planner` and the planner\\.\n\n"
        "## Gait phases {#gait-phases}\n\n"
        "- Stance: the foot is down\n- Swing: the foot moves\n\n  - nested detail\n\n"
        "Phases at a glance:\n\n"
        "| Phase | Share |\n| --- | --- |\n| Stance | 60 % |\n| Swing | 40 % |\n\n"
        "Math like 2 \\* 3 \\* 4 stays text.\n\n"
        "The end.\n"
    )


def test_task_lists_and_unnamed_code_read_as_their_markdown() -> None:
    # Docusaurus renders "- [ ] item" as a disabled checkbox and gives a fence without a language
    # "language-text"; the folder's Markdown has "[ ]" and a bare fence
    article = (
        "<ul class=contains-task-list><li class=task-list-item><input type=checkbox disabled> Mass checked"
        "<li class=task-list-item><input type=checkbox checked disabled> Friction checked</ul>"
        '<div class="language-text codeBlockContainer_a theme-code-block"><pre class="prism-code language-text">'
        "<code><div class=token-line>state A -&gt; state B<br></div></code></pre></div>"
    )
    markdown = page_markdown(docusaurus_page(article)).markdown
    source = "# T\n\n- [ ] Mass checked\n- [x] Friction checked\n\n```\nstate A -> state B\n```\n"
    (from_page,) = chunk_document(f"# T\n\n{markdown}", "t.md", "/docs")
    (from_source,) = chunk_document(source, "t.md", "/docs")
    assert from_page.text == from_source.text
