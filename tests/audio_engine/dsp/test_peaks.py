"""Tests of audio_engine/dsp/peaks.py: peak picking and parabolic refinement."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from audio_engine.dsp.peaks import _pick_peaks_kernel, _refine_kernel, held_peaks, pick_peaks


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
