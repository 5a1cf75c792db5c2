"""The systems under test (the engine and the peers), audio loading, and cache fingerprints.

The engine is called exactly as a user would: ``audio_engine.analyze(samples, sr)`` for
onsets, beats and tempo (not told the target), and ``analyze(samples, sr, target_bpm=...,
grid_start_s=...)`` for the practice report; the subdivision is never passed, the engine must
infer it.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from benchmarks.peers import PEERS, Detection, require_peers

__all__ = [
    "ENGINE",
    "SYSTEMS",
    "EngineMissingError",
    "check_systems",
    "detector",
    "engine_detect",
    "engine_practice",
    "engine_source_hash",
    "load_clip_audio",
    "loader_fingerprint",
    "require_engine",
    "system_fingerprint",
]

ENGINE = "engine"
SYSTEMS: tuple[str, ...] = (ENGINE, *PEERS)
REPO_ROOT = Path(__file__).resolve().parent.parent
ENGINE_DIR = REPO_ROOT / "audio_engine"
PEERS_FILE = Path(__file__).resolve().parent / "peers.py"


class EngineMissingError(RuntimeError):
    """``audio_engine.analyze`` cannot be imported."""


def _hash_files(paths: list[Path], root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(str(p.relative_to(root)).encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def engine_source_hash() -> str:
    """SHA-256 over every ``audio_engine/**/*.py`` (path and content), so edits re-run it."""
    paths = [p for p in ENGINE_DIR.rglob("*.py") if "__pycache__" not in p.parts]
    return _hash_files(paths, REPO_ROOT)


def require_engine() -> None:
    """Raise :class:`EngineMissingError` unless ``audio_engine.analyze`` imports."""
    try:
        module = importlib.import_module("audio_engine.analysis")
        module.analyze  # noqa: B018 - the attribute must exist
    except (ImportError, AttributeError) as exc:
        raise EngineMissingError(
            f"audio_engine.analyze is not importable ({exc}); benchmark the peers alone "
            "with --systems librosa,essentia,aubio"
        ) from exc


def loader_fingerprint() -> str:
    """Which loader decodes the clips: ``audio_engine.io`` (hash of its source) or soundfile."""
    io_file = ENGINE_DIR / "io.py"
    if io_file.exists():
        return "audio_engine.io:" + hashlib.sha256(io_file.read_bytes()).hexdigest()[:16]
    return "soundfile"


def system_fingerprint(system: str, peer_versions: dict[str, str]) -> str:
    """A string that changes whenever the system's code or version changes."""
    if system == ENGINE:
        return f"engine:{engine_source_hash()}"
    peers_hash = hashlib.sha256(PEERS_FILE.read_bytes()).hexdigest()[:16]
    return f"{system}:{peer_versions[system]}:{peers_hash}"


def _to_mono_f32(samples: NDArray[Any]) -> NDArray[np.float32]:
    y = np.asarray(samples)
    if y.ndim == 2:  # (n, channels) or (channels, n): average the shorter axis
        y = y.mean(axis=1) if y.shape[1] <= y.shape[0] else y.mean(axis=0)
    if y.ndim != 1:
        raise ValueError(f"cannot make mono audio from shape {y.shape}")
    return np.ascontiguousarray(y, dtype=np.float32)


def load_clip_audio(path: Path) -> tuple[NDArray[np.float32], int]:
    """Decode a clip to mono float32 with ``audio_engine.io.load_audio`` or soundfile.

    Every system gets the same samples. ``load_audio`` may return ``(samples, sr)`` or an
    object with ``samples`` and ``sr`` attributes.
    """
    try:
        from audio_engine.io import load_audio
    except ImportError:
        import soundfile

        data, sr = soundfile.read(str(path), dtype="float32", always_2d=False)
        return _to_mono_f32(data), int(sr)
    loaded = load_audio(path)
    if isinstance(loaded, tuple):
        samples, sr = loaded
    else:
        samples, sr = loaded.samples, loaded.sr
    return _to_mono_f32(samples), int(sr)


def engine_detect(samples: NDArray[np.float32], *, sr: int) -> Detection:
    """Run the engine without a target: onsets, beats and tempo."""
    from audio_engine import analyze

    result = analyze(samples, sr)
    return Detection(
        np.sort(np.asarray(result.onsets, dtype=np.float64)),
        np.sort(np.asarray(result.beats, dtype=np.float64)),
        None if result.tempo_bpm is None else float(result.tempo_bpm),
    )


def engine_practice(
    samples: NDArray[np.float32], *, sr: int, target_bpm: float, grid_start_s: float
) -> dict[str, Any]:
    """Run the engine told the target (not the subdivision) and return its timing report."""
    from audio_engine import analyze

    result = analyze(samples, sr, target_bpm=target_bpm, grid_start_s=grid_start_s)
    timing = result.timing
    if timing is None:
        raise RuntimeError(f"analyze(target_bpm={target_bpm}) returned no timing report")
    return {
        "notes": [[float(t), float(d)] for t, d in timing.notes],
        "verdict": timing.verdict,
        "tempo_bpm_played": timing.tempo_bpm_played,
        "subdivision": int(timing.subdivision),
        "subdivision_inferred": bool(timing.subdivision_inferred),
    }


def detector(system: str) -> Callable[..., Detection]:
    """The ``f(samples, *, sr) -> Detection`` of a system."""
    if system == ENGINE:
        return engine_detect
    try:
        return PEERS[system]
    except KeyError:
        raise ValueError(f"unknown system {system!r}; choose from {', '.join(SYSTEMS)}") from None


def check_systems(systems: list[str]) -> dict[str, str]:
    """Fail early: every peer must import (always), the engine too when it is benchmarked.

    Returns the peers' versions.
    """
    unknown = [s for s in systems if s not in SYSTEMS]
    if unknown:
        raise ValueError(f"unknown system(s) {unknown}; choose from {', '.join(SYSTEMS)}")
    versions = require_peers()
    if ENGINE in systems:
        require_engine()
    return versions
