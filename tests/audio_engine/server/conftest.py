"""One real engine server for the session: port 0 on loopback, in this process, on an event
loop in a thread that the tests' clients share; its own data directory (keys, queue, the
checkpoints of cut streams). ``other_engine`` is a second server on the same data directory,
as another worker process would be: a stream cut on one can be resumed on the other."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from audio_engine.server.checkpoints import open_checkpoints
from audio_engine.server.main import queue_publisher, start_server
from audio_engine.server.metrics import create_metrics
from audio_engine.stream import StreamAnalyzer, StreamConfig
from mpt.queue import open_queue
from mpt.settings import EngineSettings, Settings
from mpt.tokens import ensure_keypair, load_private_key, load_public_key
from tests.audio_engine._support.engine import Engine, LoopThread

RESUME_WINDOW_S = 1.0
MAX_CHUNK_BYTES = 64 * 1024


@pytest.fixture(scope="session")
def aio() -> Iterator[LoopThread]:
    loop = LoopThread()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def engine_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data_dir = tmp_path_factory.mktemp("engine-data")
    return Settings(  # type: ignore[call-arg]  # pydantic-settings init kwargs
        _env_file=None,
        data_dir=data_dir,
        engine=EngineSettings(
            port=0,
            metrics_port=None,
            analysis_threads=4,
            resume_window_s=RESUME_WINDOW_S,
            token_leeway_s=0.0,
            max_chunk_bytes=MAX_CHUNK_BYTES,
            max_recording_bytes=4 * 1024 * 1024,
            shutdown_grace_s=2.0,
        ),
    )


@pytest.fixture(scope="session")
def engine(aio: LoopThread, engine_settings: Settings) -> Iterator[Engine]:
    with _engine(aio, engine_settings) as started:
        yield started


@pytest.fixture(scope="session")
def other_engine(aio: LoopThread, engine_settings: Settings, engine: Engine) -> Iterator[Engine]:
    with _engine(aio, engine_settings) as started:
        yield started


@contextmanager
def _engine(aio: LoopThread, settings: Settings) -> Iterator[Engine]:
    keys = ensure_keypair(settings.data_dir)
    queue = open_queue(settings)
    checkpoints = open_checkpoints(settings)
    registry = CollectorRegistry()
    _warm_up()
    server = aio.run(
        start_server(
            settings,
            public_key=load_public_key(keys.public_key),
            publish=queue_publisher(queue),
            metrics=create_metrics(registry),
            checkpoints=checkpoints,
        )
    )
    try:
        yield Engine(
            aio=aio,
            server=server,
            private_key=load_private_key(keys.private_key),
            queue=queue,
            registry=registry,
            resume_window_s=RESUME_WINDOW_S,
            max_chunk_bytes=MAX_CHUNK_BYTES,
        )
    finally:
        aio.run(server.stop(0.5))
        queue.close()
        checkpoints.close()


def _warm_up() -> None:
    """Load the analyzer's compiled kernels once, so no test's timing includes it."""
    analyzer = StreamAnalyzer(StreamConfig(sr=16000, target_bpm=120.0))
    analyzer.process(np.zeros(16000, dtype=np.float32))
    analyzer.finish()
