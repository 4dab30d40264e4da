"""The command line refuses senseless input with one line and exit code 2, and reads sensible input."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loadtest.__main__ import EXIT_USAGE, main
from loadtest.options import DEFAULT_DURATION_S, UsageError, chat_url, parse_options

URL = "ws://127.0.0.1:7860/ws/chat"


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        ([URL, "--users", "0"], "--users"),
        ([URL, "--users", "-3"], "--users"),
        ([URL, "--users", "many"], "invalid int value"),
        ([URL, "--duration", "-5"], "--duration"),
        ([URL, "--duration", "0"], "--duration"),
        ([URL, "--duration", "nan"], "--duration"),
        ([URL, "--duration", "inf"], "--duration"),
        ([URL, "--duration", "100000"], "--duration"),
        ([URL, "--ramp-up", "-1"], "--ramp-up"),
        ([URL, "--think-time", "-0.5"], "--think-time"),
        ([URL, "--turn-timeout", "0"], "--turn-timeout"),
        ([URL, "--turns", "0"], "--turns"),
        ([URL, "--duration", "10", "--ramp-up", "20"], "--ramp-up"),
        ([URL, "--idle", "--turns", "3"], "--turns does not apply to --idle"),
        ([URL, "--questions", "/nonexistent/questions.txt"], "no such file"),
        (["ftp://example.com"], "must start with"),
        (["localhost:7860"], "must start with"),
        (["ws://"], "has no host"),
        (["ws://127.0.0.1:99999/ws/chat"], "not valid"),
        (["ws://127.0.0.1:0/ws/chat"], "port 0"),
        ([], "required"),
    ],
)
def test_senseless_input_is_refused_with_one_line_and_exit_code_2(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UsageError, match=complaint):
        parse_options(argv)
    assert main(argv) == EXIT_USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("loadtest: error: ") and complaint in lines[0]


def test_an_empty_question_file_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    questions = tmp_path / "questions.txt"
    questions.write_text("\n# only a comment\n   \n")
    assert main([URL, "--questions", str(questions)]) == EXIT_USAGE
    assert "holds no question" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("given_url", "expected"),
    [
        ("http://127.0.0.1:7860", "ws://127.0.0.1:7860/ws/chat"),
        ("https://someone-tutor.hf.space/", "wss://someone-tutor.hf.space/ws/chat"),
        ("wss://someone-tutor.hf.space/ws/chat", "wss://someone-tutor.hf.space/ws/chat"),
        ("WS://127.0.0.1:8000/custom?x=1", "ws://127.0.0.1:8000/custom?x=1"),
        ("  ws://[::1]:7860  ", "ws://[::1]:7860/ws/chat"),
    ],
)
def test_urls_are_normalised_to_the_chat_socket(given_url: str, expected: str) -> None:
    assert chat_url(given_url) == expected


@given(
    st.sampled_from(["http", "https", "ws", "wss"]),
    st.from_regex(r"[a-z][a-z0-9\-]{0,20}(\.[a-z]{2,6}){0,2}", fullmatch=True),
    st.integers(1, 65535),
)
def test_any_web_address_becomes_a_socket_address(scheme: str, host: str, port: int) -> None:
    url = chat_url(f"{scheme}://{host}:{port}")
    assert url == f"{'wss' if scheme in ('https', 'wss') else 'ws'}://{host}:{port}/ws/chat"


def test_defaults_are_bounded() -> None:
    options = parse_options([URL])
    assert options.mode == "chat" and options.users == 10
    assert options.duration_s == DEFAULT_DURATION_S, "with neither --duration nor --turns a run still ends"
    assert options.turns is None and options.html == options.out.with_suffix(".html")


def test_turn_count_alone_bounds_a_chat_run() -> None:
    options = parse_options([URL, "-u", "5", "-n", "2", "-o", "r.json", "--no-html"])
    assert (options.users, options.turns, options.duration_s, options.html) == (5, 2, None, None)


def test_idle_mode_holds_for_a_duration() -> None:
    options = parse_options([URL, "--idle", "-u", "20", "--ping-interval", "1"])
    assert options.mode == "idle" and options.duration_s == DEFAULT_DURATION_S and options.ping_interval_s == 1
