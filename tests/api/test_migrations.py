"""Migrations: up, down and up again on SQLite and PostgreSQL, and the migrated schema equals
the models (a model change without its migration fails here)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

import api.models  # noqa: F401
from api.db import Base
from api.migrate import downgrade, include_name, upgrade
from mpt.settings import Settings
from tests._support.services import require_postgres
from tests.api._support.db import postgres_database


def _inspect(url: str) -> tuple[list[Any], set[str]]:
    async def run() -> tuple[list[Any], set[str]]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                diff = await conn.run_sync(
                    lambda sc: compare_metadata(
                        MigrationContext.configure(sc, opts={"include_name": include_name}),
                        Base.metadata,
                    )
                )
                tables = await conn.run_sync(lambda sc: set(inspect(sc).get_table_names()))
        finally:
            await engine.dispose()
        return diff, tables

    return asyncio.run(run())


def _round_trip(url: str) -> None:
    settings = Settings()
    upgrade(settings, url=url)
    diff, tables = _inspect(url)
    assert diff == [], f"models and migrations differ: {diff}"
    assert set(Base.metadata.tables) <= tables
    downgrade(settings, "base", url=url)
    _diff, tables = _inspect(url)
    assert tables <= {"alembic_version"}, f"left after downgrade: {tables}"
    upgrade(settings, url=url)
    diff, _tables = _inspect(url)
    assert diff == []


def test_migrations_round_trip_on_sqlite(tmp_path: Path) -> None:
    _round_trip(f"sqlite+aiosqlite:///{tmp_path / 'm.sqlite3'}")


@pytest.mark.postgres
def test_migrations_round_trip_on_postgres() -> None:
    server = require_postgres()
    with postgres_database(server) as url:
        _round_trip(url)
