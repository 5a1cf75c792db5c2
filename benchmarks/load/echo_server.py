"""``python -m benchmarks.load.echo_server``: the transport floor — a plain grpc.aio
``AudioAnalysis.Stream`` that analyses nothing.

It speaks the engine's contract to the same load generator: ``StreamStarted`` first, then
one small ``OnsetEvent`` per 125 ms of audio received (about the engine's event rate on the
benchmark take: 4 onsets, 2 beats and 2 tempo updates per second), then a ``Summary`` with
the audio's duration after ``EndOfStream``. No token check, no thread pool, no metrics: its
CPU per stream is what gRPC aio, protobuf and asyncio cost at the engine's message rates,
the floor under the engine server's serving overhead. Loopback only; stopped by SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from mpt_protos.audio.v1 import audio_pb2 as pb
from mpt_protos.audio.v1 import audio_pb2_grpc

__all__ = ["EchoServicer", "main"]

_EVENT_EVERY_S = 0.125


class EchoServicer(audio_pb2_grpc.AudioAnalysisServicer):
    """``Stream`` without analysis (see the module docstring)."""

    async def Stream(  # noqa: N802  (the generated servicer's name)
        self, request_iterator: AsyncIterator[pb.StreamRequest], context: Any
    ) -> AsyncIterator[pb.StreamResponse]:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("request") != "config":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "send a StreamConfig first")
        bytes_per_s = 2.0 * first.config.sample_rate_hz * max(1, first.config.channels)
        yield pb.StreamResponse(started=pb.StreamStarted(stream_id="echo"))
        received = 0
        next_event_s = _EVENT_EVERY_S
        async for request in request_iterator:
            kind = request.WhichOneof("request")
            if kind == "end":
                break
            if kind == "chunk":
                received += len(request.chunk.data)
                audio_s = received / bytes_per_s
                while audio_s >= next_event_s:
                    yield pb.StreamResponse(onset=pb.OnsetEvent(time_s=next_event_s - 0.05))
                    next_event_s += _EVENT_EVERY_S
        yield pb.StreamResponse(
            summary=pb.Summary(stream_id="echo", duration_s=received / bytes_per_s)
        )


async def _serve(port: int, ready_file: Path | None) -> None:
    server = grpc.aio.server()
    audio_pb2_grpc.add_AudioAnalysisServicer_to_server(EchoServicer(), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    if ready_file is not None:
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"host": "127.0.0.1", "port": bound, "metrics_port": None}))
        tmp.replace(ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(2.0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.load.echo_server")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.port, args.ready_file))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
