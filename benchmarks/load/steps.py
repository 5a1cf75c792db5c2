"""One load step: a fresh engine server, K client processes with N real-time streams, and
everything measured about it (see ``benchmarks/load/README.md`` for the method).

A step starts its own server (so its CPU and memory figures start from a clean, warmed
process), warms it with one fast 5 s stream (kernels loaded, pools started), pins every
server thread to the server CPUs and every client thread to the client CPU, starts the
clients together, and measures over the *steady window* — from 2 s after the last stream
opened to 0.5 s before the first one ends — the CPU time of the server and of the clients
(``/proc``), the busy time of each CPU (``/proc/stat``), the server's per-thread CPU and its
peak RSS. Then it collects the clients' per-stream results and the server's Prometheus
counters, and stops the server gracefully. Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.load.audio import Take, rotated
from benchmarks.load.client import ClientJob, client_main
from benchmarks.load.measure import percentiles, stream_offsets, verdict
from benchmarks.load.profile import (
    ProfileResult,
    finish_profilers,
    start_profilers,
    thread_cpu_s,
    thread_names,
    thread_role,
)
from benchmarks.load.serverproc import (
    RunningServer,
    core_ticks,
    pin_tree,
    process_tree,
    scrape_metrics,
    start_server,
    stop_server,
    tree_cpu_s,
    tree_rss_bytes,
)

__all__ = ["StepConfig", "StepResult", "run_step", "warm_up"]

_WARM_S = 5.0
_SETTLE_S = 2.0  # after the last stream opened, before the window
_TAIL_S = 0.5  # before the first stream ends, after the window
_LOADGEN_BUSY = 0.85  # a client CPU busier than this (cores) may delay sends


@dataclass(frozen=True, slots=True)
class StepConfig:
    """What is fixed for every step of a run."""

    data_dir: Path
    token: str
    take: Take
    needed_end: Any  # NDArray[int64], per take onset (Lookahead.needed_end)
    hop_samples: int
    target_bpm: float
    duration_s: float
    stagger_s: float
    streams_per_process: int
    workers: int
    server_cpus: frozenset[int]
    client_cpu: int | None
    workdir: Path
    server_env: dict[str, str] = field(default_factory=dict)  # extra MPT_* settings


@dataclass(slots=True)
class StepResult:
    """Everything measured in one step (times in ms, CPU in cores or ms per audio second)."""

    chunk_ms: float
    n: int
    processes: int
    kind: str = "ramp"  # "ramp", "profile" or "echo" (the transport floor, no analysis)
    window_s: float = 0.0
    timed_onsets: int = 0
    matched: int = 0
    missed: int = 0
    extra_reports: int = 0
    waited_next_chunk: int = 0
    spec_p50: float | None = None
    spec_p99: float | None = None
    spec_before_reference: int = 0
    needed_p50: float | None = None
    needed_p99: float | None = None
    needed_max: float | None = None
    errors: int = 0
    error_examples: list[str] = field(default_factory=list)
    lost_chunks: int = 0
    chunks_sent: int = 0
    server_chunks: float | None = None
    started_p99: float | None = None
    late_p99: float | None = None
    late_max: float | None = None
    server_cores: float | None = None
    cpu_ms_per_stream_s: float | None = None
    rss_base_mb: float | None = None
    rss_peak_mb: float | None = None
    mem_per_stream_mb: float | None = None
    client_cores: float | None = None
    core_busy: dict[int, float] = field(default_factory=dict)
    other_on_server_cores: float | None = None
    thread_cores: dict[str, float] = field(default_factory=dict)
    server_event_delay_mean_ms: float | None = None
    passed: bool = False
    reasons: list[str] = field(default_factory=list)
    passed_spec: bool = False
    loadgen_saturated: bool = False
    wall_s: float = 0.0
    profile: ProfileResult | None = None


def warm_up(server: RunningServer, config: StepConfig) -> None:
    """One 5 s stream sent as fast as the server takes it, read to its summary (bounded)."""
    import grpc

    from mpt_protos.audio.v1 import audio_pb2 as pb
    from mpt_protos.audio.v1 import audio_pb2_grpc

    take = config.take
    cs = take.sr // 10
    pcm = rotated(take, 0, round(_WARM_S * take.sr)).astype("<i2").tobytes()

    def requests() -> Any:
        yield pb.StreamRequest(
            config=pb.StreamConfig(
                sample_rate_hz=take.sr,
                channels=1,
                encoding=pb.ENCODING_PCM_S16LE,
                target_bpm=config.target_bpm,
            )
        )
        for i in range(0, len(pcm), 2 * cs):
            yield pb.StreamRequest(chunk=pb.AudioChunk(data=pcm[i : i + 2 * cs]))
        yield pb.StreamRequest(end=pb.EndOfStream())

    with grpc.insecure_channel(server.target) as channel:
        stub = audio_pb2_grpc.AudioAnalysisStub(channel)
        responses = stub.Stream(
            requests(), metadata=(("authorization", f"Bearer {config.token}"),), timeout=60.0
        )
        kinds = [r.WhichOneof("response") for r in responses]
    if not kinds or kinds[-1] != "summary":
        raise RuntimeError(f"the warm-up stream ended without a summary: {kinds[-3:]}")


def run_step(
    config: StepConfig, *, n: int, chunk_ms: float, kind: str = "ramp", profile_s: float = 0.0
) -> StepResult:
    """Run N streams of ``chunk_ms`` chunks against a fresh server and measure them."""
    began = time.monotonic()
    take = config.take
    sr = take.sr
    cs = round(sr * chunk_ms / 1000.0)
    n_chunks = max(1, round(config.duration_s * sr / cs))
    duration = n_chunks * cs / sr
    k = max(1, math.ceil(n / config.streams_per_process))
    result = StepResult(chunk_ms=chunk_ms, n=n, processes=k, kind=kind)
    label = f"{kind}-{chunk_ms:g}ms-n{n}"
    server = start_server(
        data_dir=config.data_dir,
        cpus=set(config.server_cpus),
        workers=config.workers,
        log_path=config.workdir / f"server-{label}.log",
        module="benchmarks.load.echo_server" if kind == "echo" else "audio_engine.server",
        extra_env=config.server_env,
    )
    procs: list[multiprocessing.process.BaseProcess] = []
    conns: list[Any] = []
    try:
        warm_up(server, config)
        before = _metrics(server)
        offsets = stream_offsets(n, loop_samples=take.pcm.shape[0], hop_samples=config.hop_samples)
        ctx = multiprocessing.get_context("spawn")
        for p in range(k):
            job = ClientJob(
                target=server.target,
                token=config.token,
                sr=sr,
                chunk_samples=cs,
                n_chunks=n_chunks,
                target_bpm=config.target_bpm,
                streams=tuple((i, offsets[i]) for i in range(p, n, k)),
                n_total=n,
                stagger_s=config.stagger_s,
                cpu=config.client_cpu,
                pcm=take.pcm,
                onsets_s=take.onsets_s,
                needed_end=config.needed_end,
            )
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=client_main, args=(job, child), name=f"load-client-{p}")
            proc.start()
            child.close()
            procs.append(proc)
            conns.append(parent)
        deadline = time.monotonic() + 60.0
        for conn in conns:
            if not conn.poll(max(0.1, deadline - time.monotonic())):
                raise RuntimeError("a load-generator process did not get ready within 60 s")
            tag, value = conn.recv()
            if tag != "ready":
                raise RuntimeError(f"a load-generator process failed while starting: {value}")
        server_tree = process_tree(server.pid)
        pin_tree(server.pid, set(config.server_cpus))
        if config.client_cpu is not None:
            for proc in procs:
                assert proc.pid is not None
                pin_tree(proc.pid, {config.client_cpu})
        client_pids = [p.pid for p in procs if p.pid is not None]
        rss_base = tree_rss_bytes(server_tree)

        t0 = time.monotonic() + 1.0
        for conn in conns:
            conn.send(t0)
        w0 = t0 + config.stagger_s + _SETTLE_S
        w1 = t0 + duration - _TAIL_S
        _sleep_until(w0)
        names = thread_names(server.pid)
        roles = {tid: thread_role(name) for tid, name in names.items()}
        started = []
        profile = None
        if profile_s > 0:
            profile = ProfileResult(seconds=min(profile_s, w1 - w0))
            started = start_profilers(
                server.pid, seconds=profile.seconds, cpu=config.client_cpu, workdir=config.workdir
            )
        cpus = sorted(set(config.server_cpus))
        if config.client_cpu is not None and config.client_cpu not in cpus:
            cpus.append(config.client_cpu)
        c_server0, c_clients0 = tree_cpu_s(server_tree), tree_cpu_s(client_pids)
        threads0, ticks0, tw0 = thread_cpu_s(server.pid), core_ticks(cpus), time.monotonic()
        rss_peak = rss_base
        while time.monotonic() < w1:
            rss_peak = max(rss_peak, tree_rss_bytes(server_tree))
            time.sleep(min(0.5, max(0.0, w1 - time.monotonic())))
        c_server1, c_clients1 = tree_cpu_s(server_tree), tree_cpu_s(client_pids)
        threads1, ticks1, tw1 = thread_cpu_s(server.pid), core_ticks(cpus), time.monotonic()
        rss_peak = max(rss_peak, tree_rss_bytes(server_tree))
        window = tw1 - tw0

        streams = _collect(conns, timeout_s=duration + 120.0)
        for proc in procs:
            proc.join(10)
        after = _metrics(server)
        if profile is not None:
            finish_profilers(started, profile, roles, workdir=config.workdir, timeout_s=60.0)

        result.window_s = window
        server_cpu = c_server1 - c_server0
        result.server_cores = server_cpu / window
        result.cpu_ms_per_stream_s = server_cpu / (n * window) * 1000.0
        result.client_cores = (c_clients1 - c_clients0) / window
        result.rss_base_mb = rss_base / 1e6
        result.rss_peak_mb = rss_peak / 1e6
        result.mem_per_stream_mb = (rss_peak - rss_base) / n / 1e6
        for cpu in cpus:
            busy = ticks1[cpu][0] - ticks0[cpu][0]
            total = ticks1[cpu][1] - ticks0[cpu][1]
            result.core_busy[cpu] = busy / total if total else float("nan")
        server_core_busy = sum(result.core_busy[c] for c in config.server_cpus)
        result.other_on_server_cores = max(0.0, server_core_busy - result.server_cores)
        for tid, cpu_s in threads1.items():
            role = roles.get(tid, "other")
            used = cpu_s - threads0.get(tid, 0.0)
            result.thread_cores[role] = result.thread_cores.get(role, 0.0) + used / window
        if profile is not None:
            profile.thread_cpu = {r: c * profile.seconds for r, c in result.thread_cores.items()}
            result.profile = profile
        _summarise(result, streams, before, after)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.close()
        stop_server(server)
    result.wall_s = time.monotonic() - began
    return result


def _metrics(server: RunningServer) -> dict[str, float] | None:
    return None if server.metrics_port is None else scrape_metrics(server.metrics_port)


def _sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _collect(conns: list[Any], *, timeout_s: float) -> list[dict[str, Any]]:
    """Every client's per-stream results (bounded); a failed client adds an error record."""
    deadline = time.monotonic() + timeout_s
    out: list[dict[str, Any]] = []
    for conn in conns:
        if not conn.poll(max(0.1, deadline - time.monotonic())):
            out.append({"error": "load-generator process gave no results in time"})
            continue
        try:
            tag, value = conn.recv()
        except EOFError:
            out.append({"error": "load-generator process died"})
            continue
        if tag == "results":
            out.extend(value)
        else:
            out.append({"error": f"load-generator process failed: {value}"})
    return out


def _summarise(
    result: StepResult,
    streams: list[dict[str, Any]],
    before: dict[str, float] | None,
    after: dict[str, float] | None,
) -> None:
    spec = np.concatenate([np.asarray(s.get("spec_ms", []), dtype=float) for s in streams])
    needed = np.concatenate([np.asarray(s.get("needed_ms", []), dtype=float) for s in streams])
    result.spec_p50, result.spec_p99 = percentiles(spec)
    result.needed_p50, result.needed_p99 = percentiles(needed)
    result.needed_max = float(needed.max()) if needed.size else None
    result.spec_before_reference = int(np.count_nonzero(spec < 0))
    for key in ("timed_onsets", "matched", "missed", "extra_reports", "waited_next_chunk"):
        setattr(result, key, sum(int(s.get(key, 0)) for s in streams))
    errors = [s["error"] for s in streams if s.get("error")]
    result.errors = len(errors)
    result.error_examples = sorted(set(errors))[:3]
    result.lost_chunks = sum(int(s.get("lost_chunks") or 0) for s in streams)
    result.chunks_sent = sum(int(s.get("chunks_sent", 0)) for s in streams)
    started = [s["started_ms"] for s in streams if s.get("started_ms") is not None]
    result.started_p99 = percentiles(started, (99.0,))[0]
    late = [s["late_p99_ms"] for s in streams if s.get("late_p99_ms") is not None]
    result.late_p99 = float(np.max(late)) if late else None
    late_max = [s["late_max_ms"] for s in streams if s.get("late_max_ms") is not None]
    result.late_max = float(np.max(late_max)) if late_max else None
    if before is not None and after is not None:

        def delta(name: str) -> float:
            return after.get(name, 0.0) - before.get(name, 0.0)

        result.server_chunks = delta("mpt_engine_chunks_total")
        d_n = delta("mpt_engine_event_delay_seconds_count")
        if d_n:
            d_sum = delta("mpt_engine_event_delay_seconds_sum")
            result.server_event_delay_mean_ms = d_sum / d_n * 1000.0
        # chunks the server never analysed, as counted by the server itself
        unanalysed = int(result.chunks_sent - result.server_chunks)
        result.lost_chunks = max(result.lost_chunks, unanalysed)
    v = verdict(p99_ms=result.needed_p99, errors=result.errors, lost_chunks=result.lost_chunks)
    result.passed, result.reasons = v.passed, list(v.reasons)
    v_spec = verdict(p99_ms=result.spec_p99, errors=result.errors, lost_chunks=result.lost_chunks)
    result.passed_spec = v_spec.passed
    result.loadgen_saturated = (
        result.client_cores is not None and result.client_cores > _LOADGEN_BUSY
    )
