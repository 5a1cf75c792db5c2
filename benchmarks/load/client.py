"""A load-generator process: M concurrent real-time ``Stream`` calls on one asyncio loop.

:func:`client_main` is the target of a spawned process. It pins itself to one CPU, opens one
channel (its own TCP connection) per stream, reports ``ready`` over its pipe, waits for the
common start time, then runs every stream:

- stream ``i`` opens its call at ``t0 + i / N * stagger`` (spread so that the streams' chunk
  phases differ) with a ``StreamConfig`` (44.1 kHz int16 mono, target 120 BPM), then sends
  chunk ``j`` (numbered) when its audio would have been recorded: at ``open + (j + 1) *
  chunk_s``, absolute-time scheduled (lateness measured, never accumulated), then
  ``EndOfStream`` and waits for the ``Summary``;
- every ``OnsetEvent`` is stamped on arrival; after the call the known onsets are matched to
  the reported ones (within 50 ms) and two delays are computed per onset: from sending the
  chunk holding the audio 30 ms past the onset (the issue's definition) and from sending the
  chunk that completed the audio the engine needs (its true look-ahead, see
  :mod:`benchmarks.load.lookahead`).

Everything is bounded: a per-call deadline, a wait for the ``Summary``, a wait for the start
signal. Traffic goes to the given target only (127.0.0.1 in the benchmark).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.load.measure import match_onsets, plan_stream

__all__ = ["ClientJob", "client_main"]

_READY_TIMEOUT_S = 30.0
_START_TIMEOUT_S = 120.0
_SUMMARY_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class ClientJob:
    """What one load-generator process runs.

    Attributes
    ----------
    target : str
        ``host:port`` of the engine.
    token : str
        A bearer token the engine accepts.
    sr, chunk_samples, n_chunks : int
        Sample rate (Hz), samples per chunk, chunks per stream.
    target_bpm : float
        The streams' target tempo (the take's tempo).
    streams : tuple of (int, int)
        (stream index among all N, start offset in the take in samples) of this process's
        streams.
    n_total : int
        N, all streams of the step (for the start stagger).
    stagger_s : float
        The streams' opening times are spread over this long.
    cpu : int or None
        CPU to pin the process to.
    pcm : ndarray of int16
        The circular take.
    onsets_s : ndarray of float64
        The take's true onsets (s).
    needed_end : ndarray of int64
        Per take onset, the take samples the engine needs to report it (-1: never).
    """

    target: str
    token: str
    sr: int
    chunk_samples: int
    n_chunks: int
    target_bpm: float
    streams: tuple[tuple[int, int], ...]
    n_total: int
    stagger_s: float
    cpu: int | None
    pcm: NDArray[np.int16]
    onsets_s: NDArray[np.float64]
    needed_end: NDArray[np.int64]


def client_main(job: ClientJob, conn: Connection) -> None:
    """Process entry: run the job, send the per-stream results (a list of dicts) or an
    ``("error", message)`` over ``conn``."""
    if job.cpu is not None:
        os.sched_setaffinity(0, {job.cpu})
    try:
        results = asyncio.run(_run(job, conn))
    except BaseException as exc:  # reported to the parent, which decides
        with contextlib.suppress(Exception):
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        raise
    conn.send(("results", results))
    conn.close()


async def _run(job: ClientJob, conn: Connection) -> list[dict[str, Any]]:
    import grpc
    import grpc.aio

    channels = [
        grpc.aio.insecure_channel(job.target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in job.streams
    ]
    try:
        await asyncio.wait_for(
            asyncio.gather(*(ch.channel_ready() for ch in channels)), _READY_TIMEOUT_S
        )
        conn.send(("ready", os.getpid()))
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, conn.poll, _START_TIMEOUT_S):
            raise TimeoutError("no start time from the orchestrator")
        t0 = float(conn.recv())
        tasks = [
            _stream(job, index, offset, t0 + index / job.n_total * job.stagger_s, channel)
            for (index, offset), channel in zip(job.streams, channels, strict=True)
        ]
        return list(await asyncio.gather(*tasks))
    finally:
        await asyncio.gather(*(ch.close() for ch in channels), return_exceptions=True)


async def _sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


async def _stream(
    job: ClientJob, index: int, offset: int, open_at: float, channel: Any
) -> dict[str, Any]:
    import grpc.aio

    from benchmarks.load.audio import Take, rotated
    from mpt_protos.audio.v1 import audio_pb2 as pb
    from mpt_protos.audio.v1 import audio_pb2_grpc

    sr, cs, n_chunks = job.sr, job.chunk_samples, job.n_chunks
    chunk_s = cs / sr
    take = Take(pcm=job.pcm, onsets_s=job.onsets_s, sr=sr, bpm=job.target_bpm)
    audio = rotated(take, offset, n_chunks * cs).astype("<i2").tobytes()
    chunk_bytes = 2 * cs
    beat_s = 60.0 / job.target_bpm
    config = pb.StreamRequest(
        config=pb.StreamConfig(
            sample_rate_hz=sr,
            channels=1,
            encoding=pb.ENCODING_PCM_S16LE,
            target_bpm=job.target_bpm,
            grid_start_s=(-offset / sr) % beat_s,
        )
    )
    sent_at = np.full(n_chunks, np.nan)
    late_s = np.zeros(n_chunks)
    onsets: list[tuple[float, float]] = []  # (event time_s, arrival)
    counts = {"started": 0, "onset": 0, "beat": 0, "tempo": 0, "warning": 0, "summary": 0}
    summary_s: float | None = None
    started_ms: float | None = None
    error: str | None = None
    stub = audio_pb2_grpc.AudioAnalysisStub(channel)

    await _sleep_until(open_at)
    opened = time.monotonic()
    call = stub.Stream(
        metadata=(("authorization", f"Bearer {job.token}"),),
        timeout=n_chunks * chunk_s + 60.0,
    )

    async def receive() -> None:
        nonlocal summary_s, started_ms
        async for response in call:
            now = time.monotonic()
            kind = response.WhichOneof("response")
            counts[kind] = counts.get(kind, 0) + 1
            if kind == "onset":
                onsets.append((response.onset.time_s, now))
            elif kind == "started":
                started_ms = (now - opened) * 1000.0
            elif kind == "summary":
                summary_s = response.summary.duration_s

    receiver = asyncio.ensure_future(receive())
    try:
        await call.write(config)
        for j in range(n_chunks):
            due = open_at + (j + 1) * chunk_s
            await _sleep_until(due)
            if receiver.done():
                break  # the call ended early (an error); the receiver holds it
            now = time.monotonic()
            sent_at[j] = now
            late_s[j] = now - due
            chunk = pb.AudioChunk(data=audio[j * chunk_bytes : (j + 1) * chunk_bytes], sequence=j)
            await call.write(pb.StreamRequest(chunk=chunk))
        if not receiver.done():
            await call.write(pb.StreamRequest(end=pb.EndOfStream()))
            await call.done_writing()
        await asyncio.wait_for(asyncio.shield(receiver), _SUMMARY_TIMEOUT_S)
    except (grpc.aio.AioRpcError, grpc.aio.UsageError, TimeoutError, asyncio.InvalidStateError):
        pass  # the receiver (or the missing summary) says what happened
    finally:
        if not receiver.done():
            call.cancel()
            error = "no summary within the wait"
        with contextlib.suppress(BaseException):
            await receiver
        exc = receiver.exception() if receiver.done() and not receiver.cancelled() else None
        if isinstance(exc, grpc.aio.AioRpcError):
            error = f"{exc.code().name}: {exc.details()}"
        elif exc is not None:
            error = f"{type(exc).__name__}: {exc}"

    chunks_sent = int(np.count_nonzero(~np.isnan(sent_at)))
    plan = plan_stream(
        job.onsets_s,
        job.needed_end,
        sr=sr,
        loop_samples=job.pcm.shape[0],
        offset_samples=offset,
        n_chunks=chunks_sent,
        chunk_samples=cs,
    )
    reported = np.array([t for t, _ in onsets])
    arrival = np.array([a for _, a in onsets])
    match = match_onsets(plan.onset_s, reported)
    hit = match >= 0
    spec_ms = (arrival[match[hit]] - sent_at[plan.spec_chunk[hit]]) * 1000.0
    ok_needed = hit & (plan.needed_chunk >= 0)
    needed_ms = (arrival[match[ok_needed]] - sent_at[plan.needed_chunk[ok_needed]]) * 1000.0
    extra_wait = int(np.count_nonzero(plan.needed_chunk[hit] > plan.spec_chunk[hit]))
    lost = None
    if summary_s is not None:
        lost = max(0, round((chunks_sent * chunk_s - summary_s) / chunk_s))
    sent_late = late_s[:chunks_sent]
    return {
        "index": index,
        "offset": offset,
        "error": error,
        "chunks_sent": chunks_sent,
        "chunks_planned": n_chunks,
        "summary_s": summary_s,
        "lost_chunks": lost,
        "started_ms": started_ms,
        "counts": counts,
        "timed_onsets": int(plan.onset_s.shape[0]),
        "matched": int(np.count_nonzero(hit)),
        "missed": int(np.count_nonzero(~hit)),
        "extra_reports": int(reported.shape[0]) - int(np.count_nonzero(hit)),
        "waited_next_chunk": extra_wait,
        "spec_ms": spec_ms.tolist(),
        "needed_ms": needed_ms.tolist(),
        "late_p99_ms": float(np.percentile(sent_late, 99) * 1000.0) if chunks_sent else None,
        "late_max_ms": float(sent_late.max() * 1000.0) if chunks_sent else None,
    }
