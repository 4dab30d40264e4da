"""``make image-test``: prove the Hugging Face Space image builds and serves, with podman.

Builds the image from a snapshot of the repository, in a podman image store of the run's own that holds
only the base image: cold (without cache), then warm after a change to one source file. Runs it with
``--network host`` on a free port, waits for ``/ready`` by reading the container's log stream (no
sleeps), asks a question over ``/ws/chat`` and checks the streamed answer, checks that every process
runs as uid 1000, kills the worker and checks supervisord restarts it, then sends SIGTERM and checks the
container stops cleanly, in order, within 10 s and leaves no process behind. Prints the figures (build
times, image size, run to /ready, idle memory, stop time) and writes them to
``artifacts/image-test.json``; build and container logs go to ``artifacts/image-test/``.

Needs podman and the ``python:3.11-slim`` base image (``../shared/tools/make-base-image`` provides both
on a machine that cannot pull images). Run as root, as CI does: the no-orphan check reads the pid
namespace of every process on the host.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from packaging.specifiers import SpecifierSet
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
DEFAULT_TAG = "localhost/physical-ai-tutor:image-test"
QUESTION = "What is a ROS 2 topic?"
DATA_DIR = "/tmp/tutor-data"  # inside the container's own /tmp
STOP_LIMIT_S = 10.0

# The targets. The report says "met" or "MISSED" for each; they are figures, not checks (build and
# start times depend on the machine and on what else runs on it). Everything else is checked.
TARGET_IMAGE_MB = 500
TARGET_READY_S = 5.0
TARGET_MEMORY_MB = 300

# Not copied into the build snapshot: large or irrelevant, and .dockerignore excludes them anyway.
SNAPSHOT_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "__pycache__", "*.pyc", ".mypy_cache", ".ruff_cache", ".pytest_cache",
    "artifacts", ".data", "*.egg-info",
)  # fmt: skip

# Run inside the container as uid 1000 (procps is not in the image): every process but itself.
PROCESS_LIST = r"""
import json, os
me, out = os.getpid(), []
for pid in filter(str.isdigit, os.listdir("/proc")):
    if int(pid) == me:
        continue
    try:
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode().strip()
    except OSError:  # it ended meanwhile
        continue
    pss = None
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            pss = next((int(l.split()[1]) for l in f if l.startswith("Pss:")), None)
    except OSError:
        pass
    out.append({"pid": int(pid), "ppid": int(status["PPid"]), "uid": int(status["Uid"].split()[0]),
                "rss_kb": int(status.get("VmRSS", "0 kB").split()[0]), "pss_kb": pss, "cmd": cmd})
print(json.dumps(out))
"""

log = logging.getLogger("image-test")


class ImageTestFailure(AssertionError):
    """A check failed; the message says which and shows what was seen."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise ImageTestFailure(message)


@dataclass
class Figures:
    """What the run measured; written to artifacts/image-test.json and printed."""

    image: str = ""
    base_python: str = ""
    cold_build_s: float | None = None
    warm_build_s: float | None = None
    warm_build_reused_dependencies: bool | None = None
    image_mb: float | None = None
    layers: list[dict[str, Any]] = field(default_factory=list)  # the image's layers of 1 MB or more
    run_to_ready_s: float | None = None  # the first start, the one the other checks run on
    ready_samples_s: list[float] = field(default_factory=list)  # every start, the first included
    run_to_ready_median_s: float | None = None
    cpu_to_ready_s: list[float] = field(default_factory=list)  # per start, when the cgroup can be read
    idle_rss_mb: float | None = None
    idle_pss_mb: float | None = None
    processes: list[dict[str, Any]] = field(default_factory=list)
    answer_s: float | None = None
    worker_restart_to_ready_s: float | None = None
    sigterm_to_exit_s: float | None = None
    stop_order: list[str] = field(default_factory=list)
    # The host's load average when the container started, and its CPUs: the timings are wall-clock, and
    # other work on the machine slows them.
    load_average: list[float] = field(default_factory=list)
    cpus: int | None = None


# --------------------------------------------------------------------------------------------------
# podman


# Global options that point podman at the run's own image store (see private_store); empty before that.
_STORE_OPTIONS: list[str] = []


def podman(*args: str, timeout: float = 60, check_rc: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["podman", *_STORE_OPTIONS, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check_rc and proc.returncode != 0:
        raise ImageTestFailure(f"podman {' '.join(args[:3])} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def base_image() -> str:
    match = re.search(r"^FROM\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE)
    check(match is not None, "the Dockerfile has no FROM line")
    assert match is not None
    return match.group(1)


def unmet_requires_python(python_version: str) -> list[str]:
    """Pinned packages whose Requires-Python the base image's Python does not satisfy (read from the
    metadata of the same versions installed in this venv)."""
    unmet = []
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.MULTILINE)
    for name, version in pins:
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        spec = next(iter(dist.metadata.get_all("Requires-Python") or []), None)
        if dist.version == version and spec and not SpecifierSet(spec).contains(python_version):
            unmet.append(f"{name}=={version} (Requires-Python {spec})")
    return unmet


@contextlib.contextmanager
def private_store(base: str) -> Iterator[None]:
    """Run every podman command of this run against a store of its own that holds only the base image,
    removed at the end. The cold build is then cold for real, and the warm build can only reuse this
    run's layers: with earlier builds' layers in a shared store, buildah picks any matching cached chain
    (not the newest), which can be one from before requirements.txt changed. It also leaves nothing
    behind in the machine's store and cannot touch other users' images or containers."""
    with tempfile.TemporaryDirectory(prefix="image-test-store-", dir="/var/tmp") as tmp:
        store = Path(tmp)
        archive = store / "base.tar"
        podman("save", "--format", "docker-archive", "-o", str(archive), base, timeout=300)
        options = ["--root", str(store / "root"), "--runroot", str(store / "run"), "--tmpdir", str(store / "tmp")]
        _STORE_OPTIONS[:] = options
        try:
            podman("load", "-i", str(archive), timeout=300)
            archive.unlink()
            yield
        finally:
            podman("rm", "-a", "-f", "-t", "0", check_rc=False)
            podman("rmi", "-a", "-f", timeout=300, check_rc=False)  # unmounts its layers before the delete
            _STORE_OPTIONS.clear()


@contextlib.contextmanager
def build_snapshot() -> Iterator[Path]:
    """A copy of the repository to build from: the warm build edits a file in it, never in the tree,
    and files others edit during the build cannot change what is being built."""
    with tempfile.TemporaryDirectory(prefix="image-test-") as tmp:
        snapshot = Path(tmp) / "context"
        shutil.copytree(ROOT, snapshot, ignore=SNAPSHOT_IGNORE, symlinks=True)
        yield snapshot


def build(context: Path, tag: str, build_args: list[str], *, no_cache: bool, log_name: str) -> tuple[float, str]:
    args = ["build", "--network", "host", "--format", "docker", "-t", tag, *build_args]
    if no_cache:
        args.append("--no-cache")
    started = time.monotonic()
    proc = podman(*args, str(context), timeout=1800, check_rc=False)
    elapsed = round(time.monotonic() - started, 1)
    output = proc.stdout + proc.stderr
    build_logs = ARTIFACTS / "image-test"
    build_logs.mkdir(parents=True, exist_ok=True)
    (build_logs / log_name).write_text(output)
    check(proc.returncode == 0, f"podman build failed (artifacts/image-test/{log_name}):\n{output[-4000:]}")
    return elapsed, proc.stdout


def step_was_cached(build_output: str, marker: str) -> bool:
    """In buildah's output a cached step's STEP line is followed by '--> Using cache'."""
    lines = build_output.splitlines()
    for index, line in enumerate(lines):
        if "STEP" in line and marker in line:
            return any(following.startswith("--> Using cache") for following in lines[index + 1 : index + 3])
    raise ImageTestFailure(f"no build step with {marker!r} in the build output")


# --------------------------------------------------------------------------------------------------
# the running container


class ContainerLogs:
    """The attached ``podman run``'s output, read in a thread; checks wait for lines, not for time."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.arrived: list[float] = []  # time.monotonic() when each line was read
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self.arrived.append(time.monotonic())
                self._cond.notify_all()

    def wait_for(self, text: str, timeout: float, after: int = 0) -> int:
        """Index of the first line from ``after`` on that contains ``text``."""

        def found() -> int | None:
            return next((i for i in range(after, len(self.lines)) if text in self.lines[i]), None)

        with self._cond:
            if not self._cond.wait_for(lambda: found() is not None, timeout):
                raise ImageTestFailure(f"no log line with {text!r} within {timeout:.0f}s:\n{self.tail()}")
            index = found()
            assert index is not None
            return index

    def timeline(self, since: float) -> str:
        """Every line with the seconds from ``since`` (the `podman run`) to when it was read."""
        with self._cond:
            pairs = list(zip(self.arrived, self.lines, strict=True))
        return "".join(f"{at - since:7.2f}  {line}\n" for at, line in pairs)

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.lines[-n:])

    def join(self) -> None:
        self._thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def container_processes(name: str) -> list[dict[str, Any]]:
    out = podman("exec", name, "python", "-c", PROCESS_LIST, timeout=30).stdout
    processes: list[dict[str, Any]] = json.loads(out)
    return processes


def container_cpu_seconds(name: str) -> float | None:
    """CPU time used so far by every process in the container, from its cgroup (v1 cpuacct or v2); the
    part of a start-up figure that does not depend on what else the machine is doing."""
    path = podman("inspect", "--format", "{{.State.CgroupPath}}", name).stdout.strip().lstrip("/")
    with contextlib.suppress(OSError, ValueError):
        return round(int(Path("/sys/fs/cgroup/cpuacct", path, "cpuacct.usage").read_text()) / 1e9, 2)
    with contextlib.suppress(OSError, ValueError, StopIteration):
        stat = Path("/sys/fs/cgroup", path, "cpu.stat").read_text().split()
        return round(int(stat[stat.index("usage_usec") + 1]) / 1e6, 2)
    return None


def program_of(cmd: str) -> str:
    for program in ("supervisord", "redis-server", "worker", "gateway"):
        if program in cmd:
            return program
    return cmd


def ask(base_url: str, question: str) -> dict[str, Any]:
    """One turn over /ws/chat, checked against the protocol: accepted, sources, deltas that concatenate
    to the answer, citations whose span is their text, one terminal `done` from the offline provider."""
    events: list[dict[str, Any]] = []
    ws_url = base_url.replace("http://", "ws://", 1) + "/ws/chat"
    with connect(ws_url, open_timeout=10, close_timeout=5) as ws:
        ws.send(json.dumps({"type": "ask", "question": question}))
        while not events or events[-1]["type"] not in {"done", "error"}:
            events.append(json.loads(ws.recv(timeout=30)))
    kinds = [e["type"] for e in events]
    check(kinds[0] == "accepted", f"the first event is not `accepted`: {kinds}")
    check(kinds[-1] == "done", f"the turn did not end in `done`: {events[-1]}")
    check(kinds.count("done") == 1 and "error" not in kinds, f"not exactly one terminal event: {kinds}")
    turn_id = events[0]["turn_id"]
    check(all(e.get("turn_id") == turn_id for e in events), "an event carries another turn_id")
    ids = [tuple(int(part) for part in e["id"].split("-")) for e in events]
    check(ids == sorted(ids) and len(set(ids)) == len(ids), f"event ids do not increase: {ids}")
    done = events[-1]
    check(done["provider"] == "offline", f"provider is {done['provider']!r}, not offline (no key is set)")
    answer: str = done["answer"]
    check(bool(answer.strip()), "the answer is empty")
    deltas = "".join(e["text"] for e in events if e["type"] == "delta")
    check(deltas == answer, f"deltas do not concatenate to done.answer:\n{deltas!r}\n{answer!r}")
    sources = [s for e in events if e["type"] == "sources" for s in e["sources"]]
    check(kinds.count("sources") == 1 and bool(sources), f"expected one non-empty `sources` event: {kinds}")
    for source in sources:
        check(all(source.get(k) for k in ("id", "doc", "title", "url")), f"a source lacks a field: {source}")
    source_ids = {s["id"] for s in sources}
    citations = [e for e in events if e["type"] == "citation"]
    check(bool(citations), "the offline answer has no citations")
    for citation in citations:
        span = answer[citation["start"] : citation["end"]]
        check(span == citation["text"], f"answer[{citation['start']}:{citation['end']}] is {span!r}, not {citation}")
        check(set(citation["source_ids"]) <= source_ids and bool(citation["source_ids"]), f"bad ids: {citation}")
    return {"answer": answer, "sources": len(sources), "citations": len(citations), "events": len(events)}


def pid_namespace(host_pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{host_pid}/ns/pid")
    except OSError:
        return None


def processes_in_namespace(namespace: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                    found.append(int(entry))
    return found


# --------------------------------------------------------------------------------------------------
# the run


@dataclass
class Container:
    name: str
    port: int
    proc: subprocess.Popen[str]
    logs: ContainerLogs
    started: float  # time.monotonic() just before `podman run`
    cpu_to_ready_s: float | None = None  # CPU time the container's processes used until /ready was 200

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, http: httpx.Client) -> float:
        """Seconds from `podman run` to a 200 from /ready. Waits for the worker's "worker ready" line (its
        heartbeat is in Redis) and uvicorn's listening line, then /ready must agree at the first ask."""
        self.logs.wait_for("worker ready", timeout=60)
        self.logs.wait_for("Uvicorn running on", timeout=30)
        ready = http.get("/ready")
        elapsed = round(time.monotonic() - self.started, 2)
        check(ready.status_code == 200, f"/ready is {ready.status_code}: {ready.text}")
        self.cpu_to_ready_s = container_cpu_seconds(self.name)
        return elapsed

    def terminate(self) -> tuple[int, float, int]:
        """SIGTERM to PID 1, as `docker stop` and Spaces send: (exit code, seconds to exit, first log line
        written after the signal)."""
        mark = len(self.logs.lines)
        stopping = time.monotonic()
        podman("kill", "--signal", "TERM", self.name)
        try:
            code = self.proc.wait(timeout=STOP_LIMIT_S + 5)
        except subprocess.TimeoutExpired:
            raise ImageTestFailure(
                f"still running {STOP_LIMIT_S + 5:.0f}s after SIGTERM:\n{self.logs.tail()}"
            ) from None
        elapsed = round(time.monotonic() - stopping, 2)
        self.logs.join()
        return code, elapsed, mark


@contextlib.contextmanager
def running(tag: str, label: str) -> Iterator[Container]:
    name = f"physical-ai-tutor-image-test-{os.getpid()}-{label}"
    port = free_port()
    command = ["run", "--name", name, "--network", "host", "-e", f"PORT={port}", "-e", f"DATA_DIR={DATA_DIR}", tag]
    log.info("podman %s", " ".join(command))
    started = time.monotonic()
    proc = subprocess.Popen(
        ["podman", *_STORE_OPTIONS, *command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    container = Container(name, port, proc, ContainerLogs(proc), started)
    try:
        yield container
    except BaseException:
        log.error("container output (last lines):\n%s", container.logs.tail(60))
        raise
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        podman("rm", "-f", "-t", "0", name, check_rc=False)
        (ARTIFACTS / "image-test").mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "image-test" / f"container-{label}.log").write_text(container.logs.timeline(started))


def check_serving(container: Container, http: httpx.Client, figures: Figures) -> None:
    figures.run_to_ready_s = container.wait_ready(http)
    if container.cpu_to_ready_s is not None:
        figures.cpu_to_ready_s.append(container.cpu_to_ready_s)
    figures.load_average = [round(load, 2) for load in os.getloadavg()]
    figures.cpus = os.cpu_count()
    check(http.get("/health").status_code == 200, "/health is not 200")
    for path in ("/", "/widget.js"):  # the chat page and the book widget: gateway/static made it in
        check(http.get(path).status_code == 200, f"GET {path} is not 200")
    check(http.head("/").status_code == 200, "HEAD / (what Spaces probe) is not 200")
    log.info("ready %.2fs after `podman run`: %s", figures.run_to_ready_s, http.get("/ready").json()["checks"])

    healthcheck = podman("healthcheck", "run", container.name, timeout=30, check_rc=False)
    check(healthcheck.returncode == 0, f"HEALTHCHECK fails: {healthcheck.stdout}{healthcheck.stderr}")

    asked = time.monotonic()
    turn = ask(container.base_url, QUESTION)
    figures.answer_s = round(time.monotonic() - asked, 3)
    log.info(
        "asked %r: %d events, %d sources, %d citations; answer: %.80s...",
        QUESTION,
        turn["events"],
        turn["sources"],
        turn["citations"],
        turn["answer"],
    )


def check_processes(container: Container, figures: Figures) -> list[dict[str, Any]]:
    uid = podman("exec", container.name, "id", "-u").stdout.strip()
    check(uid == "1000", f"`podman exec id -u` is {uid}, not 1000")
    processes = container_processes(container.name)
    programs = {program_of(p["cmd"]) for p in processes}
    check(programs == {"supervisord", "redis-server", "worker", "gateway"}, f"processes: {processes}")
    check(all(p["uid"] == 1000 for p in processes), f"a process is not uid 1000: {processes}")
    check(any(p["pid"] == 1 and "supervisord" in p["cmd"] for p in processes), "supervisord is not PID 1")
    figures.processes = [
        {"program": program_of(p["cmd"]), "pid": p["pid"], "rss_mb": round(p["rss_kb"] / 1024, 1)}
        | ({"pss_mb": round(p["pss_kb"] / 1024, 1)} if p["pss_kb"] is not None else {})
        for p in processes
    ]
    figures.idle_rss_mb = round(sum(p["rss_kb"] for p in processes) / 1024, 1)
    if all(p["pss_kb"] is not None for p in processes):
        figures.idle_pss_mb = round(sum(p["pss_kb"] for p in processes) / 1024, 1)
    log.info("all processes uid 1000; idle RSS %.1f MB: %s", figures.idle_rss_mb, figures.processes)
    return processes


def check_restart(container: Container, http: httpx.Client, worker_pid: int, figures: Figures) -> None:
    """A process dies: supervisord restarts it, says so in the log, and the new worker serves."""
    mark = len(container.logs.lines)
    killed = time.monotonic()
    podman("exec", container.name, "sh", "-c", f"kill -KILL {worker_pid}")
    container.logs.wait_for("exited: worker (terminated by SIGKILL; not expected)", timeout=15, after=mark)
    container.logs.wait_for("spawned: 'worker'", timeout=15, after=mark)
    container.logs.wait_for("success: worker entered RUNNING state", timeout=30, after=mark)
    container.logs.wait_for("worker ready", timeout=60, after=mark)
    check(http.get("/ready").status_code == 200, "/ready is not 200 after the worker restarted")
    figures.worker_restart_to_ready_s = round(time.monotonic() - killed, 2)
    ask(container.base_url, QUESTION)
    log.info("worker killed: restarted and serving again in %.2fs", figures.worker_restart_to_ready_s)


def check_stop(container: Container, figures: Figures) -> None:
    """SIGTERM: exit 0 within the limit, programs stopped worker -> gateway -> redis, none killed, and no
    process left in the container's pid namespace."""
    host_pid = int(podman("inspect", "--format", "{{.State.Pid}}", container.name).stdout.strip())
    namespace = pid_namespace(host_pid)
    code, figures.sigterm_to_exit_s, mark = container.terminate()
    lines = container.logs.lines[mark:]
    stopped = [line for line in lines if "stopped: " in line]
    figures.stop_order = [re.sub(r".*stopped: (\S+) .*", r"\1", line) for line in stopped]
    log.info("SIGTERM: exit %d after %.2fs, stop order %s", code, figures.sigterm_to_exit_s, figures.stop_order)
    check(code == 0, f"the container exited with {code}:\n{container.logs.tail()}")
    check(figures.sigterm_to_exit_s < STOP_LIMIT_S, f"stopping took {figures.sigterm_to_exit_s}s")
    check(figures.stop_order == ["worker", "gateway", "redis"], f"stop order: {figures.stop_order}")
    clean = re.compile(r"\((exit status 0|terminated by SIGTERM)\)")  # uvicorn re-raises SIGTERM when done
    unclean = [line for line in stopped if not clean.search(line)]
    unclean += [line for line in lines if "SIGKILL" in line or "not expected" in line]
    check(not unclean, "not a clean stop:\n" + "\n".join(unclean))
    tracebacks = [i for i, line in enumerate(container.logs.lines) if line.startswith("Traceback")]
    if tracebacks:  # an ask, a kill or a stop is no reason for one
        first = tracebacks[0]
        raise ImageTestFailure(
            "a program logged a traceback:\n" + "\n".join(container.logs.lines[first - 1 : first + 40])
        )
    if namespace is None:
        log.warning("cannot read the container's pid namespace (not root?): orphans not checked")
    else:
        left = processes_in_namespace(namespace)
        check(not left, f"processes left in the container's pid namespace: {left}")


def run_and_check(tag: str, figures: Figures) -> None:
    with running(tag, "main") as container, httpx.Client(base_url=container.base_url, timeout=5) as http:
        check_serving(container, http, figures)
        processes = check_processes(container, figures)
        worker = next(p for p in processes if program_of(p["cmd"]) == "worker")
        check_restart(container, http, worker["pid"], figures)
        check_stop(container, figures)


def sample_ready(tag: str, samples: int, figures: Figures) -> None:
    """More fresh starts, for a steadier run -> /ready figure than one start gives on a busy machine."""
    for index in range(samples):
        with running(tag, f"sample{index}") as container, httpx.Client(base_url=container.base_url) as http:
            figures.ready_samples_s.append(container.wait_ready(http))
            if container.cpu_to_ready_s is not None:
                figures.cpu_to_ready_s.append(container.cpu_to_ready_s)
            code, _, _ = container.terminate()
            check(code == 0, f"sample container exited with {code}")
    log.info("run -> /ready over %d starts: %s", len(figures.ready_samples_s), figures.ready_samples_s)


def build_and_check(context: Path, tag: str, figures: Figures) -> None:
    """Cold build, then a warm one after a code change that must reuse the dependency layers; then the
    image's metadata: user 1000, EXPOSE 7860, a HEALTHCHECK on /health."""
    print_version = "import platform; print(platform.python_version())"
    figures.base_python = podman(
        "run", "--rm", "--network", "host", base_image(), "python3", "-c", print_version
    ).stdout.strip()
    build_args = []
    unmet = unmet_requires_python(figures.base_python)
    if unmet:
        # The local stand-in for python:3.11-slim is Debian's 3.11.2; the official image is newer.
        log.warning("base image Python %s is older than pins require: %s", figures.base_python, "; ".join(unmet))
        build_args = ["--build-arg", "PIP_IGNORE_REQUIRES_PYTHON=1"]

    log.info("cold build (--no-cache) of %s", tag)
    figures.cold_build_s, _ = build(context, tag, build_args, no_cache=True, log_name="cold.log")
    log.info("cold build: %.1fs", figures.cold_build_s)
    # A code change: only the layers from `COPY . .` on may be rebuilt.
    with (context / "gateway" / "__init__.py").open("a") as source:
        source.write(f"\n# image-test warm build {time.time()}\n")
    figures.warm_build_s, output = build(context, tag, build_args, no_cache=False, log_name="warm.log")
    figures.warm_build_reused_dependencies = step_was_cached(output, "pip --python")
    check(figures.warm_build_reused_dependencies, "a code change re-ran the dependency install")
    check(not step_was_cached(output, "COPY . ."), "the changed code was not copied again")
    log.info("warm build after a code change: %.1fs (dependencies from cache)", figures.warm_build_s)

    inspect = json.loads(podman("image", "inspect", tag).stdout)[0]
    config = inspect["Config"]
    figures.image_mb = round(inspect["Size"] / 1e6, 1)
    check(config.get("User") == "1000", f"image user is {config.get('User')!r}")
    check("7860/tcp" in config.get("ExposedPorts", {}), f"EXPOSE 7860 missing: {config.get('ExposedPorts')}")
    health = inspect.get("Healthcheck") or config.get("Healthcheck") or {}
    check("/health" in " ".join(health.get("Test", [])), f"no HEALTHCHECK on /health in the image: {health}")
    history = json.loads(podman("history", "--format", "json", tag).stdout)
    figures.layers = [
        {"mb": round(layer["size"] / 1e6, 1), "step": " ".join(layer.get("CreatedBy", "").split())[:100]}
        for layer in history
        if layer["size"] >= 1e6
    ]
    log.info("image %s: %.1f MB; layers over 1 MB: %s", tag, figures.image_mb, figures.layers)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tag", default=DEFAULT_TAG, help="image tag to build and run")
    parser.add_argument("--ready-samples", type=int, default=3, help="starts to time run -> /ready over (median)")
    options = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="image-test: %(message)s", stream=sys.stdout)
    logging.getLogger("httpx").setLevel(logging.WARNING)

    if shutil.which("podman") is None:
        log.error("podman is not installed: run ../shared/tools/make-base-image (as root) first")
        return 2
    base = base_image()
    if podman("image", "exists", base, check_rc=False).returncode != 0:
        log.error("the base image %s is missing: run ../shared/tools/make-base-image first", base)
        return 2

    figures = Figures(image=options.tag)
    try:
        with private_store(base), build_snapshot() as context:
            build_and_check(context, options.tag, figures)
            run_and_check(options.tag, figures)
            figures.ready_samples_s.append(figures.run_to_ready_s or 0.0)
            sample_ready(options.tag, options.ready_samples - 1, figures)
            figures.run_to_ready_median_s = statistics.median(figures.ready_samples_s)
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "image-test.json").write_text(json.dumps(asdict(figures), indent=2) + "\n")

    report(figures)
    return 0


def report(figures: Figures) -> None:
    def target(value: float | None, limit: float, unit: str) -> str:
        if value is None:
            return "not measured"
        return f"{value:g} {unit} (target <= {limit:g} {unit}: {'met' if value <= limit else 'MISSED'})"

    lines = [
        f"cold build (--no-cache):        {'skipped' if figures.cold_build_s is None else f'{figures.cold_build_s} s'}",
        f"warm build (one file changed):  {figures.warm_build_s} s, dependencies from cache",
        f"image size:                     {target(figures.image_mb, TARGET_IMAGE_MB, 'MB')}",
        "layers of 1 MB or more (MB):    "
        + "; ".join(f"{layer['mb']} {layer['step'][:48]}" for layer in figures.layers),
        f"podman run -> /ready 200:       {target(figures.run_to_ready_median_s, TARGET_READY_S, 's')}"
        + f", median of {figures.ready_samples_s}",
        f"CPU used until /ready:          {figures.cpu_to_ready_s} s (all processes, from the container's cgroup)",
        f"idle memory, sum of RSS:        {target(figures.idle_rss_mb, TARGET_MEMORY_MB, 'MB')}"
        + (f", sum of PSS {figures.idle_pss_mb} MB" if figures.idle_pss_mb is not None else ""),
        "per process (RSS MB):          "
        + ", ".join(f"{p['program']} {p['rss_mb']}" for p in sorted(figures.processes, key=lambda p: p["pid"])),
        f"worker killed -> ready again:   {figures.worker_restart_to_ready_s} s",
        f"SIGTERM -> container exited:    {figures.sigterm_to_exit_s} s (limit {STOP_LIMIT_S:g} s), "
        + " -> ".join(figures.stop_order),
        f"base image Python:              {figures.base_python}",
        f"host load average (1/5/15 min): {figures.load_average} on {figures.cpus} CPUs when the container started",
    ]
    log.info("passed. Figures (also in artifacts/image-test.json):\n  %s", "\n  ".join(lines))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ImageTestFailure as failure:
        log.error("FAILED: %s", failure)
        sys.exit(1)
