"""Queue hop and relay latency of the real stack, at 1, 100 and 250 chats in flight.

    .venv/bin/python -m bench.hop_relay [--duration 20] [--levels 1,100,250] [--out bench/results/hop_relay.json]

Starts redis-server, the fake Cohere server, ``python -m worker`` and ``python -m gateway`` as processes
(``RECORD_TIMINGS=1``), then for each level keeps that many chats in flight (each simulated user asks
again as soon as its answer is done) and measures, over the turns started after the ramp-up:

* the **queue hop**: gateway received the ask → worker started the turn, recorded by the worker in Redis;
* the **relay latency per delta**: worker wrote the event → client received it. An event's ``id`` is its
  Redis stream entry id, whose first part is the Redis server's clock (ms) at ``XADD``; the client
  subtracts it from its own clock on receipt (same machine, so the same clock; ms resolution, so a
  reading is on average ~0.5 ms above the true value);
* time to first delta minus the fake's own latency before the first token (embed + rerank + first token).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvloop

from bench.heartbeat_watch import HeartbeatWatch
from bench.stack import FakeCohereSettings, LocalStack, raise_fd_limit
from loadtest.chat_load import ChatLoad, ChatLoadPlan
from loadtest.client import TurnRecord
from loadtest.questions import load_questions
from loadtest.stats import percentile, summarize

logger = logging.getLogger("bench.hop_relay")


def turn_figures(turns: Sequence[TurnRecord], fake: FakeCohereSettings) -> dict[str, Any]:
    ok = [t for t in turns if t.ok]
    fake_ms = fake.latency_before_first_token_ms
    ttfd = [t.first_delta_s * 1000 for t in ok if t.first_delta_s is not None]
    relay = [ms for t in ok for ms in t.relay_ms]
    whole = sorted(t.total_s * 1000 for t in ok if t.total_s is not None)
    return {
        "turns_ok": len(ok),
        "turns_failed": len(turns) - len(ok),
        "errors": sorted({t.error for t in turns if t.error}),
        "ttfd_ms": summarize(ttfd),
        "added_before_first_delta_ms": summarize(v - fake_ms for v in ttfd),
        "turn_ms": summarize(whole),
        "turn_p95_ms": round(percentile(whole, 95), 1) if whole else None,
        "relay_ms_per_delta": summarize(relay),
        "deltas": len(relay),
        "tokens": sum(t.tokens for t in ok),
        "tokens_per_delta": round(sum(t.tokens for t in ok) / max(sum(t.deltas for t in ok), 1), 2),
        "stream_tokens_per_s": summarize(rate for t in ok if (rate := t.tokens_per_s) is not None),
    }


async def measure_level(
    stack: LocalStack,
    in_flight: int,
    *,
    duration_s: float,
    questions: Sequence[str],
    ramp_up_s: float | None = None,
    url: str | None = None,
    record_hops: bool = True,
) -> dict[str, Any]:
    """Keep ``in_flight`` chats going for ramp-up + ``duration_s`` against ``url`` (the service by default);
    figures cover turns started after the ramp-up (the hop samples are cleared at that moment)."""
    ramp = ramp_up_s if ramp_up_s is not None else (0.0 if in_flight == 1 else min(5.0, in_flight / 40))
    plan = ChatLoadPlan(
        url=url or stack.chat_url,
        users=in_flight,
        questions=questions,
        ramp_up_s=ramp,
        duration_s=ramp + duration_s,
        turn_timeout_s=60.0,
        record_relay=True,
        seed=in_flight,
    )
    load = ChatLoad(plan)
    run = asyncio.create_task(load.run())
    await asyncio.sleep(ramp)
    if record_hops:
        await stack.clear_hop_samples()
    window_start = time.time()
    load_before = os.getloadavg()
    meter = stack.cpu_meter()
    meter.start()
    assert stack.redis is not None
    heartbeats = HeartbeatWatch(stack.redis)
    heartbeats.start()
    result = await run
    window_s = time.time() - window_start
    cpu = meter.stop()
    heartbeat = await heartbeats.stop()
    load_after = os.getloadavg()
    hops = await stack.take_hop_samples() if record_hops else []
    turns = [t for t in result.turns if t.sent_at >= window_start]
    figures = turn_figures(turns, stack.fake)
    return {
        "in_flight": in_flight,
        "ramp_up_s": ramp,
        "window_s": round(window_s, 2),
        "queue_hop_ms": summarize(hops, 2),
        **figures,
        "tokens_per_s": round(figures["tokens"] / window_s, 1),
        "cpu_cores_used": cpu,
        "connect_errors": dict(result.connect_errors),
        "load_average_1m": {"before": round(load_before[0], 2), "after": round(load_after[0], 2)},
        **heartbeat,
    }


def describe(level: dict[str, Any]) -> str:
    hop, relay, added = level["queue_hop_ms"], level["relay_ms_per_delta"], level["added_before_first_delta_ms"]
    return (
        f"{level['in_flight']:>4} in flight: turns {level['turns_ok']} ok / {level['turns_failed']} failed | "
        f"hop p50 {hop['p50']} p90 {hop['p90']} p99 {hop['p99']} max {hop['max']} ms | "
        f"relay p50 {relay['p50']} p90 {relay['p90']} p99 {relay['p99']} max {relay['max']} ms "
        f"({level['deltas']} deltas) | TTFD-fake p50 {added['p50']} p99 {added['p99']} ms | "
        f"{level['tokens_per_s']} tok/s | errors {level['errors']} | heartbeat: longest silence "
        f"{level['heartbeat_longest_silence_ms']} of {level['heartbeat_ttl_ms']} ms, {level['heartbeat_lapses']} "
        f"lapses | load average {level['load_average_1m']} | cores {level['cpu_cores_used']}"
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.hop_relay", description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="1,100,250", help="chats in flight, comma-separated")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured per level, after ramp-up")
    parser.add_argument("--embed-ms", type=float, default=100.0)
    parser.add_argument("--first-token-ms", type=float, default=300.0)
    parser.add_argument("--tokens-per-second", type=float, default=50.0)
    parser.add_argument("--sentences", type=int, default=3)
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes (each further one with its own embedded Qdrant)"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/hop_relay.json"))
    parser.add_argument("--workdir", type=Path, default=None, help="where logs and data go (default: a temp dir)")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    levels = [int(v) for v in args.levels.split(",") if v.strip()]
    fake = FakeCohereSettings(
        embed_latency_ms=args.embed_ms,
        chat_first_token_ms=args.first_token_ms,
        tokens_per_second=args.tokens_per_second,
        answer_sentences=args.sentences,
    )
    questions = load_questions()
    with tempfile.TemporaryDirectory(prefix="bench-hop-") as tmp:
        workdir = args.workdir or Path(tmp)
        async with LocalStack(workdir, fake, workers=args.workers) as stack:
            # One turn first: connections, scripts and caches warm, so level 1 is not its cold start.
            await measure_level(stack, 1, duration_s=1.0, questions=questions)
            results = []
            for in_flight in levels:
                level = await measure_level(stack, in_flight, duration_s=args.duration, questions=questions)
                print(describe(level), flush=True)
                results.append(level)
    return {
        "benchmark": "hop_relay",
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": _cpus(), "python": platform.python_version()},
        "fake_cohere": fake.as_knobs(),
        "fake_latency_before_first_token_ms": fake.latency_before_first_token_ms,
        "duration_per_level_s": args.duration,
        "workers": args.workers,
        "levels": results,
        "notes": [
            "the load generator runs on the same machine as the stack and shares its CPUs",
            "relay latency has 1 ms resolution (stream ids carry Redis's ms clock)",
        ],
    }


def _cpus() -> int:
    return os.cpu_count() or 0


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    raise_fd_limit()
    report = uvloop.run(run(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
