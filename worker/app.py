"""The worker, put together: arq's ``Worker`` running the turn and re-index jobs, with its start-up and
heartbeat (``worker/runtime/``)."""

from __future__ import annotations

from arq.worker import Worker

from shared.settings import Settings
from worker.runtime.arq_worker import POLL_DELAY_S, arq_worker
from worker.runtime.heartbeat import WorkerState
from worker.runtime.startup import lifecycle


class TutorWorker:
    """arq's worker and the state its heartbeat reports (tests await ``state.announced_ready``)."""

    def __init__(self, arq: Worker, state: WorkerState) -> None:
        self.arq = arq
        self.state = state


def build_worker(
    settings: Settings, *, burst: bool = False, handle_signals: bool = True, poll_delay_s: float = POLL_DELAY_S
) -> TutorWorker:
    state = WorkerState()
    worker: Worker | None = None

    def jobs_running() -> int:  # what the heartbeat reports
        return len(worker.tasks) if worker is not None else 0

    # A burst worker (tests) takes jobs only once the book is indexed.
    on_startup, on_shutdown = lifecycle(settings, state, jobs_running, wait_for_index=burst)
    worker = arq_worker(
        settings,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        burst=burst,
        handle_signals=handle_signals,
        poll_delay_s=poll_delay_s,
    )
    return TutorWorker(worker, state)
