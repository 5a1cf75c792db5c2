"""The ``mpt.audio.v1.AudioAnalysis`` servicer: a thin adapter over the stream hub.

``Stream`` is an async generator (route_guide's ``RouteChat`` shape). It reads one request
at a time and does not read the next before the analysis of the current chunk is done and
its events are written, so a client sending faster than real time is slowed by HTTP/2 flow
control instead of being buffered without bound. CPU work runs in the hub's bounded thread
pool; deadlines and cancellation end the call at its current await, and the ``finally``
hands the stream back to the hub (kept for a resume, or dropped). A request stream that ends
without EndOfStream is a cut too: a reset connection often looks like a clean half-close to
the server, so only EndOfStream ends a stream (the call then ends with ABORTED, telling a
client that half-closed on purpose what happened). Errors propagate to the interceptor,
which maps them to status codes.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from typing import Any, Final

import grpc.aio

from audio_engine.analysis import analyze, analyze_file
from audio_engine.errors import AudioDecodeError, ParameterError
from audio_engine.result import AnalysisResult
from audio_engine.server import convert
from audio_engine.server.errors import StreamCutError
from audio_engine.server.interceptors import current_claims
from audio_engine.server.metrics import EngineMetrics
from audio_engine.server.streams import Outcome, StreamHub, StreamState
from mpt_protos.audio.v1 import audio_pb2 as pb
from mpt_protos.audio.v1 import audio_pb2_grpc

__all__ = ["AudioAnalysisServicer"]

_DRAINING: Final = object()  # a read interrupted by shutdown
_DRAIN_MESSAGE: Final = "mpt-engine: the server is stopping"

Context = grpc.aio.ServicerContext[Any, Any]


class AudioAnalysisServicer(audio_pb2_grpc.AudioAnalysisServicer):
    """Serves ``Stream`` and ``AnalyzeRecording``.

    Parameters
    ----------
    hub : StreamHub
        The process's streams.
    metrics : EngineMetrics
        Instruments to update.
    recording_executor : Executor
        Runs whole-recording analyses (apart from the streams' pool, so a long recording
        does not delay live events).
    max_recording_bytes : int
        Largest recording accepted by ``AnalyzeRecording``.
    """

    def __init__(
        self,
        *,
        hub: StreamHub,
        metrics: EngineMetrics,
        recording_executor: Executor,
        max_recording_bytes: int,
    ) -> None:
        self._hub = hub
        self._metrics = metrics
        self._recording_executor = recording_executor
        self._max_recording_bytes = max_recording_bytes
        self._drain_waiter: asyncio.Task[Any] | None = None
        self._reading: set[asyncio.Task[Any]] = set()  # calls waiting for their next request
        self._interrupted: set[asyncio.Task[Any]] = set()  # ... told to stop by the shutdown

    async def Stream(  # noqa: N802  (the generated servicer's name)
        self, request_iterator: AsyncIterator[pb.StreamRequest], context: Context
    ) -> AsyncIterator[pb.StreamResponse]:
        requests = aiter(request_iterator)
        first = await anext(requests, None)
        if first is None:
            raise ParameterError("the stream ended before its config: send a StreamConfig first")
        kind = first.WhichOneof("request")
        if kind != "config":
            raise ParameterError(
                f"the first message of a stream must be a config, got {kind or 'an empty request'}"
            )
        setup = convert.stream_setup_from_proto(first.config)
        subject = current_claims().sub
        hub = self._hub
        resumed = setup.resume_stream_id is not None
        state = await (hub.resume(setup, subject) if resumed else hub.open(setup, subject))
        outcome: Outcome = "cut"
        try:
            yield convert.started_to_proto(
                stream_id=state.stream_id,
                resumed=resumed,
                next_sequence=state.next_sequence,
                received_bytes=state.received_bytes,
                audio_s=state.analyzer.audio_s,
            )
            async for response in self._flush(state):
                yield response
            while True:
                request = await self._read(requests)
                if request is _DRAINING:
                    break  # the server is stopping: the stream ends with its summary
                if request is None:
                    outcome = "cut"
                    raise StreamCutError(
                        f"the requests of stream {state.stream_id!r} ended without EndOfStream; "
                        "it is kept for a resume (resume_stream_id), or send EndOfStream to "
                        "end it"
                    )
                assert isinstance(request, pb.StreamRequest)
                kind = request.WhichOneof("request")
                if kind == "end":
                    break
                if kind != "chunk":
                    raise ParameterError(
                        "a stream has one config, as its first message; got a second one"
                        if kind == "config"
                        else "empty StreamRequest: set config, chunk or end"
                    )
                chunk = request.chunk
                sequence = chunk.sequence if chunk.HasField("sequence") else None
                await hub.feed(state, chunk.data, sequence)
                async for response in self._flush(state):
                    yield response
            summary = await hub.finish(state)
            async for response in self._flush(state):
                yield response
            yield convert.summary_to_proto(state.stream_id, summary)
            outcome = "completed"
        except asyncio.CancelledError:
            hub.check_owner(state)  # a resume took the stream: end with ABORTED, not a cut
            raise
        except StreamCutError:
            raise
        except Exception:
            outcome = "failed"
            raise
        finally:
            hub.release(state, outcome)

    async def AnalyzeRecording(  # noqa: N802  (the generated servicer's name)
        self, request: pb.AnalyzeRecordingRequest, context: Context
    ) -> pb.AnalyzeRecordingResponse:
        recording = convert.recording_from_proto(request, max_bytes=self._max_recording_bytes)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(
            self._recording_executor, self._analyze_recording, recording
        )
        return convert.analysis_to_proto(result)

    # ----------------------------------------------------------------------------------

    async def _read(self, requests: AsyncIterator[pb.StreamRequest]) -> object:
        """The next request, None at the end of the requests, or ``_DRAINING`` when the
        server starts stopping while waiting.

        The read is awaited in the call's own task (no task and ``asyncio.wait`` per
        message: ~13 us a chunk); when the server starts stopping, the tasks waiting here
        are cancelled (:meth:`_interrupt_reads`), and a cancellation that is that one
        alone (not also gRPC's, for a client gone or a deadline) is taken back and read as
        ``_DRAINING``."""
        if self._hub.draining.is_set():
            return _DRAINING
        if self._drain_waiter is None:
            self._drain_waiter = asyncio.ensure_future(self._hub.draining.wait())
            self._drain_waiter.add_done_callback(self._interrupt_reads)
        task = asyncio.current_task()
        assert task is not None
        self._reading.add(task)
        try:
            return await anext(requests, None)
        except asyncio.CancelledError:
            if task in self._interrupted and task.uncancel() == 0:
                return _DRAINING
            raise
        finally:
            self._reading.discard(task)
            self._interrupted.discard(task)

    def _interrupt_reads(self, _: object) -> None:
        """The server started stopping: the calls waiting for a request stop waiting."""
        for task in list(self._reading):
            self._interrupted.add(task)
            task.cancel(_DRAIN_MESSAGE)

    async def _flush(self, state: StreamState) -> AsyncIterator[pb.StreamResponse]:
        """Send the stream's pending events; an event leaves the outbox once written."""
        metrics = self._metrics
        audio_s = state.analyzer.audio_s if state.outbox else 0.0
        while state.outbox:
            event, received_at = state.outbox[0]
            response = convert.event_to_proto(event)
            yield response
            state.outbox.popleft()
            metrics.events_total.labels(response.WhichOneof("response") or "").inc()
            metrics.event_delay_seconds.observe(time.monotonic() - received_at)
            metrics.event_lag_seconds.observe(max(0.0, audio_s - event.time_s))

    def _analyze_recording(self, recording: convert.Recording) -> AnalysisResult:
        """Decode (when it is a file) and analyse a whole recording; runs in a thread. A file
        is decoded straight to the working rate (:func:`audio_engine.analyze_file`: half
        the memory of its samples at 44.1 kHz, a quarter at 96 kHz)."""
        told: dict[str, Any] = dict(
            target_bpm=recording.target_bpm,
            grid_start_s=recording.grid_start_s,
            subdivision=recording.subdivision,
            latency_ms=recording.latency_ms,
        )
        if recording.file_bytes is None:
            assert recording.samples is not None
            return analyze(recording.samples, recording.sr, **told)
        with tempfile.NamedTemporaryFile(prefix="mpt-recording-") as file:
            file.write(recording.file_bytes)
            file.flush()
            try:
                return analyze_file(file.name, **told)
            except AudioDecodeError as exc:  # the message should not name our temp file
                message = str(exc).replace(repr(file.name), "the recording file")
                raise AudioDecodeError(message) from None
