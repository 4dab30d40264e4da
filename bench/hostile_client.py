"""Honest clients' answer times while one hostile socket attacks the gateway's shared relay.

    .venv/bin/python -m bench.hostile_client [--attack bad-resume|resume-twice|none] [--clients 5] [--duration 30]

Starts the real stack as processes (bench/stack.py), then for ``--duration`` seconds keeps ``--clients``
honest sockets asking one question after another, each timing its ask → ``accepted`` and ask → ``done``.
Meanwhile one attacker socket asks once (to own a real turn id) and then, every ``--interval`` seconds:

* ``bad-resume``: resumes its turn after ids outside a Redis stream id's range
  (``99999999999999999999-0``, ``0-99999999999999999999``) and after the largest valid one;
* ``resume-twice``: resumes its turn twice in a row (the second cancels the first subscription);
* ``none``: sends nothing (the reference).

Prints percentiles of both times and writes ``bench/results/hostile_client-<attack>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import websockets

from bench.stack import FakeCohereSettings, LocalStack
from loadtest.stats import summarize

RESULTS = Path(__file__).parent / "results"
OUT_OF_RANGE_IDS = ("99999999999999999999-0", "0-99999999999999999999", "18446744073709551615-18446744073709551615")


async def honest_client(url: str, until: float, times: dict[str, list[float]], outcomes: Counter[str]) -> None:
    async with websockets.connect(url, max_size=None) as socket:
        while time.monotonic() < until:
            started = time.monotonic()
            await socket.send(orjson.dumps({"type": "ask", "question": "What is a ROS 2 topic?"}).decode())
            try:
                async with asyncio.timeout(120):
                    while True:
                        event = orjson.loads(await socket.recv())
                        if event["type"] == "accepted":
                            times["accepted_ms"].append((time.monotonic() - started) * 1000)
                        elif event["type"] in {"done", "error"}:
                            break
            except TimeoutError:
                outcomes["no_answer_in_120s"] += 1
                return
            if event["type"] == "done":
                times["done_ms"].append((time.monotonic() - started) * 1000)
            outcomes[event["type"] if event["type"] == "done" else event["code"]] += 1


async def attacker(url: str, attack: str, interval_s: float, sent: Counter[str]) -> None:
    async with websockets.connect(url, max_size=None) as socket:
        await socket.send(orjson.dumps({"type": "ask", "question": "What is a URDF?"}).decode())
        turn_id = None
        while turn_id is None:
            event = orjson.loads(await socket.recv())
            turn_id = event["turn_id"] if event["type"] == "accepted" else None

        async def drain() -> None:
            async for _ in socket:
                sent["frames_back"] += 1

        reader = asyncio.create_task(drain())
        try:
            while True:
                if attack == "bad-resume":
                    frames = [{"type": "resume", "turn_id": turn_id, "after": after} for after in OUT_OF_RANGE_IDS]
                elif attack == "resume-twice":
                    frames = [{"type": "resume", "turn_id": turn_id}] * 2
                else:
                    frames = []
                for frame in frames:
                    await socket.send(orjson.dumps(frame).decode())
                    sent["frames_sent"] += 1
                await asyncio.sleep(interval_s)
        finally:
            reader.cancel()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    fake = FakeCohereSettings(embed_latency_ms=20, chat_first_token_ms=50, tokens_per_second=200)
    times: dict[str, list[float]] = {"accepted_ms": [], "done_ms": []}
    outcomes: Counter[str] = Counter()
    sent: Counter[str] = Counter()
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as workdir:
        async with LocalStack(Path(workdir), fake) as stack:
            until = time.monotonic() + args.duration
            attack = asyncio.create_task(attacker(stack.chat_url, args.attack, args.interval, sent))
            await asyncio.gather(*(honest_client(stack.chat_url, until, times, outcomes) for _ in range(args.clients)))
            attack.cancel()
            await asyncio.gather(attack, return_exceptions=True)
    return {
        "attack": args.attack,
        "clients": args.clients,
        "duration_s": args.duration,
        "interval_s": args.interval,
        "accepted_ms": summarize(times["accepted_ms"]),
        "done_ms": summarize(times["done_ms"]),
        "outcomes": dict(outcomes),
        "attacker": dict(sent),
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attack", choices=("bad-resume", "resume-twice", "none"), default="bad-resume")
    parser.add_argument("--clients", type=int, default=5, help="honest sockets asking one after another")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds the honest clients keep asking")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between the attacker's bursts")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    result = asyncio.run(run(args))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"hostile_client-{args.attack}.json").write_text(json.dumps(result, indent=1))

    def line(name: str) -> str:
        s = result[name]
        return f"{name}: n={s['count']} p50={s['p50']} p90={s['p90']} p99={s['p99']} max={s['max']}"

    print(f"attack={args.attack} clients={args.clients} duration={args.duration}s")
    print(line("accepted_ms"))
    print(line("done_ms"))
    print(f"outcomes: {result['outcomes']}  attacker: {result['attacker']}")


if __name__ == "__main__":
    main()
