"""Errors raised by the shared ``mpt`` package.

The tree is::

    MptError
    ├── ConfigError     a setting (environment, ``.env`` or command line) is invalid
    ├── DataDirError    the data directory cannot be created or used
    ├── TokenError      a key cannot be loaded, or a token cannot be signed or is rejected
    ├── QueueError      the durable queue cannot be opened or used, or an argument is invalid
    ├── EventError      an event envelope cannot be built from the given fields
    ├── SupervisorError a supervised service cannot be started (``mpt up``)
    ├── EngineCallError the engine cannot be reached, or a call to it failed (``mpt stream``)
    └── AudioInputError no audio input device can be opened (``mpt stream --mic``)

The CLI translates these (and the engine's errors) into one ``mpt: error:`` line.
"""

from __future__ import annotations


class MptError(Exception):
    """Base class of every error the shared package raises on purpose."""


class ConfigError(MptError):
    """A setting is invalid; the message names the setting and the value."""


class DataDirError(MptError):
    """The data directory (or a directory under it) cannot be created or used."""


class TokenError(MptError):
    """A key file cannot be loaded (the message names the path), a token cannot be signed,
    or a token is rejected (the message gives the reason and never the token's contents)."""


class QueueError(MptError):
    """The durable queue cannot be opened or used (its back end is unreachable or failed), or
    a topic, event id or payload is invalid; the message names the value or the back end."""


class EventError(MptError):
    """An event envelope cannot be built; the message names the field and its value."""


class SupervisorError(MptError):
    """A supervised service cannot be started at all; the message names it and the command."""


class EngineCallError(MptError):
    """The engine cannot be reached (the message names the address), or a call to it ended
    with a gRPC status (the message gives the status code and the server's message)."""


class AudioInputError(MptError):
    """No audio input device can be opened; the message says why (no device, or the optional
    ``sounddevice`` package or its PortAudio library is missing)."""
