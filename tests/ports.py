"""Ports for the servers the tests start: a free one, and waiting until a started process listens on it."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

LISTEN_WAIT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, alive: Callable[[], bool], timeout_s: float = LISTEN_WAIT_S) -> None:
    """Return once something accepts connections on 127.0.0.1:``port``; ``RuntimeError`` as soon as the
    process ``alive`` watches has ended, or after ``timeout_s``. It blocks: from async code, use a thread."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if not alive() or time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.02)
