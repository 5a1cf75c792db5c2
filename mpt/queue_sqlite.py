"""The durable queue on a SQLite file (the embedded defaults' back end).

Two tables. ``messages`` holds each published message once, unique on ``(topic,
event_id)``, so a repeated publish inserts nothing. ``deliveries`` holds one row per message
per consumer group that has claimed it: the lease owner and expiry, the number of
deliveries, and when it was acknowledged — the group's pending list, as in Redis Streams.
Messages are numbered in commit order, so a group's not-yet-delivered messages are exactly
those numbered above the highest it has claimed.

Every operation is one short ``BEGIN IMMEDIATE`` transaction (the write lock is taken up
front, so two claimers never read the same free message), the database is in WAL mode with
``synchronous=FULL``, and a ``busy_timeout`` makes processes wait for each other's
transactions rather than fail. A process killed at any point leaves either the whole
transaction or none of it. One :class:`SqliteQueue` may be shared by the threads of a
process (a lock serializes them); every process opens its own.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from mpt.errors import QueueError
from mpt.queue import (
    ClosingQueue,
    Message,
    check_claim_args,
    check_event_id,
    check_name,
    check_topic,
    decode_payload,
    encode_payload,
)

__all__ = ["SqliteQueue"]

POLL_S: Final = 0.05
_SCHEMA: Final = (
    """CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        topic TEXT NOT NULL,
        event_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        published_at REAL NOT NULL,
        UNIQUE (topic, event_id)
    )""",
    "CREATE INDEX IF NOT EXISTS messages_topic_id ON messages (topic, id)",
    """CREATE TABLE IF NOT EXISTS deliveries (
        grp TEXT NOT NULL,
        message_id INTEGER NOT NULL REFERENCES messages (id),
        topic TEXT NOT NULL,
        lease_owner TEXT NOT NULL,
        lease_expires_at REAL NOT NULL,
        attempts INTEGER NOT NULL,
        acked_at REAL,
        PRIMARY KEY (grp, message_id)
    )""",
    "CREATE INDEX IF NOT EXISTS deliveries_claimed ON deliveries (topic, grp, message_id)",
    """CREATE INDEX IF NOT EXISTS deliveries_leased
        ON deliveries (topic, grp, lease_expires_at) WHERE acked_at IS NULL""",
)


def _set_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Put the database in WAL mode. Switching needs the database to itself, and SQLite
    answers "database is locked" at once, without its busy handler, while another process
    opens it too (two engine workers starting together): retry until ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


class SqliteQueue(ClosingQueue):
    """A :class:`~mpt.queue.DurableQueue` on a SQLite file, safe across processes.

    Parameters
    ----------
    path : Path
        The database file (created, with its tables, if missing); its directory must exist.
    busy_timeout_s : float, optional
        How long an operation waits for another process's transaction, in seconds.

    Raises
    ------
    QueueError
        The file cannot be opened or is not a queue database.
    """

    def __init__(self, path: Path, *, busy_timeout_s: float = 10.0) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(
                path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise QueueError(f"cannot open queue database {str(path)!r}: {exc}") from None
        self._conn = conn
        try:
            conn.execute(f"PRAGMA busy_timeout = {max(0, int(busy_timeout_s * 1000))}")
            _set_wal(conn, busy_timeout_s)
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            with self._transaction() as tx:
                for statement in _SCHEMA:
                    tx.execute(statement)
        except sqlite3.Error as exc:
            self.close()
            raise QueueError(f"cannot open queue database {str(path)!r}: {exc}") from None
        except QueueError:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"SqliteQueue({str(self._path)!r})"

    def publish(self, topic: str, event_id: str, payload: dict[str, Any]) -> bool:
        """See :meth:`mpt.queue.DurableQueue.publish`."""
        check_topic(topic)
        check_event_id(event_id)
        text = encode_payload(topic, event_id, payload)
        with self._transaction() as tx:
            cursor = tx.execute(
                "INSERT INTO messages (topic, event_id, payload, published_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (topic, event_id) DO NOTHING",
                (topic, event_id, text, time.time()),
            )
            return cursor.rowcount == 1

    def claim(
        self,
        topic: str,
        consumer: str,
        *,
        group: str = "default",
        lease_s: float = 30.0,
        max_items: int = 1,
        block_s: float = 0.0,
    ) -> list[Message]:
        """See :meth:`mpt.queue.DurableQueue.claim` (waiting polls every 50 ms)."""
        check_topic(topic)
        check_name("consumer", consumer)
        check_name("group", group)
        check_claim_args(lease_s, max_items, block_s)
        deadline = time.monotonic() + block_s
        while True:
            messages = self._claim_once(topic, consumer, group, lease_s, max_items)
            remaining = deadline - time.monotonic()
            if messages or remaining <= 0:
                return messages
            time.sleep(min(POLL_S, remaining))

    def ack(self, message: Message) -> None:
        """See :meth:`mpt.queue.DurableQueue.ack`."""
        try:
            message_id = int(message.delivery_id)
        except ValueError:
            raise QueueError(
                f"delivery id {message.delivery_id!r} is not from a SQLite queue"
            ) from None
        with self._transaction() as tx:
            tx.execute(
                "UPDATE deliveries SET acked_at = ?"
                " WHERE grp = ? AND message_id = ? AND topic = ? AND acked_at IS NULL",
                (time.time(), message.group, message_id, message.topic),
            )

    def close(self) -> None:
        """See :meth:`mpt.queue.DurableQueue.close` (closing twice is fine)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _claim_once(
        self, topic: str, consumer: str, group: str, lease_s: float, max_items: int
    ) -> list[Message]:
        with self._transaction() as tx:
            now = time.time()
            expires_at = now + lease_s
            rows: list[tuple[int, str, str, int]] = []
            for message_id, event_id, text, attempts in tx.execute(
                "SELECT d.message_id, m.event_id, m.payload, d.attempts"
                " FROM deliveries AS d JOIN messages AS m ON m.id = d.message_id"
                " WHERE d.topic = ? AND d.grp = ? AND d.acked_at IS NULL"
                " AND d.lease_expires_at <= ? ORDER BY d.message_id LIMIT ?",
                (topic, group, now, max_items),
            ).fetchall():
                rows.append((message_id, event_id, text, attempts + 1))
            tx.executemany(
                "UPDATE deliveries SET lease_owner = ?, lease_expires_at = ?,"
                " attempts = attempts + 1 WHERE grp = ? AND message_id = ?",
                [(consumer, expires_at, group, row[0]) for row in rows],
            )
            if len(rows) < max_items:
                (last_claimed,) = tx.execute(
                    "SELECT COALESCE(MAX(message_id), 0) FROM deliveries"
                    " WHERE topic = ? AND grp = ?",
                    (topic, group),
                ).fetchone()
                fresh = [
                    (message_id, event_id, text, 1)
                    for message_id, event_id, text in tx.execute(
                        "SELECT id, event_id, payload FROM messages"
                        " WHERE topic = ? AND id > ? ORDER BY id LIMIT ?",
                        (topic, last_claimed, max_items - len(rows)),
                    ).fetchall()
                ]
                tx.executemany(
                    "INSERT INTO deliveries"
                    " (grp, message_id, topic, lease_owner, lease_expires_at, attempts)"
                    " VALUES (?, ?, ?, ?, ?, 1)",
                    [(group, row[0], topic, consumer, expires_at) for row in fresh],
                )
                rows.extend(fresh)
        return [
            Message(
                topic=topic,
                event_id=event_id,
                payload=decode_payload(topic, str(message_id), text),
                delivery_id=str(message_id),
                attempts=attempts,
                group=group,
            )
            for message_id, event_id, text, attempts in rows
        ]

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction, committed on success; errors as QueueError."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise QueueError(f"queue {str(self._path)!r} is closed")
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise QueueError(f"queue database {str(self._path)!r} failed: {exc}") from None
