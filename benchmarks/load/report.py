"""Render the load benchmark as Markdown (``benchmarks/LOAD.md``) and keep a short summary
with a link in ``benchmarks/RESULTS.md`` between ``<!-- load:start -->`` and
``<!-- load:end -->`` (replaced in place, or appended; the rest of that file is untouched).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.load.dsp_cost import DspCost
from benchmarks.load.measure import DELAY_LIMIT_MS, largest_passing
from benchmarks.load.steps import StepResult

__all__ = [
    "LOAD_END",
    "LOAD_START",
    "LoadReport",
    "LocustRun",
    "render",
    "render_results_block",
    "replace_block",
]

LOAD_START = "<!-- load:start -->"
LOAD_END = "<!-- load:end -->"
_BLOCK_RE = re.compile(re.escape(LOAD_START) + r".*?" + re.escape(LOAD_END), re.DOTALL)
TARGET_STREAMS_PER_CORE = 250


@dataclass(slots=True)
class LocustRun:
    """One headless locust run against a separately started server."""

    command: str
    users: int
    run_time_s: float
    chunk_ms: float
    rows: dict[str, dict[str, float]] = field(default_factory=dict)
    locust_cores: float | None = None
    server_cores: float | None = None
    cpu_ms_per_stream_s: float | None = None
    error: str | None = None


@dataclass(slots=True)
class LoadReport:
    """Everything the load report shows."""

    command: str
    date_utc: str
    machine: str
    versions: dict[str, str]
    layout: str
    load_avg: tuple[float, float]
    runtime_min: float
    duration_s: float
    workers: int
    server_settings: str
    lookahead_ms: tuple[float, float, float]  # min, median, max audio needed past an onset
    lookahead_over_30: float  # share of onsets needing more than 30 ms
    ladder: list[int]
    steps: list[StepResult]
    dsp: list[DspCost]
    profile_step: StepResult | None
    locust: LocustRun | None
    notes: list[str] = field(default_factory=list)
    previous: str | None = None  # the previous report, for its hand-written block


def _f(value: float | None, spec: str = ".1f") -> str:
    return "–" if value is None else format(value, spec)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def chunk_sizes(r: LoadReport) -> list[float]:
    return sorted({s.chunk_ms for s in r.steps if s.kind == "ramp"})


def ramp(r: LoadReport, chunk_ms: float) -> list[StepResult]:
    return sorted((s for s in r.steps if s.kind == "ramp" and s.chunk_ms == chunk_ms), key=_n)


def _n(s: StepResult) -> int:
    return s.n


def echo(r: LoadReport, chunk_ms: float) -> StepResult | None:
    return next((s for s in r.steps if s.kind == "echo" and s.chunk_ms == chunk_ms), None)


def largest(r: LoadReport, chunk_ms: float, *, spec: bool = False) -> int | None:
    steps = ramp(r, chunk_ms)
    return largest_passing([(s.n, s.passed_spec if spec else s.passed) for s in steps])


def _at(r: LoadReport, chunk_ms: float, n: int | None) -> StepResult | None:
    return next((s for s in ramp(r, chunk_ms) if s.n == n), None)


def _capacity_note(r: LoadReport, chunk_ms: float) -> str:
    steps = ramp(r, chunk_ms)
    best = largest(r, chunk_ms)
    failed = [s for s in steps if not s.passed]
    if not steps:
        return "not run"
    if best is None:
        first = failed[0]
        why = "; ".join(first.reasons)
        return f"none (N = {first.n} already fails: {why})"
    if not failed:
        top = max(s.n for s in steps)
        return f"**{best}** (every step passed; the ladder or the time budget ended at {top})"
    first_fail = min(failed, key=_n)
    note = f"**{best}** (N = {first_fail.n} fails: {'; '.join(first_fail.reasons)}"
    if first_fail.loadgen_saturated:
        note += "; the load generator was saturated there, so this is a lower bound"
    return note + ")"


def render(r: LoadReport) -> str:
    """The whole Markdown report."""
    out: list[str] = ["# Load benchmark: concurrent real-time streams per server core", ""]
    out += [
        f"- Command: `{r.command}`",
        f"- Date: {r.date_utc}; this run took {r.runtime_min:.1f} min",
        f"- Machine: {r.machine}",
        f"- CPU layout: {r.layout}",
        f"- 1-min load average {r.load_avg[0]:.2f} at the start, {r.load_avg[1]:.2f} at the "
        'end (the machine is shared; the "other on core 0" column shows how much of the '
        "server's core went to other processes during each window)",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in r.versions.items()),
        f"- Server settings: {r.server_settings}",
        f"- Each step: a fresh server ({r.workers} worker), a warm-up stream, then N streams "
        f"of {r.duration_s:g} s of 44.1 kHz int16 mono audio, chunks paced in real time; "
        "figures over the steady window (all streams open). Method and caveats: "
        "`benchmarks/load/README.md`.",
        "",
    ]
    out += _summary(r)
    for chunk_ms in chunk_sizes(r):
        out += _ramp_section(r, chunk_ms)
    out += _lookahead_section(r)
    out += _dsp_section(r)
    out += _profile_section(r)
    out += _locust_section(r)
    out += _verdict_section(r)
    if r.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in r.notes] + [""]
    return "\n".join(out).rstrip() + "\n"


def _summary(r: LoadReport) -> list[str]:
    rows = []
    for chunk_ms in chunk_sizes(r):
        best = largest(r, chunk_ms)
        at = _at(r, chunk_ms, best)
        per_stream = at.cpu_ms_per_stream_s if at else None
        spec_best = largest(r, chunk_ms, spec=True)
        rows.append(
            [
                f"{chunk_ms:g} ms",
                _capacity_note(r, chunk_ms),
                "none" if spec_best is None else str(spec_best),
                _f(per_stream, ".2f"),
                _f(1000.0 / per_stream, ".0f") if per_stream else "–",
                _f(at.mem_per_stream_mb, ".2f") if at else "–",
            ]
        )
    lines = ["## Summary", ""]
    lines += _table(
        [
            "chunks",
            f"largest N, p99 <= {DELAY_LIMIT_MS:g} ms from the chunk the engine needed",
            "largest N, p99 <= 50 ms from the chunk 30 ms past the onset",
            "server CPU ms per stream-second (at that N)",
            "streams per core at that cost",
            "RSS MB per stream",
        ],
        rows,
    )
    lines += [
        "",
        'Two delays are measured per onset event (see "Engine look-ahead" below): from the '
        "moment the client sent the chunk holding the audio **30 ms past the onset** (the "
        "issue's definition) and from the moment it sent the chunk that completed the audio "
        "the **engine actually needs** to report that onset. The engine needs up to "
        f"{r.lookahead_ms[2]:.1f} ms, so with the first definition some events wait a whole "
        "extra chunk for audio the client had not recorded yet — pacing, not serving; the "
        "ramp and the capacity use the second. Both are shown everywhere.",
        "",
    ]
    return lines


def _ramp_section(r: LoadReport, chunk_ms: float) -> list[str]:
    rows = []
    for s in ramp(r, chunk_ms):
        flag = "pass" if s.passed else "**FAIL**: " + "; ".join(s.reasons)
        if s.loadgen_saturated:
            flag += " (load generator saturated)"
        rows.append(
            [
                str(s.n),
                str(s.processes),
                str(s.timed_onsets),
                f"{_f(s.needed_p50)} / {_f(s.needed_p99)}",
                f"{_f(s.spec_p50)} / {_f(s.spec_p99)}",
                f"{s.missed}",
                f"{s.errors} / {s.lost_chunks}",
                _f(s.server_cores, ".2f"),
                _f(s.cpu_ms_per_stream_s, ".2f"),
                _f(s.mem_per_stream_mb, ".2f"),
                _f(s.client_cores, ".2f"),
                _f(s.late_p99),
                _f(s.other_on_server_cores, ".2f"),
                flag,
            ]
        )
    lines = [f"## {chunk_ms:g} ms chunks", ""]
    lines += _table(
        [
            "N",
            "client procs",
            "onsets timed",
            "delay p50 / p99 ms (engine's chunk)",
            "delay p50 / p99 ms (30 ms past onset)",
            "missed onsets",
            "errors / lost chunks",
            "server CPU (cores)",
            "server CPU ms per stream-s",
            "RSS MB per stream",
            "load gen CPU (cores)",
            "send lateness p99 ms",
            "other on core 0 (cores)",
            "result",
        ],
        rows,
    )
    roles = ("event loop (main thread)", "analysis pool", "gRPC core threads", "other")
    threads = [
        [
            str(s.n),
            *(_per_stream(s, s.thread_cores.get(role)) for role in roles),
            _f(s.server_event_delay_mean_ms),
            str(s.spec_before_reference),
            str(s.waited_next_chunk),
        ]
        for s in ramp(r, chunk_ms)
    ]
    lines += [
        "",
        "Server CPU by thread, cores (ms per stream-second), from `/proc/<pid>/task/*/stat`, "
        "and more:",
        "",
    ]
    lines += _table(
        [
            "N",
            "event loop thread",
            "analysis pool",
            "gRPC core threads",
            "other threads",
            "server-side chunk-to-event mean ms (Prometheus)",
            "events before the 30 ms chunk was sent",
            "onsets that needed the next chunk",
        ],
        threads,
    )
    return [*lines, ""]


def _per_stream(s: StepResult, cores: float | None) -> str:
    if cores is None:
        return "–"
    return f"{cores:.2f} ({cores / s.n * 1000.0:.1f})"


def _lookahead_section(r: LoadReport) -> list[str]:
    lo, mid, hi = r.lookahead_ms
    return [
        "## Engine look-ahead",
        "",
        f"Replayed in-process sample by sample, the engine reports an onset of this take "
        f"once it has {lo:.1f}-{hi:.1f} ms (median {mid:.1f} ms) of audio past the true note "
        f"start; {r.lookahead_over_30 * 100:.0f} % of the onsets need more than 30 ms. "
        "(`audio_engine/stream.py`: a peak is decided on a probe of the frame after it, "
        "8 ms before that frame is complete, i.e. half the 46 ms window plus one 10 ms frame "
        "less 8 ms past the frame's centre; a peak whose probe was wrong waits 10 ms more for "
        "the frame itself.) With 30 ms as the reference, "
        "an onset whose need crosses a chunk boundary waits one whole chunk (+20 or +100 ms), "
        "and one whose need ends before 30 ms can arrive *before* the reference chunk is sent "
        "(a negative delay, counted as is).",
        "",
    ]


def _dsp_section(r: LoadReport) -> list[str]:
    rows = [[c.name, _f(c.cpu_ms_per_audio_s, ".2f"), _f(c.streams_per_core, ".0f")] for c in r.dsp]
    for chunk_ms in chunk_sizes(r):
        best = largest(r, chunk_ms) or (ramp(r, chunk_ms)[0].n if ramp(r, chunk_ms) else None)
        at = _at(r, chunk_ms, best)
        if at and at.cpu_ms_per_stream_s:
            rows.append(
                [
                    f"engine gRPC server, {chunk_ms:g} ms chunks, N = {at.n} (whole process)",
                    _f(at.cpu_ms_per_stream_s, ".2f"),
                    _f(1000.0 / at.cpu_ms_per_stream_s, ".0f"),
                ]
            )
        e = echo(r, chunk_ms)
        if e and e.cpu_ms_per_stream_s:
            rows.append(
                [
                    f"plain grpc.aio echo server (no analysis), {chunk_ms:g} ms chunks, "
                    f"N = {e.n} (whole process)",
                    _f(e.cpu_ms_per_stream_s, ".2f"),
                    _f(1000.0 / e.cpu_ms_per_stream_s, ".0f"),
                ]
            )
    lines = ["## Server CPU per stream against the bare analysis", ""]
    lines += _table(["what (same audio)", "CPU ms per audio second", "streams per core"], rows)
    lines += [
        "",
        "In-process rows: one stream at a time in this process, pinned to the server's core "
        "with no server running, after a warm-up; `time.process_time` over the feeding loop, "
        "median of 5 runs over 60 s of the take. aubio gets float32 hops converted before "
        "timing; the engine's `StreamAnalyzer` gets int16 chunks from `np.frombuffer`, as in "
        "the server. The server rows are the server process's CPU time over the steady window "
        "divided by N and by the window (everything: gRPC, protobuf, asyncio, threads, DSP). "
        "The echo server (`benchmarks/load/echo_server.py`) speaks the same contract to the "
        "same load generator, answers one small event per 125 ms of audio (the engine's event "
        "rate here) and analyses nothing: the transport floor.",
        "",
    ]
    return lines


def _profile_section(r: LoadReport) -> list[str]:
    s = r.profile_step
    if s is None or s.profile is None:
        return ["## Profile", "", "Not run.", ""]
    p = s.profile
    lines = [
        "## Profile",
        "",
        f"A separate step ({s.chunk_ms:g} ms chunks, N = {s.n}) with the profilers attached "
        f"for {p.seconds:.0f} s of its steady window (they run on the load generator's core; "
        f"its delays, p99 {_f(s.needed_p99)} ms from the engine's chunk, are not used above). "
        f"Server CPU {_f(s.server_cores, '.2f')} cores, {_f(s.cpu_ms_per_stream_s, '.2f')} ms "
        "per stream-second.",
        "",
        "CPU by server thread (from `/proc`):",
        "",
    ]
    total = sum(s.thread_cores.values()) or 1.0
    lines += _table(
        ["thread", "cores", "share"],
        [
            [role, _f(c, ".3f"), f"{c / total * 100:.0f} %"]
            for role, c in sorted(s.thread_cores.items(), key=lambda kv: -kv[1])
        ],
    )
    lines += [""]
    if p.perf:
        roles = sorted({role for role, _ in p.perf}, key=lambda x: -_role_total(p.perf, x))
        comps = sorted({c for _, c in p.perf}, key=lambda x: -_comp_total(p.perf, x))
        rows = []
        for comp in comps:
            row = [comp] + [_pct(p.perf.get((role, comp))) for role in roles]
            row.append(_pct(_comp_total(p.perf, comp)))
            rows.append(row)
        rows.append(["**all**"] + [_pct(_role_total(p.perf, role)) for role in roles] + ["100 %"])
        lines += [
            f"perf samples by shared object and thread (`{p.perf_note}`; share of all "
            "samples; numba's compiled kernels show as JIT code, gRPC's Cython aio layer and "
            "C-core as `cygrpc`, protobuf as upb):",
            "",
        ]
        lines += _table(["component", *roles, "all"], rows)
        lines += [""]
    else:
        lines += [f"perf: {p.perf_note}", ""]
    if p.pyspy:
        lines += [
            f"py-spy, the Python functions on top of each thread's stack (idle waits removed; "
            f"`{p.pyspy_note}`):",
            "",
        ]
        for role in sorted(p.pyspy):
            top = ", ".join(f"`{name}` {share * 100:.0f} %" for name, share in p.pyspy[role][:8])
            lines.append(f"- **{role}**: {top}")
        lines.append("")
    else:
        lines += [f"py-spy: {p.pyspy_note}", ""]
    return lines


def _pct(value: float | None) -> str:
    return "–" if not value else f"{value * 100:.1f} %"


def _role_total(table: dict[tuple[str, str], float], role: str) -> float:
    return sum(v for (r, _), v in table.items() if r == role)


def _comp_total(table: dict[tuple[str, str], float], comp: str) -> float:
    return sum(v for (_, c), v in table.items() if c == comp)


def _locust_section(r: LoadReport) -> list[str]:
    lc = r.locust
    if lc is None:
        return ["## Locust", "", "Not run.", ""]
    lines = ["## Locust run", "", f"`{lc.command}`", ""]
    if lc.error:
        return [*lines, f"Failed: {lc.error}", ""]
    rows = []
    for name, row in lc.rows.items():
        rows.append(
            [
                name,
                _f(row.get("Request Count"), ".0f"),
                _f(row.get("Failure Count"), ".0f"),
                _f(row.get("50%"), ".0f"),
                _f(row.get("99%"), ".0f"),
                _f(row.get("Max Response Time"), ".0f"),
            ]
        )
    lines += _table(["request", "count", "failures", "p50 ms", "p99 ms", "max ms"], rows)
    same = [s for s in r.steps if s.kind == "ramp" and s.chunk_ms == lc.chunk_ms]
    near = min(same, key=lambda s: abs(s.n - lc.users)) if same else None
    lines += [
        "",
        f"{lc.users} users, {lc.chunk_ms:g} ms chunks, {lc.run_time_s:g} s; locust (one "
        f"process, gevent, sync gRPC) used {_f(lc.locust_cores, '.2f')} cores of the load "
        f"generator's CPU; the server {_f(lc.server_cores, '.2f')} cores = "
        f"{_f(lc.cpu_ms_per_stream_s, '.2f')} ms per stream-second. Locust's percentiles "
        "are rounded (it buckets response times); an event that arrives before its 30 ms "
        "chunk is sent counts as 0 ms there. The locustfile grows gevent's hub thread pool "
        "with the users: gRPC's gevent mode polls in it, and with the default 10 threads 20 "
        "users saw p99 of about 200 ms — a client artefact, not the server.",
    ]
    if near is not None:
        lines.append(
            f"Beside it, the load generator's step with N = {near.n}: p50 / p99 "
            f"{_f(near.needed_p50)} / {_f(near.needed_p99)} ms (engine's chunk), "
            f"{_f(near.spec_p50)} / {_f(near.spec_p99)} ms (30 ms past onset), "
            f"{_f(near.cpu_ms_per_stream_s, '.2f')} ms per stream-second."
        )
    return [*lines, ""]


def _verdict_section(r: LoadReport) -> list[str]:
    lines = ["## Verdict against the target", ""]
    target = TARGET_STREAMS_PER_CORE
    best = largest(r, 100.0)
    at = _at(r, 100.0, best)
    if 100.0 not in chunk_sizes(r):
        return [*lines, "100 ms chunks were not measured.", ""]
    cost = at.cpu_ms_per_stream_s if at else None
    lines.append(
        f"Target: >= {target} concurrent streams per server core at p99 <= "
        f"{DELAY_LIMIT_MS:g} ms with 100 ms chunks. Measured: **{best or 0}** streams on one "
        f"core{' (' + _f(cost, '.2f') + ' ms CPU per stream-second)' if cost else ''} — "
        + ("**met**." if best and best >= target else "**not met**.")
    )
    lines += ["", *verdict_facts(r), "", hand_block(r.previous)]
    return [*lines, ""]


def render_results_block(r: LoadReport, load_md_name: str) -> str:
    """The short summary kept in RESULTS.md (between the load markers)."""
    parts = []
    for chunk_ms in chunk_sizes(r):
        best = largest(r, chunk_ms)
        at = _at(r, chunk_ms, best)
        cost = f", {at.cpu_ms_per_stream_s:.2f} ms CPU per stream-second" if at else ""
        parts.append(f"{chunk_ms:g} ms chunks: largest N = {best or 0}{cost}")
    best100 = largest(r, 100.0) or 0
    verdict = "met" if best100 >= TARGET_STREAMS_PER_CORE else "not met"
    return "\n".join(
        [
            LOAD_START,
            "<!-- Written by `python -m benchmarks.load.run_load`; rewritten on each run. -->",
            "## Load: concurrent real-time streams per core",
            "",
            f"[{load_md_name}]({load_md_name}) ({r.date_utc}): one pinned server core, "
            f"p99 onset delay <= {DELAY_LIMIT_MS:g} ms, no errors or lost chunks — "
            + "; ".join(parts)
            + f". Target >= {TARGET_STREAMS_PER_CORE} streams per core with 100 ms chunks: "
            f"**{verdict}**.",
            LOAD_END,
        ]
    )


def replace_block(text: str, block: str) -> str:
    """``text`` with its load block replaced by ``block``, or ``block`` appended."""
    if _BLOCK_RE.search(text):
        return _BLOCK_RE.sub(lambda _m: block, text, count=1)
    return text.rstrip("\n") + "\n\n" + block + "\n"


def as_jsonable(obj: Any) -> Any:
    """Dataclasses, tuples-keyed dicts and the like as JSON-ready values."""
    from dataclasses import asdict, is_dataclass

    if is_dataclass(obj) and not isinstance(obj, type):
        return as_jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {
            (" / ".join(k) if isinstance(k, tuple) else str(k)): as_jsonable(v)
            for k, v in obj.items()
        }
    if isinstance(obj, list | tuple):
        return [as_jsonable(v) for v in obj]
    return obj


HAND_START = "<!-- load-hand:start -->"
HAND_END = "<!-- load-hand:end -->"
_HAND_RE = re.compile(re.escape(HAND_START) + r".*?" + re.escape(HAND_END), re.DOTALL)


def hand_block(previous: str | None) -> str:
    """The hand-written interpretation of a previous report, or a placeholder."""
    if previous:
        found = _HAND_RE.search(previous)
        if found:
            return found.group(0)
    return (
        f"{HAND_START}\n<!-- Written by hand: what limits the server and what would lift it. "
        f"The benchmark keeps this block when it rewrites the file. -->\n{HAND_END}"
    )


def verdict_facts(r: LoadReport) -> list[str]:
    """Measured facts behind the verdict, as Markdown bullets."""
    facts: list[str] = []
    dsp = {c.name: c for c in r.dsp}
    bare100 = next((c for n, c in dsp.items() if "StreamAnalyzer, 100 ms" in n), None)
    bare20 = next((c for n, c in dsp.items() if "StreamAnalyzer, 20 ms" in n), None)
    aubio = next((c for n, c in dsp.items() if n.startswith("aubio")), None)
    for chunk_ms, bare in ((100.0, bare100), (20.0, bare20)):
        steps = ramp(r, chunk_ms)
        if not steps:
            continue
        best = largest(r, chunk_ms)
        at = _at(r, chunk_ms, best) or steps[0]
        cost = at.cpu_ms_per_stream_s
        if cost is None:
            continue
        line = (
            f"{chunk_ms:g} ms chunks: the server spends {cost:.2f} ms CPU per stream-second at "
            f"N = {at.n} (at most {1000.0 / cost:.0f} streams per core at that cost)"
        )
        if bare is not None:
            overhead = cost - bare.cpu_ms_per_audio_s
            line += (
                f"; the bare `StreamAnalyzer` costs {bare.cpu_ms_per_audio_s:.2f} ms "
                f"({bare.streams_per_core:.0f} streams per core with free serving), so serving "
                f"(gRPC, protobuf, asyncio, thread hand-offs) adds {overhead:.2f} ms "
                f"({overhead / cost * 100:.0f} % of the server's CPU)"
            )
            e = echo(r, chunk_ms)
            if e is not None and e.cpu_ms_per_stream_s is not None:
                rest = overhead - e.cpu_ms_per_stream_s
                line += (
                    f"; a plain grpc.aio echo of the same traffic costs "
                    f"{e.cpu_ms_per_stream_s:.2f} ms (N = {e.n}), which leaves {rest:.2f} ms "
                    "for what the engine's servicer adds around the analysis (thread-pool "
                    "hand-off and GIL, metrics, interceptor, event conversion)"
                )
        fail = next((s for s in steps if not s.passed), None)
        if fail is not None and fail.server_cores is not None:
            line += (
                f". At the first failing N = {fail.n} the server used "
                f"{fail.server_cores:.2f} cores"
                + (" (its core was saturated)" if fail.server_cores > 0.9 else "")
            )
        facts.append(f"- {line}.")
    if aubio is not None and bare100 is not None:
        facts.append(
            f"- aubio's onset + tempo objects cost {aubio.cpu_ms_per_audio_s:.2f} ms per "
            f"audio second ({aubio.streams_per_core:.0f} streams per core); the engine's "
            f"analyzer {bare100.cpu_ms_per_audio_s / aubio.cpu_ms_per_audio_s:.1f}x that "
            "(it also tracks beats, tempo, metronome clicks, levels and the timing report)."
        )
    s = r.profile_step
    if s is not None and s.thread_cores:
        total = sum(s.thread_cores.values()) or 1.0
        split = ", ".join(
            f"{role} {c / total * 100:.0f} %"
            for role, c in sorted(s.thread_cores.items(), key=lambda kv: -kv[1])
            if c / total >= 0.01
        )
        facts.append(f"- Server CPU by thread at N = {s.n} ({s.chunk_ms:g} ms): {split}.")
    if s is not None and s.profile is not None and s.profile.perf:
        perf = s.profile.perf
        comps = sorted({c for _, c in perf}, key=lambda x: -_comp_total(perf, x))
        top = ", ".join(f"{c} {_comp_total(perf, c) * 100:.0f} %" for c in comps[:8])
        facts.append(f"- perf, all server threads: {top}.")
        pool = {c: v for (role, c), v in perf.items() if role == "analysis pool"}
        pool_total = sum(pool.values())
        if pool_total:
            inner = ", ".join(
                f"{c} {v / pool_total * 100:.0f} %"
                for c, v in sorted(pool.items(), key=lambda kv: -kv[1])[:6]
            )
            facts.append(f"- perf, analysis pool only: {inner}.")
        loop = {c: v for (role, c), v in perf.items() if role == "event loop (main thread)"}
        loop_total = sum(loop.values())
        if loop_total:
            inner = ", ".join(
                f"{c} {v / loop_total * 100:.0f} %"
                for c, v in sorted(loop.items(), key=lambda kv: -kv[1])[:6]
            )
            facts.append(f"- perf, event loop thread only: {inner}.")
    return facts
