"""What idle gaps between chunks do to the analysis's CPU cost on this machine.

``python -m benchmarks.load.idle_cost [--streams 35] [--gaps-ms 0 0.5 2]``

The load benchmark's server spends about twice the CPU per stream-second in its analysis
threads that :func:`benchmarks.load.dsp_cost.analyzer_cost` measures in-process. The work is
the same; what differs is that a real-time server idles between chunks. This replays
``--streams`` interleaved streams of the load take (target 120 BPM, 100 ms int16 chunks, each
stream from its own offset) in this process, one chunk of each stream in turn, sleeping
``gap`` ms after every chunk, and reports ``time.process_time`` per stream-second and the share
of wall time the process was busy. With no gap the core stays busy; with gaps it idles as a
server below saturation does, and on this VM the same work then costs more CPU (caches and
the core's state lost while idle). Pin it to one CPU (``taskset -c 0``) for stable numbers.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import numpy as np

from benchmarks.load.audio import practice_take, rotated

__all__ = ["IdleCost", "idle_cost", "main"]


@dataclass(frozen=True, slots=True)
class IdleCost:
    """CPU per stream-second of interleaved streams with ``gap_ms`` of sleep per chunk."""

    gap_ms: float
    cpu_ms_per_audio_s: float
    busy_share: float


def idle_cost(
    *, streams: int, gap_ms: float, seconds: float = 10.0, chunk_ms: float = 100.0
) -> IdleCost:
    """Feed ``streams`` analyzers ``seconds`` of audio each, round robin, sleeping ``gap_ms``
    after each chunk; the CPU time of the feeding (analysis only) per stream-second."""
    from audio_engine.stream import StreamAnalyzer, StreamConfig

    if streams < 1 or seconds <= 0 or chunk_ms <= 0 or gap_ms < 0:
        raise ValueError("streams >= 1, seconds > 0, chunk_ms > 0 and gap_ms >= 0 are needed")
    take = practice_take()
    step = 2 * round(chunk_ms / 1000.0 * take.sr)
    chunked = []
    for i in range(streams):
        pcm = rotated(take, i * 12345, round(seconds * take.sr)).astype("<i2").tobytes()
        chunked.append([pcm[k : k + step] for k in range(0, len(pcm), step)])
    config = StreamConfig(sr=take.sr, target_bpm=take.bpm)
    warm = StreamAnalyzer(config)  # numba kernels loaded, imports done
    for c in chunked[0]:
        warm.process(np.frombuffer(c, dtype="<i2"))
    warm.finish()
    analyzers = [StreamAnalyzer(config) for _ in range(streams)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for k in range(len(chunked[0])):
        for analyzer, chunks in zip(analyzers, chunked, strict=True):
            analyzer.process(np.frombuffer(chunks[k], dtype="<i2"))
            if gap_ms:
                time.sleep(gap_ms / 1000.0)
    for analyzer in analyzers:
        analyzer.finish()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return IdleCost(gap_ms, cpu / (streams * seconds) * 1000.0, cpu / wall)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load.idle_cost",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=35)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--gaps-ms", type=float, nargs="+", default=[0.0, 0.5, 2.0])
    args = parser.parse_args(argv)
    for gap in args.gaps_ms:
        cost = idle_cost(streams=args.streams, gap_ms=gap, seconds=args.seconds)
        print(f"{args.streams} streams, {gap:g} ms idle after each chunk: "
              f"{cost.cpu_ms_per_audio_s:.2f} ms CPU per stream-second, "
              f"busy {100 * cost.busy_share:.0f} %", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
