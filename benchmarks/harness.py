"""Run the systems over the clips: one core, warm-up, timed runs, per-clip JSON cache.

Each (clip, system) is analysed ``n_runs`` times after an untimed warm-up of that system in
the same process at the clip's sample rate (numba kernels compiled or loaded, peers imported,
caches primed); the clock (``time.perf_counter``) covers the analysis call only, never file
decoding. The outputs of the first timed run are kept for scoring. The engine's practice run
(told the target) is made once per synth take and is not timed.

Results are cached as JSON under ``benchmarks/.cache/results``; the key covers the system's
code (engine source hash, peer version and adapter hash), the decoder, the clip's bytes, the
machine and ``n_runs``, so only what changed is re-run. Failed runs are never cached.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import multiprocessing
import os
import sys
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.datasets import CACHE_DIR, Clip
from benchmarks.systems import (
    ENGINE,
    detector,
    engine_practice,
    load_clip_audio,
    loader_fingerprint,
    system_fingerprint,
)

__all__ = ["ClipRun", "ResultCache", "Runner", "cpu_model", "pinned_to", "run_all"]

CACHE_SCHEMA = 1
WARMUP_S = 10.0


@dataclass(slots=True)
class ClipRun:
    """Raw outputs of one system on one clip, with the analysis time of each timed run."""

    system: str
    set_name: str
    clip: str
    audio_s: float
    sr: int
    onsets_s: list[float]
    beats_s: list[float]
    tempo_bpm: float | None
    times_s: list[float]
    practice: dict[str, Any] | None = None
    error: str | None = None
    cached: bool = field(default=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("cached")
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClipRun:
        return cls(**data, cached=True)


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo ("unknown" elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _file_sha1(path: Path) -> str:
    h = hashlib.sha1(usedforsecurity=False)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ResultCache:
    """Per-clip JSON files ``<root>/<set>/<clip>/<system>.json`` holding a key and a run."""

    def __init__(self, root: Path = CACHE_DIR / "results", *, read: bool = True) -> None:
        self.root = root
        self.read = read

    def _path(self, set_name: str, clip: str, system: str) -> Path:
        return self.root / set_name / clip / f"{system}.json"

    def get(self, set_name: str, clip: str, system: str, key: str) -> ClipRun | None:
        path = self._path(set_name, clip, system)
        if not self.read or not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if data.get("key") != key:
            return None
        return ClipRun.from_json(data["run"])

    def put(self, run: ClipRun, key: str) -> None:
        if run.error is not None:
            return
        path = self._path(run.set_name, run.clip, run.system)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": key, "run": run.to_json()}))
        tmp.replace(path)


def _cache_key(fingerprint: str, loader: str, clip_sha1: str, n_runs: int) -> str:
    parts = {
        "schema": CACHE_SCHEMA,
        "system": fingerprint,
        "loader": loader,
        "clip": clip_sha1,
        "machine": f"{cpu_model()} x{os.cpu_count()}",
        "n_runs": n_runs,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _error_text(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1:]
    loc = f" at {where[0].filename}:{where[0].lineno}" if where else ""
    return f"{type(exc).__name__}: {exc}{loc}"


class Runner:
    """Runs systems on one clip at a time in this process; remembers what it has warmed."""

    def __init__(self, n_runs: int) -> None:
        if n_runs < 1:
            raise ValueError(f"n_runs must be >= 1, got {n_runs}")
        self.n_runs = n_runs
        self._warmed: set[tuple[str, int]] = set()

    def _warm(self, system: str, samples: NDArray[np.float32], sr: int) -> None:
        if (system, sr) in self._warmed:
            return
        detector(system)(samples[: int(WARMUP_S * sr)].copy(), sr=sr)
        self._warmed.add((system, sr))

    def run_clip(self, clip: Clip, systems: list[str]) -> list[ClipRun]:
        samples, sr = load_clip_audio(clip.audio_path)
        audio_s = len(samples) / sr
        return [self._run_one(clip, system, samples, sr, audio_s) for system in systems]

    def _run_one(
        self, clip: Clip, system: str, samples: NDArray[np.float32], sr: int, audio_s: float
    ) -> ClipRun:
        run = ClipRun(system, clip.set_name, clip.name, audio_s, sr, [], [], None, [])
        detect = detector(system)
        try:
            self._warm(system, samples, sr)
            for i in range(self.n_runs):
                gc.collect()
                t0 = time.perf_counter()
                det = detect(samples, sr=sr)
                run.times_s.append(time.perf_counter() - t0)
                if i == 0:
                    run.onsets_s = [float(t) for t in det.onsets_s]
                    run.beats_s = [float(t) for t in det.beats_s]
                    run.tempo_bpm = det.tempo_bpm
        except Exception as exc:  # a crash scores zero and is reported, not hidden
            run.error = _error_text(exc)
            run.times_s = []
            return run
        if system == ENGINE and clip.is_practice_take:
            try:
                run.practice = engine_practice(
                    samples,
                    sr=sr,
                    target_bpm=float(clip.truth["target_tempo_bpm"]),
                    grid_start_s=float(clip.truth["grid_start_s"]),
                )
            except Exception as exc:
                run.error = "practice run: " + _error_text(exc)
        return run


_WORKER: Runner | None = None


def _init_worker(cpus: Any, n_runs: int) -> None:
    global _WORKER
    os.sched_setaffinity(0, {cpus.get()})
    _WORKER = Runner(n_runs)


def _work(clip: Clip, systems: list[str]) -> list[ClipRun]:
    if _WORKER is None:
        raise RuntimeError("worker not initialised")
    return _WORKER.run_clip(clip, systems)


def _log(run: ClipRun) -> None:
    if run.error:
        status = f"ERROR {run.error}"
    elif run.times_s:
        t = float(np.median(run.times_s))
        status = f"{t:7.3f} s  x{run.audio_s / t:6.1f}" + ("  (cached)" if run.cached else "")
    else:
        status = "(no timing)"
    print(
        f"  {run.set_name:9s} {run.clip[:40]:40s} {run.system:8s} {status}",
        file=sys.stderr,
        flush=True,
    )


@contextlib.contextmanager
def pinned_to(cpu: int) -> Iterator[None]:
    """Restrict this process (and children it starts) to one CPU for the block."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def run_all(
    clips: list[Clip],
    systems: list[str],
    peer_versions: dict[str, str],
    *,
    n_runs: int,
    jobs: int,
    cache: ResultCache,
) -> list[ClipRun]:
    """Run every system on every clip (cache first), one core per worker; return all runs."""
    loader = loader_fingerprint()
    prints = {s: system_fingerprint(s, peer_versions) for s in systems}
    runs: list[ClipRun] = []
    todo: list[tuple[Clip, list[str], dict[str, str]]] = []
    for clip in clips:
        sha1 = _file_sha1(clip.audio_path)
        keys = {s: _cache_key(prints[s], loader, sha1, n_runs) for s in systems}
        missing = []
        for s in systems:
            hit = cache.get(clip.set_name, clip.name, s, keys[s])
            if hit is None:
                missing.append(s)
            else:
                runs.append(hit)
        if missing:
            todo.append((clip, missing, keys))
    print(
        f"{len(runs)} cached runs, {sum(len(t[1]) for t in todo)} to run on "
        f"{len(todo)} clips with {jobs} job(s)",
        file=sys.stderr,
        flush=True,
    )
    cpus = sorted(os.sched_getaffinity(0))
    if jobs <= 1:
        runner = Runner(n_runs)
        with pinned_to(cpus[0]):
            for clip, missing, keys in todo:
                for run in runner.run_clip(clip, missing):
                    cache.put(run, keys[run.system])
                    runs.append(run)
                    _log(run)
        return runs
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    for i in range(jobs):
        queue.put(cpus[i % len(cpus)])
    todo.sort(key=lambda t: -t[0].duration_s)  # longest first balances the workers
    with ProcessPoolExecutor(
        jobs, mp_context=ctx, initializer=_init_worker, initargs=(queue, n_runs)
    ) as pool:
        futures = {pool.submit(_work, clip, missing): keys for clip, missing, keys in todo}
        for fut in as_completed(futures):
            for run in fut.result():
                cache.put(run, futures[fut][run.system])
                runs.append(run)
                _log(run)
    return runs
