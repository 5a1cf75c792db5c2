"""Where the server's CPU goes under load: per-thread CPU, ``perf`` by shared object, and
``py-spy`` by Python function.

Three views of the same window, all sampled from outside the server (nothing in the engine
changes):

- **per-thread CPU** from ``/proc/<pid>/task/<tid>/stat`` (exact), the threads named by one
  ``py-spy dump --nonblocking`` (MainThread = the asyncio event loop that runs gRPC aio, the
  servicer and protobuf conversion; ``mpt-analysis_*`` = the analysis pool; gRPC core's
  ``event_engine`` / poller threads; the metrics HTTP server);
- **perf** (``perf record -F 499 -p PID``, no call graphs): samples by thread and shared
  object, which separates the interpreter (``libpython``), numpy, numba's JIT code, scipy's
  FFT, gRPC (``cygrpc``: C-core and the Cython aio layer), protobuf (upb ``_message``), libc
  and the kernel (syscalls, loopback TCP, scheduling);
- **py-spy** (``record --nonblocking --threads --format raw``, 100 Hz): the Python
  functions on top of each thread's stack, idle waits removed.

Each profiler runs as a child pinned to the given CPU (the load generator's), bounded by
``--duration`` and a timeout; a missing tool is reported, not fatal.
"""

from __future__ import annotations

import collections
import contextlib
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.load.measure import parse_proc_cpu_s
from benchmarks.load.serverproc import CLOCK_TICKS

__all__ = [
    "ProfileResult",
    "classify_dso",
    "finish_profilers",
    "perf_table",
    "pyspy_top",
    "start_profilers",
    "thread_cpu_s",
    "thread_names",
    "thread_role",
]

_IDLE_LEAVES = (
    "EpollSelector.select",
    "_worker (concurrent/futures/thread.py",
    "Thread.run (threading.py",
    "Condition.wait",
    "Event.wait",
    "select (selectors.py",
    "serve_forever",
    "_poll_wrapper",
)


@dataclass(slots=True)
class ProfileResult:
    """The profile of one load step.

    Attributes
    ----------
    seconds : float
        Length of the profiled window.
    thread_cpu : dict of str to float
        CPU seconds per thread role over the window (from ``/proc``).
    perf : dict of (str, str) to float, or None
        Share of perf samples per (thread role, component); None when perf was unavailable.
    perf_note : str
        How perf ran, or why it did not.
    pyspy : dict of str to list of (str, float)
        Per thread role, the top Python functions (share of that role's non-idle samples).
    pyspy_note : str
        How py-spy ran, or why it did not.
    """

    seconds: float
    thread_cpu: dict[str, float] = field(default_factory=dict)
    perf: dict[tuple[str, str], float] | None = None
    perf_note: str = ""
    pyspy: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    pyspy_note: str = ""


def thread_role(name: str) -> str:
    """The role of a server thread from its Python or OS name."""
    if name == "MainThread":
        return "event loop (main thread)"
    if name.startswith("mpt-analysis"):
        return "analysis pool"
    if name.startswith("mpt-recording"):
        return "recording pool"
    if "event_engine" in name or "_poll_wrapper" in name or name.startswith("grpc"):
        return "gRPC core threads"
    if "serve_forever" in name:
        return "metrics HTTP"
    return "other"


def classify_dso(dso: str) -> str:
    """The component a perf shared-object name belongs to."""
    table = (
        ("libpython", "Python interpreter"),
        ("_multiarray_umath", "numpy"),
        ("_umath", "numpy"),
        ("pypocketfft", "scipy FFT"),
        ("scipy", "scipy"),
        ("[JIT]", "numba kernels (JIT code)"),
        ("_dispatcher", "numba dispatcher"),
        ("cygrpc", "gRPC (C-core + Cython aio)"),
        ("_message", "protobuf (upb)"),
        ("upb", "protobuf (upb)"),
        ("[kernel", "kernel (syscalls, TCP, scheduler)"),
        ("_asyncio", "asyncio (C part)"),
        ("libc.so", "libc/libm (malloc, memcpy, math)"),
        ("libm.so", "libc/libm (malloc, memcpy, math)"),
    )
    for key, component in table:
        if key in dso:
            return component
    return "other"


def thread_names(pid: int, *, timeout_s: float = 20.0, attempts: int = 3) -> dict[int, str]:
    """tid -> Python thread name, from ``py-spy dump --nonblocking`` (retried: a dump of a
    busy process can fail); threads unknown to Python get their OS name
    (``/proc/.../comm``), and the process's first thread is the main thread."""
    names: dict[int, str] = {}
    pyspy = _pyspy()
    for _ in range(attempts if pyspy is not None else 0):
        assert pyspy is not None
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            out = subprocess.run(
                [pyspy, "dump", "--pid", str(pid), "--nonblocking"],
                capture_output=True,
                text=True,
                timeout=timeout_s,
            ).stdout
            for m in re.finditer(r'^Thread (\d+) \([^)]*\): "([^"]*)"', out, re.MULTILINE):
                names[int(m.group(1))] = m.group(2)
        if "MainThread" in names.values():
            break
    names.setdefault(pid, "MainThread")
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            tid = int(task)
            if tid not in names:
                with contextlib.suppress(OSError):
                    names[tid] = Path(f"/proc/{pid}/task/{task}/comm").read_text().strip()
    return names


def thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds (utime + stime) per thread of ``pid``."""
    out: dict[int, float] = {}
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError, ValueError):
                text = Path(f"/proc/{pid}/task/{task}/stat").read_text()
                out[int(task)] = parse_proc_cpu_s(text, CLOCK_TICKS)
    return out


def perf_table(report: str, roles: Mapping[int, str]) -> dict[tuple[str, str], float]:
    """Shares per (thread role, component) from ``perf report --stdio --sort pid,dso``
    output (lines ``  14.43%  7738:python  libpython3.11.so.1.0``)."""
    out: dict[tuple[str, str], float] = collections.defaultdict(float)
    pattern = re.compile(r"^\s*([\d.]+)%\s+(\d+):(\S+)\s+(.+?)\s*$")
    for line in report.splitlines():
        m = pattern.match(line)
        if m is None:
            continue
        share, tid, comm, dso = float(m.group(1)), int(m.group(2)), m.group(3), m.group(4)
        role = roles.get(tid) or thread_role(comm)
        out[(role, classify_dso(dso))] += share / 100.0
    return dict(out)


def pyspy_top(
    collapsed: str, roles: Mapping[int, str], *, top: int = 12
) -> dict[str, list[tuple[str, float]]]:
    """Per thread role, the Python functions on top of the stack, as shares of the role's
    non-idle samples, from py-spy's raw (collapsed) output with ``--threads``."""
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    thread = re.compile(r"^thread \((?:0x)?([0-9a-fA-F]+)\)(?::\s*(.*))?$")
    for line in collapsed.splitlines():
        stack, _, n = line.rstrip().rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        m = thread.match(frames[0])
        role = "other"
        if m is not None:
            with contextlib.suppress(ValueError):
                role = roles.get(int(m.group(1)), thread_role(m.group(2) or ""))
            if role == "other" and m.group(2):
                role = thread_role(m.group(2))
        leaf = frames[-1]
        if any(idle in leaf for idle in _IDLE_LEAVES) or len(frames) < 2:
            continue
        counts[role][re.sub(r":\d+\)$", ")", leaf)] += int(n)
    out = {}
    for role, counter in counts.items():
        total = sum(counter.values())
        out[role] = [(name, c / total) for name, c in counter.most_common(top)]
    return out


def _pyspy() -> str | None:
    here = Path(sys.executable).parent / "py-spy"  # the venv's, next to python
    return str(here) if here.exists() else shutil.which("py-spy")


def start_profilers(
    pid: int, *, seconds: float, cpu: int | None, workdir: Path
) -> list[tuple[str, subprocess.Popen[bytes] | None, str]]:
    """Start perf and py-spy on ``pid`` for ``seconds`` (children pinned to ``cpu``);
    returns (tool, process or None, note)."""
    started: list[tuple[str, subprocess.Popen[bytes] | None, str]] = []
    taskset = shutil.which("taskset")
    pin = [taskset, "-c", str(cpu)] if taskset and cpu is not None else []
    perf = shutil.which("perf")
    if perf is None:
        started.append(("perf", None, "perf is not installed"))
    else:
        cmd = [*pin, perf, "record", "-F", "499", "-p", str(pid), "-o", str(workdir / "perf.data")]
        cmd += ["--", "sleep", f"{seconds:g}"]
        log = (workdir / "perf.log").open("wb")
        started.append(("perf", subprocess.Popen(cmd, stdout=log, stderr=log), " ".join(cmd)))
    pyspy = _pyspy()
    if pyspy is None:
        started.append(("py-spy", None, "py-spy is not installed (pip install py-spy)"))
    else:
        cmd = [*pin, pyspy, "record", "--pid", str(pid), "--duration", f"{round(seconds)}"]
        cmd += ["--rate", "100", "--nonblocking", "--threads", "--format", "raw"]
        cmd += ["-o", str(workdir / "pyspy.txt")]
        log = (workdir / "pyspy.log").open("wb")
        started.append(("py-spy", subprocess.Popen(cmd, stdout=log, stderr=log), " ".join(cmd)))
    return started


def finish_profilers(
    started: list[tuple[str, subprocess.Popen[bytes] | None, str]],
    result: ProfileResult,
    roles: Mapping[int, str],
    *,
    workdir: Path,
    timeout_s: float,
) -> None:
    """Wait (bounded) for the profilers and fill ``result``'s perf and py-spy views."""
    for tool, proc, note in started:
        if proc is None:
            setattr(result, "perf_note" if tool == "perf" else "pyspy_note", note)
            continue
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if tool == "perf":
            result.perf_note = note
            try:
                report = subprocess.run(
                    [
                        *("perf", "report", "-i", str(workdir / "perf.data"), "--stdio"),
                        *("--sort", "pid,dso", "--no-children"),
                    ],
                    capture_output=True,
                    text=True,
                    timeout=120,
                ).stdout
            except (subprocess.SubprocessError, OSError) as exc:
                result.perf_note = f"perf report failed: {exc}"
                continue
            table = perf_table(report, roles)
            result.perf = table or None
            if not table:
                result.perf_note = f"perf recorded nothing usable (see {workdir / 'perf.log'})"
        else:
            result.pyspy_note = note
            path = workdir / "pyspy.txt"
            if path.exists():
                result.pyspy = pyspy_top(path.read_text(), roles)
            else:
                result.pyspy_note = f"py-spy wrote nothing (see {workdir / 'pyspy.log'})"
