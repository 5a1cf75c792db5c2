"""Errors of the gRPC server's own rules (streams, resume, load), part of the engine's tree.

The tree (under :class:`~audio_engine.errors.AudioEngineError`) is::

    AudioEngineError
    └── ServerError                 a call breaks a rule of the server
        ├── StreamNotFoundError     resume_stream_id is unknown or its window expired
        ├── StreamOwnerError        the stream belongs to another token subject
        ├── StreamBusyError         the call holding the stream did not let go of it
        ├── StreamTakenOverError    a resume moved the stream to a newer call
        ├── StreamCutError          the requests ended without EndOfStream (kept to resume)
        ├── CheckpointStoreError    the store of cut streams (for resumes) is unreachable
        ├── OverloadedError         the process already serves its maximum of streams
        └── ShuttingDownError       the server is stopping

Only the interceptor (:mod:`audio_engine.server.interceptors`) turns them into status codes.
"""

from __future__ import annotations

from audio_engine.errors import AudioEngineError

__all__ = [
    "CheckpointStoreError",
    "OverloadedError",
    "ServerError",
    "ShuttingDownError",
    "StreamBusyError",
    "StreamCutError",
    "StreamNotFoundError",
    "StreamOwnerError",
    "StreamTakenOverError",
]


class ServerError(AudioEngineError):
    """A call breaks a rule of the server; the message names the value."""


class StreamNotFoundError(ServerError):
    """No stream with that id is kept (never existed, ended, or its resume window expired)."""


class StreamOwnerError(ServerError):
    """The stream was opened with a token of another subject."""


class StreamBusyError(ServerError):
    """The call holding the stream did not let go of it when a resume took it over."""


class StreamCutError(ServerError):
    """The call's requests ended without EndOfStream: the stream is kept for a resume."""


class StreamTakenOverError(ServerError):
    """A resume with this stream's id moved the stream to a newer call (told to the old
    call, which ends)."""


class CheckpointStoreError(ServerError):
    """The store of cut streams cannot be reached, so a resume cannot be looked up."""


class OverloadedError(ServerError):
    """The process serves its maximum number of concurrent streams."""


class ShuttingDownError(ServerError):
    """The server is stopping and takes no new stream."""
