"""Early looks at the frame after a candidate onset: the live stream's short look-ahead.

A peak of the onset strength at frame ``i`` is certain only once frame ``i + 1`` is known,
and a frame is complete only half a window (23 ms) after its centre: waiting for it puts an
onset's report 33-36 ms after the onset. With a *probe* the decision comes ``cut`` samples
(8 ms) earlier. Frames ``i`` and ``i + 1`` are both computed from their first
``n_fft - cut`` samples, with a window that fades to zero there; frame ``i``'s own spectrum
moved by the change between the two is the estimate of frame ``i + 1``
(:func:`probe`). The truncation biases both truncated spectra alike, so it cancels in the
difference; the fade (instead of a hard cut) keeps the cut from spraying energy over all
bands.

A probe can still be wrong on a slow attack. When it turns a candidate down (it saw the rise
go on) and frame ``i + 1`` then turns out lower, the peak is taken one frame later
(:func:`pick_probed`): a wrong probe delays an onset by a frame, it never loses it.

The stream and the offline analysis with the stream's parameters
(:func:`audio_engine.params.stream_params`) call these same functions on the same samples,
so they pick the same peaks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
from numpy.typing import NDArray

from audio_engine.dsp.peaks import _pick_range_kernel, parabolic_offset, pick_frames
from audio_engine.dsp.spectrogram import (
    FrameGeometry,
    _filterbank_log_kernel,
    _frame_kernel,
    _hann,
    log_filterbank,
)
from audio_engine.errors import ParameterError
from audio_engine.params import OnsetParams, SpectrogramParams

__all__ = [
    "FADE_S",
    "PickState",
    "Probe",
    "Prober",
    "check_probe_params",
    "passes_hold",
    "pick_probed",
    "probe",
    "probed_peaks",
    "refine",
]

FADE_S = 0.004
"""The probe window fades to zero over this long before its cut (seconds)."""


@dataclass(frozen=True, slots=True)
class Probe:
    """What a probe of frame ``i + 1`` says about a candidate peak at frame ``i``.

    Attributes
    ----------
    strength : float
        Onset strength of the probe (the stand-in for ``odf[i + 1]``).
    held : float
        Held strength of frame ``i`` (its rise held into the probe).
    flux : ndarray, shape (n_bands,), float32
        Per-band flux of the probe (the metronome's note vector of frame ``i + 1``).
    """

    strength: float
    held: float
    flux: NDArray[np.float32]


def check_probe_params(onset: OnsetParams, fps: float) -> None:
    """Probes stand in for one frame of look-ahead: raise ParameterError unless the peak
    picking looks one frame ahead, the moving average none, the hold gate one frame, and the
    probe comes between 0 and one hop early."""
    if onset.probe_s is None:
        return
    if not 0.0 < onset.probe_s < 1.0 / fps:
        raise ParameterError(
            f"probe_s must be between 0 and one hop ({1.0 / fps:.4f} s), got {onset.probe_s!r}"
        )
    look_ahead = (round(onset.post_max_s * fps), round(onset.post_avg_s * fps), onset.hold_frames)
    if look_ahead != (1, 0, 1):
        raise ParameterError("probe_s needs post_max_s of one hop, post_avg_s 0 and hold_frames 1")


@lru_cache(maxsize=32)
def _probe_window(n_fft: int, cut: int, fade: int) -> NDArray[np.float32]:
    """The Hann window faded to zero over ``fade`` samples before ``n_fft - cut``, and zero
    from there (length ``n_fft``)."""
    w = _hann(n_fft).astype(np.float64)
    n = n_fft - cut
    w[n:] = 0.0
    fade = min(fade, n)
    if fade > 0:
        ramp = np.cos(0.5 * np.pi * (np.arange(1, fade + 1) / (fade + 1))) ** 2
        w[n - fade : n] *= ramp
    return w.astype(np.float32)


def _truncated_frames(
    buf: NDArray[np.float32],
    buf_start: int,
    n_signal: int,
    frames: tuple[int, ...],
    hop: int,
    window: NDArray[np.float32],
    cut: int,
) -> NDArray[np.float32]:
    """Windowed frames, one row each, from their first ``n_fft - cut`` samples only: each is
    framed (:func:`~audio_engine.dsp.spectrogram._frame_kernel`, the mean of the part inside
    the signal removed) from a view of ``buf`` (samples ``buf_start ..`` of a signal of which
    ``n_signal`` exist) that ends at its cut."""
    n_fft = window.shape[0]
    out = np.empty((len(frames), n_fft), dtype=np.float32)
    for row, f in enumerate(frames):
        start = f * hop - n_fft // 2
        end = min(start + n_fft - cut, n_signal)
        view = buf[: max(0, end - buf_start)]
        out[row] = _frame_kernel(view, window, hop, start - buf_start, 1)[0]
    return out


def probe(
    P_next: NDArray[np.float32],
    P_i: NDArray[np.float32],
    S_i: NDArray[np.float32],
    ref_i: NDArray[np.float32],
    ref_next: NDArray[np.float32],
) -> Probe:
    """Judge frame ``i + 1`` from truncated spectra of it and of frame ``i``.

    The estimate of frame ``i + 1``'s spectrum is ``S_i + (P_next - P_i)``: frame ``i``'s
    own spectrum moved by how much the truncated window's view changed from frame ``i`` to
    ``i + 1``. What the truncation leaves out (a few per cent of the window, and during an
    attack its loudest end) biases both truncated spectra alike, so it cancels in the
    difference instead of reading as a fall (an early peak) or, scaled up, as a rise (a
    missed one).

    Parameters
    ----------
    P_next, P_i : ndarray, shape (n_bands,)
        Truncated spectra of frames ``i + 1`` and ``i``.
    S_i : ndarray, shape (n_bands,)
        The spectrum of frame ``i``.
    ref_i, ref_next : ndarray, shape (n_bands,)
        The max-filtered spectra ``lag`` frames before ``i`` and before ``i + 1``.

    Returns
    -------
    Probe
    """
    est = S_i + (P_next - P_i)
    flux = np.maximum(est - ref_next, np.float32(0.0))
    held = np.maximum(np.minimum(S_i, est) - ref_i, np.float32(0.0))
    return Probe(float(flux.sum(dtype=np.float64)), float(held.sum(dtype=np.float64)), flux)


def refine(i: int, a: float, b: float, c: float | None) -> float:
    """Sub-frame position of a peak at frame ``i`` from the strengths ``a, b, c`` of frames
    ``i - 1, i, i + 1`` (``c`` None: the last frame, not moved; the first frame is not moved
    either), as :func:`audio_engine.dsp.peaks.pick_peaks` does."""
    if i <= 0 or c is None:
        return float(i)
    return i + float(parabolic_offset(a, b, c))


@dataclass(frozen=True, slots=True)
class Prober:
    """Probes of one analysis geometry: the frame size and hop, the cut and fade in
    samples, and the spectrogram's filterbank and compression. ``Prober.of`` builds it from
    the parameters (None when they ask for no probes)."""

    n_fft: int
    hop: int
    cut: int
    fade: int
    fb: tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32], NDArray[np.int64]]
    log_mul: float

    @classmethod
    def of(
        cls, geom: FrameGeometry, spectrogram: SpectrogramParams, onset: OnsetParams
    ) -> Prober | None:
        """The prober of ``onset.probe_s`` (checked, see :func:`check_probe_params`)."""
        check_probe_params(onset, geom.fps)
        if onset.probe_s is None:
            return None
        fb = log_filterbank(
            geom.sr,
            geom.n_fft,
            spectrogram.fmin_hz,
            spectrogram.fmax_hz,
            spectrogram.bands_per_octave,
        )
        return cls(
            n_fft=geom.n_fft,
            hop=geom.hop_length,
            cut=max(1, round(onset.probe_s * geom.sr)),
            fade=round(FADE_S * geom.sr),
            fb=fb,
            log_mul=spectrogram.log_mul,
        )

    def probe(
        self,
        buf: NDArray[np.float32],
        buf_start: int,
        n_signal: int,
        frame: int,
        S_i: NDArray[np.float32],
        ref_i: NDArray[np.float32],
        ref_next: NDArray[np.float32],
    ) -> Probe:
        """:func:`probe` of ``frame`` (``i + 1``), its samples and those of ``frame - 1``
        read from ``buf`` (samples ``buf_start ..`` of a signal of which ``n_signal``
        exist). A probe that reaches past the end of the signal sees the cut, not an onset:
        its strength is 0, as the onset strength of a frame that reaches past the end is."""
        window = _probe_window(self.n_fft, self.cut, self.fade)
        frames = _truncated_frames(
            buf, buf_start, n_signal, (frame, frame - 1), self.hop, window, self.cut
        )
        spectra = _filterbank_log_kernel(scipy.fft.rfft(frames, axis=1), *self.fb, self.log_mul)
        result = probe(spectra[0], spectra[1], S_i, ref_i, ref_next)
        if frame * self.hop - self.n_fft // 2 + (self.n_fft - self.cut) > n_signal:
            return Probe(0.0, result.held, result.flux)
        return result


@dataclass(slots=True)
class PickState:
    """Where a probed peak picking left off: the last peak, and a candidate that its probe
    turned down (``pending``), to be taken after all when the frame after it is lower."""

    last: int = -(10**9)
    pending: int | None = None


def pick_probed(
    odf: NDArray[np.float64],
    buf_start: int,
    n_known: int,
    f0: int,
    f1: int,
    *,
    last_frame: int | None,
    pre_max: int,
    pre_avg: int,
    delta: float,
    combine: int,
    state: PickState,
    probe_at: Callable[[int], Probe],
) -> list[tuple[float, int, Probe | None, int]]:
    """Peaks among frames ``f0 .. f1-1`` of an onset strength whose frames ``buf_start ..``
    are in ``odf`` (``n_known`` of them exist): the rule of
    :func:`audio_engine.dsp.peaks.pick_peaks` with one frame of look-ahead and none in the
    moving average, each candidate judged against ``probe_at(i + 1)`` instead of frame
    ``i + 1``.

    A candidate that the probe turns down (it saw the rise go on) is taken after all, one
    frame later, when frame ``i + 1`` turns out lower: a wrong probe delays an onset by a
    frame but never loses it. ``last_frame`` is the signal's last frame when known (it has
    no probe), None while a stream goes on; ``state`` is updated.

    Returns
    -------
    list of (position, frame, probe, decided)
        Per peak: the refined position (with the probe's strength, or frame ``i + 1``'s for
        a peak taken late), its frame, its probe (None when taken without one) and the
        frame at whose decision it was taken (``frame`` or ``frame + 1``).
    """
    candidates, _ = _pick_range_kernel(
        odf, buf_start, n_known, f0, f1, pre_max, 0, pre_avg, 0, delta, 0, -(10**9)
    )
    out: list[tuple[float, int, Probe | None, int]] = []

    def settle_pending() -> None:
        # frame i + 1 is known now: take i after all if it is not higher
        i = state.pending
        assert i is not None
        state.pending = None
        v, c = float(odf[i - buf_start]), float(odf[i + 1 - buf_start])
        if c <= v and i - state.last > combine:
            state.last = i
            a = float(odf[i - 1 - buf_start]) if i > 0 else 0.0
            out.append((refine(i, a, v, c), i, None, i + 1))

    for j in candidates.tolist():
        if state.pending is not None and state.pending + 1 <= j:
            settle_pending()
        if j - state.last <= combine:
            continue
        v = float(odf[j - buf_start])
        ahead = probe_at(j + 1) if last_frame is None or j < last_frame else None
        if ahead is not None and ahead.strength > v:
            state.pending = j
            continue
        state.last = j
        a = float(odf[j - 1 - buf_start]) if j > 0 else 0.0
        out.append((refine(j, a, v, None if ahead is None else ahead.strength), j, ahead, j))
    if state.pending is not None and state.pending + 1 < f1:
        settle_pending()
    if state.pending is not None and last_frame is not None and state.pending >= last_frame:
        state.pending = None
    return out


def probed_peaks(
    y: NDArray[np.float32],
    geom: FrameGeometry,
    spectrogram: SpectrogramParams,
    onset: OnsetParams,
    S: NDArray[np.float32],
    ref: NDArray[np.float32],
    odf: NDArray[np.float64],
    held: NDArray[np.float64],
) -> NDArray[np.float64]:
    """The onset peaks (fractional frames) of a whole signal as the stream picks them: with
    probes (``onset.probe_s``) and the hold gate on the probe.

    ``y`` is the signal at the working rate, ``S``/``ref`` its spectrogram and the
    max-filtered one, ``odf`` its onset strength (muted at the end) and ``held`` its held
    strength with ``hold_frames`` 1."""
    prober = Prober.of(geom, spectrogram, onset)
    assert prober is not None
    fps = geom.fps
    n = odf.shape[0]
    lag = onset.lag_frames
    zeros = np.zeros(S.shape[1], dtype=np.float32)

    def ref_row(f: int) -> NDArray[np.float32]:
        return ref[f] if f >= 0 else zeros

    def probe_at(f: int) -> Probe:
        return prober.probe(y, 0, y.shape[0], f, S[f - 1], ref_row(f - 1 - lag), ref_row(f - lag))

    windows = pick_frames(onset, fps)
    picked = pick_probed(
        odf,
        0,
        n,
        0,
        n,
        last_frame=n - 1,
        pre_max=windows.pre_max,
        pre_avg=windows.pre_avg,
        delta=onset.delta,
        combine=windows.combine,
        state=PickState(),
        probe_at=probe_at,
    )
    out = []
    for pos, i, ahead, _ in picked:
        need = onset.hold_ratio * odf[i]
        if onset.hold_ratio > 0 and not passes_hold(lambda f: float(held[f]), i, ahead, need):
            continue
        out.append(pos)
    return np.asarray(out, dtype=np.float64)


def passes_hold(held: Callable[[int], float], i: int, ahead: Probe | None, need: float) -> bool:
    """The hold gate of a probed peak at frame ``i``: the larger of the held strength of
    frame ``i - 1`` and that of frame ``i`` held into the probe (the frame's own held
    strength at the last frame) is at least ``need``. ``held`` gives frame strengths by
    index."""
    own = ahead.held if ahead is not None else held(i)
    best = max(held(i - 1), own) if i > 0 else own
    return best >= need
