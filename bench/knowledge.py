"""``python -m bench.knowledge`` (``make bench-knowledge``): the knowledge base's speed in embedded mode.

1. Indexing throughput, embedding excluded: both public books (../shared/corpora) indexed by the real
   pipeline (``IndexBuild``: read, chunk, BM25-encode, create a version, upsert, verify, switch the alias),
   keyword-only; then the same chunks with 1,024-dimension dense vectors supplied (as from the embedding
   cache), to show what dense vectors cost the embedded store. Phases are also timed one by one.
2. Retrieval latency as the worker sees it: ``KnowledgeStore.search`` awaited on the worker's event loop
   (uvloop, as ``python -m worker`` runs), through the store's one Qdrant thread, for the evaluation questions,
   keyword-only and hybrid (dense + BM25, RRF), at the books' size and padded to 2,000 chunks; one query at
   a time and eight in flight at once.

Numbers depend on the machine; the targets are >= 1,000 chunks/s and p50 <= 20 ms at <= 2,000 chunks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvloop
import yaml

from shared.settings import Settings
from worker.knowledge.documents import Chunk
from worker.knowledge.indexing import IndexBuild
from worker.knowledge.markdown_chunks import chunk_book
from worker.knowledge.store import KnowledgeStore

ROOT = Path(__file__).resolve().parents[1]
CORPORA = ROOT.parent / "shared" / "corpora"
QUESTIONS = ROOT / "eval" / "questions.yaml"
DIMENSION = 1024
TARGET_CHUNKS = 2000


class _Settings(Settings):
    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        return (init_settings,)


def embed_texts(texts: Sequence[str], dimension: int) -> Any:
    # imported here, after ``worker`` has set OPENBLAS_NUM_THREADS as the worker process does
    from fake_cohere.embedding import embed_texts as fake_embeddings

    return fake_embeddings(texts, dimension)


def _settings(data_dir: Path, **values: Any) -> Settings:
    return _Settings(data_dir=data_dir, cohere_embed_dimension=DIMENSION, **values)


def _percentiles(timed: tuple[list[float], float]) -> dict[str, float]:
    samples, cpu_per_query = timed
    ordered = sorted(samples)
    cut = statistics.quantiles(ordered, n=100)
    return {
        "cpu_ms_per_query": round(cpu_per_query * 1000, 2),
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(cut[94] * 1000, 2),
        "p99_ms": round(cut[98] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


def _questions() -> list[str]:
    data = yaml.safe_load(QUESTIONS.read_text(encoding="utf-8"))
    return [item["question"] for items in data.values() for item in items]


async def bench_indexing(books: Path, work: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    # the whole job, as POST /api/admin/reindex runs it (keyword-only: no embedding at all)
    store = await KnowledgeStore.open(_settings(work / "job"))
    try:
        started, cpu = time.perf_counter(), time.process_time()
        build = IndexBuild(store, source=str(books), base_url="/docs", embedder=None)
        report = await build.run()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        results["job_keyword_only"] = {
            "documents": report.documents,
            "chunks": report.chunks,
            "seconds": round(elapsed, 3),
            "chunks_per_s": round(report.chunks / elapsed),
            "cpu_seconds": round(cpu, 3),
            "chunks_per_cpu_s": round(report.chunks / cpu),
        }
    finally:
        await store.close()

    # phase by phase, and with dense vectors supplied
    started, cpu = time.perf_counter(), time.process_time()
    chunks = chunk_book(books, "/docs").chunks
    chunk_s, chunk_cpu = time.perf_counter() - started, time.process_time() - cpu
    store = await KnowledgeStore.open(_settings(work / "phases"))
    try:
        started, cpu = time.perf_counter(), time.process_time()
        sparse = await asyncio.to_thread(store.encode_documents, chunks)
        encode_s, encode_cpu = time.perf_counter() - started, time.process_time() - cpu
        version = store.versions.new_name()
        await store.versions.create(version, dense=False)
        started, cpu = time.perf_counter(), time.process_time()
        await store.upsert(chunks, None, sparse_vectors=sparse, batch_size=128, collection=version)
        upsert_s, upsert_cpu = time.perf_counter() - started, time.process_time() - cpu
        vectors = embed_texts([c.search_text for c in chunks], DIMENSION).tolist()
        dense_version = store.versions.new_name()
        await store.versions.create(dense_version, dense=True)
        started = time.perf_counter()
        await store.upsert(chunks, vectors, sparse_vectors=sparse, batch_size=128, collection=dense_version)
        dense_upsert_s = time.perf_counter() - started
    finally:
        await store.close()
    total = chunk_s + encode_s + upsert_s
    total_cpu = chunk_cpu + encode_cpu + upsert_cpu
    results["phases"] = {
        "chunks": len(chunks),
        "chunk_s": round(chunk_s, 3),
        "encode_s": round(encode_s, 3),
        "upsert_s": round(upsert_s, 3),
        "chunk_encode_upsert_chunks_per_s": round(len(chunks) / total),
        "chunk_encode_upsert_cpu_s": round(total_cpu, 3),
        "chunk_encode_upsert_chunks_per_cpu_s": round(len(chunks) / total_cpu),
        "upsert_with_1024d_dense_s": round(dense_upsert_s, 3),
        "chunk_encode_upsert_with_dense_chunks_per_s": round(len(chunks) / (chunk_s + encode_s + dense_upsert_s)),
    }
    return results


def _padded(chunks: list[Chunk], target: int) -> list[Chunk]:
    """The books' chunks, repeated under other document names until there are ``target`` of them."""
    padded = list(chunks)
    copy = 1
    while len(padded) < target:
        for chunk in chunks:
            if len(padded) >= target:
                break
            padded.append(replace(chunk, doc=f"copy{copy}/{chunk.doc}"))
        copy += 1
    return padded


async def _timed_searches(
    store: KnowledgeStore,
    queries: Sequence[tuple[str, list[float] | None]],
    limit: int,
    concurrency: int,
) -> tuple[list[float], float]:
    """Wall-clock seconds of each search, and CPU seconds per search (all threads of this process)."""
    samples: list[float] = []
    semaphore = asyncio.Semaphore(concurrency)
    cpu = time.process_time()

    async def one(question: str, vector: list[float] | None) -> None:
        async with semaphore:
            started = time.perf_counter()
            await store.search(question, vector, limit)
            samples.append(time.perf_counter() - started)

    await asyncio.gather(*(one(q, v) for q, v in queries))
    return samples, (time.process_time() - cpu) / len(queries)


async def bench_retrieval(books: Path, work: Path, rounds: int) -> dict[str, Any]:
    chunks = chunk_book(books, "/docs").chunks
    questions = _questions()
    question_vectors = embed_texts(questions, DIMENSION).tolist()
    results: dict[str, Any] = {}
    for label, size in (("books", len(chunks)), ("2000_chunks", TARGET_CHUNKS)):
        corpus = _padded(chunks, size)
        vectors = embed_texts([c.search_text for c in corpus], DIMENSION).tolist()
        store = await KnowledgeStore.open(_settings(work / f"search-{label}"))
        try:
            version = store.versions.new_name()
            await store.versions.create(version, dense=True)
            await store.upsert(corpus, vectors, batch_size=128, collection=version)
            await store.versions.switch_to(version, dense=True)
            for q in questions[:5]:  # warm-up: first calls pay for imports and caches
                await store.search(q, None, 5)
            order = list(range(len(questions))) * rounds
            random.Random(1).shuffle(order)
            sparse_queries: list[tuple[str, list[float] | None]] = [(questions[i], None) for i in order]
            hybrid_queries: list[tuple[str, list[float] | None]] = [(questions[i], question_vectors[i]) for i in order]
            results[label] = {
                "points": await store.count(),
                "keyword_top5": _percentiles(await _timed_searches(store, sparse_queries, 5, 1)),
                "hybrid_top20": _percentiles(await _timed_searches(store, hybrid_queries, 20, 1)),
                "hybrid_top20_8_in_flight": _percentiles(await _timed_searches(store, hybrid_queries, 20, 8)),
            }
        finally:
            await store.close()
    return results


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-knowledge-") as tmp:
        work = Path(tmp)
        books = work / "books"
        for name in ("book-a", "book-b"):
            shutil.copytree(args.corpora / name, books / name)
        load_before = os.getloadavg()[0]
        results = {
            "indexing": await bench_indexing(books, work),
            "retrieval": await bench_retrieval(books, work, args.rounds),
        }
        # CPU seconds do not depend on what else the machine runs; wall-clock figures do
        results["machine"] = {
            "cpus": os.cpu_count(),
            "load_average_before": round(load_before, 2),
            "load_average_after": round(os.getloadavg()[0], 2),
        }
        return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.knowledge", description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", type=Path, default=CORPORA)
    parser.add_argument("--rounds", type=int, default=5, help="times each evaluation question is asked")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        results = runner.run(main_async(args))
    text = json.dumps(results, indent=2)
    sys.stdout.write(text + "\n")
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
