"""Helpers for the gRPC server tests: an event loop in a thread (server and clients share
it), a started engine with its keys, queue and metrics, and stream clients.

Tests are plain functions that run coroutines on the loop with ``aio.run(coro)``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import av
import grpc
import grpc.aio
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from numpy.typing import NDArray
from prometheus_client import CollectorRegistry

from audio_engine.server.main import EngineServer
from mpt.events import STREAM_SUMMARY_TOPIC
from mpt.queue import DurableQueue, Message
from mpt.tokens import sign_token
from mpt_protos.audio.v1 import audio_pb2 as pb
from mpt_protos.audio.v1 import audio_pb2_grpc

__all__ = [
    "Engine",
    "LoopThread",
    "StreamResult",
    "chunks",
    "config",
    "opus_packets",
    "stream_call",
    "summaries_for",
    "to_int16_bytes",
]

T = TypeVar("T")


class LoopThread:
    """An asyncio event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="aio", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Run ``coro`` on the loop and return its result (raising its exception)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass
class Engine:
    """The session's server and what a test needs around it."""

    aio: LoopThread
    server: EngineServer
    private_key: Ed25519PrivateKey
    queue: DurableQueue
    registry: CollectorRegistry
    resume_window_s: float
    max_chunk_bytes: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def token(self, sub: str = "student-1", *, audience: str = "mpt-engine", **kw: Any) -> str:
        kw.setdefault("ttl_s", 600.0)
        return sign_token(self.private_key, sub=sub, role="student", audience=audience, **kw)

    def metadata(self, sub: str = "student-1", **kw: Any) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token(sub, **kw)}"),)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return self.aio.run(coro, timeout)

    def counts(self) -> tuple[int, int]:
        """(streams attached to a call, streams kept for a resume), read on the loop."""

        async def read() -> tuple[int, int]:
            return self.server.hub.active, self.server.hub.kept

        return self.run(read())

    def gauge(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels or None)

    def wait_until(self, check: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s")
            time.sleep(0.02)


def config(
    *,
    sr: int = 16000,
    channels: int = 1,
    encoding: pb.Encoding.ValueType = pb.ENCODING_PCM_S16LE,
    **fields: Any,
) -> pb.StreamRequest:
    return pb.StreamRequest(
        config=pb.StreamConfig(sample_rate_hz=sr, channels=channels, encoding=encoding, **fields)
    )


def to_int16_bytes(samples: NDArray[np.float32]) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def chunks(
    data: bytes | Sequence[bytes], size: int = 3200, *, numbered: bool = False, first: int = 0
) -> list[pb.StreamRequest]:
    """Chunk requests: ``data`` cut into ``size`` bytes, or one per packet."""
    pieces = (
        [data[i : i + size] for i in range(0, len(data), size)]
        if isinstance(data, bytes)
        else list(data)
    )
    out = []
    for i, piece in enumerate(pieces[first:], start=first):
        chunk = pb.AudioChunk(data=piece)
        if numbered:
            chunk.sequence = i
        out.append(pb.StreamRequest(chunk=chunk))
    return out


END = pb.StreamRequest(end=pb.EndOfStream())


def opus_packets(samples: NDArray[np.float32], sr: int = 48000) -> list[bytes]:
    """Raw Opus packets (20 ms each) of mono float32 ``samples``, by PyAV's libopus."""
    enc = av.CodecContext.create("libopus", "w")
    assert isinstance(enc, av.AudioCodecContext)
    enc.sample_rate = sr
    enc.layout = "mono"
    enc.format = "flt"
    frame_n = sr // 50
    padded = np.zeros(-(-samples.size // frame_n) * frame_n, dtype=np.float32)
    padded[: samples.size] = samples
    packets: list[bytes] = []
    for i in range(0, padded.size, frame_n):
        frame = av.AudioFrame.from_ndarray(
            padded[None, i : i + frame_n], format="flt", layout="mono"
        )
        frame.sample_rate = sr
        frame.pts = i
        packets += [bytes(p) for p in enc.encode(frame)]
    packets += [bytes(p) for p in enc.encode(None)]
    return packets


@dataclass
class StreamResult:
    """What a stream call returned."""

    responses: list[pb.StreamResponse] = field(default_factory=list)
    code: grpc.StatusCode = grpc.StatusCode.OK
    details: str = ""

    def of(self, kind: str) -> list[Any]:
        return [getattr(r, kind) for r in self.responses if r.WhichOneof("response") == kind]

    @property
    def started(self) -> pb.StreamStarted:
        (started,) = self.of("started")
        return started  # type: ignore[no-any-return]

    @property
    def summary(self) -> pb.Summary:
        (summary,) = self.of("summary")
        return summary  # type: ignore[no-any-return]


async def stream_call(
    engine: Engine,
    requests: Iterable[pb.StreamRequest],
    *,
    metadata: Sequence[tuple[str, str]] | None = None,
    timeout: float | None = 30.0,
    pace_s: float = 0.0,
    half_close: bool = True,
    after_started: Callable[[pb.StreamStarted], Awaitable[None]] | None = None,
) -> StreamResult:
    """Send ``requests`` (``pace_s`` apart) while reading every response; return them with
    the final status.

    ``half_close=False`` leaves the sending side open after the last request: use it when
    the server is expected to end the call with an error, since grpc.aio's client reports a
    write that races the server's status as INTERNAL (grpc/grpc#36066).
    """
    result = StreamResult()
    async with grpc.aio.insecure_channel(engine.target) as channel:
        stub = audio_pb2_grpc.AudioAnalysisStub(channel)
        call = stub.Stream(
            metadata=engine.metadata() if metadata is None else tuple(metadata), timeout=timeout
        )

        async def send() -> None:
            try:
                for request in requests:
                    await call.write(request)
                    if pace_s:
                        await asyncio.sleep(pace_s)
                if half_close:
                    await call.done_writing()
            except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                pass  # the call ended (with an error the reader reports)

        sender = asyncio.ensure_future(send())
        try:
            async for response in call:
                result.responses.append(response)
                if after_started is not None and response.WhichOneof("response") == "started":
                    await after_started(response.started)
        except grpc.aio.AioRpcError as exc:
            result.code, result.details = exc.code(), exc.details() or ""
        finally:
            sender.cancel()
    return result


def summaries_for(queue: DurableQueue, stream_id: str, group: str) -> list[Message]:
    """Every ``stream.summary.v1`` message of ``stream_id`` seen by consumer ``group``."""
    found = []
    while True:
        batch = queue.claim(STREAM_SUMMARY_TOPIC, "test", group=group, lease_s=300, max_items=100)
        if not batch:
            return found
        for message in batch:
            queue.ack(message)
            if message.payload.get("stream_id") == stream_id:
                found.append(message)
