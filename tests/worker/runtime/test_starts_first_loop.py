"""The worker's event loop: what it puts first goes ahead of the callbacks already queued, and nothing else moves."""

from __future__ import annotations

import asyncio
import functools
import selectors
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shared.jobs import TurnJob
from tests.factories import IsolatedSettings
from tests.worker.runtime.test_turn_intake import Recorder, make_worker
from worker.runtime.job_claims import ClaimedJob
from worker.runtime.starts_first_loop import StartsFirstEventLoop
from worker.runtime.wakeable_worker import WakeableWorker


@pytest.fixture
def loop() -> Iterator[StartsFirstEventLoop]:
    created = StartsFirstEventLoop()
    yield created
    if not created.is_closed():
        created.close()


def queue_callbacks(loop: asyncio.AbstractEventLoop, order: list[object], count: int) -> None:
    for number in range(count):
        loop.call_soon(order.append, number)


def from_another_thread(action: Callable[[], object]) -> None:
    thread = threading.Thread(target=action)
    thread.start()
    thread.join()


def test_a_callback_put_first_by_another_thread_runs_before_those_queued(loop: StartsFirstEventLoop) -> None:
    order: list[object] = []

    def first_of_the_pass() -> None:
        order.append("running")
        # arrives while the loop runs a pass over the queue, as the intake's hand-off does
        from_another_thread(lambda: loop.call_first_threadsafe(order.append, "first"))

    loop.call_soon(first_of_the_pass)
    queue_callbacks(loop, order, 3)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order == ["running", "first", 0, 1, 2]


class WatchedSelector(selectors.DefaultSelector):
    """Says when the loop has gone to sleep waiting for I/O, and whether I/O is what ended that sleep."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeping = threading.Event()
        self.sleeps_ended_by_io: list[bool] = []

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0:
            return super().select(timeout)
        self.sleeping.set()
        ready = super().select(timeout)
        self.sleeps_ended_by_io.append(bool(ready))
        return ready


def test_a_callback_put_first_by_another_thread_wakes_a_loop_waiting_for_io() -> None:
    selector = WatchedSelector()
    loop = StartsFirstEventLoop(selector)

    def once_the_loop_sleeps() -> None:
        selector.sleeping.wait()
        loop.call_first_threadsafe(woken.set_result, "woken")

    try:
        woken: asyncio.Future[str] = loop.create_future()
        thread = threading.Thread(target=once_the_loop_sleeps)
        thread.start()
        # a timer, so that a loop nothing wakes still ends the test
        assert loop.run_until_complete(asyncio.wait_for(woken, timeout=10)) == "woken"
        thread.join()
        assert selector.sleeps_ended_by_io == [True], "woken by the callback's arrival, not by the timer"
    finally:
        loop.close()


def test_a_closed_loop_refuses_the_callback(loop: StartsFirstEventLoop) -> None:
    loop.close()
    with pytest.raises(RuntimeError):  # what the intake thread stops on
        loop.call_first_threadsafe(print)


async def job(steps: list[object], name: str) -> None:
    steps.append(name)


async def other_job(steps: list[object], name: str) -> None:
    steps.append(name)


def test_tasks_of_functions_started_first_take_their_first_step_before_the_queue(
    loop: StartsFirstEventLoop,
) -> None:
    loop.start_first(job)
    order: list[object] = []
    queue_callbacks(loop, order, 2)
    loop.create_task(other_job(order, "other"))
    loop.create_task(job(order, "started first"))
    queue_callbacks(loop, order, 1)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order == ["started first", 0, 1, "other", 0]


def test_a_task_created_from_a_running_task_goes_ahead_too(loop: StartsFirstEventLoop) -> None:
    """arq's run_job creates the job's task from its own task, behind the other callbacks of the pass."""
    loop.start_first(job)
    order: list[object] = []

    async def run_job() -> None:
        queue_callbacks(loop, order, 2)
        await asyncio.create_task(job(order, "job"))

    loop.run_until_complete(run_job())
    assert order == ["job", 0, 1]


def test_a_coroutine_function_is_refused_as_a_callback_in_debug_mode(loop: StartsFirstEventLoop) -> None:
    loop.set_debug(True)
    with pytest.raises(TypeError):  # as call_soon_threadsafe refuses it: it would never be awaited
        loop.call_first_threadsafe(job)


def test_a_callable_without_code_is_left_out_of_the_starts(loop: StartsFirstEventLoop) -> None:
    loop.start_first(functools.partial(job))  # nothing to recognise its coroutines by; not an error
    order: list[object] = []
    queue_callbacks(loop, order, 1)
    loop.create_task(job(order, "job"))
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order == [0, "job"]


def worker_on(loop: StartsFirstEventLoop, tmp_path: Path, recorder: Recorder) -> WakeableWorker:
    asyncio.set_event_loop(loop)  # where arq's Worker finds its loop
    try:
        return make_worker(IsolatedSettings(redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path), recorder)
    finally:
        asyncio.set_event_loop(None)


def test_a_turn_workers_jobs_start_ahead_of_the_queue_on_this_loop(loop: StartsFirstEventLoop, tmp_path: Path) -> None:
    """The worker registers its job functions with the loop ``python -m worker`` gives it."""
    recorder = Recorder()
    worker_on(loop, tmp_path, recorder)
    order: list[object] = []
    loop.call_soon(lambda: order.append(f"queued, after {len(recorder.runs)} run"))
    job = TurnJob(turn_id="t", conversation_id="c", question="q", enqueued_at=0.0)
    loop.create_task(recorder.run({"job_try": 1}, job.model_dump(mode="json")))  # as arq's run_job does
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order == ["queued, after 1 run"]


def test_a_batch_of_claimed_turns_starts_ahead_of_the_queue_and_in_its_order(
    loop: StartsFirstEventLoop, tmp_path: Path
) -> None:
    worker = worker_on(loop, tmp_path, Recorder())
    order: list[object] = []

    async def run_job(job_id: str, score: int) -> None:
        order.append(job_id)

    worker.run_job = run_job  # type: ignore[method-assign]  # what _run_claimed calls; arq's needs Redis
    claims = [ClaimedJob(job_id=name, score=0, job=None, job_try=1, aborted=False, claimer="c") for name in "abc"]
    assert worker._reserve(3) == 3
    loop.call_soon(worker._start_claimed, claims, 3)
    queue_callbacks(loop, order, 2)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order == ["a", "b", "c", 0, 1]
    assert worker.job_counter == 0, "each slot given back as its job ended"


def test_the_intakes_hand_off_goes_ahead_of_the_queue(loop: StartsFirstEventLoop, tmp_path: Path) -> None:
    worker = worker_on(loop, tmp_path, Recorder())
    order: list[object] = []
    worker._start_claimed = lambda claims, reserved, from_intake=False: order.append("hand-off")  # type: ignore[method-assign]
    intake = worker._intake
    assert intake is not None

    def first_of_the_pass() -> None:
        order.append("running")
        from_another_thread(lambda: intake._start([], 0))  # what the intake thread calls after a claim

    loop.call_soon(first_of_the_pass)
    queue_callbacks(loop, order, 2)
    loop.call_soon(loop.stop)
    loop.run_forever()
    assert order == ["running", "hand-off", 0, 1]
