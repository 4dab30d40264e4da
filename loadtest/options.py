"""The command line: parsing and refusing what makes no sense, with one line that says why (exit code 2)."""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NoReturn
from urllib.parse import urlsplit, urlunsplit

DEFAULT_PATH = "/ws/chat"
DEFAULT_DURATION_S = 60.0
MAX_DURATION_S = 24 * 3600.0  # a load test that runs for more than a day is a mistake
MAX_USERS = 100_000
MAX_TURNS = 1_000_000


class UsageError(Exception):
    """Senseless input; the message is one line and names the option."""


@dataclass(frozen=True)
class Options:
    url: str
    mode: Literal["chat", "idle"]
    users: int
    ramp_up_s: float
    duration_s: float | None
    turns: int | None
    think_time_s: float
    questions: Path | None
    reuse_conversation: bool
    turn_timeout_s: float
    connect_timeout_s: float
    ping_interval_s: float
    out: Path
    html: Path | None
    quiet: bool
    seed: int | None


def chat_url(raw: str) -> str:
    """``ws(s)://`` URL of the chat socket. ``http(s)://`` becomes ``ws(s)://`` and a bare host gets the
    ``/ws/chat`` path, so a Space's page address works as it is."""
    text = raw.strip()
    try:
        parts = urlsplit(text)
        port = parts.port  # raises ValueError for a port that is not a number from 0 to 65535
    except ValueError as exc:
        raise UsageError(f"URL {raw!r} is not valid: {exc}") from None
    schemes = {"ws": "ws", "wss": "wss", "http": "ws", "https": "wss"}
    if parts.scheme.lower() not in schemes:
        raise UsageError(f"URL {raw!r} must start with ws://, wss://, http:// or https://")
    if not parts.hostname:
        raise UsageError(f"URL {raw!r} has no host")
    if port == 0:
        raise UsageError(f"URL {raw!r} has port 0")
    if parts.fragment:
        raise UsageError(f"URL {raw!r} must not have a #fragment")
    path = parts.path if parts.path not in ("", "/") else DEFAULT_PATH
    return urlunsplit((schemes[parts.scheme.lower()], parts.netloc, path, parts.query, ""))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="loadtest",
        description=(
            "Drive concurrent WebSocket chats (or hold idle sockets) against the tutor and report latency, "
            "throughput and errors. Stops by itself: after --duration, or once every user asked --turns "
            "questions. The service limits asks and sockets per client address (ASKS_PER_MINUTE_PER_CLIENT, "
            "MAX_SOCKETS_PER_CLIENT): raise them on the deployment you test, or you measure the limits."
        ),
    )
    parser.add_argument("url", help="the service (http(s)://host) or its socket (ws(s)://host/ws/chat)")
    parser.add_argument("--idle", action="store_true", help="idle mode: open --users sockets, hold and ping them")
    parser.add_argument("-u", "--users", type=int, default=10, help="simulated users (idle: sockets); default 10")
    parser.add_argument("--ramp-up", type=float, default=0.0, metavar="S", help="seconds over which users start")
    parser.add_argument("-d", "--duration", type=float, default=None, metavar="S", help="seconds to run")
    parser.add_argument("-n", "--turns", type=int, default=None, help="questions each user asks, then stops")
    parser.add_argument(
        "--think-time", type=float, default=0.0, metavar="S", help="pause between a user's turns (±50%% jitter)"
    )
    parser.add_argument("--questions", type=Path, default=None, metavar="FILE", help="one question per line")
    parser.add_argument(
        "--reuse-conversation", action="store_true", help="each user keeps one conversation (follow-up questions)"
    )
    parser.add_argument("--turn-timeout", type=float, default=120.0, metavar="S", help="longest wait for an answer")
    parser.add_argument("--connect-timeout", type=float, default=15.0, metavar="S", help="longest socket handshake")
    parser.add_argument(
        "--ping-interval", type=float, default=10.0, metavar="S", help="idle mode: seconds between pings"
    )
    parser.add_argument("-o", "--out", type=Path, default=None, metavar="FILE", help="JSON result file")
    parser.add_argument("--html", type=Path, default=None, metavar="FILE", help="HTML chart (default: next to --out)")
    parser.add_argument("--no-html", action="store_true", help="write no chart")
    parser.add_argument("-q", "--quiet", action="store_true", help="no live progress")
    parser.add_argument("--seed", type=int, default=None, help="seed for question choice and think-time jitter")
    return parser


def _seconds(name: str, value: float | None, *, allow_zero: bool) -> None:
    if value is None:
        return
    if not math.isfinite(value):
        raise UsageError(f"{name} must be a finite number of seconds, got {value}")
    if value < 0 or (value == 0 and not allow_zero):
        raise UsageError(f"{name} must be {'zero or more' if allow_zero else 'more than zero'} seconds, got {value:g}")
    if value > MAX_DURATION_S:
        raise UsageError(f"{name} must be at most {MAX_DURATION_S:.0f} seconds (a day), got {value:g}")


def parse_options(argv: Sequence[str] | None = None, *, now: float | None = None) -> Options:
    args = build_parser().parse_args(argv)
    url = chat_url(args.url)
    if not 1 <= args.users <= MAX_USERS:
        raise UsageError(f"--users must be between 1 and {MAX_USERS}, got {args.users}")
    _seconds("--duration", args.duration, allow_zero=False)
    _seconds("--ramp-up", args.ramp_up, allow_zero=True)
    _seconds("--think-time", args.think_time, allow_zero=True)
    _seconds("--turn-timeout", args.turn_timeout, allow_zero=False)
    _seconds("--connect-timeout", args.connect_timeout, allow_zero=False)
    _seconds("--ping-interval", args.ping_interval, allow_zero=False)
    if args.turns is not None and not 1 <= args.turns <= MAX_TURNS:
        raise UsageError(f"--turns must be between 1 and {MAX_TURNS}, got {args.turns}")
    duration = args.duration
    if args.idle:
        for flag, given in (
            ("--turns", args.turns is not None),
            ("--think-time", args.think_time > 0),
            ("--questions", args.questions is not None),
            ("--reuse-conversation", args.reuse_conversation),
        ):
            if given:
                raise UsageError(f"{flag} does not apply to --idle (idle sockets ask nothing)")
        duration = duration if duration is not None else DEFAULT_DURATION_S
    elif duration is None and args.turns is None:
        duration = DEFAULT_DURATION_S
    if duration is not None and args.ramp_up > duration:
        raise UsageError(f"--ramp-up ({args.ramp_up:g}s) is longer than --duration ({duration:g}s)")
    if args.questions is not None and not args.questions.is_file():
        raise UsageError(f"--questions: no such file: {args.questions}")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    out = args.out or Path(f"loadtest-{'idle' if args.idle else 'chat'}-{stamp}.json")
    html = None if args.no_html else (args.html or out.with_suffix(".html"))
    return Options(
        url=url,
        mode="idle" if args.idle else "chat",
        users=args.users,
        ramp_up_s=args.ramp_up,
        duration_s=duration,
        turns=args.turns,
        think_time_s=args.think_time,
        questions=args.questions,
        reuse_conversation=args.reuse_conversation,
        turn_timeout_s=args.turn_timeout,
        connect_timeout_s=args.connect_timeout,
        ping_interval_s=args.ping_interval,
        out=out,
        html=html,
        quiet=args.quiet,
        seed=args.seed,
    )
