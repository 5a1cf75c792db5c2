"""The client side of the engine's live ``Stream`` call (``mpt stream``).

An :class:`AudioSource` yields mono float32 blocks: :class:`FileSource` paces a decoded file
at ``speed`` times real time (block *k* leaves when its last sample would have been
recorded: ``t0 + end_k / sr / speed`` on the event loop's clock, an absolute schedule that
does not drift), :class:`MicSource` captures the default input device with the optional
``sounddevice`` package. An encoder turns blocks into chunk payloads (16-bit PCM, or one raw
Opus packet per chunk). :func:`run_stream` connects over an insecure gRPC channel, sends the
config, waits for ``StreamStarted``, then sends the chunks while a concurrent reader hands
every response to a :class:`StreamView` as a JSON-ready dict (:func:`response_to_event`);
SIGINT/SIGTERM end the audio early with ``EndOfStream`` and wait briefly for the summary.

A stream survives a network cut: every chunk carries a sequence number and the last
``RESEND_KEEP_BYTES`` of chunks are kept, so when the call fails with UNAVAILABLE after the
stream started, the client reconnects (backing off, for up to ``RESUME_GIVE_UP_S``) with
``resume_stream_id``, and resends from the ``next_sequence`` the engine reports; the view
gets a ``reconnecting`` event, then the engine's ``started`` (``resumed``).

Failures are :class:`~mpt.errors.EngineCallError` (the engine cannot be reached, or the call
ended with a status) and :class:`~mpt.errors.AudioInputError` (no input device).

Imports grpc and the generated protobuf modules at module level, so only the commands that
stream import it; the engine (its decoder and domain types) is imported where it is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import signal
from collections import deque
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol, cast

import grpc
import grpc.aio
import numpy as np
from numpy.typing import NDArray

from mpt.errors import AudioInputError, EngineCallError, MptError
from mpt_protos.audio.v1 import audio_pb2 as pb
from mpt_protos.audio.v1 import audio_pb2_grpc

if TYPE_CHECKING:  # the engine's domain types are imported where they are built
    from audio_engine.events import StreamSummary
    from audio_engine.result import Mood, TimingReport, Verdict
    from mpt_protos.audio.v1.audio_pb2_grpc import AudioAnalysisAsyncStub as AsyncStub

__all__ = [
    "OPUS_FRAME_MS",
    "PCM_SR_RANGE",
    "AudioSource",
    "Encoding",
    "FileSource",
    "MicSource",
    "StreamOptions",
    "StreamOutcome",
    "StreamView",
    "file_source",
    "microphone_source",
    "response_to_event",
    "run_stream",
    "summary_from_proto",
]

Encoding = Literal["pcm16", "opus"]

PCM_SR_RANGE: Final = (8000, 96000)
OPUS_RATES: Final = (8000, 12000, 16000, 24000, 48000)
OPUS_FRAME_MS: Final = (10, 20, 40, 60, 80, 100, 120)  # libopus frame durations used here
CONNECT_TIMEOUT_S: Final = 5.0
SUMMARY_WAIT_S: Final = 2.0
RESUME_GIVE_UP_S: Final = 55.0  # inside the engine's 60 s resume window
RESUME_BACKOFF_S: Final = (0.2, 0.5, 1.0, 2.0, 4.0)
RESEND_KEEP_BYTES: Final = 8 * 1024 * 1024  # about 95 s of 44.1 kHz 16-bit mono

Samples = NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """What ``mpt stream`` sends besides the audio.

    Attributes
    ----------
    target_bpm, grid_start_s, subdivision, latency_ms
        The timing fields of the stream's config (as in ``mpt analyze``).
    session_id : str or None
        The practice session the summary belongs to (``practice_session_id``).
    encoding : {"pcm16", "opus"}
        How chunks are encoded.
    chunk_ms : int
        Audio per chunk in milliseconds (for Opus, the packet duration).
    speed : float
        Pace as a multiple of real time for files; 0 sends as fast as the engine reads.
    """

    target_bpm: float | None = None
    grid_start_s: float = 0.0
    subdivision: int | None = None
    latency_ms: float = 0.0
    session_id: str | None = None
    encoding: Encoding = "pcm16"
    chunk_ms: int = 100
    speed: float = 1.0


@dataclass(slots=True)
class StreamOutcome:
    """How a stream ended: its id, the summary (None if it never came), whether the user
    interrupted it."""

    stream_id: str | None = None
    summary: StreamSummary | None = None
    interrupted: bool = False


class StreamView(Protocol):
    """Receives what happens during a stream (JSON-ready dicts with a ``type``)."""

    def event(self, event: Mapping[str, Any]) -> None:
        """One response of the engine (:func:`response_to_event`)."""
        ...

    def progress(self, sent_s: float) -> None:
        """Seconds of audio sent so far."""
        ...


class AudioSource(Protocol):
    """Mono float32 audio, produced block by block at its own pace."""

    @property
    def label(self) -> str:
        """What is streamed, for messages (the path, the device)."""
        ...

    @property
    def sr(self) -> int:
        """Sample rate of the blocks, Hz."""
        ...

    @property
    def duration_s(self) -> float | None:
        """Length in seconds; None for a live input."""
        ...

    def blocks(self, chunk_ms: int, stop: asyncio.Event) -> AsyncGenerator[Samples, None]:
        """Blocks of about ``chunk_ms``; ends early once ``stop`` is set."""
        ...


# --------------------------------------------------------------------------------------------
# Sources


@dataclass(frozen=True, slots=True)
class FileSource:
    """A decoded file, mixed down to mono, sent at ``speed`` times real time (0: at once)."""

    label: str
    samples: Samples
    sr: int
    speed: float = 1.0

    @property
    def duration_s(self) -> float:
        return float(self.samples.shape[0] / self.sr)

    async def blocks(self, chunk_ms: int, stop: asyncio.Event) -> AsyncGenerator[Samples, None]:
        loop = asyncio.get_running_loop()
        step = max(1, round(self.sr * chunk_ms / 1000))
        n = self.samples.shape[0]
        t0 = loop.time()
        for start in range(0, n, step):
            end = min(n, start + step)
            if self.speed > 0:
                delay = t0 + end / self.sr / self.speed - loop.time()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                return
            yield self.samples[start:end]


def file_source(path: Path, *, speed: float, encoding: Encoding) -> FileSource:
    """Decode ``path`` (:func:`audio_engine.io.load_audio`), mixed down to mono block by block
    as it is decoded (a long multichannel file is never held whole).

    Raises
    ------
    AudioDecodeError
        The file cannot be decoded (the engine's error, naming the path).
    MptError
        Its sample rate cannot be streamed as 16-bit PCM (outside 8-96 kHz).
    """
    from audio_engine.io import load_audio

    mono, sr = load_audio(path, mono=True)
    lo, hi = PCM_SR_RANGE
    if encoding == "pcm16" and not lo <= sr <= hi:
        raise MptError(
            f"{str(path)!r} has a sample rate of {sr} Hz; the engine takes {lo}-{hi} Hz "
            "(resample it, or send it with --encoding opus)"
        )
    return FileSource(str(path), np.ascontiguousarray(mono, dtype=np.float32), int(sr), speed)


@dataclass(frozen=True, slots=True)
class MicSource:
    """The default input device, captured with ``sounddevice`` (mono, at its default rate)."""

    label: str
    sr: int
    sd: Any
    duration_s: None = None

    async def blocks(self, chunk_ms: int, stop: asyncio.Event) -> AsyncGenerator[Samples, None]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Samples] = asyncio.Queue()

        def captured(indata: Any, frames: int, time_info: Any, status: Any) -> None:
            block = np.array(indata[:, 0], dtype=np.float32)
            loop.call_soon_threadsafe(queue.put_nowait, block)

        try:
            stream = self.sd.InputStream(
                samplerate=self.sr,
                channels=1,
                dtype="float32",
                blocksize=max(1, round(self.sr * chunk_ms / 1000)),
                callback=captured,
            )
        except Exception as exc:  # sounddevice.PortAudioError and friends
            raise AudioInputError(f"cannot open the audio input {self.label}: {exc}") from None
        stopped = asyncio.ensure_future(stop.wait())
        try:
            with stream:
                while not stop.is_set():
                    block = asyncio.ensure_future(queue.get())
                    await asyncio.wait({block, stopped}, return_when=asyncio.FIRST_COMPLETED)
                    if not block.done():
                        block.cancel()
                        return
                    yield block.result()
        finally:
            stopped.cancel()


def microphone_source(sd: Any = None) -> MicSource:
    """The default audio input device.

    Parameters
    ----------
    sd : module, optional
        The ``sounddevice`` module (for tests); imported when omitted.

    Raises
    ------
    AudioInputError
        ``sounddevice`` or its PortAudio library is missing, or there is no input device.
    """
    if sd is None:
        try:
            sd = importlib.import_module("sounddevice")
        except ImportError:
            raise AudioInputError(
                "no audio input device found: capturing needs the optional 'sounddevice' "
                "package (pip install 'mpt[mic]')"
            ) from None
        except OSError as exc:  # sounddevice imports, but the PortAudio library does not load
            raise AudioInputError(
                f"no audio input device found: the PortAudio library is missing ({exc})"
            ) from None
    try:
        info = sd.query_devices(kind="input")
    except Exception:  # PortAudioError, or ValueError when there is no default input
        raise AudioInputError("no audio input device found") from None
    if not info or int(info.get("max_input_channels", 0)) < 1:
        raise AudioInputError("no audio input device found")
    sr = round(float(info.get("default_samplerate") or 48000))
    return MicSource(label=f"microphone {info.get('name', '?')!r}", sr=sr, sd=sd)


# --------------------------------------------------------------------------------------------
# Encoders


class _Encoder(Protocol):
    sample_rate_hz: int
    encoding: pb.Encoding.ValueType

    def encode(self, block: Samples) -> list[bytes]: ...

    def flush(self) -> list[bytes]: ...


class _Pcm16Encoder:
    """Mono signed 16-bit little-endian PCM at the source's rate."""

    encoding = pb.ENCODING_PCM_S16LE

    def __init__(self, sr: int) -> None:
        self.sample_rate_hz = sr

    def encode(self, block: Samples) -> list[bytes]:
        pcm = np.rint(np.clip(block, -1.0, 1.0) * 32767.0).astype("<i2")
        return [pcm.tobytes()]

    def flush(self) -> list[bytes]:
        return []


class _OpusEncoder:
    """Raw mono Opus packets of ``frame_ms`` (libopus through PyAV), resampled to 48 kHz
    when the source rate is not an Opus rate."""

    encoding = pb.ENCODING_OPUS

    def __init__(self, sr: int, frame_ms: int) -> None:
        import av

        self._av = av
        self._sr = sr
        self.sample_rate_hz = sr if sr in OPUS_RATES else 48000
        self._resampler = (
            None
            if sr == self.sample_rate_hz
            else av.AudioResampler(format="flt", layout="mono", rate=self.sample_rate_hz)
        )
        ctx = av.CodecContext.create("libopus", "w")
        assert isinstance(ctx, av.AudioCodecContext)
        ctx.sample_rate = self.sample_rate_hz
        ctx.layout = "mono"
        ctx.format = "flt"
        ctx.options = {"frame_duration": str(frame_ms)}
        self._ctx = ctx
        self._pts = 0

    def encode(self, block: Samples) -> list[bytes]:
        frame = self._av.AudioFrame.from_ndarray(block[None, :], format="flt", layout="mono")
        frame.sample_rate = self._sr
        frame.pts = self._pts
        self._pts += block.shape[0]
        frames = [frame] if self._resampler is None else self._resampler.resample(frame)
        return [bytes(p) for f in frames for p in self._ctx.encode(f)]

    def flush(self) -> list[bytes]:
        frames = [] if self._resampler is None else self._resampler.resample(None)
        packets = [bytes(p) for f in frames for p in self._ctx.encode(f)]
        return packets + [bytes(p) for p in self._ctx.encode(None)]


def _encoder(encoding: Encoding, sr: int, chunk_ms: int) -> _Encoder:
    if encoding == "opus":
        return _OpusEncoder(sr, chunk_ms)
    return _Pcm16Encoder(sr)


# --------------------------------------------------------------------------------------------
# Responses


def response_to_event(response: pb.StreamResponse) -> dict[str, Any]:
    """A stream response as a JSON-ready dict: ``type`` (``started``, ``onset``, ``beat``,
    ``tempo``, ``warning``, ``summary``) and its fields; times in seconds, deviations in ms,
    moods and warning codes as lower-case words, absent optional fields as None."""
    kind = response.WhichOneof("response")
    if kind == "started":
        s = response.started
        return {
            "type": "started",
            "stream_id": s.stream_id,
            "resumed": s.resumed,
            "next_sequence": s.next_sequence,
            "audio_s": round(s.audio_s, 4),
        }
    if kind == "onset":
        o = response.onset
        return {
            "type": "onset",
            "time_s": round(o.time_s, 4),
            "strength": round(o.strength, 4),
            "deviation_ms": round(o.deviation_ms, 2) if o.HasField("deviation_ms") else None,
            "is_metronome": o.is_metronome,
        }
    if kind == "beat":
        b = response.beat
        return {"type": "beat", "time_s": round(b.time_s, 4), "tempo_bpm": round(b.tempo_bpm, 2)}
    if kind == "tempo":
        t = response.tempo
        return {
            "type": "tempo",
            "time_s": round(t.time_s, 4),
            "tempo_bpm": round(t.tempo_bpm, 2) if t.HasField("tempo_bpm") else None,
            "confidence": round(t.confidence, 3),
            "accuracy_pct": round(t.accuracy_pct, 2) if t.HasField("accuracy_pct") else None,
            "mood": _word(pb.Mood, t.mood, "MOOD_"),
            "meditation": t.meditation,
        }
    if kind == "warning":
        w = response.warning
        return {
            "type": "warning",
            "time_s": round(w.time_s, 4),
            "code": _word(pb.WarningCode, w.code, "WARNING_CODE_"),
            "message": w.message,
        }
    if kind == "summary":
        summary = summary_from_proto(response.summary)
        return {"type": "summary", "stream_id": response.summary.stream_id, **summary.to_dict()}
    return {"type": "unknown"}


def summary_from_proto(msg: pb.Summary) -> StreamSummary:
    """The engine's ``Summary`` as the domain :class:`~audio_engine.events.StreamSummary`."""
    from audio_engine.events import StreamSummary

    return StreamSummary(
        duration_s=msg.duration_s,
        tempo_bpm=msg.tempo_bpm if msg.HasField("tempo_bpm") else None,
        n_onsets=msg.n_onsets,
        n_beats=msg.n_beats,
        timing=_timing_from_proto(msg.timing) if msg.HasField("timing") else None,
    )


def _timing_from_proto(msg: pb.TimingReport) -> TimingReport:
    from audio_engine.result import TimingReport

    def optional(name: str) -> float | None:
        return float(getattr(msg, name)) if msg.HasField(name) else None  # type: ignore[arg-type]

    mood = _word(pb.Mood, msg.mood, "MOOD_")
    if mood is None:
        raise EngineCallError("the engine sent a timing report without a mood")
    return TimingReport(
        target_bpm=msg.target_bpm,
        grid_start_s=msg.grid_start_s,
        subdivision=msg.subdivision,
        subdivision_inferred=msg.subdivision_inferred,
        latency_ms=msg.latency_ms,
        tolerance_ms=msg.tolerance_ms,
        notes=[(n.time_s, n.deviation_ms) for n in msg.notes],
        accuracy_pct=optional("accuracy_pct"),
        tempo_bpm_played=optional("tempo_bpm_played"),
        tempo_error_pct=optional("tempo_error_pct"),
        steadiness_ms=optional("steadiness_ms"),
        drift_bpm_per_min=optional("drift_bpm_per_min"),
        verdict=cast("Verdict", _word(pb.Verdict, msg.verdict, "VERDICT_") or "unknown"),
        mood=cast("Mood", mood),
        meditation=msg.meditation,
        points=msg.points,
        analysed_s=msg.analysed_s,
        metronome_clicks_removed=msg.metronome_clicks_removed,
    )


def _word(enum: Any, value: int, prefix: str) -> str | None:
    """``MOOD_HAPPY`` -> ``happy``; the ``*_UNSPECIFIED`` zero value (or an unknown one) ->
    None."""
    try:
        name = str(enum.Name(value))
    except ValueError:
        return None
    word = name.removeprefix(prefix).lower()
    return None if word == "unspecified" else word


# --------------------------------------------------------------------------------------------
# The call


async def run_stream(
    *,
    target: str,
    token: str,
    source: AudioSource,
    options: StreamOptions,
    view: StreamView,
    auth_hint: str | None = None,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    summary_wait_s: float = SUMMARY_WAIT_S,
) -> StreamOutcome:
    """Stream ``source`` to the engine at ``target`` and report every response to ``view``.

    SIGINT and SIGTERM (when running in the main thread) stop sending: ``EndOfStream`` goes
    out and the summary is awaited for ``summary_wait_s``; a second signal gives up at once.

    Parameters
    ----------
    target : str
        ``host:port`` of the engine.
    token : str
        The bearer token (audience ``mpt-engine``).
    source : AudioSource
        The audio, paced by the source.
    options : StreamOptions
        Config fields, encoding and chunk duration.
    view : StreamView
        Receives the responses and the progress.
    auth_hint : str, optional
        Appended to an UNAUTHENTICATED error (where the token came from).
    connect_timeout_s : float
        How long to wait for the connection before giving up.
    summary_wait_s : float
        After an interruption, how long to wait for the summary.

    Returns
    -------
    StreamOutcome
        The stream id, the summary, whether it was interrupted.

    Raises
    ------
    EngineCallError
        The engine cannot be reached, or the call ended with a status other than OK.
    AudioInputError
        The input device cannot be opened.
    """
    loop = asyncio.get_running_loop()
    stop, force = asyncio.Event(), asyncio.Event()

    def interrupt() -> None:
        (force if stop.is_set() else stop).set()

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, interrupt)
            installed.append(signum)
    metadata = (("authorization", f"Bearer {token}"),)
    outcome = StreamOutcome()
    outgoing = _Outgoing(source, options, stop)
    attempt, give_up_at = 0, 0.0
    try:
        while True:
            try:
                await _leg(target, metadata, outcome, outgoing, options, view, stop, force,
                           connect_timeout_s, summary_wait_s)
                return outcome
            except (grpc.aio.AioRpcError, EngineCallError) as exc:
                if not _resumable(exc, outcome, force):
                    raise
                attempt += 1
                give_up_at = give_up_at or loop.time() + RESUME_GIVE_UP_S
                if loop.time() >= give_up_at:
                    raise
                reason = (
                    " ".join((exc.details() or exc.code().name).split())
                    if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
                )
                view.event({"type": "reconnecting", "stream_id": outcome.stream_id,
                            "attempt": attempt, "reason": reason})
                await asyncio.sleep(RESUME_BACKOFF_S[min(attempt, len(RESUME_BACKOFF_S)) - 1])
    except grpc.aio.AioRpcError as exc:
        details = " ".join((exc.details() or "no details").split())
        message = f"the engine replied {exc.code().name}: {details}"
        if exc.code() == grpc.StatusCode.UNAUTHENTICATED and auth_hint:
            message += f" ({auth_hint})"
        raise EngineCallError(message) from None
    finally:
        await outgoing.close()
        for signum in installed:
            loop.remove_signal_handler(signum)


async def _leg(
    target: str,
    metadata: tuple[tuple[str, str], ...],
    outcome: StreamOutcome,
    outgoing: _Outgoing,
    options: StreamOptions,
    view: StreamView,
    stop: asyncio.Event,
    force: asyncio.Event,
    connect_timeout_s: float,
    summary_wait_s: float,
) -> None:
    """One call on a new connection: the stream's start, or a resume after a cut."""
    async with grpc.aio.insecure_channel(target) as channel:
        await _connect(channel, target, connect_timeout_s)
        stub = audio_pb2_grpc.AudioAnalysisStub(channel)  # typed as the .pyi's AsyncStub
        call = stub.Stream(metadata=metadata)
        try:
            await _converse(call, outcome, outgoing, options, view, stop, force, summary_wait_s)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.INTERNAL or outcome.stream_id is not None:
                raise
            raise (await _rejection(stub, metadata)) or exc from None


def _resumable(exc: Exception, outcome: StreamOutcome, force: asyncio.Event) -> bool:
    """A cut worth resuming: the stream had started, has no summary yet, the user did not
    give up, and the connection (not the engine's judgement) ended the call."""
    if outcome.stream_id is None or outcome.summary is not None or force.is_set():
        return False
    if isinstance(exc, EngineCallError):
        return True  # the engine is unreachable for now (reconnecting)
    if not isinstance(exc, grpc.aio.AioRpcError):
        return False
    # A reset connection fails the call as UNAVAILABLE, or, when a write of ours hits it
    # first, as grpc core's INTERNAL "Internal error from Core" (grpc/grpc#36066); the
    # engine's own INTERNAL says "internal error".
    return exc.code() == grpc.StatusCode.UNAVAILABLE or (
        exc.code() == grpc.StatusCode.INTERNAL and exc.details() == _CORE_INTERNAL
    )


_CORE_INTERNAL: Final = "Internal error from Core"


class _Outgoing:
    """The stream's chunks: encoded from the source by a producer task, numbered, and the
    last ``RESEND_KEEP_BYTES`` of them kept for a resend after a cut."""

    def __init__(self, source: AudioSource, options: StreamOptions, stop: asyncio.Event) -> None:
        self.encoder = _encoder(options.encoding, source.sr, options.chunk_ms)
        self.sent_s = 0.0
        self._sr = source.sr
        self._queue: asyncio.Queue[tuple[bytes, int] | BaseException | None] = asyncio.Queue()
        self._kept: deque[tuple[int, bytes]] = deque()
        self._kept_bytes = 0
        self._next = 0
        self._ended = False
        self._producer = asyncio.ensure_future(self._produce(source, options.chunk_ms, stop))

    async def _produce(self, source: AudioSource, chunk_ms: int, stop: asyncio.Event) -> None:
        try:
            samples = 0  # of blocks whose audio no chunk has carried yet (the encoder buffers)
            async with contextlib.aclosing(source.blocks(chunk_ms, stop)) as blocks:
                async for block in blocks:
                    samples += block.shape[0]
                    for payload in self.encoder.encode(block):
                        await self._queue.put((payload, samples))
                        samples = 0
            for payload in self.encoder.flush():
                await self._queue.put((payload, samples))
                samples = 0
            await self._queue.put(None)
        except BaseException as exc:  # the input device: raised where the chunks are read
            await self._queue.put(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise

    def resend_from(self, sequence: int) -> list[pb.StreamRequest]:
        """The kept chunks from ``sequence`` on (what the engine has not received).

        Raises
        ------
        EngineCallError
            Chunks the engine still needs are no longer kept.
        """
        if sequence < self._next and (not self._kept or self._kept[0][0] > sequence):
            raise EngineCallError(
                f"cannot resume: the engine needs the audio from chunk {sequence} on, which is "
                "no longer kept"
            )
        return [_chunk(seq, data) for seq, data in self._kept if seq >= sequence]

    async def next(self) -> pb.StreamRequest | None:
        """The next new chunk (kept for a resend), or None after the last one."""
        if self._ended:
            return None
        item = await self._queue.get()
        if item is None:
            self._ended = True
            return None
        if isinstance(item, BaseException):
            self._ended = True
            raise item
        payload, samples = item
        sequence, self._next = self._next, self._next + 1
        self._kept.append((sequence, payload))
        self._kept_bytes += len(payload)
        while self._kept_bytes > RESEND_KEEP_BYTES and len(self._kept) > 1:
            self._kept_bytes -= len(self._kept.popleft()[1])
        self.sent_s += samples / self._sr
        return _chunk(sequence, payload)

    async def close(self) -> None:
        self._producer.cancel()
        await asyncio.gather(self._producer, return_exceptions=True)


def _chunk(sequence: int, data: bytes) -> pb.StreamRequest:
    return pb.StreamRequest(chunk=pb.AudioChunk(data=data, sequence=sequence))


async def _connect(channel: grpc.aio.Channel, target: str, timeout_s: float) -> None:
    """Wait until the channel is connected; a refused or failed connection fails at once."""
    unreachable = EngineCallError(f"cannot reach the engine at {target} (is `mpt up` running?)")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    state = channel.get_state(try_to_connect=True)
    while state != grpc.ChannelConnectivity.READY:
        remaining = deadline - loop.time()
        if state in _FAILED_STATES or remaining <= 0:
            raise unreachable
        try:
            await asyncio.wait_for(channel.wait_for_state_change(state), remaining)
        except TimeoutError:
            raise unreachable from None
        state = channel.get_state(try_to_connect=True)


_FAILED_STATES: Final = (
    grpc.ChannelConnectivity.TRANSIENT_FAILURE,
    grpc.ChannelConnectivity.SHUTDOWN,
)


async def _rejection(
    stub: AsyncStub, metadata: tuple[tuple[str, str], ...]
) -> grpc.aio.AioRpcError | None:
    """Why the engine refused a call, when grpc.aio hid it.

    The engine checks the token when a call opens, before it reads the config; when its
    refusal races the client's write of the config, grpc.aio reports the failed write as
    ``INTERNAL: Internal error from Core`` instead of the server's status (grpc/grpc#36066).
    A unary call with the same token cannot race: an empty ``AnalyzeRecording`` is refused
    the same way (UNAUTHENTICATED), or passes the check and is INVALID_ARGUMENT (no audio).
    Returns the refusal, or None when the token is not the reason.
    """
    try:
        await stub.AnalyzeRecording(
            pb.AnalyzeRecordingRequest(), metadata=metadata, timeout=CONNECT_TIMEOUT_S
        )
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return exc
    return None


async def _converse(
    call: Any,
    outcome: StreamOutcome,
    outgoing: _Outgoing,
    options: StreamOptions,
    view: StreamView,
    stop: asyncio.Event,
    force: asyncio.Event,
    summary_wait_s: float,
) -> None:
    """Send the config (resuming ``outcome.stream_id`` when set) and the audio while reading
    the responses into ``outcome``."""
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def read() -> None:
        async for response in call:
            kind = response.WhichOneof("response")
            if kind == "started":
                outcome.stream_id = response.started.stream_id
                if not started.done():
                    started.set_result(response.started.next_sequence)
            elif kind == "summary":
                outcome.summary = summary_from_proto(response.summary)
            view.event(response_to_event(response))

    async def send() -> None:
        await call.write(_config_request(options, outgoing.encoder, outcome.stream_id))
        next_sequence = await started  # no audio before the engine accepted the call
        for request in outgoing.resend_from(next_sequence):
            await call.write(request)
        while (chunk := await outgoing.next()) is not None:
            await call.write(chunk)
            view.progress(outgoing.sent_s)
        await call.write(pb.StreamRequest(end=pb.EndOfStream()))
        await call.done_writing()

    reader = asyncio.ensure_future(read())
    sender = asyncio.ensure_future(send())
    interrupted = asyncio.ensure_future(stop.wait())
    forced = asyncio.ensure_future(force.wait())
    try:
        while not reader.done():
            waiting = {reader, interrupted} if sender.done() else {reader, interrupted, sender}
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if sender.done() and not sender.cancelled():
                _raise_sender_error(sender.exception())
            if interrupted.done() and not reader.done():
                # The sender ends the audio with EndOfStream; the summary should follow.
                outcome.interrupted = True
                await asyncio.wait({reader, forced}, timeout=summary_wait_s)
                if not reader.done():
                    call.cancel()
                    return
        reader.result()  # the call's status, as AioRpcError
    finally:
        for task in (sender, interrupted, forced, reader):
            task.cancel()
        await asyncio.gather(sender, interrupted, forced, reader, return_exceptions=True)


def _raise_sender_error(exc: BaseException | None) -> None:
    """Errors of the sending side that the call's status will not explain (the input device,
    the encoder); a failed write only means the call ended, and its status is what counts."""
    if exc is None or isinstance(exc, grpc.aio.AioRpcError | asyncio.InvalidStateError):
        return
    raise exc


def _config_request(
    options: StreamOptions, encoder: _Encoder, resume_stream_id: str | None = None
) -> pb.StreamRequest:
    config = pb.StreamConfig(
        sample_rate_hz=encoder.sample_rate_hz,
        channels=1,
        encoding=encoder.encoding,
        grid_start_s=options.grid_start_s,
        latency_ms=options.latency_ms,
    )
    if options.target_bpm is not None:
        config.target_bpm = options.target_bpm
    if options.subdivision is not None:
        config.subdivision = options.subdivision
    if options.session_id is not None:
        config.practice_session_id = options.session_id
    if resume_stream_id is not None:
        config.resume_stream_id = resume_stream_id
    return pb.StreamRequest(config=config)
