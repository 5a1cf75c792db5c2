"""The load benchmark's take, profile parsers and results-file block."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.load.audio import practice_take, rotated
from benchmarks.load.profile import classify_dso, perf_table, pyspy_top, thread_role
from benchmarks.load.report import LOAD_END, LOAD_START, replace_block


def test_practice_take_is_aligned_and_has_its_onsets_on_the_grid() -> None:
    take = practice_take(sr=8000, bpm=120.0, bars=2, jitter_ms=5.0, seed=1, align_samples=440)
    assert take.pcm.dtype == np.int16
    assert take.pcm.shape[0] % 440 == 0
    assert take.pcm.shape[0] - round(16 * 0.25 * 8000) < 440
    assert take.onsets_s.shape == (16,)
    grid = np.arange(16) * 0.25
    assert np.abs(np.sort(take.onsets_s) - grid).max() <= 0.015 + 1e-9  # jitter within 3 sd
    assert np.abs(take.pcm).max() == round(0.8 * 32767)
    with pytest.raises(ValueError, match="bpm"):
        practice_take(bpm=0.0)


def test_rotated_loops_the_take() -> None:
    take = practice_take(sr=8000, bars=1, seed=2)
    n = take.pcm.shape[0]
    out = rotated(take, n - 10, 30)
    assert out[:10].tolist() == take.pcm[-10:].tolist()
    assert out[10:].tolist() == take.pcm[:20].tolist()


def test_thread_roles_and_components() -> None:
    assert thread_role("MainThread") == "event loop (main thread)"
    assert thread_role("mpt-analysis_1") == "analysis pool"
    assert thread_role("event_engine") == "gRPC core threads"
    assert thread_role("Thread-2 (_poll_wrapper)") == "gRPC core threads"
    assert thread_role("Thread-1 (serve_forever)") == "metrics HTTP"
    assert classify_dso("libpython3.11.so.1.0") == "Python interpreter"
    assert classify_dso("_multiarray_umath.cpython-311-x86_64-linux-gnu.so") == "numpy"
    assert classify_dso("[JIT] tid 7699") == "numba kernels (JIT code)"
    assert classify_dso("cygrpc.cpython-311-x86_64-linux-gnu.so") == "gRPC (C-core + Cython aio)"
    assert classify_dso("_message.abi3.so") == "protobuf (upb)"
    assert classify_dso("[kernel.kallsyms]") == "kernel (syscalls, TCP, scheduler)"


def test_perf_table_groups_by_role_and_component() -> None:
    report = (
        "# Overhead  Pid:Command  Shared Object\n"
        "    40.00%     7738:python        libpython3.11.so.1.0\n"
        "    30.00%     7699:python        libpython3.11.so.1.0\n"
        "    20.00%     7738:python        _multiarray_umath.cpython-311-x86_64-linux-gnu.so\n"
        "    10.00%     7705:event_engine  [kernel.kallsyms]\n"
    )
    roles = {7738: "analysis pool", 7699: "event loop (main thread)"}
    table = perf_table(report, roles)
    assert table == pytest.approx(
        {
            ("analysis pool", "Python interpreter"): 0.4,
            ("event loop (main thread)", "Python interpreter"): 0.3,
            ("analysis pool", "numpy"): 0.2,
            ("gRPC core threads", "kernel (syscalls, TCP, scheduler)"): 0.1,
        }
    )


def test_pyspy_top_drops_idle_waits() -> None:
    collapsed = "\n".join(
        [
            "thread (11): MainThread;run (asyncio/runners.py:118);"
            "EpollSelector.select (selectors.py:468) 90",
            "thread (11): MainThread;run (asyncio/runners.py:118);"
            "Handle._run (asyncio/events.py:80) 6",
            "thread (12): mpt-analysis_0;_worker (concurrent/futures/thread.py:83);"
            "StreamAnalyzer._feed (audio_engine/stream.py:350) 3",
            "thread (12): mpt-analysis_0;_worker (concurrent/futures/thread.py:83);"
            "StreamAnalyzer._feed (audio_engine/stream.py:351) 1",
            "thread (12): mpt-analysis_0;Thread.run (threading.py:982);"
            "_worker (concurrent/futures/thread.py:81) 50",
        ]
    )
    top = pyspy_top(collapsed, {})
    assert top["event loop (main thread)"] == [("Handle._run (asyncio/events.py)", 1.0)]
    assert top["analysis pool"] == [("StreamAnalyzer._feed (audio_engine/stream.py)", 1.0)]


def test_results_block_is_replaced_in_place_or_appended() -> None:
    block = f"{LOAD_START}\nnew\n{LOAD_END}"
    text = f"# Results\n\nbefore\n\n{LOAD_START}\nold\n{LOAD_END}\n\n## After\n"
    assert replace_block(text, block) == f"# Results\n\nbefore\n\n{block}\n\n## After\n"
    assert replace_block("# Results\n", block) == f"# Results\n\n{block}\n"
    assert replace_block(replace_block("# R\n", block), block) == f"# R\n\n{block}\n"


def test_idle_cost_reports_cpu_per_stream_second() -> None:
    """Two short streams with and without idle gaps: the CPU share falls with the gaps."""
    from benchmarks.load.idle_cost import idle_cost

    busy = idle_cost(streams=2, gap_ms=0.0, seconds=1.0)
    idle = idle_cost(streams=2, gap_ms=5.0, seconds=1.0)
    assert busy.cpu_ms_per_audio_s > 0 and idle.cpu_ms_per_audio_s > 0
    assert idle.busy_share < busy.busy_share
    with pytest.raises(ValueError):
        idle_cost(streams=0, gap_ms=0.0)


def test_a_trial_run_elsewhere_leaves_the_results_alone() -> None:
    """Only a run writing benchmarks/LOAD.md keeps the summary in RESULTS.md by default; a
    trial run with --out elsewhere does not point the project's results at a scratch file."""
    from benchmarks.load.run_load import DEFAULT_OUT, REPO, _parse

    assert _parse([]).results_md == str(REPO / "benchmarks" / "RESULTS.md")
    assert _parse(["--out", str(DEFAULT_OUT)]).results_md == str(REPO / "benchmarks" / "RESULTS.md")
    assert _parse(["--out", "/tmp/trial.md"]).results_md == ""
    assert _parse(["--out", "/tmp/trial.md", "--results-md", "/tmp/r.md"]).results_md == "/tmp/r.md"
