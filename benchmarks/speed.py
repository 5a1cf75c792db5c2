"""Engine vs aubio speed only, on the same clips in one run: x real-time on one core.

Uses the benchmark's own speed path (``benchmarks.harness`` / ``benchmarks.evaluate``): the
same decoded samples (``load_clip_audio``), an untimed warm-up per system and sample rate on
the first ``WARMUP_S`` seconds, ``gc.collect()`` before each call, the analysis call alone
timed with ``perf_counter``, and x real-time = total audio / median over runs of the run's
total time. Unlike ``run_accuracy`` it interleaves the systems clip by clip within every run
(so a noisy neighbour slows both alike), pins the process to one CPU, caches nothing and
scores nothing::

    python -m benchmarks.speed                      # dev-real + dev-synth, 5 runs
    python -m benchmarks.speed --runs 9 --cpu 1 --peer aubio --sets dev-real

The last line is the ratio engine / peer of x real-time (issue 2 asks for >= 3 against
aubio), from the medians and, more robust on a shared machine, the median of the per-run
ratios.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time

import numpy as np

from benchmarks.datasets import SET_NAMES, list_clips
from benchmarks.harness import WARMUP_S
from benchmarks.systems import ENGINE, SYSTEMS, detector, load_clip_audio


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="dev-real,dev-synth", help="comma-separated subsets")
    ap.add_argument("--runs", type=int, default=5, help="timed runs over all clips (>= 1)")
    ap.add_argument("--peer", default="aubio", choices=[s for s in SYSTEMS if s != ENGINE])
    ap.add_argument(
        "--cpu", type=int, default=None, help="CPU to pin to (default: the last allowed one)"
    )
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error(f"--runs must be >= 1, got {args.runs}")
    sets = [s for s in args.sets.split(",") if s]
    unknown = [s for s in sets if s not in SET_NAMES]
    if unknown:
        ap.error(f"unknown set(s) {unknown}; choose from {', '.join(SET_NAMES)}")
    cpu = max(os.sched_getaffinity(0)) if args.cpu is None else args.cpu
    os.sched_setaffinity(0, {cpu})

    systems = [ENGINE, args.peer]
    clips = [(c, *load_clip_audio(c.audio_path)) for s in sets for c in list_clips(s)]
    audio_s = sum(len(y) / sr for _, y, sr in clips)
    warmed: set[tuple[str, int]] = set()
    for system in systems:
        for _, y, sr in clips:
            if (system, sr) not in warmed:
                detector(system)(y[: int(WARMUP_S * sr)].copy(), sr=sr)
                warmed.add((system, sr))

    totals = {s: np.zeros(args.runs) for s in systems}
    for r in range(args.runs):
        for _, y, sr in clips:
            # alternate which system goes first, so neither always runs on a warmer cache
            for system in systems if (r % 2 == 0) else systems[::-1]:
                detect = detector(system)
                gc.collect()
                t0 = time.perf_counter()
                detect(y, sr=sr)
                totals[system][r] += time.perf_counter() - t0
        line = "  ".join(f"{s} {totals[s][r]:.3f} s" for s in systems)
        print(f"run {r + 1}/{args.runs}: {line}", file=sys.stderr, flush=True)

    print(f"{len(clips)} clips, {audio_s:.1f} s of audio, {args.runs} runs, CPU {cpu}")
    xrt = {}
    for s in systems:
        med = float(np.median(totals[s]))
        xrt[s] = audio_s / med
        print(
            f"{s:8s} median {med:.3f} s (min {totals[s].min():.3f}, max {totals[s].max():.3f})"
            f"  x real-time {xrt[s]:.0f}"
        )
    per_run = float(np.median(totals[args.peer] / totals[ENGINE]))
    print(
        f"ratio engine/{args.peer}: {xrt[ENGINE] / xrt[args.peer]:.2f} (medians), "
        f"{per_run:.2f} (median of per-run ratios)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
