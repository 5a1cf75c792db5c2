"""Checkpoints of cut streams (audio_engine/server/checkpoints.py and the hub's use of them):
the stores on SQLite and on the machine's real Redis, and a stream cut on one engine and
resumed on another that shares the data directory, as another worker process would."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import grpc.aio
import pytest

from audio_engine.server.checkpoints import (
    CheckpointStore,
    RedisCheckpoints,
    SqliteCheckpoints,
)
from mpt_protos.audio.v1 import audio_pb2 as pb
from mpt_protos.audio.v1 import audio_pb2_grpc
from tests._support.services import redis_namespace
from tests._support.signals import click_track
from tests.audio_engine._support.engine import (
    END,
    Engine,
    chunks,
    config,
    stream_call,
    summaries_for,
    to_int16_bytes,
)

SR = 16000
BPM = 120.0
DURATION_S = 4.0
CLICKS, TRUTH_S = click_track(BPM, DURATION_S, SR)
PCM = to_int16_bytes(CLICKS)


# --------------------------------------------------------------------------------------------
# The stores


@pytest.fixture(params=["sqlite", "redis"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[CheckpointStore]]:
    """Two handles on one store, as two engine processes would hold."""
    if request.param == "sqlite":
        opened: list[CheckpointStore] = [
            SqliteCheckpoints(tmp_path / "streams.sqlite3") for _ in range(2)
        ]
        yield opened
        for store in opened:
            store.close()
        return
    with redis_namespace() as ns:
        opened = [RedisCheckpoints(ns.url, prefix=ns.prefix) for _ in range(2)]
        yield opened
        for store in opened:
            store.close()


def test_a_checkpoint_is_taken_once(stores: list[CheckpointStore]) -> None:
    one, other = stores
    one.put("s1", b"state-1", ttl_s=30)
    one.put("s1", b"state-2", ttl_s=30)  # a later cut replaces it
    assert other.take("s1") == b"state-2"
    assert one.take("s1") is None
    assert other.take("never-written") is None


def test_a_checkpoint_expires_with_the_window(stores: list[CheckpointStore]) -> None:
    one, other = stores
    one.put("s2", b"x" * 100_000, ttl_s=0.2)
    time.sleep(0.4)
    assert other.take("s2") is None


def _race(one: CheckpointStore, other: CheckpointStore, key: str) -> list[bytes | None]:
    won: list[bytes | None] = []
    barrier = threading.Barrier(2)

    def take(store: CheckpointStore) -> None:
        barrier.wait()
        won.append(store.take(key))

    threads = [threading.Thread(target=take, args=(s,)) for s in (one, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    return won


def test_racing_takes_get_it_exactly_once(stores: list[CheckpointStore]) -> None:
    """A resume in one process and the expiry in another race for the same stream."""
    one, other = stores
    for round_ in range(20):
        key = f"race-{round_}"
        one.put(key, b"state", ttl_s=30)
        assert sorted(_race(one, other, key), key=lambda v: v is None) == [b"state", None]


# --------------------------------------------------------------------------------------------
# A resume that reaches another engine process


async def _cut_on(
    engine: Engine,
    first: pb.StreamRequest,
    requests: list[pb.StreamRequest],
    upto: int,
) -> str:
    """Open (or resume) a stream on ``engine`` with ``first``, send ``requests``, wait until
    the engine has chunk ``upto - 1``, then cut the call; return the stream id."""
    async with grpc.aio.insecure_channel(engine.target) as channel:
        call = audio_pb2_grpc.AudioAnalysisStub(channel).Stream(
            metadata=engine.metadata(), timeout=30
        )
        await call.write(first)
        started = await call.read()
        assert started.WhichOneof("response") == "started", started
        stream_id = str(started.started.stream_id)
        for request in requests:
            await call.write(request)
        while (state := engine.server.hub.get(stream_id)) is None or state.next_sequence < upto:
            await asyncio.sleep(0.01)
        call.cancel()
    return stream_id


@pytest.fixture(autouse=True)
def _both_freed(engine: Engine, other_engine: Engine) -> Iterator[None]:
    """Every stream of a test ended on both engines before the next test counts streams."""
    yield
    for server in (engine, other_engine):
        server.wait_until(lambda s=server: s.counts() == (0, 0), timeout=server.resume_window_s + 5)


def _checkpointed(engine: Engine, stream_id: str) -> bool:
    async def read() -> bool:
        state = engine.server.hub.get(stream_id)
        return state is not None and state.checkpointed

    return engine.run(read())


def _open(session: str | None = None, resume: str | None = None) -> pb.StreamRequest:
    return config(sr=SR, target_bpm=BPM, practice_session_id=session, resume_stream_id=resume)


def test_a_stream_cut_on_one_engine_resumes_on_another(
    engine: Engine, other_engine: Engine
) -> None:
    session = str(uuid.uuid4())
    all_chunks = chunks(PCM, numbered=True)
    cut_after = 18
    stream_id = engine.run(_cut_on(engine, _open(session), all_chunks[:cut_after], cut_after))
    engine.wait_until(lambda: _checkpointed(engine, stream_id))
    restored_before = other_engine.gauge("mpt_engine_streams_total", kind="restored") or 0.0
    moved_before = engine.gauge("mpt_engine_stream_endings_total", outcome="moved") or 0.0

    result = other_engine.run(
        stream_call(
            other_engine, [_open(session, stream_id), *all_chunks[cut_after - 2 :], END]
        )
    )

    assert result.code == grpc.StatusCode.OK, result.details
    assert result.started.resumed and result.started.stream_id == stream_id
    assert result.started.next_sequence == cut_after
    assert result.summary.duration_s == pytest.approx(DURATION_S, abs=0.01)  # no audio twice
    assert result.summary.n_onsets == TRUTH_S.size
    assert result.summary.timing.target_bpm == BPM
    assert other_engine.gauge("mpt_engine_streams_total", kind="restored") == restored_before + 1
    # the first engine drops its copy when its window ends, without a summary of its own
    engine.wait_until(lambda: engine.counts() == (0, 0), timeout=engine.resume_window_s + 5)
    assert engine.gauge("mpt_engine_stream_endings_total", outcome="moved") == moved_before + 1
    (message,) = summaries_for(engine.queue, stream_id, group=uuid.uuid4().hex)
    assert message.payload["summary"]["n_onsets"] == TRUTH_S.size
    assert message.payload["summary"]["duration_s"] == pytest.approx(DURATION_S, abs=0.01)


def test_a_stream_that_moved_and_came_back_carries_on_from_its_newest_state(
    engine: Engine, other_engine: Engine
) -> None:
    """Cut on the first engine, carried on and cut again on the second, resumed on the first:
    the first engine must not go on with its own stale copy."""
    session = str(uuid.uuid4())
    all_chunks = chunks(PCM, numbered=True)
    stream_id = engine.run(_cut_on(engine, _open(session), all_chunks[:10], 10))
    engine.wait_until(lambda: _checkpointed(engine, stream_id))
    other_engine.run(_cut_on(other_engine, _open(session, stream_id), all_chunks[10:25], 25))
    other_engine.wait_until(lambda: _checkpointed(other_engine, stream_id))

    result = engine.run(stream_call(engine, [_open(session, stream_id), *all_chunks[25:], END]))

    assert result.code == grpc.StatusCode.OK, result.details
    assert result.started.next_sequence == 25
    assert result.summary.duration_s == pytest.approx(DURATION_S, abs=0.01)
    assert result.summary.n_onsets == TRUTH_S.size
    other_engine.wait_until(
        lambda: other_engine.counts() == (0, 0), timeout=other_engine.resume_window_s + 5
    )
    (message,) = summaries_for(engine.queue, stream_id, group=uuid.uuid4().hex)
    assert message.payload["summary"]["duration_s"] == pytest.approx(DURATION_S, abs=0.01)


def test_a_resume_back_here_waits_for_the_checkpoint_the_other_engine_is_still_writing(
    engine: Engine, other_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cut on the first engine, carried on and cut again on the second, whose checkpoint
    write is slow (a loaded process, a slow store), and resumed on the first at once: the
    first engine must wait for that checkpoint, not call the stream moved (CI once saw this
    race between the two workers of ``mpt engine``)."""
    store = other_engine.server.hub._checkpoints
    assert store is not None
    slow_put = store.put

    def put(*args: object, **kwargs: object) -> None:
        time.sleep(0.6)
        slow_put(*args, **kwargs)  # type: ignore[arg-type]

    session = str(uuid.uuid4())
    all_chunks = chunks(PCM, numbered=True)
    stream_id = engine.run(_cut_on(engine, _open(session), all_chunks[:10], 10))
    engine.wait_until(lambda: _checkpointed(engine, stream_id))
    monkeypatch.setattr(store, "put", put)
    other_engine.run(_cut_on(other_engine, _open(session, stream_id), all_chunks[10:25], 25))
    assert not _checkpointed(other_engine, stream_id)  # still being written

    result = engine.run(stream_call(engine, [_open(session, stream_id), *all_chunks[25:], END]))

    assert result.code == grpc.StatusCode.OK, result.details
    assert result.started.resumed and result.started.next_sequence == 25
    assert result.summary.duration_s == pytest.approx(DURATION_S, abs=0.01)
    assert result.summary.n_onsets == TRUTH_S.size


def test_a_stream_held_by_another_engine_cannot_be_resumed_here(
    engine: Engine, other_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the first engine must still keep its copy when the stale resume comes: with the
    # fixtures' 1 s window a loaded machine sometimes let it expire first (a NOT_FOUND of
    # another kind); its copy goes as soon as it learns the stream moved, window or not
    monkeypatch.setattr(engine.server.hub, "_resume_window_s", 10.0)
    all_chunks = chunks(PCM, numbered=True)
    stream_id = engine.run(_cut_on(engine, _open(), all_chunks[:10], 10))
    engine.wait_until(lambda: _checkpointed(engine, stream_id))

    async def scenario() -> tuple[grpc.StatusCode, str, grpc.StatusCode, int]:
        async with grpc.aio.insecure_channel(other_engine.target) as channel:
            held = audio_pb2_grpc.AudioAnalysisStub(channel).Stream(
                metadata=other_engine.metadata(), timeout=30
            )
            await held.write(_open(None, stream_id))
            assert (await held.read()).started.resumed
            stale = await stream_call(engine, [_open(None, stream_id)], half_close=False)
            for request in [*all_chunks[10:], END]:
                await held.write(request)
            n_onsets = -1
            while (response := await held.read()) is not grpc.aio.EOF:
                if response.WhichOneof("response") == "summary":
                    n_onsets = response.summary.n_onsets
            return stale.code, stale.details, await held.code(), n_onsets

    code, details, held_code, n_onsets = engine.run(scenario())

    assert code == grpc.StatusCode.NOT_FOUND
    assert "resumed by another engine process" in details
    assert held_code == grpc.StatusCode.OK and n_onsets == TRUTH_S.size
    assert engine.counts() == (0, 0)


def test_a_resume_by_another_user_leaves_the_checkpoint_for_the_owner(
    engine: Engine, other_engine: Engine
) -> None:
    all_chunks = chunks(PCM, numbered=True)
    stream_id = engine.run(_cut_on(engine, _open(), all_chunks[:10], 10))
    engine.wait_until(lambda: _checkpointed(engine, stream_id))
    resume = _open(None, stream_id)

    intruder = other_engine.run(
        stream_call(
            other_engine,
            [resume],
            metadata=other_engine.metadata("someone-else"),
            half_close=False,
        )
    )
    owner = other_engine.run(stream_call(other_engine, [resume, *all_chunks[10:], END]))

    assert intruder.code == grpc.StatusCode.PERMISSION_DENIED
    assert owner.code == grpc.StatusCode.OK, owner.details
    assert owner.summary.n_onsets == TRUTH_S.size


def test_a_checkpoint_of_another_engine_version_is_refused_and_kept(
    engine: Engine, other_engine: Engine
) -> None:
    """During a rolling upgrade a worker may find a checkpoint written by an engine whose
    analyzer keeps other state: the resume fails with NOT_FOUND saying so (not an internal
    error half-way through the stream), and the checkpoint stays for an engine of the version
    that wrote it."""
    import pickle

    all_chunks = chunks(PCM, numbered=True)
    stream_id = engine.run(_cut_on(engine, _open(), all_chunks[:10], 10))
    engine.wait_until(lambda: _checkpointed(engine, stream_id))
    store = other_engine.server.hub._checkpoints
    assert store is not None
    blob = store.take(stream_id)
    assert blob is not None
    checkpoint = pickle.loads(blob[16:])
    del checkpoint.analyzer.__dict__["_probed"]  # an engine from before the onset probes
    old = blob[:16] + pickle.dumps(checkpoint)
    store.put(stream_id, old, ttl_s=60)

    result = other_engine.run(stream_call(other_engine, [_open(None, stream_id), END]))

    assert result.code == grpc.StatusCode.NOT_FOUND
    assert "another version of the engine" in result.details
    assert store.take(stream_id) == old  # left for the engine that wrote it
