"""Helpers for the streaming tests: feeding a ``StreamAnalyzer`` in chunks, practice takes,
an hour of audio generated chunk by chunk, and the analyzer's retained memory.

Times are in seconds from the start of the stream; samples are float32 mono in [-1, 1]
unless said otherwise.
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray

from audio_engine.events import Event, StreamSummary
from audio_engine.params import AnalysisParams
from audio_engine.stream import StreamAnalyzer, StreamConfig
from tests._support.signals import click_track, grid_times, tone_notes

__all__ = [
    "Take",
    "TimedEvent",
    "chunk_bounds",
    "feed_timed",
    "hour_of_practice",
    "metronome_take",
    "ms_chunk_sizes",
    "of_type",
    "practice_take",
    "random_chunk_sizes",
    "retained_bytes",
    "run_stream",
    "to_int16",
]

E = TypeVar("E")


@dataclass(frozen=True)
class Take:
    """A synthetic practice take and what is in it.

    Attributes
    ----------
    samples : ndarray of float32, shape (n,)
    clicks_s : ndarray of float64
        The click times (the metronome's, or the student's percussive notes).
    notes_s : ndarray of float64
        The start times of the plucked tones.
    """

    samples: NDArray[np.float32]
    clicks_s: NDArray[np.float64]
    notes_s: NDArray[np.float64]


@dataclass(frozen=True)
class TimedEvent:
    """An event and how many input samples had been fed when ``process`` returned it."""

    fed_samples: int
    event: Event


def chunk_bounds(n_samples: int, sizes: int | Sequence[int]) -> list[tuple[int, int]]:
    """``(start, end)`` sample ranges covering ``0 .. n_samples``: a fixed chunk size, or the
    sizes given, cycled."""
    seq = [sizes] if isinstance(sizes, int) else list(sizes)
    if not seq or min(seq) < 1:
        raise ValueError(f"chunk sizes must be >= 1, got {sizes!r}")
    bounds = []
    start, k = 0, 0
    while start < n_samples:
        end = min(n_samples, start + seq[k % len(seq)])
        bounds.append((start, end))
        start, k = end, k + 1
    return bounds


def ms_chunk_sizes(n_samples: int, sr: int, ms: float) -> list[int]:
    """Chunk sizes whose ends fall on the sample nearest each multiple of ``ms``
    milliseconds (so 1 ms at 44.1 kHz alternates 44 and 45 samples)."""
    sizes: list[int] = []
    start, k = 0, 1
    while start < n_samples:
        end = min(n_samples, round(k * ms * sr / 1000.0))
        if end > start:
            sizes.append(end - start)
            start = end
        k += 1
    return sizes


def random_chunk_sizes(n_samples: int, *, seed: int, max_size: int) -> list[int]:
    """Random chunk sizes 1..max_size (log-uniform, so tiny chunks are common) summing to
    ``n_samples``."""
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    total = 0
    while total < n_samples:
        size = int(np.exp(rng.uniform(0.0, np.log(max_size + 1))))
        size = max(1, min(size, n_samples - total))
        sizes.append(size)
        total += size
    return sizes


def run_stream(
    samples: NDArray[np.generic],
    config: StreamConfig,
    sizes: int | Sequence[int],
    *,
    analyzer: StreamAnalyzer | None = None,
    params: AnalysisParams | None = None,
) -> tuple[list[Event], StreamSummary]:
    """Feed ``samples`` in chunks of ``sizes`` (see :func:`chunk_bounds`) and finish: every
    event in order, and the summary."""
    a = analyzer if analyzer is not None else StreamAnalyzer(config, params)
    events: list[Event] = []
    for start, end in chunk_bounds(int(samples.shape[0]), sizes):
        events.extend(a.process(samples[start:end]))
    last, summary = a.finish()
    events.extend(last)
    return events, summary


def feed_timed(
    analyzer: StreamAnalyzer, samples: NDArray[np.generic], sizes: int | Sequence[int]
) -> tuple[list[TimedEvent], StreamSummary]:
    """Feed ``samples`` in chunks of ``sizes`` (see :func:`chunk_bounds`) and finish: each
    event with the number of samples fed when it was returned (``finish()``'s events: all
    of them), and the summary."""
    timed: list[TimedEvent] = []
    n = int(samples.shape[0])
    for start, end in chunk_bounds(n, sizes):
        timed.extend(TimedEvent(end, e) for e in analyzer.process(samples[start:end]))
    last, summary = analyzer.finish()
    timed.extend(TimedEvent(n, e) for e in last)
    return timed, summary


def of_type(events: Iterable[Any], cls: type[E]) -> list[E]:
    """The events of one type, in order."""
    return [e for e in events if isinstance(e, cls)]


def to_int16(samples: NDArray[np.float32]) -> NDArray[np.int16]:
    """Round float samples to int16 (full scale 32768), clipping to the int16 range."""
    return np.asarray(np.clip(np.round(samples * 32768.0), -32768, 32767), dtype=np.int16)


def practice_take(
    sr: int, duration_s: float, *, bpm: float = 120.0, jitter_ms: float = 8.0, seed: int = 0
) -> Take:
    """A jittered click track with a few soft plucked tones between the clicks."""
    y, clicks = click_track(bpm, duration_s, sr, jitter_ms=jitter_ms, seed=seed)
    rng = np.random.default_rng(seed + 1000)
    period_s = 60.0 / bpm
    between = clicks[:-1] + period_s / 2
    notes = np.sort(rng.choice(between, size=min(4, between.size), replace=False))
    y = y + tone_notes(notes, duration_s, sr, velocities=[0.15, 0.25], decay_s=0.15, seed=seed)
    return Take(y.astype(np.float32), clicks, notes)


def metronome_take(
    sr: int,
    duration_s: float,
    *,
    bpm: float = 120.0,
    grid_start_s: float = 0.5,
    jitter_ms: float = 10.0,
    click_amplitude: float = 0.1,
    seed: int = 0,
) -> Take:
    """A quiet metronome on the grid ``grid_start_s + k * 60 / bpm`` and a student playing
    louder plucked tones on two beats of three (Gaussian jitter ``jitter_ms``), so every
    third click sounds alone."""
    y, clicks = click_track(bpm, duration_s, sr, start_s=grid_start_s, amplitude=click_amplitude)
    beats = grid_times(bpm, duration_s, start_s=grid_start_s, jitter_ms=jitter_ms, seed=seed)
    beats = beats[beats < duration_s - 0.5]
    notes = beats[np.arange(beats.size) % 3 != 2]
    y = y + tone_notes(notes, duration_s, sr, velocities=[0.6], decay_s=0.15, seed=seed)
    return Take(y.astype(np.float32), clicks, notes)


def hour_of_practice(
    sr: int, total_s: int, *, chunk_s: int = 1, seed: int = 0
) -> Iterator[NDArray[np.float32]]:
    """``total_s`` seconds of practice in chunks of ``chunk_s`` seconds, generated as they
    are needed: four 10 s variants of :func:`practice_take` cycled, each repetition with
    its own gain (0.7-1.0) and a little noise, so no two repetitions are equal."""
    if 10 % chunk_s:
        raise ValueError(f"chunk_s must divide 10, got {chunk_s!r}")
    patterns = [practice_take(sr, 10.0, seed=seed + k).samples for k in range(4)]
    rng = np.random.default_rng(seed)
    n_chunk = chunk_s * sr
    gain = 1.0
    for k in range(total_s // chunk_s):
        t_s = k * chunk_s
        if t_s % 10 == 0:
            gain = float(rng.uniform(0.7, 1.0))
        rep = patterns[(t_s // 10) % len(patterns)]
        start = (t_s % 10) * sr
        noise = rng.normal(0.0, 1e-4, n_chunk).astype(np.float32)
        yield (gain * rep[start : start + n_chunk] + noise).astype(np.float32)


def retained_bytes(obj: object, *, skip: frozenset[str] = frozenset()) -> dict[str, int]:
    """Bytes each attribute of ``obj`` keeps alive: numpy arrays at the size of the buffer
    they view (a slice keeps its whole base), containers with their contents, other objects
    by ``sys.getsizeof`` plus their attributes. Attributes named in ``skip`` are left out."""
    return _attr_sizes(obj, skip, set())


def _attr_sizes(obj: object, skip: frozenset[str], seen: set[int]) -> dict[str, int]:
    names = list(getattr(obj, "__dict__", {}))
    for cls in type(obj).__mro__:
        slots = getattr(cls, "__slots__", ())
        names.extend([slots] if isinstance(slots, str) else slots)
    return {
        name: _deep_size(getattr(obj, name), seen)
        for name in dict.fromkeys(names)
        if name not in skip and hasattr(obj, name)
    }


def _deep_size(x: object, seen: set[int]) -> int:
    if isinstance(x, np.ndarray):
        base = x
        while isinstance(base.base, np.ndarray):
            base = base.base
        if id(base) in seen:
            return 0
        seen.add(id(base))
        return int(base.nbytes)
    if id(x) in seen:
        return 0
    seen.add(id(x))
    size = sys.getsizeof(x)
    if isinstance(x, int | float | str | bytes | bool | type(None) | np.generic):
        return size
    if isinstance(x, dict):
        return size + sum(_deep_size(k, seen) + _deep_size(v, seen) for k, v in x.items())
    if isinstance(x, list | tuple | set | frozenset | deque):
        return size + sum(_deep_size(v, seen) for v in x)
    return size + sum(_attr_sizes(x, frozenset(), seen).values())
