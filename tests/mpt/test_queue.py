"""Tests of the durable queue (mpt/queue.py and both back ends) against real back ends.

Every behaviour test runs on SQLite (a file in tmp_path) and on the machine's Redis (a key
prefix of the test's own; skipped when Redis is absent, failed under CI=true). The kill
tests run publishers and consumers as real processes and SIGKILL them at known points.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from mpt.errors import QueueError
from mpt.queue import QUEUE_FILENAME, DurableQueue, Message, open_queue
from mpt.queue_redis import RedisQueue
from mpt.queue_sqlite import SqliteQueue
from mpt.settings import RedisSettings, Settings
from tests._support.services import redis_namespace
from tests.mpt._support.processes import Child, child_env

TOPIC = "test.topic.v1"
LEASE_S = 0.5  # leases that must not run out between two consecutive calls
WAIT_S = 10.0  # upper bound for any wait on a child process


@dataclass
class Backend:
    """One back end under test: how to open it here and how a child process opens it."""

    name: str
    settings: Settings
    env: dict[str, str]
    opened: list[DurableQueue] = field(default_factory=list)

    def open(self) -> DurableQueue:
        queue = open_queue(self.settings)
        self.opened.append(queue)
        return queue


def _settings(data_dir: Path, redis_url: str | None = None, prefix: str = "mpt") -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]  # pydantic-settings init kwarg
        data_dir=data_dir,
        redis=RedisSettings(url=redis_url, key_prefix=prefix),
    )


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    data_dir = tmp_path / "data"
    if request.param == "sqlite":
        env = {"MPT_DATA_DIR": str(data_dir)}
        chosen = Backend("sqlite", _settings(data_dir), env)
        yield chosen
        for queue in chosen.opened:
            queue.close()
        return
    with redis_namespace() as ns:
        env = {
            "MPT_DATA_DIR": str(data_dir),
            "MPT_REDIS__URL": ns.url,
            "MPT_REDIS__KEY_PREFIX": ns.prefix,
        }
        chosen = Backend("redis", _settings(data_dir, ns.url, ns.prefix), env)
        yield chosen
        for queue in chosen.opened:
            queue.close()


@pytest.fixture
def queue(backend: Backend) -> DurableQueue:
    return backend.open()


def _drain(queue: DurableQueue, topic: str = TOPIC) -> list[Message]:
    """Every message of ``topic``, claimed in a fresh group (a group sees all messages)."""
    group = f"audit-{time.monotonic_ns()}"
    messages: list[Message] = []
    while batch := queue.claim(topic, "auditor", group=group, max_items=500):
        messages.extend(batch)
    return messages


# --------------------------------------------------------------------------------------------
# Behaviour on both back ends


def test_open_queue_chooses_the_back_end(backend: Backend) -> None:
    queue = backend.open()
    expected = SqliteQueue if backend.name == "sqlite" else RedisQueue
    assert isinstance(queue, expected)


def test_publish_is_idempotent_per_topic_and_event_id(queue: DurableQueue) -> None:
    assert queue.publish(TOPIC, "ev-1", {"n": 1}) is True
    assert queue.publish(TOPIC, "ev-1", {"n": 2}) is False  # the first payload stays
    assert queue.publish("other.topic", "ev-1", {"n": 3}) is True  # another topic

    (message,) = queue.claim(TOPIC, "c1", max_items=10)
    assert (message.topic, message.event_id, message.payload) == (TOPIC, "ev-1", {"n": 1})
    assert (message.attempts, message.group) == (1, "default")
    assert [m.payload for m in queue.claim("other.topic", "c1")] == [{"n": 3}]


def test_payload_round_trips_as_json(queue: DurableQueue) -> None:
    payload = {"s": "naïve ♩ \u2028", "n": [1, 2.5, None, True], "nested": {"k": {"z": -1}}}
    queue.publish(TOPIC, "ev", payload)
    assert queue.claim(TOPIC, "c")[0].payload == payload


def test_claim_then_ack_is_never_redelivered(queue: DurableQueue) -> None:
    queue.publish(TOPIC, "ev-1", {})
    (message,) = queue.claim(TOPIC, "c1", lease_s=0.2)

    queue.ack(message)
    time.sleep(0.3)  # past the lease

    assert queue.claim(TOPIC, "c1", lease_s=0.2) == []
    assert queue.claim(TOPIC, "c2", lease_s=0.2) == []


def test_ack_twice_and_ack_a_stale_delivery_are_fine(queue: DurableQueue) -> None:
    queue.publish(TOPIC, "ev-1", {})
    (first,) = queue.claim(TOPIC, "c1", lease_s=0.2)
    time.sleep(0.3)
    (second,) = queue.claim(TOPIC, "c2", lease_s=0.2)  # redelivered to another consumer

    queue.ack(first)  # the first consumer finishes late: still acknowledges the message
    queue.ack(first)
    queue.ack(second)
    time.sleep(0.3)

    assert queue.claim(TOPIC, "c3", lease_s=0.2) == []


def test_expired_lease_is_redelivered_with_attempts_plus_one(queue: DurableQueue) -> None:
    queue.publish(TOPIC, "ev-1", {"x": 1})
    (first,) = queue.claim(TOPIC, "c1", lease_s=LEASE_S)

    assert queue.claim(TOPIC, "c2", lease_s=LEASE_S) == []  # leased
    assert queue.claim(TOPIC, "c1", lease_s=LEASE_S) == []  # even to its holder
    time.sleep(LEASE_S + 0.1)
    (second,) = queue.claim(TOPIC, "c2", lease_s=LEASE_S)
    assert queue.claim(TOPIC, "c1", lease_s=LEASE_S) == []  # leased again, now by c2
    time.sleep(LEASE_S + 0.1)
    (third,) = queue.claim(TOPIC, "c1", lease_s=LEASE_S)

    assert [m.attempts for m in (first, second, third)] == [1, 2, 3]
    assert {m.event_id for m in (first, second, third)} == {"ev-1"}
    assert {m.delivery_id for m in (first, second, third)} == {first.delivery_id}
    assert third.payload == {"x": 1}


def test_expired_leases_come_before_new_messages(queue: DurableQueue) -> None:
    queue.publish(TOPIC, "old", {})
    queue.claim(TOPIC, "c1", lease_s=0.2)
    queue.publish(TOPIC, "new", {})
    time.sleep(0.3)

    claimed = queue.claim(TOPIC, "c2", lease_s=0.2, max_items=5)
    assert [(m.event_id, m.attempts) for m in claimed] == [
        ("old", 2),
        ("new", 1),
    ]


def test_max_items_and_publish_order(queue: DurableQueue) -> None:
    for i in range(5):
        queue.publish(TOPIC, f"ev-{i}", {"i": i})

    first = queue.claim(TOPIC, "c1", max_items=3)
    second = queue.claim(TOPIC, "c1", max_items=3)

    assert [m.event_id for m in first] == ["ev-0", "ev-1", "ev-2"]
    assert [m.event_id for m in second] == ["ev-3", "ev-4"]
    assert queue.claim(TOPIC, "c1", max_items=3) == []


def test_two_consumers_never_get_the_same_unexpired_message(backend: Backend) -> None:
    publisher = backend.open()
    count = 60
    for i in range(count):
        publisher.publish(TOPIC, f"ev-{i}", {"i": i})
    consumers = [backend.open(), backend.open()]  # separate connections
    received: list[list[str]] = [[], []]
    start = threading.Barrier(2)

    def consume(index: int) -> None:
        start.wait(timeout=WAIT_S)
        while batch := consumers[index].claim(TOPIC, f"c{index}", lease_s=30, max_items=3):
            received[index].extend(m.event_id for m in batch)
            time.sleep(0.002)  # some work, so the two interleave

    threads = [threading.Thread(target=consume, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT_S)
    assert not any(thread.is_alive() for thread in threads)

    assert not set(received[0]) & set(received[1])
    assert sorted(received[0] + received[1]) == sorted(f"ev-{i}" for i in range(count))
    assert received[0] and received[1]  # both took part


def test_every_group_gets_every_message(queue: DurableQueue) -> None:
    queue.publish(TOPIC, "ev-1", {})
    (in_a,) = queue.claim(TOPIC, "c", group="group-a")
    queue.publish(TOPIC, "ev-2", {})

    in_b = queue.claim(TOPIC, "c", group="group-b", max_items=5)  # a group created later
    queue.ack(in_a)

    assert [m.event_id for m in in_b] == ["ev-1", "ev-2"]
    assert {m.group for m in in_b} == {"group-b"}
    assert [m.event_id for m in queue.claim(TOPIC, "c", group="group-a")] == ["ev-2"]


def test_claim_blocks_until_a_message_arrives(backend: Backend) -> None:
    consumer, publisher = backend.open(), backend.open()
    consumer.claim(TOPIC, "c", block_s=0)  # creates the group on Redis
    timer = threading.Timer(0.3, publisher.publish, args=(TOPIC, "late", {}))
    timer.start()
    try:
        started = time.monotonic()
        messages = consumer.claim(TOPIC, "c", block_s=5.0)
        waited = time.monotonic() - started
    finally:
        timer.cancel()
        timer.join(timeout=WAIT_S)

    assert [m.event_id for m in messages] == ["late"]
    assert 0.2 <= waited < 2.0


def test_claim_blocks_at_most_block_s(queue: DurableQueue) -> None:
    started = time.monotonic()
    assert queue.claim(TOPIC, "c", block_s=0.3) == []
    assert 0.25 <= time.monotonic() - started < 1.5
    started = time.monotonic()
    assert queue.claim(TOPIC, "c") == []
    # block_s=0: no waiting (Redis' BLOCK 0 would wait for ever); the bound leaves room for
    # a stall of the machine (CI saw one of 0.9 s once)
    assert time.monotonic() - started < 1.2


def test_blocking_claim_picks_up_an_expiring_lease(queue: DurableQueue) -> None:
    queue.publish(TOPIC, "ev", {})
    queue.claim(TOPIC, "c1", lease_s=0.3)

    (message,) = queue.claim(TOPIC, "c2", lease_s=0.3, block_s=3.0)

    assert (message.event_id, message.attempts) == ("ev", 2)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda q: q.publish("bad topic", "e", {}), "invalid topic 'bad topic'"),
        (lambda q: q.publish("", "e", {}), "invalid topic ''"),
        (lambda q: q.publish("a{b}", "e", {}), "invalid topic"),
        (lambda q: q.publish(TOPIC, "", {}), "invalid event id ''"),
        (lambda q: q.publish(TOPIC, "x" * 300, {}), "invalid event id"),
        (lambda q: q.publish(TOPIC, "e", {"v": float("nan")}), "is not JSON"),
        (lambda q: q.publish(TOPIC, "e", {"v": object()}), "is not JSON"),
        (lambda q: q.publish(TOPIC, "e", [1, 2]), "must be a dict, got list"),
        (lambda q: q.claim(TOPIC, "c", lease_s=0), "lease_s must be positive"),
        (lambda q: q.claim(TOPIC, "c", max_items=0), "max_items must be"),
        (lambda q: q.claim(TOPIC, "c", block_s=-1), "block_s must be"),
        (lambda q: q.claim(TOPIC, "bad consumer"), "invalid consumer name"),
        (lambda q: q.claim(TOPIC, "c", group=""), "invalid group name ''"),
    ],
)
def test_invalid_arguments_are_queue_errors(
    queue: DurableQueue, call: Callable[[DurableQueue], object], match: str
) -> None:
    with pytest.raises(QueueError, match=match):
        call(queue)


# --------------------------------------------------------------------------------------------
# Back-end specifics


def test_sqlite_file_is_in_the_data_dir_in_wal_mode(tmp_path: Path) -> None:
    queue = open_queue(_settings(tmp_path / "data"))
    try:
        queue.publish(TOPIC, "ev", {})
    finally:
        queue.close()
    path = tmp_path / "data" / QUEUE_FILENAME
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT topic, event_id FROM messages").fetchall() == [(TOPIC, "ev")]


def test_sqlite_closed_queue_and_foreign_delivery_ids(tmp_path: Path) -> None:
    queue = SqliteQueue(tmp_path / "q.sqlite3")
    with pytest.raises(QueueError, match="is not from a SQLite queue"):
        queue.ack(Message(TOPIC, "e", {}, "1700000000000-0", 1))
    queue.close()
    queue.close()
    with pytest.raises(QueueError, match="is closed"):
        queue.publish(TOPIC, "e", {})


def test_sqlite_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "q.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(QueueError, match=r"q\.sqlite3"):
        SqliteQueue(path)


def test_redis_keys_and_atomic_dedupe_record(tmp_path: Path) -> None:
    with redis_namespace() as ns:
        queue = open_queue(_settings(tmp_path, ns.url, ns.prefix))
        assert isinstance(queue, RedisQueue)
        try:
            queue.publish(TOPIC, "ev-1", {"a": 1})
        finally:
            queue.close()
        client = redis.Redis.from_url(ns.url, decode_responses=True)
        try:
            stream = f"{ns.prefix}:stream:{{{TOPIC}}}"
            ((entry_id, fields),) = client.xrange(stream)
            assert fields == {"event_id": "ev-1", "payload": '{"a":1}'}
            assert client.get(f"{ns.prefix}:dedupe:{{{TOPIC}}}:ev-1") == entry_id
        finally:
            client.close()


def test_redis_unreachable_is_a_queue_error_without_the_password(tmp_path: Path) -> None:
    queue = open_queue(_settings(tmp_path, "redis://user:s3cret@127.0.0.1:1/0"))
    try:
        with pytest.raises(QueueError) as info:
            queue.publish(TOPIC, "ev", {})
    finally:
        queue.close()
    assert "127.0.0.1:1" in str(info.value)
    assert "s3cret" not in str(info.value)


def test_redis_group_survives_a_deleted_stream(tmp_path: Path) -> None:
    with redis_namespace() as ns:
        queue = open_queue(_settings(tmp_path, ns.url, ns.prefix))
        client = redis.Redis.from_url(ns.url)
        try:
            assert queue.claim(TOPIC, "c") == []  # creates the stream and the group
            client.delete(f"{ns.prefix}:stream:{{{TOPIC}}}")
            assert queue.claim(TOPIC, "c") == []  # NOGROUP: recreated, not an error
            client.delete(f"{ns.prefix}:dedupe:{{{TOPIC}}}:ev")
            queue.publish(TOPIC, "ev", {})
            assert [m.event_id for m in queue.claim(TOPIC, "c")] == ["ev"]
        finally:
            queue.close()
            client.close()


# --------------------------------------------------------------------------------------------
# Real process kills: the effect happens exactly once


def test_publisher_killed_after_publish_publishes_once(backend: Backend, tmp_path: Path) -> None:
    record = tmp_path / "publisher-record"
    args = ["publish", TOPIC, "ev-kill", json.dumps({"take": 1}), str(record)]
    env = child_env(backend.env)

    first = Child.worker([*args, "--hang"], env=env, cwd=tmp_path)
    try:
        assert first.read_line(timeout_s=WAIT_S) == "published True"
        first.kill()  # after publishing, before recording success
    finally:
        first.close()
    assert not record.exists()

    again = Child.worker(args, env=env, cwd=tmp_path)  # the restarted publisher retries
    try:
        assert again.read_line(timeout_s=WAIT_S) == "published False"
        assert again.read_line(timeout_s=WAIT_S) == "recorded"
        assert again.finish(timeout_s=WAIT_S) == 0
    finally:
        again.close()

    messages = _drain(backend.open())
    assert [(m.event_id, m.payload) for m in messages] == [("ev-kill", {"take": 1})]


def test_publisher_killed_at_any_moment_publishes_each_event_once(
    backend: Backend, tmp_path: Path
) -> None:
    # The first publisher has far more events than it can publish before the test has read
    # `kill_after` lines and kills it, so the kill lands wherever it is: inside a publish,
    # between a publish and its record, or between events. The restarted publisher then
    # publishes every event not recorded (at most one of them was published already).
    kill_after = 10
    records = tmp_path / "records"
    records.mkdir()
    env = child_env(backend.env)

    first = Child.worker(["publish-many", TOPIC, "1000000", str(records)], env=env, cwd=tmp_path)
    try:
        assert first.read_line(timeout_s=WAIT_S) == "started"
        for _ in range(kill_after):
            assert first.read_line(timeout_s=WAIT_S).startswith("recorded ")
        first.kill()
    finally:
        first.close()
    recorded = len(list(records.iterdir()))
    assert recorded >= kill_after
    count = recorded + 5

    again = Child.worker(["publish-many", TOPIC, str(count), str(records)], env=env, cwd=tmp_path)
    try:
        assert again.read_line(timeout_s=WAIT_S) == "started"
        for _ in range(count - recorded):
            assert again.read_line(timeout_s=WAIT_S).startswith("recorded ")
        assert again.read_line(timeout_s=WAIT_S) == "done"
        assert again.finish(timeout_s=WAIT_S) == 0
    finally:
        again.close()

    event_ids = [m.event_id for m in _drain(backend.open())]
    assert sorted(event_ids) == sorted(f"e{i}" for i in range(count))


def test_consumer_killed_before_ack_is_redelivered_and_deduped(
    backend: Backend, tmp_path: Path
) -> None:
    backend.open().publish(TOPIC, "ev-once", {"minutes": 12})
    db = tmp_path / "consumer.sqlite3"
    args = ["consume", TOPIC, "worker-1", str(db), str(LEASE_S)]
    env = child_env(backend.env)

    first = Child.worker([*args, "--hang"], env=env, cwd=tmp_path)
    try:
        assert first.read_line(timeout_s=WAIT_S) == "committed ev-once 1 1"
        first.kill()  # after its transaction committed, before the ack
    finally:
        first.close()
    killed_at = time.monotonic()

    restarted = Child.worker(args, env=env, cwd=tmp_path)  # same consumer name, new process
    try:
        # redelivered once the lease ran out; the row exists already, so nothing is inserted
        assert restarted.read_line(timeout_s=WAIT_S) == "committed ev-once 2 0"
        assert time.monotonic() - killed_at >= LEASE_S * 0.5
        assert restarted.read_line(timeout_s=WAIT_S) == "acked"
        assert restarted.finish(timeout_s=WAIT_S) == 0
    finally:
        restarted.close()

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT event_id, payload, attempts FROM processed").fetchall()
    assert rows == [("ev-once", json.dumps({"minutes": 12}), 1)]
    time.sleep(LEASE_S + 0.1)
    assert backend.open().claim(TOPIC, "worker-2", lease_s=LEASE_S) == []  # acknowledged


def _open_at(path: str, start_at: float) -> str:
    """Open (and close) the SQLite queue at ``path`` once the wall clock reaches
    ``start_at``: the error, or '' (run in a child process)."""
    while time.time() < start_at:
        pass
    try:
        SqliteQueue(Path(path)).close()
    except QueueError as exc:
        return str(exc)
    return ""


def test_processes_opening_a_new_sqlite_queue_together_all_succeed(tmp_path: Path) -> None:
    """Two engine workers start together on a fresh data directory: switching the new file
    to WAL needs it to itself, and SQLite said "database is locked" at once (no busy wait)
    to the one that lost, which died, and the server with it. Four processes, ten files."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        for k in range(10):
            path = str(tmp_path / f"q{k}.sqlite3")
            start_at = time.time() + 0.3
            errors = pool.starmap(_open_at, [(path, start_at)] * 4)
            assert errors == [""] * 4, errors
