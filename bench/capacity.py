"""Capacity: the highest sustained arrival rate of new chats whose p95 time to first delta stays ≤ 1 s.

Open loop, as real readers arrive: at a fixed rate a new chat starts no matter how the earlier ones are
doing; each opens its own socket, asks one question, reads the answer and closes. The rate doubles
until a step misses the bar (p95 time to first delta over the limit, or more than 1 % of chats failing),
then the gap is bisected; each step's figures cover the chats started after its warm-up, so they
describe the steady state.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from loadtest.client import ChatConnection, TurnRecord, describe_connect_error
from loadtest.stats import percentile, summarize

MAX_FAILED_SHARE = 0.01


@dataclass
class StepResult:
    rate_per_s: float
    started: int = 0
    records: list[TurnRecord] = field(default_factory=list)
    connect_errors: dict[str, int] = field(default_factory=dict)
    handshake_ms: list[float] = field(default_factory=list)

    def figures(self, limit_ms: float) -> dict[str, Any]:
        ok = [r for r in self.records if r.ok and r.first_delta_s is not None]
        failed = self.started - len(ok)
        first = sorted(r.first_delta_s * 1000 for r in ok if r.first_delta_s is not None)
        p95 = round(percentile(first, 95), 1) if first else None
        failed_share = failed / self.started if self.started else 1.0
        return {
            "rate_per_s": self.rate_per_s,
            "chats": self.started,
            "failed": failed,
            "errors": sorted({r.error for r in self.records if r.error} | set(self.connect_errors)),
            "time_to_first_delta_ms": summarize(first),
            "p95_time_to_first_delta_ms": p95,
            "turn_ms": summarize(r.total_s * 1000 for r in ok if r.total_s is not None),
            "handshake_ms": summarize(self.handshake_ms),
            "passed": p95 is not None and p95 <= limit_ms and failed_share <= MAX_FAILED_SHARE,
        }


async def _one_chat(url: str, question: str, step: StepResult, measured: bool, turn_timeout_s: float) -> None:
    started = time.perf_counter()
    try:
        connection = await ChatConnection.open(url, open_timeout_s=10.0)
    except Exception as exc:
        if measured:
            reason = describe_connect_error(exc)
            step.connect_errors[reason] = step.connect_errors.get(reason, 0) + 1
        return
    try:
        handshake_ms = (time.perf_counter() - started) * 1000
        record = await connection.ask(question, limit_s=turn_timeout_s)
    finally:
        await connection.close()
    if measured:
        step.handshake_ms.append(handshake_ms)
        step.records.append(record)


async def run_step(
    url: str,
    rate_per_s: float,
    questions: Sequence[str],
    *,
    duration_s: float,
    warmup_s: float,
    turn_timeout_s: float = 30.0,
) -> StepResult:
    """Start chats evenly spaced at ``rate_per_s`` for ``duration_s``; measure those after ``warmup_s``."""
    step = StepResult(rate_per_s=rate_per_s)
    tasks: list[asyncio.Task[None]] = []
    interval = 1.0 / rate_per_s
    begin = time.perf_counter()
    n = 0
    while True:
        due = begin + n * interval
        if due - begin >= duration_s:
            break
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        measured = due - begin >= warmup_s
        step.started += measured
        question = questions[n % len(questions)]
        tasks.append(asyncio.create_task(_one_chat(url, question, step, measured, turn_timeout_s)))
        n += 1
    try:
        async with asyncio.timeout(turn_timeout_s + 15.0):
            await asyncio.gather(*tasks)
    except TimeoutError:
        pass  # chats still running count as failed (they are not in ``records``)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return step


async def find_capacity(
    url: str,
    questions: Sequence[str],
    *,
    start_rate: float = 4.0,
    max_rate: float = 256.0,
    refine_steps: int = 2,
    limit_ms: float = 1000.0,
    step_s: float = 10.0,
    warmup_s: float = 3.0,
    budget_s: float = 120.0,
    pause_s: float = 2.0,
    turn_timeout_s: float = 10.0,
) -> dict[str, Any]:
    """Double the rate from ``start_rate`` until a step misses the bar, then bisect between the last rate
    that passed and the first that did not ``refine_steps`` times; stop early when the budget is spent."""
    steps: list[dict[str, Any]] = []
    started = time.monotonic()
    passed: float | None = None
    failed: float | None = None
    stopped_by = "search finished"

    async def attempt(rate: float) -> bool:
        step = await run_step(url, rate, questions, duration_s=step_s, warmup_s=warmup_s, turn_timeout_s=turn_timeout_s)
        figures = step.figures(limit_ms)
        steps.append(figures)
        print(
            f"    {rate:>6.1f} chats/s: p95 first delta {figures['p95_time_to_first_delta_ms']} ms, "
            f"{figures['failed']}/{figures['chats']} failed -> {'ok' if figures['passed'] else 'over the bar'}",
            flush=True,
        )
        await asyncio.sleep(pause_s)  # let the last chats of the step drain
        return bool(figures["passed"])

    def budget_left() -> bool:
        return time.monotonic() - started + step_s + turn_timeout_s + pause_s <= budget_s

    rate = start_rate
    while rate <= max_rate:
        if not budget_left():
            stopped_by = "time budget"
            break
        if await attempt(rate):
            passed, rate = rate, rate * 2
        else:
            failed = rate
            break
    for _ in range(refine_steps):
        if failed is None:
            break
        low = passed or 0.0
        middle = round((low + failed) / 2, 1)
        if middle <= low or middle >= failed or not budget_left():
            break
        if await attempt(middle):
            passed = middle
        else:
            failed = middle
    if failed is None and stopped_by == "search finished":
        stopped_by = f"reached {max_rate:g}/s"
    return {
        "limit_p95_time_to_first_delta_ms": limit_ms,
        "max_failed_share": MAX_FAILED_SHARE,
        "step_s": step_s,
        "warmup_s": warmup_s,
        "highest_rate_passed_per_s": passed,
        "lowest_rate_failed_per_s": failed,
        "stopped_by": stopped_by,
        "steps": steps,
    }
