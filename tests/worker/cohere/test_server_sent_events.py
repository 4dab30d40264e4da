"""Decoding Cohere's event stream from bytes, however the network cuts them."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from worker.cohere.stream import ServerSentEvents

STREAM = (
    b'event: message-start\ndata: {"type":"message-start"}\n\n'
    b"event: content-delta\r\n"
    b'data: {"type":"content-delta","t":"caf\xc3\xa9"}\r\n\r\n'
    b": a comment\n"
    b"data: first line\n"
    b"data:second line\n\n"
    b'event: message-end\ndata: {"type":"message-end"}'  # the last event without its blank line
)
EXPECTED = [
    b'{"type":"message-start"}',
    b'{"type":"content-delta","t":"caf\xc3\xa9"}',
    b"first line\nsecond line",
    b'{"type":"message-end"}',
]


def decode(chunks: list[bytes]) -> list[bytes]:
    events = ServerSentEvents()
    out = [data for chunk in chunks for data in events.feed(chunk)]
    last = events.end()
    return out + ([last] if last is not None else [])


def test_whole_stream() -> None:
    assert decode([STREAM]) == EXPECTED


@given(st.lists(st.integers(0, len(STREAM)), max_size=12))
def test_any_cut_of_the_bytes_gives_the_same_events(cuts: list[int]) -> None:
    points = [0, *sorted(cuts), len(STREAM)]
    chunks = [STREAM[a:b] for a, b in itertools.pairwise(points)]
    assert decode(chunks) == EXPECTED


def test_nothing_left_means_no_last_event() -> None:
    assert decode([b"data: x\n\n"]) == [b"x"]
    assert decode([b""]) == []
