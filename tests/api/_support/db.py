"""Databases for API tests: a migrated SQLite template copied per test, and one PostgreSQL
database per test session (created from the migrations, emptied before each test, dropped at
the end), so parallel runs and other users of the server never collide."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from api.db import Base
from api.migrate import upgrade
from mpt.settings import Settings


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _with_database(url: str, name: str) -> str:
    base, _, _old = url.rpartition("/")
    return f"{base}/{name}"


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """Create a fresh database on the server of ``server_url``, migrate it to head, yield its
    URL, and drop it afterwards."""
    name = f"mpt_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(_dsn(server_url), timeout=5.0)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = _with_database(server_url, name)
    try:
        upgrade(Settings(), url=url)
        yield url
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def truncate_all(url: str) -> None:
    """Empty every table of the PostgreSQL database at ``url`` (fast per-test reset)."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)

    async def run() -> None:
        conn = await asyncpg.connect(_dsn(url), timeout=5.0)
        try:
            await conn.execute(f"TRUNCATE {tables} CASCADE")
        finally:
            await conn.close()

    asyncio.run(run())


def sqlite_template(directory: Path) -> Path:
    """A SQLite file migrated to head, to be copied for each test."""
    path = directory / "template.sqlite3"
    upgrade(Settings(), url=f"sqlite+aiosqlite:///{path}")
    return path


def sqlite_copy(template: Path, directory: Path) -> str:
    """Copy ``template`` into ``directory`` and return its URL."""
    path = directory / "api.sqlite3"
    shutil.copyfile(template, path)
    return f"sqlite+aiosqlite:///{path}"
