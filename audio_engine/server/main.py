"""Build and run the engine's gRPC server: :func:`serve` (blocking, the command line's entry)
and :func:`start_server` (async, for embedding and tests).

One process serves many concurrent streams on one asyncio event loop; decoding and analysis
run on a few threads (the numba kernels release the GIL) that hand results back to the loop
a batch at a time (:class:`~audio_engine.server.batches.BatchExecutor`). ``workers > 1`` starts that
many processes sharing the port with ``SO_REUSEPORT`` (the kernel spreads connections);
their Prometheus metrics are aggregated by the parent through ``prometheus_client``'s
multiprocess mode and served on one port.

Every ``AudioAnalysis`` call needs a valid token (see :mod:`.interceptors`), on loopback too;
the standard health service and server reflection are registered and open. SIGTERM or SIGINT
stops gracefully: health turns NOT_SERVING, new streams are refused, live streams are told to
wrap up and get ``shutdown_grace_s`` to send their summary, and every stream kept for a
resume is finished so its practice session still gets its summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry, start_http_server

from audio_engine.events import StreamSummary
from audio_engine.server.batches import BatchExecutor
from audio_engine.server.checkpoints import CheckpointStore, open_checkpoints
from audio_engine.server.interceptors import EngineInterceptor
from audio_engine.server.metrics import EngineMetrics, create_metrics
from audio_engine.server.servicer import AudioAnalysisServicer
from audio_engine.server.streams import Analyzer, Publisher, StreamHub, StreamState
from audio_engine.stream import StreamAnalyzer, StreamConfig
from mpt.events import STREAM_SUMMARY_TOPIC, stream_summary_event
from mpt.queue import DurableQueue, open_queue
from mpt.settings import Settings
from mpt_protos.audio.v1 import audio_pb2, audio_pb2_grpc

__all__ = [
    "SERVICE_NAME",
    "EngineServer",
    "ServerAddresses",
    "grpc_options",
    "queue_publisher",
    "serve",
    "start_server",
]

_log = logging.getLogger(__name__)

SERVICE_NAME = audio_pb2.DESCRIPTOR.services_by_name["AudioAnalysis"].full_name
_MESSAGE_OVERHEAD_BYTES = 1024 * 1024  # room for the fields around the largest audio payload


@dataclass(frozen=True, slots=True)
class ServerAddresses:
    """Where a started server listens (``metrics_port`` None when metrics are off)."""

    host: str
    port: int
    metrics_port: int | None


@dataclass(slots=True)
class EngineServer:
    """A started server of one process; :meth:`stop` it (gracefully) when done."""

    server: grpc.aio.Server
    port: int
    hub: StreamHub
    health: health.aio.HealthServicer
    metrics: EngineMetrics
    executor: BatchExecutor
    recording_executor: ThreadPoolExecutor
    grace_s: float

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop gracefully: NOT_SERVING, refuse new streams, let live ones send their summary
        within the grace period, finish the kept ones, then release the thread pools."""
        grace = self.grace_s if grace_s is None else grace_s
        await self.health.enter_graceful_shutdown()
        await self.hub.drain()
        await self.server.stop(grace)
        await self.hub.close()
        self.executor.shutdown(wait=True, cancel_futures=True)
        self.recording_executor.shutdown(wait=False, cancel_futures=True)

    async def wait_for_termination(self) -> None:
        await self.server.wait_for_termination()


def grpc_options(settings: Settings, *, reuse_port: bool) -> list[tuple[str, int]]:
    """Channel arguments of the server: port sharing, message size, keepalive."""
    engine = settings.engine
    max_message = max(engine.max_recording_bytes, engine.max_chunk_bytes) + _MESSAGE_OVERHEAD_BYTES
    return [
        ("grpc.so_reuseport", 1 if reuse_port else 0),
        ("grpc.max_receive_message_length", max_message),
        ("grpc.keepalive_time_ms", round(engine.keepalive_time_s * 1000)),
        ("grpc.keepalive_timeout_ms", round(engine.keepalive_timeout_s * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 5000),
    ]


def queue_publisher(queue: DurableQueue) -> Publisher:
    """A publisher of ``stream.summary.v1`` events to ``queue`` (:func:`mpt.queue.open_queue`).

    The event id is derived from the stream id, so publishing a stream twice delivers once.
    """

    def publish(state: StreamState, summary: StreamSummary) -> None:
        assert state.setup.practice_session_id is not None and state.ended_at is not None
        event_id, payload = stream_summary_event(
            stream_id=state.stream_id,
            user_id=state.subject,
            session_id=state.setup.practice_session_id,
            started_at=state.started_at,
            ended_at=state.ended_at,
            summary=summary.to_dict(),
        )
        queue.publish(STREAM_SUMMARY_TOPIC, event_id, payload)

    return publish


async def start_server(
    settings: Settings,
    *,
    public_key: Ed25519PublicKey,
    publish: Publisher | None,
    metrics: EngineMetrics,
    host: str | None = None,
    port: int | None = None,
    reuse_port: bool = False,
    analyzer_factory: Callable[[StreamConfig], Analyzer] = StreamAnalyzer,
    checkpoints: CheckpointStore | None = None,
) -> EngineServer:
    """Start a server in the running event loop and return it (listening).

    Parameters
    ----------
    settings : Settings
        ``settings.engine`` gives the limits, the resume window and the grace period.
    public_key : Ed25519PublicKey
        Verifies the tokens of every call.
    publish : Publisher or None
        Hands practice-session summaries to the durable queue (:func:`queue_publisher`).
    metrics : EngineMetrics
        Instruments (:func:`~audio_engine.server.metrics.create_metrics`).
    host, port : str, int, optional
        Where to listen; default ``settings.engine``'s. Port 0 picks a free port.
    reuse_port : bool
        Share the port with other processes (``SO_REUSEPORT``).
    analyzer_factory : callable, optional
        Builds each stream's analyzer.
    checkpoints : CheckpointStore or None, optional
        Shared with the other engine processes, so a resume may reach any of them
        (:func:`~audio_engine.server.checkpoints.open_checkpoints`); None: a stream resumes
        only in this process.

    Raises
    ------
    OSError
        The address cannot be bound.
    """
    engine = settings.engine
    host = engine.host if host is None else host
    port = engine.port if port is None else port
    threads = engine.analysis_threads or os.cpu_count() or 4
    executor = BatchExecutor(threads, name="mpt-analysis")
    recording_executor = ThreadPoolExecutor(
        max_workers=max(1, threads // 4), thread_name_prefix="mpt-recording"
    )
    hub = StreamHub(
        executor=executor,
        metrics=metrics,
        publish=publish,
        resume_window_s=engine.resume_window_s,
        max_streams=engine.max_streams,
        max_chunk_bytes=engine.max_chunk_bytes,
        analyzer_factory=analyzer_factory,
        checkpoints=checkpoints,
    )
    server = grpc.aio.server(
        interceptors=[
            EngineInterceptor(
                public_key=public_key, metrics=metrics, leeway_s=engine.token_leeway_s
            )
        ],
        options=grpc_options(settings, reuse_port=reuse_port),
        maximum_concurrent_rpcs=None,
    )
    audio_pb2_grpc.add_AudioAnalysisServicer_to_server(
        AudioAnalysisServicer(
            hub=hub,
            metrics=metrics,
            recording_executor=recording_executor,
            max_recording_bytes=engine.max_recording_bytes,
        ),
        server,
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as exc:  # grpc reports a failed bind this way
        raise OSError(f"cannot listen on {address}: {exc}") from None
    if bound == 0:
        raise OSError(f"cannot listen on {address}")
    await server.start()
    for service in ("", SERVICE_NAME):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    _log.info("audio engine listening on %s", address.rsplit(":", 1)[0] + f":{bound}")
    return EngineServer(
        server=server,
        port=bound,
        hub=hub,
        health=health_servicer,
        metrics=metrics,
        executor=executor,
        recording_executor=recording_executor,
        grace_s=engine.shutdown_grace_s,
    )


def serve(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    metrics_port: int | None = -1,
    on_ready: Callable[[ServerAddresses], None] | None = None,
) -> None:
    """Run the engine until SIGTERM or SIGINT, then stop gracefully.

    Parameters
    ----------
    settings : Settings
        All settings; ``settings.engine`` for the server, ``security`` for the public key,
        ``data_dir``/``redis`` for the durable queue.
    host, port : str, int, optional
        Override ``settings.engine.host``/``port``; port 0 picks a free port.
    workers : int, optional
        Processes sharing the port (default ``settings.engine.workers``).
    metrics_port : int or None, optional
        Prometheus port (0 picks one, None disables); default ``settings.engine``'s.
    on_ready : callable, optional
        Called with the addresses once every worker listens.
    """
    engine = settings.engine
    host = engine.host if host is None else host
    port = engine.port if port is None else port
    workers = engine.workers if workers is None else workers
    metrics_port = engine.metrics_port if metrics_port == -1 else metrics_port
    if workers <= 1:
        asyncio.run(_serve_process(settings, host, port, metrics_port, False, on_ready))
    else:
        _serve_workers(settings, host, port, workers, metrics_port, on_ready)


# --------------------------------------------------------------------------------------------
# One process


async def _serve_process(
    settings: Settings,
    host: str,
    port: int,
    metrics_port: int | None,
    reuse_port: bool,
    on_ready: Callable[[ServerAddresses], None] | None,
) -> None:
    from mpt.tokens import verification_key

    registry: CollectorRegistry | None = None
    bound_metrics: int | None = None
    if metrics_port is not None:
        registry = CollectorRegistry()
        http_server, _ = start_http_server(metrics_port, addr=host, registry=registry)
        bound_metrics = int(http_server.server_port)
    metrics = create_metrics(registry)
    stop = asyncio.Event()
    _install_signal_handlers(stop)
    public_key = verification_key(settings)
    queue = open_queue(settings)
    checkpoints: CheckpointStore | None = None
    try:
        checkpoints = open_checkpoints(settings)
        server = await start_server(
            settings,
            public_key=public_key,
            publish=queue_publisher(queue),
            metrics=metrics,
            host=host,
            port=port,
            reuse_port=reuse_port,
            checkpoints=checkpoints,
        )
    except BaseException:
        queue.close()
        if checkpoints is not None:
            checkpoints.close()
        raise
    try:
        if on_ready is not None:
            on_ready(ServerAddresses(host=host, port=server.port, metrics_port=bound_metrics))
        stopped = asyncio.ensure_future(server.wait_for_termination())
        signalled = asyncio.ensure_future(stop.wait())
        await asyncio.wait([stopped, signalled], return_when=asyncio.FIRST_COMPLETED)
        _log.info("audio engine stopping (grace %.1f s)", server.grace_s)
    finally:
        try:
            await server.stop()
        finally:
            queue.close()
            checkpoints.close()


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)


# --------------------------------------------------------------------------------------------
# Several processes on one port


def _serve_workers(
    settings: Settings,
    host: str,
    port: int,
    workers: int,
    metrics_port: int | None,
    on_ready: Callable[[ServerAddresses], None] | None,
) -> None:
    """Parent of ``workers`` server processes: aggregates their metrics, restarts a crashed
    one, forwards SIGTERM/SIGINT and waits for their graceful stop."""
    from prometheus_client import multiprocess

    with contextlib.ExitStack() as stack:
        holder: socket.socket | None = None
        if port == 0:  # pick one free port for all the workers, held until they bind it
            holder = stack.enter_context(socket.socket(_family(host), socket.SOCK_STREAM))
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            holder.bind((host, 0))
            port = int(holder.getsockname()[1])
        metrics_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mpt-metrics-")))
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        bound_metrics: int | None = None
        if metrics_port is not None:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(  # type: ignore[no-untyped-call]
                registry, path=str(metrics_dir)
            )
            http_server, _ = start_http_server(metrics_port, addr=host, registry=registry)
            bound_metrics = int(http_server.server_port)

        ctx = multiprocessing.get_context("spawn")
        stopping = False

        def on_signal(signum: int, _frame: Any) -> None:
            nonlocal stopping
            stopping = True

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        stack.callback(lambda: [signal.signal(s, h) for s, h in previous.items()])

        def start(index: int) -> tuple[multiprocessing.process.BaseProcess, MpEvent]:
            ready = ctx.Event()
            proc = ctx.Process(
                target=_worker_main,
                args=(settings, host, port, ready),
                name=f"mpt-engine-worker-{index}",
                daemon=False,
            )
            proc.start()
            return proc, ready

        procs: list[tuple[multiprocessing.process.BaseProcess, MpEvent]] = []

        def kill_left() -> None:
            # a worker that failed to start must not leave the others running (orphans
            # holding the port and the parent's stderr)
            for proc, _ in procs:
                if proc.is_alive():
                    proc.kill()
                    proc.join()

        stack.callback(kill_left)
        procs.extend(start(i) for i in range(workers))
        for proc, ready in procs:
            while not ready.wait(0.1):
                if not proc.is_alive():
                    raise OSError(f"engine worker {proc.name} exited while starting")
        if holder is not None:
            holder.close()
        if on_ready is not None:
            on_ready(ServerAddresses(host=host, port=port, metrics_port=bound_metrics))
        while not stopping:
            time.sleep(0.2)
            for i, (proc, _) in enumerate(procs):
                if not proc.is_alive() and not stopping:
                    _log.error(
                        "engine worker %s exited with %s; restarting", proc.name, proc.exitcode
                    )
                    if proc.pid is not None:
                        multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
                            proc.pid, str(metrics_dir)
                        )
                    procs[i] = start(i)
        for proc, _ in procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + settings.engine.shutdown_grace_s + 10.0
        for proc, _ in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.is_alive():
                _log.error("engine worker %s did not stop in time; killing it", proc.name)
                proc.kill()
                proc.join()


def _worker_main(settings: Settings, host: str, port: int, ready: MpEvent) -> None:
    """Entry point of a worker process (spawned)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(processName)s %(message)s")
    asyncio.run(_serve_process(settings, host, port, None, True, lambda _addresses: ready.set()))


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
