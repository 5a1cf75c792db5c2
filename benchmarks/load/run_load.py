"""``python -m benchmarks.load.run_load``: how many real-time streams one engine core serves.

Ramps N concurrent real-time streams (44.1 kHz int16, paced chunks of each ``--chunk-ms``)
from separate load-generator processes against a fresh engine server per step, pinned to
CPU 0 (the load generator, this orchestrator and the profilers on the last CPU), until the
p99 onset delay exceeds 50 ms or a stream fails or loses a chunk, then bisects (``--refine``).
Measures the bare analysis cost (aubio and the engine's ``StreamAnalyzer`` in-process),
profiles one step (perf + py-spy), runs one locust scenario, and writes ``--out``
(``benchmarks/LOAD.md``) and a linked summary block in ``--results-md``
(``benchmarks/RESULTS.md``, between ``<!-- load:start -->`` and ``<!-- load:end -->``).

Raw results, server logs and profiles go to ``benchmarks/.cache/load/<UTC time>/``.
Exit status: 0 report written (whether or not the target is met); 1 a step or the setup
failed before anything could be reported; 2 the report was written but a step crashed.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

THREAD_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "benchmarks" / "LOAD.md"
TARGET_BPM = 120.0
_STEP_OVERHEAD_S = 15.0  # server start, warm-up, client start, collection, stop


def _ints(text: str) -> list[int]:
    values = sorted({int(v) for v in text.split(",") if v.strip()})
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _floats(text: str) -> list[float]:
    values = [float(v) for v in text.split(",") if v.strip()]
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
    return values


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.load.run_load", description=__doc__)
    p.add_argument("--streams", type=_ints, default=_ints("10,20,50,100,150,200,250,300,400,500"))
    p.add_argument("--chunk-ms", type=_floats, default=[100.0, 20.0], help="in this order")
    p.add_argument("--duration-s", type=float, default=20.0, help="audio per stream and step")
    p.add_argument("--workers", type=int, default=1, help="server processes (one core each)")
    p.add_argument("--refine", type=int, default=3, help="bisections after the first failure")
    p.add_argument("--streams-per-process", type=int, default=50)
    p.add_argument("--stagger-s", type=float, default=1.0, help="spread of stream openings")
    p.add_argument(
        "--analysis-threads",
        type=int,
        default=None,
        help="MPT_ENGINE__ANALYSIS_THREADS of the server (default: its own, the CPU count)",
    )
    p.add_argument("--budget-min", type=float, default=11.0, help="stop ramping past this")
    p.add_argument("--no-profile", action="store_true")
    p.add_argument("--locust-users", type=int, default=20, help="0 skips the locust run")
    p.add_argument("--locust-time-s", type=float, default=45.0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument(
        "--results-md",
        default=None,
        help="keep a linked summary block here ('' to skip; default benchmarks/RESULTS.md "
        "when --out is benchmarks/LOAD.md, else none: a trial run leaves the results alone)",
    )
    args = p.parse_args(argv)
    if args.results_md is None:
        same = Path(args.out).resolve() == DEFAULT_OUT.resolve()
        args.results_md = str(REPO / "benchmarks" / "RESULTS.md") if same else ""
    if args.duration_s < 8 or args.workers < 1 or args.refine < 0:
        p.error("--duration-s must be >= 8, --workers >= 1, --refine >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    for name in THREAD_VARS:
        os.environ[name] = "1"
    from mpt.datadir import configure_numba_cache

    configure_numba_cache()
    began = time.monotonic()
    budget_s = args.budget_min * 60.0
    load_before = os.getloadavg()[0]

    from benchmarks.load import report
    from benchmarks.load.audio import practice_take
    from benchmarks.load.dsp_cost import analyzer_cost, aubio_cost
    from benchmarks.load.lookahead import engine_lookahead, frame_hop_samples
    from benchmarks.load.measure import largest_passing, next_ramp_n
    from benchmarks.load.steps import StepConfig, StepResult, run_step
    from mpt.settings import Settings
    from mpt.tokens import local_token

    ncpu = len(os.sched_getaffinity(0))
    all_cpus = sorted(os.sched_getaffinity(0))
    server_cpus = frozenset(all_cpus[: args.workers])
    client_cpu = all_cpus[-1] if ncpu > args.workers else None
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = REPO / "benchmarks" / ".cache" / "load" / stamp
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = Path(tempfile.mkdtemp(prefix="mpt-load-"))
    _log(f"workdir {workdir}; server CPUs {sorted(server_cpus)}, load generator CPU {client_cpu}")

    sr = 44100
    hop = frame_hop_samples(sr)
    take = practice_take(sr=sr, bpm=TARGET_BPM, align_samples=hop)
    lookahead = engine_lookahead(take, target_bpm=TARGET_BPM)
    need_ms = lookahead.needed_past_onset_ms(take)
    _log(
        f"take {take.loop_s:.1f} s, {take.onsets_s.size} onsets; engine needs "
        f"{need_ms.min():.1f}-{need_ms.max():.1f} ms past an onset"
    )

    with _pinned(set(server_cpus)):
        dsp = [aubio_cost(take)]
        for chunk_ms in (100.0, 20.0):
            dsp.append(
                analyzer_cost(
                    take, chunk_samples=round(sr * chunk_ms / 1000), target_bpm=TARGET_BPM
                )
            )
    for c in dsp:
        _log(f"{c.name}: {c.cpu_ms_per_audio_s:.2f} ms CPU per audio s")

    token = local_token(Settings(data_dir=data_dir), sub="load-benchmark", ttl_s=4 * 3600.0)
    config = StepConfig(
        data_dir=data_dir,
        token=token,
        take=take,
        needed_end=lookahead.needed_end,
        hop_samples=hop,
        target_bpm=TARGET_BPM,
        duration_s=args.duration_s,
        stagger_s=args.stagger_s,
        streams_per_process=args.streams_per_process,
        workers=args.workers,
        server_cpus=server_cpus,
        client_cpu=client_cpu,
        workdir=workdir,
        server_env=(
            {}
            if args.analysis_threads is None
            else {"MPT_ENGINE__ANALYSIS_THREADS": str(args.analysis_threads)}
        ),
    )
    step_s = args.duration_s + args.stagger_s + _STEP_OVERHEAD_S
    reserve_s = (0.0 if args.no_profile else step_s) + (
        args.locust_time_s + 40.0 if args.locust_users > 0 else 0.0
    )
    reserve_s += step_s * len(args.chunk_ms)  # one echo step per chunk size
    steps: list[StepResult] = []
    crashed: list[str] = []
    notes: list[str] = []
    for chunk_ms in args.chunk_ms:
        results: list[tuple[int, bool]] = []
        for _ in range(len(args.streams) + args.refine):
            n = next_ramp_n(args.streams, results, refine=args.refine)
            if n is None:
                break
            if time.monotonic() - began + step_s + reserve_s > budget_s:
                notes.append(
                    f"{chunk_ms:g} ms ramp stopped before N = {n}: the {args.budget_min:g}-min "
                    "budget (--budget-min) would be exceeded."
                )
                break
            try:
                step = run_step(config, n=n, chunk_ms=chunk_ms)
            except Exception as exc:  # reported; the ramp of this chunk size stops
                crashed.append(f"{chunk_ms:g} ms, N = {n}: {type(exc).__name__}: {exc}")
                _log(f"step {chunk_ms:g} ms N={n} crashed: {exc}")
                break
            steps.append(step)
            results.append((n, step.passed))
            _log(_step_line(step))
        reserve_s -= step_s
        n_echo = largest_passing(results) or min(args.streams)
        try:
            echo = run_step(config, n=n_echo, chunk_ms=chunk_ms, kind="echo")
            steps.append(echo)
            _log("echo " + _step_line(echo))
        except Exception as exc:
            crashed.append(f"echo step {chunk_ms:g} ms: {type(exc).__name__}: {exc}")

    profile_step = None
    if not args.no_profile:
        chunk_ms = 100.0 if 100.0 in args.chunk_ms else args.chunk_ms[0]
        ramp = [(s.n, s.passed) for s in steps if s.kind == "ramp" and s.chunk_ms == chunk_ms]
        n = largest_passing(ramp) or min(args.streams)
        try:
            profile_step = run_step(
                config,
                n=n,
                chunk_ms=chunk_ms,
                kind="profile",
                profile_s=args.duration_s - args.stagger_s - 4.0,
            )
            _log("profile " + _step_line(profile_step))
        except Exception as exc:
            crashed.append(f"profile step: {type(exc).__name__}: {exc}")

    locust = None
    if args.locust_users > 0:
        chunk_ms = 100.0 if 100.0 in args.chunk_ms else args.chunk_ms[0]
        locust = _run_locust(config, args, chunk_ms=chunk_ms)
        _log(f"locust: {locust.rows or locust.error}")

    shutil.rmtree(data_dir, ignore_errors=True)
    if not steps and profile_step is None:
        print("no step completed:\n" + "\n".join(crashed), file=sys.stderr)
        return 1
    notes += [f"Crashed: {c}" for c in crashed]
    previous = args.out.read_text() if args.out.exists() else None
    load_report = report.LoadReport(
        command="python -m benchmarks.load.run_load"
        + "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv)),
        date_utc=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=_machine(),
        versions=_versions(),
        layout=(
            f"server pinned to CPU {','.join(map(str, sorted(server_cpus)))} "
            f"({args.workers} worker process{'es' if args.workers > 1 else ''}; taskset, then "
            "every thread re-pinned); load-generator processes, this orchestrator and the "
            f"profilers pinned to CPU {client_cpu}"
            if client_cpu is not None
            else "load generator shares the server's CPUs (no CPU left to separate them)"
        ),
        load_avg=(load_before, os.getloadavg()[0]),
        runtime_min=(time.monotonic() - began) / 60.0,
        duration_s=args.duration_s,
        workers=args.workers,
        server_settings=", ".join(
            [
                "defaults (`mpt.settings.EngineSettings`)",
                "MPT_ENGINE__MAX_STREAMS=100000 (the default 256 would cap the ramp)",
                *(f"{k}={v}" for k, v in config.server_env.items()),
                f"analysis threads {args.analysis_threads or 'default (CPU count = '}"
                + ("" if args.analysis_threads else f"{os.cpu_count()})"),
            ]
        ),
        lookahead_ms=(
            float(need_ms.min()),
            float(sorted(need_ms)[len(need_ms) // 2]),
            float(need_ms.max()),
        ),
        lookahead_over_30=float((need_ms > 30.0).mean()),
        ladder=list(args.streams),
        steps=steps,
        dsp=dsp,
        profile_step=profile_step,
        locust=locust,
        notes=notes,
        previous=previous,
    )
    args.out.write_text(report.render(load_report))
    if args.results_md:
        results_md = Path(args.results_md)
        text = results_md.read_text() if results_md.exists() else ""
        name = os.path.relpath(args.out, results_md.parent)
        results_md.write_text(
            report.replace_block(text, report.render_results_block(load_report, name))
        )
    (workdir / "results.json").write_text(json.dumps(report.as_jsonable(load_report), indent=1))
    _log(f"wrote {args.out} (raw results {workdir / 'results.json'})")
    for chunk_ms in report.chunk_sizes(load_report):
        _log(f"{chunk_ms:g} ms chunks: largest N = {report.largest(load_report, chunk_ms)}")
    return 2 if crashed else 0


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _step_line(s: Any) -> str:
    def f(v: float | None, spec: str = ".1f") -> str:
        return "-" if v is None else format(v, spec)

    if s.kind == "echo":
        return (
            f"{s.chunk_ms:g} ms N={s.n}: transport floor {f(s.server_cores, '.2f')} cores, "
            f"{f(s.cpu_ms_per_stream_s, '.2f')} ms/stream-s, errors {s.errors}, lost "
            f"{s.lost_chunks}, loadgen {f(s.client_cores, '.2f')} cores"
        )
    return (
        f"{s.chunk_ms:g} ms N={s.n}: p50/p99 {f(s.needed_p50)}/{f(s.needed_p99)} ms "
        f"(30 ms ref {f(s.spec_p50)}/{f(s.spec_p99)}), errors {s.errors}, lost {s.lost_chunks}, "
        f"missed {s.missed}/{s.timed_onsets}, server {f(s.server_cores, '.2f')} cores "
        f"{f(s.cpu_ms_per_stream_s, '.2f')} ms/stream-s, loadgen {f(s.client_cores, '.2f')} "
        f"cores, late p99 {f(s.late_p99)} ms -> {'pass' if s.passed else 'FAIL'}"
    )


@contextlib.contextmanager
def _pinned(cpus: set[int]) -> Any:
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def _machine() -> str:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    return (
        f"{os.cpu_count()} CPUs, {model}, {mem_gb:.0f} GB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    )


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str] = {"git": _git()}
    for pkg in ("grpcio", "protobuf", "numpy", "numba", "scipy", "aubio", "locust", "py-spy"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    perf = shutil.which("perf")
    if perf:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            text = subprocess.run([perf, "--version"], capture_output=True, text=True, timeout=10)
            out["perf"] = text.stdout.strip().removeprefix("perf version ")
    return out


def _git() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "audio_engine", "mpt", "mpt_protos"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (subprocess.SubprocessError, OSError):
        return "unknown"
    return rev + (" (uncommitted changes in the engine/server)" if dirty else "")


def _run_locust(config: Any, args: argparse.Namespace, *, chunk_ms: float) -> Any:
    """One headless locust run (pinned to the load generator's CPU) against a fresh server
    started like the steps', with the locustfile signing its token from MPT_DATA_DIR."""
    from benchmarks.load.report import LocustRun
    from benchmarks.load.serverproc import (
        scrape_metrics,
        start_server,
        stop_server,
        tree_cpu_s,
    )
    from benchmarks.load.steps import warm_up

    users, run_s = args.locust_users, args.locust_time_s
    rate = max(1, users // 4)
    locust_bin = Path(sys.executable).parent / "locust"
    if not locust_bin.exists():
        found = shutil.which("locust")
        if found is None:
            return LocustRun(
                command="locust", users=users, run_time_s=run_s, chunk_ms=chunk_ms,
                error="locust is not installed",
            )  # fmt: skip
        locust_bin = Path(found)
    prefix = config.workdir / "locust"
    server = start_server(
        data_dir=config.data_dir,
        cpus=set(config.server_cpus),
        workers=config.workers,
        log_path=config.workdir / "server-locust.log",
        extra_env=config.server_env,
    )
    shown = [
        "locust", "-f", "benchmarks/load/locustfile.py", "--headless", "-u", str(users),
        "-r", str(rate), "-t", f"{run_s:g}s", "--host", "127.0.0.1:<port>",
        "--chunk-ms", f"{chunk_ms:g}", "--stream-s", "30",
    ]  # fmt: skip
    run = LocustRun(command=" ".join(shown), users=users, run_time_s=run_s, chunk_ms=chunk_ms)
    try:
        warm_up(server, config)
        cmd = [str(locust_bin), *shown[1:]]
        cmd[cmd.index("127.0.0.1:<port>")] = server.target
        cmd += ["--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"]
        taskset = shutil.which("taskset")
        if taskset and config.client_cpu is not None:
            cmd = [taskset, "-c", str(config.client_cpu), *cmd]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MPT_")}
        env["MPT_DATA_DIR"] = str(config.data_dir)
        log = (config.workdir / "locust.log").open("wb")
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        samples: list[tuple[float, float, float, float]] = []  # (t, server cpu, active, locust)
        deadline = time.monotonic() + run_s + 90.0
        locust_cpu = 0.0
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                locust_cpu = tree_cpu_s([proc.pid])
                active = scrape_metrics(server.metrics_port).get("mpt_engine_streams_active", 0)
                samples.append((time.monotonic(), tree_cpu_s([server.pid]), active, locust_cpu))
            time.sleep(0.5)
        if proc.poll() is None:
            proc.kill()
            run.error = f"locust did not finish within {run_s + 90:.0f} s"
        proc.wait(10)
        full = [s for s in samples if s[2] >= users]
        if len(full) >= 2:
            (ta, ca, _, la), (tb, cb, _, lb) = full[0], full[-1]
            run.server_cores = (cb - ca) / (tb - ta)
            run.cpu_ms_per_stream_s = run.server_cores / users * 1000.0
            run.locust_cores = (lb - la) / (tb - ta)
        stats = Path(f"{prefix}_stats.csv")
        if stats.exists():
            with stats.open() as f:
                for row in csv.DictReader(f):
                    if row.get("Name") and row["Name"] != "Aggregated":
                        run.rows[row["Name"]] = {
                            k: float(v) for k, v in row.items() if k not in ("Type", "Name") and v
                        }
        elif run.error is None:
            run.error = f"locust wrote no statistics (see {config.workdir / 'locust.log'})"
    except Exception as exc:  # reported in the report
        run.error = f"{type(exc).__name__}: {exc}"
    finally:
        stop_server(server)
    return run


if __name__ == "__main__":
    raise SystemExit(main())
