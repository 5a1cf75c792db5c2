"""Tests of audio_engine/io.py: real files of every supported kind, and every failure."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from numpy.typing import NDArray

from audio_engine.errors import AudioDecodeError
from audio_engine.io import load_audio
from tests._support.media import write_audio_pyav, write_video_only
from tests._support.signals import sine

SR = 44100


def dominant_hz(x: NDArray[np.float32], sr: int) -> float:
    """Frequency (Hz) of the strongest FFT bin, to within one bin."""
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(x.size)))
    return float(np.argmax(spectrum) * sr / x.size)


def stereo(sr: int = SR, seconds: float = 1.0) -> NDArray[np.float32]:
    """Left 440 Hz, right 880 Hz: a wrong channel order or interleaving shows up at once."""
    return np.stack([sine(440.0, seconds, sr), sine(880.0, seconds, sr, amplitude=0.3)], axis=1)


# --- libsndfile formats -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "subtype", "atol"),
    [
        (".wav", "PCM_16", 1 / 32768 + 1e-6),
        (".wav", "PCM_24", 1e-6),
        (".wav", "PCM_32", 1e-6),
        (".wav", "FLOAT", 0.0),
        (".flac", "PCM_16", 1 / 32768 + 1e-6),
    ],
)
def test_lossless_files_round_trip(tmp_path: Path, suffix: str, subtype: str, atol: float) -> None:
    x = sine(440.0, 0.5, SR)
    path = tmp_path / f"tone{suffix}"
    sf.write(path, x, SR, subtype=subtype)

    samples, sr = load_audio(path)

    assert sr == SR
    assert samples.dtype == np.float32
    assert samples.shape == x.shape
    np.testing.assert_allclose(samples, x, atol=atol)


def test_int16_wav_is_scaled_to_unit_range(tmp_path: Path) -> None:
    raw = np.array([0, 16384, -32768, 32767], dtype=np.int16)
    path = tmp_path / "ints.wav"
    sf.write(path, raw, 8000, subtype="PCM_16")

    samples, _ = load_audio(path)

    np.testing.assert_allclose(samples, [0.0, 0.5, -1.0, 32767 / 32768], atol=1e-7)


def test_ogg_vorbis(tmp_path: Path) -> None:
    path = tmp_path / "tone.ogg"
    sf.write(path, sine(440.0, 1.0, SR), SR, format="OGG", subtype="VORBIS")

    samples, sr = load_audio(path)

    assert sr == SR
    assert samples.ndim == 1
    assert abs(samples.shape[0] - SR) < 0.01 * SR
    assert dominant_hz(samples, sr) == pytest.approx(440.0, abs=2.0)


def test_multichannel_wav_keeps_channels_in_order(tmp_path: Path) -> None:
    x = np.stack([sine(440.0, 0.5, SR), sine(880.0, 0.5, SR), np.zeros(SR // 2, np.float32)], 1)
    path = tmp_path / "three.wav"
    sf.write(path, x, SR, subtype="FLOAT")

    samples, sr = load_audio(path)

    assert sr == SR
    assert samples.shape == (SR // 2, 3)
    np.testing.assert_array_equal(samples, x)


def test_progress_reports_decoded_and_total_seconds(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(5 * 8000, np.float32), 8000)
    calls: list[tuple[float, float | None]] = []

    load_audio(path, progress=lambda done, total: calls.append((done, total)))

    assert calls[-1] == (5.0, 5.0)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


@pytest.mark.parametrize(
    ("name", "channels"), [("six.wav", 6), ("eight.flac", 8), ("stereo.ogg", 2), ("mono.wav", 1)]
)
def test_mono_mixes_down_while_decoding_as_the_engine_does(
    tmp_path: Path, name: str, channels: int
) -> None:
    from audio_engine.dsp.signal import to_mono_float32

    rng = np.random.default_rng(channels)
    n = 3 * (1 << 16) + 123  # several decoding blocks and a part of one
    path = tmp_path / name
    sf.write(path, rng.uniform(-0.5, 0.5, (n, channels)).astype(np.float32), SR)

    whole, sr = load_audio(path)
    mixed, mixed_sr = load_audio(path, mono=True)

    assert mixed_sr == sr == SR
    assert mixed.shape == (n,)
    np.testing.assert_array_equal(mixed, to_mono_float32(whole))


@pytest.mark.parametrize(("name", "codec"), [("five.m4a", "aac"), ("stereo.mp3", "libmp3lame")])
def test_mono_mixes_down_compressed_files_as_the_engine_does(
    tmp_path: Path, name: str, codec: str
) -> None:
    from audio_engine.dsp.signal import to_mono_float32

    channels = 5 if name.startswith("five") else 2
    tones = np.stack([sine(220.0 * (c + 1), 2.0, SR) for c in range(channels)], axis=1)
    path = write_audio_pyav(tmp_path / name, 0.3 * tones.astype(np.float32), SR, codec=codec)

    whole, _ = load_audio(path)
    mixed, _ = load_audio(path, mono=True)

    assert whole.shape[1] == channels
    np.testing.assert_array_equal(mixed, to_mono_float32(whole))


def test_mono_holds_one_channel_of_a_long_multichannel_file(tmp_path: Path) -> None:
    """An hour of 96 kHz six-channel audio is 8.3 GB as float32: mixed down while decoding,
    what is held is the mono signal and one block, not every channel."""
    import tracemalloc

    n = 20 * 48000
    path = tmp_path / "six.wav"
    sf.write(path, np.zeros((n, 6), np.float32), 48000, subtype="PCM_16")
    every_channel = n * 6 * 4
    load_audio(path, mono=True)  # whatever loads on first use, loaded beforehand
    tracemalloc.start()
    try:
        mixed, _ = load_audio(path, mono=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert mixed.shape == (n,)
    assert peak < 0.3 * every_channel


# --- FFmpeg formats (written with PyAV's encoders) -------------------------------------


@pytest.mark.parametrize(
    ("name", "codec", "sr"),
    [("tone.mp3", "libmp3lame", SR), ("tone.m4a", "aac", SR), ("tone.opus", "libopus", 48000)],
)
def test_compressed_mono(tmp_path: Path, name: str, codec: str, sr: int) -> None:
    path = write_audio_pyav(tmp_path / name, sine(440.0, 1.0, sr), sr, codec=codec)

    samples, got_sr = load_audio(path)

    assert got_sr == sr
    assert samples.dtype == np.float32
    assert samples.ndim == 1
    assert abs(samples.shape[0] - sr) < 0.1 * sr  # encoder delay and padding
    assert dominant_hz(samples, sr) == pytest.approx(440.0, abs=2.0)
    middle = samples[sr // 4 : 3 * sr // 4].astype(np.float64)
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.1)  # scaling


def test_stereo_aac_is_interleaved_correctly(tmp_path: Path) -> None:
    # AAC decodes to planar float (fltp): channels must come out as columns, not mixed up.
    path = write_audio_pyav(tmp_path / "stereo.m4a", stereo(), SR, codec="aac")

    samples, sr = load_audio(path)

    assert samples.ndim == 2
    assert samples.shape[1] == 2
    assert dominant_hz(samples[:, 0], sr) == pytest.approx(440.0, abs=2.0)
    assert dominant_hz(samples[:, 1], sr) == pytest.approx(880.0, abs=2.0)


def test_stereo_mp3_s16_planar_decoder_path(tmp_path: Path) -> None:
    path = write_audio_pyav(tmp_path / "stereo.mp3", stereo(), SR, codec="libmp3lame")

    samples, sr = load_audio(path)

    assert samples.shape[1] == 2
    assert dominant_hz(samples[:, 0], sr) == pytest.approx(440.0, abs=2.0)
    assert dominant_hz(samples[:, 1], sr) == pytest.approx(880.0, abs=2.0)


def test_audio_track_of_a_video(tmp_path: Path) -> None:
    path = write_audio_pyav(tmp_path / "clip.mp4", stereo(), SR, codec="aac", video=True)

    samples, sr = load_audio(path)

    assert sr == SR
    assert samples.shape[1] == 2
    assert dominant_hz(samples[:, 0], sr) == pytest.approx(440.0, abs=2.0)


def test_first_of_several_audio_streams_is_used(tmp_path: Path) -> None:
    path = write_audio_pyav(
        tmp_path / "two.mkv",
        sine(440.0, 1.0, SR),
        SR,
        codec="aac",
        video=True,
        extra_audio=sine(880.0, 1.0, SR),
    )

    samples, sr = load_audio(path)

    assert dominant_hz(samples, sr) == pytest.approx(440.0, abs=2.0)


def test_pyav_progress_is_called(tmp_path: Path) -> None:
    path = write_audio_pyav(tmp_path / "tone.m4a", sine(440.0, 1.0, SR), SR, codec="aac")
    calls: list[tuple[float, float | None]] = []

    load_audio(path, progress=lambda done, total: calls.append((done, total)))

    assert calls
    assert calls[-1][0] == pytest.approx(1.0, abs=0.1)
    assert calls[-1][1] == pytest.approx(1.0, abs=0.1)


# --- failures -----------------------------------------------------------------------------


def assert_decode_error(path: Path, *reason: str) -> None:
    with pytest.raises(AudioDecodeError) as info:
        load_audio(path)
    message = str(info.value)
    assert str(path) in message
    for word in reason:
        assert word in message


def test_missing_file(tmp_path: Path) -> None:
    assert_decode_error(tmp_path / "nope.wav", "no such file")


def test_directory(tmp_path: Path) -> None:
    assert_decode_error(tmp_path, "directory")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    path.touch()
    assert_decode_error(path, "empty")


def test_wav_with_zero_samples(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    sf.write(path, np.zeros(0, np.float32), SR)
    assert_decode_error(path, "no audio samples")


@pytest.mark.parametrize("name", ["garbage.wav", "garbage.mp3", "garbage.bin"])
def test_random_bytes(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert_decode_error(path, "not a readable audio file")


def test_wav_with_broken_header(tmp_path: Path) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x00" * 8)
    assert_decode_error(path, "not a readable audio file")


def test_damaged_mp3s_say_nothing_on_stderr_but_the_error(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    # libsndfile probes any file it does not know as MPEG, and mpg123 then writes its own
    # complaints ("Trying to resync...", "Xing stream size off...") to the process's fd 2
    full = write_audio_pyav(tmp_path / "full.mp3", sine(440.0, 3.0, SR), SR, codec="libmp3lame")
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    zeros = tmp_path / "zeros.mp3"
    zeros.write_bytes(bytes(4096))

    samples, sr = load_audio(cut)  # what was uploaded before the cut
    assert_decode_error(zeros, "not a readable audio file")

    assert sr == SR
    assert 0.5 * SR < samples.shape[0] < 1.5 * SR
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    ("name", "magic"),
    [
        ("riff.wav", b"RIFF\x00\x00\x00\x00WAVE"),
        ("rf64.wav", b"RF64\xff\xff\xff\xffWAVE"),
        ("form.aiff", b"FORM\x00\x00\x00\x00AIFC"),
        ("file.flac", b"fLaC"),
        ("file.ogg", b"OggS"),
        ("file.au", b".snd"),
        ("file.caf", b"caff"),
        ("file.w64", b"riff\x2e\x91\xcf\x11\xa5\xd6\x28\xdb\x04\xc1\x00\x00"),
    ],
)
def test_libsndfiles_own_containers_are_known_by_their_first_bytes(name: str, magic: bytes) -> None:
    from audio_engine.io import _libsndfile_container

    assert _libsndfile_container((magic + bytes(16))[:16])


@pytest.mark.parametrize(
    "magic",
    [b"RIFF\x00\x00\x00\x00AVI LIST", b"ID3\x04", b"\xff\xfb\x90\x64", b"\x00\x00\x00\x20ftypM4A ",
     b"\x1aE\xdf\xa3", b"FORM\x00\x00\x00\x008SVX"],
    ids=["avi", "mp3-id3", "mp3-sync", "m4a", "matroska", "iff-8svx"],
)  # fmt: skip
def test_other_files_go_to_ffmpeg(magic: bytes) -> None:
    from audio_engine.io import _libsndfile_container

    assert not _libsndfile_container((magic + bytes(16))[:16])


def test_truncated_compressed_file_is_an_error_or_shorter(tmp_path: Path) -> None:
    # A truncated m4a loses its index (moov atom at the end): it must fail cleanly.
    full = write_audio_pyav(tmp_path / "full.m4a", sine(440.0, 1.0, SR), SR, codec="aac")
    cut = tmp_path / "cut.m4a"
    cut.write_bytes(full.read_bytes()[:200])
    assert_decode_error(cut)


def test_video_without_audio(tmp_path: Path) -> None:
    path = write_video_only(tmp_path / "silent_film.mp4")
    assert_decode_error(path, "no audio stream")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "secret.wav"
    sf.write(path, sine(440.0, 0.1, SR), SR)
    path.chmod(0)
    try:
        assert_decode_error(path, "ermission")
    finally:
        path.chmod(0o600)


# --- sample format conversion -------------------------------------------------------------

_FORMATS = ["dbl", "flt", "s16", "s32", "u8"]


def encode_samples(fmt: str, x: NDArray[np.float64]) -> NDArray[Any]:
    """Float samples in [-1, 1] as FFmpeg stores them in sample format ``fmt``."""
    if fmt == "u8":
        return np.round(x * 128 + 128).clip(0, 255).astype(np.uint8)
    if fmt == "s16":
        return np.round(x * 32768).clip(-32768, 32767).astype(np.int16)
    if fmt == "s32":
        return np.round(x * 2.0**31).clip(-(2.0**31), 2.0**31 - 1).astype(np.int32)
    return x.astype(np.float32 if fmt == "flt" else np.float64)


@pytest.mark.parametrize("planar", [False, True], ids=["packed", "planar"])
@pytest.mark.parametrize("fmt", _FORMATS)
def test_frame_conversion_every_sample_format(fmt: str, planar: bool) -> None:
    import av

    from audio_engine.io import _frame_to_float32

    expected = np.array([[0.0, 0.5], [-0.5, 0.25], [0.75, -1.0]], dtype=np.float64)  # (n, ch)
    raw = encode_samples(fmt, expected)
    arr = raw.T.copy() if planar else raw.reshape(1, -1)
    frame = av.AudioFrame.from_ndarray(arr, format=fmt + ("p" if planar else ""), layout="stereo")

    got = _frame_to_float32(frame)

    assert got.dtype == np.float32
    assert got.shape == (3, 2)
    np.testing.assert_allclose(got, expected, atol=1 / 128 if fmt == "u8" else 1e-6)


def test_a_flac_file_loads_without_importing_pyav(tmp_path: Path) -> None:
    """PyAV (0.3 s of `mpt analyze`'s start-up) is imported only for what soundfile cannot
    read: a fresh interpreter that loads a FLAC file has not imported it."""
    import subprocess
    import sys

    path = tmp_path / "tone.flac"
    sf.write(path, sine(440.0, 0.5, 16000), 16000)
    code = (
        "import sys; from audio_engine.io import load_audio; "
        f"y, sr = load_audio({str(path)!r}); print(sr, y.shape[0], 'av' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["16000", "8000", "False"]


# --- load_prepared: decoded straight to the working rate -------------------------------


def prepared_the_long_way(path: Path, target_sr: int) -> tuple[NDArray[np.float32], float]:
    from audio_engine.dsp.signal import prepare_signal

    samples, sr = load_audio(path, mono=True)
    return prepare_signal(samples, sr, target_sr=target_sr)


@pytest.mark.parametrize(
    ("name", "sr", "channels"),
    [
        ("cd.wav", 44100, 1),  # factor 2, several decoding blocks
        ("hi.flac", 96000, 2),  # factor 4
        ("six.wav", 48000, 6),
        ("phone.wav", 8000, 1),  # factor 1: passed through
        ("odd.flac", 22050, 3),
    ],
)
def test_prepared_signal_is_the_engines_own_decimation_of_the_file(
    tmp_path: Path, name: str, sr: int, channels: int
) -> None:
    from audio_engine.io import load_prepared

    rng = np.random.default_rng(sr + channels)
    n = 2 * (1 << 16) + 777 if sr >= 44100 else 12345
    path = tmp_path / name
    sf.write(path, rng.uniform(-0.7, 0.7, (n, channels)).astype(np.float32), sr)

    got = load_prepared(path, target_sr=20000)
    y, work_sr = prepared_the_long_way(path, 20000)

    assert (got.sr, got.n_samples, got.work_sr) == (sr, n, work_sr)
    assert got.duration_s == n / sr
    assert got.y.dtype == np.float32 and got.y.flags.c_contiguous
    np.testing.assert_array_equal(got.y, y)  # bit for bit, whatever the blocks


@pytest.mark.parametrize(("name", "codec"), [("stereo.mp3", "libmp3lame"), ("five.m4a", "aac")])
def test_prepared_signal_of_compressed_files(tmp_path: Path, name: str, codec: str) -> None:
    from audio_engine.io import load_prepared

    channels = 5 if name.startswith("five") else 2
    tones = np.stack([sine(220.0 * (c + 1), 3.0, 48000) for c in range(channels)], axis=1)
    path = write_audio_pyav(tmp_path / name, 0.3 * tones.astype(np.float32), 48000, codec=codec)

    got = load_prepared(path, target_sr=20000)
    y, work_sr = prepared_the_long_way(path, 20000)

    assert got.work_sr == work_sr == 24000.0
    np.testing.assert_array_equal(got.y, y)


def test_prepared_signal_never_holds_the_file_at_its_own_rate(tmp_path: Path) -> None:
    """A 96 kHz stereo file is decimated by four while it is decoded: what is held is the
    signal at 24 kHz and a block, less than the mono signal at 96 kHz would take."""
    import tracemalloc

    from audio_engine.io import load_prepared

    n = 30 * 96000
    path = tmp_path / "hi.wav"
    rng = np.random.default_rng(0)
    sf.write(path, rng.uniform(-0.5, 0.5, (n, 2)).astype(np.float32), 96000, subtype="PCM_16")
    mono_at_96k = n * 4
    load_prepared(path, target_sr=20000)  # whatever loads on first use, loaded beforehand
    tracemalloc.start()
    try:
        got = load_prepared(path, target_sr=20000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got.y.shape == (n // 4,)
    assert peak < 0.5 * mono_at_96k


@pytest.mark.parametrize("sr", [4000, 192000])
def test_prepared_signal_refuses_a_rate_the_engine_cannot_take_before_decoding(
    tmp_path: Path, sr: int
) -> None:
    from audio_engine.errors import ParameterError
    from audio_engine.io import load_prepared

    path = tmp_path / "rate.wav"
    sf.write(path, np.zeros(sr, np.float32), sr)
    calls: list[float] = []
    with pytest.raises(ParameterError, match=f"from 8000 to 96000 Hz, got {sr}"):
        load_prepared(path, target_sr=20000, progress=lambda done, total: calls.append(done))
    assert calls == []  # said before a block was decoded


def test_prepared_signal_names_the_first_nan_sample(tmp_path: Path) -> None:
    from audio_engine.errors import ParameterError
    from audio_engine.io import load_prepared

    x = np.zeros((100_000, 2), np.float32)
    x[70_001, 1] = np.nan  # in the second decoding block
    path = tmp_path / "nan.wav"
    sf.write(path, x, 44100, subtype="FLOAT")
    with pytest.raises(ParameterError, match="NaN or infinite values \\(first at index 70001\\)"):
        load_prepared(path, target_sr=20000)


def test_prepared_signal_of_an_empty_or_broken_file_is_a_decode_error(tmp_path: Path) -> None:
    from audio_engine.io import load_prepared

    empty = tmp_path / "none.wav"
    sf.write(empty, np.zeros((0, 1), np.float32), 44100)
    with pytest.raises(AudioDecodeError, match="holds no audio samples"):
        load_prepared(empty, target_sr=20000)
    junk = tmp_path / "junk.flac"
    junk.write_bytes(b"fLaC" + os.urandom(4000))
    with pytest.raises(AudioDecodeError, match=r"junk\.flac"):
        load_prepared(junk, target_sr=20000)
