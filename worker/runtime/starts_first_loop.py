"""The worker's event loop: a turn's start goes ahead of the callbacks already waiting to run.

asyncio runs ready callbacks in the order they were scheduled. At 100 turns in flight the worker's loop has
a long queue of them on every pass (the answer streams' reads and writes), and a turn passes through that
queue three times before its first line runs: the intake thread's hand-off, the task ``_run_claimed`` and
the job task arq's ``run_job`` creates. Each waited ~1.5-2 ms (p50) behind the streams.

Measured with ``python -m bench.hop_relay --levels 100 --duration 15/20``, seven runs of each, alternating with
the previous commit (uvloop, first in, first out): queue hop p50 11.0 -> 6.4 ms and p99 58 -> 26 ms (medians
of the runs); time to first delta unchanged (p50 223 vs 225 ms above the fake's latency); the price is the
standard library's loop itself, slower than uvloop: the worker used 0.69 cores instead of 0.67, and the relay
per delta rose from 6.0 to 7.1 ms p50 (p99 19.4 -> 20.6 ms).

This loop puts those three at the head of the queue instead of its tail, so they run as soon as the callback
running now returns. Nothing else is reordered: the callbacks that were passed keep their order and wait only
for a start's first step (up to its first ``await``). What is put first runs next, so two put first before
either ran run last-in, first-out (the worker creates a batch's tasks in reverse for that reason); a task put
first by a callback runs in the same pass, before the loop next looks for I/O; and a callback put first in the
pass that called ``stop()`` runs before ``run_forever`` returns, while one of the callbacks scheduled before
``stop()`` is left for the next run (arq's ``run()`` runs the loop again to close).

It is the standard library's selector loop (uvloop's queue cannot be reached from Python) with two
additions built on its ready queue (``_ready``, a deque, in every CPython 3 release):

* ``call_first_threadsafe``: ``call_soon_threadsafe``, but at the head. A deque's ``appendleft`` is atomic,
  and the loop only ever pops as many callbacks per pass as it counted at the start, so a callback added by
  another thread mid-pass is safe: one of the counted ones simply runs on the next pass.
* ``start_first(*functions)``: a task created (by this loop's ``create_task``, which arq uses too) to run one
  of these coroutine functions schedules its first step at the head: ``create_task`` marks the one
  ``call_soon`` the new task makes, on the loop's own thread, so no other thread's callback can be moved
  instead.
"""

from __future__ import annotations

import asyncio
import collections
import selectors
from collections.abc import Awaitable, Callable, Coroutine, Generator
from contextvars import Context
from types import CodeType
from typing import Any, TypeVar, TypeVarTuple

_T = TypeVar("_T")
_Ts = TypeVarTuple("_Ts")


class StartsFirstEventLoop(asyncio.SelectorEventLoop):
    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        super().__init__(selector)
        ready = getattr(self, "_ready", None)
        if not isinstance(ready, collections.deque):  # pragma: no cover - an asyncio whose internals moved
            raise RuntimeError("this asyncio's event loop keeps no ready queue this loop can reorder")
        self._ready_queue: collections.deque[asyncio.Handle] = ready
        self._first_codes: set[CodeType] = set()
        self._next_call_first = False  # set by create_task (on the loop's thread) for its task's first step

    def start_first(self, *functions: Callable[..., Awaitable[Any]]) -> None:
        """Tasks running any of these coroutine functions take their first step ahead of the queue. A callable
        that is not a function (a ``functools.partial``, an object) has no code to recognise and is left out."""
        for function in functions:
            code = getattr(function, "__code__", None)
            if isinstance(code, CodeType):
                self._first_codes.add(code)

    def call_first_threadsafe(self, callback: Callable[..., object], *args: Any) -> asyncio.Handle:
        """``call_soon_threadsafe``, but the callback runs next, before those already waiting."""
        self._check_closed()  # type: ignore[attr-defined]
        if self._debug:  # type: ignore[attr-defined]
            self._check_callback(callback, "call_first_threadsafe")  # type: ignore[attr-defined]
        handle = asyncio.Handle(callback, args, self, None)
        self._ready_queue.appendleft(handle)
        self._write_to_self()  # type: ignore[attr-defined]  # wake the loop if it is waiting for I/O
        return handle

    def create_task(  # type: ignore[override]
        self,
        coro: Coroutine[Any, Any, _T] | Generator[Any, None, _T],
        *,
        name: str | None = None,
        context: Context | None = None,
    ) -> asyncio.Task[_T]:
        # A task schedules its first step with call_soon as it is created: that one call goes to the head.
        self._next_call_first = getattr(coro, "cr_code", None) in self._first_codes
        try:
            return super().create_task(coro, name=name, context=context)
        finally:
            self._next_call_first = False

    def call_soon(
        self, callback: Callable[[*_Ts], object], *args: *_Ts, context: Context | None = None
    ) -> asyncio.Handle:
        if not self._next_call_first:
            return super().call_soon(callback, *args, context=context)
        self._next_call_first = False
        self._check_closed()  # type: ignore[attr-defined]
        if self._debug:  # type: ignore[attr-defined]
            self._check_thread()  # type: ignore[attr-defined]
            self._check_callback(callback, "call_soon")  # type: ignore[attr-defined]
        handle = asyncio.Handle(callback, args, self, context)
        self._ready_queue.appendleft(handle)
        return handle
