"""The batch executor: every piece of work runs once and its result or error reaches its
awaiting coroutine; finished work is handed back in batches; shutdown is clean."""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from audio_engine.server.batches import BatchExecutor


def in_loop(test: Callable[[], Coroutine[Any, Any, None]]) -> Callable[[], None]:
    @functools.wraps(test)
    def run() -> None:
        asyncio.run(asyncio.wait_for(test(), 30.0))

    return run


@in_loop
async def test_results_and_errors_reach_their_coroutines() -> None:
    ex = BatchExecutor(2)
    try:
        futures = [ex.run(lambda i=i: i * i) for i in range(200)]
        assert await asyncio.gather(*futures) == [i * i for i in range(200)]

        def boom() -> None:
            raise ValueError("bad chunk")

        with pytest.raises(ValueError, match="bad chunk"):
            await ex.run(boom)

        def stop() -> None:
            raise StopIteration

        with pytest.raises(RuntimeError, match="StopIteration"):
            await ex.run(stop)
    finally:
        ex.shutdown()


@in_loop
async def test_a_burst_is_handed_back_in_few_wakeups() -> None:
    # 100 quick pieces queued at once come back in far fewer loop callbacks than pieces
    ex = BatchExecutor(1, deliver_every_s=10.0)
    loop = asyncio.get_running_loop()
    calls = 0
    original = loop.call_soon_threadsafe

    def counting(callback, *args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        return original(callback, *args, **kwargs)

    gate = threading.Event()
    loop.call_soon_threadsafe = counting  # type: ignore[method-assign]
    try:
        first = ex.run(gate.wait)  # holds the worker while the burst queues up
        burst = [ex.run(lambda i=i: i) for i in range(100)]
        gate.set()
        assert await first is True
        assert await asyncio.gather(*burst) == list(range(100))
    finally:
        loop.call_soon_threadsafe = original  # type: ignore[method-assign]
        ex.shutdown()
    assert calls <= 3, calls


@in_loop
async def test_a_long_batch_hands_back_what_is_finished() -> None:
    # with deliver_every_s small, the first results arrive before the batch is done
    ex = BatchExecutor(1, deliver_every_s=0.001)
    release = threading.Event()
    try:
        gate = threading.Event()
        first = ex.run(gate.wait)
        quick = ex.run(lambda: time.sleep(0.005) or "quick")
        slow = ex.run(lambda: release.wait(5.0))
        gate.set()
        await first
        assert await asyncio.wait_for(quick, 2.0) == "quick"
        assert not slow.done()
        release.set()
        assert await slow is True
    finally:
        release.set()
        ex.shutdown()


@in_loop
async def test_cancelled_before_it_starts_is_skipped() -> None:
    ex = BatchExecutor(1)
    ran = []
    gate = threading.Event()
    try:
        first = ex.run(gate.wait)
        skipped = ex.run(lambda: ran.append("x"))
        skipped.cancel()
        after = ex.run(lambda: "after")
        gate.set()
        await first
        assert await after == "after"
        assert ran == []
    finally:
        ex.shutdown()


def test_the_executor_interface_and_shutdown() -> None:
    ex = BatchExecutor(2)
    assert ex.submit(lambda a, b=0: a + b, 2, b=3).result(timeout=5) == 5
    future = ex.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        future.result(timeout=5)
    ex.shutdown(wait=True)
    assert not any(t.is_alive() for t in ex._threads)
    with pytest.raises(RuntimeError, match="after shutdown"):
        ex.submit(lambda: None)


def test_shutdown_cancels_queued_work() -> None:
    ex = BatchExecutor(1)
    started, gate = threading.Event(), threading.Event()
    running = ex.submit(lambda: started.set() or gate.wait())
    assert started.wait(5)  # the worker holds the first piece; the next one queues
    queued = ex.submit(lambda: "never")
    ex.shutdown(wait=False, cancel_futures=True)
    gate.set()
    assert running.result(timeout=5) is True
    assert queued.cancelled()


def test_threads_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        BatchExecutor(0)
