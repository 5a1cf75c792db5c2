"""Tests of audio_engine/analysis.py: analyze() on known-answer synthetic recordings."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from audio_engine.analysis import analyze, tempo_curve_from_beats
from audio_engine.errors import ParameterError
from audio_engine.params import AnalysisParams
from audio_engine.result import AnalysisResult
from tests._support.signals import click_track, grid_times, tone_notes
from tests.audio_engine._support.matching import match_events
from tests.audio_engine._support.stream import metronome_take
from tests.audio_engine._support.synth import (
    accented_melody,
    clicks_at,
    ramp_times,
    soft_tones,
    step_times,
)


def _assert_valid(r: AnalysisResult, duration_s: float) -> None:
    """Every time sorted, finite and inside the recording; tempo and confidence sane."""
    assert r.duration_s == pytest.approx(duration_s)
    for times in (r.onsets, r.beats):
        assert times.ndim == 1
        assert np.all(np.isfinite(times))
        assert np.all(np.diff(times) > 0)
        assert np.all((times >= 0) & (times <= r.duration_s))
    assert r.tempo_bpm is None or (math.isfinite(r.tempo_bpm) and r.tempo_bpm > 0)
    assert 0.0 <= r.tempo_confidence <= 1.0
    assert r.tempo_curve.ndim == 2 and r.tempo_curve.shape[1] == 2
    assert np.all(np.isfinite(r.tempo_curve))


def _tone_times(
    bpm: float, duration_s: float, *, jitter_ms: float = 0.0, seed: int = 0
) -> np.ndarray:
    """Grid times that leave 1.6 s at the end, so that every note has decayed before it."""
    times = grid_times(bpm, duration_s, jitter_ms=jitter_ms, seed=seed)
    return times[times < duration_s - 1.6]


# --- known answers -------------------------------------------------------------------------


@pytest.mark.parametrize("sr", [8000, 22050])
@pytest.mark.parametrize("bpm", [60.0, 90.0, 120.0, 150.0])
def test_click_tracks(bpm: float, sr: int) -> None:
    y, clicks = click_track(bpm, 10.0, sr, jitter_ms=10.0, seed=int(bpm))
    r = analyze(y, sr)
    _assert_valid(r, 10.0)
    assert r.tempo_bpm == pytest.approx(bpm, rel=0.04)
    onsets = match_events(r.onsets, clicks, 0.02)
    assert onsets.f_measure >= 0.95
    beats = match_events(r.beats, clicks, 0.07)  # the clicks are the beats: same level
    assert beats.f_measure >= 0.9
    assert r.tempo_confidence > 0.2
    # the tempo curve sits on the tempo
    assert np.median(r.tempo_curve[:, 1]) == pytest.approx(bpm, rel=0.04)


@pytest.mark.parametrize("attack_s", [0.04, 0.05, 0.06])
def test_soft_attack_tones_are_detected(attack_s: float) -> None:
    """Raised-cosine attacks of 40-60 ms (a bowed note), detached, at 100 BPM."""
    sr = 16000
    times = _tone_times(100.0, 10.0, jitter_ms=10.0, seed=1)
    y = soft_tones(times, 10.0, sr, attack_s=attack_s, note_s=0.5, release_s=0.1)
    r = analyze(y, sr)
    _assert_valid(r, 10.0)
    m = match_events(r.onsets, times, 0.05)
    assert m.recall >= 0.9
    assert m.precision >= 0.9
    assert r.tempo_bpm == pytest.approx(100.0, rel=0.04)


def test_slow_attacks_are_placed_at_their_rise() -> None:
    """Raised-cosine attacks of 150 ms under noise 30 dB down: the onset strength peaks at
    the steepest point of the attack, 21 ms after the note begins (median); the onsets are
    reported at the start of the rise, 14 ms after it."""
    sr = 16000
    times = _tone_times(100.0, 10.0, jitter_ms=10.0, seed=1)
    y = soft_tones(times, 10.0, sr, attack_s=0.15, note_s=0.5, release_s=0.1)
    rms = float(np.sqrt(np.mean(y**2)))
    noise = np.random.default_rng(0).normal(0.0, rms / 10 ** (30 / 20), y.size)
    r = analyze((y + noise).astype(np.float32), sr)
    m = match_events(r.onsets, times, 0.05)
    assert m.recall == 1.0
    errors_ms = [1000 * np.min(np.abs(r.onsets - t)) for t in times]
    assert float(np.median(errors_ms)) <= 17.0


@pytest.mark.parametrize("sr", [16000, 22050, 44100])
def test_legato_re_articulations_of_one_pitch_are_notes(sr: int) -> None:
    """Sixteen notes of one pitch every 300 ms, each with an 80 ms attack beginning 25 ms
    before the last one has died away (a bowed or blown note re-articulated legato): the
    flux over two frames misses 3-5 of them (``slow_lag_frames=0``); the slow detector
    finds all sixteen, with at most one onset more."""
    times = 0.5 + 0.3 * np.arange(16)
    y = soft_tones(times, 6.0, sr, attack_s=0.08, note_s=0.325, release_s=0.05,
                   freqs_hz=(220.0,), seed=1)
    y = (y + np.random.default_rng(2).normal(0.0, 0.003, y.size)).astype(np.float32)
    r = analyze(y, sr)
    m = match_events(r.onsets, times, 0.05)
    assert m.recall == 1.0
    assert r.onsets.size <= 17
    p = AnalysisParams()
    main_only = analyze(y, sr, params=replace(p, onset=replace(p.onset, slow_lag_frames=0)))
    assert match_events(main_only.onsets, times, 0.05).recall <= 13 / 16


@pytest.mark.parametrize(("attack_s", "jitter_ms"), [(0.04, 3.0), (0.05, 5.0)])
def test_a_steady_player_without_metronome_keeps_every_note(
    attack_s: float, jitter_ms: float
) -> None:
    sr = 16000
    times = _tone_times(100.0, 10.0, jitter_ms=jitter_ms, seed=1)
    r = analyze(soft_tones(times, 10.0, sr, attack_s=attack_s, note_s=0.5, release_s=0.1), sr)
    assert match_events(r.onsets, times, 0.05).recall >= 0.9
    assert r.tempo_bpm is not None


@pytest.mark.parametrize(
    ("bpm", "notes_per_beat"), [(48.0, 2), (45.0, 2), (52.0, 2), (55.0, 4)]
)
def test_a_slow_beat_played_louder_is_the_beat(bpm: float, notes_per_beat: int) -> None:
    """Slow practice in eighths or sixteenths, the beat's note played louder (by 5.6 dB):
    the tempo is the slow beat, not the notes' rate, which the tempo prior alone prefers
    (and which the flux of one instrument's notes does not tell apart)."""
    sr = 16000
    y, beats_s = accented_melody(bpm, notes_per_beat, 1.9, sr=sr)
    r = analyze(y, sr)
    assert r.tempo_bpm == pytest.approx(bpm, rel=0.04)
    assert match_events(r.beats, beats_s, 0.07).f_measure >= 0.9


def test_notes_of_one_loudness_keep_the_tempo_at_the_notes_rate() -> None:
    """The same melody without the accent: nothing says the notes go in pairs, and the
    prior keeps the notes' rate (96 BPM)."""
    sr = 16000
    y, _ = accented_melody(48.0, 2, 1.0, sr=sr)
    assert analyze(y, sr).tempo_bpm == pytest.approx(96.0, rel=0.04)


@pytest.mark.parametrize(
    ("times", "duration_s", "final_bpm"),
    [
        pytest.param(ramp_times(100.0, 0.10, 14.0), 14.0, 110.0, id="rush-10pct"),
        pytest.param(step_times(100.0, 115.0, 7.0, 14.0), 14.0, 115.0, id="step-100-115"),
    ],
)
def test_beats_follow_tempo_changes(times: np.ndarray, duration_s: float, final_bpm: float) -> None:
    sr = 8000
    r = analyze(clicks_at(times, duration_s, sr), sr)
    m = match_events(r.beats, times, 0.07)
    assert m.recall >= 0.9 and m.precision >= 0.9
    late = r.tempo_curve[r.tempo_curve[:, 0] > duration_s - 3.0, 1]
    assert np.median(late) == pytest.approx(final_bpm, rel=0.04)


def _slow_attack_take(sr: int) -> NDArray[np.float32]:
    """Notes at 100 BPM whose attacks take 250 ms: the onset strength peaks 40-60 ms after
    a note starts, so a beat placed at the peak would miss the note start."""
    times = grid_times(100.0, 10.0, jitter_ms=10.0, seed=4)[:-2]
    y = soft_tones(times, 10.0, sr, attack_s=0.25, note_s=0.5, release_s=0.1)
    noise = np.random.default_rng(5).normal(0.0, 0.01 * float(np.abs(y).max()), y.size)
    return (y + noise).astype(np.float32)


@pytest.mark.parametrize("sr", [22050, 44100])
def test_beats_of_slow_attacks_sit_on_the_note_starts(sr: int) -> None:
    """Every beat among the notes is a note's start (an onset), not the attack's steepest
    point; snapping beats to onsets within 35 ms instead leaves two beats 40-57 ms late."""
    r = analyze(_slow_attack_take(sr), sr)
    assert r.onsets.size >= 14
    inside = r.beats[(r.beats >= r.onsets[0]) & (r.beats <= r.onsets[-1])]
    assert inside.size >= 12
    gaps_ms = [1000.0 * float(np.min(np.abs(r.onsets - b))) for b in inside]
    assert max(gaps_ms) < 1e-6, gaps_ms


def test_tempo_curve_from_beats_known_answer() -> None:
    beats = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.4, 2.8, 3.2])
    curve = tempo_curve_from_beats(beats)
    np.testing.assert_allclose(curve[:, 0], beats[:-1] + np.diff(beats) / 2)
    np.testing.assert_allclose(curve[:, 1], [120, 120, 120, 120, 150, 150, 150])
    assert tempo_curve_from_beats(beats[:2]).shape == (0, 2)


# --- invariances ---------------------------------------------------------------------------


def _mixed_take(sr: int) -> tuple[np.ndarray, np.ndarray]:
    """Tones with 10 ms jitter at 100 BPM, plus a quiet click on each."""
    times = _tone_times(100.0, 7.0, jitter_ms=10.0, seed=3)
    y = tone_notes(times, 7.0, sr) + 0.3 * clicks_at(times, 7.0, sr)
    return y.astype(np.float32), times


@pytest.mark.parametrize("sr", [8000, 16000, 22050, 48000, 96000])
def test_any_sample_rate_gives_the_same_onsets(sr: int) -> None:
    ref_y, truth = _mixed_take(44100)
    ref = analyze(ref_y, 44100)
    y, _ = _mixed_take(sr)
    r = analyze(y, sr)
    assert match_events(ref.onsets, truth, 0.02).f_measure == 1.0
    assert r.onsets.size == ref.onsets.size
    np.testing.assert_allclose(r.onsets, ref.onsets, atol=0.010)
    assert r.tempo_bpm == pytest.approx(ref.tempo_bpm, rel=0.01)
    assert r.sr == sr


def test_stereo_equals_mono() -> None:
    sr = 16000
    y, _ = _mixed_take(sr)
    mono = analyze(y, sr)
    same = analyze(np.stack([y, y], axis=1), sr)
    np.testing.assert_array_equal(same.onsets, mono.onsets)
    np.testing.assert_array_equal(same.beats, mono.beats)
    assert same.tempo_bpm == mono.tempo_bpm
    # two different channels are their average
    other = 0.5 * np.roll(y, 3).astype(np.float32)
    split = analyze(np.stack([y, other], axis=1), sr)
    down = analyze(((y + other) / np.float32(2)).astype(np.float32), sr)
    np.testing.assert_array_equal(split.onsets, down.onsets)
    np.testing.assert_array_equal(split.beats, down.beats)


def test_int16_equals_float() -> None:
    sr = 16000
    y, _ = _mixed_take(sr)
    pcm = np.round(y * 32767).astype(np.int16)
    a = analyze(pcm, sr)
    b = analyze(pcm.astype(np.float32) / np.float32(32768), sr)
    np.testing.assert_array_equal(a.onsets, b.onsets)
    np.testing.assert_array_equal(a.beats, b.beats)
    assert a.tempo_bpm == b.tempo_bpm
    # and to float64 / int32 of the same samples
    c = analyze(pcm.astype(np.int32) << 16, sr)
    np.testing.assert_array_equal(c.onsets, a.onsets)


def test_results_do_not_depend_on_the_target() -> None:
    sr = 16000
    y, _ = _mixed_take(sr)
    plain = analyze(y, sr)
    assert plain.timing is None
    for kwargs in (
        {"target_bpm": 100.0},
        {"target_bpm": 60.0, "grid_start_s": 0.25, "subdivision": 2},
        {"target_bpm": 137.0, "latency_ms": 40.0, "subdivision": 3},
    ):
        r = analyze(y, sr, **kwargs)  # type: ignore[arg-type]
        assert r.timing is not None
        assert r.timing.target_bpm == kwargs["target_bpm"]
        np.testing.assert_array_equal(r.onsets, plain.onsets)
        np.testing.assert_array_equal(r.beats, plain.beats)
        np.testing.assert_array_equal(r.tempo_curve, plain.tempo_curve)
        assert r.tempo_bpm == plain.tempo_bpm
        assert r.tempo_confidence == plain.tempo_confidence


# --- degenerate recordings -----------------------------------------------------------------


@pytest.mark.nojit
def test_tiny_click_pair() -> None:
    sr = 8000
    y = clicks_at([0.1, 0.3], 0.45, sr)
    r = analyze(y, sr)
    _assert_valid(r, 0.45)
    assert match_events(r.onsets, [0.1, 0.3], 0.02).f_measure == 1.0
    assert r.tempo_bpm is None  # too few onsets for a tempo


@pytest.mark.nojit
@pytest.mark.parametrize("n", [0, 1, 100, 1600])
def test_very_short_inputs(n: int) -> None:
    sr = 8000
    y = np.random.default_rng(n).normal(0, 0.3, n).astype(np.float32)
    r = analyze(y, sr)
    _assert_valid(r, n / sr)
    assert r.tempo_bpm is None
    assert r.beats.size == 0
    assert r.onsets.size <= 1
    assert r.sr == sr


@pytest.mark.parametrize("sr", [8000, 44100])
@pytest.mark.parametrize("duration_s", [0.5, 3.0])
def test_silence(sr: int, duration_s: float) -> None:
    r = analyze(np.zeros(round(duration_s * sr), dtype=np.int16), sr)
    _assert_valid(r, duration_s)
    assert r.tempo_bpm is None
    assert r.tempo_confidence == 0.0
    assert r.beats.size == 0 and r.onsets.size == 0 and r.tempo_curve.shape == (0, 2)


def test_silence_with_a_target_has_an_empty_report() -> None:
    r = analyze(np.zeros(16000, dtype=np.float32), 8000, target_bpm=90.0)
    assert r.timing is not None
    assert r.timing.notes == [] and r.timing.accuracy_pct is None


def test_dc_offset_is_harmless_for_tempo_and_beats() -> None:
    sr = 8000
    y, clicks = click_track(120.0, 6.0, sr, jitter_ms=10.0)
    for dc in (0.05, -0.2):
        r = analyze(y + np.float32(dc), sr)
        _assert_valid(r, 6.0)
        assert r.tempo_bpm == pytest.approx(120.0, rel=0.04)
        assert match_events(r.onsets, clicks, 0.02).recall == 1.0


@pytest.mark.parametrize("dc", [0.01, 0.1])
def test_dc_offset_alone_is_silence(dc: float) -> None:
    r = analyze(np.full(3 * 8000, dc, dtype=np.float32), 8000)
    assert r.onsets.size == 0


def test_dc_offset_does_not_add_onsets() -> None:
    sr = 8000
    y, clicks = click_track(120.0, 6.0, sr, jitter_ms=10.0)
    r = analyze(y + np.float32(0.05), sr)
    assert match_events(r.onsets, clicks, 0.02).precision == 1.0


@pytest.mark.parametrize("sr", [8000, 16000])
def test_a_recording_cut_mid_note_has_no_onset_at_its_end(sr: int) -> None:
    times = np.arange(0.5, 3.0, 0.6)
    y = soft_tones(times, 3.1, sr, attack_s=0.01, note_s=0.55, release_s=0.1)  # last note cut
    r = analyze(y, sr)
    assert match_events(r.onsets, times, 0.05).precision == 1.0


def _on_room_noise(y: NDArray[np.float32], noise_dbfs: float, seed: int = 0) -> NDArray[np.float32]:
    noise = np.random.default_rng(seed).normal(0.0, 10.0 ** (noise_dbfs / 20.0), y.size)
    return (y + noise).astype(np.float32)


@pytest.mark.parametrize("sr", [8000, 22050, 44100])
@pytest.mark.parametrize("noise_dbfs", [-55.0, -40.0])
def test_a_recording_that_starts_on_room_noise_has_no_note_at_its_start(
    sr: int, noise_dbfs: float
) -> None:
    # a microphone records the room before the student plays: the step from the zeros
    # before the first sample to that noise is the cut, not a note (it used to be reported
    # at 7 ms, the first note of every report)
    times = np.arange(0.5, 3.0, 0.5)
    y = _on_room_noise(tone_notes(times, 3.2, sr), noise_dbfs)
    r = analyze(y, sr, target_bpm=120.0, grid_start_s=0.5)
    assert match_events(r.onsets, times, 0.05).f_measure == 1.0
    assert r.timing is not None
    assert min(t for t, _ in r.timing.notes) > 0.45


@pytest.mark.parametrize("sr", [8000, 22050])
def test_a_note_soon_after_the_start_is_still_a_note(sr: int) -> None:
    times = [0.08, 0.6, 1.1]
    y = _on_room_noise(clicks_at(times, 1.5, sr), -50.0, seed=1)
    assert match_events(analyze(y, sr).onsets, times, 0.02).f_measure == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.int16])
def test_hard_clipped_loud_clicks(dtype: type) -> None:
    sr = 16000
    y, clicks = click_track(110.0, 8.0, sr, jitter_ms=5.0)
    clipped = np.clip(20.0 * y, -1.0, 1.0)
    x = (clipped * 32767).astype(np.int16) if dtype is np.int16 else clipped.astype(np.float32)
    r = analyze(x, sr)
    ref = analyze(y, sr)
    _assert_valid(r, 8.0)
    assert match_events(r.onsets, clicks, 0.02).f_measure >= 0.95
    assert r.tempo_bpm == pytest.approx(ref.tempo_bpm, rel=0.01)
    assert match_events(r.beats, ref.beats, 0.02).f_measure == 1.0


# --- invalid input -------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(bad: float) -> None:
    y = np.zeros((8000, 2), dtype=np.float64)
    y[1234, 1] = bad
    with pytest.raises(ParameterError, match="index 1234"):
        analyze(y, 8000)


@pytest.mark.parametrize("sr", [7999, 96001, 44100.5, 0, float("nan")])
def test_bad_sample_rates(sr: float) -> None:
    with pytest.raises(ParameterError, match="sample rate"):
        analyze(np.zeros(100, dtype=np.float32), sr)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"target_bpm": 0.0}, "target_bpm"),
        ({"target_bpm": -1.0}, "target_bpm"),
        ({"target_bpm": float("nan")}, "target_bpm"),
        ({"target_bpm": float("inf")}, "target_bpm"),
        ({"target_bpm": 1000.0}, "target_bpm"),
        ({"target_bpm": 100.0, "subdivision": 5}, "subdivision"),
        ({"target_bpm": 100.0, "subdivision": 0}, "subdivision"),
        ({"target_bpm": 100.0, "latency_ms": 5000.0}, "latency_ms"),
        ({"target_bpm": 100.0, "latency_ms": float("nan")}, "latency_ms"),
        ({"target_bpm": 100.0, "grid_start_s": -1.0}, "grid_start_s"),
        ({"target_bpm": 100.0, "grid_start_s": float("inf")}, "grid_start_s"),
    ],
)
def test_target_parameters_are_validated(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(ParameterError, match=name) as info:
        analyze(np.zeros(8000, dtype=np.float32), 8000, **kwargs)  # type: ignore[arg-type]
    assert repr(kwargs[name]) in str(info.value)


# --- metronome bleed -----------------------------------------------------------------------


@pytest.mark.parametrize("sr", [16000, 22050])
def test_metronome_bleed_is_not_counted_as_notes(sr: int) -> None:
    """A quiet beep on the 100 BPM target grid under a louder tone that drags by 15 %: the
    beep's flux is shaped like the tone's (no signature tells it), but its machine timing
    and its short sound do. The timing report's notes are the tone's, and the clicks are
    reported as removed where the detector hears them as onsets (at 16 kHz its hold gate
    lets few through at all; at 22.05 kHz most)."""
    duration_s = 14.0
    clicks, _ = click_track(100.0, duration_s, sr, amplitude=0.1)
    played = ramp_times(100.0, -0.15, duration_s)
    played = played[played < duration_s - 1.6]
    y = clicks + tone_notes(played, duration_s, sr, velocities=[0.6])
    r = analyze(y, sr, target_bpm=100.0, grid_start_s=0.5, subdivision=1)
    assert r.timing is not None
    notes = np.array([t for t, _ in r.timing.notes])
    m = match_events(notes, played, 0.05)
    assert abs(notes.size - played.size) <= 1
    assert m.recall >= 0.9
    during = notes[notes < played[-1] + 0.1]
    assert match_events(during, played, 0.05).precision == 1.0
    # told no target, the onsets are the tone's too: the metronome is found blind
    onsets = analyze(y, sr).onsets
    assert match_events(onsets[onsets < played[-1] + 0.1], played, 0.05).precision == 1.0
    if sr == 22050:  # where the detector hears the clicks as onsets, they are counted
        assert r.timing.metronome_clicks_removed >= 8


@pytest.mark.parametrize("tail_s", [0.0, 3.0])
def test_a_recording_that_runs_on_after_the_playing_keeps_the_clicks_out(tail_s: float) -> None:
    """The student and the metronome stop and the recording runs on, 3 s of room noise:
    its silent grid lines passed for the click alone, no click signature was found, and the
    5 clicks sounding alone became perfectly timed notes (21 for 16 played). As without
    the tail, the report's notes are the student's."""
    sr = 22050
    take = metronome_take(sr, 12.0, seed=5)
    tail = np.random.default_rng(1).normal(0.0, 1e-4, round(tail_s * sr)).astype(np.float32)
    r = analyze(np.concatenate([take.samples, tail]), sr, target_bpm=120.0, grid_start_s=0.5)
    assert r.timing is not None
    notes = np.array([t for t, _ in r.timing.notes])
    assert match_events(notes, take.notes_s, 0.03).recall == 1.0
    assert notes.size == take.notes_s.size
    assert r.timing.metronome_clicks_removed >= 1


def test_a_take_without_metronome_keeps_its_notes_in_the_report() -> None:
    sr = 16000
    played = _tone_times(100.0, 14.0, jitter_ms=10.0, seed=2)
    r = analyze(tone_notes(played, 14.0, sr), sr, target_bpm=100.0, grid_start_s=0.5)
    assert r.timing is not None
    assert r.timing.metronome_clicks_removed == 0
    assert len(r.timing.notes) == played.size


# --- robustness ----------------------------------------------------------------------------


@st.composite
def _recordings(draw: st.DrawFn) -> np.ndarray:
    n = draw(st.integers(0, 16000))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = 10.0 ** draw(st.floats(-6.0, 0.5))
    kind = draw(st.sampled_from(["noise", "impulses", "tone", "dc+noise", "int16"]))
    if kind == "impulses":
        y = np.zeros(n)
        if n:
            y[rng.integers(0, n, size=draw(st.integers(0, 20)))] = rng.uniform(-1, 1, 1)[0]
    elif kind == "tone":
        y = np.sin(np.arange(n) * rng.uniform(0.01, 3.0)) * (rng.random(n) < rng.uniform(0.1, 1.0))
    elif kind == "dc+noise":
        y = rng.uniform(-1, 1) + rng.normal(0, 0.1, n)
    else:
        y = rng.normal(0, 1, n)
    y = scale * y
    out: np.ndarray
    if kind == "int16":
        out = np.clip(np.round(y * 32767), -32768, 32767).astype(np.int16)
    else:
        out = y.astype(draw(st.sampled_from([np.float32, np.float64])))
    return out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(y=_recordings(), target=st.none() | st.floats(20.0, 400.0))
def test_random_short_recordings_give_valid_results(y: np.ndarray, target: float | None) -> None:
    sr = 8000
    try:
        r = analyze(y, sr, target_bpm=target)
    except ParameterError:  # the only error allowed; finite samples should not even raise it
        assert not np.all(np.isfinite(y))
        return
    _assert_valid(r, y.shape[0] / sr)
    if target is not None:
        assert r.timing is not None
        times = [t for t, _ in r.timing.notes]
        assert times == sorted(times)
        assert all(0.0 <= t <= r.duration_s for t in times)


# --- files: decoded straight to the working rate -------------------------------------------


@pytest.mark.parametrize(
    ("name", "sr", "channels"), [("take.flac", 44100, 2), ("hi.wav", 96000, 1)]
)
def test_a_file_is_analysed_as_its_decoded_samples_are(
    tmp_path: Path, name: str, sr: int, channels: int
) -> None:
    import soundfile as sf

    from audio_engine.analysis import analyze_file
    from audio_engine.io import load_audio

    y = tone_notes(grid_times(96.0, 8.0, jitter_ms=8.0, seed=3), 8.0, sr)
    x = np.stack([y * (0.5 + 0.2 * c) for c in range(channels)], axis=1)
    path = tmp_path / name
    sf.write(path, x.astype(np.float32), sr)
    told: dict[str, Any] = dict(target_bpm=96.0, grid_start_s=0.5, latency_ms=3.0)

    got = analyze_file(path, **told)
    samples, file_sr = load_audio(path, mono=True)
    want = analyze(samples, file_sr, **told)

    assert got.onsets.size >= 10 and got.timing is not None
    assert got.to_dict() == want.to_dict()  # every number the same


def test_a_files_arguments_are_checked_before_it_is_decoded(tmp_path: Path) -> None:
    from audio_engine.analysis import analyze_file

    with pytest.raises(ParameterError, match="target_bpm"):
        analyze_file(tmp_path / "not-there.flac", target_bpm=1000.0)


def test_a_signal_prepared_for_another_working_rate_is_refused() -> None:
    from audio_engine.analysis import analyze_prepared
    from audio_engine.dsp.signal import PreparedSignal, prepare_signal

    y, _ = click_track(100.0, 3.0, 44100)
    x, work_sr = prepare_signal(y, 44100, target_sr=8000)  # factor 5: 8820 Hz
    with pytest.raises(ParameterError, match="prepared at 8820 Hz; these parameters work at 22050"):
        analyze_prepared(PreparedSignal(x, work_sr, 44100, y.size))
