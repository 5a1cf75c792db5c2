"""Database plumbing shared by every domain: the declarative base, column types, the engine.

One way of writing SQLAlchemy 2 (``Mapped[...] = mapped_column(...)``), a naming convention so
Alembic's constraint names are stable, UUID keys (:func:`new_id` is time-ordered, UUIDv7) and
timestamps with time zone that come back timezone-aware (UTC) from SQLite too.

The engine and session factory are built by :func:`make_engine` / :func:`make_sessionmaker`
inside the app's lifespan, never at import.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import uuid_utils.compat as uuid_compat
from sqlalchemy import DateTime, MetaData, Table, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from mpt.datadir import ensure_data_dir
from mpt.settings import Settings

__all__ = [
    "Base",
    "UTCDateTime",
    "database_url",
    "is_sqlite",
    "make_engine",
    "make_read_sessionmaker",
    "make_sessionmaker",
    "new_id",
    "table_of",
    "utcnow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of every table; its metadata is what Alembic migrates."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def table_of(model: type[Base]) -> Table:
    """The table of a mapped class. An insert of a list of rows into the table is a Core
    insert; into the class it goes through the ORM's bulk processing first (on a session
    write, a sixth of the CPU of ``POST /sessions``)."""
    return cast(Table, model.__table__)


def new_id() -> uuid.UUID:
    """A new time-ordered UUID (version 7): ids created later sort later, so they page."""
    return uuid_compat.uuid7()


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """``TIMESTAMP WITH TIME ZONE`` that only accepts aware datetimes and always returns UTC.

    SQLite has no time zones: values are stored as UTC and read back with ``tzinfo=UTC``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; times must be aware")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def database_url(settings: Settings) -> str:
    """The configured URL, or the embedded SQLite file ``<data_dir>/api.sqlite3``."""
    if settings.database.url:
        return settings.database.url
    data_dir = ensure_data_dir(settings.data_dir)
    return f"sqlite+aiosqlite:///{Path(data_dir).resolve() / 'api.sqlite3'}"


def is_sqlite(url: str) -> bool:
    """True when ``url`` names a SQLite database."""
    return url.startswith("sqlite")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; foreign keys are off by default in SQLite;
    # busy_timeout makes a second writer wait instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(settings: Settings, *, url: str | None = None) -> AsyncEngine:
    """Build the async engine for ``url`` (default :func:`database_url`)."""
    url = url or database_url(settings)
    db = settings.database
    if is_sqlite(url):
        engine = create_async_engine(url, echo=db.echo)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        echo=db.echo,
        pool_size=db.pool_size,
        max_overflow=db.max_overflow,
        pool_timeout=db.pool_timeout_s,
        # no ping per checkout: it costs a round trip on every request. A connection that
        # died (database restarted) fails its statement instead; SQLAlchemy then invalidates
        # the whole pool, so later checkouts reconnect, and the request that met the dead
        # connection gets 503 ``database_unavailable`` (api.errors) and may simply retry.
        pool_pre_ping=False,
    )


def make_sessionmaker(
    engine: AsyncEngine, *, info: dict[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit (no lazy loads in async code).
    ``info`` is each session's ``info`` (the app puts its facts cache there)."""
    return async_sessionmaker(engine, expire_on_commit=False, info=info)


def make_read_sessionmaker(
    engine: AsyncEngine, *, info: dict[str, Any] | None = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions for read-only requests: the same pool in autocommit mode, so a read sends no
    ``BEGIN``/``COMMIT`` (two round trips of the three to five a read route makes). Each
    statement sees the data committed when it runs, not one snapshot for the request (as in
    Django's default autocommit mode); routes whose answer must be one consistent snapshot
    (the sync pull) and anything that writes use :func:`make_sessionmaker`'s sessions."""
    return async_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"),
                              expire_on_commit=False, info=info)
