"""Accuracy and speed of the engine and its peers, side by side, in one run.

usage: python -m benchmarks.run_accuracy [--sets dev-real,dev-synth,fresh]
           [--systems engine,librosa,essentia,aubio] [--out benchmarks/RESULTS.md]
           [--jobs 1] [--runs 3] [--cli-runs 5] [--no-cache] [--trim-beats]

Exit status: 0 done; 1 a peer (or the engine, when benchmarked) is missing or a subset cannot
be read or rendered; 2 the report was written but some analysis or the ``mpt`` CLI failed.
Failing a target does not change the exit status: the report says pass/fail.

The BLAS/OpenMP/numba thread counts are set to 1 before numpy or any peer is imported, which
is why the heavy modules are imported inside :func:`main`, after that.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SETS = "dev-real,dev-synth,fresh"
DEFAULT_SYSTEMS = "engine,librosa,essentia,aubio"
JOBS_WARNING = (
    "**Speed measured with {jobs} concurrent workers**: on the 2-vCPU benchmark VM this "
    "slowed every system about 3x against --jobs 1 (2026-11-26); use --jobs 1 for speed."
)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.run_accuracy", description=__doc__.split("\n\n")[0]
    )
    ap.add_argument(
        "--sets", default=DEFAULT_SETS, help=f"comma-separated subsets (default {DEFAULT_SETS})"
    )
    ap.add_argument(
        "--systems",
        default=DEFAULT_SYSTEMS,
        help=f"comma-separated systems (default {DEFAULT_SYSTEMS}); every peer "
        "must be installed whatever is chosen",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "benchmarks" / "RESULTS.md",
        help="Markdown report to (re)write (default benchmarks/RESULTS.md)",
    )
    ap.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="worker processes, each pinned to its own core (default 1; more "
        "than one lets workers share memory bandwidth while timed)",
    )
    ap.add_argument(
        "--runs",
        type=int,
        default=3,
        help="timed runs per clip and system, median reported (default 3)",
    )
    ap.add_argument(
        "--cli-runs",
        type=int,
        default=5,
        help="timed `mpt analyze` runs after one warm-up (default 5)",
    )
    ap.add_argument(
        "--no-cache", action="store_true", help="re-run everything (the cache is still rewritten)"
    )
    ap.add_argument(
        "--trim-beats",
        action="store_true",
        help="drop beats before 5 s (mir_eval's trim_beats) before beat metrics; "
        "off by default since the README scores whole clips",
    )
    args = ap.parse_args(argv)
    args.sets = [s for s in args.sets.split(",") if s]
    args.systems = [s for s in args.systems.split(",") if s]
    if args.jobs < 1 or args.runs < 1 or args.cli_runs < 1:
        ap.error("--jobs, --runs and --cli-runs must be >= 1")
    return args


def _git_describe() -> str:
    proc = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    head = proc.stdout.strip() if proc.returncode == 0 else "no commit yet"
    dirty = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "status", "--porcelain"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return head + (" (uncommitted changes)" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; return the exit status."""
    args = _parse(argv)
    original_env = dict(os.environ)
    for var in THREAD_VARS:
        os.environ[var] = "1"
    started = time.perf_counter()

    # Heavy imports only now, after the thread limits are in the environment.
    import mir_eval
    import numba
    import numpy as np

    from benchmarks import datasets, evaluate, harness, report, systems
    from benchmarks.cli_timing import time_mpt_analyze

    try:
        versions = systems.check_systems(args.systems)
        clips_by_set = {s: datasets.list_clips(s) for s in args.sets}
    except (RuntimeError, ValueError) as exc:
        print(f"benchmark cannot run: {exc}", file=sys.stderr)
        return 1
    all_clips = [c for clips in clips_by_set.values() for c in clips]
    engine_hash = systems.engine_source_hash()  # the cache keys use this same state
    load_before = os.getloadavg()[0]
    cache = harness.ResultCache(read=not args.no_cache)
    runs = harness.run_all(
        all_clips, args.systems, versions, n_runs=args.runs, jobs=args.jobs, cache=cache
    )

    by_key = {(r.system, r.set_name, r.clip): r for r in runs}
    scores = []
    summaries = {}
    for set_name, clips in clips_by_set.items():
        for system in args.systems:
            set_runs = [by_key[(system, set_name, c.name)] for c in clips]
            set_scores = [
                evaluate.score_clip(c, r, trim_beats=args.trim_beats)
                for c, r in zip(clips, set_runs, strict=True)
            ]
            scores += set_scores
            summaries[(system, set_name)] = evaluate.summarize(
                system, set_name, set_scores, set_runs
            )
    overall_speed = {s: evaluate.speed_of(r for r in runs if r.system == s) for s in args.systems}

    load_after = os.getloadavg()[0]
    cli = None
    if systems.ENGINE in args.systems:
        takes = [c for c in all_clips if c.is_practice_take] or all_clips
        print(f"timing `mpt analyze` ({args.cli_runs} runs + warm-up)", file=sys.stderr)
        cli = time_mpt_analyze(takes, env=original_env, n_runs=args.cli_runs)
    tgts = evaluate.targets(
        summaries, overall_speed=overall_speed, cli_wall_s=None if cli is None else cli.median_s
    )

    errors = [f"{r.system} on {r.set_name}/{r.clip}: {r.error}" for r in runs if r.error]
    if systems.ENGINE in args.systems and systems.engine_source_hash() != engine_hash:
        errors.append(
            "audio_engine/ changed while the benchmark ran: the engine's results "
            "may mix versions; run it again"
        )
    if cli is not None and cli.error:
        errors.append(f"mpt analyze: {cli.error}")
    n_cached = sum(r.cached for r in runs)
    elapsed = time.perf_counter() - started
    all_versions = {
        "engine": f"audio_engine sha256 {engine_hash[:12]}, git {_git_describe()}",
        **versions,
        "mir_eval": mir_eval.__version__,
        "numpy": np.__version__,
        "numba": numba.__version__,
        "python": platform.python_version(),
    }
    command = "python -m benchmarks.run_accuracy" + "".join(
        f" {a}" for a in (sys.argv[1:] if argv is None else argv)
    )
    r = report.ReportInput(
        command=command,
        date_utc=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
        f"{harness.cpu_model()}, {platform.system()} {platform.release()}",
        versions=all_versions,
        timing_note=(
            f"one core per worker (CPU affinity pinned; {', '.join(THREAD_VARS[:4])} = 1), "
            "an untimed warm-up per system and sample rate, then the analysis call only "
            "(no decoding) timed with perf_counter; x real-time = total audio / median over "
            f"{args.runs} runs of the whole set's total time; jobs = {args.jobs}; 1-min load "
            f"average {load_before:.1f} at the start, {load_after:.1f} at the end (other "
            "processes on the machine compete for the pinned core; the systems alternate "
            "clip by clip, so ratios suffer less than absolute figures)"
        ),
        sets=args.sets,
        systems=args.systems,
        summaries=summaries,
        overall_speed=overall_speed,
        scores=scores,
        cli=cli,
        targets=tgts if systems.ENGINE in args.systems else [],
        errors=errors,
        runtime_note=f"This run took {elapsed / 60:.1f} min; {n_cached} of {len(runs)} "
        "clip runs came from the cache (`benchmarks/.cache`).",
        trim_beats=args.trim_beats,
        speed_warnings=[] if args.jobs == 1 else [JOBS_WARNING.format(jobs=args.jobs), ""],
    )
    out: Path = args.out
    previous = out.read_text() if out.exists() else None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.render(r, previous=previous))
    print(report.render(r, previous=previous, appendix=False))
    print(f"wrote {out} in {elapsed:.0f} s", file=sys.stderr)
    return 2 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
