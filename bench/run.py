"""``make bench``: the benchmark suite, in one run, against the real stack on this machine.

    .venv/bin/python -m bench.run [--quick] [--skip idle,baseline] [--embed-ms 100 ...]

Starts redis-server, the fake Cohere server (at realistic pace: embed ~100 ms, first chat token ~300 ms,
~50 tokens/s), ``python -m worker`` and ``python -m gateway`` as processes, plus the in-process baseline
(bench/baseline_app.py), then measures, each phase bounded in time:

1. hop overhead at 1, 100 and 250 chats in flight: time to first delta minus the fake's own latency,
   and the worker-side queue hop;
2. relay capacity: tokens/s delivered to 250 concurrent streams, and the relay latency per delta;
3. capacity: the highest arrival rate of new chats with p95 time to first delta ≤ 1 s;
4. the baseline (same pipeline, no queue) at the same levels and rates, for the ratios;
5. idle sockets: 10,000 WebSockets on the one gateway process, its RSS, and pings still answered;
6. p95 whole-turn time of a typical question, against the 3 s bar (from phase 1);
7. operating under Cohere's limits: a burst of asks against the fake enforcing a chat limit per minute,
   with the service's shared limit off and then on (``bench/cohere_limit.py``, stacks of their own).

Writes ``BENCHMARKS.md`` and the raw figures under ``bench/results/``. The load generator runs here, on
the same CPUs as the stack; every phase records the cores each process used and what other processes
on the machine took meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import uvloop

from bench import cohere_limit
from bench.capacity import find_capacity
from bench.hop_relay import measure_level
from bench.markdown import write_markdown
from bench.stack import ROOT, FakeCohereSettings, LocalStack, raise_fd_limit, rss_mb
from loadtest.idle_load import IdleLoad, IdlePlan
from loadtest.questions import load_questions
from loadtest.report import idle_result

PHASES = ("hop", "relay", "capacity", "baseline", "idle", "limit")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    fake = parser.add_argument_group("the fake Cohere server (realistic pace)")
    fake.add_argument("--embed-ms", type=float, default=100.0)
    fake.add_argument("--rerank-ms", type=float, default=0.0)
    fake.add_argument("--first-token-ms", type=float, default=300.0)
    fake.add_argument("--tokens-per-second", type=float, default=50.0)
    fake.add_argument("--sentences", type=int, default=3, help="sentences per answer (a typical answer)")
    hop = parser.add_argument_group("1. hop overhead")
    hop.add_argument("--levels", default="1,100,250", help="chats in flight")
    hop.add_argument("--level-duration", type=float, default=15.0, help="seconds measured per level")
    relay = parser.add_argument_group("2. relay capacity")
    relay.add_argument("--relay-streams", type=int, default=250)
    relay.add_argument("--relay-tokens-per-second", type=float, default=100.0, help="the fake's pace per stream")
    relay.add_argument("--relay-sentences", type=int, default=40, help="long answers: streaming dominates")
    relay.add_argument("--relay-duration", type=float, default=20.0)
    cap = parser.add_argument_group("3. capacity")
    cap.add_argument("--start-rate", type=float, default=4.0, help="new chats per second to start from (doubled)")
    cap.add_argument("--rate-step", type=float, default=10.0, help="seconds per rate (the first 3 are warm-up)")
    cap.add_argument("--capacity-budget", type=float, default=140.0, help="seconds for the whole search")
    idle = parser.add_argument_group("5. idle sockets")
    idle.add_argument("--idle-sockets", type=int, default=10_000)
    idle.add_argument("--idle-duration", type=float, default=50.0, help="seconds from the first open to the census")
    limit = parser.add_argument_group("7. Cohere limits")
    limit.add_argument("--limit-per-minute", type=int, default=20, help="the fake's chat limit (a trial key: ~20)")
    limit.add_argument("--limit-burst", type=int, default=30, help="asks sent at once")
    parser.add_argument("--skip", default="", help=f"phases to leave out, comma-separated: {','.join(PHASES)}")
    parser.add_argument("--quick", action="store_true", help="small and short (a smoke test of the suite itself)")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md")
    parser.add_argument("--workdir", type=Path, default=None, help="logs and data (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.quick:
        args.levels, args.level_duration = "1,20", 5.0
        args.relay_streams, args.relay_duration = 40, 6.0
        args.start_rate, args.rate_step, args.capacity_budget = 5.0, 6.0, 60.0
        args.idle_sockets, args.idle_duration = 300, 8.0
        args.limit_per_minute, args.limit_burst = 6, 9
    unknown = set(filter(None, args.skip.split(","))) - set(PHASES)
    if unknown:
        parser.error(f"--skip: unknown phases {sorted(unknown)}")
    return args


def machine() -> dict[str, Any]:
    memory_kb = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "commit": commit or None,
    }


async def bounded(name: str, seconds: float, work: Awaitable[Any]) -> Any:
    """Every phase has a time limit; a phase that overruns is recorded as such and the run goes on."""
    started = time.monotonic()
    print(f"== {name} (at most {seconds:.0f}s)", flush=True)
    try:
        async with asyncio.timeout(seconds):
            result = await work
    except TimeoutError:
        print(f"   {name}: did not finish in {seconds:.0f}s", flush=True)
        return {"error": f"did not finish within {seconds:.0f}s"}
    print(f"   {name}: {time.monotonic() - started:.0f}s", flush=True)
    return result


async def hop_levels(stack: LocalStack, args: argparse.Namespace, questions: list[str], *, baseline: bool) -> Any:
    levels = []
    for in_flight in [int(v) for v in args.levels.split(",") if v.strip()]:
        level = await measure_level(
            stack,
            in_flight,
            duration_s=args.level_duration,
            questions=questions,
            url=stack.baseline_chat_url if baseline else None,
            record_hops=not baseline,
        )
        hop, added = level["queue_hop_ms"], level["added_before_first_delta_ms"]
        print(
            f"    {in_flight:>4} in flight: {level['turns_ok']} ok/{level['turns_failed']} failed; "
            f"first delta - fake p50 {added['p50']} p99 {added['p99']} ms; hop p50 {hop['p50']} p99 {hop['p99']} ms",
            flush=True,
        )
        levels.append(level)
    return levels


async def relay_capacity(stack: LocalStack, args: argparse.Namespace, questions: list[str], url: str) -> Any:
    await stack.set_fake_knobs(tokens_per_second=args.relay_tokens_per_second, answer_sentences=args.relay_sentences)
    try:
        level = await measure_level(
            stack,
            args.relay_streams,
            duration_s=args.relay_duration,
            questions=questions,
            url=url,
            record_hops=url == stack.chat_url,
            ramp_up_s=min(5.0, args.relay_streams / 50),
        )
    finally:
        await stack.set_fake_knobs(tokens_per_second=args.tokens_per_second, answer_sentences=args.sentences)
    relay = level["relay_ms_per_delta"]
    print(
        f"    {args.relay_streams} streams: {level['tokens_per_s']:,} tokens/s delivered; relay per delta "
        f"p50 {relay['p50']} p99 {relay['p99']} ms over {level['deltas']:,} deltas",
        flush=True,
    )
    return {
        **level,
        "streams": args.relay_streams,
        "fake_tokens_per_second_per_stream": args.relay_tokens_per_second,
        "offered_tokens_per_s_while_streaming": args.relay_streams * args.relay_tokens_per_second,
        "answer_sentences": args.relay_sentences,
    }


async def idle_sockets(stack: LocalStack, args: argparse.Namespace) -> Any:
    pid = stack.pid("gateway")
    rss_before = rss_mb(pid)
    samples: list[tuple[float, float]] = []
    load = IdleLoad(
        IdlePlan(
            url=stack.chat_url,
            sockets=args.idle_sockets,
            duration_s=args.idle_duration,
            ping_interval_s=max(args.idle_duration / 4, 2.0),
            connect_timeout_s=30.0,
            connect_concurrency=500,
        )
    )

    async def sample_rss() -> None:
        while True:
            samples.append((round(load.elapsed_s, 1), round(rss_mb(pid), 1)))
            await asyncio.sleep(1.0)

    sampler = asyncio.create_task(sample_rss())
    meter = stack.cpu_meter()
    meter.start()
    try:
        result = await load.run()
    finally:
        sampler.cancel()
    cpu = meter.stop()
    report = idle_result(result, {})
    census_at = result.rounds[-1].at_s if result.rounds else result.elapsed_s
    held = [rss for at, rss in samples if at <= census_at]
    rss_held = held[-1] if held else rss_mb(pid)
    opened = max(report["sockets"]["opened"], 1)
    print(
        f"    {report['sockets']['alive_at_end']:,}/{args.idle_sockets:,} alive, "
        f"{report['final_ping']['answered']:,} answered the last ping; gateway RSS {rss_before:.0f} -> "
        f"{rss_held:.0f} MB (peak {max((r for _, r in samples), default=rss_held):.0f} MB)",
        flush=True,
    )
    for bulky in ("handshake_samples_ms", "final_ping_samples_ms"):
        report.pop(bulky)
    return {
        **report,
        "gateway_rss_mb_before": round(rss_before, 1),
        "gateway_rss_mb_holding": rss_held,
        "gateway_rss_mb_peak": max((r for _, r in samples), default=rss_held),
        "gateway_rss_kb_per_socket": round((rss_held - rss_before) * 1024 / opened, 1),
        "rss_samples": samples,
        "cpu_cores_used": cpu,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    skip = set(filter(None, args.skip.split(",")))
    fake = FakeCohereSettings(
        embed_latency_ms=args.embed_ms,
        rerank_latency_ms=args.rerank_ms,
        chat_first_token_ms=args.first_token_ms,
        tokens_per_second=args.tokens_per_second,
        answer_sentences=args.sentences,
    )
    questions = load_questions()
    results: dict[str, Any] = {
        "suite": "bench.run",
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "make bench" + (" (--quick)" if args.quick else ""),
        "machine": machine(),
        "fake_cohere": fake.as_knobs(),
        "fake_latency_before_first_token_ms": fake.latency_before_first_token_ms,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = args.workdir or Path(tmp)
        async with LocalStack(workdir, fake) as stack:
            if "baseline" not in skip:
                await stack.start_baseline()
            print(f"stack up in {time.monotonic() - started:.0f}s (logs: {workdir})", flush=True)
            await measure_level(stack, 1, duration_s=1.0, questions=questions)  # warm connections and caches
            phases: list[tuple[str, float, Callable[[], Awaitable[Any]]]] = [
                ("hop", 150, lambda: hop_levels(stack, args, questions, baseline=False)),
                ("relay", 90, lambda: relay_capacity(stack, args, questions, stack.chat_url)),
                (
                    "capacity",
                    args.capacity_budget + 30,
                    lambda: find_capacity(
                        stack.chat_url,
                        questions,
                        start_rate=args.start_rate,
                        step_s=args.rate_step,
                        budget_s=args.capacity_budget,
                    ),
                ),
                ("baseline", 150 + args.capacity_budget, lambda: baseline_phase(stack, args, questions)),
                ("idle", args.idle_duration + 90, lambda: idle_sockets(stack, args)),
            ]
            for name, limit, work in phases:
                if name not in skip:
                    results[name] = await bounded(name, limit, work())
    if "limit" not in skip:  # two stacks of its own, one after the other (the service's limit off, then on)
        results["limit"] = await bounded("limit", 240, cohere_limit.compare(args.limit_per_minute, args.limit_burst))
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    return results


async def baseline_phase(stack: LocalStack, args: argparse.Namespace, questions: list[str]) -> dict[str, Any]:
    return {
        "hop": await hop_levels(stack, args, questions, baseline=True),
        "relay": await relay_capacity(stack, args, questions, stack.baseline_chat_url),
        "capacity": await find_capacity(
            stack.baseline_chat_url,
            questions,
            start_rate=args.start_rate,
            step_s=args.rate_step,
            budget_s=args.capacity_budget,
        ),
    }


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    raise_fd_limit()
    results = uvloop.run(run(args))
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    raw = args.results_dir / f"bench-{stamp}{'-quick' if args.quick else ''}.json"
    raw.write_text(json.dumps(results, indent=1) + "\n")
    write_markdown(results, args.markdown, raw.relative_to(ROOT) if raw.is_relative_to(ROOT) else raw)
    print(f"wrote {raw} and {args.markdown} in {results['elapsed_s']:.0f}s")


if __name__ == "__main__":
    main()
