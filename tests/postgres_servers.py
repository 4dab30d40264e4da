"""A real Postgres and a real PgBouncer (transaction pooling, as Neon's pooler) for the tests, started on
free ports. Both refuse to run as root, so under root (CI) they run as the ``postgres`` user in a folder it
owns. Tests stop and start them to play outages."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

import psycopg

from tests.ports import free_port, wait_for_port


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run the tests through `make test`")
    return Path(found[-1]).parent


def _as_postgres() -> dict[str, Any]:
    """Popen options that drop root to the postgres user (no change when not root)."""
    if os.geteuid() != 0:
        return {}
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


def _owned_folder(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)
    return path


class PostgresServer:
    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.root = _owned_folder("tutor-pg-")
        self.data = self.root / "data"
        self.port = free_port()
        self.log = self.root / "postgres.log"
        subprocess.run(
            [
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            **_as_postgres(),
        )

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [str(self.bin / "pg_ctl"), "-D", str(self.data), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            **_as_postgres(),
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        self._ctl("-o", options, "-l", str(self.log), "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def pause(self) -> None:
        """Freeze every process of the server (SIGSTOP): it takes no CPU and answers nothing until ``resume``;
        unlike a stop, neither costs a checkpoint or a start-up (bench/history.py)."""
        for pid in self.processes():
            os.kill(pid, signal.SIGSTOP)

    def resume(self) -> None:
        for pid in self.processes():
            os.kill(pid, signal.SIGCONT)

    def processes(self) -> list[int]:
        """The postmaster and its children."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended meanwhile
            if int(fields[1]) == postmaster:
                children.append(int(stat.parent.name))
        return [postmaster, *children]

    def url(self, database: str = "postgres", port: int | None = None) -> str:
        return f"postgresql://postgres@127.0.0.1:{port or self.port}/{database}"

    def create_database(self) -> str:
        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class PgBouncer:
    """Transaction pooling in front of ``server``: a client's transactions may each go to another server
    connection, so anything kept on a connection between transactions (prepared statements) breaks."""

    def __init__(self, server: PostgresServer) -> None:
        self.server = server
        self.root = _owned_folder("tutor-pgbouncer-")
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        (self.root / "userlist.txt").write_text('"postgres" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host=127.0.0.1 port={server.port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self.root / 'userlist.txt'}\n"
            "pool_mode = transaction\nmax_client_conn = 500\ndefault_pool_size = 20\n"
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {self.root / 'pgbouncer.log'}\n"
        )
        for name in ("userlist.txt", "pgbouncer.ini"):
            shutil.chown(self.root / name, *(("postgres", "postgres") if os.geteuid() == 0 else (None, None)))

    def start(self) -> None:
        binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
        self.proc = subprocess.Popen(
            [binary, str(self.root / "pgbouncer.ini")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            **_as_postgres(),
        )
        proc = self.proc
        wait_for_port(self.port, lambda: proc.poll() is None)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def url(self, database: str) -> str:
        return self.server.url(database, port=self.port)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
