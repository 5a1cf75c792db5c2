"""Tests of mpt/datadir.py: the private data directory and the numba cache location."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mpt.datadir import configure_numba_cache, ensure_data_dir, ensure_subdir, numba_cache_dir
from mpt.errors import DataDirError


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_dir_is_created_private(tmp_path: Path, permissive_umask: None) -> None:
    path = ensure_data_dir(tmp_path / "a" / "b" / ".mpt")

    assert path.is_dir()
    assert mode(path) == 0o700


def test_relative_data_dir_resolves_against_cwd(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)

    path = ensure_data_dir(Path(".mpt"))

    assert path == tmp_path / ".mpt"
    assert path.is_absolute()


def test_existing_data_dir_keeps_its_mode(tmp_path: Path) -> None:
    existing = tmp_path / "shared"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)

    assert ensure_data_dir(existing) == existing
    assert mode(existing) == 0o755


def test_file_in_the_way_is_an_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")

    with pytest.raises(DataDirError, match="file"):
        ensure_data_dir(blocker)
    with pytest.raises(DataDirError, match=str(blocker)):
        ensure_data_dir(blocker / "below")


def test_subdir_is_private_too(tmp_path: Path, permissive_umask: None) -> None:
    demo = ensure_subdir(tmp_path / ".mpt", "demo")

    assert demo == tmp_path / ".mpt" / "demo"
    assert mode(demo) == 0o700
    assert mode(demo.parent) == 0o700


def test_numba_cache_dir_prefers_numba_cache_dir(tmp_path: Path) -> None:
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "n"), "XDG_CACHE_HOME": str(tmp_path / "x")}

    assert numba_cache_dir(tmp_path / "c", env) == tmp_path / "n"


def test_numba_cache_dir_under_configured_cache_dir(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "x")}

    assert numba_cache_dir(tmp_path / "c", env) == tmp_path / "c" / "numba"


def test_numba_cache_dir_follows_xdg(tmp_path: Path) -> None:
    assert numba_cache_dir(None, {"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "mpt" / "numba"


@pytest.mark.parametrize("xdg", [None, "", "relative/dir"])
def test_numba_cache_dir_falls_back_to_home_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, xdg: str | None
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    env = {} if xdg is None else {"XDG_CACHE_HOME": xdg}

    assert numba_cache_dir(None, env) == tmp_path / ".cache" / "mpt" / "numba"


def test_configure_numba_cache_sets_and_creates(tmp_path: Path) -> None:
    env: dict[str, str] = {"XDG_CACHE_HOME": str(tmp_path)}

    path = configure_numba_cache(None, env)

    assert env["NUMBA_CACHE_DIR"] == str(tmp_path / "mpt" / "numba")
    assert path.is_dir()


def test_configure_numba_cache_keeps_an_existing_setting(tmp_path: Path) -> None:
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "mine")}

    assert configure_numba_cache(tmp_path / "c", env) == tmp_path / "mine"
    assert env == {"NUMBA_CACHE_DIR": str(tmp_path / "mine")}


def test_unwritable_cache_location_is_not_an_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    env = {"XDG_CACHE_HOME": str(blocker)}

    assert configure_numba_cache(None, env) == blocker / "mpt" / "numba"
