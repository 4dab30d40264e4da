"""The shared Cohere rate limit, shown: a burst of asks against a fake Cohere that enforces a chat limit.

Two runs with the same burst: the service's own limit off (every worker calls Cohere as fast as turns
come, Cohere answers 429 and the retries pile on), then on at the same rate as Cohere's (the limit is
shared through Redis, so turns wait for their slot and Cohere never refuses). Prints one table and writes
``bench/results/cohere_limit.json``.

    python -m bench.cohere_limit [--per-minute 20] [--burst 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets

from bench.stack import FakeCohereSettings, LocalStack

RESULTS = Path(__file__).parent / "results" / "cohere_limit.json"


async def ask(url: str, question: str, timeout_s: float) -> dict[str, Any]:
    async with websockets.connect(url) as socket:
        await socket.send(orjson.dumps({"type": "ask", "question": question}).decode())
        async with asyncio.timeout(timeout_s):
            while True:
                event = orjson.loads(await socket.recv())
                if event["type"] in {"done", "error"}:
                    return dict(event)


async def run(per_minute: int, burst: int, service_limit: bool) -> dict[str, Any]:
    env = {
        "COHERE_CHAT_PER_MINUTE": str(per_minute if service_limit else 0),
        "COHERE_LIMIT_MAX_WAIT_S": "20",
    }
    with tempfile.TemporaryDirectory(prefix="bench-limit-") as workdir:
        stack = LocalStack(Path(workdir), FakeCohereSettings(), extra_env=env)
        async with stack, httpx.AsyncClient(base_url=stack.fake_url) as fake:
            await fake.post("/_fake/reset")
            await fake.put("/_fake/knobs", json={"rate_limit_per_minute": {"chat": per_minute}})
            results = await asyncio.gather(*(ask(stack.chat_url, "What is a ROS 2 topic?", 90) for _ in range(burst)))
            stats = (await fake.get("/_fake/stats")).json()
    outcomes = Counter(r["code"] if r["type"] == "error" else "done" for r in results)
    hints = [r["retry_after"] for r in results if r.get("retry_after")]
    return {
        "service_limit": f"{per_minute}/min" if service_limit else "off",
        "outcomes": dict(outcomes),
        "retry_after_s": [min(hints), max(hints)] if hints else None,
        "cohere_chat_requests": stats["requests"]["chat"],
        "cohere_429s": stats.get("statuses", {}).get("chat", {}).get("429", 0),
        "fake_stats": stats,
    }


async def compare(per_minute: int, burst: int) -> dict[str, Any]:
    """The same burst with the service's limit off, then on."""
    runs = [await run(per_minute, burst, service_limit=flag) for flag in (False, True)]
    for r in runs:
        r.pop("fake_stats")
    return {"per_minute": per_minute, "burst": burst, "runs": runs}


def table(result: dict[str, Any]) -> str:
    lines = [
        "| service limit | outcomes | retry_after hints (s) | chat calls reaching Cohere | 429s from Cohere |",
        "|---|---|---|---|---|",
    ]
    for r in result["runs"]:
        lines.append(
            f"| {r['service_limit']} | {r['outcomes']} | {r['retry_after_s']} | {r['cohere_chat_requests']} "
            f"| {r['cohere_429s']} |"
        )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-minute", type=int, default=20, help="Cohere's chat limit (a trial key: ~20)")
    parser.add_argument("--burst", type=int, default=30, help="asks sent at once")
    args = parser.parse_args()
    result = await compare(args.per_minute, args.burst)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1))
    print(f"{args.burst} asks at once; fake Cohere allows {args.per_minute} chat calls a minute")
    print(table(result))


if __name__ == "__main__":
    asyncio.run(main())
