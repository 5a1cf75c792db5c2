"""Wall time of ``mpt analyze FILE --json`` on a 30 s file, in a new process each time.

Like hyperfine: one warm-up run (fills numba's on-disk compile cache), then ``n_runs`` timed
runs, median reported. Every run gets a file it has never seen: a synthetic take (picked at
random) looped to 30 s, with fresh low-level noise (random seed) added, written to a temp
folder as 16-bit FLAC. The clock (``time.perf_counter`` around ``subprocess.run``) covers
process start, imports, decoding, analysis and JSON output. The child gets the caller's
original environment and every CPU (it is not pinned to one core like the accuracy runs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchmarks.datasets import Clip

__all__ = ["CliTiming", "time_mpt_analyze"]

FILE_S = 30.0
NOISE_DB = -45.0  # relative to the take's RMS
TIMEOUT_S = 300.0


@dataclass(frozen=True, slots=True)
class CliTiming:
    """Wall times of the timed runs (seconds) and what was run."""

    command: str
    source_clip: str
    times_s: list[float] = field(default_factory=list)
    warmup_s: float | None = None
    error: str | None = None

    @property
    def median_s(self) -> float | None:
        return float(np.median(self.times_s)) if self.times_s and self.error is None else None


def _mpt_script() -> str | None:
    beside = Path(sys.executable).with_name("mpt")
    return str(beside) if beside.exists() else shutil.which("mpt")


def _write_take(source: Clip, path: Path, rng: np.random.Generator) -> None:
    import soundfile

    y, sr = soundfile.read(str(source.audio_path), dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    n = int(FILE_S * sr)
    y = np.tile(y, -(-n // len(y)))[:n]
    rms = float(np.sqrt(np.mean(y**2))) or 1e-3
    y = y + rng.normal(0.0, rms * 10 ** (NOISE_DB / 20), n).astype(np.float32)
    soundfile.write(str(path), np.clip(y, -1.0, 1.0), sr, subtype="PCM_16")


def time_mpt_analyze(
    sources: Sequence[Clip], *, env: Mapping[str, str], n_runs: int = 5
) -> CliTiming:
    """Time ``mpt analyze FILE --json`` (median of ``n_runs`` after one warm-up run)."""
    script = _mpt_script()
    if script is None:
        return CliTiming(
            "mpt analyze FILE --json",
            "",
            error="the `mpt` console script is not installed (pip install -e .)",
        )
    rng = np.random.default_rng(int.from_bytes(os.urandom(8), "little"))
    source = sources[int(rng.integers(len(sources)))]
    command = f"{script} analyze FILE --json"
    times: list[float] = []
    warmup: float | None = None
    with tempfile.TemporaryDirectory(prefix="mpt-bench-") as tmp:
        for i in range(n_runs + 1):
            path = Path(tmp) / f"take_{i}.flac"
            _write_take(source, path, rng)
            t0 = time.perf_counter()
            proc = subprocess.run(
                [script, "analyze", str(path), "--json"],
                env=dict(env),
                cwd=tmp,  # a default ./.mpt data dir lands in the temp folder
                capture_output=True,
                text=True,
                timeout=TIMEOUT_S,
                check=False,
            )
            dt = time.perf_counter() - t0
            error = None
            if proc.returncode != 0:
                error = f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}"
            else:
                try:
                    json.loads(proc.stdout)
                except json.JSONDecodeError as exc:
                    error = f"stdout is not JSON ({exc}): {proc.stdout[:200]!r}"
            if error is not None:
                return CliTiming(command, source.name, times, warmup, error)
            if i == 0:
                warmup = dt
            else:
                times.append(dt)
    return CliTiming(command, source.name, times, warmup)
