"""The real thing: the entrypoint (ROLE unset, i.e. ``all``) execs supervisord, which runs redis-server, the
worker and the gateway from supervisord.conf, exactly as `make run` and the image do, and a client asks over a
real socket."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.ports import free_port
from tests.stack import chat

ROOT = Path(__file__).resolve().parents[1]


class LogWatcher:
    """Reads supervisord's combined output in a thread; tests wait for lines as events."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip())
                self._cond.notify_all()

    def close(self, proc: subprocess.Popen[str]) -> None:
        self._thread.join(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    def wait_for(self, text: str, timeout: float) -> str:
        with self._cond:
            found = self._cond.wait_for(lambda: any(text in line for line in self.lines), timeout)
        if not found:
            raise AssertionError(f"no log line with {text!r} in {timeout}s:\n" + "\n".join(self.lines[-40:]))
        return next(line for line in self.lines if text in line)


@pytest.mark.stack
async def test_supervisord_stack_answers_over_a_real_socket(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("COHERE_", "QDRANT_", "REDIS_", "ROLE"))},
        "PORT": str(port),
        "DATA_DIR": str(tmp_path / "data"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "shared.entrypoint"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    logs = LogWatcher(proc)
    try:
        logs.wait_for("worker ready", timeout=60)
        logs.wait_for("Uvicorn running", timeout=30)
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url) as client:
            ready = await client.get("/ready")
            assert ready.status_code == 200, ready.text
        async with chat(url) as client:
            turn = await client.ask("What is a ROS 2 topic?")
        assert turn.terminal["type"] == "done" and turn.terminal["provider"] == "offline"
        assert turn.text == turn.terminal["answer"] and turn.of("citation") and turn.of("sources")
        assert not (tmp_path / "data" / "dump.rdb").exists(), "Redis persists nothing"
        assert (tmp_path / "data" / "redis.sock").exists(), "Redis listens on a socket under DATA_DIR"
    finally:
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 20)
        stopped_in = time.monotonic() - started
        logs.close(proc)
    assert code == 0, "\n".join(logs.lines[-40:])
    assert stopped_in < 10, f"supervisord took {stopped_in:.1f}s to stop"
