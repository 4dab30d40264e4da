"""Results: the JSON document a run leaves behind, and the summary printed at its end."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table

from loadtest.chat_load import ChatLoadResult
from loadtest.idle_load import IdleResult
from loadtest.stats import summarize

RESULT_FORMAT = 1
TOKENS_NOTE = (
    "tokens are counted as the whitespace-separated words of a turn's deltas (the service does not report "
    "model tokens), so tokens/s is words/s: for English roughly 0.75x the model's token rate"
)
MAX_SAMPLES = 20_000  # per-turn samples kept in the JSON (and the chart); evenly thinned beyond this


def _iso(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(wall))


def _thin(items: list[Any], limit: int = MAX_SAMPLES) -> list[Any]:
    if len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def chat_result(result: ChatLoadResult, options: dict[str, Any]) -> dict[str, Any]:
    turns = result.turns
    ok = [t for t in turns if t.ok]
    failed = Counter(t.error or "unknown" for t in turns if not t.ok)
    tokens = sum(t.tokens for t in ok)
    elapsed = max(result.elapsed_s, 1e-9)
    samples = [
        [
            round(t.sent_at - result.started_at, 3),
            round(t.first_delta_s * 1000, 1) if t.first_delta_s is not None else None,
            round(t.total_s * 1000, 1) if t.total_s is not None else None,
            t.error,
        ]
        for t in sorted(turns, key=lambda t: t.sent_at)
    ]
    return {
        "tool": "loadtest",
        "format": RESULT_FORMAT,
        "mode": "chat",
        "url": result.plan.url,
        "options": options,
        "started_at": _iso(result.started_at),
        "elapsed_s": round(result.elapsed_s, 2),
        "cut_short": result.cut_short,
        "turns": {
            "total": len(turns),
            "done": len(ok),
            "failed": len(turns) - len(ok),
            "failed_by_code": dict(failed.most_common()),
            "unfinished_when_stopped": result.unfinished,
        },
        "connections": {
            "opened": result.connections_opened,
            "errors": dict(result.connect_errors.most_common()),
            "users_gave_up": result.users_gave_up,
        },
        "time_to_first_delta_ms": summarize(t.first_delta_s * 1000 for t in ok if t.first_delta_s is not None),
        "turn_time_ms": summarize(t.total_s * 1000 for t in ok if t.total_s is not None),
        "tokens_per_s": summarize(rate for t in ok if (rate := t.tokens_per_s) is not None),
        "throughput": {
            "turns_per_s": round(len(ok) / elapsed, 2),
            "tokens_per_s": round(tokens / elapsed, 1),
            "tokens": tokens,
        },
        "notes": {"tokens": TOKENS_NOTE},
        "samples_fields": ["sent_s", "time_to_first_delta_ms", "turn_time_ms", "error"],
        "samples": _thin(samples),
    }


def idle_result(result: IdleResult, options: dict[str, Any]) -> dict[str, Any]:
    final = result.rounds[-1] if result.rounds else None
    return {
        "tool": "loadtest",
        "format": RESULT_FORMAT,
        "mode": "idle",
        "url": result.plan.url,
        "options": options,
        "started_at": _iso(result.started_at),
        "elapsed_s": round(result.elapsed_s, 2),
        "cut_short": result.cut_short,
        "sockets": {
            "requested": result.plan.sockets,
            "opened": result.opened,
            "open_errors": dict(result.open_errors.most_common()),
            "closed_by_server": dict(result.closed_early.most_common()),
            "alive_at_end": result.alive_at_end,
        },
        "handshake_ms": summarize(result.handshake_ms),
        "final_ping": {
            "sent": final.sent if final else 0,
            "answered": final.answered if final else 0,
            "rtt_ms": summarize(final.rtt_ms if final else []),
        },
        "ping_rounds": [
            {"at_s": round(r.at_s, 2), "sent": r.sent, "answered": r.answered, "rtt_ms": summarize(r.rtt_ms)}
            for r in result.rounds
        ],
        "handshake_samples_ms": _thin([round(v, 2) for v in result.handshake_ms]),
        "final_ping_samples_ms": _thin([round(v, 2) for v in (final.rtt_ms if final else [])]),
    }


def _fmt(value: Any) -> str:
    return "-" if value is None else f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def _summary_table(title: str, rows: list[tuple[str, dict[str, Any]]]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("")
    for column in ("count", "p50", "p90", "p99", "max"):
        table.add_column(column, justify="right")
    for name, summary in rows:
        table.add_row(name, *(_fmt(summary.get(k)) for k in ("count", "p50", "p90", "p99", "max")))
    return table


def print_chat_summary(console: Console, report: dict[str, Any]) -> None:
    turns, connections, throughput = report["turns"], report["connections"], report["throughput"]
    console.print(
        f"[bold]{report['url']}[/bold]: {turns['done']:,} turns done, {turns['failed']:,} failed "
        f"in {report['elapsed_s']:,.1f}s ({throughput['turns_per_s']:,} turns/s, "
        f"{throughput['tokens_per_s']:,} tokens/s)" + (" [yellow](cut short)[/yellow]" if report["cut_short"] else "")
    )
    console.print(
        _summary_table(
            "latency and streaming rate",
            [
                ("time to first delta (ms)", report["time_to_first_delta_ms"]),
                ("whole turn (ms)", report["turn_time_ms"]),
                ("tokens/s per turn", report["tokens_per_s"]),
            ],
        )
    )
    if turns["failed_by_code"]:
        console.print("failed turns by code: " + ", ".join(f"{k} {v:,}" for k, v in turns["failed_by_code"].items()))
    errors = connections["errors"]
    console.print(
        f"connections: {connections['opened']:,} opened"
        + (", errors: " + ", ".join(f"{k} {v:,}" for k, v in errors.items()) if errors else ", no errors")
        + (f", {connections['users_gave_up']:,} users gave up" if connections["users_gave_up"] else "")
    )
    console.print(f"[dim]{TOKENS_NOTE}[/dim]")


def print_idle_summary(console: Console, report: dict[str, Any]) -> None:
    sockets, final = report["sockets"], report["final_ping"]
    console.print(
        f"[bold]{report['url']}[/bold]: {sockets['alive_at_end']:,} of {sockets['requested']:,} sockets alive "
        f"at the end ({sockets['opened']:,} opened; {final['answered']:,} of {final['sent']:,} answered the "
        f"last ping) after {report['elapsed_s']:,.1f}s"
        + (" [yellow](cut short)[/yellow]" if report["cut_short"] else "")
    )
    console.print(
        _summary_table(
            "sockets", [("handshake (ms)", report["handshake_ms"]), ("last ping round trip (ms)", final["rtt_ms"])]
        )
    )
    if sockets["open_errors"]:
        console.print("could not open: " + ", ".join(f"{k} {v:,}" for k, v in sockets["open_errors"].items()))
    if sockets["closed_by_server"]:
        console.print("closed while held: " + ", ".join(f"{k} {v:,}" for k, v in sockets["closed_by_server"].items()))
