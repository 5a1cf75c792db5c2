"""The ``mpt`` command line.

Commands::

    mpt analyze PATH [--target-bpm BPM] [--grid-start S] [--subdivision {1,2,3,4}]
                     [--latency-ms MS] [--json]
    mpt demo [--json]
    mpt up [--host HOST] [--port PORT] [--workers N] [--metrics-port PORT|off]
           [--api-port PORT] [--api-workers N] [--no-api] [--no-engine] [--allow-remote]
    mpt api [--host HOST] [--port PORT] [--workers N] [--allow-remote]
    mpt db upgrade [REVISION] | mpt db downgrade REVISION | mpt db current
    mpt admin create --email EMAIL --display-name NAME [--timezone TZ] [--password-stdin]
    mpt seed
    mpt stream (PATH | --mic) [--target-bpm BPM] [--grid-start S] [--subdivision N]
               [--latency-ms MS] [--server ADDR] [--speed F] [--chunk-ms MS]
               [--encoding {pcm16,opus}] [--session-id ID] [--token TOKEN] [--json]

Global options (also accepted after the command): ``--data-dir DIR``, ``--debug``,
``--version``.

Every failure prints one line ``mpt: error: <reason>`` on stderr and exits non-zero:
2 for usage and configuration errors, 1 for input errors (a missing, unreadable, corrupt or
empty file, or audio the engine rejects; a database that does not answer), 130 when
interrupted. ``--debug`` adds the traceback. The engine and the API are imported only inside
the commands, after the numba cache directory has been configured; ``mpt up`` runs the
engine's gRPC server and the REST API in child processes under :mod:`mpt.supervisor`,
``mpt api`` runs the API alone in the foreground, ``mpt db``/``admin``/``seed`` call
:mod:`api.cli`, ``mpt stream`` talks to the engine with :mod:`mpt.stream_client`. The
console script enters through :func:`mpt.launch.run` (the garbage collector off in short
commands); rich is imported only where something is drawn.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import ipaddress
import json
import math
import os
import socket
import sys
import tempfile
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from mpt.datadir import configure_numba_cache, ensure_data_dir, ensure_subdir
from mpt.errors import ConfigError, DataDirError, EngineCallError, MptError
from mpt.launch import collect_from_here
from mpt.settings import Settings, get_settings

if TYPE_CHECKING:
    from rich.console import Console

    from audio_engine.result import AnalysisResult
    from mpt.stream_client import AudioSource, StreamView
    from mpt.stream_view import LiveView
    from mpt.supervisor import ReadyInfo

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_INPUT = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

TARGET_BPM_RANGE = (20.0, 400.0)
LATENCY_MS_LIMIT = 1000.0
DEMO_FILENAME = "demo_performance.wav"
CHUNK_MS_RANGE = (10, 1000)
WORKERS_RANGE = (1, 64)
ENGINE_READY_TIMEOUT_S = 120.0  # a first start may compile the kernels
API_READY_TIMEOUT_S = 120.0  # the first start migrates the schema
API_SHUTDOWN_GRACE_S = 10.0  # api.serve.GRACEFUL_SHUTDOWN_S (not imported: mpt loads no service)
# commands that run until stopped: under the console script they need the garbage collector
# back on (mpt.launch); the others run with it off and exit
LONG_RUNNING_COMMANDS = frozenset({"up", "api", "stream"})
STOP_MARGIN_S = 5.0  # beyond the engine's own shutdown grace, before SIGKILL
# What the `api` extra brings.
_API_MODULES = ("fastapi", "uvicorn", "uvloop", "httptools", "sqlalchemy", "alembic",
                "asyncpg", "aiosqlite", "pwdlib", "prometheus_client")
# What the `server` extra brings (the engine's own dependencies included).
_SERVER_MODULES = (
    "grpc",
    "grpc_health",
    "grpc_reflection",
    "google.protobuf",
    "prometheus_client",
    "numpy",
    "numba",
    "soundfile",
    "av",
)


class UsageError(Exception):
    """The command line is invalid (raised instead of argparse's print-and-exit)."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are exceptions, so ``main`` prints them in one line."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


@dataclass(frozen=True, slots=True)
class AnalyzeOptions:
    """The timing arguments of ``mpt analyze``, validated."""

    target_bpm: float | None = None
    grid_start_s: float = 0.0
    subdivision: int | None = None
    latency_ms: float = 0.0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mpt`` command line.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; defaults to ``sys.argv[1:]``.

    Returns
    -------
    int
        The process exit code (0 success, 1 input error, 2 usage error, 130 interrupted).
    """
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
        debug = bool(args.debug)
        if args.command is None:
            raise UsageError(
                "no command given; choose one of: analyze, demo, up, stream, api, db, admin, "
                "seed (see 'mpt --help')"
            )
        settings = get_settings()
        if args.data_dir is not None:
            settings = settings.model_copy(update={"data_dir": args.data_dir})
        configure_numba_cache(settings.cache_dir)  # before anything imports numba
        if args.command in LONG_RUNNING_COMMANDS:
            collect_from_here()
        command: Callable[[argparse.Namespace, Settings], int] = args.func
        return command(args, settings)
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED, debug)
    except BrokenPipeError:  # `mpt ... | head`: the reader left; say nothing more
        _silence_stdout()
        return EXIT_INPUT
    except (UsageError, ConfigError) as exc:
        return _fail(str(exc), EXIT_USAGE, debug)
    except MptError as exc:
        return _fail(str(exc), EXIT_INPUT, debug)
    except Exception as exc:
        if _is_engine_error(exc):
            return _fail(str(exc), EXIT_INPUT, debug)
        return _fail(
            f"unexpected {type(exc).__name__}: {exc}"
            + ("" if debug else " (run with --debug for the traceback)"),
            EXIT_INPUT,
            debug,
        )


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of ``mpt`` (exposed for documentation and tests)."""
    parser = _Parser(
        prog="mpt",
        description="Music Practice Tracker: analyse practice recordings against a tempo, run "
        "the services on this machine (up) and stream audio to them with live feedback (stream).",
    )
    parser.add_argument("--version", action="version", version=f"mpt {_version()}")
    _add_common_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    analyze = commands.add_parser(
        "analyze",
        help="analyse an audio or video file",
        description="Detect onsets, tempo and beats; with --target-bpm also report timing.",
    )
    analyze.add_argument("path", type=Path, metavar="PATH", help="audio or video file")
    analyze.add_argument(
        "--target-bpm",
        type=_target_bpm,
        metavar="BPM",
        help="the tempo practised against, 20..400 BPM (enables the timing report)",
    )
    analyze.add_argument(
        "--grid-start",
        type=_grid_start,
        default=0.0,
        metavar="S",
        help="time of the first grid line in seconds (default 0)",
    )
    analyze.add_argument(
        "--subdivision",
        type=int,
        choices=(1, 2, 3, 4),
        help="notes per beat: 1 quarters, 2 eighths, 3 triplets, 4 sixteenths (default: inferred)",
    )
    analyze.add_argument(
        "--latency-ms",
        type=_latency_ms,
        default=0.0,
        metavar="MS",
        help="recording latency subtracted from note times, within ±1000 ms (default 0)",
    )
    analyze.add_argument("--json", action="store_true", help="print one JSON object")
    _add_common_options(analyze, suppress=True)
    analyze.set_defaults(func=_cmd_analyze)

    demo = commands.add_parser(
        "demo",
        help="render and analyse a synthetic practice take",
        description="Render a 20 s practice take (96 BPM eighth notes, slightly rushing), "
        "write it under the data directory and analyse it.",
    )
    demo.add_argument("--json", action="store_true", help="print one JSON object")
    _add_common_options(demo, suppress=True)
    demo.set_defaults(func=_cmd_demo)
    _add_up_parser(commands)
    _add_stream_parser(commands)
    _add_api_parsers(commands)
    return parser


def _add_up_parser(commands: Any) -> None:
    up = commands.add_parser(
        "up",
        help="run the services on this machine (the audio engine and the REST API)",
        description="Run the services on the embedded defaults, each in its own process, "
        "until Ctrl-C: the audio engine's gRPC server and the REST API. Prints where each "
        "listens; a crashed service is reported and restarted.",
    )
    up.add_argument(
        "--host",
        metavar="HOST",
        help="listen address of every service (default: $MPT_ENGINE__HOST for the engine, "
        "$MPT_API__HOST for the API, both 127.0.0.1); a non-loopback address needs "
        "--allow-remote",
    )
    up.add_argument(
        "--port",
        type=_port,
        metavar="PORT",
        help="engine gRPC port (default: $MPT_ENGINE__PORT or 50051; 0 picks a free one)",
    )
    up.add_argument(
        "--workers",
        type=_workers,
        metavar="N",
        help="engine processes sharing the port (default: $MPT_ENGINE__WORKERS or 1)",
    )
    up.add_argument(
        "--metrics-port",
        type=_metrics_port,
        metavar="PORT",
        help="Prometheus /metrics port, 0 for a free one, 'off' to disable "
        "(default: $MPT_ENGINE__METRICS_PORT or 9464)",
    )
    up.add_argument(
        "--api-port",
        type=_port,
        metavar="PORT",
        help="REST API port (default: $MPT_API__PORT or 8000; 0 picks a free one)",
    )
    up.add_argument(
        "--api-workers",
        type=_workers,
        metavar="N",
        help="API processes sharing its port (default: $MPT_API__WORKERS or 1)",
    )
    up.add_argument("--no-api", action="store_true", help="do not start the REST API")
    up.add_argument("--no-engine", action="store_true", help="do not start the audio engine")
    up.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow listening on a non-loopback address (calls still need a token; "
        "traffic is not encrypted)",
    )
    _add_common_options(up, suppress=True)
    up.set_defaults(func=_cmd_up)


def _add_api_parsers(commands: Any) -> None:
    api = commands.add_parser(
        "api",
        help="run the REST API alone in the foreground",
        description="Serve the REST API (uvicorn) until Ctrl-C; JSON logs on stderr. The "
        "schema is migrated first unless MPT_DATABASE__AUTO_MIGRATE=false.",
    )
    api.add_argument(
        "--host", metavar="HOST",
        help="listen address (default: $MPT_API__HOST or 127.0.0.1); a non-loopback address "
        "needs --allow-remote",
    )
    api.add_argument(
        "--port", type=_port, metavar="PORT",
        help="HTTP port (default: $MPT_API__PORT or 8000; 0 picks a free one)",
    )
    api.add_argument(
        "--workers", type=_workers, metavar="N",
        help="processes sharing the port (default: $MPT_API__WORKERS or 1); without Redis "
        "($MPT_REDIS__URL) every worker keeps its own rate-limit counters",
    )
    api.add_argument(
        "--allow-remote", action="store_true",
        help="allow listening on a non-loopback address (traffic is plain HTTP: put TLS in "
        "front of it)",
    )
    _add_common_options(api, suppress=True)
    api.set_defaults(func=_cmd_api)

    db = commands.add_parser(
        "db",
        help="migrate the API's database (upgrade, downgrade, current)",
        description="Schema migrations of the API's database ($MPT_DATABASE__URL, default "
        "the SQLite file in the data directory).",
    )
    _add_common_options(db, suppress=True)
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION")
    db.set_defaults(func=_cmd_db_missing)
    upgrade = db_commands.add_parser(
        "upgrade", help="migrate up to REVISION (default: the newest, head)"
    )
    upgrade.add_argument("revision", nargs="?", default="head", metavar="REVISION")
    _add_common_options(upgrade, suppress=True)
    upgrade.set_defaults(func=_cmd_db_upgrade)
    downgrade = db_commands.add_parser(
        "downgrade", help="migrate down to REVISION ('base' drops every table)"
    )
    downgrade.add_argument("revision", metavar="REVISION")
    _add_common_options(downgrade, suppress=True)
    downgrade.set_defaults(func=_cmd_db_downgrade)
    current = db_commands.add_parser(
        "current", help="show the revision the database is at, and the newest"
    )
    _add_common_options(current, suppress=True)
    current.set_defaults(func=_cmd_db_current)

    admin = commands.add_parser("admin", help="manage administrator accounts")
    _add_common_options(admin, suppress=True)
    admin_commands = admin.add_subparsers(dest="admin_command", metavar="ACTION")
    admin.set_defaults(func=_cmd_admin_missing)
    create = admin_commands.add_parser(
        "create",
        help="create an administrator account",
        description="Create an administrator (the only way to make one). The password is "
        "read from stdin with --password-stdin, else prompted for twice.",
    )
    create.add_argument("--email", required=True, metavar="EMAIL")
    create.add_argument("--display-name", required=True, metavar="NAME")
    create.add_argument("--timezone", default="UTC", metavar="TZ",
                        help="IANA time zone (default UTC)")
    create.add_argument("--password-stdin", action="store_true",
                        help="read the password from the first line of stdin")
    _add_common_options(create, suppress=True)
    create.set_defaults(func=_cmd_admin_create)

    seed = commands.add_parser(
        "seed",
        help="create the global tags (idempotent)",
        description="Create the global tags every user sees (Scales, Etudes ...); a rerun "
        "creates only what never existed.",
    )
    _add_common_options(seed, suppress=True)
    seed.set_defaults(func=_cmd_seed)


def _add_stream_parser(commands: Any) -> None:
    stream = commands.add_parser(
        "stream",
        help="stream a file (or the microphone) to the engine with live feedback",
        description="Stream audio to a running engine (`mpt up`) at real-time pace and show "
        "tempo, deviations, accuracy and mood as they come; the summary at the end.",
    )
    stream.add_argument(
        "path", type=Path, nargs="?", metavar="PATH", help="audio or video file to stream"
    )
    stream.add_argument(
        "--mic", action="store_true", help="capture the default input device instead of a file"
    )
    stream.add_argument(
        "--target-bpm",
        type=_target_bpm,
        metavar="BPM",
        help="the tempo practised against, 20..400 BPM (enables deviations and the timing report)",
    )
    stream.add_argument(
        "--grid-start",
        type=_grid_start,
        default=0.0,
        metavar="S",
        help="time of the first grid line in seconds (default 0)",
    )
    stream.add_argument(
        "--subdivision",
        type=int,
        choices=(1, 2, 3, 4),
        help="notes per beat (default: inferred)",
    )
    stream.add_argument(
        "--latency-ms",
        type=_latency_ms,
        default=0.0,
        metavar="MS",
        help="input latency subtracted from note times, within ±1000 ms (default 0)",
    )
    stream.add_argument(
        "--server",
        metavar="ADDR",
        help="the engine's host:port (default: $MPT_ENGINE__HOST:$MPT_ENGINE__PORT, "
        "127.0.0.1:50051)",
    )
    stream.add_argument(
        "--speed",
        type=_speed,
        default=1.0,
        metavar="F",
        help="pace as a multiple of real time (default 1; 0 = as fast as possible)",
    )
    stream.add_argument(
        "--chunk-ms",
        type=_chunk_ms,
        default=100,
        metavar="MS",
        help="audio per chunk, 10..1000 ms (default 100; with opus one of 10, 20, 40, 60, "
        "80, 100, 120)",
    )
    stream.add_argument(
        "--encoding",
        choices=("pcm16", "opus"),
        default="pcm16",
        help="16-bit PCM (default) or raw Opus packets",
    )
    stream.add_argument(
        "--session-id", metavar="ID", help="the practice session the summary belongs to"
    )
    stream.add_argument(
        "--token",
        metavar="TOKEN",
        help="bearer token for the engine (default: one signed with the data directory's key, "
        "which a local `mpt up` on the same data directory accepts)",
    )
    stream.add_argument(
        "--json", action="store_true", help="print one JSON object per event per line"
    )
    _add_common_options(stream, suppress=True)
    stream.set_defaults(func=_cmd_stream)


def _add_common_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options valid before and after the command; after it they override the global ones."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        default=argparse.SUPPRESS if suppress else None,
        help="data directory (default: $MPT_DATA_DIR or ./.mpt)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="show tracebacks on errors",
    )


def _cmd_analyze(args: argparse.Namespace, settings: Settings) -> int:
    if args.target_bpm is None:
        _refuse_timing_without_target(args)
    options = AnalyzeOptions(
        target_bpm=args.target_bpm,
        grid_start_s=args.grid_start,
        subdivision=args.subdivision,
        latency_ms=args.latency_ms,
    )
    result = _analyze_file(args.path, options)
    _print_result(result, source=str(args.path), as_json=args.json)
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    try:
        import soundfile as sf

        from audio_engine.demo import make_demo_performance
    except ModuleNotFoundError as exc:
        raise _engine_missing(exc) from exc
    samples, sr, info = make_demo_performance()
    path = ensure_subdir(settings.data_dir, "demo") / DEMO_FILENAME
    partial = path.with_name(path.name + ".part")
    try:
        sf.write(partial, samples, sr, subtype="PCM_16", format="WAV")
        os.replace(partial, path)
    except (OSError, sf.SoundFileError) as exc:
        raise DataDirError(f"cannot write the demo recording {str(path)!r}: {exc}") from exc
    options = AnalyzeOptions(
        target_bpm=float(info["target_bpm"]),
        grid_start_s=float(info["grid_start_s"]),
        subdivision=int(info["subdivision"]),
    )
    result = _analyze_file(path, options)
    _print_result(result, source=str(path), as_json=args.json)
    note = f"Demo recording written to {path}"
    if args.json:
        print(note, file=sys.stderr)
    else:
        _console(sys.stdout).print(f"\n{note}", markup=False)
    return EXIT_OK


def _cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    if args.no_engine and args.no_api:
        raise UsageError("--no-engine with --no-api leaves nothing to run")
    with_engine, with_api = not args.no_engine, not args.no_api
    if with_engine:
        _require_server()
    api_root = _require_api() if with_api else None
    from mpt.supervisor import ChildSpec, ReadyFile, Supervisor
    from mpt.tokens import ensure_keypair

    engine = settings.engine
    host = args.host or engine.host
    api_host = args.host or settings.api.host
    port = engine.port if args.port is None else args.port
    workers = engine.workers if args.workers is None else args.workers
    metrics_port = engine.metrics_port if args.metrics_port is None else args.metrics_port
    if args.metrics_port == "off":
        metrics_port = None
    api_port = settings.api.port if args.api_port is None else args.api_port
    api_workers = settings.api.workers if args.api_workers is None else args.api_workers
    if with_engine:
        _check_remote(host, args.allow_remote, "the engine")
    if with_api:
        _check_remote(api_host, args.allow_remote, "the API")
    ports = [(option, p) for option, p, on in (
        ("--port", port, with_engine), ("--metrics-port", metrics_port, with_engine),
        ("--api-port", api_port, with_api)) if on and p]
    for i, (option, number) in enumerate(ports):
        for other, other_number in ports[i + 1:]:
            if number == other_number:
                raise UsageError(f"{option} and {other} are both {number}; give each its own")
    if with_engine:
        _check_free(host, port, "--port")
        if metrics_port is not None:
            _check_free(host, metrics_port, "--metrics-port")
    if with_api:
        _check_free(api_host, api_port, "--api-port")
    data_dir = ensure_data_dir(settings.data_dir)
    if settings.security.public_key_path is None:
        ensure_keypair(data_dir)  # the engine verifies with it, `mpt stream` signs with it
    with tempfile.TemporaryDirectory(prefix="mpt-up-") as run_dir:
        specs = []
        if with_engine:
            ready = Path(run_dir) / "engine.json"
            argv = [
                sys.executable, "-m", "audio_engine.server",
                "--host", host,
                "--port", str(port),
                "--workers", str(workers),
                "--metrics-port", "off" if metrics_port is None else str(metrics_port),
                "--data-dir", str(data_dir),
                "--ready-file", str(ready),
            ]  # fmt: skip
            specs.append(ChildSpec(
                name="engine",
                argv=argv,
                ready=ReadyFile(ready),
                ready_timeout_s=ENGINE_READY_TIMEOUT_S,
                describe=_describe_engine,
            ))
        if with_api:
            api_ready = Path(run_dir) / "api.json"
            specs.append(ChildSpec(
                name="api",
                argv=[
                    sys.executable, "-m", "api",
                    "--host", api_host,
                    "--port", str(api_port),
                    "--workers", str(api_workers),
                    "--data-dir", str(data_dir),
                    "--ready-file", str(api_ready),
                ],
                env=_api_child_env(api_root),
                ready=ReadyFile(api_ready),
                ready_timeout_s=API_READY_TIMEOUT_S,
                describe=functools.partial(_describe_api, docs=settings.api.docs),
            ))

        def banner(infos: dict[str, ReadyInfo]) -> None:
            _print_up_banner(infos, settings=settings, data_dir=data_dir)

        names = " and ".join(
            name for name, on in (("the engine", with_engine), ("the API", with_api)) if on
        )
        print(f"mpt up: starting {names} (data directory {data_dir})", flush=True)
        grace_s = max(engine.shutdown_grace_s if with_engine else 0.0,
                      API_SHUTDOWN_GRACE_S if with_api else 0.0)
        supervisor = Supervisor(specs, grace_s=grace_s + STOP_MARGIN_S, on_ready=banner)
        return supervisor.run()


def _check_remote(host: str, allow_remote: bool, service: str, *, label: str = "mpt up") -> None:
    """Refuse a non-loopback listen address without ``--allow-remote``; warn with it."""
    if _is_loopback(host):
        return
    if service == "the engine":
        refusal = ("every call still needs a token signed by this data directory's key, and "
                   "traffic is not encrypted")
        warning = "every call needs a token, and traffic is plain, unencrypted gRPC"
    else:
        refusal = warning = ("every route but registration and login needs a token, and "
                             "traffic is plain, unencrypted HTTP")
    if not allow_remote:
        raise UsageError(
            f"--host {host} is not a loopback address: other machines could reach "
            f"{service}; pass --allow-remote to listen there anyway ({refusal})"
        )
    print(
        f"{label}: listening on {host} (--allow-remote): other machines can connect to "
        f"{service}; {warning}",
        file=sys.stderr,
    )


def _check_free(host: str, port: int, option: str) -> None:
    """Fail early and clearly when a fixed port is taken (rather than a crash loop)."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            raise MptError(
                f"cannot listen on {_address(host, port)}: {exc.strerror or exc} (is `mpt up` "
                f"already running? choose another port with {option})"
            ) from None


def _describe_engine(info: ReadyInfo) -> str:
    where = f"gRPC {_address(str(info['host']), int(info['port']))}"
    if info.get("metrics_port") is not None:
        host = _client_host(str(info["host"]))
        where += f", metrics http://{_address(host, int(info['metrics_port']))}/metrics"
    return where


def _describe_api(info: ReadyInfo, *, docs: bool = True) -> str:
    url = str(info.get("url") or f"http://{_address(str(info['host']), int(info['port']))}")
    where = url
    if docs:
        where += f", docs {url}/docs"
    workers = int(info.get("workers") or 1)
    if workers > 1:
        where += f", {workers} workers"
    return where


def _print_up_banner(
    infos: Mapping[str, ReadyInfo], *, settings: Settings, data_dir: Path
) -> None:
    lines = [""]
    if "engine" in infos:
        info = infos["engine"]
        server = _address(_client_host(str(info["host"])), int(info["port"]))
        command = "mpt stream FILE --target-bpm BPM"
        if server != _default_server(settings):
            command += f" --server {server}"
        if settings.data_dir.expanduser().absolute() != Path(".mpt").absolute():
            command += f" --data-dir {data_dir}"
        lines += [
            "Ready. Stream a recording to the engine (live tempo, deviations and mood):",
            f"  {command}",
            "Every call needs a token signed with the key in the data directory; `mpt stream`",
            "signs one itself.",
        ]
    else:
        lines.append("Ready.")
    if "api" in infos:
        url = str(infos["api"].get("url", ""))
        where = f"{url}/docs" if settings.api.docs else url
        lines += [
            f"The REST API: {where} (register with POST /api/v1/auth/register;",
            "an administrator with `mpt admin create --email E --display-name N`).",
        ]
    lines.append("Ctrl-C stops everything.")
    print("\n".join(lines), flush=True)


def _cmd_api(args: argparse.Namespace, settings: Settings) -> int:
    _import_api()
    from api.serve import ServeAddress, serve

    host = args.host or settings.api.host
    _check_remote(host, args.allow_remote, "the API", label="mpt api")
    port = settings.api.port if args.port is None else args.port
    _check_free(host, port, "--port")
    ensure_data_dir(settings.data_dir)

    def ready(address: ServeAddress) -> None:
        docs = f" (docs {address.url()}/docs)" if settings.api.docs else ""
        print(f"mpt api: listening on {address.url()}{docs}; Ctrl-C stops", flush=True)

    try:
        serve(settings, host=host, port=port, workers=args.workers, on_ready=ready)
    except OSError as exc:
        raise MptError(str(exc)) from None
    except RuntimeError as exc:  # a worker that could not start
        raise MptError(str(exc)) from None
    return EXIT_OK


def _cmd_db_missing(args: argparse.Namespace, settings: Settings) -> int:
    raise UsageError("mpt db needs an action: upgrade, downgrade or current")


def _cmd_admin_missing(args: argparse.Namespace, settings: Settings) -> int:
    raise UsageError("mpt admin needs an action: create")


def _print_revisions(revisions: Any, verb: str) -> None:
    current = ", ".join(revisions.current) or "none (no schema)"
    state = "the newest" if revisions.up_to_date else (
        f"the newest is {', '.join(revisions.heads)}: run `mpt db upgrade`"
    )
    print(f"{verb}{revisions.url}: revision {current} ({state})", flush=True)


def _cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    _import_api()
    from api.cli import db_upgrade

    _print_revisions(db_upgrade(settings, args.revision), "upgraded ")
    return EXIT_OK


def _cmd_db_downgrade(args: argparse.Namespace, settings: Settings) -> int:
    _import_api()
    from api.cli import db_downgrade

    _print_revisions(db_downgrade(settings, args.revision), "downgraded ")
    return EXIT_OK


def _cmd_db_current(args: argparse.Namespace, settings: Settings) -> int:
    _import_api()
    from api.cli import db_current

    _print_revisions(db_current(settings), "")
    return EXIT_OK


def _read_password(from_stdin: bool) -> str:
    """The new account's password: stdin's first line, or typed twice at a prompt."""
    if from_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password[:-1] if password.endswith("\r") else password
        if not password:
            raise UsageError("--password-stdin: stdin gave an empty password")
        return password
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password on; pass --password-stdin "
                         "and write it to stdin")
    import getpass

    password = getpass.getpass("Password: ")
    if password != getpass.getpass("Password (again): "):
        raise UsageError("the two passwords differ")
    return password


def _cmd_admin_create(args: argparse.Namespace, settings: Settings) -> int:
    _import_api()
    from api.cli import checked_url, create_admin

    checked_url(settings)  # a configuration error before the password prompt
    password = _read_password(args.password_stdin)

    user = create_admin(settings, email=args.email, password=password,
                        display_name=args.display_name, timezone=args.timezone)
    print(f"created administrator {user.email} (id {user.id})", flush=True)
    return EXIT_OK


def _cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    _import_api()
    from api.cli import seed

    created = seed(settings)
    if created:
        print(f"created {len(created)} global tags: {', '.join(created)}", flush=True)
    else:
        print("nothing to create: every global tag exists (or was deleted on purpose)",
              flush=True)
    return EXIT_OK


def _cmd_stream(args: argparse.Namespace, settings: Settings) -> int:
    _require_server()
    if args.mic == (args.path is not None):
        raise UsageError("give a PATH to stream, or --mic (one of them)")
    if args.mic and args.speed != 1.0:
        raise UsageError("--speed paces files; --mic always streams in real time")
    if args.target_bpm is None:
        _refuse_timing_without_target(args)
    from mpt import stream_client
    from mpt.report import render_stream_summary
    from mpt.tokens import key_paths, local_token

    if args.encoding == "opus" and args.chunk_ms not in stream_client.OPUS_FRAME_MS:
        sizes = ", ".join(str(ms) for ms in stream_client.OPUS_FRAME_MS)
        raise UsageError(f"--chunk-ms {args.chunk_ms} with --encoding opus: use one of {sizes}")
    options = stream_client.StreamOptions(
        target_bpm=args.target_bpm,
        grid_start_s=args.grid_start,
        subdivision=args.subdivision,
        latency_ms=args.latency_ms,
        session_id=args.session_id,
        encoding=args.encoding,
        chunk_ms=args.chunk_ms,
        speed=args.speed,
    )
    source: AudioSource
    if args.mic:
        source = stream_client.microphone_source()
    else:
        source = stream_client.file_source(args.path, speed=args.speed, encoding=args.encoding)
    target = args.server or _default_server(settings)
    auth_hint = None
    token = args.token
    if token is None:
        token = local_token(settings)
        auth_hint = (
            f"the token was signed with {key_paths(settings).private_key}: run `mpt stream` "
            "with the data directory of `mpt up` (--data-dir), or pass --token"
        )
    view, live = _stream_view(args, source, target)

    async def run() -> stream_client.StreamOutcome:
        return await stream_client.run_stream(
            target=target,
            token=token,
            source=source,
            options=options,
            view=view,
            auth_hint=auth_hint,
        )

    if live is not None:
        with live:
            outcome = asyncio.run(run())
    else:
        outcome = asyncio.run(run())
    if outcome.summary is not None and not args.json:
        console = _console(sys.stdout)
        if live is not None:
            console.print()
        render_stream_summary(
            console, outcome.summary, source=source.label, stream_id=outcome.stream_id
        )
    if outcome.interrupted:
        note = "" if outcome.summary is not None else " before the summary arrived"
        return _fail(f"interrupted{note}", EXIT_INTERRUPTED, debug=False)
    if outcome.summary is None:
        raise EngineCallError("the engine ended the stream without a summary")
    return EXIT_OK


def _stream_view(
    args: argparse.Namespace, source: AudioSource, target: str
) -> tuple[StreamView, LiveView | None]:
    """The view of a stream (JSON lines, the live panel on a terminal, or plain warnings) and
    the context manager to run it in (the live view), if any."""
    from mpt.stream_view import JsonLinesView, LiveView, PlainView

    if args.json:
        return JsonLinesView(sys.stdout), None
    for stream in (sys.stdout, sys.stderr):
        if stream.isatty():
            live = LiveView(
                _console(stream, highlight=True),
                source=source.label,
                target=target,
                total_s=source.duration_s,
                speed=None if args.mic else args.speed,
            )
            return live, live
    return PlainView(sys.stderr), None


def _refuse_timing_without_target(args: argparse.Namespace) -> None:
    given = [
        flag
        for flag, value, default in (
            ("--grid-start", args.grid_start, 0.0),
            ("--subdivision", args.subdivision, None),
            ("--latency-ms", args.latency_ms, 0.0),
        )
        if value != default
    ]
    if given:
        raise UsageError(f"{', '.join(given)} needs --target-bpm (the tempo to time against)")


def _require_server() -> None:
    """Fail clearly when the engine service (the `server` extra) is not installed, before
    anything starts."""
    for module in _SERVER_MODULES:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # the parent package of a dotted name is missing
            found = False
        if not found:
            raise MptError(
                f"the engine service is not installed (no module {module!r}); install it "
                "with: pip install 'mpt[server]'"
            )


def _require_api() -> Path | None:
    """Fail clearly when the REST API (the `api` package or its extra) is not installed.

    Returns the directory to put on the import path first when ``api`` does not import as
    is: an editable install made before ``api/`` existed maps only the older packages, while
    the source checkout beside ``mpt/`` has it (``pip install -e .`` again fixes that).
    """
    root: Path | None = None
    if importlib.util.find_spec("api") is None:
        checkout = Path(__file__).resolve().parent.parent
        if not (checkout / "api" / "__init__.py").is_file():
            raise MptError(
                "the REST API is not installed (no module 'api'); install it with: "
                "pip install 'mpt[api]'"
            )
        root = checkout
    for module in _API_MODULES:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            raise MptError(
                f"the REST API is not installed (no module {module!r}); install it with: "
                "pip install 'mpt[api]'"
            )
    return root


def _import_api() -> None:
    """Make ``api`` importable in this process (see :func:`_require_api`)."""
    root = _require_api()
    if root is not None and str(root) not in sys.path:
        sys.path.insert(0, str(root))


def _api_child_env(root: Path | None) -> dict[str, str] | None:
    """The API child's environment: inherited, with ``root`` first on its import path."""
    if root is None:
        return None
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    return env


def _default_server(settings: Settings) -> str:
    """Where a local client finds the engine: the configured host (a wildcard address means
    this machine) and port."""
    return _address(_client_host(settings.engine.host), settings.engine.port)


def _client_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _analyze_file(path: Path, options: AnalyzeOptions) -> AnalysisResult:
    """Decode ``path`` and run the engine on it, with stage progress for long files."""
    try:
        from audio_engine.analysis import analyze_prepared
        from audio_engine.io import load_prepared
        from audio_engine.params import AnalysisParams
    except ModuleNotFoundError as exc:
        raise _engine_missing(exc) from exc
    from mpt.progress import StageProgress

    params = AnalysisParams()
    # rich (~0.1 s to import) only where a display can show: a terminal
    with StageProgress(_console(sys.stderr) if sys.stderr.isatty() else None) as stages:
        # decoded straight to the working rate: a long file is never held at its own rate
        signal = load_prepared(
            path, target_sr=params.spectrogram.target_sr, progress=stages.decoding
        )
        stages.stage("Analysing", signal.duration_s)
        return analyze_prepared(
            signal,
            params=params,
            target_bpm=options.target_bpm,
            grid_start_s=options.grid_start_s,
            subdivision=options.subdivision,
            latency_ms=options.latency_ms,
        )


def _print_result(result: AnalysisResult, *, source: str, as_json: bool) -> None:
    if as_json:
        text = json.dumps(_finite(result.to_dict()), allow_nan=False, separators=(",", ":"))
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    else:
        from mpt.report import render_result

        render_result(_console(sys.stdout), result, source=source)


def _console(file: TextIO, *, highlight: bool = False) -> Console:
    """A rich console on ``file`` (rich is imported here: `mpt analyze --json` needs none)."""
    from rich.console import Console

    return Console(file=file, highlight=highlight)


def _finite(value: Any) -> Any:
    """Replace NaN and infinities (invalid JSON) by None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _fail(message: str, code: int, debug: bool) -> int:
    if debug and sys.exc_info()[0] is not None:
        traceback.print_exc(file=sys.stderr)
    line = " ".join(message.split()) or "failed"
    print(f"mpt: error: {line}", file=sys.stderr)
    return code


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _is_engine_error(exc: BaseException) -> bool:
    """True for the engine's own errors (checked without importing the engine)."""
    errors = sys.modules.get("audio_engine.errors")
    return errors is not None and isinstance(exc, errors.AudioEngineError)


def _engine_missing(exc: ModuleNotFoundError) -> MptError:
    return MptError(
        f"the audio engine is not installed ({exc}); install it with: pip install 'mpt[engine]'"
    )


def _version() -> str:
    try:
        return metadata.version("mpt")
    except metadata.PackageNotFoundError:
        return "unknown"


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _within(value: float, bounds: tuple[float, float], outside: str) -> None:
    """Raise ``outside`` (formatted with ``low`` and ``high``) unless ``value`` is in bounds."""
    low, high = bounds
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(outside.format(low=low, high=high))


def _target_bpm(text: str) -> float:
    value = _number(text)
    _within(value, TARGET_BPM_RANGE, f"{text} BPM is outside {{low:g}}..{{high:g}} BPM")
    return value


def _grid_start(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} s is negative; the grid starts at 0 s or later")
    return value


def _latency_ms(text: str) -> float:
    value = _number(text)
    if abs(value) > LATENCY_MS_LIMIT:
        raise argparse.ArgumentTypeError(f"{text} ms is outside ±{LATENCY_MS_LIMIT:g} ms")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def _port(text: str) -> int:
    value = _integer(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {text} is outside 0..65535")
    return value


def _metrics_port(text: str) -> int | str:
    return "off" if text.lower() == "off" else _port(text)


def _workers(text: str) -> int:
    value = _integer(text)
    _within(value, WORKERS_RANGE, f"{text} workers is outside {{low}}..{{high}}")
    return value


def _speed(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"speed {text} is negative (0 = as fast as possible)")
    return value


def _chunk_ms(text: str) -> int:
    value = _integer(text)
    _within(value, CHUNK_MS_RANGE, f"{text} ms is outside {{low}}..{{high}} ms")
    return value


if __name__ == "__main__":  # pragma: no cover - `python -m mpt.cli`
    sys.exit(main())
