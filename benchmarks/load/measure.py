"""Pure helpers of the load benchmark: stream schedules, onset matching, delays, percentiles,
``/proc`` parsing, and the ramp's pass/fail and next-step rules.

Nothing here does I/O or talks to a server; ``tests/benchmarks/test_load_measure.py`` tests
every function on small known answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "DELAY_LIMIT_MS",
    "MATCH_TOLERANCE_S",
    "SPEC_PAST_ONSET_S",
    "WARMUP_S",
    "StepVerdict",
    "StreamPlan",
    "chunk_index_for",
    "core_busy_ticks",
    "largest_passing",
    "match_onsets",
    "next_ramp_n",
    "parse_proc_cpu_s",
    "parse_rss_bytes",
    "percentiles",
    "plan_stream",
    "stream_offsets",
    "verdict",
]

SPEC_PAST_ONSET_S = 0.030  # the issue: "audio up to 30 ms past the onset"
MATCH_TOLERANCE_S = 0.050  # an event is an onset's when within 50 ms of it
DELAY_LIMIT_MS = 50.0
WARMUP_S = 1.0  # onsets in a stream's first second are not timed (the analyzer's warm-up)


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """The timed onsets of one stream.

    Attributes
    ----------
    onset_s : ndarray of float64, shape (n,)
        True onset times on the stream's clock (after the warm-up, with their audio sent).
    spec_chunk : ndarray of int64, shape (n,)
        Index of the chunk holding the audio 30 ms past each onset.
    needed_chunk : ndarray of int64, shape (n,)
        Index of the chunk that completes the audio the engine needs to report each onset
        (-1 where the engine does not report it on the take).
    """

    onset_s: NDArray[np.float64]
    spec_chunk: NDArray[np.int64]
    needed_chunk: NDArray[np.int64]


def chunk_index_for(end_samples: ArrayLike, chunk_samples: int) -> NDArray[np.int64]:
    """The index of the chunk (``chunk_samples`` each, from 0) that brings the audio sent to
    ``end_samples`` samples: ``ceil(end / chunk) - 1``."""
    if chunk_samples < 1:
        raise ValueError(f"chunk_samples must be positive, got {chunk_samples!r}")
    end = np.asarray(end_samples, dtype=np.int64)
    return -(-end // chunk_samples) - 1


def stream_offsets(n_streams: int, *, loop_samples: int, hop_samples: int) -> list[int]:
    """Where each stream starts in the circular take: distinct multiples of ``hop_samples``
    spread over the loop (a golden-ratio sequence), deterministic for the stream index."""
    slots = loop_samples // hop_samples
    if slots < 1:
        raise ValueError(f"loop of {loop_samples} samples is shorter than a hop ({hop_samples})")
    golden = (math.sqrt(5.0) - 1.0) / 2.0
    return [int((i * golden) % 1.0 * slots) * hop_samples for i in range(n_streams)]


def plan_stream(
    onsets_s: NDArray[np.float64],
    needed_end: NDArray[np.int64],
    *,
    sr: int,
    loop_samples: int,
    offset_samples: int,
    n_chunks: int,
    chunk_samples: int,
    warmup_s: float = WARMUP_S,
    past_onset_s: float = SPEC_PAST_ONSET_S,
) -> StreamPlan:
    """The timed onsets of a stream that plays the take from ``offset_samples`` and sends
    ``n_chunks`` chunks.

    Parameters
    ----------
    onsets_s : ndarray, shape (n,)
        The take's onsets (s).
    needed_end : ndarray of int64, shape (n,)
        Per take onset, the take samples the engine needs to report it, -1 if never
        (:class:`benchmarks.load.lookahead.Lookahead`).
    sr, loop_samples, offset_samples : int
        Sample rate (Hz), the take's length and the stream's start in it (samples).
    n_chunks, chunk_samples : int
        The stream's audio: ``n_chunks * chunk_samples`` samples.
    warmup_s, past_onset_s : float
        Onsets before ``warmup_s`` are not timed; the issue's reference is the audio
        ``past_onset_s`` past an onset.
    """
    sent = n_chunks * chunk_samples
    pos = np.asarray(onsets_s, dtype=np.float64) * sr
    laps = math.ceil(sent / loop_samples) + 1
    base = (pos - offset_samples) % loop_samples  # first lap, stream samples
    shift = base - (pos - offset_samples)  # a multiple of the loop
    onset_samples = (base[None, :] + loop_samples * np.arange(laps)[:, None]).ravel()
    needed = np.broadcast_to(np.asarray(needed_end, dtype=np.int64), (laps, pos.size))
    needed_stream = (
        needed
        - offset_samples
        + np.rint(shift).astype(np.int64)[None, :]
        + loop_samples * np.arange(laps, dtype=np.int64)[:, None]
    ).ravel()
    known = needed.ravel() >= 0
    spec_end = np.ceil(onset_samples + past_onset_s * sr - 1e-9).astype(np.int64)
    keep = (
        (onset_samples >= warmup_s * sr) & (spec_end <= sent) & (~known | (needed_stream <= sent))
    )
    order = np.argsort(onset_samples[keep], kind="stable")
    needed_chunk = np.where(known, chunk_index_for(np.maximum(needed_stream, 1), chunk_samples), -1)
    return StreamPlan(
        onset_s=(onset_samples[keep] / sr)[order],
        spec_chunk=chunk_index_for(spec_end[keep], chunk_samples)[order],
        needed_chunk=needed_chunk[keep][order],
    )


def match_onsets(
    known_s: ArrayLike, reported_s: ArrayLike, *, tolerance_s: float = MATCH_TOLERANCE_S
) -> NDArray[np.int64]:
    """Match reported onsets to known ones one-to-one, nearest pairs first.

    Returns
    -------
    ndarray of int64, shape (len(known_s),)
        For each known onset, the index of its reported onset, or -1 if none lies within
        ``tolerance_s`` (or all those did match closer known onsets).
    """
    known = np.asarray(known_s, dtype=np.float64)
    reported = np.asarray(reported_s, dtype=np.float64)
    out = np.full(known.shape[0], -1, dtype=np.int64)
    if known.size == 0 or reported.size == 0:
        return out
    dist = np.abs(known[:, None] - reported[None, :])
    ki, ri = np.nonzero(dist <= tolerance_s)
    used_r: set[int] = set()
    for flat in np.argsort(dist[ki, ri], kind="stable"):
        k, r = int(ki[flat]), int(ri[flat])
        if out[k] < 0 and r not in used_r:
            out[k] = r
            used_r.add(r)
    return out


def percentiles(values: ArrayLike, qs: Sequence[float] = (50.0, 99.0)) -> list[float | None]:
    """Percentiles (numpy's linear interpolation) of ``values``; None for each when empty."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return [None for _ in qs]
    return [float(v) for v in np.percentile(arr, list(qs))]


def parse_proc_cpu_s(stat: str, clock_ticks: int) -> float:
    """utime + stime (s) from the text of ``/proc/<pid>/stat`` (all threads of the process).

    The command name is in parentheses and may hold spaces, so fields are counted after the
    last ``)``: utime and stime are fields 14 and 15 of the line.
    """
    rest = stat[stat.rindex(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / clock_ticks


def parse_rss_bytes(status: str) -> int:
    """``VmRSS`` in bytes from the text of ``/proc/<pid>/status``."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            value, unit = line.split()[1:3]
            if unit.lower() != "kb":
                raise ValueError(f"unexpected VmRSS unit {unit!r}")
            return int(value) * 1024
    raise ValueError("no VmRSS line in the status text")


def core_busy_ticks(proc_stat: str, cpu: int) -> tuple[int, int]:
    """(busy, total) jiffies of core ``cpu`` from the text of ``/proc/stat``; busy excludes
    idle and iowait."""
    prefix = f"cpu{cpu} "
    for line in proc_stat.splitlines():
        if line.startswith(prefix):
            values = [int(v) for v in line.split()[1:]]
            total = sum(values[:8])  # user..steal; guest time is already in user
            return total - values[3] - values[4], total
    raise ValueError(f"no line for cpu{cpu} in /proc/stat")


@dataclass(frozen=True, slots=True)
class StepVerdict:
    """Whether a load step met the target, and why not.

    Attributes
    ----------
    passed : bool
        p99 within the limit, no stream error, no chunk lost.
    reasons : tuple of str
        What failed (empty when passed).
    """

    passed: bool
    reasons: tuple[str, ...]


def verdict(
    *,
    p99_ms: float | None,
    errors: int,
    lost_chunks: int,
    limit_ms: float = DELAY_LIMIT_MS,
) -> StepVerdict:
    """Pass when ``p99_ms`` <= ``limit_ms`` and nothing was lost or failed."""
    reasons = []
    if p99_ms is None:
        reasons.append("no onset delay measured")
    elif p99_ms > limit_ms:
        reasons.append(f"p99 {p99_ms:.1f} ms > {limit_ms:g} ms")
    if errors:
        reasons.append(f"{errors} stream error(s)")
    if lost_chunks:
        reasons.append(f"{lost_chunks} chunk(s) lost")
    return StepVerdict(passed=not reasons, reasons=tuple(reasons))


def largest_passing(results: Sequence[tuple[int, bool]]) -> int | None:
    """The largest N that passed, below the smallest N that failed (a pass above a failure
    is noise, not capacity); None when no N passed."""
    failed = [n for n, ok in results if not ok]
    ceiling = min(failed) if failed else math.inf
    passed = [n for n, ok in results if ok and n < ceiling]
    return max(passed) if passed else None


def next_ramp_n(
    ladder: Sequence[int], results: Sequence[tuple[int, bool]], *, refine: int, min_gap: int = 5
) -> int | None:
    """The next N to run: up the ladder while every step passes; after the first failure,
    up to ``refine`` bisections between the largest pass and the smallest failure (while they
    are more than ``min_gap`` apart); None when done.

    Parameters
    ----------
    ladder : sequence of int
        The N to try in increasing order.
    results : sequence of (int, bool)
        The steps run so far: N and whether it passed.
    refine : int
        Bisection steps allowed after the first failure.
    """
    done = {n for n, _ in results}
    failed = [n for n, ok in results if not ok]
    if not failed:
        remaining = [n for n in ladder if n not in done and n > max(done, default=0)]
        return remaining[0] if remaining else None
    bisections = sum(1 for n, _ in results if n not in ladder)
    if bisections >= refine:
        return None
    low = largest_passing(results) or 0
    high = min(failed)
    if high - low <= min_gap:
        return None
    mid = (low + high) // 2
    return None if mid in done else mid
