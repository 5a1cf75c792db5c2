"""The durable queue on Redis Streams with consumer groups.

Keys, for a prefix ``P`` (``MPT_REDIS__KEY_PREFIX``, default ``mpt``) and a topic ``T``::

    P:stream:{T}               the stream; one entry per message: event_id, payload (JSON)
    P:dedupe:{T}:<event_id>    exists once the event was published; holds the entry id

The braces are a cluster hash tag, so a topic's keys live in one slot. Publishing is one
Lua script — check the dedupe key, ``XADD``, set the dedupe key — which Redis runs
atomically: a publisher killed at any point has published once or not at all, never twice.

A group is created at the stream's beginning on its first claim, so it sees every message.
A claim first takes over entries whose lease ran out — ``XPENDING`` with the lease as the
minimum idle time finds them with their delivery counts, ``XCLAIM`` with the same minimum
takes them over atomically — then reads new entries (``XREADGROUP``, blocking within
``block_s`` a quarter lease, at most 1 s, at a time). ``ack`` is ``XACK``. The lease is thus
measured by the claimer, as the entry's idle time: give a group's consumers the same
``lease_s``. Durability is Redis's: configure AOF persistence (``appendonly yes``) for a
queue that survives a Redis restart.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any, Final, cast
from urllib.parse import urlsplit, urlunsplit

import redis

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

__all__ = ["RedisQueue"]

BLOCK_SLICE_S: Final = 1.0  # longest single blocking read; see _block_slice_s
CONNECT_TIMEOUT_S: Final = 5.0
SOCKET_TIMEOUT_S: Final = 10.0  # longer than any single blocking read (BLOCK_SLICE_S)

# KEYS[1] dedupe key, KEYS[2] stream; ARGV[1] event id, ARGV[2] payload JSON.
_PUBLISH_LUA: Final = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    return 0
end
local id = redis.call('XADD', KEYS[2], '*', 'event_id', ARGV[1], 'payload', ARGV[2])
redis.call('SET', KEYS[1], id)
return 1
"""


class RedisQueue(ClosingQueue):
    """A :class:`~mpt.queue.DurableQueue` on Redis Streams.

    Parameters
    ----------
    client : redis.Redis
        A client created with ``decode_responses=True``; :meth:`close` closes it.
    prefix : str, optional
        Prefix of every key (see the module docstring).
    where : str, optional
        How to name the server in error messages (the URL without its password).
    """

    def __init__(self, client: redis.Redis, *, prefix: str = "mpt", where: str = "") -> None:
        self._client = client
        self._prefix = prefix
        self._where = where or "Redis"
        self._publish_script = client.register_script(_PUBLISH_LUA)
        self._groups: set[tuple[str, str]] = set()

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "mpt") -> RedisQueue:
        """Connect lazily to ``url`` (``redis://``, ``rediss://`` or ``unix://``).

        Raises
        ------
        QueueError
            The URL is invalid.
        """
        where = f"Redis at {_redact(url)}"
        try:
            client = redis.Redis.from_url(
                url,
                decode_responses=True,
                socket_connect_timeout=CONNECT_TIMEOUT_S,
                socket_timeout=SOCKET_TIMEOUT_S,
            )
        except ValueError as exc:
            raise QueueError(f"invalid Redis URL {_redact(url)!r}: {exc}") from None
        return cls(client, prefix=prefix, where=where)

    def __repr__(self) -> str:
        return f"RedisQueue({self._where!r}, prefix={self._prefix!r})"

    def stream_key(self, topic: str) -> str:
        """The stream holding ``topic``'s messages."""
        return f"{self._prefix}:stream:{{{check_topic(topic)}}}"

    def dedupe_key(self, topic: str, event_id: str) -> str:
        """The key recording that ``event_id`` was published on ``topic``."""
        return f"{self._prefix}:dedupe:{{{check_topic(topic)}}}:{check_event_id(event_id)}"

    def publish(self, topic: str, event_id: str, payload: dict[str, Any]) -> bool:
        """See :meth:`mpt.queue.DurableQueue.publish`."""
        keys = [self.dedupe_key(topic, event_id), self.stream_key(topic)]
        text = encode_payload(topic, event_id, payload)
        with self._errors("publish"):
            return bool(self._publish_script(keys=keys, args=[event_id, text]))

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
        """See :meth:`mpt.queue.DurableQueue.claim`."""
        stream = self.stream_key(topic)
        check_name("consumer", consumer)
        check_name("group", group)
        check_claim_args(lease_s, max_items, block_s)
        lease_ms = max(1, round(lease_s * 1000))
        deadline = time.monotonic() + block_s
        with self._errors("claim"):
            while True:
                try:
                    messages = self._claim_once(
                        topic, stream, consumer, group, lease_ms, max_items, deadline
                    )
                except redis.ResponseError as exc:
                    if "NOGROUP" not in str(exc):
                        raise
                    self._groups.discard((stream, group))  # the stream was deleted
                    continue
                if messages or time.monotonic() >= deadline:
                    return messages

    def ack(self, message: Message) -> None:
        """See :meth:`mpt.queue.DurableQueue.ack`."""
        with self._errors("ack"):
            self._client.xack(self.stream_key(message.topic), message.group, message.delivery_id)

    def close(self) -> None:
        """See :meth:`mpt.queue.DurableQueue.close`."""
        with self._errors("close"):
            self._client.close()

    def _claim_once(
        self,
        topic: str,
        stream: str,
        consumer: str,
        group: str,
        lease_ms: int,
        max_items: int,
        deadline: float,
    ) -> list[Message]:
        self._ensure_group(stream, group)
        messages = self._reclaim_expired(topic, stream, consumer, group, lease_ms, max_items)
        wanted = max_items - len(messages)
        if wanted > 0:
            slice_s = min(deadline - time.monotonic(), _block_slice_s(lease_ms))
            remaining_ms = int(slice_s * 1000)
            reply = self._client.xreadgroup(
                group,
                consumer,
                {stream: ">"},
                count=wanted,
                block=None if messages or remaining_ms < 1 else remaining_ms,  # 0 = for ever
            )
            for _stream, entries in cast("list[tuple[str, list[Any]]]", reply or []):
                messages.extend(self._message(topic, group, entry, 1) for entry in entries)
        return messages

    def _reclaim_expired(
        self, topic: str, stream: str, consumer: str, group: str, lease_ms: int, max_items: int
    ) -> list[Message]:
        # XPENDING with IDLE finds expired leases in one call wherever they are in the pending
        # list (XAUTOCLAIM would scan only 10 x COUNT entries per call); XCLAIM with the same
        # minimum idle time takes them over atomically, so of two consumers racing for one
        # entry only the first gets it (the claim resets its idle time).
        pending = self._client.xpending_range(
            stream, group, min="-", max="+", count=max_items, idle=lease_ms
        )
        if not pending:
            return []
        delivered = {str(p["message_id"]): int(p["times_delivered"]) for p in pending}
        claimed = self._client.xclaim(
            stream, group, consumer, min_idle_time=lease_ms, message_ids=list(delivered)
        )
        # Entries deleted from the stream come back without fields (Redis 6.2) or not at all.
        return [
            self._message(topic, group, entry, delivered.get(str(entry[0]), 0) + 1)
            for entry in claimed
            if entry and entry[1]
        ]

    def _ensure_group(self, stream: str, group: str) -> None:
        if (stream, group) in self._groups:
            return
        try:
            self._client.xgroup_create(stream, group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add((stream, group))

    @staticmethod
    def _message(topic: str, group: str, entry: Sequence[Any], attempts: int) -> Message:
        entry_id, fields = str(entry[0]), cast("dict[str, str]", entry[1])
        if "event_id" not in fields or "payload" not in fields:
            raise QueueError(f"stream entry {entry_id} on {topic!r} is not a queue message")
        return Message(
            topic=topic,
            event_id=fields["event_id"],
            payload=decode_payload(topic, entry_id, fields["payload"]),
            delivery_id=entry_id,
            attempts=attempts,
            group=group,
        )

    @contextlib.contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as exc:
            raise QueueError(f"queue {operation} on {self._where} failed: {exc}") from None


def _block_slice_s(lease_ms: int) -> float:
    """How long one blocking read may last: a quarter lease (at least 50 ms, at most 1 s), so
    a blocked claim notices an expired lease within a quarter lease of its expiry."""
    return min(BLOCK_SLICE_S, max(0.05, lease_ms / 4000))


def _redact(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    except ValueError:
        return "<unparsable URL>"
