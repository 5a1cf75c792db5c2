"""Errors raised by the shared ``mpt`` package.

The tree is::

    MptError
    ├── ConfigError     a setting (environment, ``.env`` or command line) is invalid
    └── DataDirError    the data directory cannot be created or used

The CLI translates these (and the engine's errors) into one ``mpt: error:`` line.
"""

from __future__ import annotations


class MptError(Exception):
    """Base class of every error the shared package raises on purpose."""


class ConfigError(MptError):
    """A setting is invalid; the message names the setting and the value."""


class DataDirError(MptError):
    """The data directory (or a directory under it) cannot be created or used."""
