"""Write real compressed audio and video files with PyAV's encoders (for decoder tests)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from numpy.typing import NDArray

__all__ = ["write_audio_pyav", "write_video_only"]

_CHUNK = 1024


def write_audio_pyav(
    path: Path,
    samples: NDArray[np.float32],
    sr: int,
    *,
    codec: str,
    video: bool = False,
    extra_audio: NDArray[np.float32] | None = None,
) -> Path:
    """Encode ``samples`` (shape (n,) or (n, channels), float32) into ``path`` with ``codec``.

    The container is chosen from the file name (``.mp3``, ``.m4a``, ``.opus``, ``.mp4``,
    ``.mkv`` ...). ``video=True`` adds a small mpeg4 video stream *before* the audio stream;
    ``extra_audio`` adds a second audio stream after the first.
    """
    with av.open(str(path), mode="w") as out:
        if video:
            vstream = _add_video(out, seconds=samples.shape[0] / sr)
        streams = [(_add_audio(out, codec, sr, _channels(samples)), samples)]
        if extra_audio is not None:
            streams.append((_add_audio(out, codec, sr, _channels(extra_audio)), extra_audio))
        if video:
            _encode_video(out, vstream, seconds=samples.shape[0] / sr)
        for stream, data in streams:
            _encode_audio(out, stream, data, sr)
    return path


def write_video_only(path: Path, seconds: float = 1.0) -> Path:
    """Write a short mpeg4 video without any audio stream."""
    with av.open(str(path), mode="w") as out:
        stream = _add_video(out, seconds)
        _encode_video(out, stream, seconds)
    return path


def _channels(samples: NDArray[np.float32]) -> int:
    return 1 if samples.ndim == 1 else int(samples.shape[1])


def _add_audio(
    out: av.container.OutputContainer, codec: str, sr: int, channels: int
) -> av.AudioStream:
    stream = out.add_stream(codec, rate=sr)
    assert isinstance(stream, av.AudioStream)
    stream.layout = "mono" if channels == 1 else "stereo" if channels == 2 else f"{channels}c"
    return stream


def _encode_audio(
    out: av.container.OutputContainer, stream: av.AudioStream, samples: NDArray[np.float32], sr: int
) -> None:
    formats = stream.codec_context.codec.audio_formats
    assert formats, f"encoder {stream.codec_context.name} lists no sample formats"
    fmt = formats[0]
    data = samples.reshape(samples.shape[0], -1)  # (n, channels)
    layout = stream.layout.name
    for start in range(0, data.shape[0], _CHUNK):
        chunk = data[start : start + _CHUNK]
        if fmt.name.startswith("s16"):
            chunk = np.clip(np.round(chunk * 32767.0), -32768, 32767).astype(np.int16)
        elif fmt.name.startswith("s32"):
            chunk = np.round(chunk.astype(np.float64) * 2147483647.0).astype(np.int32)
        arr = np.ascontiguousarray(chunk.T if fmt.is_planar else chunk.reshape(1, -1))
        frame = av.AudioFrame.from_ndarray(arr, format=fmt.name, layout=layout)
        frame.sample_rate = sr
        frame.pts = start
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


def _add_video(out: av.container.OutputContainer, seconds: float) -> av.VideoStream:
    stream = out.add_stream("mpeg4", rate=10)
    assert isinstance(stream, av.VideoStream)
    stream.width = 64
    stream.height = 48
    stream.pix_fmt = "yuv420p"
    return stream


def _encode_video(
    out: av.container.OutputContainer, stream: av.VideoStream, seconds: float
) -> None:
    for i in range(max(1, round(seconds * 10))):
        img = np.full((48, 64, 3), (i * 20) % 256, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = i
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
