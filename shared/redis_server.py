"""``python -m shared.redis_server``: exec the embedded redis-server configured from the same settings as
the gateway and worker, so all three agree on where Redis is.

Default: no TCP port at all, only a unix socket under DATA_DIR (nothing outside the container can reach
it and it cannot collide with another Redis on the machine); no persistence (turn events and the queue
are short-lived by design). A ``redis://127.0.0.1:PORT`` REDIS_URL makes it listen there instead.
"""

from __future__ import annotations

import os
import shutil
from urllib.parse import urlparse

from shared.settings import Settings, load_settings


def redis_server_args(settings: Settings) -> list[str]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = urlparse(settings.effective_redis_url)
    args = ["redis-server", "--save", "", "--appendonly", "no", "--dir", str(settings.data_dir)]
    if url.scheme == "unix":
        args += ["--port", "0", "--unixsocket", url.path, "--unixsocketperm", "700"]
    else:
        host = url.hostname or "127.0.0.1"
        if host not in {"127.0.0.1", "localhost", "::1"}:
            raise SystemExit(f"configuration error: REDIS_URL: the embedded Redis only binds loopback, not {host}")
        args += ["--bind", host, "--port", str(url.port or 6379)]
    # Keys without a TTL are only the arq queue and heartbeats; evicting under pressure would lose jobs.
    args += ["--maxmemory-policy", "noeviction", "--loglevel", "warning"]
    return args


def main() -> None:
    settings = load_settings()
    args = redis_server_args(settings)
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    os.execv(binary, args)


if __name__ == "__main__":
    main()
