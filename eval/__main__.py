"""``python -m eval``: retrieval quality on the two public books, offline and hybrid.

For each book the knowledge base is built the way the worker builds it (``IndexBuild``, from the folder
or, with ``--source sitemap``, from the book rendered as a Docusaurus site served on 127.0.0.1), in a
temporary embedded Qdrant, then every question of ``eval/questions.yaml`` is asked:

* ``sparse``: BM25 only, what the service does offline (``store.search(question, None, k)``);
* ``hybrid``: dense + BM25 fused by RRF, with the fake Cohere server's embeddings (run in-process);
* ``hybrid+rerank``: the same candidates (``RETRIEVAL_CANDIDATES``) reranked by the fake's rerank, which
  is the service's Cohere path end to end.

A question is answered at rank r when the r-th passage comes from one of its documents. recall@5 is the
share of questions answered within the first 5 passages (what the model is given, RETRIEVAL_TOP_K=5);
MRR is the mean of 1/r over the first 10 passages (0 when none of them answers).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from eval import answers
from eval.docusaurus_site import render_site, site_app
from fake_cohere.knobs import Knobs
from fake_cohere.testing import running_fake_cohere, serve_asgi
from shared.settings import Settings
from worker.cohere.client import build_cohere_clients
from worker.cohere.provider import CohereProvider
from worker.knowledge.documents import Passage
from worker.knowledge.index_report import IndexReport
from worker.knowledge.standalone_indexing import index_book
from worker.knowledge.store import KnowledgeStore

HERE = Path(__file__).resolve().parent
DEFAULT_CORPORA = HERE.parent.parent / "shared" / "corpora"
DEFAULT_QUESTIONS = HERE / "questions.yaml"
MODES = ("sparse", "hybrid", "hybrid+rerank")
DEPTH = 10


@dataclass(frozen=True)
class Question:
    book: str
    text: str
    docs: tuple[str, ...]


@dataclass(frozen=True)
class AnswerChecks:
    out_of_scope: dict[str, list[str]]
    follow_ups: list[answers.FollowUp]


@dataclass
class Scores:
    ranks: list[int | None] = field(default_factory=list)  # rank of the first answering passage

    def add(self, rank: int | None) -> None:
        self.ranks.append(rank)

    def recall(self, k: int) -> float:
        return sum(1 for r in self.ranks if r is not None and r <= k) / len(self.ranks) if self.ranks else 0.0

    @property
    def mrr(self) -> float:
        return sum(1 / r for r in self.ranks if r is not None) / len(self.ranks) if self.ranks else 0.0


def load_questions(path: Path) -> list[Question]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    questions: list[Question] = []
    for book, items in data.items():
        for item in items:
            questions.append(Question(book, str(item["question"]), tuple(item["docs"])))
    return questions


def first_answer(passages: Sequence[Passage], docs: set[str]) -> int | None:
    for rank, passage in enumerate(passages, start=1):
        if passage.doc in docs:
            return rank
    return None


def _settings(data_dir: Path, **values: Any) -> Settings:
    class _Isolated(Settings):
        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, *args, **kwargs):  # type: ignore[no-untyped-def,override]
            return (init_settings,)

    return _Isolated(data_dir=data_dir, **values)


@dataclass(frozen=True)
class EvalStores:
    """A keyword-only store and a hybrid one (embedded by the fake Cohere server), opened as the worker does."""

    sparse: KnowledgeStore
    hybrid: KnowledgeStore
    cohere: CohereProvider
    settings: Settings  # the hybrid store's

    async def index(self, source: str) -> tuple[IndexReport, IndexReport, dict[str, float]]:
        """Both stores built from ``source``, and how long each took (seconds)."""
        started = time.perf_counter()
        sparse = await index_book(self.sparse, source, "/docs", None)
        sparse_s = time.perf_counter() - started
        started = time.perf_counter()
        hybrid = await index_book(
            self.hybrid, source, "/docs", self.cohere, embed_model=self.settings.cohere_embed_model
        )
        hybrid_s = time.perf_counter() - started
        return sparse, hybrid, {"sparse_index_s": round(sparse_s, 2), "hybrid_index_s": round(hybrid_s, 2)}


@contextlib.asynccontextmanager
async def eval_stores(data_dir: Path, cohere_url: str) -> AsyncIterator[EvalStores]:
    sparse_settings = _settings(data_dir / "sparse", qdrant_collection="eval")
    hybrid_settings = _settings(
        data_dir / "hybrid",
        qdrant_collection="eval",
        cohere_api_key="eval-key-0123456789",
        cohere_base_url=cohere_url,
    )
    parts = build_cohere_clients(hybrid_settings)
    assert parts is not None
    cohere = CohereProvider(parts, hybrid_settings)
    sparse_store = await KnowledgeStore.open(sparse_settings)
    hybrid_store = await KnowledgeStore.open(hybrid_settings)
    try:
        yield EvalStores(sparse_store, hybrid_store, cohere, hybrid_settings)
    finally:
        await sparse_store.close()
        await hybrid_store.close()
        await cohere.close()


@contextlib.asynccontextmanager
async def book_source(folder: Path, kind: str) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """The source to index and a map from file path to the doc name the index will use."""
    if kind == "folder":
        yield str(folder), {}
        return
    site = render_site(folder, "/docs")
    names = {page.doc: route.removeprefix("/docs/").strip("/") or "index" for route, page in site.pages.items()}
    async with serve_asgi(site_app(site)) as url:
        yield f"{url}/sitemap.xml", names


async def evaluate_book(
    book: str,
    folder: Path,
    questions: list[Question],
    source_kind: str,
    console: Console,
    checks: AnswerChecks | None = None,
) -> tuple[dict[str, Scores], dict[str, dict[str, Scores]], dict[str, Any]]:
    overall = {mode: Scores() for mode in MODES}
    by_doc: dict[str, dict[str, Scores]] = defaultdict(lambda: {mode: Scores() for mode in MODES})
    info: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix=f"eval-{book}-") as tmp:
        async with (
            running_fake_cohere(Knobs(embed_dimension=1024)) as fake,
            book_source(folder, source_kind) as (source, names),
            eval_stores(Path(tmp), fake.base_url) as stores,
        ):
            sparse_report, hybrid_report, timings = await stores.index(source)
            info.update(timings)
            info.update(documents=sparse_report.documents, chunks=sparse_report.chunks, source=source_kind)
            if hybrid_report.chunks != sparse_report.chunks:
                raise RuntimeError("the sparse and hybrid indexes differ")
            candidates = stores.settings.retrieval_candidates
            for question in questions:
                expected = {names.get(doc, doc) for doc in question.docs}
                sparse = await stores.sparse.search(question.text, None, DEPTH)
                vector = await stores.cohere.embed_query(question.text)
                pool = await stores.hybrid.search(question.text, vector, max(candidates, DEPTH))
                reranked = await stores.cohere.rerank(question.text, pool, DEPTH)
                for mode, passages in zip(MODES, (sparse, pool[:DEPTH], reranked), strict=True):
                    rank = first_answer(passages, expected)
                    overall[mode].add(rank)
                    by_doc[question.docs[0]][mode].add(rank)
                    if rank is None or rank > 5:
                        console.log(f"[dim]{book} {mode}: missed {question.text!r} (rank {rank})[/dim]")
            if checks is not None:
                answering = (stores.sparse, stores.hybrid, stores.cohere, stores.settings)
                info["declines"] = await answers.declines([q.text for q in questions], checks.out_of_scope, *answering)
                talks = [t for t in checks.follow_ups if t.book == book]
                info["follow_ups"] = await answers.follow_up_recall(talks, names, *answering)
    return overall, by_doc, info


def _row(scores: dict[str, Scores]) -> list[str]:
    cells = [str(len(scores["sparse"].ranks))]
    for mode in MODES:
        cells += [f"{scores[mode].recall(5):.2f}", f"{scores[mode].mrr:.2f}"]
    return cells


def _table(title: str, first: str = "source document") -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(first)
    table.add_column("n", justify="right")
    for mode in MODES:
        table.add_column(f"{mode} R@5", justify="right")
        table.add_column(f"{mode} MRR", justify="right")
    return table


async def main_async(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    if console.width < 150:
        console = Console(highlight=False, width=150)
    questions = load_questions(args.questions)
    books = args.books or sorted({q.book for q in questions})
    summary = _table(f"retrieval quality ({args.source} source, {len(questions)} questions)", "book")
    combined = {mode: Scores() for mode in MODES}
    results: dict[str, Any] = {}
    checks = None if args.retrieval_only else AnswerChecks(answers.load_out_of_scope(), answers.load_follow_ups())
    declines: dict[str, answers.Declines] = {}
    follow_ups: dict[str, dict[str, float]] = {}
    for book in books:
        asked = [q for q in questions if q.book == book]
        overall, by_doc, info = await evaluate_book(book, args.corpora / book, asked, args.source, console, checks)
        if checks is not None:
            declines[book] = info.pop("declines")
            follow_ups[book] = info.pop("follow_ups")
        if not args.quiet:
            table = _table(f"{book}: {info['documents']} documents, {info['chunks']} chunks, by source document")
            for doc in sorted(by_doc):
                table.add_row(doc, *_row(by_doc[doc]))
            console.print(table)
        summary.add_row(book, *_row(overall))
        for mode in MODES:
            combined[mode].ranks += overall[mode].ranks
        results[book] = {
            **info,
            **{mode: {"recall@5": overall[mode].recall(5), "mrr": overall[mode].mrr} for mode in MODES},
        }
    summary.add_row("all", *_row(combined), style="bold")
    console.print(summary)
    results["all"] = {mode: {"recall@5": combined[mode].recall(5), "mrr": combined[mode].mrr} for mode in MODES}
    if checks is not None:
        results["declines"] = _print_declines(console, declines, args.calibrate_on)
        results["follow_ups"] = _print_follow_ups(console, follow_ups, checks.follow_ups)
        facts, offline_answers = await _sample_book_facts()
        results["key_facts"] = _print_facts(console, facts)
        if not args.quiet:
            for question, answer in offline_answers:
                console.print(f"[bold]{question}[/bold]\n{answer}\n", markup=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    worst = min(combined[mode].recall(5) for mode in MODES)
    return 0 if worst >= args.min_recall else 1


PATHS = ("offline", "hybrid")
OUT_KINDS = ("unrelated", "near-domain", "small-talk")


def _print_declines(console: Console, declines: dict[str, answers.Declines], calibrate_on: str) -> dict[str, Any]:
    settings = _settings(Path(tempfile.gettempdir()))
    table = Table(
        title=f"declined (OFFLINE_MIN_COVERAGE={settings.offline_min_coverage}, "
        f"RERANK_MIN_RELEVANCE={settings.rerank_min_relevance})",
        title_justify="left",
    )
    for column in ("book", "path", "out-of-scope", *OUT_KINDS, "in-scope"):
        table.add_column(column, justify="left" if column in ("book", "path") else "right")
    figures: dict[str, Any] = {}
    for book, found in declines.items():
        for path in PATHS:
            row = {"out-of-scope": found.share(path, OUT_KINDS)}
            row |= {kind: found.share(path, [kind]) for kind in OUT_KINDS}
            row["in-scope"] = found.share(path, ["in-scope"])
            figures.setdefault(book, {})[path] = row
            table.add_row(book, path, *(f"{row[k]:.0%}" for k in ("out-of-scope", *OUT_KINDS, "in-scope")))
    console.print(table)
    if calibrate_on in declines:
        for path, measure, configured in (
            ("offline", "coverage", settings.offline_min_coverage),
            ("hybrid", "relevance", settings.rerank_min_relevance),
        ):
            chosen: dict[str, list[float]] = getattr(declines[calibrate_on], measure)
            threshold = answers.calibrate(chosen["in-scope"])
            console.print(
                f"{path} threshold chosen on {calibrate_on}: {threshold:.2f} (the highest that declines at most 3 % of "
                f"its in-scope questions); configured: {configured:.2f}"
            )
            for book, found in declines.items():
                values: dict[str, list[float]] = getattr(found, measure)
                out = [v for k in OUT_KINDS if k != "small-talk" for v in values.get(k, [])]
                talk = len(values.get("small-talk", []))
                share_out = (answers.declined_at(out, threshold) * len(out) + talk) / ((len(out) + talk) or 1)
                share_in = answers.declined_at(values["in-scope"], threshold)
                console.print(
                    f"  at {threshold:.2f} on {book}: out-of-scope declined {share_out:.0%}, in-scope declined "
                    f"{share_in:.1%}"
                )
            figures.setdefault("calibrated_on", {"book": calibrate_on})[path] = threshold
    return figures


def _print_follow_ups(
    console: Console, recall: dict[str, dict[str, float]], conversations: list[answers.FollowUp]
) -> dict[str, Any]:
    labels = ("offline", "hybrid", "offline, alone", "hybrid, alone")
    table = Table(title="follow-ups: recall@5 of the second question of two-turn conversations", title_justify="left")
    table.add_column("book")
    table.add_column("n", justify="right")
    for label in labels:
        table.add_column(label if "alone" in label else f"{label} (folded)", justify="right")
    for book, figures in recall.items():
        n = sum(1 for c in conversations if c.book == book)
        table.add_row(book, str(n), *(f"{figures[label]:.2f}" for label in labels))
    console.print(table)
    return recall


async def _sample_book_facts() -> tuple[dict[str, dict[str, float]], list[tuple[str, str]]]:
    questions = answers.load_answer_facts()
    with tempfile.TemporaryDirectory(prefix="eval-facts-") as tmp:
        async with (
            running_fake_cohere(Knobs(embed_dimension=1024, answer_sentences=4)) as fake,
            eval_stores(Path(tmp), fake.base_url) as stores,
        ):
            await stores.index(str(stores.settings.book_source))
            return await answers.key_facts(questions, stores.sparse, stores.hybrid, stores.cohere, stores.settings)


def _print_facts(console: Console, facts: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    n = len(answers.load_answer_facts())
    table = Table(title=f"answers on the sample book ({n} questions with key facts)", title_justify="left")
    table.add_column("answer")
    table.add_column("key facts present", justify="right")
    table.add_column("main fact in the first sentence", justify="right")
    for label in ("offline, before", "offline", "hybrid"):
        row = facts[label]
        table.add_row(label, f"{row['key facts present']:.0%}", f"{row['main fact in the first sentence']:.0%}")
    console.print(table)
    return facts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", type=Path, default=DEFAULT_CORPORA, help="folder holding book-a and book-b")
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS)
    parser.add_argument("--books", nargs="*", help="evaluate only these books")
    parser.add_argument(
        "--source",
        choices=["folder", "sitemap"],
        default="folder",
        help="index the Markdown folder, or the book rendered as a Docusaurus site and read by its sitemap",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--quiet", action="store_true", help="only the summary table")
    parser.add_argument(
        "--min-recall", type=float, default=0.0, help="exit 1 when any mode's overall recall@5 is below this"
    )
    parser.add_argument("--retrieval-only", action="store_true", help="skip the checks of the answers themselves")
    parser.add_argument(
        "--calibrate-on", default="book-a", help="the book the offline coverage threshold is chosen on (default book-a)"
    )
    args = parser.parse_args(argv)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
