"""The pure analysis cost per stream, without gRPC: the peers' baseline for the server's CPU.

Both run in the calling process on the same audio (the rotated take, ``seconds`` long), one
stream at a time, after an untimed warm-up (numba kernels loaded from the cache, imports
done); CPU time is ``time.process_time`` over the feeding loop only, the median of
``repeats`` (5) runs:

- aubio 0.4.9: ``aubio.onset("default")`` and ``aubio.tempo("default")`` (window 1024, hop
  512) fed the same float32 hops in a plain loop (the int16 -> float32 conversion is done
  once, before timing);
- the engine's :class:`~audio_engine.stream.StreamAnalyzer` (the server's per-stream object,
  target 120 BPM like the load streams) fed int16 chunks decoded from bytes as the server
  does (``np.frombuffer``), then ``finish()``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np

from benchmarks.load.audio import Take, rotated

__all__ = ["DspCost", "analyzer_cost", "aubio_cost"]


@dataclass(frozen=True, slots=True)
class DspCost:
    """CPU cost of analysing one stream in-process.

    Attributes
    ----------
    name : str
        What was measured.
    cpu_ms_per_audio_s : float
        CPU milliseconds per second of audio (median run).
    runs_ms : tuple of float
        Each run's CPU ms per audio second.
    """

    name: str
    cpu_ms_per_audio_s: float
    runs_ms: tuple[float, ...]

    @property
    def streams_per_core(self) -> float:
        """Streams one core could analyse in real time at this cost (no serving)."""
        return 1000.0 / self.cpu_ms_per_audio_s


def aubio_cost(take: Take, *, seconds: float = 60.0, repeats: int = 5) -> DspCost:
    """aubio's real-time onset and tempo objects, one hop at a time."""
    import aubio

    hop, win = 512, 1024
    x = rotated(take, 0, round(seconds * take.sr)).astype(np.float32) / np.float32(32768.0)
    n = (x.shape[0] // hop) * hop
    hops = [np.ascontiguousarray(x[i : i + hop]) for i in range(0, n, hop)]
    runs = []
    for attempt in range(repeats + 1):
        onset = aubio.onset("default", win, hop, take.sr)
        tempo = aubio.tempo("default", win, hop, take.sr)
        t0 = time.process_time()
        for h in hops:
            onset(h)
            tempo(h)
        dt = time.process_time() - t0
        if attempt:  # the first run warms up
            runs.append(dt / (n / take.sr) * 1000.0)
    return DspCost(
        name=f"aubio {aubio.version} onset+tempo 'default' (hop {hop}, window {win})",
        cpu_ms_per_audio_s=statistics.median(runs),
        runs_ms=tuple(runs),
    )


def analyzer_cost(
    take: Take,
    *,
    chunk_samples: int,
    target_bpm: float | None,
    seconds: float = 60.0,
    repeats: int = 5,
) -> DspCost:
    """The engine's StreamAnalyzer fed ``chunk_samples`` int16 chunks, then finished."""
    from audio_engine.stream import StreamAnalyzer, StreamConfig

    pcm = rotated(take, 0, round(seconds * take.sr)).astype("<i2").tobytes()
    step = 2 * chunk_samples
    chunks = [pcm[i : i + step] for i in range(0, len(pcm), step)]
    config = StreamConfig(sr=take.sr, target_bpm=target_bpm)
    warm = StreamAnalyzer(config)
    for c in chunks[: max(1, round(10.0 * take.sr / chunk_samples))]:
        warm.process(np.frombuffer(c, dtype="<i2"))
    warm.finish()
    runs = []
    for _ in range(repeats):
        analyzer = StreamAnalyzer(config)
        t0 = time.process_time()
        for c in chunks:
            analyzer.process(np.frombuffer(c, dtype="<i2"))
        analyzer.finish()
        runs.append((time.process_time() - t0) / (len(pcm) / 2 / take.sr) * 1000.0)
    ms = 1000.0 * chunk_samples / take.sr
    return DspCost(
        name=f"engine StreamAnalyzer, {ms:g} ms chunks",
        cpu_ms_per_audio_s=statistics.median(runs),
        runs_ms=tuple(runs),
    )
