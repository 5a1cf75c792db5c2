"""Run the API over HTTP: :func:`serve` (blocking; ``python -m api``, ``mpt api``, ``mpt up``).

uvicorn (uvloop event loop, httptools parser) serves :func:`api.main.create_app` built as a
factory in every process. The listening socket is bound here, before the app starts, so port
0 resolves to a free port that is known up front; ``on_ready`` is called with the bound
address only once the app's lifespan has completed (schema migrated, database engine and
keys loaded) in every worker.

Logs are JSON lines on stderr (:class:`api.observability.JsonLogFormatter`): the access log
is the app's own (``api.access``, one line per request with its id, route, status and
duration); uvicorn's access log is off.

SIGTERM or SIGINT stops gracefully: the socket stops accepting, requests in flight get up to
:data:`GRACEFUL_SHUTDOWN_S` to finish, the lifespan closes the database pool, and the process
exits with status 0.

Several workers (``workers > 1``) are processes that share the one bound socket (the kernel
spreads the connections); they are started one after the other (so start-up work that
creates tables or partitions never races), the schema is migrated once by the parent before
the first starts, and a worker that dies is restarted. What workers do not share:

- rate-limit counters, unless Redis is configured (``MPT_REDIS__URL``): with the in-memory
  limiter every worker counts on its own, so a client may get up to ``workers`` times a
  limit;
- on the embedded SQLite default, every worker opens the same file: WAL mode lets readers
  run beside the one writer and ``busy_timeout`` makes writers queue, so it works, but writes
  do not scale with workers — use PostgreSQL for that.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as MpEvent
from typing import Any, Final

import uvicorn

from api.observability import JsonLogFormatter
from mpt.settings import Settings

__all__ = ["GRACEFUL_SHUTDOWN_S", "ServeAddress", "bind_socket", "configure_logging", "serve"]

_log = logging.getLogger("api.serve")

#: The collector's first-generation threshold in a serving process (Python's default 700).
#: A request allocates thousands of short-lived objects (rows, models, coroutines), so at
#: 700 the collector ran about four times per request and took 5-7 % of the server's CPU
#: while finding almost nothing (reference counting frees them); at 10,000 it takes under
#: 1 %. Objects alive once the app has started are frozen out of every collection.
GC_GEN0_THRESHOLD: Final = 10_000

#: How long requests in flight get to finish after SIGTERM/SIGINT.
GRACEFUL_SHUTDOWN_S: Final = 10.0
_WORKER_START_TIMEOUT_S: Final = 120.0
_WORKER_STOP_TIMEOUT_S: Final = GRACEFUL_SHUTDOWN_S + 10.0
_POLL_S: Final = 0.2
_LOG_LEVELS: Final = ("critical", "error", "warning", "info", "debug")


@dataclass(frozen=True, slots=True)
class ServeAddress:
    """Where a started API listens.

    Attributes
    ----------
    host : str
        The listen address (as given: ``0.0.0.0`` means every interface).
    port : int
        The bound port (never 0).
    workers : int
        Processes serving it.
    pid : int
        The process that owns the socket (the server, or the workers' parent).
    """

    host: str
    port: int
    workers: int
    pid: int

    def url(self) -> str:
        """The address a client on this machine uses (a wildcard host means loopback)."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def to_dict(self) -> dict[str, Any]:
        """The ready file's JSON object: ``{"host", "port", "url", "workers", "pid"}``."""
        return {"host": self.host, "port": self.port, "url": self.url(),
                "workers": self.workers, "pid": self.pid}


def configure_logging(level: str = "info") -> None:
    """Send every log record to stderr as one JSON object per line (replaces the root
    handlers); uvicorn's loggers propagate to it, its own access log stays off."""
    if level not in _LOG_LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(_LOG_LEVELS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLogFormatter())
    handler.addFilter(_drop_color_message)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    # Alembic announces every plugin it loads at INFO; its migration steps stay visible.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _drop_color_message(record: logging.LogRecord) -> bool:
    """uvicorn adds an ANSI-coloured copy of some messages; JSON lines do not want it."""
    record.__dict__.pop("color_message", None)
    return True


def bind_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (0 picks a free port), not yet listening.

    Raises
    ------
    OSError
        The address cannot be bound (taken, or not an address of this machine).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise OSError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def serve(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    log_level: str = "info",
    on_ready: Callable[[ServeAddress], None] | None = None,
) -> None:
    """Serve the API until SIGTERM or SIGINT, then stop gracefully and return.

    Parameters
    ----------
    settings : Settings
        Every setting; ``settings.api`` gives the defaults of the arguments below.
    host, port : str, int, optional
        Listen address; port 0 picks a free port (given to ``on_ready``).
    workers : int, optional
        Processes sharing the socket (default ``settings.api.workers``).
    log_level : str
        Threshold of the JSON logs (``info`` logs one access line per request).
    on_ready : callable, optional
        Called once with the bound address when every worker's lifespan has completed.

    Raises
    ------
    OSError
        The address cannot be bound.
    RuntimeError
        A worker exited while starting (its error is in the log).
    SystemExit
        uvicorn's exit status 3 when the app's lifespan fails to start in-process
        (a database that does not answer, a key that cannot be read).
    """
    configure_logging(log_level)
    host = settings.api.host if host is None else host
    port = settings.api.port if port is None else port
    workers = settings.api.workers if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be 1 or more, got {workers}")
    sock = bind_socket(host, port)
    with contextlib.closing(sock):
        address = ServeAddress(host=host, port=int(sock.getsockname()[1]), workers=workers,
                               pid=os.getpid())

        def ready() -> None:
            _log.info("API listening on %s", address.url(), extra=address.to_dict())
            if on_ready is not None:
                on_ready(address)

        if workers == 1:
            _run_server(settings, sock, log_level=log_level, on_started=ready)
        else:
            _serve_workers(settings, sock, workers, log_level=log_level, on_ready=ready)


# --------------------------------------------------------------------------------------------
# One process


class _Server(uvicorn.Server):
    """uvicorn's server, telling when it has started and exiting 0 after a signal.

    uvicorn re-raises the signal that stopped it once it has shut down (so the default
    handler ends the process with it); a service stopped on request exits 0 instead.
    """

    def __init__(self, config: uvicorn.Config, on_started: Callable[[], None] | None) -> None:
        super().__init__(config)
        self._on_started = on_started

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with contextlib.ExitStack() as stack:
            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    previous = signal.signal(sig, self.handle_exit)
                    stack.callback(signal.signal, sig, previous)
            yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            tune_gc()
        if self.started and self._on_started is not None:
            self._on_started()


def tune_gc() -> None:
    """Collect once, freeze what survived (the app, its caches and imports) out of later
    collections, and raise the first generation's threshold to :data:`GC_GEN0_THRESHOLD`
    (the older generations keep their ratios of 10)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 10, 10)


def _config(settings: Settings, log_level: str) -> uvicorn.Config:
    from api.main import create_app

    return uvicorn.Config(
        functools.partial(create_app, settings),
        factory=True,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_config=None,
        log_level=log_level,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=int(GRACEFUL_SHUTDOWN_S),
    )


def _run_server(
    settings: Settings, sock: socket.socket, *, log_level: str,
    on_started: Callable[[], None] | None,
) -> None:
    """Serve on ``sock`` in this process until a signal stops it."""
    config = _config(settings, log_level)
    server = _Server(config, on_started)
    server.run(sockets=[sock])
    if not server.started and not server.should_exit:
        raise SystemExit(3)  # the lifespan failed (uvicorn normally exits 3 itself)


# --------------------------------------------------------------------------------------------
# Several processes on one socket


def _serve_workers(
    settings: Settings, sock: socket.socket, workers: int, *, log_level: str,
    on_ready: Callable[[], None],
) -> None:
    """Parent of ``workers`` processes serving ``sock``: migrates once, starts them one by
    one, restarts a dead one, and on SIGTERM/SIGINT stops them all gracefully."""
    if settings.database.auto_migrate:
        from api.migrate import upgrade

        upgrade(settings)
        settings = settings.model_copy(update={
            "database": settings.database.model_copy(update={"auto_migrate": False}),
        })
    ctx = multiprocessing.get_context("spawn")
    stopping = False

    def on_signal(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    procs: list[BaseProcess] = []
    try:
        def start(index: int) -> BaseProcess:
            started = ctx.Event()
            proc = ctx.Process(
                target=_worker_main, args=(settings, sock, log_level, started),
                name=f"mpt-api-worker-{index}", daemon=False,
            )
            proc.start()
            _wait_started(proc, started, lambda: stopping)
            return proc

        for index in range(workers):
            if stopping:
                break
            procs.append(start(index))
        if not stopping:
            on_ready()
        while not stopping:
            time.sleep(_POLL_S)
            for index, proc in enumerate(procs):
                if not proc.is_alive() and not stopping:
                    _log.error("API worker %s exited with %s; restarting", proc.name,
                               proc.exitcode, extra={"worker": proc.name})
                    procs[index] = start(index)
    finally:
        _stop_workers(procs)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_started(proc: BaseProcess, started: MpEvent, stopping: Callable[[], bool]) -> None:
    deadline = time.monotonic() + _WORKER_START_TIMEOUT_S
    while not started.wait(0.05):
        if stopping():
            return
        if not proc.is_alive():
            raise RuntimeError(f"API worker {proc.name} exited with {proc.exitcode} while "
                               "starting (its error is in the log above)")
        if time.monotonic() > deadline:
            raise RuntimeError(f"API worker {proc.name} did not start within "
                               f"{_WORKER_START_TIMEOUT_S:g} s")


def _stop_workers(procs: list[BaseProcess]) -> None:
    for proc in procs:
        if proc.is_alive() and proc.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + _WORKER_STOP_TIMEOUT_S
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            _log.error("API worker %s did not stop in time; killing it", proc.name)
            proc.kill()
            proc.join()


def _worker_main(settings: Settings, sock: socket.socket, log_level: str,
                 started: MpEvent) -> None:
    """Entry point of a worker process (spawned)."""
    configure_logging(log_level)
    _run_server(settings, sock, log_level=log_level, on_started=started.set)
