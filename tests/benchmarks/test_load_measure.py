"""The load benchmark's pure helpers: schedules, matching, delays, /proc parsing, the ramp."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.load.measure import (
    chunk_index_for,
    core_busy_ticks,
    largest_passing,
    match_onsets,
    next_ramp_n,
    parse_proc_cpu_s,
    parse_rss_bytes,
    percentiles,
    plan_stream,
    stream_offsets,
    verdict,
)


def test_chunk_index_is_the_chunk_that_completes_the_audio() -> None:
    # chunks of 100 samples: samples 0..99 arrive with chunk 0, 100..199 with chunk 1
    assert chunk_index_for([1, 100, 101, 200, 201], 100).tolist() == [0, 0, 1, 1, 2]
    with pytest.raises(ValueError, match="chunk_samples"):
        chunk_index_for([1], 0)


def test_stream_offsets_are_distinct_hop_multiples_inside_the_loop() -> None:
    offsets = stream_offsets(50, loop_samples=44000, hop_samples=440)
    assert len(set(offsets)) == 50
    assert all(o % 440 == 0 and 0 <= o < 44000 for o in offsets)
    assert stream_offsets(3, loop_samples=44000, hop_samples=440) == offsets[:3]


def test_plan_stream_known_answer() -> None:
    sr, loop = 1000, 4000  # a 4 s take at 1 kHz with onsets at 0.5, 1.5, 2.5, 3.5 s
    onsets = np.array([0.5, 1.5, 2.5, 3.5])
    needed = np.round(onsets * sr + 35).astype(np.int64)  # the engine needs 35 ms
    plan = plan_stream(
        onsets,
        needed,
        sr=sr,
        loop_samples=loop,
        offset_samples=1000,  # the stream starts at 1.0 s of the take
        n_chunks=60,
        chunk_samples=100,  # 100 ms chunks, 6 s of audio
    )
    # take 1.5, 2.5, 3.5, 0.5 -> stream 0.5 (warm-up, dropped), 1.5, 2.5, 3.5; next lap 4.5, 5.5
    assert plan.onset_s.tolist() == pytest.approx([1.5, 2.5, 3.5, 4.5, 5.5])
    # 30 ms past 1.5 s = sample 1530 -> chunk 15; the engine's 1535 -> chunk 15 too
    assert plan.spec_chunk.tolist() == [15, 25, 35, 45, 55]
    assert plan.needed_chunk.tolist() == [15, 25, 35, 45, 55]


def test_plan_stream_needed_chunk_crosses_a_boundary_and_drops_unsent_audio() -> None:
    sr, loop = 1000, 2000
    onsets = np.array([1.265])  # 30 ms past it: sample 1295, in chunk 12 (1200..1299)
    needed = np.array([1265 + 36], dtype=np.int64)  # the engine needs 1301: chunk 13
    plan = plan_stream(
        onsets, needed, sr=sr, loop_samples=loop, offset_samples=0, n_chunks=13, chunk_samples=100
    )
    assert plan.onset_s.size == 0  # the audio the engine needs (1301) was never sent (1300)
    plan = plan_stream(
        onsets, needed, sr=sr, loop_samples=loop, offset_samples=0, n_chunks=14, chunk_samples=100
    )
    assert plan.spec_chunk.tolist() == [12]
    assert plan.needed_chunk.tolist() == [13]


def test_plan_stream_marks_onsets_the_engine_never_reports() -> None:
    plan = plan_stream(
        np.array([1.5]),
        np.array([-1], dtype=np.int64),
        sr=1000,
        loop_samples=3000,
        offset_samples=0,
        n_chunks=20,
        chunk_samples=100,
    )
    assert plan.needed_chunk.tolist() == [-1]
    assert plan.spec_chunk.tolist() == [15]


def test_match_onsets_nearest_pairs_first_one_to_one() -> None:
    known = [1.0, 1.04, 2.0, 3.0]
    reported = [1.03, 2.06, 2.99, 5.0]
    # 1.03 is nearer 1.04 than 1.0; 2.06 is 60 ms off (no match); 2.99 matches 3.0
    assert match_onsets(known, reported).tolist() == [-1, 0, -1, 2]
    assert match_onsets([], reported).tolist() == []
    assert match_onsets(known, []).tolist() == [-1, -1, -1, -1]


def test_percentiles() -> None:
    assert percentiles(list(range(101))) == [50.0, 99.0]
    assert percentiles([]) == [None, None]


def test_parse_proc_cpu_handles_spaces_in_the_command_name() -> None:
    stat = "1234 (python -m x) S 1 1 1 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 5 0 100 0 0"
    assert parse_proc_cpu_s(stat, 100) == pytest.approx(3.0)


def test_parse_rss() -> None:
    assert parse_rss_bytes("Name:\tpython\nVmRSS:\t  2048 kB\n") == 2048 * 1024
    with pytest.raises(ValueError, match="VmRSS"):
        parse_rss_bytes("Name:\tpython\n")


def test_core_busy_ticks() -> None:
    text = "cpu  10 0 10 100 5 0 0 0 0 0\ncpu0 7 1 2 50 3 0 1 0 0 0\ncpu1 3 0 8 50 2 0 0 0 0 0\n"
    assert core_busy_ticks(text, 0) == (11, 64)
    assert core_busy_ticks(text, 1) == (11, 63)
    with pytest.raises(ValueError, match="cpu2"):
        core_busy_ticks(text, 2)


def test_verdict() -> None:
    assert verdict(p99_ms=49.9, errors=0, lost_chunks=0).passed
    failed = verdict(p99_ms=51.0, errors=2, lost_chunks=1)
    assert not failed.passed
    assert failed.reasons == ("p99 51.0 ms > 50 ms", "2 stream error(s)", "1 chunk(s) lost")
    assert not verdict(p99_ms=None, errors=0, lost_chunks=0).passed


def test_largest_passing_ignores_passes_above_a_failure() -> None:
    assert largest_passing([(10, True), (50, True), (100, False), (150, True)]) == 50
    assert largest_passing([(10, False)]) is None
    assert largest_passing([(10, True), (20, True)]) == 20


def test_next_ramp_n_climbs_then_bisects_a_bounded_number_of_times() -> None:
    ladder = [10, 50, 100, 200]
    assert next_ramp_n(ladder, [], refine=2) == 10
    assert next_ramp_n(ladder, [(10, True)], refine=2) == 50
    results = [(10, True), (50, True), (100, False)]
    assert next_ramp_n(ladder, results, refine=2) == 75
    results.append((75, True))
    assert next_ramp_n(ladder, results, refine=2) == 87
    results.append((87, False))
    assert next_ramp_n(ladder, results, refine=2) is None  # two bisections used
    assert next_ramp_n(ladder, [(10, True), (12, False)], refine=5) is None  # gap <= 5
    assert next_ramp_n(ladder, [(n, True) for n in ladder], refine=2) is None
    assert next_ramp_n(ladder, [(10, False)], refine=1) == 5
