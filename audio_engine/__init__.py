"""Numba-accelerated onset, tempo and beat analysis with practice timing feedback.

Public API: :func:`analyze`, :func:`analyze_file`, :class:`AnalysisResult`, :class:`TimingReport`,
:func:`load_audio`.
Imports are lazy so that ``import audio_engine`` stays cheap and side-effect free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audio_engine.analysis import analyze, analyze_file
    from audio_engine.io import load_audio
    from audio_engine.result import AnalysisResult, TimingReport

__all__ = ["AnalysisResult", "TimingReport", "analyze", "analyze_file", "load_audio"]


def __getattr__(name: str) -> Any:
    if name in ("analyze", "analyze_file"):
        from audio_engine import analysis

        return getattr(analysis, name)
    if name == "load_audio":
        from audio_engine.io import load_audio

        return load_audio
    if name in ("AnalysisResult", "TimingReport"):
        from audio_engine import result

        return getattr(result, name)
    raise AttributeError(f"module 'audio_engine' has no attribute {name!r}")
