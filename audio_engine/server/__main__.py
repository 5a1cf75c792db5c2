"""``python -m audio_engine.server``: run the engine's gRPC server.

Options override the settings (``MPT_ENGINE__*``, ``MPT_DATA_DIR``); ``--ready-file`` receives
``{"host", "port", "metrics_port"}`` as JSON once the server listens (for supervisors and
tests that start it on port 0).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audio_engine.server", description=__doc__)
    parser.add_argument("--host", help="listen address (default MPT_ENGINE__HOST)")
    parser.add_argument("--port", type=int, help="gRPC port, 0 for a free one")
    parser.add_argument("--workers", type=int, help="processes sharing the port")
    parser.add_argument(
        "--metrics-port", help="Prometheus port, 0 for a free one, 'off' to disable"
    )
    parser.add_argument("--data-dir", type=Path, help="data directory (MPT_DATA_DIR)")
    parser.add_argument("--ready-file", type=Path, help="write the bound addresses here")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.data_dir is not None:
        os.environ["MPT_DATA_DIR"] = str(args.data_dir)

    from mpt.datadir import configure_numba_cache
    from mpt.errors import MptError
    from mpt.settings import load_settings

    try:
        settings = load_settings()
    except MptError as exc:
        print(f"mpt-engine: error: {exc}", file=sys.stderr)
        return 2
    configure_numba_cache(settings.cache_dir)

    from audio_engine.server.main import ServerAddresses, serve

    metrics_port: int | None = -1
    if args.metrics_port is not None:
        metrics_port = None if args.metrics_port == "off" else int(args.metrics_port)

    def ready(addresses: ServerAddresses) -> None:
        info = {
            "host": addresses.host,
            "port": addresses.port,
            "metrics_port": addresses.metrics_port,
        }
        if args.ready_file is not None:
            tmp = args.ready_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(info))
            tmp.replace(args.ready_file)
        print(f"mpt-engine: listening {json.dumps(info)}", file=sys.stderr, flush=True)

    try:
        serve(
            settings,
            host=args.host,
            port=args.port,
            workers=args.workers,
            metrics_port=metrics_port,
            on_ready=ready,
        )
    except (MptError, OSError) as exc:
        print(f"mpt-engine: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
