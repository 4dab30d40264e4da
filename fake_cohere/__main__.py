"""``python -m fake_cohere``: serve the fake Cohere API (for benchmarks and local runs of the stack)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

import uvicorn

from .app import create_app
from .knobs import Knobs

logger = logging.getLogger(__name__)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fake_cohere", description="A fake Cohere v2 API (embed, rerank, chat).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8181)
    parser.add_argument("--embed-latency-ms", type=float, default=0.0)
    parser.add_argument("--rerank-latency-ms", type=float, default=0.0)
    parser.add_argument("--first-token-ms", type=float, default=0.0, help="delay before the first chat token")
    parser.add_argument("--tokens-per-second", type=float, default=0.0, help="chat pace; 0 = as fast as possible")
    parser.add_argument("--embed-dimension", type=int, default=1024)
    parser.add_argument("--answer-sentences", type=int, default=3)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    knobs = Knobs(
        embed_latency_ms=args.embed_latency_ms,
        rerank_latency_ms=args.rerank_latency_ms,
        chat_first_token_ms=args.first_token_ms,
        tokens_per_second=args.tokens_per_second,
        embed_dimension=args.embed_dimension,
        answer_sentences=args.answer_sentences,
    )
    logger.info("fake Cohere on http://%s:%d with %s", args.host, args.port, knobs.model_dump_json())
    uvicorn.run(
        create_app(knobs),
        host=args.host,
        port=args.port,
        log_config=None,
        log_level=args.log_level.lower(),
        access_log=False,
        lifespan="off",
        ws="none",
    )


if __name__ == "__main__":
    main()
