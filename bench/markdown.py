"""``BENCHMARKS.md`` from one run's results: headline against the targets, then each phase in detail.

Everything in the file comes from the run, except ``bench/analysis.md`` (what limits the figures and
what was changed because of them), which is written by hand and appended as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.cohere_limit import table

ROOT = Path(__file__).resolve().parents[1]
NONE = "-"  # a figure that was not measured
ANALYSIS = ROOT / "bench" / "analysis.md"


def _n(value: Any, unit: str = "") -> str:
    if value is None:
        return NONE
    if isinstance(value, float) and value >= 100:
        text = f"{value:,.0f}"
    elif isinstance(value, float) and abs(value) < 10:
        text = f"{value:.2f}"  # near a target of a few ms the second decimal decides (5.02 misses ≤ 5)
    elif isinstance(value, float):
        text = f"{value:,.1f}"
    else:
        text = f"{value:,}"
    return f"{text}{unit}"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _verdict(ok: bool | None) -> str:
    return NONE if ok is None else ("met" if ok else "**missed**")


def _ok(phase: Any) -> bool:
    return isinstance(phase, dict | list) and not (isinstance(phase, dict) and "error" in phase)


def _level(levels: Any, in_flight: int) -> dict[str, Any] | None:
    if not isinstance(levels, list):
        return None
    return next((lv for lv in levels if lv["in_flight"] == in_flight), None)


def _pcts(summary: dict[str, Any] | None, keys: Sequence[str] = ("p50", "p90", "p99", "max")) -> str:
    if not summary or not summary.get("count"):
        return NONE
    return " / ".join(_n(summary[k]) for k in keys)


def _cores(cpu: dict[str, Any]) -> str:
    order = ("gateway", "worker", "redis", "fake_cohere", "baseline", "load_generator", "other_processes")
    return ", ".join(f"{k.replace('_', ' ')} {cpu[k]:.2f}" for k in order if k in cpu)


def _starved(cpu: dict[str, Any]) -> str:
    parts = [
        f"{k.removesuffix('_waiting_for_cpu')} {cpu[k]:.0%}"
        for k in ("gateway_waiting_for_cpu", "worker_waiting_for_cpu", "baseline_waiting_for_cpu")
        if k in cpu and cpu[k] >= 0.005
    ]
    return ", ".join(parts) or NONE


def _hop_rows(results: dict[str, Any], in_flight: int) -> list[tuple[str, str, str, str]]:
    """Queue hop, first delta minus the fake, and the architecture's share of it, against the hop target
    (which the issue sets at 100 in flight; the other levels are shown against it for reference)."""
    level = _level(results.get("hop"), in_flight)
    if not level:
        return []
    baseline = results.get("baseline")
    base = _level(baseline.get("hop") if isinstance(baseline, dict) and _ok(baseline) else None, in_flight)
    target = "≤ 5 / ≤ 25 ms" if in_flight == 100 else "(≤ 5 / ≤ 25 ms at 100)"

    def row(label: str, p50: float | None, p99: float | None) -> tuple[str, str, str, str]:
        ok = p50 is not None and p99 is not None and p50 <= 5 and p99 <= 25
        return (f"{label} at {in_flight} in flight, p50 / p99", target, f"{_n(p50)} / {_n(p99)} ms", _verdict(ok))

    hop, added = level["queue_hop_ms"], level["added_before_first_delta_ms"]
    rows = [
        row("queue hop (worker-side)", hop["p50"], hop["p99"]),
        row("first delta - fake's latency", added["p50"], added["p99"]),
    ]
    if base and added["p50"] is not None and base["added_before_first_delta_ms"]["p50"] is not None:
        b = base["added_before_first_delta_ms"]
        rows.append(row("… of which the queue architecture (service - baseline)", added["p50"] - b["p50"],
                        added["p99"] - b["p99"]))  # fmt: skip
    return rows


def headline(results: dict[str, Any]) -> str:
    rows = _hop_rows(results, 1) + _hop_rows(results, 100)
    relay = results.get("relay")
    if _ok(relay):
        rows.append(
            (
                f"tokens/s delivered to {relay['streams']} streams",
                "≥ 10,000",
                _n(relay["tokens_per_s"]),
                _verdict(relay["tokens_per_s"] >= 10_000),
            )
        )
        p99 = relay["relay_ms_per_delta"]["p99"]
        rows.append(
            (
                "relay latency per delta (write → client), p99",
                "≤ 20 ms",
                f"{_n(p99)} ms",
                _verdict(p99 is not None and p99 <= 20),
            )
        )
    idle = results.get("idle")
    if _ok(idle):
        rows.append(
            (
                f"gateway RSS holding {idle['sockets']['opened']:,} idle sockets",
                "≤ 600 MB",
                f"{_n(idle['gateway_rss_mb_holding'])} MB",
                _verdict(idle["gateway_rss_mb_holding"] <= 600),
            )
        )
        answered, wanted = idle["final_ping"]["answered"], idle["sockets"]["requested"]
        rows.append(
            ("idle sockets answering the last ping", f"{wanted:,}", f"{answered:,}", _verdict(answered == wanted))
        )
    capacity = results.get("capacity")
    if _ok(capacity):
        rows.append(
            (
                "new chats/s sustained with p95 first delta ≤ 1 s",
                "(measured)",
                _n(capacity["highest_rate_passed_per_s"]),
                NONE,
            )
        )
    for in_flight in (1, 100):
        level = _level(results.get("hop"), in_flight)
        if level:
            p95 = level["turn_p95_ms"]
            rows.append(
                (
                    f"whole turn p95, typical question, {in_flight} in flight",
                    "≤ 3 s",
                    f"{_n(p95)} ms",
                    _verdict(p95 is not None and p95 <= 3000),
                )
            )
    return _table(("", "target", "measured", ""), rows)


def hop_section(levels: Any, fake_ms: float, title: str) -> str:
    if not _ok(levels):
        return f"{title}: not measured ({levels.get('error') if isinstance(levels, dict) else 'skipped'})."
    rows = [
        (
            lv["in_flight"],
            f"{lv['turns_ok']:,} / {lv['turns_failed']:,}",
            _pcts(lv["ttfd_ms"], ("p50", "p99")),
            _pcts(lv["added_before_first_delta_ms"]),
            _pcts(lv["queue_hop_ms"]),
            _pcts(lv["relay_ms_per_delta"], ("p50", "p99")),
            _pcts(lv["turn_ms"], ("p50", "p99")),
            _cores(lv["cpu_cores_used"]),
            _starved(lv["cpu_cores_used"]),
        )
        for lv in levels
    ]
    header = (
        "in flight",
        "turns ok / failed",
        "first delta p50 / p99 (ms)",
        f"first delta - {fake_ms:.0f} ms p50 / p90 / p99 / max",
        "worker-side hop p50 / p90 / p99 / max (ms)",
        "relay per delta p50 / p99 (ms)",
        "whole turn p50 / p99 (ms)",
        "cores used",
        "waiting for a CPU",
    )
    return f"{title}\n\n" + _table(header, rows)


def relay_section(relay: Any, title: str) -> str:
    if not _ok(relay):
        return f"{title}: not measured."
    rows = [
        ("streams", f"{relay['streams']} (closed loop: each asks again when its answer is done)"),
        (
            "the fake's pace per stream",
            f"{_n(relay['fake_tokens_per_second_per_stream'])} tokens/s, "
            f"answers of up to {relay['answer_sentences']} sentences",
        ),
        ("tokens/s delivered (all streams, measured window)", _n(relay["tokens_per_s"])),
        ("tokens/s per stream while streaming, p50 / p99", _pcts(relay["stream_tokens_per_s"], ("p50", "p99"))),
        ("relay latency per delta p50 / p90 / p99 / max (ms)", _pcts(relay["relay_ms_per_delta"])),
        ("deltas received / tokens per delta", f"{relay['deltas']:,} / {relay['tokens_per_delta']}"),
        ("turns ok / failed", f"{relay['turns_ok']:,} / {relay['turns_failed']:,} {relay['errors'] or ''}"),
        ("cores used", _cores(relay["cpu_cores_used"])),
        ("waiting for a CPU", _starved(relay["cpu_cores_used"])),
    ]
    return f"{title}\n\n" + _table(("", ""), rows)


def capacity_section(capacity: Any, title: str) -> str:
    if not _ok(capacity):
        return f"{title}: not measured."
    rows = [
        (
            _n(step["rate_per_s"]),
            step["chats"],
            step["failed"],
            _n(step["p95_time_to_first_delta_ms"]),
            _pcts(step["time_to_first_delta_ms"], ("p50", "max")),
            _pcts(step["turn_ms"], ("p50", "p99")),
            "yes" if step["passed"] else "no",
        )
        for step in capacity["steps"]
    ]
    best = capacity["highest_rate_passed_per_s"]
    head = (
        f"{title}: **{_n(best)} new chats/s** (stopped: {capacity['stopped_by']}; {capacity['step_s']:.0f} s per "
        f"rate, the first {capacity['warmup_s']:.0f} s not counted)"
    )
    header = ("chats/s", "chats", "failed", "p95 first delta (ms)", "p50 / max", "whole turn p50 / p99", "≤ 1 s")
    return head + "\n\n" + _table(header, rows)


def idle_section(idle: Any) -> str:
    if not _ok(idle):
        return "Not measured."
    sockets, final = idle["sockets"], idle["final_ping"]
    rows = [
        (
            "sockets requested / opened / alive at the end",
            f"{sockets['requested']:,} / {sockets['opened']:,} / {sockets['alive_at_end']:,}",
        ),
        ("could not open", ", ".join(f"{k} {v}" for k, v in sockets["open_errors"].items()) or "none"),
        (
            "closed by the server while held",
            ", ".join(f"{k} {v}" for k, v in sockets["closed_by_server"].items()) or "none",
        ),
        ("last ping: answered / sent", f"{final['answered']:,} / {final['sent']:,}"),
        ("last ping round trip p50 / p90 / p99 / max (ms)", _pcts(final["rtt_ms"])),
        ("handshake p50 / p99 / max (ms)", _pcts(idle["handshake_ms"], ("p50", "p99", "max"))),
        (
            "gateway RSS before / holding / peak (MB)",
            f"{_n(idle['gateway_rss_mb_before'])} / "
            f"{_n(idle['gateway_rss_mb_holding'])} / {_n(idle['gateway_rss_mb_peak'])}",
        ),
        ("gateway memory per idle socket", f"{_n(idle['gateway_rss_kb_per_socket'])} KB"),
        ("cores used (opening, holding, pinging)", _cores(idle["cpu_cores_used"])),
    ]
    return _table(("", ""), rows)


def side_by_side(results: dict[str, Any]) -> str:
    baseline = results.get("baseline")
    if not _ok(baseline):
        return "Not measured."
    rows = []
    for service in results.get("hop") or []:
        base = _level(baseline["hop"], service["in_flight"])
        if not base:
            continue
        s, b = service["added_before_first_delta_ms"], base["added_before_first_delta_ms"]
        ratio = f"{s['p50'] / b['p50']:.2f}x" if s["p50"] and b["p50"] else NONE
        rows.append(
            (
                f"first delta - fake, {service['in_flight']} in flight, p50 / p99 (ms)",
                f"{_n(s['p50'])} / {_n(s['p99'])}",
                f"{_n(b['p50'])} / {_n(b['p99'])}",
                ratio + " (p50)",
            )
        )
    relay, base_relay = results.get("relay"), baseline.get("relay")
    if _ok(relay) and _ok(base_relay):
        rows.append(
            (
                "tokens/s delivered to the relay phase's streams",
                _n(relay["tokens_per_s"]),
                _n(base_relay["tokens_per_s"]),
                f"{relay['tokens_per_s'] / max(base_relay['tokens_per_s'], 1):.2f}x",
            )
        )
    capacity, base_capacity = results.get("capacity"), baseline.get("capacity")
    if _ok(capacity) and _ok(base_capacity):
        s_best, b_best = capacity["highest_rate_passed_per_s"], base_capacity["highest_rate_passed_per_s"]
        ratio = f"{s_best / b_best:.2f}x" if s_best and b_best else NONE
        rows.append(("new chats/s with p95 first delta ≤ 1 s", _n(s_best), _n(b_best), ratio))
    return _table(("", "service (queue)", "baseline (in-process)", "service / baseline"), rows)


def other_load(results: dict[str, Any]) -> str:
    values = []
    for phase in ("hop", "relay", "idle"):
        data = results.get(phase)
        items = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
        values += [d["cpu_cores_used"]["other_processes"] for d in items if "cpu_cores_used" in d]
    if not values:
        return NONE
    return f"{sum(values) / len(values):.2f} cores on average (from {min(values):.2f} to {max(values):.2f})"


def write_markdown(results: dict[str, Any], path: Path, raw: Path) -> None:
    m = results["machine"]
    fake = results["fake_cohere"]
    fake_ms = results["fake_latency_before_first_token_ms"]
    sections = [
        "# Benchmarks",
        f"Generated by `{results['command']}` (`bench/run.py`) on {results['started_at']}"
        + (f", commit `{m['commit']}`" if m.get("commit") else "")
        + f", in {results['elapsed_s']:.0f} s. Raw figures: `{raw}`. Regenerate with `make bench`.",
        f"**Machine:** {m['cpus']} CPUs, {m['memory_gb']} GB, Python {m['python']}, Linux {m['kernel']}. "
        "**The load generator runs on the same CPUs as the stack** (redis-server, the fake Cohere server, the "
        "worker, the gateway, the baseline): every figure below includes that competition. Other processes on the "
        f"machine (not ours) took {other_load(results)} during the measurements; load average at the start "
        f"{m['load_average_at_start']}. The columns *cores used* and *waiting for a CPU* (share of the window a "
        "process's event loop was ready to run but had no CPU, from `/proc/<pid>/schedstat`) show where it went.",
        f"**The fake Cohere server's pace** (what a real Cohere call costs, so the stack's own cost can be told "
        f"apart): embed {fake['embed_latency_ms']:.0f} ms, rerank {fake['rerank_latency_ms']:.0f} ms, first chat "
        f"token {fake['chat_first_token_ms']:.0f} ms, then {fake['tokens_per_second']:.0f} tokens/s; answers of "
        f"{fake['answer_sentences']} sentences from the retrieved passages (a typical answer, ~80 tokens). "
        f"Everything before the first token costs the fake {fake_ms:.0f} ms; *first delta - {fake_ms:.0f} ms* is "
        "what the service adds.",
        "## Headline",
        headline(results),
        "A closed-loop level asks for about *in flight / whole-turn time* new turns per second (100 in flight at "
        "~2 s a turn is ~50/s). Where that is above the capacity row, turns queue and the hop measures the wait "
        "for a busy worker rather than the overhead of the hop itself; sections 1 and 4 show both.",
        "## 1. Hop overhead",
        "Each simulated user asks, reads the whole answer, and asks again at once, so the number of chats in flight "
        "stays at the level. Figures cover the turns started after the ramp-up. *First delta* is measured by the "
        "client from sending the ask; the *worker-side hop* (the gateway received the ask → the worker started the "
        "turn) is recorded by the worker (`RECORD_TIMINGS=1`); the *relay per delta* is the client's clock at "
        "receipt minus the event id's millisecond (Redis's clock at `XADD`), so it has 1 ms resolution and reads "
        "~0.5 ms high on average. `WORKER_MAX_JOBS` is 200 (the default): at 250 in flight 50 turns wait for a "
        "free slot, and the hop shows it.",
        hop_section(results.get("hop"), fake_ms, "**Service** (gateway → Redis/arq → worker → Redis → relay):"),
        hop_section(
            (results.get("baseline") or {}).get("hop") if _ok(results.get("baseline")) else None,
            fake_ms,
            "**Baseline** (the same pipeline in the socket's task, no queue; `bench/baseline_app.py`):",
        ),
        "## 2. Relay capacity",
        "Many concurrent, long answers: what the path fake → worker → Redis stream → relay → socket → client "
        "carries. 10,000 tokens/s over 250 streams is 40 tokens/s per stream, i.e. every stream at a real "
        "model's pace at once; the fake streams faster than that and long answers keep the streaming phase "
        "dominant. Tokens are whitespace-separated words (the fake's tokens are words).",
        relay_section(results.get("relay"), "**Service:**"),
        relay_section(
            (results.get("baseline") or {}).get("relay") if _ok(results.get("baseline")) else None, "**Baseline:**"
        ),
        "## 3. Idle sockets",
        "WebSockets opened (500 handshakes at a time) and held on the one gateway process, pinged during the hold "
        "and once more at the end; RSS from `/proc/<pid>/status`. Per-message compression is off on the gateway "
        "(`ws_per_message_deflate=False` in `gateway/__main__.py`): zlib state is ~100 KB per socket, more than "
        "the whole budget, and answers are short text.",
        idle_section(results.get("idle")),
        "## 4. Capacity",
        "Open loop, as readers arrive: new chats start at a fixed rate whatever the earlier ones are doing, each "
        "on its own new socket (one question, then close). The rate doubles until p95 time to first delta goes "
        "over 1 s or more than 1 % of chats fail (a chat not done in 10 s counts as failed), then the gap between "
        "the last rate that passed and the first that did not is halved twice.",
        capacity_section(results.get("capacity"), "**Service**"),
        capacity_section(
            (results.get("baseline") or {}).get("capacity") if _ok(results.get("baseline")) else None, "**Baseline**"
        ),
        "## 5. Service and baseline side by side",
        "Same run, same fake, same questions, same load generator; the baseline lacks only the queue, the "
        "streams and the relay.",
        side_by_side(results),
        "## 6. Whole-turn time against the 3 s bar",
        "From phase 1 (typical question, the fake at its realistic pace): the bar is whole-turn p95 ≤ 3 s.",
        _turn_times(results),
        "## 7. Operating under Cohere's limits",
        "A burst of asks at once against the fake Cohere enforcing a chat limit per minute (as a trial key does), "
        "twice, each on a fresh stack: with the service's shared limit off (`COHERE_CHAT_PER_MINUTE=0`), then on "
        "at Cohere's rate. The limit is a sliding minute in Redis shared by every worker (`shared/rate_limit.py`): "
        "turns wait for a slot (up to `COHERE_LIMIT_MAX_WAIT_S`, here 20 s) and the rest end with `rate_limited` "
        "and a retry hint, instead of Cohere answering 429.",
        _limit_section(results.get("limit")),
    ]
    text = "\n\n".join(sections) + "\n"
    if ANALYSIS.is_file():
        text += "\n" + ANALYSIS.read_text()
    path.write_text(text)


def _limit_section(limit: Any) -> str:
    if not _ok(limit):
        return "Not measured." if limit is None else f"Not measured: {limit.get('error')}."
    return f"{limit['burst']} asks at once; the fake allows {limit['per_minute']} chat calls a minute.\n\n" + table(
        limit
    )


def _turn_times(results: dict[str, Any]) -> str:
    levels = results.get("hop")
    if not _ok(levels):
        return "Not measured."
    rows = [
        (
            lv["in_flight"],
            lv["turn_ms"]["count"],
            _pcts(lv["turn_ms"], ("p50", "p90")),
            _n(lv["turn_p95_ms"]),
            _pcts(lv["turn_ms"], ("p99", "max")),
            _verdict(lv["turn_p95_ms"] is not None and lv["turn_p95_ms"] <= 3000),
        )
        for lv in levels
    ]
    return _table(("in flight", "turns", "p50 / p90 (ms)", "p95 (ms)", "p99 / max (ms)", "p95 ≤ 3 s"), rows)


def main() -> None:
    """``python -m bench.markdown RESULTS.json``: write BENCHMARKS.md again from a run's raw figures."""
    import json
    import sys

    raw = Path(sys.argv[1]).resolve()
    results = json.loads(raw.read_text())
    write_markdown(results, ROOT / "BENCHMARKS.md", raw.relative_to(ROOT) if raw.is_relative_to(ROOT) else raw)


if __name__ == "__main__":
    main()
