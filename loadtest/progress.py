"""Live progress while a run goes on (rich), redrawn twice a second."""

from __future__ import annotations

import asyncio

from rich.console import Console, RenderableType
from rich.live import Live
from rich.table import Table

from loadtest.chat_load import ChatLoad
from loadtest.idle_load import IdleLoad
from loadtest.stats import percentile

REFRESH_S = 0.5
RECENT_TURNS = 200  # running percentiles are over the last turns, so they follow the load as it changes


def _ms(values: list[float], q: float) -> str:
    return f"{percentile(sorted(values), q) * 1000:,.0f}" if values else "-"


def chat_view(load: ChatLoad) -> RenderableType:
    plan, live = load.plan, load.live
    recent = live.recent[-RECENT_TURNS:]
    first = [t.first_delta_s for t in recent if t.ok and t.first_delta_s is not None]
    whole = [t.total_s for t in recent if t.ok and t.total_s is not None]
    limit = f" / {plan.duration_s:,.0f}s" if plan.duration_s is not None else ""
    if plan.turns_per_user is not None:
        limit += f" (≤ {plan.turns_per_user * plan.users:,} turns)"
    table = Table(box=None, pad_edge=False)
    for column in ("elapsed", "users", "in flight", "done", "failed", "first delta p50/p90 ms", "turn p50/p90 ms"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{load.elapsed_s:,.0f}s{limit}",
        f"{live.connected:,}/{plan.users:,}",
        f"{live.in_flight:,}",
        f"{live.ok:,}",
        f"{live.failed:,}",
        f"{_ms(first, 50)} / {_ms(first, 90)}",
        f"{_ms(whole, 50)} / {_ms(whole, 90)}",
    )
    if live.errors:
        table.caption = "errors: " + ", ".join(f"{k} {v:,}" for k, v in live.errors.most_common(5))
    return table


def idle_view(load: IdleLoad) -> RenderableType:
    plan = load.plan
    last = load.rounds[-1] if load.rounds else None
    table = Table(box=None, pad_edge=False)
    for column in ("elapsed", "open", "opening", "failed to open", "last ping answered"):
        table.add_column(column, justify="right")
    table.add_row(
        f"{load.elapsed_s:,.0f}s / {plan.duration_s:,.0f}s",
        f"{load.open_now:,}/{plan.sockets:,}",
        f"{load.opening:,}",
        f"{sum(load.open_errors.values()):,}",
        f"{last.answered:,}/{last.sent:,}" if last else "-",
    )
    return table


async def show_progress(console: Console, load: ChatLoad | IdleLoad) -> None:
    """Redraw until cancelled. Drawn from the event loop (not rich's refresh thread), so the view never
    reads the run's counters while the loop changes them."""
    with Live(view(load), console=console, auto_refresh=False, transient=True) as live:
        while True:
            live.update(view(load), refresh=True)
            await asyncio.sleep(REFRESH_S)


def view(load: ChatLoad | IdleLoad) -> RenderableType:
    return chat_view(load) if isinstance(load, ChatLoad) else idle_view(load)
