"""The worker's event loop: a turn's start goes ahead of the callbacks already waiting to run.

asyncio runs ready callbacks in the order they were scheduled. At 100 turns in flight the worker's loop has
a long queue of them on every pass (the answer streams' reads and writes), and a turn passes through that
queue three times before its first line runs: the intake thread's hand-off, the task ``_run_claimed`` and
the job task arq's ``run_job`` creates. Each waited ~1.5-2 ms (p50) behind the streams, most of the queue hop
(bench/hop_relay.py --levels 100: p50 9-10 ms, p99 42-55 ms before; 5-6 ms and 21-25 ms after, run back to
back).

This loop puts those three at the head of the queue instead of its tail, so they run as soon as the callback
running now returns. Nothing else is reordered: callbacks keep their order among themselves, and the ones
that were passed wait for the few microseconds a start takes to reach its first ``await``.

It is the standard library's selector loop (uvloop's queue cannot be reached from Python) with two
additions built on its ready queue (``_ready``, a deque, in every CPython 3 release):

* ``call_first_threadsafe``: ``call_soon_threadsafe``, but at the head. A deque's ``appendleft`` is atomic,
  and the loop only ever pops as many callbacks per pass as it counted at the start, so a callback added by
  another thread mid-pass is safe: one of the counted ones simply runs on the next pass.
* ``start_first(*functions)``: tasks created to run one of these coroutine functions have their first step
  moved to the head of the queue when they are created (by this loop's ``create_task``, which arq uses too).
"""

from __future__ import annotations

import asyncio
import collections
import selectors
from collections.abc import Callable, Coroutine, Generator
from contextvars import Context
from typing import Any, TypeVar

_T = TypeVar("_T")


class StartsFirstEventLoop(asyncio.SelectorEventLoop):
    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        super().__init__(selector)
        ready = getattr(self, "_ready", None)
        if not isinstance(ready, collections.deque):  # pragma: no cover - an asyncio whose internals moved
            raise RuntimeError("this asyncio's event loop keeps no ready queue this loop can reorder")
        self._ready_queue: collections.deque[asyncio.Handle] = ready
        self._first_codes: set[object] = set()

    def start_first(self, *functions: Callable[..., Coroutine[Any, Any, Any]]) -> None:
        """Tasks running any of these coroutine functions take their first step ahead of the queue."""
        self._first_codes.update(function.__code__ for function in functions)

    def call_first_threadsafe(self, callback: Callable[..., object], *args: Any) -> asyncio.Handle:
        """``call_soon_threadsafe``, but the callback runs before those already waiting."""
        self._check_closed()  # type: ignore[attr-defined]
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
        queued = len(self._ready_queue)
        task = super().create_task(coro, name=name, context=context)
        # The task scheduled its first step last. If another thread added a callback meanwhile, the count says
        # so and the step stays where it is: it only loses its head start.
        if getattr(coro, "cr_code", None) in self._first_codes and len(self._ready_queue) == queued + 1:
            self._ready_queue.rotate(1)
        return task
