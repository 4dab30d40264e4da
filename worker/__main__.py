"""``python -m worker``: read the configuration, then run the arq worker until SIGTERM."""

from __future__ import annotations

import asyncio
import sys

from shared.logs import configure_logging
from shared.settings import load_settings
from worker.app import build_worker
from worker.runtime.starts_first_loop import StartsFirstEventLoop


def main() -> None:
    settings = load_settings()
    configure_logging(settings.log_level, settings.secret_values(), "worker")
    # The turn intake's thread (worker/runtime/turn_intake.py) must get the GIL soon after Redis hands it a turn; by
    # default a busy event loop keeps it for up to 5 ms before a waiting thread gets a turn.
    sys.setswitchinterval(0.001)
    # Not uvloop (the gateway's): this loop starts turns ahead of the answer streams' queued callbacks.
    asyncio.set_event_loop(StartsFirstEventLoop())
    build_worker(settings).run()


if __name__ == "__main__":
    main()
