"""Schema migrations through Alembic, on SQLite and PostgreSQL alike.

The scripts live in ``api/migrations/versions``; the configuration is built here (no
``alembic.ini`` to find), so ``mpt db upgrade`` and the API's start-up work from any directory.
Alembic's commands are synchronous and run their own event loop: call them from a thread when
an event loop is running (:func:`upgrade_async`).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from api.db import database_url
from mpt.settings import Settings

__all__ = ["alembic_config", "downgrade", "include_name", "upgrade", "upgrade_async"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Partitions of ``practice_metrics`` on PostgreSQL (made at run time, not by the models).
_PARTITION_RE = re.compile(r"practice_metrics_(default|y\d{4}m\d{2})")


def include_name(name: str | None, type_: str, _parents: Any) -> bool:
    """Alembic's filter: leave the metric table's monthly partitions out of comparisons."""
    return not (type_ == "table" and name is not None and _PARTITION_RE.fullmatch(name))


def alembic_config(settings: Settings, *, url: str | None = None) -> Config:
    """An Alembic configuration for ``url`` (default: the configured database)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["database_url"] = url or database_url(settings)
    return config


def upgrade(settings: Settings, revision: str = "head", *, url: str | None = None) -> None:
    """Migrate the database up to ``revision``."""
    command.upgrade(alembic_config(settings, url=url), revision)


def downgrade(settings: Settings, revision: str = "base", *, url: str | None = None) -> None:
    """Migrate the database down to ``revision`` (``base`` drops every table)."""
    command.downgrade(alembic_config(settings, url=url), revision)


async def upgrade_async(settings: Settings, revision: str = "head", *,
                        url: str | None = None) -> None:
    """:func:`upgrade` from async code (in a worker thread with its own event loop)."""
    await asyncio.to_thread(upgrade, settings, revision, url=url)
