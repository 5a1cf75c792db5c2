"""Locust users that stream a practice take to the engine over gRPC, in real time.

Locust is the client only; start the engine separately (same ``MPT_DATA_DIR``, so the token
signed here verifies there)::

    export MPT_DATA_DIR=/tmp/mpt-load
    python -m audio_engine.server --port 50051 --metrics-port 9464 &
    locust -f benchmarks/load/locustfile.py --headless -u 20 -r 5 -t 60s \\
        --host 127.0.0.1:50051 [--chunk-ms 100] [--stream-s 30]

Each user runs one ``Stream`` call after another (no wait between them): a ``StreamConfig``
(44.1 kHz int16 mono, target 120 BPM), then ``--chunk-ms`` chunks of the benchmark's
synthetic take (:mod:`benchmarks.load.audio`, from a random offset) paced in real time
(absolute-time schedule), then ``EndOfStream``. Requests reported to locust (type
``grpc-stream``):

- ``onset delay (30 ms past onset)`` — per onset event: from sending the chunk that holds
  the audio 30 ms past the true onset to receiving the event (the load benchmark's
  definition; an event that arrives before that chunk is sent counts as 0 ms);
- ``onset delay (engine look-ahead)`` — from sending the chunk that completed the audio the
  engine needs for that onset (:mod:`benchmarks.load.lookahead`) to receiving the event;
- ``onset missed`` — a failure per known onset with no event within 50 ms;
- ``Stream`` — one per call: its wall time; a gRPC error is its failure.

The token is ``--mpt-token`` or, by default, signed with :func:`mpt.tokens.local_token`
from ``MPT_DATA_DIR`` (generating the key pair there on first use). gRPC is switched to
gevent (``grpc.experimental.gevent.init_gevent``) in locust's init hook, before any channel
exists, and gevent's hub thread pool is grown with the users: gRPC's gevent mode runs its
blocking completion-queue polls in that pool (10 threads by default), and with more users
than threads the polls queue behind each other and events wait for a poll's timeout
(measured here: 20 users, p99 200 ms with the default pool, 38 ms with a large one).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from locust import User, constant, events, task
from locust.env import Environment

_POOL_PER_USER = 4  # gevent hub threads per user for gRPC's blocking polls (see below)
_POOL_SPARE = 16

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:  # locust puts only the locustfile's folder on the path
    sys.path.insert(0, str(_REPO))

_TARGET_BPM = 120.0
_REQUEST_TYPE = "grpc-stream"


@dataclass(frozen=True, slots=True)
class _Shared:
    """What every user needs, built once in locust's init hook."""

    token: str
    pcm: Any  # NDArray[int16], the circular take
    onsets_s: Any  # NDArray[float64]
    needed_end: Any  # NDArray[int64]
    sr: int
    hop: int
    chunk_samples: int
    n_chunks: int


@events.init_command_line_parser.add_listener
def _add_options(parser: Any) -> None:
    parser.add_argument("--chunk-ms", type=float, default=100.0, help="audio per chunk (ms)")
    parser.add_argument("--stream-s", type=float, default=30.0, help="audio per stream (s)")
    parser.add_argument(
        "--mpt-token", default="", help="bearer token (default: local_token from MPT_DATA_DIR)"
    )


@events.init.add_listener
def _on_init(environment: Environment, **_kwargs: Any) -> None:
    import grpc.experimental.gevent as grpc_gevent

    grpc_gevent.init_gevent()
    _grow_pool(getattr(environment.parsed_options, "num_users", None) or 1)

    from benchmarks.load.audio import practice_take
    from benchmarks.load.lookahead import engine_lookahead, frame_hop_samples

    options = environment.parsed_options
    chunk_ms = getattr(options, "chunk_ms", 100.0)
    stream_s = getattr(options, "stream_s", 30.0)
    token = getattr(options, "mpt_token", "")
    if not token:
        from mpt.settings import load_settings
        from mpt.tokens import local_token

        token = local_token(load_settings())
    sr = 44100
    hop = frame_hop_samples(sr)
    take = practice_take(sr=sr, bpm=_TARGET_BPM, align_samples=hop)
    lookahead = engine_lookahead(take, target_bpm=_TARGET_BPM)
    chunk_samples = max(1, round(sr * chunk_ms / 1000.0))
    environment.mpt_load = _Shared(  # type: ignore[attr-defined]
        token=token,
        pcm=take.pcm,
        onsets_s=take.onsets_s,
        needed_end=lookahead.needed_end,
        sr=sr,
        hop=hop,
        chunk_samples=chunk_samples,
        n_chunks=max(1, round(stream_s * sr / chunk_samples)),
    )


def _grow_pool(users: int) -> None:
    """Make gevent's hub thread pool large enough for ``users`` users' gRPC polls."""
    import gevent

    pool = gevent.get_hub().threadpool
    needed = _POOL_PER_USER * users + _POOL_SPARE
    if pool.maxsize < needed:
        pool.maxsize = needed


class GrpcStreamClient:
    """One channel to the engine; :meth:`stream` runs one real-time ``Stream`` call and
    fires locust request events as it goes."""

    def __init__(self, target: str, shared: _Shared, environment: Environment) -> None:
        import grpc

        from mpt_protos.audio.v1 import audio_pb2_grpc

        self._grpc = grpc
        self._channel = grpc.insecure_channel(target)
        self._stub = audio_pb2_grpc.AudioAnalysisStub(self._channel)
        self._shared = shared
        self._env = environment

    def close(self) -> None:
        self._channel.close()

    def _fire(self, name: str, ms: float, exception: BaseException | None = None) -> None:
        self._env.events.request.fire(
            request_type=_REQUEST_TYPE,
            name=name,
            response_time=ms,
            response_length=0,
            exception=exception,
            context={},
        )

    def stream(self, offset: int) -> None:
        from benchmarks.load.audio import Take, rotated
        from benchmarks.load.measure import plan_stream
        from mpt_protos.audio.v1 import audio_pb2 as pb

        s = self._shared
        cs, n_chunks, sr = s.chunk_samples, s.n_chunks, s.sr
        chunk_s = cs / sr
        take = Take(pcm=s.pcm, onsets_s=s.onsets_s, sr=sr, bpm=_TARGET_BPM)
        audio = rotated(take, offset, n_chunks * cs).astype("<i2").tobytes()
        plan = plan_stream(
            s.onsets_s,
            s.needed_end,
            sr=sr,
            loop_samples=s.pcm.shape[0],
            offset_samples=offset,
            n_chunks=n_chunks,
            chunk_samples=cs,
        )
        matched = np.zeros(plan.onset_s.shape[0], dtype=bool)
        sent_at: dict[int, float] = {}
        config = pb.StreamConfig(
            sample_rate_hz=sr,
            channels=1,
            encoding=pb.ENCODING_PCM_S16LE,
            target_bpm=_TARGET_BPM,
            grid_start_s=(-offset / sr) % (60.0 / _TARGET_BPM),
        )

        def requests() -> Iterator[pb.StreamRequest]:
            yield pb.StreamRequest(config=config)
            opened = time.monotonic()
            for j in range(n_chunks):
                delay = opened + (j + 1) * chunk_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # gevent's sleep under locust
                sent_at[j] = time.monotonic()
                data = audio[2 * j * cs : 2 * (j + 1) * cs]
                yield pb.StreamRequest(chunk=pb.AudioChunk(data=data, sequence=j))
            yield pb.StreamRequest(end=pb.EndOfStream())

        started = time.perf_counter()
        call = self._stub.Stream(
            requests(),
            metadata=(("authorization", f"Bearer {s.token}"),),
            timeout=n_chunks * chunk_s + 60.0,
        )
        error: BaseException | None = None
        try:
            for response in call:
                if response.WhichOneof("response") != "onset":
                    continue
                now = time.monotonic()
                self._on_onset(response.onset.time_s, now, plan, matched, sent_at)
        except self._grpc.RpcError as exc:
            error = exc
        finally:
            call.cancel()  # no-op once the call has ended; stops it when locust kills us
        for _ in range(int(np.count_nonzero(~matched))):
            self._fire("onset missed", 0.0, RuntimeError("no onset event within 50 ms"))
        self._fire("Stream", (time.perf_counter() - started) * 1000.0, error)

    def _on_onset(
        self,
        time_s: float,
        arrival: float,
        plan: Any,
        matched: np.ndarray,
        sent_at: dict[int, float],
    ) -> None:
        if plan.onset_s.shape[0] == 0:
            return
        dist = np.abs(plan.onset_s - time_s)
        dist[matched] = np.inf
        k = int(np.argmin(dist))
        if dist[k] > 0.05:
            return  # not a timed onset (warm-up, the stream's end) or a false one
        matched[k] = True
        spec = sent_at.get(int(plan.spec_chunk[k]))
        self._fire(
            "onset delay (30 ms past onset)",
            0.0 if spec is None else max(0.0, (arrival - spec) * 1000.0),
        )
        needed_chunk = int(plan.needed_chunk[k])
        if needed_chunk >= 0 and needed_chunk in sent_at:
            ms = (arrival - sent_at[needed_chunk]) * 1000.0
            self._fire("onset delay (engine look-ahead)", ms)


class AudioStreamUser(User):
    """A student streaming practice audio: one real-time ``Stream`` call after another."""

    wait_time = constant(0)

    def on_start(self) -> None:
        shared: _Shared = self.environment.mpt_load  # type: ignore[attr-defined]
        if not self.host:
            raise ValueError("--host is required, e.g. --host 127.0.0.1:50051")
        runner = self.environment.runner
        _grow_pool(runner.user_count if runner is not None else 1)
        self.client = GrpcStreamClient(self.host, shared, self.environment)
        self._shared = shared
        self._rng = random.Random()

    def on_stop(self) -> None:
        self.client.close()

    @task
    def stream_take(self) -> None:
        s = self._shared
        offset = self._rng.randrange(s.pcm.shape[0] // s.hop) * s.hop
        self.client.stream(offset)
