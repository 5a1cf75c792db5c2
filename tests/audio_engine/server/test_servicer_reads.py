"""How a Stream call waits for its next request (audio_engine/server/servicer.py ``_read``),
in-process on a real hub and servicer: the server's shutdown ends the wait as the end of the
requests, a cancellation by gRPC (a client gone, a deadline) still cancels the call, and
both at once cancel it too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry

from audio_engine.server.batches import BatchExecutor
from audio_engine.server.metrics import create_metrics
from audio_engine.server.servicer import _DRAINING, AudioAnalysisServicer
from audio_engine.server.streams import StreamHub
from mpt_protos.audio.v1 import audio_pb2 as pb


def _servicer() -> tuple[AudioAnalysisServicer, StreamHub, BatchExecutor]:
    executor = BatchExecutor(1)
    metrics = create_metrics(CollectorRegistry())
    hub = StreamHub(executor=executor, metrics=metrics, publish=None, resume_window_s=1.0,
                    max_streams=4, max_chunk_bytes=1 << 16)
    servicer = AudioAnalysisServicer(hub=hub, metrics=metrics, recording_executor=executor,
                                     max_recording_bytes=1 << 16)
    return servicer, hub, executor


async def _requests(gate: asyncio.Event) -> AsyncIterator[pb.StreamRequest]:
    """A client that sends EndOfStream once ``gate`` is set (until then the read waits)."""
    await gate.wait()
    yield pb.StreamRequest(end=pb.EndOfStream())


async def _reader(servicer: AudioAnalysisServicer, gate: asyncio.Event) -> tuple[object, int]:
    """The read's result, and how many cancellations the call still has pending after it (a
    shutdown's taken back: none, so the call's next await is not cancelled)."""
    got = await servicer._read(aiter(_requests(gate)))
    task = asyncio.current_task()
    assert task is not None
    await asyncio.sleep(0)  # would raise CancelledError if a cancellation were left pending
    return got, task.cancelling()


async def _waiting(task: asyncio.Task[object]) -> None:
    for _ in range(5):  # let the task reach its read
        await asyncio.sleep(0)
    assert not task.done()


def test_a_request_is_read_and_the_waiting_set_is_emptied() -> None:
    async def scenario() -> None:
        servicer, _, executor = _servicer()
        gate = asyncio.Event()
        task = asyncio.create_task(_reader(servicer, gate))
        await _waiting(task)
        assert len(servicer._reading) == 1
        gate.set()
        got, pending = await task
        assert isinstance(got, pb.StreamRequest) and got.WhichOneof("request") == "end"
        assert pending == 0
        assert not servicer._reading and not servicer._interrupted
        executor.shutdown()

    asyncio.run(scenario())


def test_the_shutdown_ends_a_waiting_read_as_draining_with_no_cancellation_left() -> None:
    async def scenario() -> None:
        servicer, hub, executor = _servicer()
        tasks = [asyncio.create_task(_reader(servicer, asyncio.Event())) for _ in range(3)]
        for task in tasks:
            await _waiting(task)
        await hub.drain()
        results = await asyncio.gather(*tasks)
        assert results == [(_DRAINING, 0)] * 3
        assert not servicer._reading and not servicer._interrupted
        # a call reading after the shutdown began does not wait at all
        assert await servicer._read(aiter(_requests(asyncio.Event()))) is _DRAINING
        executor.shutdown()

    asyncio.run(scenario())


def test_a_cancellation_by_grpc_still_cancels_the_call_also_during_the_shutdown() -> None:
    async def scenario() -> None:
        servicer, hub, executor = _servicer()
        alone = asyncio.create_task(_reader(servicer, asyncio.Event()))
        both = asyncio.create_task(_reader(servicer, asyncio.Event()))
        await _waiting(alone)
        await _waiting(both)
        alone.cancel()  # a client gone: no shutdown
        await asyncio.sleep(0)
        both.cancel()  # a client gone just as the server starts stopping
        await hub.drain()
        outcomes = await asyncio.gather(alone, both, return_exceptions=True)
        assert all(isinstance(o, asyncio.CancelledError) for o in outcomes), outcomes
        assert alone.cancelled() and both.cancelled()
        assert not servicer._reading and not servicer._interrupted
        executor.shutdown()

    asyncio.run(scenario())
