"""Per-stream state and the process's registry of streams: open, resume, expiry, hand-off.

A stream's state (:class:`StreamState`) is owned by the call that opened it. When a call ends
without EndOfStream (the network cut it, the client cancelled, its deadline expired) the state
is kept for ``resume_window_s`` so a new call with ``resume_stream_id`` can re-attach to the
same analyzer. A cut connection is often noticed by the client long before the server (which
learns it from keepalive or a failed write), so a resume of a stream still held by a call
takes it over: the old call is cancelled, ends with ABORTED (when its client still listens)
and hands the stream back, and the new call carries on from there. After the window a kept
stream is finished and, when it belongs to a practice session, its summary is still
published. With a checkpoint store (:mod:`audio_engine.server.checkpoints`) a cut stream is
also written there, so that a resume reaching another engine process (another worker on the
port, another host) takes it from the store and carries on; the process that held it then
drops its copy when its window ends (a checkpoint written by an engine whose analyzer keeps
other state, during a rolling upgrade, is refused with NOT_FOUND and left in the store for an
engine of its version). A stream with a practice session that received audio ends
with exactly one published summary however it ends (EndOfStream, expiry, an invalid chunk,
shutdown): the summary is computed once and kept, and the queue's publish is idempotent by
the event id, which is derived from the stream id.

The analysis runs on a bounded set of threads (the kernels release the GIL; results come
back in batches, :mod:`audio_engine.server.batches`); at most one piece
of work per stream is in flight, and it always completes, even when its call is cancelled,
so that a resumed call never races a thread still feeding the same analyzer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from audio_engine.errors import AudioEngineError, ParameterError, StateVersionError
from audio_engine.events import Event, StreamSummary
from audio_engine.server.batches import BatchExecutor
from audio_engine.server.checkpoints import CheckpointStore
from audio_engine.server.convert import ChunkDecoder, StreamSetup, make_decoder
from audio_engine.server.errors import (
    CheckpointStoreError,
    OverloadedError,
    ShuttingDownError,
    StreamBusyError,
    StreamNotFoundError,
    StreamOwnerError,
    StreamTakenOverError,
)
from audio_engine.server.metrics import EngineMetrics
from audio_engine.stream import StreamAnalyzer, StreamConfig

__all__ = ["Analyzer", "Publisher", "StreamHub", "StreamState"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

Outcome = Literal["completed", "cut", "failed"]
_TOKEN_BYTES = 16  # a checkpoint is a random mark of this length, then the pickle
RESTORE_WAIT_S = 2.0  # a resume of an unknown stream waits this long for its checkpoint
# A checkpoint outlives the holder's window by this much: the holder's expiry takes it back
# (so it never expires under it), and a holder that died leaves it resumable a little longer.
CHECKPOINT_MARGIN_S = 30.0
_RESTORE_POLL_S = 0.1
TAKEOVER_TIMEOUT_S = 10.0  # how long a resume waits for the old call to let go


class Analyzer(Protocol):
    """What the hub needs of :class:`~audio_engine.stream.StreamAnalyzer`."""

    @property
    def audio_s(self) -> float: ...

    def process(self, samples: NDArray[np.generic]) -> list[Event]: ...

    def finish(self) -> tuple[list[Event], StreamSummary]: ...


Publisher = Callable[["StreamState", StreamSummary], None]
"""Hands a finished stream's summary to the durable queue (blocking; run in a thread).
Must be idempotent for the same stream (the event id is derived from the stream id)."""


@dataclass(slots=True)
class StreamState:
    """Everything one stream owns; see the module docstring for its life.

    Attributes
    ----------
    stream_id, subject : str
        The stream's id and the token subject (user id) that opened it.
    setup : StreamSetup
        The stream's config.
    analyzer, decoder
        The stream's analysis and chunk decoder (used by one thread at a time).
    started_at : datetime
        When the stream opened (UTC).
    numbered : bool or None
        Whether the chunks carry sequence numbers (None until the first chunk).
    next_sequence, received_bytes : int
        The next chunk sequence expected, and the audio bytes accepted.
    outbox : deque of (Event, float)
        Events not yet sent, with the monotonic time their chunk arrived.
    pending : Future or None
        The analysis work in flight.
    owner : Task or None
        The task of the call holding the stream (cancelled when a resume takes it over).
    taken_over : bool
        Set while a resume takes the stream from ``owner``, so that call ends with
        :class:`StreamTakenOverError` instead of as a cut.
    detached : Event
        Set while no call holds the stream.
    checkpoint : Task or None
        The writing of the stream's checkpoint after a cut.
    checkpoint_token : bytes or None
        The mark of this process's checkpoint of the stream while the store holds it (None
        otherwise): a checkpoint taken back with another mark was written by another
        process that carried the stream on since.
    finalizing : bool
        The stream is being finished without a client (no resume can re-attach it).
    """

    stream_id: str
    subject: str
    setup: StreamSetup
    analyzer: Analyzer
    decoder: ChunkDecoder
    started_at: datetime
    numbered: bool | None = None
    next_sequence: int = 0
    received_bytes: int = 0
    outbox: deque[tuple[Event, float]] = field(default_factory=deque)
    pending: asyncio.Future[Any] | None = None
    failed: bool = False
    attached: bool = True
    owner: asyncio.Task[Any] | None = None
    taken_over: bool = False
    detached: asyncio.Event = field(default_factory=asyncio.Event)
    checkpoint: asyncio.Task[None] | None = None
    checkpoint_token: bytes | None = None
    finalizing: bool = False
    expiry: asyncio.TimerHandle | None = None
    summary: StreamSummary | None = None
    ended_at: datetime | None = None
    published: bool = False
    removed: bool = False
    finishing: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def checkpointed(self) -> bool:
        """The store holds this process's checkpoint of the stream (not taken yet)."""
        return self.checkpoint_token is not None


@dataclass(frozen=True, slots=True)
class _Checkpoint:
    """What a cut stream needs to carry on in another process (the decoder is made anew)."""

    stream_id: str
    subject: str
    setup: StreamSetup
    analyzer: Analyzer
    started_at: datetime
    numbered: bool | None
    next_sequence: int
    received_bytes: int
    events: list[Event]


class StreamHub:
    """The streams of one server process.

    Parameters
    ----------
    executor : BatchExecutor
        Runs decoding and analysis (bounded: its worker count bounds the parallel work),
        handing results back a batch at a time.
    metrics : EngineMetrics
        Instruments to update.
    publish : Publisher or None
        Hands summaries of practice-session streams to the durable queue; None drops them.
    resume_window_s : float
        How long a cut stream is kept for a resume.
    max_streams : int
        Streams attached to a call at once, beyond which a new one is refused.
    max_chunk_bytes : int
        Largest chunk accepted.
    analyzer_factory : callable, optional
        Builds a stream's analyzer from its config (default :class:`StreamAnalyzer`).
    checkpoints : CheckpointStore or None, optional
        Shared with the other engine processes: cut streams are written there, and resumes
        of streams this process does not hold are taken from there. None: a stream can be
        resumed only in the process that held it.
    """

    def __init__(
        self,
        *,
        executor: BatchExecutor,
        metrics: EngineMetrics,
        publish: Publisher | None,
        resume_window_s: float,
        max_streams: int,
        max_chunk_bytes: int,
        analyzer_factory: Callable[[StreamConfig], Analyzer] = StreamAnalyzer,
        checkpoints: CheckpointStore | None = None,
    ) -> None:
        self._executor = executor
        self._checkpoints = checkpoints
        self._metrics = metrics
        self._publish = publish
        self._resume_window_s = resume_window_s
        self._max_streams = max_streams
        self.max_chunk_bytes = max_chunk_bytes
        self._analyzer_factory = analyzer_factory
        self._streams: dict[str, StreamState] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.draining = asyncio.Event()

    # ----------------------------------------------------------------------------------
    # Introspection

    @property
    def active(self) -> int:
        """Streams attached to a live call."""
        return sum(1 for s in self._streams.values() if s.attached)

    @property
    def kept(self) -> int:
        """Streams cut and kept for a resume."""
        return sum(1 for s in self._streams.values() if not s.attached)

    def get(self, stream_id: str) -> StreamState | None:
        """The state of a live or kept stream (for inspection; call on the loop's thread)."""
        return self._streams.get(stream_id)

    # ----------------------------------------------------------------------------------
    # Opening

    async def open(self, setup: StreamSetup, subject: str) -> StreamState:
        """Start a new stream for ``subject``.

        Raises
        ------
        ShuttingDownError, OverloadedError
            The server is stopping, or serves its maximum of streams.
        ParameterError
            The analyzer rejects the config.
        """
        self._check_accepting()
        config = setup.config
        analyzer = await self._run(lambda: self._analyzer_factory(config))
        state = StreamState(
            stream_id=uuid.uuid4().hex,
            subject=subject,
            setup=setup,
            analyzer=analyzer,
            decoder=make_decoder(setup),
            started_at=datetime.now(UTC),
            owner=asyncio.current_task(),
        )
        self._check_accepting()  # the analyzer was built off the loop
        self._streams[state.stream_id] = state
        self._metrics.streams_total.labels("new").inc()
        self._update_gauges()
        return state

    async def resume(self, setup: StreamSetup, subject: str) -> StreamState:
        """Re-attach to the kept stream ``setup.resume_stream_id``.

        A stream still held by a call is taken over: that call is cancelled and the resume
        waits (up to ``TAKEOVER_TIMEOUT_S``) for it to hand the stream back.

        Raises
        ------
        StreamNotFoundError, StreamOwnerError, StreamBusyError
            No such stream is kept, it belongs to another subject, or the call holding it
            did not let go in time.
        ParameterError
            The audio format differs from the stream's.
        ShuttingDownError, OverloadedError
        """
        stream_id = setup.resume_stream_id
        assert stream_id is not None
        state = self._streams.get(stream_id)
        # a stream taken over from a live call is counted among the active ones already
        self._check_accepting(adding=state is None or not state.attached)
        if state is None and self._checkpoints is not None:
            return await self._restore(setup, subject)
        if state is None or state.summary is not None or state.finalizing:
            raise StreamNotFoundError(
                f"stream {stream_id!r} is unknown, has ended or its resume window of "
                f"{self._resume_window_s:g} s expired; start a new stream"
            )
        _check_resumable(stream_id, state.subject, state.setup, subject, setup)
        kind = "resumed"
        if not state.attached:
            newer = await self._reclaim(state)
            if newer is not None:
                return await self._restore(setup, subject, blob=newer)
        if state.attached:
            await self._take_over(state)
            kind = "taken_over"
            if state.summary is not None or state.failed:  # the old call ended it meanwhile
                outcome = "failed" if state.failed else "completed"
                self._spawn(self._finalize(state, outcome))  # publish what it has, drop it
                raise StreamNotFoundError(f"stream {stream_id!r} has ended; start a new stream")
        if state.expiry is not None:
            state.expiry.cancel()
            state.expiry = None
        self._attach(state)
        self._metrics.streams_total.labels(kind).inc()
        if state.pending is not None:  # work from the cut call; its events go to the outbox
            await asyncio.wait([state.pending])
        return state

    async def _take_over(self, state: StreamState) -> None:
        """Cancel the call holding ``state`` and wait until it has handed the stream back."""
        owner = state.owner
        state.taken_over = True
        try:
            if owner is not None and owner is not asyncio.current_task():
                owner.cancel()
            try:
                await asyncio.wait_for(state.detached.wait(), TAKEOVER_TIMEOUT_S)
            except TimeoutError:
                raise StreamBusyError(
                    f"stream {state.stream_id!r} is still held by another call that did not let "
                    f"go within {TAKEOVER_TIMEOUT_S:g} s; retry shortly"
                ) from None
        finally:
            state.taken_over = False

    async def _reclaim(self, state: StreamState) -> bytes | None:
        """Before a cut stream held here re-attaches: take back its checkpoint, so no other
        process can carry it on too. Returns None to go on with this copy, or a newer
        checkpoint written by another process (this copy is then dropped); raises
        :class:`StreamNotFoundError` when another process holds the stream."""
        if state.expiry is not None:  # no expiry may start finishing it meanwhile
            state.expiry.cancel()
            state.expiry = None
        if state.checkpoint is not None:
            await asyncio.wait([state.checkpoint])
        if state.checkpointed:
            taken = await self._take_back(state)
            if taken == "moved":
                self._remove(state, "moved")
                raise StreamNotFoundError(
                    f"stream {state.stream_id!r} was resumed by another engine process; "
                    "resume it again or start a new stream"
                )
            if isinstance(taken, bytes):
                self._remove(state, "moved")  # carried on elsewhere and cut again since
                return taken
        if state.finalizing or state.removed or state.summary is not None:
            raise StreamNotFoundError(f"stream {state.stream_id!r} has ended; start a new stream")
        return None

    async def _restore(
        self, setup: StreamSetup, subject: str, *, blob: bytes | None = None
    ) -> StreamState:
        """Carry on a stream that another process held, from its checkpoint (``blob`` when
        taken already)."""
        assert self._checkpoints is not None and setup.resume_stream_id is not None
        stream_id = setup.resume_stream_id
        store = self._checkpoints
        try:
            if blob is None:
                blob = await self._take_waiting(stream_id)
        except Exception as exc:
            _log.exception("stream %s: the checkpoint store failed", stream_id)
            raise CheckpointStoreError(
                f"stream {stream_id!r} cannot be looked up now (the engine's stream store "
                "is unavailable); retry shortly"
            ) from exc
        if blob is None:
            raise StreamNotFoundError(
                f"stream {stream_id!r} is unknown, has ended or its resume window of "
                f"{self._resume_window_s:g} s expired; start a new stream"
            )
        try:
            checkpoint: _Checkpoint = await asyncio.to_thread(pickle.loads, blob[_TOKEN_BYTES:])
        except StateVersionError as exc:  # leave it for an engine of the version that wrote it
            await asyncio.to_thread(
                store.put, stream_id, blob, self._resume_window_s + CHECKPOINT_MARGIN_S
            )
            raise StreamNotFoundError(
                f"stream {stream_id!r} was saved by another version of the engine and cannot "
                "be carried on by this one; resume it again or start a new stream"
            ) from exc
        try:
            _check_resumable(stream_id, checkpoint.subject, checkpoint.setup, subject, setup)
            self._check_accepting()
        except BaseException:  # give it back for the rightful resume
            await asyncio.to_thread(
                store.put, stream_id, blob, self._resume_window_s + CHECKPOINT_MARGIN_S
            )
            raise
        state = StreamState(
            stream_id=stream_id,
            subject=checkpoint.subject,
            setup=checkpoint.setup,
            analyzer=checkpoint.analyzer,
            decoder=make_decoder(checkpoint.setup),
            started_at=checkpoint.started_at,
            numbered=checkpoint.numbered,
            next_sequence=checkpoint.next_sequence,
            received_bytes=checkpoint.received_bytes,
        )
        now = time.monotonic()
        state.outbox.extend((event, now) for event in checkpoint.events)
        self._streams[stream_id] = state
        self._attach(state)
        self._metrics.streams_total.labels("restored").inc()
        return state

    async def _take_back(self, state: StreamState) -> Literal["ours", "moved"] | bytes:
        """Take this process's checkpoint of ``state`` back from the store: ``"ours"`` (it
        came back, or the store failed: go on with this copy, the stale checkpoint expires),
        ``"moved"`` (another process took it and still holds it: no checkpoint came within
        ``RESTORE_WAIT_S``), or the newer checkpoint that another process wrote after
        carrying the stream on (perhaps only once it saw its call cut, while we waited)."""
        token, state.checkpoint_token = state.checkpoint_token, None
        try:
            taken = await self._take_waiting(state.stream_id)
        except Exception:
            _log.exception("stream %s: could not take back its checkpoint", state.stream_id)
            return "ours"
        if taken is None:
            return "moved"
        return "ours" if taken[:_TOKEN_BYTES] == token else taken

    async def _take_waiting(self, stream_id: str) -> bytes | None:
        """Take ``stream_id``'s checkpoint from the store, waiting up to ``RESTORE_WAIT_S``
        for it: the process that held the stream last may not have seen the cut yet (it
        writes the checkpoint when it does). None when none came."""
        assert self._checkpoints is not None
        deadline = time.monotonic() + RESTORE_WAIT_S
        while (blob := await asyncio.to_thread(self._checkpoints.take, stream_id)) is None:
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(_RESTORE_POLL_S)
        return blob

    def _attach(self, state: StreamState) -> None:
        state.attached = True
        state.detached.clear()
        state.owner = asyncio.current_task()
        self._update_gauges()

    async def _write_checkpoint(self, state: StreamState) -> None:
        """After a cut: write the stream to the shared store for a resume elsewhere."""
        assert self._checkpoints is not None
        if state.pending is not None:
            await asyncio.wait([state.pending])
        if state.attached or state.removed or state.failed or state.summary is not None:
            return
        checkpoint = _Checkpoint(
            stream_id=state.stream_id,
            subject=state.subject,
            setup=state.setup,
            analyzer=state.analyzer,
            started_at=state.started_at,
            numbered=state.numbered,
            next_sequence=state.next_sequence,
            received_bytes=state.received_bytes,
            events=[event for event, _ in state.outbox],
        )
        token = uuid.uuid4().bytes
        try:
            blob = token + pickle.dumps(checkpoint, protocol=pickle.HIGHEST_PROTOCOL)
            await asyncio.to_thread(
                self._checkpoints.put,
                state.stream_id,
                blob,
                self._resume_window_s + CHECKPOINT_MARGIN_S,
            )
        except Exception:
            _log.exception("stream %s: could not write its checkpoint; it can be resumed "
                           "only in this process", state.stream_id)
            return
        state.checkpoint_token = token

    def check_owner(self, state: StreamState) -> None:
        """Raise :class:`StreamTakenOverError` when a resume is taking ``state`` from the
        calling task (for the old call, when its cancellation arrives)."""
        if state.taken_over and state.owner is asyncio.current_task():
            raise StreamTakenOverError(
                f"stream {state.stream_id!r} was resumed by a newer call; this one ends"
            )

    # ----------------------------------------------------------------------------------
    # Audio

    async def feed(self, state: StreamState, data: bytes, sequence: int | None) -> bool:
        """Analyse one chunk; its events land in ``state.outbox``.

        Returns False when the chunk was a resend of one already received (ignored).

        Raises
        ------
        ParameterError
            The chunk is too large, its sequence is out of order, or its audio is invalid.
        """
        received_at = time.monotonic()
        if len(data) > self.max_chunk_bytes:
            raise ParameterError(
                f"chunk of {len(data)} bytes exceeds the limit of {self.max_chunk_bytes} bytes; "
                "send smaller chunks"
            )
        numbered = sequence is not None
        if state.numbered is None:
            state.numbered = numbered
        elif state.numbered != numbered:
            raise ParameterError(
                "chunks must all carry a sequence number or none; chunk "
                f"#{state.next_sequence} {'has' if numbered else 'lacks'} one"
            )
        if sequence is not None:
            if sequence < state.next_sequence:
                self._metrics.duplicate_chunks_total.inc()
                return False
            if sequence > state.next_sequence:
                raise ParameterError(
                    f"chunk sequence {sequence} skips ahead of the next expected "
                    f"{state.next_sequence}"
                )
        # Counted before the work: once handed over, the analyzer has the audio even if this
        # call is cancelled while the thread runs.
        state.next_sequence += 1
        state.received_bytes += len(data)
        decoder, analyzer, sr = state.decoder, state.analyzer, state.setup.config.sr

        def work() -> tuple[list[Event], float]:
            samples = decoder.decode(data)
            return analyzer.process(samples), samples.shape[0] / sr

        def collect(fut: asyncio.Future[tuple[list[Event], float]]) -> None:
            if _broken(fut):
                state.failed = True
            if fut.cancelled() or fut.exception() is not None:
                return
            events, audio_s = fut.result()
            state.outbox.extend((e, received_at) for e in events)
            self._metrics.chunks_total.inc()
            self._metrics.audio_seconds_total.inc(audio_s)

        await self._guarded(state, work, collect)
        return True

    async def finish(self, state: StreamState) -> StreamSummary:
        """End the stream: flush the analyzer (its last events go to the outbox), publish the
        summary when the stream belongs to a practice session, and return the summary.

        Idempotent: a stream is finished and published once.
        """
        async with state.finishing:
            return await self._finish_locked(state)

    async def _finish_locked(self, state: StreamState) -> StreamSummary:
        if state.summary is None:
            analyzer = state.analyzer
            ended_at = time.monotonic()

            def collect(fut: asyncio.Future[tuple[list[Event], StreamSummary]]) -> None:
                if _broken(fut):
                    state.failed = True
                if fut.cancelled() or fut.exception() is not None:
                    return
                events, summary = fut.result()
                state.outbox.extend((e, ended_at) for e in events)
                state.summary = summary
                state.ended_at = datetime.now(UTC)

            await self._guarded(state, analyzer.finish, collect)
        assert state.summary is not None
        await self._hand_off(state)
        return state.summary

    # ----------------------------------------------------------------------------------
    # Ending

    def release(self, state: StreamState, outcome: Outcome) -> None:
        """The call holding ``state`` ended (called from its ``finally``; never blocks).

        ``completed``: the summary was sent, the state is dropped. ``cut``: the state is kept
        for a resume (or finished now while the server drains). ``failed``: the call ended
        on an error; the stream is finished in the background so a practice session still
        gets its summary.
        """
        if state.removed:
            return
        state.attached = False
        state.owner = None
        state.detached.set()
        if state.taken_over:  # a resume waits to re-attach it
            self._update_gauges()
            return
        if outcome == "completed":
            self._remove(state, "completed")
        elif outcome == "failed":
            self._spawn(self._finalize(state, "failed"))
        elif self.draining.is_set() or self._resume_window_s <= 0:
            self._spawn(self._finalize(state, "shutdown" if self.draining.is_set() else "expired"))
        else:
            loop = asyncio.get_running_loop()
            state.expiry = loop.call_later(
                self._resume_window_s, lambda: self._spawn(self._finalize(state, "expired"))
            )
            if self._checkpoints is not None:
                state.checkpoint = self._spawn(self._write_checkpoint(state))
        self._update_gauges()

    async def drain(self) -> None:
        """Shutdown: refuse new streams, tell live calls to wrap up (they check
        :attr:`draining`), and finish every kept stream now."""
        self.draining.set()
        for state in list(self._streams.values()):
            if not state.attached:
                if state.expiry is not None:
                    state.expiry.cancel()
                    state.expiry = None
                self._spawn(self._finalize(state, "shutdown"))

    async def close(self) -> None:
        """After the server stopped: finish whatever is left and wait for the background
        work (summaries being published)."""
        await self.drain()
        for state in list(self._streams.values()):  # calls cancelled at the grace's end
            state.attached = False
            self._spawn(self._finalize(state, "shutdown"))
        while self._tasks:
            await asyncio.wait(list(self._tasks))

    # ----------------------------------------------------------------------------------
    # Internals

    async def _finalize(self, state: StreamState, outcome: str) -> None:
        """Finish a stream without a client: its summary is still published (unless another
        process resumed it from its checkpoint: then this copy is dropped)."""
        if state.removed or state.attached or state.finalizing:
            return  # already gone, re-attached by a resume meanwhile, or being finished
        state.finalizing = True
        if state.checkpoint is not None:
            await asyncio.wait([state.checkpoint])
        if state.checkpointed and self._checkpoints is not None:
            taken = await self._take_back(state)  # on a store failure: finish it here
            if taken == "moved":
                self._remove(state, "moved")
                return
            if isinstance(taken, bytes):
                # another process carried it on and cut it since: its checkpoint stays
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(
                        self._checkpoints.put,
                        state.stream_id,
                        taken,
                        self._resume_window_s + CHECKPOINT_MARGIN_S,
                    )
                self._remove(state, "moved")
                return
        try:
            if state.pending is not None:
                await asyncio.wait([state.pending])
            if not state.failed and state.received_bytes and state.setup.practice_session_id:
                await self.finish(state)
        except Exception:
            _log.exception("stream %s: could not produce or publish its summary", state.stream_id)
        finally:
            if not state.attached:
                self._remove(state, outcome)

    async def _hand_off(self, state: StreamState) -> None:
        if state.published or self._publish is None or state.setup.practice_session_id is None:
            return
        assert state.summary is not None
        publish, summary = self._publish, state.summary
        await asyncio.to_thread(publish, state, summary)
        state.published = True
        self._metrics.summaries_published_total.inc()

    async def _guarded(
        self,
        state: StreamState,
        work: Callable[[], _T],
        collect: Callable[[asyncio.Future[_T]], None],
    ) -> None:
        """Run ``work`` in the executor as the stream's one piece of work in flight.

        The work is shielded: a cancelled call stops waiting, the work completes and
        ``collect`` stores its result in the state for whoever holds the stream next.
        """
        if state.pending is not None and not state.pending.done():
            await asyncio.wait([state.pending])
        fut = self._executor.run(work)
        fut.add_done_callback(collect)
        state.pending = fut
        await asyncio.shield(fut)

    async def _run(self, work: Callable[[], _T]) -> _T:
        return await self._executor.run(work)

    def _check_accepting(self, *, adding: bool = True) -> None:
        if self.draining.is_set():
            raise ShuttingDownError("the engine is shutting down; reconnect to another instance")
        if adding and self.active >= self._max_streams:
            raise OverloadedError(
                f"this engine process already serves its maximum of {self._max_streams} "
                "streams; retry later"
            )

    def _remove(self, state: StreamState, outcome: str) -> None:
        if state.removed:
            return
        state.removed = True
        if state.expiry is not None:
            state.expiry.cancel()
            state.expiry = None
        self._streams.pop(state.stream_id, None)
        state.outbox.clear()
        with contextlib.suppress(Exception):
            state.decoder.close()
        self._metrics.stream_endings_total.labels(outcome).inc()
        self._update_gauges()

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _update_gauges(self) -> None:
        self._metrics.streams_active.set(self.active)
        self._metrics.streams_kept.set(self.kept)


def _broken(fut: asyncio.Future[Any]) -> bool:
    """The work failed in a way that may leave the analyzer inconsistent (an invalid chunk,
    rejected before or by the analyzer, does not)."""
    if fut.cancelled():
        return True
    exc = fut.exception()
    return exc is not None and not isinstance(exc, AudioEngineError)


def _check_resumable(
    stream_id: str, owner: str, old: StreamSetup, subject: str, new: StreamSetup
) -> None:
    if owner != subject:
        raise StreamOwnerError(f"stream {stream_id!r} belongs to another user")
    if (old.encoding, old.input_sr, old.config.channels) != (
        new.encoding,
        new.input_sr,
        new.config.channels,
    ):
        raise ParameterError(
            f"resume of stream {stream_id!r} must keep its audio format "
            f"({old.encoding}, {old.input_sr} Hz, {old.config.channels} channel(s)), got "
            f"({new.encoding}, {new.input_sr} Hz, {new.config.channels} channel(s))"
        )
