"""The streams' analysis work on a few threads, its results handed back a batch at a time.

A thread pool behind ``loop.run_in_executor`` wakes the event loop once per finished chunk
(a write to the loop's self-pipe, a read, a callback): with hundreds of streams sending ten
chunks a second each, that is thousands of wake-ups a second, and the pool's threads and
the loop contend for the GIL at each. Here a worker takes every chunk queued when it looks
(its share, with several workers), runs them one after another, and hands the finished
ones back to the loop in one call every ``deliver_every_s`` of work (2 ms), so a loaded
server wakes its loop a few hundred times a second whatever the number of streams, and a
chunk's events wait at most that long for the others of its batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, TypeVar

_T = TypeVar("_T")

DELIVER_EVERY_S = 0.002


@dataclass(slots=True)
class _Item:
    fn: Callable[[], Any]
    future: Future[Any] | None = None  # submitted through the Executor interface
    loop: asyncio.AbstractEventLoop | None = None  # or through run(): an asyncio future
    awaited: asyncio.Future[Any] | None = None


class BatchExecutor(Executor):
    """An executor for many small pieces of work that a loop awaits.

    :meth:`run` (on an event loop) returns an asyncio future settled in batches;
    :meth:`submit` is the ordinary :class:`~concurrent.futures.Executor` interface (each
    future settled on its own).

    Parameters
    ----------
    threads : int
        Worker threads (started on the first piece of work).
    name : str
        Prefix of the threads' names.
    deliver_every_s : float
        Finished work is handed back to its loop at least this often while a batch runs.
    """

    def __init__(
        self, threads: int, *, name: str = "mpt-analysis", deliver_every_s: float = DELIVER_EVERY_S
    ) -> None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads!r}")
        self._n_threads = threads
        self._name = name
        self._deliver_every_s = deliver_every_s
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def run(self, fn: Callable[[], _T]) -> asyncio.Future[_T]:
        """Queue ``fn``; the returned future (of the running loop) gets its result.

        Raises
        ------
        RuntimeError
            After :meth:`shutdown`, or when no event loop is running.
        """
        loop = asyncio.get_running_loop()
        awaited: asyncio.Future[_T] = loop.create_future()
        self._put(_Item(fn, loop=loop, awaited=awaited))
        return awaited

    def submit(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> Future[_T]:
        future: Future[_T] = Future()
        self._put(_Item(lambda: fn(*args, **kwargs), future=future))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._cond:
            self._closed = True
            dropped = list(self._queue) if cancel_futures else []
            if cancel_futures:
                self._queue.clear()
            self._cond.notify_all()
        for item in dropped:
            _cancel(item)
        if wait:
            for thread in self._threads:
                if thread is not threading.current_thread():
                    thread.join()

    # ------------------------------------------------------------------ workers

    def _put(self, item: _Item) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("cannot schedule new work after shutdown")
            self._queue.append(item)
            if len(self._threads) < self._n_threads:
                thread = threading.Thread(
                    target=self._work,
                    name=f"{self._name}_{len(self._threads)}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()
            self._cond.notify()

    def _take(self) -> list[_Item] | None:
        """This worker's share of the queue (waits for work); None once shut down."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                self._cond.wait()
            share = math.ceil(len(self._queue) / self._n_threads)
            return [self._queue.popleft() for _ in range(share)]

    def _work(self) -> None:
        while (batch := self._take()) is not None:
            finished: list[tuple[_Item, Any, BaseException | None]] = []
            handed_at = time.monotonic()
            for item in batch:
                if item.future is not None:
                    _run_plain(item, item.future)
                    continue
                if item.awaited is not None and item.awaited.cancelled():
                    continue  # its caller stopped waiting before it started (a read is safe)
                try:
                    finished.append((item, item.fn(), None))
                except BaseException as exc:  # handed to the awaiting coroutine
                    finished.append((item, None, exc))
                if time.monotonic() - handed_at >= self._deliver_every_s:
                    _deliver(finished)
                    finished = []
                    handed_at = time.monotonic()
            _deliver(finished)


def _run_plain(item: _Item, future: Future[Any]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        result = item.fn()
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _deliver(finished: list[tuple[_Item, Any, BaseException | None]]) -> None:
    """Hand finished work to its loops: one wake-up per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Item, Any, BaseException | None]]] = {}
    for entry in finished:
        assert entry[0].loop is not None
        by_loop.setdefault(entry[0].loop, []).append(entry)
    for loop, entries in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody awaits these now
            loop.call_soon_threadsafe(_settle, entries)


def _settle(entries: list[tuple[_Item, Any, BaseException | None]]) -> None:
    for item, result, exc in entries:
        awaited = item.awaited
        if awaited is None or awaited.done():
            continue
        if isinstance(exc, StopIteration):  # an asyncio future refuses this one
            exc = RuntimeError(f"the work raised StopIteration: {exc!r}")
        if exc is not None:
            awaited.set_exception(exc)
        else:
            awaited.set_result(result)


def _cancel(item: _Item) -> None:
    if item.future is not None:
        item.future.cancel()
    elif item.loop is not None and item.awaited is not None:
        with contextlib.suppress(RuntimeError):
            item.loop.call_soon_threadsafe(item.awaited.cancel)
