"""Tests of audio_engine/dsp/probe.py: the stream's early look at the frame after a peak."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from audio_engine.dsp.peaks import _pick_peaks_kernel
from audio_engine.dsp.probe import (
    PickState,
    Probe,
    Prober,
    check_probe_params,
    pick_probed,
    probe,
)
from audio_engine.dsp.spectrogram import frame_geometry, log_spectrogram
from audio_engine.errors import ParameterError
from audio_engine.params import SpectrogramParams, stream_params

PICK = {"pre_max": 3, "pre_avg": 10, "delta": 1.0, "combine": 3}

curves = arrays(np.float64, st.integers(2, 60), elements=st.floats(0.0, 20.0, width=32))


def _pick(odf: np.ndarray, probe_at, chunks: list[int] | None = None):
    """pick_probed over the whole curve, in one call or in the given pieces."""
    n = odf.shape[0]
    state = PickState()
    out = []
    bounds = [0, *(chunks or []), n]
    for f0, f1 in itertools.pairwise(bounds):
        out += pick_probed(
            odf, 0, n, f0, f1, last_frame=n - 1, state=state, probe_at=probe_at, **PICK
        )
    return out


@settings(max_examples=200, deadline=None)
@given(curves)
def test_a_probe_that_reads_the_next_frame_picks_what_the_frame_would(odf: np.ndarray) -> None:
    """With the next frame's own strength as the probe, the peaks are pick_peaks' peaks
    with one frame of look-ahead: the rule is the same, only the evidence is earlier."""
    exact = _pick(odf, lambda f: Probe(float(odf[f]), 0.0, np.zeros(1, np.float32)))
    want = _pick_peaks_kernel(odf, 3, 1, 10, 0, 1.0, 3).tolist()
    assert [i for _, i, _, _ in exact] == want
    assert all(decided == i for _, i, _, decided in exact)


@settings(max_examples=200, deadline=None)
@given(curves)
def test_a_probe_that_always_sees_a_rise_delays_peaks_and_loses_none(odf: np.ndarray) -> None:
    """A wrong probe (it always reads higher) never loses a peak whose next frame is lower:
    each is taken one frame later, at the same position the frame itself gives."""
    wrong = _pick(odf, lambda f: Probe(float("inf"), 0.0, np.zeros(1, np.float32)))
    exact = _pick(odf, lambda f: Probe(float(odf[f]), 0.0, np.zeros(1, np.float32)))
    # the last frame has no probe: it is taken at once either way
    n = odf.shape[0]
    assert [(i, pos) for pos, i, _, _ in wrong] == [(i, pos) for pos, i, _, _ in exact]
    assert all(decided == (i if i == n - 1 else i + 1) for _, i, _, decided in wrong)


@settings(max_examples=100, deadline=None)
@given(curves, st.lists(st.integers(1, 59), max_size=5))
def test_pieces_pick_what_one_call_picks(odf: np.ndarray, cuts: list[int]) -> None:
    """The stream calls pick_probed on pieces of the curve as frames become decidable;
    the state carried between calls (the last peak, a candidate awaiting its next frame)
    makes the pieces give what one call gives."""
    n = odf.shape[0]
    cuts = sorted({c for c in cuts if 0 < c < n})

    def half_wrong(f: int) -> Probe:  # wrong on every other frame
        return Probe(float(odf[f]) + (100.0 if f % 2 else 0.0), 0.0, np.zeros(1, np.float32))

    assert _pick(odf, half_wrong, cuts) == _pick(odf, half_wrong)


def _tone(sr: int, seconds: float, onset_s: float | None = None) -> np.ndarray:
    t = np.arange(round(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * 440.0 * t)
    if onset_s is not None:
        y = np.where(t >= onset_s, y, 0.0)
    return y.astype(np.float32)


def _probe_of(y: np.ndarray, sr: int, frame: int) -> tuple[Probe, float]:
    """The probe of ``frame`` (judging frame - 1) and that frame's real onset strength."""
    params = SpectrogramParams(target_sr=sr)
    geom = frame_geometry(sr, params)
    S = log_spectrogram(y, geom, params)
    lag = 2
    prober = Prober.of(geom, params, stream_params().onset)  # 8 ms early, 4 ms fade
    assert prober is not None
    pr = prober.probe(y, 0, y.shape[0], frame, S[frame - 1], S[frame - 1 - lag], S[frame - lag])
    real = float(np.maximum(S[frame] - S[frame - lag], 0.0).sum())
    return pr, real


def test_a_steady_tone_probes_as_no_rise() -> None:
    """On a steady tone the estimate of the next frame is close to the frame itself: its
    onset strength is near 0 like the frame's own, far below the picking threshold (3)."""
    pr, real = _probe_of(_tone(16000, 1.0), 16000, 50)
    assert real < 0.1
    assert pr.strength < 0.3


def test_a_probe_sees_a_rise_and_its_size() -> None:
    """A tone starting inside the probed frame reads as a rise of the frame's size (the
    truncation's bias cancels in the difference of two truncated views)."""
    sr = 16000
    y = _tone(sr, 1.0, onset_s=0.495)  # frame 50 is centred at 0.5 s
    pr, real = _probe_of(y, sr, 50)
    assert real > 5.0
    assert pr.strength == pytest.approx(real, rel=0.35)


def test_probe_sees_the_frames_spectra_difference() -> None:
    """probe(): frame i's spectrum moved by the truncated views' change."""
    S_i = np.array([1.0, 2.0, 3.0], np.float32)
    est_flux = probe(
        np.array([2.0, 2.0, 5.0], np.float32),
        np.array([1.0, 2.0, 4.0], np.float32),
        S_i,
        np.zeros(3, np.float32),
        np.full(3, 2.5, np.float32),
    )
    # estimate = S_i + (P_next - P_i) = [2, 2, 4]; flux against 2.5 = [0, 0, 1.5]
    assert est_flux.strength == pytest.approx(1.5)
    np.testing.assert_allclose(est_flux.flux, [0.0, 0.0, 1.5])
    # held: min(S_i, estimate) = [1, 2, 3] against 0
    assert est_flux.held == pytest.approx(6.0)


def test_a_probe_past_the_end_has_no_strength() -> None:
    """A probe reaching past the signal's end sees the cut, not an onset: strength 0. With
    more signal after it (silence), the same frame reads as the rise of the tone."""
    sr = 16000
    y = _tone(sr, 0.5, onset_s=0.45)
    geom = frame_geometry(sr, SpectrogramParams(target_sr=sr))
    cut = round(0.008 * sr)
    frame = (y.shape[0] - geom.n_fft // 2 + cut) // geom.hop_length + 1  # reaches past the end
    assert frame * geom.hop_length - geom.n_fft // 2 + geom.n_fft - cut > y.shape[0]
    ended, _ = _probe_of(y, sr, frame)
    padded, _ = _probe_of(np.concatenate([y, np.zeros(geom.n_fft, np.float32)]), sr, frame)
    assert ended.strength == 0.0
    assert ended.flux.sum() > 0.0  # its flux is there (the metronome's vector), not counted
    assert padded.strength == pytest.approx(float(padded.flux.sum(dtype=np.float64)))
    assert padded.strength > 3.0


def test_probe_parameters_are_checked() -> None:
    onset = stream_params().onset
    check_probe_params(onset, 100.0)
    from dataclasses import replace

    with pytest.raises(ParameterError, match="probe_s must be between 0 and one hop"):
        check_probe_params(replace(onset, probe_s=0.02), 100.0)
    with pytest.raises(ParameterError, match="needs post_max_s of one hop"):
        check_probe_params(replace(onset, post_max_s=0.03), 100.0)
    with pytest.raises(ParameterError, match="needs post_max_s of one hop"):
        check_probe_params(replace(onset, hold_frames=3), 100.0)
