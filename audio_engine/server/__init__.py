"""The audio engine's gRPC server (``mpt.audio.v1.AudioAnalysis``, grpc.aio).

A thin adapter: :mod:`.convert` (protobuf ⇄ domain), :mod:`.servicer` (the async generator),
:mod:`.streams` (per-stream state, resume, hand-off), :mod:`.interceptors` (authentication
and status codes), :mod:`.metrics` and :mod:`.main` (:func:`serve`, :func:`start_server`).
Imports are lazy so that importing this package loads neither grpc nor the engine's kernels
(the numba cache directory must be configured first).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audio_engine.server.main import serve, start_server

__all__ = ["serve", "start_server"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from audio_engine.server import main

        return getattr(main, name)
    raise AttributeError(f"module 'audio_engine.server' has no attribute {name!r}")
