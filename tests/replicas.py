"""The service as separate replicas for multi-process tests: gateways and workers as real processes (the
image's ``ROLE=gateway`` / ``ROLE=worker``), a managed-style Redis (TLS, an ACL user) and HAProxy in front.

Every process listens on 127.0.0.1 only, and every one started here is stopped (SIGTERM, then SIGKILL after a
bound) when its context exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import trustme
from redis.asyncio import Redis

from shared import keys
from shared.settings import PROJECT_ROOT, Settings
from tests.ports import wait_for_port
from tests.stack import ProcessLogs, settings_env

HAPROXY_CONFIG = PROJECT_ROOT / "deploy" / "haproxy.cfg"
STOP_WAIT_S = 15.0


class ServiceProcess:
    """One ``python -m gateway`` / ``python -m worker`` process that a test may stop, kill and start again."""

    def __init__(self, role: str, settings: Settings, extra_env: dict[str, str] | None = None) -> None:
        self.role = role
        self.env = {**settings_env(settings), **(extra_env or {}), "ROLE": role}
        self.proc: asyncio.subprocess.Process | None = None
        self.logs: ProcessLogs | None = None
        self.ready_line = "Uvicorn running" if role == "gateway" else "worker ready"

    async def start(self, timeout_s: float = 90.0) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "shared.entrypoint",
            env=self.env,
            cwd=PROJECT_ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self.logs = ProcessLogs(self.proc)
        await self.logs.wait_for(self.ready_line, timeout_s)

    def send(self, signum: signal.Signals) -> None:
        assert self.proc is not None and self.proc.returncode is None
        self.proc.send_signal(signum)

    async def wait(self, timeout_s: float = STOP_WAIT_S) -> int:
        assert self.proc is not None and self.logs is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout_s)
        await self.logs.close()
        return code

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not gone within the bound; safe to call when already gone."""
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_WAIT_S)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.logs is not None:
            await self.logs.close()

    def output(self) -> str:
        return "\n".join(self.logs.lines[-40:]) if self.logs else ""


@contextlib.asynccontextmanager
async def service_processes(*processes: ServiceProcess) -> AsyncIterator[None]:
    """Start them in order; stop every one that was started, whatever happens."""
    try:
        for process in processes:
            await process.start()
        yield
    finally:
        for process in reversed(processes):
            await process.stop()


@dataclass(frozen=True)
class ManagedRedis:
    """A redis-server as a managed service runs it: TLS only, the default user for the operator, and the
    service's own ACL user."""

    port: int
    ca_file: Path
    user: str
    password: str
    admin_password: str

    @property
    def service_url(self) -> str:
        return f"rediss://{self.user}:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def admin_url(self) -> str:
        return f"rediss://default:{self.admin_password}@127.0.0.1:{self.port}/0"


@contextlib.contextmanager
def managed_redis(workdir: Path, port: int, acl_rules: list[str]) -> Iterator[ManagedRedis]:
    """A TLS redis-server on ``port`` whose user ``tutor`` has exactly ``acl_rules`` (its own certificate
    authority, written under ``workdir``; clients trust it through ``SSL_CERT_FILE``)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: run the tests through `make test`")
    workdir.mkdir(parents=True, exist_ok=True)
    authority = trustme.CA()
    server_cert = authority.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = workdir / "ca.pem", workdir / "server.pem", workdir / "server.key"
    authority.cert_pem.write_to_path(str(ca_file))
    server_cert.cert_chain_pems[0].write_to_path(str(cert_file))
    server_cert.private_key_pem.write_to_path(str(key_file))
    redis = ManagedRedis(port, ca_file, "tutor", secrets.token_hex(16), secrets.token_hex(16))
    config = workdir / "redis.conf"
    config.write_text(
        "\n".join(
            [
                "bind 127.0.0.1",
                "port 0",
                f"tls-port {port}",
                f"tls-cert-file {cert_file}",
                f"tls-key-file {key_file}",
                f"tls-ca-cert-file {ca_file}",
                "tls-auth-clients no",
                'save ""',
                "appendonly no",
                f"dir {workdir}",
                "maxmemory-policy noeviction",
                f"user default on >{redis.admin_password} ~* &* +@all",
                f"user {redis.user} on >{redis.password} {' '.join(acl_rules)}",
                "",
            ]
        )
    )
    config.chmod(0o600)
    with (workdir / "redis.log").open("w") as log:
        proc = subprocess.Popen([binary, str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, lambda: proc.poll() is None)
        yield redis
    finally:
        proc.terminate()
        try:
            proc.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.asynccontextmanager
async def haproxy(port: int, gateway_ports: tuple[int, int]) -> AsyncIterator[str]:
    """Debian's haproxy running ``deploy/haproxy.cfg`` on ``port`` in front of the two gateways; yields its URL."""
    binary = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    if binary is None:
        raise RuntimeError("haproxy is not installed: run the tests through `make test` (system-deps)")
    env = {
        "PATH": "/usr/sbin:/usr/bin:/bin",
        "HAPROXY_BIND": f"127.0.0.1:{port}",
        "GATEWAY_A": f"127.0.0.1:{gateway_ports[0]}",
        "GATEWAY_B": f"127.0.0.1:{gateway_ports[1]}",
    }
    # -db: foreground, no daemon; -W would fork a master: one process is simpler to stop
    proc = await asyncio.create_subprocess_exec(
        binary,
        "-db",
        "-f",
        str(HAPROXY_CONFIG),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    logs = ProcessLogs(proc)
    try:
        await asyncio.to_thread(wait_for_port, port, lambda: proc.returncode is None)
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), STOP_WAIT_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await logs.close()


async def stream_entries(redis: Redis, turn_id: str) -> list[dict[str, Any]]:
    """The turn's events as Redis holds them (what every reader must receive exactly once)."""
    entries = await redis.xrange(keys.turn_events(turn_id))
    return [{**orjson.loads(fields[b"e"]), "id": entry_id.decode()} for entry_id, fields in entries]
