"""Two workers, each with its own embedded index of the same book (a stand-in for a shared Qdrant); one is killed
under load. Its turns that had not sent a delta are answered by the other worker; those that had streamed end
with one ``worker_lost``, as with a single worker."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from fake_cohere.testing import RunningFake
from gateway.reaper import hand_on
from shared import keys
from tests.conftest import SettingsFactory
from tests.replicas import ServiceProcess, service_processes, stream_entries
from tests.stack import Turn, chat, running_gateway, running_stack

CHATS = 20


@dataclass
class Chat:
    """One turn read to its end by a task of its own (a socket that is not read stops answering pings)."""

    turn: Turn
    reached: asyncio.Event
    task: asyncio.Task[None]


async def start_chat(url: str, question: str, until: str) -> Chat:
    """Ask on a new socket and keep reading; returns once the turn has reached an event of type ``until``."""
    turn, reached = Turn(), asyncio.Event()

    async def read() -> None:
        async with chat(url) as client:
            await client.send({"type": "ask", "question": question})
            await client.collect(turn, until=until)
            reached.set()
            if turn.terminal["type"] not in {"done", "error"}:
                await client.collect(turn)

    started = Chat(turn, reached, asyncio.create_task(read()))
    await asyncio.wait_for(reached.wait(), 60)
    return started


async def test_a_killed_workers_turns_without_a_delta_are_answered_by_the_other_worker(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake, redis: Redis, data_dir: Path
) -> None:
    settings = cohere_settings(resume_grace_s=30.0, turn_timeout_s=90.0, max_sockets_per_client=100)
    workers = [ServiceProcess("worker", settings.model_copy(update={"data_dir": data_dir / name})) for name in "ab"]
    # streaming answers: ~80 tokens at 5 a second, still streaming when the worker is killed
    await fake_cohere.set_knobs(tokens_per_second=5)
    streaming: list[Chat] = []
    waiting: list[Chat] = []
    not_started: list[Turn] = []
    async with service_processes(*workers), running_gateway(settings) as url:
        try:
            streaming = await asyncio.gather(
                *(start_chat(url, f"Streaming {n}: what is a ROS 2 topic?", "delta") for n in range(CHATS))
            )
            # answers that wait for their first token (a slow model) while the worker holds them
            await fake_cohere.set_knobs(chat_first_token_ms=8000)
            waiting = await asyncio.gather(
                *(start_chat(url, f"Waiting {n}: what is a ROS 2 topic?", "sources") for n in range(CHATS))
            )
            not_started = [c.turn for c in streaming + waiting if not c.turn.of("delta")]
            workers[0].send(signal.SIGKILL)
            await workers[0].wait()
            await asyncio.wait_for(asyncio.gather(*(c.task for c in streaming + waiting)), 90)
        finally:
            for c in streaming + waiting:
                c.task.cancel()
            await asyncio.gather(*(c.task for c in streaming + waiting), return_exceptions=True)

    turns = [c.turn for c in streaming + waiting]
    handed_on = [turn for turn in turns if await redis.exists(keys.turn_retried(turn.turn_id))]
    lost = [turn for turn in turns if turn.terminal["type"] == "error"]
    for turn in turns:
        assert [e["type"] for e in turn.events].count("done") + len(turn.of("error")) == 1, turn.events[-3:]
        assert turn.events == await stream_entries(redis, turn.turn_id), "every event once, in order"
    for turn in not_started:
        assert turn.terminal["type"] == "done", turn.terminal
        assert turn.text == turn.terminal["answer"] and len(turn.of("sources")) == 1
    for turn in lost:
        assert turn.terminal["code"] == "worker_lost", turn.terminal
        assert turn not in not_started, "only a turn that had streamed may end with worker_lost"
    print(
        f"\nworker killed with {len(turns) - len(not_started)} turns streaming and {len(not_started)} waiting for "
        f"their first token on two workers: {len(handed_on)} handed to the other worker and answered, "
        f"{len(lost)} ended with worker_lost"
    )
    # each worker held some of each (arq's polls share the turns out): the killed one's count for something
    assert handed_on and lost, (len(handed_on), len(lost))
    assert all(turn in not_started for turn in handed_on)


class LogLine(logging.Handler):
    """Sets ``seen`` when a record containing ``text`` is logged (a line to await instead of a sleep)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.loop.call_soon_threadsafe(self.seen.set)


async def test_a_first_try_whose_turn_was_handed_on_stops_and_leaves_the_job_to_the_second_try(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake, redis: Redis
) -> None:
    """A worker whose heartbeat lapsed while it was only stalled must not answer alongside the second try, nor
    take the job off arq's queue before the second try has started (here no other worker is up: it runs it)."""
    await fake_cohere.set_knobs(chat_first_token_ms=1500)
    stops = LogLine("was handed to another worker; this one stops")
    logger = logging.getLogger("worker.turns.turn")
    logger.addHandler(stops)
    try:
        async with running_stack(cohere_settings()) as url, chat(url) as client:
            await client.send({"type": "ask", "question": "What is a ROS 2 topic?"})
            turn = await client.collect(until="sources")
            assert await hand_on(redis, turn.turn_id), "what the reaper does when the worker's heartbeat lapses"
            await asyncio.wait_for(stops.seen.wait(), 30)
            await client.collect(turn)
    finally:
        logger.removeHandler(stops)
    assert turn.events == await stream_entries(redis, turn.turn_id)
    kinds = [event["type"] for event in turn.events]
    assert kinds.count("sources") == 1 and kinds[-1] == "done" and kinds.count("done") == 1, kinds
    assert turn.text == turn.terminal["answer"] and turn.text


def worker_id(process: ServiceProcess) -> str:
    """The id a worker process announced in its log (the one its heartbeat and turn list are kept under)."""
    assert process.logs is not None
    for line in process.logs.lines:
        if found := re.search(r"worker (\w+) started", line):
            return found.group(1)
    raise AssertionError(f"no worker id in:\n{process.output()}")


async def holder(redis: Redis, workers: list[ServiceProcess], turn_id: str) -> ServiceProcess:
    """The worker process that lists ``turn_id`` among its turns in flight."""
    for process in workers:
        if await redis.sismember(keys.worker_turns(worker_id(process)), turn_id):  # type: ignore[misc]
            return process
    raise AssertionError("no worker holds the turn")


async def test_a_stalled_worker_that_resumes_after_its_turn_was_handed_on_adds_nothing_to_the_answer(
    cohere_settings: SettingsFactory, fake_cohere: RunningFake, redis: Redis, data_dir: Path
) -> None:
    """SIGSTOP stands for a long GC pause or a starved CPU: the worker is alive but silent past its heartbeat's
    TTL. The reaper hands its turn to the other worker; when it resumes, the model's tokens it was waiting for
    are there, and it tries to write them while the other worker streams the same turn's answer."""
    settings = cohere_settings(resume_grace_s=30.0, turn_timeout_s=90.0)
    workers = [ServiceProcess("worker", settings.model_copy(update={"data_dir": data_dir / name})) for name in "ab"]
    await fake_cohere.set_knobs(chat_first_token_ms=2000, tokens_per_second=10)
    stalled: ServiceProcess | None = None
    async with service_processes(*workers), running_gateway(settings) as url, chat(url) as client:
        try:
            await client.send({"type": "ask", "question": "What is a ROS 2 topic?"})
            turn = await client.collect(until="sources")
            stalled = await holder(redis, workers, turn.turn_id)
            stalled.send(signal.SIGSTOP)
            await client.collect(turn, until="delta")  # the other worker's second try is answering
            assert await redis.exists(keys.turn_retried(turn.turn_id))
            stalled.send(signal.SIGCONT)
            stalled, resumed = None, stalled
            assert resumed.logs is not None
            await resumed.logs.wait_for("was handed to another worker; this one stops", 60)
            await client.collect(turn)
        finally:
            if stalled is not None:  # so that it can be stopped
                with contextlib.suppress(AssertionError):
                    stalled.send(signal.SIGCONT)
    assert turn.events == await stream_entries(redis, turn.turn_id), "every event once, in order"
    kinds = [event["type"] for event in turn.events]
    assert kinds.count("sources") == 1 and kinds.count("done") == 1 and kinds[-1] == "done", kinds
    assert "error" not in kinds, turn.events[-3:]
    assert turn.text == turn.terminal["answer"] and turn.text, "one answer's deltas, not two interleaved"
