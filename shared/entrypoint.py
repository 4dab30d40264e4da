"""``python -m shared.entrypoint``: start what ``ROLE`` names, for the image and ``make run`` alike.

``all`` (the default) execs supervisord, which runs Redis, the gateway and the worker in one container;
``gateway`` or ``worker`` execs that process alone on the external ``REDIS_URL`` (replicas behind a load
balancer, see deploy/). Exec, not a child: the process started is PID 1 and receives the runtime's SIGTERM.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from shared.settings import PROJECT_ROOT, Settings, load_settings


def role_argv(settings: Settings) -> list[str]:
    """The command line that runs ``settings.role``."""
    if settings.role == "all":
        beside_python = Path(sys.executable).with_name("supervisord")  # the venv's, as installed with the service
        supervisord = str(beside_python) if beside_python.exists() else shutil.which("supervisord")
        if supervisord is None:
            raise SystemExit("supervisord is not installed (it is in requirements.txt)")
        return [supervisord, "-c", str(PROJECT_ROOT / "supervisord.conf")]
    return [sys.executable, "-m", settings.role]


def main() -> None:
    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    os.environ["DATA_DIR"] = str(settings.data_dir)  # supervisord.conf reads it for its socket and pid file
    argv = role_argv(settings)
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
