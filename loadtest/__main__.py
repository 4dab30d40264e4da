"""``loadtest URL [options]``: run a chat or idle-socket load, show progress, write the JSON result and chart.

Exit codes: 0 the run completed (failed turns are results, not a failure of the tool), 1 not a single
connection could be opened, 2 the command line made no sense (one line on stderr says why).
Ctrl-C once: start no new turns and finish; twice: stop now. Both still write the results.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import resource
import signal
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console

from loadtest.chart import chat_chart, idle_chart
from loadtest.chat_load import ChatLoad, ChatLoadPlan
from loadtest.idle_load import IdleLoad, IdlePlan
from loadtest.options import Options, UsageError, parse_options
from loadtest.progress import show_progress
from loadtest.questions import load_questions
from loadtest.report import chat_result, idle_result, print_chat_summary, print_idle_summary

EXIT_OK, EXIT_NOTHING_CONNECTED, EXIT_USAGE = 0, 1, 2
FD_HEADROOM = 64  # descriptors besides the sockets: stdio, the event loop, files written


def ensure_fd_limit(sockets: int) -> None:
    """Raise the soft open-files limit for ``sockets`` connections, or refuse with the fix to apply."""
    needed = sockets + FD_HEADROOM
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise UsageError(
            f"--users {sockets} needs {needed} open files but the limit is {hard}; raise it (ulimit -n) first"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _options_record(options: Options) -> dict[str, Any]:
    return {k: (str(v) if v is not None and not isinstance(v, int | float | bool | str) else v)
            for k, v in dataclasses.asdict(options).items()}  # fmt: skip


async def _run(load: ChatLoad | IdleLoad, console: Console, quiet: bool) -> Any:
    runner = asyncio.create_task(load.run())
    interrupts = 0

    def on_interrupt() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            console.print("[yellow]stopping: no new turns; Ctrl-C again to stop at once[/yellow]")
            load.stop()
        else:
            runner.cancel()

    loop = asyncio.get_running_loop()
    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, on_interrupt)
    progress = None if quiet else asyncio.create_task(show_progress(console, load))
    try:
        return await runner
    finally:
        if progress is not None:
            progress.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await progress
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.remove_signal_handler(signal.SIGINT)


async def run(options: Options, questions: list[str], console: Console) -> dict[str, Any]:
    record = _options_record(options)
    if options.mode == "idle":
        assert options.duration_s is not None
        idle = IdleLoad(
            IdlePlan(
                url=options.url,
                sockets=options.users,
                duration_s=options.duration_s,
                ramp_up_s=options.ramp_up_s,
                ping_interval_s=options.ping_interval_s,
                connect_timeout_s=options.connect_timeout_s,
            )
        )
        return idle_result(await _run(idle, console, options.quiet), record)
    chat = ChatLoad(
        ChatLoadPlan(
            url=options.url,
            users=options.users,
            questions=questions,
            ramp_up_s=options.ramp_up_s,
            duration_s=options.duration_s,
            turns_per_user=options.turns,
            think_time_s=options.think_time_s,
            reuse_conversation=options.reuse_conversation,
            turn_timeout_s=options.turn_timeout_s,
            connect_timeout_s=options.connect_timeout_s,
            seed=options.seed,
        )
    )
    return chat_result(await _run(chat, console, options.quiet), record)


def main(argv: Sequence[str] | None = None) -> int:
    console = Console(stderr=True)
    try:
        options = parse_options(argv)
        questions = load_questions(options.questions) if options.mode == "chat" else []
        ensure_fd_limit(options.users)
    except UsageError as exc:
        print(f"loadtest: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"loadtest: error: --questions: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        import uvloop

        report = uvloop.run(run(options, questions, console))
    except ImportError:  # pragma: no cover - uvloop ships with the service's dependencies
        report = asyncio.run(run(options, questions, console))
    # Files first: whatever happens to stdout (a closed pipe), the results are kept.
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(report, indent=1) + "\n")
    written = [str(options.out)]
    if options.html is not None:
        options.html.parent.mkdir(parents=True, exist_ok=True)
        options.html.write_text(chat_chart(report) if report["mode"] == "chat" else idle_chart(report))
        written.append(str(options.html))
    out = Console()
    if report["mode"] == "chat":
        print_chat_summary(out, report)
        opened = report["connections"]["opened"]
    else:
        print_idle_summary(out, report)
        opened = report["sockets"]["opened"]
    out.print("results: " + ", ".join(written))
    return EXIT_OK if opened else EXIT_NOTHING_CONNECTED


if __name__ == "__main__":
    sys.exit(main())
