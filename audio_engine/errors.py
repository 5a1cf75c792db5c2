"""Errors raised by the audio engine.

The tree is::

    AudioEngineError
    ├── ParameterError      an argument or the audio itself is invalid (NaN, bad sample rate, ...)
    ├── AudioDecodeError    a file is missing, unreadable, corrupt or holds no audio
    └── StateVersionError   a saved stream state comes from an engine that kept other state

Services translate these at their edges only (the CLI prints one line, the gRPC
interceptor maps them to status codes).
"""

from __future__ import annotations


class AudioEngineError(Exception):
    """Base class of every error the engine raises on purpose."""


class ParameterError(AudioEngineError, ValueError):
    """An argument or the audio samples are invalid; the message names the value."""


class AudioDecodeError(AudioEngineError):
    """A file could not be opened or decoded into audio samples."""


class StateVersionError(AudioEngineError):
    """A pickled :class:`~audio_engine.stream.StreamAnalyzer` (a checkpoint of a live stream)
    was written by an engine version whose analyzer kept other state; it cannot be restored
    by this one."""
