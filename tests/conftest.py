"""Suite-wide setup: one shared numba compile cache, set before numba is first imported."""

from __future__ import annotations

import os

import pytest

from mpt.datadir import numba_cache_dir


def pytest_configure(config: pytest.Config) -> None:
    # Compiled kernels are cached across test processes (and the `mpt` subprocess tests),
    # so the suite compiles each kernel once. scripts/test.sh exports its own directory.
    os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_cache_dir()))
