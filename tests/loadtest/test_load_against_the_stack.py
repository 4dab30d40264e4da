"""The load tool against the real service (worker and gateway in the test's loop, a real redis-server)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console
from websockets.asyncio.server import ServerConnection, serve

from loadtest.__main__ import EXIT_NOTHING_CONNECTED, main, run
from loadtest.chart import chat_chart
from loadtest.chat_load import ChatLoad, ChatLoadPlan
from loadtest.idle_load import IdleLoad, IdlePlan
from loadtest.options import chat_url, parse_options
from loadtest.questions import load_questions
from loadtest.report import chat_result, idle_result
from shared.settings import Settings
from tests.conftest import SettingsFactory
from tests.ports import free_port
from tests.stack import running_stack

QUESTIONS = ["What is a ROS 2 topic?", "What does a URDF describe?", "How do humanoid robots keep their balance?"]


def unlimited(make_settings: SettingsFactory) -> Settings:
    """One test process is one client address: lift the per-client limits, which would otherwise be measured."""
    return make_settings(asks_per_minute_per_client=0, max_sockets_per_client=1000)


async def test_five_users_two_turns_each_all_done_and_reported(make_settings: SettingsFactory, tmp_path: Path) -> None:
    async with running_stack(unlimited(make_settings)) as base_url:
        options = parse_options([base_url, "-u", "5", "-n", "2", "-q", "-o", str(tmp_path / "r.json"), "--seed", "1"])
        report = await run(options, QUESTIONS, Console(quiet=True))
    assert report["turns"] == {
        "total": 10,
        "done": 10,
        "failed": 0,
        "failed_by_code": {},
        "unfinished_when_stopped": 0,
    }
    assert report["connections"] == {"opened": 5, "errors": {}, "users_gave_up": 0}
    first, whole = report["time_to_first_delta_ms"], report["turn_time_ms"]
    assert first["count"] == whole["count"] == 10
    assert 0 < first["p50"] <= first["p90"] <= first["p99"] <= first["max"] <= whole["max"]
    assert report["tokens_per_s"]["count"] > 0 and report["throughput"]["tokens"] > 0
    assert len(report["samples"]) == 10 and all(error is None for *_, error in report["samples"])
    json.dumps(report)  # the result file's content
    page = chat_chart(report)
    assert page.startswith("<!doctype html>") and "<svg" in page
    assert "<script" not in page and "<link" not in page, "self-contained: nothing loaded from elsewhere"


async def test_reused_conversations_and_duration_bound(make_settings: SettingsFactory) -> None:
    plan = ChatLoadPlan(url="", users=3, questions=QUESTIONS, duration_s=1.5, reuse_conversation=True, seed=2)
    async with running_stack(unlimited(make_settings)) as base_url:
        load = ChatLoad(ChatLoadPlan(**{**plan.__dict__, "url": chat_url(base_url)}))
        started = time.monotonic()
        result = await load.run()
        took = time.monotonic() - started
    assert not result.cut_short and took < plan.hard_deadline_s
    assert result.turns and all(t.ok for t in result.turns)
    by_user_conversation = {t.conversation_id for t in result.turns}
    assert len(by_user_conversation) == 3, "each user keeps one conversation across its turns"
    assert all(t.sent_at - result.started_at <= 1.5 + 0.5 for t in result.turns), "no turn starts after the duration"


async def test_rate_limited_users_wait_as_asked_instead_of_hammering(make_settings: SettingsFactory) -> None:
    settings = make_settings(asks_per_minute_per_client=6, max_sockets_per_client=1000)  # a burst of 1 ask
    async with running_stack(settings) as base_url:
        load = ChatLoad(
            ChatLoadPlan(url=chat_url(base_url), users=2, questions=QUESTIONS, duration_s=1.0, turn_timeout_s=10)
        )
        result = await load.run()
    report = chat_result(result, {})
    assert report["turns"]["failed_by_code"].get("rate_limited", 0) >= 1
    assert report["turns"]["total"] <= 4, "a refused user waits retry_after (or at least a pause) before asking again"


async def test_idle_mode_holds_twenty_sockets_and_all_answer_pings(make_settings: SettingsFactory) -> None:
    async with running_stack(unlimited(make_settings)) as base_url:
        load = IdleLoad(IdlePlan(url=chat_url(base_url), sockets=20, duration_s=1.5, ping_interval_s=0.5))
        result = await load.run()
    report = idle_result(result, {})
    assert report["sockets"] == {
        "requested": 20,
        "opened": 20,
        "open_errors": {},
        "closed_by_server": {},
        "alive_at_end": 20,
    }
    assert report["final_ping"]["answered"] == 20 and report["final_ping"]["rtt_ms"]["count"] == 20
    assert len(report["ping_rounds"]) >= 2, "pinged while held, then once more at the end"


async def test_sockets_over_the_per_client_limit_are_reported_as_closed(make_settings: SettingsFactory) -> None:
    async with running_stack(make_settings(max_sockets_per_client=5)) as base_url:
        result = await IdleLoad(IdlePlan(url=chat_url(base_url), sockets=8, duration_s=1.0, ping_interval_s=0.5)).run()
    report = idle_result(result, {})
    assert report["sockets"]["alive_at_end"] == 5
    assert report["sockets"]["closed_by_server"] == {"closed_1013": 3}


def test_an_unreachable_service_ends_with_exit_code_1(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    argv = [f"ws://127.0.0.1:{free_port()}/ws/chat", "-u", "1", "-n", "1", "-q", "-o", str(out), "--no-html"]
    assert main(argv) == EXIT_NOTHING_CONNECTED
    report = json.loads(out.read_text())
    assert report["connections"]["errors"] == {"connection_refused": 3}
    assert report["connections"]["users_gave_up"] == 1 and report["turns"]["total"] == 0


def test_the_default_question_file_ships_with_the_package() -> None:
    questions = load_questions()
    assert len(questions) >= 20 and all(q.endswith("?") for q in questions)


async def test_a_server_that_never_answers_cannot_keep_the_tool_running() -> None:
    async def silent(connection: ServerConnection) -> None:
        await connection.wait_closed()  # accepts the socket, reads nothing, answers nothing

    async with serve(silent, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        plan = ChatLoadPlan(
            url=f"ws://127.0.0.1:{port}/ws/chat", users=3, questions=QUESTIONS, turns_per_user=2, turn_timeout_s=0.5
        )
        started = time.monotonic()
        result = await ChatLoad(plan).run()
    assert time.monotonic() - started < plan.hard_deadline_s
    assert [t.error for t in result.turns] == ["client_timeout"] * 6, "each turn ends at its time limit"
    assert result.connections_opened == 6, "after a timeout a user starts over on a new socket"
