"""``python -m worker``: read the configuration, then run the arq worker until SIGTERM."""

from __future__ import annotations

import asyncio
import gc

import uvloop

from shared.logs import configure_logging
from shared.settings import load_settings
from worker.app import build_worker


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level, settings.secret_values(), "worker")
    asyncio.set_event_loop(uvloop.new_event_loop())  # the gateway's loop too (uvicorn's loop="uvloop")
    build_worker(settings).arq.run()
    # Everything was closed in on_shutdown. The interpreter's last garbage collections over the worker's heap
    # (Qdrant's, numpy's and the SDKs' objects) cost ~0.5 s of CPU, seconds on a starved machine: past supervisord's
    # stop wait, it would SIGKILL a worker that had finished. Frozen objects are left to the process's exit.
    gc.freeze()


if __name__ == "__main__":
    main()
