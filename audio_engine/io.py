"""Decode audio files into float32 sample arrays.

WAV, FLAC, OGG and the other containers libsndfile reads natively go through ``soundfile``
(told apart by their first bytes, :func:`_libsndfile_container`); everything else (MP3,
M4A/AAC, Opus in its own containers, the audio track of a video) is decoded with PyAV as a
generator stage inside ``with av.open(...)``. libsndfile is not asked to probe the rest: it
would try its MPEG decoder on any unknown file, and mpg123 writes its complaints about a
corrupt or truncated MP3 straight to the process's stderr. Both decoders hand blocks to a
sink: :func:`load_audio` keeps the file's sample rate and its channels, unless ``mono=True``
asks for the engine's mixdown while decoding, block by block, so that a long multichannel
file is never held whole; :func:`load_prepared` also decimates each block to the engine's
working rate (:class:`~audio_engine.dsp.signal.Decimator`), so the analysis of a file never
holds it at its own rate.

Every failure — missing file, a directory, no read permission, a corrupt or empty file, a
container without an audio stream — raises :class:`~audio_engine.errors.AudioDecodeError`
whose message names the path and the reason.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np
import soundfile as sf
from numpy.typing import NDArray

from audio_engine.errors import AudioDecodeError

if TYPE_CHECKING:  # PyAV is imported when a file needs it (0.3 s that a WAV/FLAC need not pay)
    import av

    # numba's kernels (0.3-0.6 s to import) only where the file is decimated: a client that
    # streams a file to the engine decodes it with load_audio and needs none
    from audio_engine.dsp.signal import Decimator, PreparedSignal

_S = TypeVar("_S", bound="_Sink")

__all__ = ["ProgressCallback", "load_audio", "load_prepared"]

ProgressCallback = Callable[[float, float | None], None]
"""Called as ``progress(decoded_s, total_s)`` while decoding; ``total_s`` is None if unknown."""

# Suffixes whose files libsndfile decodes itself; for these its error message is the one
# reported when both decoders fail (FFmpeg's "Invalid data found" says less).
_SOUNDFILE_SUFFIXES = frozenset(
    {
        ".wav",
        ".wave",
        ".flac",
        ".ogg",
        ".oga",
        ".aif",
        ".aiff",
        ".aifc",
        ".au",
        ".caf",
        ".w64",
        ".rf64",
    }
)
# The first bytes of the containers libsndfile reads itself: a RIFF/RIFX/RF64/BW64 WAVE,
# a FORM AIFF/AIFC, FLAC, Ogg, Sun/NeXT .au (either byte order), CAF and Sony Wave64.
_TAGGED_MAGIC = {b"RIFF": b"WAVE", b"RIFX": b"WAVE", b"RF64": b"WAVE", b"BW64": b"WAVE",
                 b"FORM": (b"AIFF", b"AIFC")}  # fmt: skip
_PLAIN_MAGIC = (b"fLaC", b"OggS", b".snd", b"dns.", b"caff")
_W64_MAGIC = b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb\x04\xc1\x00\x00"
_HEAD_BYTES = 16
_BLOCK_FRAMES = 1 << 16

# Integer sample formats and the divisor that maps them to [-1, 1).
_INT_SCALE = {"s16": 32768.0, "s32": 2147483648.0, "s64": 9223372036854775808.0}


def load_audio(
    path: str | os.PathLike[str],
    *,
    progress: ProgressCallback | None = None,
    mono: bool = False,
) -> tuple[NDArray[np.float32], int]:
    """Decode an audio or video file into float32 samples at the file's own sample rate.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read: WAV, FLAC, OGG (libsndfile), or MP3, M4A/AAC, Opus, and the first
        audio stream of a video or multi-stream container (PyAV/FFmpeg).
    progress : callable, optional
        ``progress(decoded_s, total_s)`` is called after each decoded block with the seconds
        decoded so far and the total length in seconds (None when the container does not
        say).
    mono : bool, default False
        Mix the channels down while decoding: each block's channel mean, the same float32
        values the engine's own mixdown gives (:func:`audio_engine.dsp.signal.to_mono_float32`),
        holding one channel of the file in memory instead of all of them.

    Returns
    -------
    samples : ndarray of float32, shape (n,) or (n, channels)
        Samples in [-1, 1]; one dimension for mono files, ``(n, channels)`` otherwise.
    sr : int
        Sample rate in Hz.

    Raises
    ------
    AudioDecodeError
        The file is missing, a directory, unreadable, corrupt, holds no audio stream or no
        samples. The message names the path and the reason.
    """
    samples, sr = _decode(Path(path), lambda: _Samples(mono), progress).result()
    if samples.shape[1] == 1:
        return np.ascontiguousarray(samples[:, 0]), sr
    return samples, sr


def load_prepared(
    path: str | os.PathLike[str],
    *,
    target_sr: int,
    progress: ProgressCallback | None = None,
) -> PreparedSignal:
    """Decode a file straight into the signal the analysis works on: mixed down and
    decimated block by block as it is decoded, with the values
    :func:`audio_engine.dsp.signal.prepare_signal` gives for the whole file (so
    ``analyze_prepared(load_prepared(path, ...))`` is ``analyze(*load_audio(path), ...)``),
    never holding the file at its own rate: an hour of 44.1 kHz audio holds 0.32 GB of
    float32 samples instead of 0.64 (of 96 kHz stereo, 0.35 GB instead of 1.4 or 2.8).

    Parameters
    ----------
    path : str or os.PathLike
        The file to read (see :func:`load_audio`).
    target_sr : int
        The working rate asked for (:attr:`audio_engine.params.SpectrogramParams.target_sr`).
    progress : callable, optional
        As for :func:`load_audio`.

    Raises
    ------
    AudioDecodeError
        As :func:`load_audio`.
    ParameterError
        The file's sample rate is outside 8-96 kHz (said before decoding it), or a sample is
        NaN or infinite.
    """
    return _decode(Path(path), lambda: _Prepared(target_sr), progress).result()


def _decode(file: Path, new_sink: Callable[[], _S], progress: ProgressCallback | None) -> _S:
    """Decode ``file`` into a sink: libsndfile for its own containers, else PyAV (into a new
    sink, when libsndfile failed part of the way)."""
    head = _check_readable(file)
    sf_reason: str | None = None
    if _libsndfile_container(head):
        sink = new_sink()
        try:
            _read_with_soundfile(file, sink, progress)
        except sf.LibsndfileError as exc:  # a damaged header, or Ogg with a video stream
            sf_reason = exc.error_string
        else:
            return _check_decoded(file, sink)
    sink = new_sink()
    try:
        _read_with_pyav(file, sink, progress)
    except _UnrecognisedFileError as exc:
        reason = sf_reason if sf_reason and file.suffix.lower() in _SOUNDFILE_SUFFIXES else None
        raise AudioDecodeError(
            f"cannot decode {str(file)!r}: not a readable audio file ({reason or exc.reason})"
        ) from exc
    return _check_decoded(file, sink)


class _Sink(Protocol):
    """Where a decoder puts the blocks it decodes."""

    n_frames: int
    sr: int

    def begin(self, sr: int, channels: int, frames_hint: int | None) -> None:
        """Called once, before the first block: the stream's format and, when the container
        says, its length in frames (exact for libsndfile, estimated by FFmpeg)."""

    def add(self, block: NDArray[np.float32]) -> None:
        """Take the next block, ``(n, channels)`` float32 (its buffer is reused afterwards:
        the sink copies what it keeps)."""


class _Samples:
    """The file's samples at its own rate (mixed down as they come, with ``mono``)."""

    def __init__(self, mono: bool) -> None:
        self._mono = mono
        self._mixing = False
        self._out = _Growing(0)  # sized by begin()
        self.n_frames = 0
        self.sr = 0

    def begin(self, sr: int, channels: int, frames_hint: int | None) -> None:
        self.sr = sr
        self._mixing = self._mono and channels > 1
        self._out = _Growing(frames_hint, 1 if self._mixing else channels)

    def add(self, block: NDArray[np.float32]) -> None:
        self._out.append(_mixdown(block) if self._mixing else block)
        self.n_frames += block.shape[0]

    def result(self) -> tuple[NDArray[np.float32], int]:
        return self._out.array(), self.sr


class _Prepared:
    """The signal at the working rate (:class:`~audio_engine.dsp.signal.PreparedSignal`)."""

    def __init__(self, target_sr: int) -> None:
        self._target_sr = target_sr
        self._decimator: Decimator | None = None
        self._out = _Growing(0)  # sized by begin()
        self.n_frames = 0
        self.sr = 0

    def begin(self, sr: int, channels: int, frames_hint: int | None) -> None:
        from audio_engine.dsp.signal import Decimator, check_sr

        self.sr = check_sr(sr)  # before decoding a file the engine cannot take
        self._decimator = Decimator.of(self.sr, self._target_sr)
        factor = self._decimator.factor
        self._out = _Growing(None if frames_hint is None else -(-frames_hint // factor) + 1)

    def add(self, block: NDArray[np.float32]) -> None:
        from audio_engine.dsp.signal import check_finite

        assert self._decimator is not None
        mono = _mixdown(block)[:, 0] if block.shape[1] > 1 else block[:, 0]
        check_finite(mono, self.n_frames)
        self._out.append(self._decimator.push(mono))
        self.n_frames += block.shape[0]

    def result(self) -> PreparedSignal:
        from audio_engine.dsp.signal import PreparedSignal

        assert self._decimator is not None
        self._out.append(self._decimator.finish())
        y = np.ascontiguousarray(self._out.array().reshape(-1))
        return PreparedSignal(y, self.sr / self._decimator.factor, self.sr, self.n_frames)


class _Growing:
    """A float32 array ``(n, columns)`` appended to block by block: sized from a hint when
    there is one (no copy at the end when it was right), else doubled as it fills."""

    def __init__(self, hint: int | None = None, columns: int = 1) -> None:
        self._buf = np.empty((_BLOCK_FRAMES if hint is None else max(hint, 0), columns),
                             dtype=np.float32)
        self._n = 0

    def append(self, block: NDArray[np.float32]) -> None:
        rows = block.reshape(block.shape[0], -1)
        end = self._n + rows.shape[0]
        if end > self._buf.shape[0]:
            grown = np.empty((max(end, 2 * self._buf.shape[0]), self._buf.shape[1]), np.float32)
            grown[: self._n] = self._buf[: self._n]
            self._buf = grown
        self._buf[self._n : end] = rows
        self._n = end

    def array(self) -> NDArray[np.float32]:
        """The rows appended (a copy only when the buffer is much larger than them)."""
        if self._buf.shape[0] - self._n > self._n // 8:
            return self._buf[: self._n].copy()
        return self._buf[: self._n]


class _UnrecognisedFileError(Exception):
    """PyAV could not open the file at all (as opposed to failing inside a known stream)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _libsndfile_container(head: bytes) -> bool:
    """Whether a file's first bytes ``head`` are those of a container libsndfile reads."""
    tag = _TAGGED_MAGIC.get(head[:4])
    if tag is not None:
        return head[8:12] in (tag if isinstance(tag, tuple) else (tag,))
    return head[:4] in _PLAIN_MAGIC or head == _W64_MAGIC


def _check_readable(file: Path) -> bytes:
    """The first bytes of ``file``; AudioDecodeError for a path that cannot hold audio."""
    try:
        st = file.stat()
    except FileNotFoundError:
        raise AudioDecodeError(f"cannot read {str(file)!r}: no such file") from None
    except OSError as exc:
        raise AudioDecodeError(f"cannot read {str(file)!r}: {exc.strerror or exc}") from None
    if file.is_dir():
        raise AudioDecodeError(f"cannot read {str(file)!r}: is a directory, not an audio file")
    if st.st_size == 0:
        raise AudioDecodeError(f"cannot decode {str(file)!r}: file is empty (0 bytes)")
    try:
        with file.open("rb") as fh:
            return fh.read(_HEAD_BYTES)
    except OSError as exc:
        raise AudioDecodeError(f"cannot read {str(file)!r}: {exc.strerror or exc}") from None


def _check_decoded(file: Path, sink: _S) -> _S:
    """``sink``, unless the decode was empty."""
    if sink.n_frames == 0:
        raise AudioDecodeError(f"cannot decode {str(file)!r}: the file holds no audio samples")
    if sink.sr <= 0:
        raise AudioDecodeError(f"cannot decode {str(file)!r}: invalid sample rate {sink.sr} Hz")
    return sink


def _mixdown(block: NDArray[np.float32]) -> NDArray[np.float32]:
    """A block ``(n, channels)`` as ``(n, 1)``: each frame's channel mean, in float32 as
    :func:`audio_engine.dsp.signal.to_mono_float32` computes it (row by row, so the same
    values whatever the block; C order, as the whole array it mixes has)."""
    mixed: NDArray[np.float32] = np.ascontiguousarray(block).mean(
        axis=1, dtype=np.float32, keepdims=True
    )
    return mixed


def _read_with_soundfile(file: Path, sink: _Sink, progress: ProgressCallback | None) -> None:
    """Read with libsndfile, a block at a time."""
    with sf.SoundFile(file) as snd:
        sr = int(snd.samplerate)
        total = max(int(snd.frames), 0)
        sink.begin(sr, snd.channels, total)
        block = np.empty((min(_BLOCK_FRAMES, total), snd.channels), np.float32)
        pos = 0
        while pos < total:
            n = min(_BLOCK_FRAMES, total - pos)
            got = snd.read(n, dtype="float32", always_2d=True, out=block[:n])
            if len(got) == 0:
                break  # header promised more frames than the file holds
            sink.add(got)
            pos += len(got)
            if progress is not None:
                progress(pos / sr, total / sr)


def _read_with_pyav(file: Path, sink: _Sink, progress: ProgressCallback | None) -> None:
    """Decode the first audio stream with PyAV, its frames gathered into blocks of about
    ``_BLOCK_FRAMES``; raises _UnrecognisedFileError if it cannot open."""
    import av
    import av.error

    try:
        container = av.open(str(file), mode="r")
    except av.error.FFmpegError as exc:
        raise _UnrecognisedFileError(exc.strerror or str(exc)) from exc
    with container:
        if not container.streams.audio:
            kinds = ", ".join(sorted({s.type for s in container.streams})) or "no streams"
            raise AudioDecodeError(f"cannot decode {str(file)!r}: no audio stream ({kinds})")
        stream = container.streams.audio[0]
        total_s: float | None = None
        if stream.duration is not None and stream.time_base is not None:
            total_s = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            total_s = container.duration / av.time_base
        gathered: list[NDArray[np.float32]] = []
        n_gathered = 0
        sr = 0
        channels = 0
        n = 0
        try:
            for block, block_sr in _decode_frames(container, stream):
                if sr == 0:
                    sr, channels = block_sr, block.shape[1]
                    hint = None if total_s is None else math.ceil(total_s * sr) + sr
                    sink.begin(sr, channels, hint)
                elif block_sr != sr or block.shape[1] != channels:
                    raise AudioDecodeError(
                        f"cannot decode {str(file)!r}: stream format changes at {n / sr:.3f} s "
                        f"({channels} ch {sr} Hz -> {block.shape[1]} ch {block_sr} Hz)"
                    )
                gathered.append(block)
                n_gathered += block.shape[0]
                n += block.shape[0]
                if n_gathered >= _BLOCK_FRAMES:
                    sink.add(np.concatenate(gathered, axis=0))
                    gathered, n_gathered = [], 0
                if progress is not None:
                    progress(n / sr, total_s)
        except av.error.FFmpegError as exc:
            at = f" at {n / sr:.3f} s" if sr else ""
            raise AudioDecodeError(
                f"cannot decode {str(file)!r}: corrupt audio data{at} ({exc.strerror or exc})"
            ) from exc
    if gathered:
        sink.add(np.concatenate(gathered, axis=0))


def _decode_frames(
    container: av.container.InputContainer, stream: av.AudioStream
) -> Iterator[tuple[NDArray[np.float32], int]]:
    """Yield ``(samples (n, channels) float32, sr)`` for each decoded frame of ``stream``."""
    for frame in container.decode(stream):
        if frame.samples:
            yield _frame_to_float32(frame), int(frame.sample_rate)


def _frame_to_float32(frame: av.AudioFrame) -> NDArray[np.float32]:
    """Convert one frame (any planar or packed sample format) to interleaved float32."""
    fmt = frame.format
    channels = frame.layout.nb_channels
    raw = frame.to_ndarray()  # planar: (channels, n); packed: (1, n * channels)
    data = raw.T if fmt.is_planar else raw.reshape(-1, channels)
    base = fmt.packed.name
    out = data.astype(np.float32)  # always a copy: the frame's buffer is reused
    if base == "u8":
        out -= 128.0
        out /= 128.0
    elif base in _INT_SCALE:
        out /= np.float32(_INT_SCALE[base])
    return out
