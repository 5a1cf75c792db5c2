"""The API's side of the ``mpt`` commands that work on its database.

``mpt db upgrade|downgrade|current``, ``mpt admin create`` and ``mpt seed`` call these
functions (imported inside the command, so ``mpt`` itself loads no service). Each one is
synchronous, opens what it needs and closes it again, and raises only
:class:`mpt.errors.MptError` (exit 1: the database does not answer, an unknown revision, an
e-mail already taken ...) or :class:`mpt.errors.ConfigError` (exit 2: an unusable database
URL), with a message that names the value; ``mpt`` prints it as one ``mpt: error:`` line.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from api.db import database_url, make_engine, make_sessionmaker
from api.errors import ApiError
from api.migrate import alembic_config, downgrade, upgrade
from mpt.errors import ConfigError, MptError
from mpt.settings import Settings

__all__ = [
    "ASYNC_DRIVERS",
    "CreatedUser",
    "Revisions",
    "checked_url",
    "create_admin",
    "db_current",
    "db_downgrade",
    "db_upgrade",
    "safe_url",
    "seed",
]

#: The database URL schemes the API runs on (async drivers).
ASYNC_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Revisions:
    """The schema revision a database is at, and the newest one the code knows.

    Attributes
    ----------
    url : str
        The database (password hidden).
    current : tuple of str
        Revisions applied (empty for a database without the schema).
    heads : tuple of str
        The newest revisions of the migration scripts.
    """

    url: str
    current: tuple[str, ...]
    heads: tuple[str, ...]

    @property
    def up_to_date(self) -> bool:
        """True when the database is at the newest revision."""
        return set(self.current) == set(self.heads)


@dataclass(frozen=True, slots=True)
class CreatedUser:
    """An account made from the command line."""

    id: str
    email: str
    role: str


def safe_url(url: str) -> str:
    """``url`` with its password hidden (for messages)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def checked_url(settings: Settings) -> str:
    """The database URL, refused (``ConfigError``) unless it names a driver the API runs on."""
    url = database_url(settings)
    try:
        driver = make_url(url).drivername
    except ArgumentError:
        raise ConfigError(
            f"MPT_DATABASE__URL={url!r} is not a database URL; use "
            "postgresql+asyncpg://USER[:PASSWORD]@HOST:PORT/DB or sqlite+aiosqlite:///PATH"
        ) from None
    if driver not in ASYNC_DRIVERS:
        raise ConfigError(
            f"MPT_DATABASE__URL={safe_url(url)!r} uses the driver {driver!r}; the API needs "
            f"one of {', '.join(ASYNC_DRIVERS)} (e.g. postgresql+asyncpg://...)"
        )
    return url


@contextlib.contextmanager
def _database_errors(url: str) -> Iterator[None]:
    """Translate what the database, Alembic and the services raise into ``MptError``."""
    where = safe_url(url)
    try:
        yield
    except (ConfigError, MptError):
        raise
    except CommandError as exc:
        raise MptError(f"migration of {where} failed: {exc}") from None
    except ApiError as exc:
        raise MptError(exc.detail) from None
    except (NoSuchModuleError, ArgumentError) as exc:
        raise ConfigError(f"MPT_DATABASE__URL={where!r} cannot be used: {exc}") from None
    except DBAPIError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise MptError(f"cannot use the database {where}: {reason}") from None
    except (OSError, TimeoutError) as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise MptError(f"cannot connect to the database {where}: {reason}") from None
    except SQLAlchemyError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise MptError(f"cannot use the database {where}: {reason}") from None


def _with_engine(settings: Settings, url: str,
                 work: Callable[[AsyncEngine], Awaitable[_T]]) -> _T:
    async def run() -> _T:
        engine = make_engine(settings, url=url)
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


# --------------------------------------------------------------------------------------------
# mpt db


def db_upgrade(settings: Settings, revision: str = "head") -> Revisions:
    """Migrate the database up to ``revision``; the revisions afterwards."""
    url = checked_url(settings)
    with _database_errors(url):
        upgrade(settings, revision, url=url)
    return db_current(settings)


def db_downgrade(settings: Settings, revision: str) -> Revisions:
    """Migrate the database down to ``revision`` (``base`` drops every table)."""
    url = checked_url(settings)
    with _database_errors(url):
        downgrade(settings, revision, url=url)
    return db_current(settings)


def db_current(settings: Settings) -> Revisions:
    """The revision the database is at, and the newest one."""
    url = checked_url(settings)
    heads = tuple(ScriptDirectory.from_config(alembic_config(settings, url=url)).get_heads())

    def current_heads(conn: Connection) -> tuple[str, ...]:
        return tuple(MigrationContext.configure(conn).get_current_heads())

    async def read(engine: AsyncEngine) -> tuple[str, ...]:
        async with engine.connect() as conn:
            return await conn.run_sync(current_heads)

    with _database_errors(url):
        current = _with_engine(settings, url, read)
    return Revisions(url=safe_url(url), current=current, heads=heads)


# --------------------------------------------------------------------------------------------
# mpt admin create, mpt seed


def _prepared(settings: Settings) -> str:
    """The checked URL, the schema migrated first when ``auto_migrate`` is on (as the API
    does when it starts)."""
    url = checked_url(settings)
    if settings.database.auto_migrate:
        with _database_errors(url):
            upgrade(settings, url=url)
    return url


def create_admin(
    settings: Settings, *, email: str, password: str, display_name: str, timezone: str = "UTC"
) -> CreatedUser:
    """Create an administrator account (the only way to make one)."""
    from api.accounts.passwords import make_hasher
    from api.accounts.service import create_user

    url = _prepared(settings)

    async def work(engine: AsyncEngine) -> CreatedUser:
        sessions: async_sessionmaker[AsyncSession] = make_sessionmaker(engine)
        async with sessions() as db:
            user = await create_user(
                db, make_hasher(settings.api.password_hash), email=email, password=password,
                role="admin", display_name=display_name, timezone=timezone,
            )
            return CreatedUser(id=str(user.id), email=user.email, role=user.role)

    with _database_errors(url):
        return _with_engine(settings, url, work)


def seed(settings: Settings) -> list[str]:
    """Create the global tags that never existed; the names created (none on a rerun)."""
    from api.library.service import seed_global_tags

    url = _prepared(settings)

    async def work(engine: AsyncEngine) -> list[str]:
        async with make_sessionmaker(engine)() as db:
            return await seed_global_tags(db)

    with _database_errors(url):
        return _with_engine(settings, url, work)
