"""The data directory and the numba compile cache location.

The data directory (``--data-dir`` / ``MPT_DATA_DIR``, default ``./.mpt``) holds the state of
the embedded defaults and is created private (mode 0700). numba's compile cache lives outside
it, in the user's cache directory, so ``cache=True`` kernels work even when the package is
installed read-only: :func:`configure_numba_cache` points ``NUMBA_CACHE_DIR`` there and must
run before numba is first imported (the CLI calls it first thing).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path

from mpt.errors import DataDirError

__all__ = ["configure_numba_cache", "ensure_data_dir", "ensure_subdir", "numba_cache_dir"]

DATA_DIR_MODE = 0o700


def ensure_data_dir(data_dir: Path) -> Path:
    """Resolve ``data_dir`` to an absolute path and create it with mode 0700 if missing.

    An existing directory is used as it is (its mode is not changed).

    Parameters
    ----------
    data_dir : Path
        The configured data directory; ``~`` is expanded, relative paths are taken from the
        current directory.

    Returns
    -------
    Path
        The absolute path of the directory.

    Raises
    ------
    DataDirError
        The path exists but is not a directory, or it cannot be created.
    """
    path = data_dir.expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise DataDirError(f"data directory {str(path)!r} exists and is not a directory")
    if not path.is_dir():
        try:
            path.mkdir(mode=DATA_DIR_MODE, parents=True)
            path.chmod(DATA_DIR_MODE)  # mkdir's mode is filtered by the umask
        except FileExistsError:
            pass  # created concurrently by another process
        except OSError as exc:
            raise DataDirError(
                f"cannot create data directory {str(path)!r}: {exc.strerror or exc}"
            ) from None
    return path


def ensure_subdir(data_dir: Path, name: str) -> Path:
    """Create (if needed) and return ``<data_dir>/<name>``, creating the data dir first.

    Raises
    ------
    DataDirError
        Either directory cannot be created.
    """
    path = ensure_data_dir(data_dir) / name
    try:
        path.mkdir(mode=DATA_DIR_MODE, exist_ok=True)
    except OSError as exc:
        raise DataDirError(
            f"cannot create directory {str(path)!r}: {exc.strerror or exc}"
        ) from None
    return path


def numba_cache_dir(
    cache_dir: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path:
    """Where numba's compile cache lives.

    In order: ``NUMBA_CACHE_DIR`` if set; ``<cache_dir>/numba`` if a cache directory is
    configured (``MPT_CACHE_DIR``); ``$XDG_CACHE_HOME/mpt/numba``; ``~/.cache/mpt/numba``.

    Parameters
    ----------
    cache_dir : Path, optional
        The configured cache base directory (``Settings.cache_dir``).
    environ : mapping, optional
        Environment to read; defaults to ``os.environ``.

    Returns
    -------
    Path
        The cache directory (not created).
    """
    env = os.environ if environ is None else environ
    if env.get("NUMBA_CACHE_DIR"):
        return Path(env["NUMBA_CACHE_DIR"]).expanduser()
    if cache_dir is not None:
        return cache_dir.expanduser().absolute() / "numba"
    xdg = env.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "mpt" / "numba"


def configure_numba_cache(
    cache_dir: Path | None = None, environ: MutableMapping[str, str] | None = None
) -> Path:
    """Set ``NUMBA_CACHE_DIR`` (if unset) to :func:`numba_cache_dir` and try to create it.

    Call before numba is imported: numba reads the variable once, at import. A directory that
    cannot be created is not an error — numba then falls back to its own locations.

    Parameters
    ----------
    cache_dir : Path, optional
        The configured cache base directory (``Settings.cache_dir``).
    environ : mutable mapping, optional
        Environment to update; defaults to ``os.environ``.

    Returns
    -------
    Path
        The numba cache directory now in effect.
    """
    env = os.environ if environ is None else environ
    path = numba_cache_dir(cache_dir, env)
    env.setdefault("NUMBA_CACHE_DIR", str(path))
    with contextlib.suppress(OSError):
        path.mkdir(parents=True, exist_ok=True)
    return path
