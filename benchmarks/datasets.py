"""The evaluation subsets: where they live, how their clips are listed, the fresh synth set.

``dev-real`` and ``dev-synth`` are read in place from ``<repo>/../shared/eval/dev`` (or
``$MPT_EVAL_DIR/dev``); ``fresh`` is rendered once by the eval's own ``synth.py`` (seed 123,
40 takes, base instrument pool) into ``benchmarks/.cache/fresh123`` and reused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "CACHE_DIR",
    "SET_NAMES",
    "Clip",
    "DatasetError",
    "ensure_fresh_set",
    "ensure_rendered_set",
    "eval_dir",
    "list_clips",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / "benchmarks" / ".cache"
SET_NAMES = ("dev-real", "dev-synth", "fresh")
FRESH_N = 40
FRESH_SEED = 123
FRESH_DIR = CACHE_DIR / f"fresh{FRESH_SEED}"
SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
_COMPLETE = ".complete"


class DatasetError(RuntimeError):
    """An evaluation subset is missing or cannot be generated."""


@dataclass(frozen=True, slots=True)
class Clip:
    """One annotated clip: its audio file and its ground truth (the JSON as loaded)."""

    set_name: str
    name: str
    audio_path: Path
    truth: dict[str, Any]

    @property
    def duration_s(self) -> float:
        return float(self.truth["duration_s"])

    @property
    def is_practice_take(self) -> bool:
        return "played_notes" in self.truth and "target_tempo_bpm" in self.truth


def eval_dir() -> Path:
    """``$MPT_EVAL_DIR`` if set, else ``<repo>/../shared/eval``."""
    env = os.environ.get("MPT_EVAL_DIR")
    return Path(env).resolve() if env else (REPO_ROOT.parent / "shared" / "eval").resolve()


def _set_dir(set_name: str) -> Path:
    if set_name == "dev-real":
        return eval_dir() / "dev" / "real"
    if set_name == "dev-synth":
        return eval_dir() / "dev" / "synth"
    if set_name == "fresh":
        return FRESH_DIR
    raise DatasetError(f"unknown set {set_name!r}; choose from {', '.join(SET_NAMES)}")


def ensure_fresh_set() -> Path:
    """Render the fresh synthetic set once (``synth.py --n 40 --seed 123 --pool base``)."""
    return _ensure_rendered(FRESH_DIR, seed=FRESH_SEED, pool="base", n=FRESH_N, label="fresh set")


def ensure_rendered_set(seed: int, *, pool: str = "all", n: int = 40) -> Path:
    """Render ``synth.py --n N --seed SEED --pool POOL`` once into ``benchmarks/.cache``
    (``synth-<pool>-<seed>``) and return its folder: more takes never tuned on, for
    checking that a change is not fitted to the dev and fresh sets."""
    if pool not in ("base", "all"):
        raise DatasetError(f"pool must be 'base' or 'all', got {pool!r}")
    if n < 1:
        raise DatasetError(f"n must be at least 1, got {n!r}")
    folder = CACHE_DIR / (f"synth-{pool}-{seed}" + ("" if n == 40 else f"-{n}"))
    return _ensure_rendered(folder, seed=seed, pool=pool, n=n, label=f"seed {seed}")


def _ensure_rendered(folder: Path, *, seed: int, pool: str, n: int, label: str) -> Path:
    if (folder / _COMPLETE).exists():
        return folder
    synth = eval_dir() / "synth.py"
    if not synth.exists():
        raise DatasetError(f"{synth} not found; set MPT_EVAL_DIR to the shared eval folder")
    if shutil.which("fluidsynth") is None or not SOUNDFONT.exists():
        raise DatasetError(
            f"rendering the {label} needs FluidSynth and the FluidR3 GM soundfont "
            f"({SOUNDFONT}); install them with: apt-get install fluidsynth fluid-soundfont-gm"
        )
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cmd = [sys.executable, str(synth), str(tmp), "--n", str(n), "--seed", str(seed), "--pool", pool]
    print(f"rendering the {label}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise DatasetError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    n_json = len(list(tmp.glob("*.json")))
    if n_json != n:
        raise DatasetError(f"synth.py wrote {n_json} takes into {tmp}, expected {n}")
    (tmp / _COMPLETE).write_text(" ".join(cmd).replace(str(tmp), str(folder)) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def list_clips(set_name: str) -> list[Clip]:
    """All clips of a subset, sorted by name (renders the fresh set on first use)."""
    folder = ensure_fresh_set() if set_name == "fresh" else _set_dir(set_name)
    if not folder.is_dir():
        raise DatasetError(f"set {set_name!r}: folder {folder} not found (MPT_EVAL_DIR?)")
    clips = []
    for meta in sorted(folder.glob("*.json")):
        audio = meta.with_suffix(".flac")
        if not audio.exists():
            raise DatasetError(f"{meta} has no audio file {audio.name}")
        truth = json.loads(meta.read_text())
        clips.append(Clip(set_name, meta.stem, audio, truth))
    if not clips:
        raise DatasetError(f"set {set_name!r}: no clips in {folder}")
    return clips
