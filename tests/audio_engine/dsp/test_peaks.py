"""Tests of audio_engine/dsp/peaks.py: peak picking, parabolic refinement and the starts of
slow rises, the swells of one attack."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from audio_engine.dsp.peaks import (
    _distinct_peaks_kernel,
    _pick_peaks_kernel,
    _refine_kernel,
    _rise_starts_kernel,
    distinct_peaks,
    held_peaks,
    pick_peaks,
    rise_starts,
    slow_peaks,
    snap_to_main,
)


def _pick_peaks_reference(
    odf: list[float],
    pre_max: int,
    post_max: int,
    pre_avg: int,
    post_avg: int,
    delta: float,
    combine: int,
) -> list[int]:
    """The docstring, literally: a positive maximum of its window (the earliest of equal
    values wins), at least ``delta`` above the window mean, more than ``combine`` frames
    after the previous accepted peak."""
    n = len(odf)
    peaks: list[int] = []
    for i, v in enumerate(odf):
        if v <= 0:
            continue
        before = odf[max(0, i - pre_max) : i]
        after = odf[i + 1 : min(n, i + post_max + 1)]
        if any(x >= v for x in before) or any(x > v for x in after):
            continue
        window = odf[max(0, i - pre_avg) : min(n, i + post_avg + 1)]
        total = 0.0
        for x in window:  # the kernel's summation order, so ties at the threshold agree
            total += x
        if v < total / len(window) + delta:
            continue
        if peaks and i - peaks[-1] <= combine:
            continue
        peaks.append(i)
    return peaks


windows = st.integers(min_value=0, max_value=6)
curves = st.one_of(
    arrays(np.float64, st.integers(0, 120), elements=st.floats(-1.0, 20.0, width=32)),
    # small integers: plateaus and ties
    arrays(np.float64, st.integers(0, 120), elements=st.integers(0, 3).map(float)),
)


@pytest.mark.nojit
@settings(max_examples=300, deadline=None)
@given(
    odf=curves,
    pre_max=windows.map(lambda w: max(1, w)),
    post_max=windows,
    pre_avg=windows.map(lambda w: max(1, w)),
    post_avg=windows,
    delta=st.sampled_from([0.0, 0.25, 1.0, 4.0]),
    combine=st.integers(0, 5),
)
def test_pick_peaks_kernel_matches_reference(
    odf: np.ndarray,
    pre_max: int,
    post_max: int,
    pre_avg: int,
    post_avg: int,
    delta: float,
    combine: int,
) -> None:
    got = _pick_peaks_kernel(odf, pre_max, post_max, pre_avg, post_avg, delta, combine)
    want = _pick_peaks_reference(odf.tolist(), pre_max, post_max, pre_avg, post_avg, delta, combine)
    assert got.dtype == np.int64
    assert got.tolist() == want


@pytest.mark.nojit
def test_known_peaks() -> None:
    odf = np.array([0, 1, 5, 1, 0, 0, 0, 2, 2, 0, 0, 9, 8, 0, 0, 0, 0, 0.5, 0], dtype=np.float64)
    # the plateau 2, 2 reports its first frame; 9 beats its neighbour 8; 0.5 is too small
    assert _pick_peaks_kernel(odf, 2, 2, 3, 1, 1.0, 0).tolist() == [2, 7, 11]
    # combining within 5 frames drops the plateau peak after 2
    assert _pick_peaks_kernel(odf, 2, 2, 3, 1, 1.0, 5).tolist() == [2, 11]
    # a high threshold keeps only the strongest (9 >= mean(2, 0, 0, 9, 8) + 5)
    assert _pick_peaks_kernel(odf, 2, 2, 3, 1, 5.0, 0).tolist() == [11]


@pytest.mark.nojit
@pytest.mark.parametrize("x0", [10.0, 10.2, 10.5, 9.7, 9.51])
def test_refine_finds_the_vertex_of_a_parabola(x0: float) -> None:
    x = np.arange(21, dtype=np.float64)
    odf = 100.0 - 3.0 * (x - x0) ** 2
    peak = np.array([int(np.argmax(odf))], dtype=np.int64)
    assert _refine_kernel(odf, peak)[0] == pytest.approx(x0, abs=1e-9)


@pytest.mark.nojit
def test_refine_keeps_edges_and_flat_tops() -> None:
    odf = np.array([5.0, 1.0, 2.0, 2.0, 2.0, 1.0, 7.0])
    got = _refine_kernel(odf, np.array([0, 3, 6], dtype=np.int64))
    np.testing.assert_array_equal(got, [0.0, 3.0, 6.0])  # no curvature: no shift
    # the shift is clamped to half a frame
    odf = np.array([0.0, 10.0, 10.0 - 1e-12, 0.0])
    assert abs(_refine_kernel(odf, np.array([1], dtype=np.int64))[0] - 1.0) <= 0.5


@pytest.mark.nojit
def test_pick_peaks_refines_and_accepts_lists() -> None:
    odf = [0.0, 0.0, 3.0, 10.0, 7.0, 0.0, 0.0, 0.0]
    got = pick_peaks(odf, pre_max=2, post_max=2, pre_avg=3, post_avg=1, delta=1.0, combine=1)  # type: ignore[arg-type]
    assert got.shape == (1,)
    assert 3.0 < got[0] < 3.5  # pulled towards the larger neighbour (7 > 3)
    assert got[0] == pytest.approx(3 + 0.5 * (3 - 7) / (3 - 20 + 7))
    empty = pick_peaks(
        np.zeros(0), pre_max=1, post_max=1, pre_avg=1, post_avg=1, delta=0, combine=0
    )
    assert empty.shape == (0,)


def test_held_peaks_keeps_peaks_whose_strength_is_held() -> None:
    odf = np.array([0.0, 10.0, 0.0, 0.0, 10.0, 0.0, 0.0, 8.0])
    held = np.array([3.0, 0.0, 9.0, 0.0, 1.0, 0.0, 0.0, 2.0])
    peaks = np.array([1.2, 3.9, 7.0])  # refined positions round to frames 1, 4 and 7
    # the held strength is the larger of the peak frame and the one before (causal):
    # 3 (frame 0; frame 2 is not looked at), 1, 2
    np.testing.assert_array_equal(held_peaks(odf, held, peaks, 0.2), [True, False, True])
    np.testing.assert_array_equal(held_peaks(odf, held, peaks, 0.1), [True, True, True])
    np.testing.assert_array_equal(held_peaks(odf, held, peaks, 0.3), [True, False, False])
    assert held_peaks(odf, held, np.zeros(0), 0.2).shape == (0,)


# --- the starts of slow rises ---------------------------------------------------------------


def _rise_starts_reference(
    odf: list[float],
    peaks: list[float],
    ratio: float,
    max_frames: int,
    rebound: float,
    lead: float,
) -> list[float]:
    """The docstring, literally, one peak at a time."""
    out = []
    prev = -1
    for p in peaks:
        i = min(len(odf) - 1, max(0, int(np.floor(p + 0.5))))
        lo = max(0, i - max_frames, prev + 1)
        base = min(odf[lo : i + 1])
        level = base + ratio * (odf[i] - base)
        # the rise: frames going back from the peak that stay at or above the level and
        # rise no more than ``rebound`` of the height above the lowest frame passed
        start = i
        for j in range(i - 1, lo - 1, -1):
            if odf[j] < level or odf[j] - min(odf[j + 1 : i + 1]) > rebound * (odf[i] - base):
                break
            start = j
        s = float(start)
        if start > lo and odf[start - 1] < level:  # crossed between start - 1 and start
            s = start - 1 + (level - odf[start - 1]) / (odf[start] - odf[start - 1])
        out.append(min(p, s + lead))
        prev = i
    return out


@pytest.mark.nojit
@settings(max_examples=300, deadline=None)
@given(
    odf=arrays(np.float64, st.integers(1, 80), elements=st.floats(0.0, 20.0, width=32)),
    data=st.data(),
    ratio=st.sampled_from([0.0, 0.15, 0.5, 1.0]),
    max_frames=st.integers(0, 12),
    rebound=st.sampled_from([0.0, 0.3, 1.0]),
    lead=st.sampled_from([0.0, 0.5, 1.75]),
)
def test_rise_starts_kernel_matches_reference(
    odf: np.ndarray,
    data: st.DataObject,
    ratio: float,
    max_frames: int,
    rebound: float,
    lead: float,
) -> None:
    n = odf.shape[0]
    frames = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=8).map(sorted))
    offsets = data.draw(st.lists(st.floats(-0.5, 0.49), min_size=len(frames), max_size=len(frames)))
    peaks = np.clip(np.array(frames, dtype=np.float64) + np.array(offsets), 0, n - 1)
    got = _rise_starts_kernel(odf, peaks, ratio, max_frames, rebound, lead)
    want = _rise_starts_reference(odf.tolist(), peaks.tolist(), ratio, max_frames, rebound, lead)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    assert np.all(got <= peaks)


def test_a_slow_rise_moves_back_to_its_start() -> None:
    """A blown note: the strength creeps up for 8 frames before its steepest point."""
    odf = np.array([0.5, 0.4, 0.6, 2.0, 3.0, 3.5, 4.0, 5.0, 7.0, 9.0, 10.0, 6.0, 1.0])
    got = rise_starts(
        odf, np.array([10.0]), ratio=0.15, max_frames=10, rebound=0.3, lead_frames=1.0
    )
    level = 0.4 + 0.15 * (10.0 - 0.4)  # 1.84: crossed between frames 2 (0.6) and 3 (2.0)
    assert got[0] == pytest.approx(2 + (level - 0.6) / (2.0 - 0.6) + 1.0)
    # never further back than max_frames: the level is then 15 % above the frames 6-10
    got = rise_starts(odf, np.array([10.0]), ratio=0.15, max_frames=4, rebound=0.3, lead_frames=0)
    assert got[0] == pytest.approx(6 + (4.0 + 0.15 * 6.0 - 4.0) / (5.0 - 4.0))


def test_a_sharp_attack_keeps_its_peak() -> None:
    """A click rises within two frames: the start of its rise plus the lead is past the peak."""
    odf = np.array([0.0, 0.0, 0.0, 42.0, 118.0, 93.0, 10.0, 0.0])
    peaks = np.array([4.1])
    got = rise_starts(odf, peaks, ratio=0.15, max_frames=10, rebound=0.3, lead_frames=1.75)
    np.testing.assert_array_equal(got, peaks)


def test_a_rise_stops_at_an_earlier_sound_and_the_previous_peak() -> None:
    """Two hits 30 ms apart (a dip to 23 between 45 and 53): the second's rise starts at the
    dip, not at the first hit; and no rise reaches back past the previous peak."""
    odf = np.array([0.7, 0.7, 10.7, 45.5, 42.8, 23.5, 52.4, 53.3, 10.5, 0.0])
    got = rise_starts(odf, np.array([7.0]), ratio=0.15, max_frames=10, rebound=0.3, lead_frames=0)
    assert got[0] == 5.0
    # without the rebound rule the first hit would be taken for the start of the rise
    got = rise_starts(odf, np.array([7.0]), ratio=0.15, max_frames=10, rebound=1.0, lead_frames=0)
    assert got[0] < 3.0
    got = rise_starts(
        odf, np.array([3.0, 7.0]), ratio=0.15, max_frames=10, rebound=1.0, lead_frames=0
    )
    assert got[1] > 4.0  # the rise is looked for only after the previous peak
    assert rise_starts(
        odf, np.zeros(0), ratio=0.15, max_frames=10, rebound=0.3, lead_frames=0
    ).shape == (0,)


# --- swells of one attack ------------------------------------------------------------------


def _distinct_peaks_reference(
    odf: list[float], peaks: list[float], max_frames: int, dip_ratio: float
) -> list[bool]:
    """The docstring, literally."""
    keep = []
    last = -1  # no kept peak yet
    for p in peaks:
        b = min(len(odf) - 1, max(0, int(np.floor(p + 0.5))))
        near = last >= 0 and b - last <= max_frames
        if near and min(odf[last : b + 1]) >= dip_ratio * min(odf[last], odf[b]):
            keep.append(False)
            continue
        keep.append(True)
        last = b
    return keep


@pytest.mark.nojit
@settings(max_examples=300, deadline=None)
@given(
    odf=arrays(np.float64, st.integers(1, 80), elements=st.floats(0.0, 20.0, width=32)),
    data=st.data(),
    max_frames=st.integers(0, 10),
    dip_ratio=st.sampled_from([0.0, 0.2, 0.5, 1.0]),
)
def test_distinct_peaks_kernel_matches_reference(
    odf: np.ndarray, data: st.DataObject, max_frames: int, dip_ratio: float
) -> None:
    n = odf.shape[0]
    frames = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=8).map(sorted))
    peaks = np.array(frames, dtype=np.float64)
    got = _distinct_peaks_kernel(odf, peaks, max_frames, dip_ratio)
    want = _distinct_peaks_reference(odf.tolist(), peaks.tolist(), max_frames, dip_ratio)
    assert got.tolist() == want


def test_a_swell_of_the_same_attack_is_not_a_new_onset() -> None:
    """A clarinet's breathy start (8.5) and its swell 70 ms later (13.7) with no dip below
    5.9 between them: one note. A flute's chiff (15.3) and its body (9.7) with a dip to 2.6
    (27 % of the body) between them: one note at a dip ratio of 0.2, two at 0.3. A peak
    beyond max_frames is always distinct."""
    clarinet = np.array([1.0, 8.5, 7.8, 5.9, 6.9, 7.2, 9.2, 12.2, 13.7, 10.1, 3.8, 1.5, 0.8])
    got = distinct_peaks(clarinet, np.array([1.0, 8.1]), max_frames=7, dip_ratio=0.2)
    np.testing.assert_array_equal(got, [True, False])
    assert distinct_peaks(clarinet, np.array([1.0, 8.1]), max_frames=6, dip_ratio=0.2).all()
    flute = np.array([0.1, 7.4, 15.3, 7.9, 2.6, 2.7, 5.9, 8.9, 9.7, 8.0, 6.2])
    got = distinct_peaks(flute, np.array([2.0, 8.0]), max_frames=7, dip_ratio=0.2)
    np.testing.assert_array_equal(got, [True, False])
    assert distinct_peaks(flute, np.array([2.0, 8.0]), max_frames=7, dip_ratio=0.3).all()
    assert distinct_peaks(flute, np.zeros(0), max_frames=7, dip_ratio=0.2).shape == (0,)


def _slow(odf: np.ndarray, odf_slow: np.ndarray, main: list[int]) -> list[float]:
    got = slow_peaks(odf, odf_slow, np.array(main, dtype=np.int64), pre_max=3, pre_avg=10,
                     post=3, delta=4.0, combine=3, clear=6)
    return [round(float(x), 6) for x in got]


@pytest.mark.nojit
def test_a_slow_rise_the_main_curve_misses_is_a_note_placed_on_the_main_curve() -> None:
    """A legato re-articulation: the flux over two frames rises only to 2.5 at frame 22 (under
    any threshold of 3), the flux over four frames to 9 at frame 24. The note is placed on the
    main curve's highest frame from 3 frames before the slow peak to 1 after it (22, refined
    by a parabola through 1.5, 2.5, 2.0), not at the slow peak."""
    odf = np.zeros(40)
    odf[21:24] = [1.5, 2.5, 2.0]
    odf_slow = np.zeros(40)
    odf_slow[20:28] = [1.0, 3.0, 6.0, 8.0, 9.0, 7.0, 4.0, 1.0]
    want = 22 + 0.5 * (1.5 - 2.0) / (1.5 - 5.0 + 2.0)
    assert _slow(odf, odf_slow, []) == [round(want, 6)]
    assert snap_to_main(odf, 0, 40, 24) == (22, pytest.approx(want))
    # as the stream calls it: a buffer that starts at frame 10
    assert snap_to_main(odf[10:], 10, 40, 24) == (22, pytest.approx(want))


@pytest.mark.nojit
@pytest.mark.parametrize(("main", "kept"), [([18], True), ([19], False), ([25], False),
                                            ([28], False), ([29], True), ([5, 35], True)])
def test_a_slow_peak_near_a_main_peak_is_that_attack(main: list[int], kept: bool) -> None:
    """The slow peak is placed at frame 22; a main peak from 3 frames before (19) to 6
    after (28) is the same attack, found already."""
    odf = np.zeros(40)
    odf[21:24] = [1.5, 2.5, 2.0]
    odf_slow = np.zeros(40)
    odf_slow[20:28] = [1.0, 3.0, 6.0, 8.0, 9.0, 7.0, 4.0, 1.0]
    assert bool(_slow(odf, odf_slow, main)) is kept


@pytest.mark.nojit
def test_two_slow_peaks_placed_on_one_frame_are_one_note() -> None:
    """Slow peaks 4 frames apart (the least the combine window allows) whose windows share
    the main curve's highest frame give one note."""
    odf = np.zeros(40)
    odf[21] = 5.0
    odf_slow = np.zeros(40)
    odf_slow[15:30] = [0, 0, 0, 0, 0, 9.0, 0, 0, 0, 9.0, 0, 0, 0, 0, 0]
    assert len(_slow(odf, odf_slow, [])) == 1
