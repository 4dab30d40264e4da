"""Compare a book's built Docusaurus site with its Markdown folder, passage by passage.

    python scripts/compare_site_with_folder.py BUILD_DIR DOCS_FOLDER [--base /docs]

BUILD_DIR is ``docusaurus build``'s output (``BUILD_DIR/docs/**/index.html``), DOCS_FOLDER the docs it was
built from. Each page is read as the worker reads a fetched page (worker/knowledge/html_pages.py), each file
as it reads a folder, both are chunked the same way, and the passages are compared by heading and text
(whitespace aside) and by anchor. Prints the counts and every passage found on one side only; exits 1 when
they differ.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from worker.knowledge.documents import Chunk, DocumentError
from worker.knowledge.html_pages import page_markdown
from worker.knowledge.markdown_chunks import chunk_book, chunk_document


def site_chunks(build: Path, base: str) -> list[Chunk]:
    chunks: list[Chunk] = []
    root = build / base.strip("/")
    for page_file in sorted(root.glob("**/index.html")):
        doc = page_file.parent.relative_to(root).as_posix()
        try:
            page = page_markdown(page_file.read_text(encoding="utf-8"))
        except DocumentError as exc:
            print(f"page {doc} skipped: {exc}")
            continue
        url = f"{base.rstrip('/')}/{doc}"
        chunks += chunk_document(page.markdown, doc, base, page_url=url, title=page.title)
    return chunks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build", type=Path)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--base", default="/docs", help="the docs' route on the site (BOOK_BASE_URL)")
    args = parser.parse_args(argv)

    from_site = site_chunks(args.build, args.base)
    from_folder = chunk_book(args.folder, args.base).chunks

    def passages(chunks: list[Chunk]) -> set[tuple[str, str]]:
        return {(c.heading, " ".join(c.text.split())) for c in chunks}

    def anchors(chunks: list[Chunk]) -> list[str]:
        return sorted(c.url.partition("#")[2] for c in chunks)

    site, folder = passages(from_site), passages(from_folder)
    print(f"site: {len(from_site)} passages; folder: {len(from_folder)} passages; identical: {len(site & folder)}")
    for side, only in (("site", site - folder), ("folder", folder - site)):
        for heading, text in sorted(only):
            print(f"only in the {side}: {heading}: {text[:160]}")
    same_anchors = anchors(from_site) == anchors(from_folder)
    print("anchors: the same" if same_anchors else "anchors: they differ")
    return 0 if site == folder and len(from_site) == len(from_folder) and same_anchors else 1


if __name__ == "__main__":
    sys.exit(main())
