"""``python -m api``: run the REST API over HTTP (:func:`api.serve.serve`).

Options override the settings (``MPT_API__HOST``, ``MPT_API__PORT``, ``MPT_API__WORKERS``,
``MPT_DATA_DIR``); ``--ready-file`` receives ``{"host", "port", "url", "workers", "pid"}`` as
JSON (written atomically) once the app has started in every worker — for supervisors
(``mpt up``) and tests that start it on port 0. Logs are JSON lines on stderr. Exit status:
0 after SIGTERM/SIGINT, 1 when the address cannot be bound or a worker fails to start, 2 for
invalid options or settings, 3 when the app fails to start (e.g. the database does not answer).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

PROG = "python -m api"


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {text} is outside 0..65535")
    return value


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"{text} workers is outside 1..64")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The options of ``python -m api``."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", help="listen address (default $MPT_API__HOST or 127.0.0.1)")
    parser.add_argument("--port", type=_port,
                        help="HTTP port, 0 for a free one (default $MPT_API__PORT or 8000)")
    parser.add_argument("--workers", type=_workers,
                        help="processes sharing the port (default $MPT_API__WORKERS or 1)")
    parser.add_argument("--data-dir", type=Path, help="data directory (default $MPT_DATA_DIR)")
    parser.add_argument("--ready-file", type=Path,
                        help="write the bound address here as JSON once ready")
    parser.add_argument("--log-level", default="info",
                        choices=("critical", "error", "warning", "info", "debug"),
                        help="threshold of the JSON logs on stderr (default info)")
    return parser


def write_ready_file(path: Path, info: dict[str, object]) -> None:
    """Write ``info`` as JSON to ``path`` atomically (a reader never sees half of it)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info), encoding="utf-8")
    tmp.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the API; the process exit status."""
    args = build_parser().parse_args(argv)
    if args.data_dir is not None:
        os.environ["MPT_DATA_DIR"] = str(args.data_dir)

    from mpt.errors import MptError
    from mpt.settings import load_settings

    try:
        settings = load_settings()
    except MptError as exc:
        print(f"mpt-api: error: {exc}", file=sys.stderr)
        return 2

    from api.serve import ServeAddress, serve

    def ready(address: ServeAddress) -> None:
        if args.ready_file is not None:
            write_ready_file(args.ready_file, address.to_dict())

    try:
        serve(settings, host=args.host, port=args.port, workers=args.workers,
              log_level=args.log_level, on_ready=ready)
    except (MptError, OSError, RuntimeError) as exc:
        print(f"mpt-api: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
