"""Protobuf ⇄ domain conversions (audio_engine/server/convert.py)."""

from __future__ import annotations

import numpy as np
import pytest

from audio_engine.errors import ParameterError
from audio_engine.events import BeatEvent, OnsetEvent, StreamSummary, TempoEvent, WarningEvent
from audio_engine.server import convert
from mpt_protos.audio.v1 import audio_pb2 as pb
from tests._support.signals import sine
from tests.audio_engine._support.engine import opus_packets


def _setup(**fields: object) -> convert.StreamSetup:
    fields.setdefault("sample_rate_hz", 16000)
    fields.setdefault("channels", 1)
    fields.setdefault("encoding", pb.ENCODING_PCM_S16LE)
    return convert.stream_setup_from_proto(pb.StreamConfig(**fields))  # type: ignore[arg-type]


def test_config_optional_fields_absent_differ_from_zero() -> None:
    absent = _setup()
    zero = _setup(target_bpm=0.0, subdivision=0, practice_session_id="s1")

    assert absent.config.target_bpm is None and absent.config.subdivision is None
    assert absent.practice_session_id is None and absent.resume_stream_id is None
    assert zero.config.target_bpm == 0.0 and zero.config.subdivision == 0
    assert zero.practice_session_id == "s1"


def test_opus_streams_are_analysed_at_48_khz() -> None:
    setup = _setup(sample_rate_hz=16000, channels=2, encoding=pb.ENCODING_OPUS)

    assert setup.input_sr == 16000
    assert setup.config.sr == 48000 and setup.config.channels == 2


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"encoding": pb.ENCODING_UNSPECIFIED}, "got ENCODING_UNSPECIFIED"),
        ({"encoding": 42}, "got 42"),
        ({"sample_rate_hz": 7999}, "unsupported sample rate 7999 Hz"),
        ({"sample_rate_hz": 96001}, "unsupported sample rate 96001 Hz"),
        ({"sample_rate_hz": 44100, "encoding": pb.ENCODING_OPUS}, "44100 Hz for Opus"),
        ({"channels": 0}, "config.channels must be 1-8, got 0"),
        ({"channels": 3, "encoding": pb.ENCODING_OPUS, "sample_rate_hz": 48000}, "1 or 2"),
        ({"practice_session_id": ""}, "config.practice_session_id"),
        ({"resume_stream_id": "x" * 200}, "config.resume_stream_id"),
    ],
)
def test_bad_config_names_the_value(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ParameterError, match=message):
        _setup(**fields)


def test_pcm_int16_frames() -> None:
    decoder = convert.make_decoder(_setup(channels=2))
    data = np.array([[1, -1], [2, -2], [3, -3]], dtype="<i2").tobytes()

    samples = decoder.decode(data)

    assert samples.dtype == np.int16 and samples.shape == (3, 2)
    assert samples[:, 1].tolist() == [-1, -2, -3]
    assert decoder.decode(b"").shape == (0, 2)
    with pytest.raises(ParameterError, match=r"10 bytes is not a whole number of int16 frames"):
        decoder.decode(b"\0" * 10)


def test_pcm_float32_rejects_nan_and_infinity() -> None:
    decoder = convert.make_decoder(_setup(encoding=pb.ENCODING_PCM_F32LE))
    good = np.linspace(-1, 1, 8, dtype="<f4")
    bad = good.copy()
    bad[5] = np.inf

    assert np.array_equal(decoder.decode(good.tobytes()), good)
    with pytest.raises(ParameterError, match=r"first at sample 5: .*inf"):
        decoder.decode(bad.tobytes())
    with pytest.raises(ParameterError, match="not a whole number of float32 frames"):
        decoder.decode(b"\0" * 6)


def test_opus_packets_decode_to_the_signal() -> None:
    tone = sine(440.0, 1.0, 48000, amplitude=0.5)
    decoder = convert.make_decoder(_setup(sample_rate_hz=48000, encoding=pb.ENCODING_OPUS))

    decoded = np.concatenate([decoder.decode(p) for p in opus_packets(tone)])

    assert decoded.dtype == np.float32 and decoded.ndim == 1
    assert decoded.size >= tone.size
    rms = float(np.sqrt(np.mean(decoded[4800:43200] ** 2)))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.1)
    assert decoder.decode(b"").size == 0  # an empty chunk carries nothing
    with pytest.raises(ParameterError, match=r"undecodable Opus packet #\d+ \(5 bytes\)"):
        decoder.decode(b"\xff\xfe\x00\x01\x02")


def test_events_to_proto_keep_absent_apart_from_zero() -> None:
    onset = convert.event_to_proto(OnsetEvent(time_s=1.5, strength=2.0)).onset
    on_grid = convert.event_to_proto(OnsetEvent(time_s=1.5, strength=2.0, deviation_ms=0.0))
    tempo = convert.event_to_proto(
        TempoEvent(
            time_s=2.0, bpm=None, confidence=0.0, accuracy_pct=None, mood=None, meditation=False
        )
    ).tempo
    happy = convert.event_to_proto(
        TempoEvent(
            time_s=2.0, bpm=120.0, confidence=0.9, accuracy_pct=0.0, mood="happy", meditation=True
        )
    ).tempo
    beat = convert.event_to_proto(BeatEvent(time_s=0.5, bpm=120.0)).beat
    warning = convert.event_to_proto(WarningEvent(time_s=3.0, code="clipping", message="m")).warning

    assert not onset.HasField("deviation_ms")
    assert on_grid.onset.HasField("deviation_ms") and on_grid.onset.deviation_ms == 0.0
    assert not tempo.HasField("tempo_bpm") and tempo.mood == pb.MOOD_UNSPECIFIED
    assert (
        happy.tempo_bpm == 120.0 and happy.HasField("accuracy_pct") and happy.mood == pb.MOOD_HAPPY
    )
    assert (beat.time_s, beat.tempo_bpm) == (0.5, 120.0)
    assert warning.code == pb.WARNING_CODE_CLIPPING and warning.message == "m"


def test_summary_without_a_target_has_no_timing() -> None:
    summary = StreamSummary(duration_s=3.0, tempo_bpm=None, n_onsets=0, n_beats=0, timing=None)

    msg = convert.summary_to_proto("abc", summary).summary

    assert msg.stream_id == "abc" and msg.duration_s == 3.0
    assert not msg.HasField("tempo_bpm") and not msg.HasField("timing")
