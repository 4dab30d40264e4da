"""ROLE: one image, three ways to run it; a lone gateway or worker insists on the shared REDIS_URL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from shared.entrypoint import role_argv
from shared.settings import PROJECT_ROOT
from tests.conftest import SettingsFactory
from tests.ports import free_port
from tests.stack import ProcessLogs, settings_env


def run_module(module: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("COHERE_", "QDRANT_", "REDIS_", "ROLE"))}
    return subprocess.run(
        [sys.executable, "-m", module], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_each_role_runs_its_own_command(make_settings: SettingsFactory) -> None:
    everything = role_argv(make_settings(role="all"))
    assert Path(everything[0]).name == "supervisord"
    assert everything[1:] == ["-c", str(PROJECT_ROOT / "supervisord.conf")]
    assert role_argv(make_settings(role="gateway")) == [sys.executable, "-m", "gateway"]
    assert role_argv(make_settings(role="worker")) == [sys.executable, "-m", "worker"]


@pytest.mark.parametrize("module", ["shared.entrypoint", "gateway", "worker"])
@pytest.mark.parametrize("role", ["gateway", "worker"])
def test_a_lone_role_without_redis_url_stops_with_one_line(module: str, role: str, tmp_path: Path) -> None:
    result = run_module(module, {"ROLE": role, "DATA_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"configuration error: REDIS_URL: Value error, required when ROLE={role} (the Redis shared by every replica)"
    ]


def test_an_unknown_role_is_refused(tmp_path: Path) -> None:
    result = run_module("shared.entrypoint", {"ROLE": "both", "DATA_DIR": str(tmp_path)})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error: ROLE:")


@pytest.mark.parametrize(("role", "started"), [("gateway", "Uvicorn running"), ("worker", "worker ready")])
async def test_a_role_runs_that_process_alone_on_the_external_redis(
    make_settings: SettingsFactory, data_dir: Path, role: str, started: str
) -> None:
    port = free_port()
    env = {**settings_env(make_settings(port=port, host="127.0.0.1")), "ROLE": role}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "shared.entrypoint",
        env=env,
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    logs = ProcessLogs(proc)
    try:
        await logs.wait_for(started)
        # exec'd, not a child: the entrypoint's pid is now the role's own process (what the runtime signals)
        cmdline = (await asyncio.to_thread(Path(f"/proc/{proc.pid}/cmdline").read_bytes)).split(b"\0")
        assert cmdline[1:3] == [b"-m", role.encode()]
        async with httpx.AsyncClient() as client:
            if role == "gateway":
                assert (await client.get(f"http://127.0.0.1:{port}/health")).status_code == 200
            else:
                with pytest.raises(httpx.ConnectError):
                    await client.get(f"http://127.0.0.1:{port}/health")
        assert not await asyncio.to_thread((data_dir / "redis.sock").exists), "no Redis of its own"
        assert not await asyncio.to_thread((data_dir / "supervisord.pid").exists), "no supervisord"
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)
        await logs.close()
    # uvicorn re-raises the SIGTERM it handled once shut down; arq exits 0
    assert proc.returncode in {0, -signal.SIGTERM}, "\n".join(logs.lines[-20:])
    assert not any("Traceback" in line for line in logs.lines), "\n".join(logs.lines[-20:])
