"""The durable queue between services: publish, claim with a lease, acknowledge.

One small interface, :class:`DurableQueue`, with two back ends chosen by :func:`open_queue`:

- **SQLite** (embedded defaults): the file ``<data_dir>/queue.sqlite3`` in WAL mode, shared
  by every process on the machine (:class:`mpt.queue_sqlite.SqliteQueue`).
- **Redis Streams** with consumer groups when ``MPT_REDIS__URL`` is set
  (:class:`mpt.queue_redis.RedisQueue`).

Semantics, the same on both:

- A message is a JSON object ``payload`` published on a ``topic`` under an ``event_id``.
  Publishing is idempotent: a second publish of the same event id on the same topic is a
  no-op that returns False (the first payload stays), however long after the first.
- Every consumer **group** receives every message of a topic, including those published
  before the group's first claim. Within a group a message goes to one consumer at a time:
  :meth:`~DurableQueue.claim` leases it for ``lease_s`` seconds. A message not acknowledged
  before its lease runs out is delivered again (to any consumer of the group), with
  ``attempts`` one higher. Use the same ``lease_s`` for all consumers of a group: on Redis
  the lease is measured by the claimer, as the message's idle time.
- Delivery is **at least once**: a consumer that dies after doing its work and before
  :meth:`~DurableQueue.ack` gets the message again. Consumers must therefore be idempotent
  by ``event_id`` — record the event id in the same transaction as the effect (a unique key
  on it, or an upsert keyed by it), then acknowledge. Publishers that retry after a crash
  publish again with the same event id; the queue keeps one copy.
- Messages are delivered roughly in publish order; expired leases first.

Neither back end deletes acknowledged messages yet (retention is future work), and a
message that keeps failing is redelivered for ever: a consumer that wants a dead-letter rule
applies it with ``Message.attempts``.

Errors are :class:`~mpt.errors.QueueError`: invalid names or payloads (the message names the
value) and back-end failures (the message names the back end).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Protocol, Self

from mpt.errors import QueueError

if TYPE_CHECKING:
    from mpt.settings import Settings

__all__ = ["QUEUE_FILENAME", "DurableQueue", "Message", "open_queue"]

QUEUE_FILENAME: Final = "queue.sqlite3"
MAX_ITEMS_LIMIT: Final = 1000

_TOPIC_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_NAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}")
_EVENT_ID_MAX: Final = 256


@dataclass(frozen=True, slots=True)
class Message:
    """One delivery of a message to a consumer.

    Attributes
    ----------
    topic : str
        The topic it was published on.
    event_id : str
        The publisher's id for the event; consumers deduplicate by it.
    payload : dict
        The JSON object published.
    delivery_id : str
        The back end's id of the message (opaque; used by :meth:`DurableQueue.ack`).
    attempts : int
        How many times the message has been delivered in this group, this one included
        (1 on the first delivery).
    group : str
        The consumer group it was claimed in.
    """

    topic: str
    event_id: str
    payload: dict[str, Any]
    delivery_id: str
    attempts: int
    group: str = "default"


class DurableQueue(Protocol):
    """Publish, claim with a lease, acknowledge (see the module docstring for semantics)."""

    def publish(self, topic: str, event_id: str, payload: dict[str, Any]) -> bool:
        """Publish ``payload`` under ``event_id``; False when that event id was already
        published on the topic (nothing is changed then)."""
        ...

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
        """Lease up to ``max_items`` messages of ``topic`` not yet acknowledged in ``group``
        and not leased by anyone (expired leases count as free), waiting up to ``block_s``
        seconds for one when none is available; ``[]`` when none came."""
        ...

    def ack(self, message: Message) -> None:
        """Acknowledge a delivered message: it is never delivered in its group again.
        Acknowledging twice, or after the lease ran out, is fine."""
        ...

    def close(self) -> None:
        """Release the connection; the queue must not be used afterwards."""
        ...


class ClosingQueue:
    """Context-manager support shared by the back ends: ``with`` closes the queue."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_queue(settings: Settings) -> DurableQueue:
    """Open the configured queue: Redis when ``settings.redis.url`` is set, else the SQLite
    file ``<data_dir>/queue.sqlite3`` (the data directory is created if needed).

    Raises
    ------
    QueueError
        The queue cannot be opened.
    DataDirError
        The data directory cannot be created.
    """
    if settings.redis.url:
        from mpt.queue_redis import RedisQueue  # imports redis only when it is used

        return RedisQueue.from_url(settings.redis.url, prefix=settings.redis.key_prefix)
    from mpt.datadir import ensure_data_dir
    from mpt.queue_sqlite import SqliteQueue

    return SqliteQueue(ensure_data_dir(settings.data_dir) / QUEUE_FILENAME)


# --------------------------------------------------------------------------------------------
# Shared by the back ends


def check_topic(topic: str) -> str:
    """Return ``topic`` if it is a valid topic name (letters, digits, ``._-``), else raise."""
    if not isinstance(topic, str) or not _TOPIC_RE.fullmatch(topic):
        raise QueueError(
            f"invalid topic {topic!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return topic


def check_name(kind: str, name: str) -> str:
    """Return a valid consumer or group ``name`` (letters, digits, ``._:@-``), else raise."""
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise QueueError(
            f"invalid {kind} name {name!r}: use 1-128 letters, digits, '.', '_', ':', '@' "
            "or '-', starting with a letter or digit"
        )
    return name


def check_event_id(event_id: str) -> str:
    """Return ``event_id`` if it is a non-empty printable string of at most 256 characters."""
    if (
        not isinstance(event_id, str)
        or not event_id
        or len(event_id) > _EVENT_ID_MAX
        or not event_id.isprintable()
    ):
        raise QueueError(
            f"invalid event id {event_id!r}: use 1-{_EVENT_ID_MAX} printable characters"
        )
    return event_id


def check_claim_args(lease_s: float, max_items: int, block_s: float) -> None:
    """Validate the numeric arguments of ``claim``."""
    if not (isinstance(lease_s, int | float) and math.isfinite(lease_s) and lease_s > 0):
        raise QueueError(f"lease_s must be positive seconds, got {lease_s!r}")
    if not (isinstance(max_items, int) and 1 <= max_items <= MAX_ITEMS_LIMIT):
        raise QueueError(f"max_items must be 1-{MAX_ITEMS_LIMIT}, got {max_items!r}")
    if not (isinstance(block_s, int | float) and math.isfinite(block_s) and block_s >= 0):
        raise QueueError(f"block_s must be seconds >= 0, got {block_s!r}")


def encode_payload(topic: str, event_id: str, payload: dict[str, Any]) -> str:
    """The payload as compact JSON text (a JSON object, no NaN or infinity)."""
    if not isinstance(payload, dict):
        raise QueueError(
            f"payload of event {event_id!r} on {topic!r} must be a dict, "
            f"got {type(payload).__name__}"
        )
    try:
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise QueueError(f"payload of event {event_id!r} on {topic!r} is not JSON: {exc}") from None


def decode_payload(topic: str, delivery_id: str, text: str) -> dict[str, Any]:
    """Parse a stored payload back into a dict."""
    try:
        payload = json.loads(text)
    except ValueError as exc:
        raise QueueError(f"message {delivery_id} on {topic!r} holds invalid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise QueueError(f"message {delivery_id} on {topic!r} holds no JSON object")
    return payload
