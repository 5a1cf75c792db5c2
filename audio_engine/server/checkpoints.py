"""Checkpoints of cut streams, shared by every engine process, so a resume may land anywhere.

Several engine processes share a port (``--workers N``, ``SO_REUSEPORT``) or sit behind a
load balancer, and a resumed call opens a new connection: it reaches any of them. When a
call is cut, its process writes the stream's state (the analyzer, the chunk sequence, the
events not yet sent) here, for as long as the resume window lasts; a process that is asked
to resume a stream it does not hold takes the checkpoint and carries on. ``take`` is atomic:
of a resume and an expiry racing for one stream, exactly one gets it, so a stream is never
continued twice and its practice session still gets exactly one summary.

Back ends: Redis when ``settings.redis.url`` is set (processes on several hosts), else the
SQLite file ``<data_dir>/engine_streams.sqlite3`` (processes on one host). A checkpoint is a
pickle of the engine's own objects: the store must be as trusted as the engine (the data
directory, or a Redis that only the services reach).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Final, Protocol

from mpt.settings import Settings

__all__ = [
    "CHECKPOINTS_FILENAME",
    "CheckpointStore",
    "RedisCheckpoints",
    "SqliteCheckpoints",
    "open_checkpoints",
]

CHECKPOINTS_FILENAME: Final = "engine_streams.sqlite3"
_REDIS_KEY: Final = ":engine:checkpoint:"


class CheckpointStore(Protocol):
    """Where cut streams wait for a resume (blocking calls: run them off the event loop)."""

    def put(self, stream_id: str, blob: bytes, ttl_s: float) -> None:
        """Store (or replace) a stream's checkpoint for ``ttl_s`` seconds."""

    def take(self, stream_id: str) -> bytes | None:
        """Remove and return a stream's checkpoint; None when there is none (never written,
        expired, or taken already)."""

    def close(self) -> None:
        """Release the connection (closing twice is fine)."""


class SqliteCheckpoints:
    """Checkpoints in a SQLite file (WAL), shared by the processes of one host.

    Parameters
    ----------
    path : Path
        The database file (created with its table when missing).
    """

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = sqlite3.connect(
            path, timeout=30.0, isolation_level=None, check_same_thread=False
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS checkpoints (stream_id TEXT PRIMARY KEY,"
            " blob BLOB NOT NULL, expires_at REAL NOT NULL)"
        )

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the checkpoint store is closed")
        return self._conn

    def put(self, stream_id: str, blob: bytes, ttl_s: float) -> None:
        now = time.time()
        with self._lock:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM checkpoints WHERE expires_at <= ?", (now,))
                db.execute(
                    "INSERT OR REPLACE INTO checkpoints (stream_id, blob, expires_at)"
                    " VALUES (?, ?, ?)",
                    (stream_id, blob, now + ttl_s),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def take(self, stream_id: str) -> bytes | None:
        with self._lock:
            row = self._db().execute(
                "DELETE FROM checkpoints WHERE stream_id = ? RETURNING blob, expires_at",
                (stream_id,),
            ).fetchone()
        if row is None or row[1] <= time.time():
            return None
        return bytes(row[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class RedisCheckpoints:
    """Checkpoints in Redis (``SET ... PX``, taken with ``GETDEL``), shared across hosts.

    Parameters
    ----------
    url : str
        ``redis://host:port/db``.
    prefix : str
        The services' key prefix (``settings.redis.key_prefix``): keys are
        ``<prefix>:engine:checkpoint:<stream id>``.
    """

    def __init__(self, url: str, *, prefix: str = "mpt") -> None:
        import redis  # only when Redis is configured

        self._client = redis.Redis.from_url(url)
        self._prefix = prefix + _REDIS_KEY

    def put(self, stream_id: str, blob: bytes, ttl_s: float) -> None:
        self._client.set(self._prefix + stream_id, blob, px=max(1, round(ttl_s * 1000)))

    def take(self, stream_id: str) -> bytes | None:
        value = self._client.getdel(self._prefix + stream_id)
        return None if value is None else bytes(value)  # type: ignore[arg-type]

    def close(self) -> None:
        self._client.close()


def open_checkpoints(settings: Settings) -> CheckpointStore:
    """Redis when ``settings.redis.url`` is set, else ``<data_dir>/engine_streams.sqlite3``.

    Raises
    ------
    DataDirError
        The data directory cannot be created.
    sqlite3.Error, redis.RedisError
        The store cannot be opened.
    """
    if settings.redis.url:
        return RedisCheckpoints(settings.redis.url, prefix=settings.redis.key_prefix)
    from mpt.datadir import ensure_data_dir

    return SqliteCheckpoints(ensure_data_dir(settings.data_dir) / CHECKPOINTS_FILENAME)
