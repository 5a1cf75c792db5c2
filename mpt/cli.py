"""The ``mpt`` command line.

Commands::

    mpt analyze PATH [--target-bpm BPM] [--grid-start S] [--subdivision {1,2,3,4}]
                     [--latency-ms MS] [--json]
    mpt demo [--json]

Global options (also accepted after the command): ``--data-dir DIR``, ``--debug``,
``--version``.

Every failure prints one line ``mpt: error: <reason>`` on stderr and exits non-zero:
2 for usage and configuration errors, 1 for input errors (a missing, unreadable, corrupt or
empty file, or audio the engine rejects), 130 when interrupted. ``--debug`` adds the
traceback. The engine is imported only inside the commands, after the numba cache directory
has been configured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console

from mpt.datadir import configure_numba_cache, ensure_subdir
from mpt.errors import ConfigError, DataDirError, MptError
from mpt.progress import StageProgress
from mpt.report import render_result
from mpt.settings import Settings, get_settings

if TYPE_CHECKING:
    from audio_engine.result import AnalysisResult

__all__ = ["build_parser", "main"]

EXIT_OK = 0
EXIT_INPUT = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

TARGET_BPM_RANGE = (20.0, 400.0)
LATENCY_MS_LIMIT = 1000.0
DEMO_FILENAME = "demo_performance.wav"


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
            raise UsageError("no command given; choose one of: analyze, demo (see 'mpt --help')")
        settings = get_settings()
        if args.data_dir is not None:
            settings = settings.model_copy(update={"data_dir": args.data_dir})
        configure_numba_cache(settings.cache_dir)  # before anything imports numba
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
        description="Music Practice Tracker: analyse practice recordings against a tempo.",
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
    return parser


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
        Console(file=sys.stdout, highlight=False).print(f"\n{note}", markup=False)
    return EXIT_OK


def _analyze_file(path: Path, options: AnalyzeOptions) -> AnalysisResult:
    """Decode ``path`` and run the engine on it, with stage progress for long files."""
    try:
        from audio_engine.analysis import analyze
        from audio_engine.io import load_audio
    except ModuleNotFoundError as exc:
        raise _engine_missing(exc) from exc
    with StageProgress(Console(file=sys.stderr)) as stages:
        samples, sr = load_audio(path, progress=stages.decoding)
        stages.stage("Analysing", samples.shape[0] / sr)
        return analyze(
            samples,
            sr,
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
        render_result(Console(file=sys.stdout, highlight=False), result, source=source)


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


def _target_bpm(text: str) -> float:
    value = _number(text)
    low, high = TARGET_BPM_RANGE
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{text} BPM is outside {low:g}..{high:g} BPM")
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


if __name__ == "__main__":  # pragma: no cover - `python -m mpt.cli`
    sys.exit(main())
