"""Protobuf ⇄ domain conversions of the gRPC server, and nothing else.

Requests become domain values (:class:`StreamSetup`, sample arrays through a per-stream
:class:`ChunkDecoder`, :class:`Recording`); engine events, summaries and results become
response messages. Every invalid value raises :class:`~audio_engine.errors.ParameterError`
whose message names it (the interceptor turns it into INVALID_ARGUMENT).

Opus packets are decoded with PyAV's libopus decoder, one decoder per stream; FFmpeg's
libopus decoder always outputs 48 kHz, so an Opus stream is analysed at 48 kHz whatever
rate the client encoded at (times are in seconds either way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, Protocol

import av
import av.error
import numpy as np
from numpy.typing import NDArray

from audio_engine.errors import ParameterError
from audio_engine.events import (
    BeatEvent,
    Event,
    OnsetEvent,
    StreamSummary,
    TempoEvent,
    WarningEvent,
)
from audio_engine.result import AnalysisResult, Mood, TimingReport, Verdict
from audio_engine.stream import StreamConfig
from mpt_protos.audio.v1 import audio_pb2 as pb

__all__ = [
    "OPUS_DECODE_SR",
    "ChunkDecoder",
    "EncodingName",
    "Recording",
    "StreamSetup",
    "analysis_to_proto",
    "event_to_proto",
    "make_decoder",
    "recording_from_proto",
    "started_to_proto",
    "stream_setup_from_proto",
    "summary_to_proto",
    "timing_to_proto",
]

EncodingName = Literal["pcm_s16le", "pcm_f32le", "opus"]

OPUS_DECODE_SR: Final = 48000
OPUS_INPUT_RATES: Final = (8000, 12000, 16000, 24000, 48000)
PCM_SR_RANGE: Final = (8000, 96000)
PCM_MAX_CHANNELS: Final = 8
OPUS_MAX_CHANNELS: Final = 2
MAX_ID_LENGTH: Final = 128

_ENCODINGS: Final[dict[int, EncodingName]] = {
    pb.ENCODING_PCM_S16LE: "pcm_s16le",
    pb.ENCODING_PCM_F32LE: "pcm_f32le",
    pb.ENCODING_OPUS: "opus",
}
_BYTES_PER_SAMPLE: Final[dict[EncodingName, int]] = {"pcm_s16le": 2, "pcm_f32le": 4}
_MOODS: Final[dict[Mood, pb.Mood.ValueType]] = {
    "happy": pb.MOOD_HAPPY,
    "neutral": pb.MOOD_NEUTRAL,
    "annoyed": pb.MOOD_ANNOYED,
    "angry": pb.MOOD_ANGRY,
}
_VERDICTS: Final[dict[Verdict, pb.Verdict.ValueType]] = {
    "steady": pb.VERDICT_STEADY,
    "rushing": pb.VERDICT_RUSHING,
    "dragging": pb.VERDICT_DRAGGING,
    "unknown": pb.VERDICT_UNKNOWN,
}
_WARNINGS: Final[dict[str, pb.WarningCode.ValueType]] = {
    "clipping": pb.WARNING_CODE_CLIPPING,
    "long_silence": pb.WARNING_CODE_LONG_SILENCE,
    "too_quiet": pb.WARNING_CODE_TOO_QUIET,
    "metronome_bleed": pb.WARNING_CODE_METRONOME_BLEED,
}


# --------------------------------------------------------------------------------------------
# Requests


@dataclass(frozen=True, slots=True)
class StreamSetup:
    """A stream's config message as domain values.

    Attributes
    ----------
    config : StreamConfig
        What the analyzer gets; ``config.sr`` is the rate of the decoded samples (48 kHz for
        Opus).
    encoding : {"pcm_s16le", "pcm_f32le", "opus"}
        How the chunks' bytes are encoded.
    input_sr : int
        The sample rate the client declared.
    practice_session_id : str or None
        The practice session whose summary is handed to the API.
    resume_stream_id : str or None
        The stream to re-attach to.
    """

    config: StreamConfig
    encoding: EncodingName
    input_sr: int
    practice_session_id: str | None = None
    resume_stream_id: str | None = None


def stream_setup_from_proto(msg: pb.StreamConfig) -> StreamSetup:
    """Validate a ``StreamConfig`` message and convert it.

    The audio format is checked here; the timing fields (target, grid, subdivision,
    latency) are checked by the analyzer itself.

    Raises
    ------
    ParameterError
        The encoding is unspecified or unknown, or the sample rate, channel count or an id
        is invalid; the message names the field and its value.
    """
    encoding = _ENCODINGS.get(msg.encoding)
    if encoding is None:
        raise ParameterError(
            f"config.encoding must be ENCODING_PCM_S16LE, ENCODING_PCM_F32LE or ENCODING_OPUS, "
            f"got {_enum_name(pb.Encoding, msg.encoding)}"
        )
    sr = int(msg.sample_rate_hz)
    channels = int(msg.channels)
    if encoding == "opus":
        if sr not in OPUS_INPUT_RATES:
            rates = ", ".join(str(r) for r in OPUS_INPUT_RATES)
            raise ParameterError(
                f"unsupported sample rate {sr} Hz for Opus: config.sample_rate_hz must be one "
                f"of {rates}"
            )
        if not 1 <= channels <= OPUS_MAX_CHANNELS:
            raise ParameterError(f"config.channels must be 1 or 2 for Opus, got {channels}")
        decoded_sr = OPUS_DECODE_SR
    else:
        lo, hi = PCM_SR_RANGE
        if not lo <= sr <= hi:
            raise ParameterError(
                f"unsupported sample rate {sr} Hz: config.sample_rate_hz must be {lo}-{hi}"
            )
        if not 1 <= channels <= PCM_MAX_CHANNELS:
            raise ParameterError(f"config.channels must be 1-{PCM_MAX_CHANNELS}, got {channels}")
        decoded_sr = sr
    return StreamSetup(
        config=StreamConfig(
            sr=decoded_sr,
            channels=channels,
            target_bpm=msg.target_bpm if msg.HasField("target_bpm") else None,
            grid_start_s=msg.grid_start_s,
            subdivision=int(msg.subdivision) if msg.HasField("subdivision") else None,
            latency_ms=msg.latency_ms,
        ),
        encoding=encoding,
        input_sr=sr,
        practice_session_id=(
            _check_id("config.practice_session_id", msg.practice_session_id)
            if msg.HasField("practice_session_id")
            else None
        ),
        resume_stream_id=(
            _check_id("config.resume_stream_id", msg.resume_stream_id)
            if msg.HasField("resume_stream_id")
            else None
        ),
    )


class ChunkDecoder(Protocol):
    """Turns one chunk's bytes into samples; one instance per stream, not thread-safe."""

    def decode(self, data: bytes) -> NDArray[np.generic]:
        """Samples shaped (n,) for mono or (n, channels), int16 or float32."""
        ...

    def close(self) -> None:
        """Release the decoder's resources."""
        ...


def make_decoder(setup: StreamSetup) -> ChunkDecoder:
    """The decoder of a stream's chunks (PCM reinterpretation, or a libopus decoder)."""
    if setup.encoding == "opus":
        return _OpusDecoder(setup.config.channels)
    return _PcmDecoder(setup.encoding, setup.config.channels)


class _PcmDecoder:
    """Little-endian interleaved PCM: checks the frame alignment and, for floats, finiteness."""

    def __init__(self, encoding: EncodingName, channels: int) -> None:
        self._channels = channels
        self._dtype = np.dtype("<i2") if encoding == "pcm_s16le" else np.dtype("<f4")
        self._kind = "int16" if encoding == "pcm_s16le" else "float32"
        self._frame_bytes = _BYTES_PER_SAMPLE[encoding] * channels

    def decode(self, data: bytes) -> NDArray[np.generic]:
        return _pcm_samples(data, self._dtype, self._kind, self._channels, self._frame_bytes)

    def close(self) -> None:
        pass


class _OpusDecoder:
    """One raw Opus packet per chunk, decoded by libopus to float32 at 48 kHz."""

    def __init__(self, channels: int) -> None:
        self._channels = channels
        self._packets = 0
        ctx = av.CodecContext.create("libopus", "r")
        assert isinstance(ctx, av.AudioCodecContext)
        ctx.sample_rate = OPUS_DECODE_SR
        ctx.layout = "mono" if channels == 1 else "stereo"
        ctx.options = {"request_sample_fmt": "flt"}
        self._ctx: av.AudioCodecContext | None = ctx

    def decode(self, data: bytes) -> NDArray[np.generic]:
        self._packets += 1
        if not data:  # an empty packet would put FFmpeg's decoder into draining mode
            return np.zeros((0, self._channels), dtype=np.float32)
        if self._ctx is None:
            raise ParameterError("the Opus decoder of this stream is closed")
        try:
            frames = self._ctx.decode(av.Packet(data))
        except av.error.FFmpegError as exc:
            raise ParameterError(
                f"undecodable Opus packet #{self._packets} ({len(data)} bytes): "
                f"{exc.strerror or exc}"
            ) from None
        blocks = [_frame_to_float32(f) for f in frames if f.samples]
        if not blocks:
            return np.zeros((0, self._channels), dtype=np.float32)
        out = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
        return out[:, 0] if self._channels == 1 else out

    def close(self) -> None:
        self._ctx = None  # PyAV frees the codec context when it is collected


@dataclass(frozen=True, slots=True)
class Recording:
    """A whole recording of ``AnalyzeRecording``: PCM samples, or an encoded file's bytes.

    Exactly one of ``samples`` (with ``sr``) and ``file_bytes`` is set.
    """

    samples: NDArray[np.generic] | None
    sr: int
    file_bytes: bytes | None
    target_bpm: float | None
    grid_start_s: float
    subdivision: int | None
    latency_ms: float


def recording_from_proto(msg: pb.AnalyzeRecordingRequest, *, max_bytes: int) -> Recording:
    """Validate an ``AnalyzeRecordingRequest`` and convert it.

    Raises
    ------
    ParameterError
        No audio, audio over ``max_bytes``, a bad PCM format, misaligned bytes or NaN
        samples.
    """
    which = msg.WhichOneof("audio")
    if which is None:
        raise ParameterError("the request carries no audio: set pcm or file")
    size = len(msg.pcm.data) if which == "pcm" else len(msg.file)
    if size > max_bytes:
        raise ParameterError(
            f"recording of {size} bytes exceeds the limit of {max_bytes} bytes; stream it instead"
        )
    if which == "file":
        if not msg.file:
            raise ParameterError("the recording file is empty (0 bytes)")
        return _recording(msg, samples=None, sr=0, file_bytes=msg.file)
    pcm = msg.pcm
    encoding = _ENCODINGS.get(pcm.encoding)
    if encoding is None or encoding == "opus":
        raise ParameterError(
            f"pcm.encoding must be ENCODING_PCM_S16LE or ENCODING_PCM_F32LE, got "
            f"{_enum_name(pb.Encoding, pcm.encoding)} (send encoded audio as a file)"
        )
    lo, hi = PCM_SR_RANGE
    sr = int(pcm.sample_rate_hz)
    if not lo <= sr <= hi:
        raise ParameterError(
            f"unsupported sample rate {sr} Hz: pcm.sample_rate_hz must be {lo}-{hi}"
        )
    channels = int(pcm.channels)
    if not 1 <= channels <= PCM_MAX_CHANNELS:
        raise ParameterError(f"pcm.channels must be 1-{PCM_MAX_CHANNELS}, got {channels}")
    samples = _PcmDecoder(encoding, channels).decode(pcm.data)
    return _recording(msg, samples=samples, sr=sr, file_bytes=None)


def _recording(
    msg: pb.AnalyzeRecordingRequest,
    *,
    samples: NDArray[np.generic] | None,
    sr: int,
    file_bytes: bytes | None,
) -> Recording:
    return Recording(
        samples=samples,
        sr=sr,
        file_bytes=file_bytes,
        target_bpm=msg.target_bpm if msg.HasField("target_bpm") else None,
        grid_start_s=msg.grid_start_s,
        subdivision=int(msg.subdivision) if msg.HasField("subdivision") else None,
        latency_ms=msg.latency_ms,
    )


# --------------------------------------------------------------------------------------------
# Responses


def started_to_proto(
    *, stream_id: str, resumed: bool, next_sequence: int, received_bytes: int, audio_s: float
) -> pb.StreamResponse:
    """The first response of a stream."""
    return pb.StreamResponse(
        started=pb.StreamStarted(
            stream_id=stream_id,
            resumed=resumed,
            next_sequence=next_sequence,
            received_bytes=received_bytes,
            audio_s=audio_s,
        )
    )


def event_to_proto(event: Event) -> pb.StreamResponse:
    """One analyzer event as a stream response."""
    if isinstance(event, OnsetEvent):
        onset = pb.OnsetEvent(
            time_s=event.time_s, strength=event.strength, is_metronome=event.is_metronome
        )
        if event.deviation_ms is not None:
            onset.deviation_ms = event.deviation_ms
        return pb.StreamResponse(onset=onset)
    if isinstance(event, BeatEvent):
        return pb.StreamResponse(beat=pb.BeatEvent(time_s=event.time_s, tempo_bpm=event.bpm))
    if isinstance(event, TempoEvent):
        tempo = pb.TempoUpdate(
            time_s=event.time_s,
            confidence=event.confidence,
            mood=pb.MOOD_UNSPECIFIED if event.mood is None else _MOODS[event.mood],
            meditation=event.meditation,
        )
        if event.bpm is not None:
            tempo.tempo_bpm = event.bpm
        if event.accuracy_pct is not None:
            tempo.accuracy_pct = event.accuracy_pct
        return pb.StreamResponse(tempo=tempo)
    if isinstance(event, WarningEvent):
        return pb.StreamResponse(
            warning=pb.Warning(
                time_s=event.time_s,
                code=_WARNINGS.get(event.code, pb.WARNING_CODE_UNSPECIFIED),
                message=event.message,
            )
        )
    raise TypeError(f"not an engine event: {event!r}")


def summary_to_proto(stream_id: str, summary: StreamSummary) -> pb.StreamResponse:
    """The last response of a stream."""
    msg = pb.Summary(
        stream_id=stream_id,
        duration_s=summary.duration_s,
        n_onsets=summary.n_onsets,
        n_beats=summary.n_beats,
    )
    if summary.tempo_bpm is not None:
        msg.tempo_bpm = summary.tempo_bpm
    if summary.timing is not None:
        msg.timing.CopyFrom(timing_to_proto(summary.timing))
    return pb.StreamResponse(summary=msg)


def timing_to_proto(report: TimingReport) -> pb.TimingReport:
    """The practice timing report (one definition for every consumer)."""
    msg = pb.TimingReport(
        target_bpm=report.target_bpm,
        grid_start_s=report.grid_start_s,
        subdivision=report.subdivision,
        subdivision_inferred=report.subdivision_inferred,
        latency_ms=report.latency_ms,
        tolerance_ms=report.tolerance_ms,
        notes=[pb.Note(time_s=t, deviation_ms=d) for t, d in report.notes],
        verdict=_VERDICTS.get(report.verdict, pb.VERDICT_UNSPECIFIED),
        mood=_MOODS.get(report.mood, pb.MOOD_UNSPECIFIED),
        meditation=report.meditation,
        points=report.points,
        analysed_s=report.analysed_s,
        metronome_clicks_removed=report.metronome_clicks_removed,
    )
    for name in (
        "accuracy_pct",
        "tempo_bpm_played",
        "tempo_error_pct",
        "steadiness_ms",
        "drift_bpm_per_min",
    ):
        value = getattr(report, name)
        if value is not None:
            setattr(msg, name, value)
    return msg


def analysis_to_proto(result: AnalysisResult) -> pb.AnalyzeRecordingResponse:
    """The response of ``AnalyzeRecording``."""
    msg = pb.AnalyzeRecordingResponse(
        duration_s=result.duration_s,
        sample_rate_hz=result.sr,
        tempo_confidence=result.tempo_confidence,
        beats_s=[float(t) for t in result.beats],
        onsets_s=[float(t) for t in result.onsets],
        tempo_curve=[
            pb.TempoPoint(time_s=float(t), tempo_bpm=float(b)) for t, b in result.tempo_curve
        ],
    )
    if result.tempo_bpm is not None:
        msg.tempo_bpm = result.tempo_bpm
    if result.timing is not None:
        msg.timing.CopyFrom(timing_to_proto(result.timing))
    return msg


# --------------------------------------------------------------------------------------------
# Helpers


def _pcm_samples(
    data: bytes, dtype: np.dtype[np.generic], kind: str, channels: int, frame_bytes: int
) -> NDArray[np.generic]:
    if len(data) % frame_bytes:
        raise ParameterError(
            f"chunk of {len(data)} bytes is not a whole number of {kind} frames "
            f"({channels} channel(s) x {dtype.itemsize} bytes = {frame_bytes} bytes each)"
        )
    samples = np.frombuffer(data, dtype=dtype)
    if kind == "float32":
        finite = np.isfinite(samples)
        if not finite.all():
            first = int(np.argmin(finite))
            raise ParameterError(
                f"chunk holds NaN or infinite float32 samples (first at sample {first}: "
                f"{samples[first]!r})"
            )
    native = samples.astype(dtype.newbyteorder("="), copy=False)
    return native if channels == 1 else native.reshape(-1, channels)


def _frame_to_float32(frame: av.AudioFrame) -> NDArray[np.float32]:
    """One decoded frame (packed or planar, float or int16) as interleaved float32."""
    raw = frame.to_ndarray()  # planar: (channels, n); packed: (1, n * channels)
    channels = frame.layout.nb_channels
    data = raw.T if frame.format.is_planar else raw.reshape(-1, channels)
    out = data.astype(np.float32)  # a copy: the frame's buffer is reused
    if frame.format.packed.name == "s16":
        out /= np.float32(32768.0)
    return out


def _check_id(field: str, value: str) -> str:
    if not value or len(value) > MAX_ID_LENGTH or not value.isprintable() or value != value.strip():
        raise ParameterError(
            f"{field} must be 1-{MAX_ID_LENGTH} printable characters without surrounding "
            f"spaces, got {value[: MAX_ID_LENGTH + 8]!r}"
        )
    return value


def _enum_name(enum: type[pb.Encoding], value: int) -> str:
    try:
        return enum.Name(value)  # type: ignore[arg-type]
    except ValueError:
        return str(value)
