"""The ``mpt`` console script: :func:`mpt.cli.main` in a process that starts and exits fast.

Importing numba, scipy and pydantic builds several hundred thousand long-lived objects, and
Python's cyclic garbage collector scans them again and again: while they are imported, and in
the collections the interpreter runs as it exits. In a cold ``mpt analyze`` of a 30 s file
that was about a third of the wall time (median 2.7 s -> 2.0 s on a 2-core host,
``benchmarks/cli_timing.py``). So the console script starts with the collector off; a
command that runs for long (a server, a live stream) turns it back on once its imports are
done (:func:`collect_from_here`, called by :func:`mpt.cli.main`); the short ones (analyse a
file, migrate, seed) leave it off, and what is alive when they return is frozen, so the
interpreter's final collections skip it and the operating system frees it at exit.

Nothing here runs on import.
"""

from __future__ import annotations

import gc
import sys
from typing import NoReturn

__all__ = ["collect_from_here", "run"]


def run() -> NoReturn:
    """Entry point of the ``mpt`` console script: run :func:`mpt.cli.main`, exit with its code."""
    gc.disable()
    from mpt.cli import main

    code = main()
    gc.freeze()
    sys.exit(code)


def collect_from_here() -> None:
    """Turn the collector back on for a long-running command.

    What the start-up built is frozen first (it lives as long as the process; scanning it is
    wasted work). A no-op where the collector is on already (``main`` called in-process, as
    the tests do).
    """
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
