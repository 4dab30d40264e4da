"""A self-contained HTML page of a run: inline SVG only (no script, no CDN), so it opens anywhere, offline.

Chat mode: latency over the run (time to first delta and whole turn, per turn, failures in red) and the
distribution of both. Idle mode: handshake and last-ping round-trip distributions and pings answered
over time.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

WIDTH, HEIGHT = 880, 320
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 16, 16, 44
BINS = 40
COLORS = {"first": "#2563eb", "turn": "#ea580c", "failed": "#dc2626", "ping": "#059669", "handshake": "#7c3aed"}


@dataclass(frozen=True)
class Series:
    name: str
    color: str
    points: Sequence[tuple[float, float]]  # scatter: (x, y); histogram: only y is used
    marker: str = "dot"  # "dot" or "cross"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values from at or below ``low`` to at or above ``high`` (1, 2 or 5 times a power of ten
    apart), so that every value lies inside the axis."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low]
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first, last = math.floor(low / step), math.ceil(high / step)
    return [round(i * step, 10) for i in range(first, last + 1)]


def _label(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 or value == 0 else f"{value:.3g}"


def _frame(x_ticks: list[float], y_ticks: list[float], sx: Any, sy: Any, x_label: str, y_label: str) -> list[str]:
    parts = []
    for tick in y_ticks:
        y = sy(tick)
        parts.append(f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(tick)}</text>')
    for tick in x_ticks:
        x = sx(tick)
        parts.append(f'<text x="{x:.1f}" y="{HEIGHT - MARGIN_BOTTOM + 16}" text-anchor="middle">{_label(tick)}</text>')
    bottom = HEIGHT - MARGIN_BOTTOM
    parts.append(f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{bottom}" y2="{bottom}" class="axis"/>')
    parts.append(f'<line x1="{MARGIN_LEFT}" x2="{MARGIN_LEFT}" y1="{MARGIN_TOP}" y2="{bottom}" class="axis"/>')
    parts.append(
        f'<text x="{(MARGIN_LEFT + WIDTH - MARGIN_RIGHT) / 2:.0f}" y="{HEIGHT - 6}" text-anchor="middle">'
        f"{html.escape(x_label)}</text>"
    )
    parts.append(
        f'<text transform="translate(14 {(MARGIN_TOP + bottom) / 2:.0f}) rotate(-90)" text-anchor="middle">'
        f"{html.escape(y_label)}</text>"
    )
    return parts


def _legend(series: Sequence[Series]) -> str:
    items = "".join(
        f'<span class="key"><i style="background:{s.color}"></i>{html.escape(s.name)} ({len(s.points):,})</span>'
        for s in series
    )
    return f'<div class="legend">{items}</div>'


def _svg(parts: list[str], title: str) -> str:
    return (
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(title)}">' + "".join(parts) + "</svg>"
    )


def scatter_svg(series: Sequence[Series], title: str, x_label: str, y_label: str) -> str:
    xs = [x for s in series for x, _ in s.points]
    ys = [y for s in series for _, y in s.points]
    if not xs:
        return f'<p class="empty">{html.escape(title)}: no data</p>'
    x_ticks = nice_ticks(0.0, max(max(xs), 1e-9))
    y_ticks = nice_ticks(0.0, max(max(ys), 1e-9))
    x_max, y_max = max(x_ticks[-1], 1e-9), max(y_ticks[-1], 1e-9)
    width, height = WIDTH - MARGIN_LEFT - MARGIN_RIGHT, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def sx(v: float) -> float:
        return MARGIN_LEFT + width * v / x_max

    def sy(v: float) -> float:
        return MARGIN_TOP + height * (1 - v / y_max)

    parts = _frame(x_ticks, y_ticks, sx, sy, x_label, y_label)
    radius = 2 if len(xs) > 200 else 3
    for s in series:
        for x, y in s.points:
            if s.marker == "cross":
                cx, cy = sx(x), sy(y)
                parts.append(
                    f'<path d="M{cx - 3:.1f} {cy - 3:.1f}L{cx + 3:.1f} {cy + 3:.1f}M{cx - 3:.1f} {cy + 3:.1f}'
                    f'L{cx + 3:.1f} {cy - 3:.1f}" stroke="{s.color}" stroke-width="1.5"/>'
                )
            else:
                parts.append(
                    f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{radius}" fill="{s.color}" fill-opacity="0.6"/>'
                )
    return f"<h2>{html.escape(title)}</h2>" + _legend(series) + _svg(parts, title)


def histogram_svg(series: Sequence[Series], title: str, x_label: str) -> str:
    values = [y for s in series for _, y in s.points]
    if not values:
        return f'<p class="empty">{html.escape(title)}: no data</p>'
    x_ticks = nice_ticks(0.0, max(max(values), 1e-9))
    x_max = max(x_ticks[-1], 1e-9)
    bin_width = x_max / BINS
    counts = []
    for s in series:
        bins = [0] * BINS
        for _, v in s.points:
            bins[min(int(v / bin_width), BINS - 1)] += 1
        counts.append(bins)
    y_ticks = nice_ticks(0.0, float(max(max(c) for c in counts) or 1))
    y_max = max(y_ticks[-1], 1.0)
    width, height = WIDTH - MARGIN_LEFT - MARGIN_RIGHT, HEIGHT - MARGIN_TOP - MARGIN_BOTTOM

    def sx(v: float) -> float:
        return MARGIN_LEFT + width * v / x_max

    def sy(v: float) -> float:
        return MARGIN_TOP + height * (1 - v / y_max)

    parts = _frame(x_ticks, y_ticks, sx, sy, x_label, "turns" if "turn" in title else "count")
    bar = width / BINS
    for s, bins in zip(series, counts, strict=True):
        for i, n in enumerate(bins):
            if n:
                top = sy(n)
                parts.append(
                    f'<rect x="{MARGIN_LEFT + i * bar:.1f}" y="{top:.1f}" width="{max(bar - 1, 1):.1f}" '
                    f'height="{HEIGHT - MARGIN_BOTTOM - top:.1f}" fill="{s.color}" fill-opacity="0.45"/>'
                )
    return f"<h2>{html.escape(title)}</h2>" + _legend(series) + _svg(parts, title)


def _summary_rows(rows: Sequence[tuple[str, dict[str, Any]]]) -> str:
    head = "<tr><th></th>" + "".join(f"<th>{k}</th>" for k in ("count", "p50", "p90", "p99", "max")) + "</tr>"
    body = ""
    for name, summary in rows:
        cells = "".join(
            f"<td>{'-' if summary.get(k) is None else f'{summary[k]:,}'}</td>"
            for k in ("count", "p50", "p90", "p99", "max")
        )
        body += f"<tr><th>{html.escape(name)}</th>{cells}</tr>"
    return f"<table>{head}{body}</table>"


_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:920px;color:#111}
h1{font-size:20px}h2{font-size:16px;margin:28px 0 4px}
svg{width:100%;height:auto;background:#fff;border:1px solid #e5e7eb}
svg text{font-size:11px;fill:#374151}.grid{stroke:#f1f5f9}.axis{stroke:#9ca3af}
.legend{margin:2px 0 6px}.key{margin-right:16px}.key i{display:inline-block;width:10px;height:10px;margin-right:5px}
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;text-align:right;border-bottom:1px solid #eee}
th:first-child{text-align:left}.note{color:#6b7280}.empty{color:#6b7280}
"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )


def chat_chart(report: dict[str, Any]) -> str:
    first, turn, failed = [], [], []
    for sent_s, first_ms, turn_ms, error in report["samples"]:
        if error is None:
            if first_ms is not None:
                first.append((sent_s, first_ms))
            if turn_ms is not None:
                turn.append((sent_s, turn_ms))
        elif turn_ms is not None:
            failed.append((sent_s, turn_ms))
    over_time = [
        Series("time to first delta", COLORS["first"], first),
        Series("whole turn", COLORS["turn"], turn),
        Series("failed turn (time to its error)", COLORS["failed"], failed, marker="cross"),
    ]
    turns = report["turns"]
    summary = (
        f"<p>{html.escape(report['url'])} · started {html.escape(report['started_at'])} · "
        f"{report['elapsed_s']:,}s · {turns['done']:,} turns done, {turns['failed']:,} failed"
        + (" (" + ", ".join(f"{html.escape(k)} {v:,}" for k, v in turns["failed_by_code"].items()) + ")")
        * bool(turns["failed_by_code"])
        + f" · {report['throughput']['tokens_per_s']:,} tokens/s</p>"
        + _summary_rows(
            [
                ("time to first delta (ms)", report["time_to_first_delta_ms"]),
                ("whole turn (ms)", report["turn_time_ms"]),
                ("tokens/s per turn", report["tokens_per_s"]),
            ]
        )
        + f'<p class="note">{html.escape(report["notes"]["tokens"])}</p>'
    )
    body = (
        summary
        + scatter_svg(over_time, "Latency over the run", "seconds since the start (when the ask was sent)", "ms")
        + histogram_svg(
            [Series("time to first delta", COLORS["first"], first), Series("whole turn", COLORS["turn"], turn)],
            "Distribution of turn latencies",
            "ms",
        )
    )
    return _page("loadtest: chat", body)


def idle_chart(report: dict[str, Any]) -> str:
    sockets = report["sockets"]
    handshakes = [(0.0, v) for v in report["handshake_samples_ms"]]
    pings = [(0.0, v) for v in report["final_ping_samples_ms"]]
    answered = [(r["at_s"], float(r["answered"])) for r in report["ping_rounds"]]
    summary = (
        f"<p>{html.escape(report['url'])} · started {html.escape(report['started_at'])} · "
        f"{report['elapsed_s']:,}s · {sockets['alive_at_end']:,} of {sockets['requested']:,} sockets alive at the "
        f"end ({sockets['opened']:,} opened)</p>"
        + _summary_rows(
            [("handshake (ms)", report["handshake_ms"]), ("last ping (ms)", report["final_ping"]["rtt_ms"])]
        )
    )
    body = (
        summary
        + scatter_svg(
            [Series("sockets answering pings", COLORS["ping"], answered)], "Pings answered", "seconds", "sockets"
        )
        + histogram_svg([Series("handshake", COLORS["handshake"], handshakes)], "Handshake time", "ms")
        + histogram_svg([Series("last ping round trip", COLORS["ping"], pings)], "Last ping round trip", "ms")
    )
    return _page("loadtest: idle sockets", body)
