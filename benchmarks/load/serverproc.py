"""The engine server under test, in its own process, and what the benchmark reads of it.

:func:`start_server` runs ``python -m audio_engine.server --port 0 --workers W
--metrics-port 0 --ready-file F`` pinned to the given CPUs (``taskset`` when present, else
``sched_setaffinity`` right after the start, before it imports anything), with a fresh data
directory (its own key pair and SQLite queue) and ``MPT_ENGINE__MAX_STREAMS`` raised so the
per-process limit does not cap the ramp. Other ``MPT_*`` variables of the caller are not
passed on (a ``MPT_REDIS__URL`` would move the queue); ``MPT_CACHE_DIR`` and
``NUMBA_CACHE_DIR`` are, so the compiled kernels are reused.

CPU time and RSS are read from ``/proc`` for the server and its children (the workers when
``W > 1``); :func:`pin_tree` re-pins every thread of a process tree, so nothing started
before the pinning escapes it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.load.measure import core_busy_ticks, parse_proc_cpu_s, parse_rss_bytes

__all__ = [
    "RunningServer",
    "core_ticks",
    "pin_tree",
    "process_tree",
    "scrape_metrics",
    "start_server",
    "stop_server",
    "tree_cpu_s",
    "tree_rss_bytes",
]

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_THREAD_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


@dataclass(slots=True)
class RunningServer:
    """A started engine server.

    Attributes
    ----------
    proc : Popen
        The ``python -m audio_engine.server`` process.
    port : int
        Bound gRPC port on 127.0.0.1.
    metrics_port : int or None
        Bound Prometheus port (None for a server without metrics, the echo server).
    log_path : Path
        Its stderr.
    cpus : set of int
        The CPUs it is pinned to.
    """

    proc: subprocess.Popen[bytes]
    port: int
    metrics_port: int | None
    log_path: Path
    cpus: set[int]

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_server(
    *,
    data_dir: Path,
    cpus: set[int],
    workers: int,
    log_path: Path,
    max_streams: int = 100_000,
    timeout_s: float = 90.0,
    module: str = "audio_engine.server",
    extra_env: dict[str, str] | None = None,
) -> RunningServer:
    """Start the engine (or ``module``, which takes ``--port`` and ``--ready-file``, e.g.
    ``benchmarks.load.echo_server``) pinned to ``cpus`` and wait (bounded) until it listens.

    Raises
    ------
    RuntimeError
        It exited or did not listen within ``timeout_s`` (its log's tail in the message).
    """
    ready = data_dir / "ready.json"
    ready.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPT_")}
    if "MPT_CACHE_DIR" in os.environ:
        env["MPT_CACHE_DIR"] = os.environ["MPT_CACHE_DIR"]
    env.update({name: "1" for name in _THREAD_ENV})
    env.update(
        {
            "MPT_DATA_DIR": str(data_dir),
            "MPT_ENGINE__HOST": "127.0.0.1",
            "MPT_ENGINE__MAX_STREAMS": str(max_streams),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra_env or {})
    cmd = [sys.executable, "-m", module, "--port", "0", "--ready-file", str(ready)]
    if module == "audio_engine.server":
        cmd += ["--workers", str(workers), "--metrics-port", "0"]
    taskset = shutil.which("taskset")
    if taskset:
        cmd = [taskset, "-c", ",".join(str(c) for c in sorted(cpus)), *cmd]
    repo = Path(__file__).resolve().parents[2]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=log, stderr=subprocess.STDOUT)
    if not taskset:
        os.sched_setaffinity(proc.pid, cpus)
    deadline = time.monotonic() + timeout_s
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(10)
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the engine server did not start (log {log_path}):\n{tail}")
        time.sleep(0.1)
    info = json.loads(ready.read_text())
    return RunningServer(
        proc=proc,
        port=int(info["port"]),
        metrics_port=None if info.get("metrics_port") is None else int(info["metrics_port"]),
        log_path=log_path,
        cpus=set(cpus),
    )


def stop_server(server: RunningServer, *, timeout_s: float = 30.0) -> int | None:
    """SIGTERM (graceful stop), then SIGKILL after ``timeout_s``; returns the exit code."""
    proc = server.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from ``/proc/<pid>/task/*/children``)."""
    out, todo = [], [pid]
    while todo and len(out) < 1000:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError):
                    text = Path(f"/proc/{p}/task/{task}/children").read_text()
                    todo.extend(int(c) for c in text.split())
    return out


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def tree_cpu_s(pids: Iterable[int]) -> float:
    """utime + stime (s) summed over processes (vanished ones count 0)."""
    total = 0.0
    for pid in pids:
        text = _read(f"/proc/{pid}/stat")
        if text is not None:
            total += parse_proc_cpu_s(text, CLOCK_TICKS)
    return total


def tree_rss_bytes(pids: Iterable[int]) -> int:
    """VmRSS summed over processes."""
    total = 0
    for pid in pids:
        text = _read(f"/proc/{pid}/status")
        if text is not None:
            total += parse_rss_bytes(text)
    return total


def core_ticks(cpus: Iterable[int]) -> dict[int, tuple[int, int]]:
    """(busy, total) jiffies per CPU, from ``/proc/stat``."""
    text = Path("/proc/stat").read_text()
    return {cpu: core_busy_ticks(text, cpu) for cpu in cpus}


def pin_tree(pid: int, cpus: set[int]) -> int:
    """Pin every thread of ``pid`` and its descendants to ``cpus``; returns the threads
    pinned."""
    n = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{p}/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(task), cpus)
                    n += 1
    return n


def scrape_metrics(port: int, *, timeout_s: float = 5.0) -> dict[str, float]:
    """The server's Prometheus samples (``name{labels}`` -> value) from 127.0.0.1:port."""
    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = float(sample.value)
    return out
