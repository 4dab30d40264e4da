"""What the documents a source could not give have in common, in words an operator can act on.

A book with a wrong ``BOOK_BASE_URL`` skips every page for the same reason; listing 33 identical lines
hides that, and a count alone hides the reason. These group the skips by reason for the worker's log, and
turn a source that gave nothing into one line: what failed and what to change.
"""

from __future__ import annotations

import logging
from collections import Counter

from worker.knowledge.sources import LoadedSource, SkippedDocument

_SHOWN_REASONS = 5


def reasons_by_count(skipped: list[SkippedDocument]) -> list[tuple[str, int]]:
    """Each distinct reason with how many documents it applies to, the most frequent first."""
    return Counter(s.reason for s in skipped).most_common()


def log_skip_summary(log: logging.Logger, loaded: LoadedSource) -> None:
    if not loaded.skipped:
        return
    grouped = reasons_by_count(loaded.skipped)
    shown = "; ".join(f"{count}: {reason}" for reason, count in grouped[:_SHOWN_REASONS])
    more = f"; and {len(grouped) - _SHOWN_REASONS} other reasons" if len(grouped) > _SHOWN_REASONS else ""
    log.warning(
        "%d of %d documents of the %s skipped, by reason: %s%s",
        len(loaded.skipped),
        len(loaded.skipped) + len(loaded.documents),
        loaded.kind,
        shown,
        more,
    )


def nothing_to_index(loaded: LoadedSource) -> str:
    """Why a source gave no text to index, and what to change (one line, safe to show on ``/ready``)."""
    unit = "page" if loaded.kind == "sitemap" else "file"
    if not loaded.skipped:
        if loaded.documents:
            return f"the {len(loaded.documents)} {unit}s read hold no text to index; point the source at the book"
        where = "the sitemap lists no page" if loaded.kind == "sitemap" else "the folder holds no Markdown (.md, .mdx)"
        return f"nothing to index: {where}; point the source at the book's docs"
    reason, count = reasons_by_count(loaded.skipped)[0]
    fix = next((s.fix for s in loaded.skipped if s.reason == reason and s.fix), None)
    fix = fix or ("check that the site serves its pages" if loaded.kind == "sitemap" else "check the folder's files")
    total = len(loaded.skipped) + len(loaded.documents)
    return f"no {unit} to index: {len(loaded.skipped)} of {total} skipped, {count} because {reason}; {fix}"
