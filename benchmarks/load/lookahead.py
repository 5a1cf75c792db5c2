"""How much audio past each onset the engine needs before it reports the onset.

The engine reports an onset once a probe of the frame after its peak can be computed, 8 ms
before that frame is complete (``audio_engine.dsp.probe``): on the load take 17-27 ms of
audio past the true note start (25-36 ms before the probes). Whenever a chunk boundary falls
between that need and 30 ms past the onset, the event comes out of a chunk *before* the 30 ms
reference chunk; when it crosses the boundary, it waits for the next chunk: pacing, not
serving. To separate the two, the load
benchmark measures each delay twice — from the chunk holding the audio 30 ms past the onset
(the issue's definition) and from the chunk that completed the audio the engine really
needed (this module's answer).

The answer is exact to the sample: the take is replayed through a
:class:`~audio_engine.stream.StreamAnalyzer` in 1-sample pieces around every onset (large
pieces elsewhere; the analyzer gives the same events in any chunking). The frames depend on
the stream's start only through the frame hop, so the answer holds for every stream that
plays the take from an offset that is a multiple of :func:`frame_hop_samples` (the take's
length is one too). Onsets in the first second of the replay (the analyzer's warm-up) take
their answer from a second lap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from benchmarks.load.audio import Take, rotated

__all__ = ["Lookahead", "engine_lookahead", "frame_hop_samples"]

_FINE_FROM_S = 0.010  # 1-sample pieces from this far past a true onset ...
_FINE_TO_S = 0.060  # ... to this far
_COARSE = 441  # piece size elsewhere
_WARM_S = 1.0  # onsets before this in the replay take their answer from the second lap
_MATCH_S = 0.05


@dataclass(frozen=True, slots=True)
class Lookahead:
    """Per onset of a take: the samples of the take the engine needs before reporting it.

    Attributes
    ----------
    needed_end : ndarray of int64, shape (n_onsets,)
        For onset ``k``, the smallest ``n`` such that the event is returned by the
        ``process`` call that brings the audio fed to ``n`` samples (take samples; can exceed
        the take's length for the last onsets, meaning audio of the next lap); -1 when the
        engine did not report the onset.
    exact : ndarray of bool, shape (n_onsets,)
        The event came out of a 1-sample piece, so ``needed_end`` is exact (else it is an
        upper bound within one coarse piece).
    """

    needed_end: NDArray[np.int64]
    exact: NDArray[np.bool_]

    def needed_past_onset_ms(self, take: Take) -> NDArray[np.float64]:
        """Audio needed past each (reported) true onset, ms."""
        ok = self.needed_end >= 0
        return (self.needed_end[ok] / take.sr - take.onsets_s[ok]) * 1000.0


def frame_hop_samples(sr: int) -> int:
    """The engine's frame hop in input samples at ``sr`` (decimation factor x hop)."""
    from audio_engine.dsp.signal import decimation_factor
    from audio_engine.dsp.spectrogram import frame_geometry
    from audio_engine.params import AnalysisParams

    params = AnalysisParams().spectrogram
    factor = decimation_factor(sr, params.target_sr)
    return int(frame_geometry(sr / factor, params).hop_length) * int(factor)


def engine_lookahead(take: Take, *, target_bpm: float | None = None) -> Lookahead:
    """Replay ``take`` (one lap and two more seconds) and time every onset's report.

    Parameters
    ----------
    take : Take
        A take whose length is a multiple of :func:`frame_hop_samples`.
    target_bpm : float, optional
        The streams' target tempo (the report timing does not depend on it; passed for
        fidelity).
    """
    from audio_engine.events import OnsetEvent
    from audio_engine.stream import StreamAnalyzer, StreamConfig

    sr, loop = take.sr, take.pcm.shape[0]
    hop = frame_hop_samples(sr)
    if loop % hop:
        raise ValueError(f"the take's length {loop} is not a multiple of the frame hop {hop}")
    total = loop + round(2.0 * sr)
    x = rotated(take, 0, total)
    onsets = take.onsets_s * sr
    copies = np.concatenate([onsets, onsets + loop])
    copies = copies[copies < total - _FINE_TO_S * sr]
    fine = np.zeros(total + 1, dtype=bool)
    for p in copies:
        fine[int(p + _FINE_FROM_S * sr) : int(p + _FINE_TO_S * sr) + 1] = True

    analyzer = StreamAnalyzer(StreamConfig(sr=sr, target_bpm=target_bpm))
    reports: list[tuple[float, int, bool]] = []  # (event time s, samples fed, exact)
    pos = 0
    while pos < total:
        if fine[pos]:
            end = pos + 1
        else:
            nxt = np.flatnonzero(fine[pos : pos + _COARSE])
            end = pos + (int(nxt[0]) if nxt.size else _COARSE)
        end = min(end, total)
        exact = end - pos == 1
        for event in analyzer.process(x[pos:end]):
            if isinstance(event, OnsetEvent):
                reports.append((event.time_s, end, exact))
        pos = end

    times = np.array([r[0] for r in reports])
    needed = np.full(onsets.shape[0], -1, dtype=np.int64)
    exact_mask = np.zeros(onsets.shape[0], dtype=bool)
    for k, onset_s in enumerate(take.onsets_s):
        lap = 1 if onset_s < _WARM_S else 0
        t = onset_s + lap * loop / sr
        if times.size == 0:
            break
        j = int(np.argmin(np.abs(times - t)))
        if abs(times[j] - t) <= _MATCH_S:
            needed[k] = reports[j][1] - lap * loop
            exact_mask[k] = reports[j][2]
    return Lookahead(needed_end=needed, exact=exact_mask)
