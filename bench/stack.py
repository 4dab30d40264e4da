"""The real stack as separate processes on free ports, for benchmarks: redis-server, the fake Cohere
server, the worker (``python -m worker``) and the gateway (``python -m gateway``).

Every process gets its own log file under the run's work folder, so a failed start can be read after the
fact. Start-up waits are bounded; ``stop`` terminates what was started, and only that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from shared import keys

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_fd_limit() -> int:
    """Soft open-files limit up to the hard one, in this process and therefore in every process it
    starts (10,000 sockets need 10,000 descriptors on each end). Returns the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _raise_fd_limit_in_child() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_mb(pid: int) -> float:
    """Resident set size of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def runqueue_wait_seconds(pid: int) -> float:
    """Time the process's main thread (the event loop) has spent runnable but waiting for a CPU."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9


def machine_busy_seconds() -> float:
    """CPU time the whole machine has spent busy (all cores, everything but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Cores used over a window by each of the stack's processes, by this process (the load generator),
    and by everything else on the machine (other work sharing the CPUs distorts every figure); and, per
    process, the share of the window its event loop was ready to run but waited for a CPU."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._start: dict[str, float] = {}
        self._started_at = 0.0

    def _sample(self) -> dict[str, float]:
        sample = {name: cpu_seconds(pid) for name, pid in self._pids.items()}
        sample.update({f"{name}_waiting_for_cpu": runqueue_wait_seconds(pid) for name, pid in self._pids.items()})
        usage = resource.getrusage(resource.RUSAGE_SELF)
        sample["load_generator"] = usage.ru_utime + usage.ru_stime
        sample["machine"] = machine_busy_seconds()
        return sample

    def start(self) -> None:
        self._start = self._sample()
        self._started_at = time.monotonic()

    def stop(self) -> dict[str, float]:
        end = self._sample()
        elapsed = max(time.monotonic() - self._started_at, 1e-9)
        cores = {name: (end[name] - self._start[name]) / elapsed for name in end}
        ours = sum(v for k, v in cores.items() if k != "machine" and not k.endswith("_waiting_for_cpu"))
        cores["other_processes"] = max(cores.pop("machine") - ours, 0.0)
        return {name: round(v, 2) for name, v in cores.items()}


@dataclass(frozen=True)
class FakeCohereSettings:
    """The fake's pace: what a real Cohere call would cost, so the stack's own overhead can be told apart."""

    embed_latency_ms: float = 100.0
    rerank_latency_ms: float = 0.0
    chat_first_token_ms: float = 300.0
    tokens_per_second: float = 50.0
    answer_sentences: int = 3

    @property
    def latency_before_first_token_ms(self) -> float:
        """What the fake alone adds before a turn's first token: embed, rerank, then the chat's first token."""
        return self.embed_latency_ms + self.rerank_latency_ms + self.chat_first_token_ms

    def as_knobs(self) -> dict[str, Any]:
        return asdict(self)


class ManagedProcess:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_raise_fd_limit_in_child,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace").splitlines()[-20:]
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n" + "\n".join(tail))

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


def _python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


class LocalStack:
    """Start with ``async with LocalStack(workdir, fake) as stack``; ``stack.chat_url`` is the socket URL."""

    def __init__(
        self,
        workdir: Path,
        fake: FakeCohereSettings,
        *,
        extra_env: dict[str, str] | None = None,
        with_app: bool = True,
        workers: int = 1,
    ) -> None:
        self.workdir = workdir
        self.fake = fake
        self.extra_env = extra_env or {}
        self.with_app = with_app
        self.workers = workers
        self.processes: dict[str, ManagedProcess] = {}
        self.redis_port = free_port()
        self.fake_port = free_port()
        self.gateway_port = free_port()
        # The service reaches Redis as the product runs it (shared/redis_server.py): over a unix socket. The TCP
        # port is only for the readiness probe.
        self.redis_socket = workdir / "redis" / "redis.sock"
        self.redis_url = f"unix://{self.redis_socket}?db=0"
        self.fake_url = f"http://127.0.0.1:{self.fake_port}"
        self.gateway_url = f"http://127.0.0.1:{self.gateway_port}"
        self.chat_url = f"ws://127.0.0.1:{self.gateway_port}/ws/chat"
        self.baseline_port = free_port()
        self.baseline_url = f"http://127.0.0.1:{self.baseline_port}"
        self.baseline_chat_url = f"ws://127.0.0.1:{self.baseline_port}/ws/chat"
        self.redis: Redis | None = None

    # --- environment shared by the service's processes ----------------------------------------------

    def service_env(self, data_dir: Path, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("COHERE_", "QDRANT_", "REDIS_"))}
        env.update(
            {
                "REDIS_URL": self.redis_url,
                "DATA_DIR": str(data_dir),
                "PORT": str(port),
                "HOST": "127.0.0.1",
                "COHERE_API_KEY": "bench-key",
                "COHERE_BASE_URL": self.fake_url,
                "COHERE_EMBED_DIMENSION": "256",
                "RECORD_TIMINGS": "1",
                "LOG_LEVEL": "WARNING",
                "PYTHONUNBUFFERED": "1",
                # One load generator is one client address: the per-client limits on asks and sockets,
                # which protect a public deployment, would measure themselves instead of the pipeline.
                "ASKS_PER_MINUTE_PER_CLIENT": "0",
                "MAX_SOCKETS_PER_CLIENT": "100000",
                # Thousands of sockets opened at once are that many handshakes in flight; a public gateway
                # answers those past MAX_HTTP_CONNECTIONS with 503, which here would measure the bound.
                "MAX_HTTP_CONNECTIONS": "100000",
            }
        )
        env.update(self.extra_env)
        return env

    # --- lifecycle -----------------------------------------------------------------------------------

    async def __aenter__(self) -> LocalStack:
        try:
            await self.start()
        except BaseException:
            self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.redis is not None:
            await self.redis.aclose()
        self.stop()

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
        process = ManagedProcess(name, argv, env, self.workdir / f"{name}.log")
        self.processes[name] = process
        return process

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (make system-deps)")
        redis_dir = self.workdir / "redis"
        redis_dir.mkdir(exist_ok=True)
        self._spawn(
            "redis",
            [binary, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--unixsocket", str(self.redis_socket), "--unixsocketperm", "700",
             "--dir", str(redis_dir), "--maxclients", "20000"],
            dict(os.environ),
        )  # fmt: skip
        f = self.fake
        self._spawn(
            "fake_cohere",
            _python_module(
                "fake_cohere", "--port", str(self.fake_port), "--embed-dimension", "256",
                "--embed-latency-ms", str(f.embed_latency_ms), "--rerank-latency-ms", str(f.rerank_latency_ms),
                "--first-token-ms", str(f.chat_first_token_ms), "--tokens-per-second", str(f.tokens_per_second),
                "--answer-sentences", str(f.answer_sentences), "--log-level", "WARNING",
            ),
            dict(os.environ),
        )  # fmt: skip
        await self._wait_for_port(self.redis_port, "redis")
        await self._wait_for_port(self.fake_port, "fake_cohere")
        self.redis = Redis.from_url(self.redis_url)
        if self.with_app:
            data_dir = self.workdir / "data"
            self._spawn("worker", _python_module("worker"), self.service_env(data_dir, self.gateway_port))
            for n in range(2, self.workers + 1):
                # Embedded Qdrant is one process's: each further worker indexes its own copy of the book.
                env = self.service_env(self.workdir / f"data-{n}", self.gateway_port)
                self._spawn(f"worker{n}", _python_module("worker"), env)
            self._spawn("gateway", _python_module("gateway"), self.service_env(data_dir, self.gateway_port))
            service = tuple(name for name in self.processes if name.startswith(("worker", "gateway")))
            await self.wait_ready(self.gateway_url, service)
            await self._wait_for_workers(service)

    async def _wait_for_workers(self, names: tuple[str, ...]) -> None:
        """Until every worker's heartbeat says its collection is ready (``/ready`` needs only one)."""
        assert self.redis is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            ready = 0
            async for key in self.redis.scan_iter(match=keys.WORKER_HEARTBEAT_PREFIX + "*"):
                beat = await self.redis.get(key)
                ready += bool(beat and b'"collection_ready":true' in beat)
            if ready >= self.workers:
                return
            for name in names:
                self.processes[name].check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"{ready} of {self.workers} workers ready after {START_TIMEOUT_S:.0f}s")
            await asyncio.sleep(0.2)

    async def start_baseline(self) -> None:
        """The in-process baseline (bench/baseline_app.py) on its own port, with its own embedded Qdrant."""
        env = self.service_env(self.workdir / "baseline-data", self.baseline_port)
        self._spawn("baseline", _python_module("bench.baseline_app"), env)
        deadline = time.monotonic() + START_TIMEOUT_S
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                self.processes["baseline"].check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(self.baseline_url + "/health")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the baseline was not ready in {START_TIMEOUT_S:.0f}s")
                await asyncio.sleep(0.2)

    async def _wait_for_port(self, port: int, name: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            self.processes[name].check_alive()
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                await writer.wait_closed()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not listen on {port} in {START_TIMEOUT_S:.0f}s") from None
                await asyncio.sleep(0.05)

    async def wait_ready(self, base_url: str, names: tuple[str, ...]) -> None:
        """Until ``GET /ready`` is 200 (Redis answers, a worker indexed the book); start-up only."""
        deadline = time.monotonic() + START_TIMEOUT_S
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                for name in names:
                    self.processes[name].check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(base_url + "/ready")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{base_url} was not ready in {START_TIMEOUT_S:.0f}s")
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        # The service first (it talks to the others), Redis last.
        for name in reversed(list(self.processes)):
            with contextlib.suppress(Exception):
                self.processes[name].stop()

    # --- what the benchmarks read and change --------------------------------------------------------

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def cpu_meter(self) -> CpuMeter:
        return CpuMeter({name: process.pid for name, process in self.processes.items()})

    async def set_fake_knobs(self, **changes: Any) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=5.0) as http:
            response = await http.put(self.fake_url + "/_fake/knobs", json=changes)
            response.raise_for_status()
            knobs: dict[str, Any] = response.json()
            return knobs

    async def take_hop_samples(self) -> list[float]:
        """The worker-side queue hops recorded since the last call (ms), and forget them."""
        assert self.redis is not None
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.lrange(keys.TIMINGS_HOP, 0, -1)
            pipe.delete(keys.TIMINGS_HOP)
            raw, _ = await pipe.execute()
        return [float(v) for v in raw]

    async def clear_hop_samples(self) -> None:
        assert self.redis is not None
        await self.redis.delete(keys.TIMINGS_HOP)


@contextlib.asynccontextmanager
async def local_stack(workdir: Path, fake: FakeCohereSettings, **options: Any) -> AsyncIterator[LocalStack]:
    async with LocalStack(workdir, fake, **options) as stack:
        yield stack
