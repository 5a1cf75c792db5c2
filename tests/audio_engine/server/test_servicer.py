"""The Stream and AnalyzeRecording calls (audio_engine/server/servicer.py and streams.py)
against the session's real server: bad input, cancellation and deadlines, resume, hand-off
and end-to-end analysis of synthetic clicks (int16 PCM and Opus)."""

from __future__ import annotations

import asyncio
import io
import uuid
from pathlib import Path

import grpc
import grpc.aio
import numpy as np
import pytest
import soundfile as sf

from mpt_protos.audio.v1 import audio_pb2 as pb
from mpt_protos.audio.v1 import audio_pb2_grpc
from tests._support.signals import click_track
from tests.audio_engine._support.engine import (
    END,
    Engine,
    StreamResult,
    chunks,
    config,
    opus_packets,
    stream_call,
    summaries_for,
    to_int16_bytes,
)

SR = 16000
BPM = 120.0
DURATION_S = 4.0
CLICKS, TRUTH_S = click_track(BPM, DURATION_S, SR)  # clicks at 0.5, 1.0, ... 3.5 s
PCM = to_int16_bytes(CLICKS)
CHUNK_BYTES = 3200  # 0.1 s of 16 kHz int16 mono
ONSET_TOLERANCE_S = 0.03


def _onset_times(result: StreamResult) -> np.ndarray:
    return np.array([o.time_s for o in result.of("onset")])


def _assert_near_truth(found_s: np.ndarray, tolerance_s: float = ONSET_TOLERANCE_S) -> None:
    assert found_s.size == TRUTH_S.size, (found_s, TRUTH_S)
    assert np.max(np.abs(found_s - TRUTH_S)) < tolerance_s, (found_s, TRUTH_S)


def _wait_freed(engine: Engine) -> None:
    engine.wait_until(lambda: engine.counts() == (0, 0), timeout=engine.resume_window_s + 5)
    assert engine.gauge("mpt_engine_streams_active") == 0
    assert engine.gauge("mpt_engine_streams_kept") == 0


# --------------------------------------------------------------------------------------------
# End to end


def test_int16_stream_sent_faster_than_real_time(engine: Engine) -> None:
    session = str(uuid.uuid4())
    requests = [config(sr=SR, target_bpm=BPM, practice_session_id=session), *chunks(PCM), END]

    result = engine.run(stream_call(engine, requests))

    assert result.code == grpc.StatusCode.OK, result.details
    kinds = [r.WhichOneof("response") for r in result.responses]
    assert kinds[0] == "started" and kinds[-1] == "summary"
    assert result.started.stream_id and not result.started.resumed
    _assert_near_truth(_onset_times(result))
    for onset in result.of("onset"):
        assert onset.HasField("deviation_ms")
        assert abs(onset.deviation_ms) < ONSET_TOLERANCE_S * 1000
    tempo = result.of("tempo")
    assert len(tempo) >= 2 * DURATION_S - 1  # about twice per second of audio
    assert tempo[-1].tempo_bpm == pytest.approx(BPM, rel=0.03)
    summary = result.summary
    assert summary.stream_id == result.started.stream_id
    assert summary.duration_s == pytest.approx(DURATION_S, abs=0.01)
    assert summary.n_onsets == TRUTH_S.size
    assert summary.tempo_bpm == pytest.approx(BPM, rel=0.03)
    assert summary.HasField("timing")
    assert summary.timing.target_bpm == BPM
    assert len(summary.timing.notes) == TRUTH_S.size
    assert summary.timing.HasField("accuracy_pct")
    assert summary.timing.verdict != pb.VERDICT_UNSPECIFIED
    _wait_freed(engine)


def test_opus_stream(engine: Engine) -> None:
    clicks48, truth48 = click_track(BPM, DURATION_S, 48000)
    packets = opus_packets(clicks48, 48000)
    requests = [
        config(sr=48000, encoding=pb.ENCODING_OPUS),
        *chunks(packets, numbered=True),
        END,
    ]

    result = engine.run(stream_call(engine, requests))

    assert result.code == grpc.StatusCode.OK, result.details
    # libopus delays the audio by its look-ahead (6.5 ms at 48 kHz): within the tolerance
    _assert_near_truth(_onset_times(result))
    assert result.summary.n_onsets == truth48.size
    assert result.summary.duration_s == pytest.approx(DURATION_S, abs=0.05)
    assert not result.summary.HasField("timing")  # no target tempo


def test_float32_stereo_stream(engine: Engine) -> None:
    stereo = np.stack([CLICKS, CLICKS * 0.5], axis=1).astype("<f4").tobytes()
    requests = [
        config(sr=SR, channels=2, encoding=pb.ENCODING_PCM_F32LE),
        *chunks(stereo, size=8 * 1000),
        END,
    ]

    result = engine.run(stream_call(engine, requests))

    assert result.code == grpc.StatusCode.OK, result.details
    _assert_near_truth(_onset_times(result))


def test_summary_is_handed_to_the_queue_once(engine: Engine) -> None:
    session = str(uuid.uuid4())
    requests = [config(sr=SR, target_bpm=BPM, practice_session_id=session), *chunks(PCM), END]

    result = engine.run(stream_call(engine, requests, metadata=engine.metadata("student-42")))
    assert result.code == grpc.StatusCode.OK, result.details
    stream_id = result.started.stream_id

    (message,) = summaries_for(engine.queue, stream_id, group=f"t-{uuid.uuid4().hex}")
    payload = message.payload
    assert payload["user_id"] == "student-42"
    assert payload["session_id"] == session
    assert payload["stream_id"] == stream_id
    assert payload["event_id"] == message.event_id
    assert payload["summary"]["n_onsets"] == result.summary.n_onsets
    assert payload["summary"]["timing"]["accuracy_pct"] == pytest.approx(
        result.summary.timing.accuracy_pct
    )


def test_stream_without_a_practice_session_publishes_nothing(engine: Engine) -> None:
    result = engine.run(stream_call(engine, [config(sr=SR), *chunks(PCM[: SR * 2]), END]))

    assert result.code == grpc.StatusCode.OK
    assert summaries_for(engine.queue, result.started.stream_id, group=uuid.uuid4().hex) == []


# --------------------------------------------------------------------------------------------
# Bad input: INVALID_ARGUMENT with a clear message, and the other streams carry on


def _bad_requests(engine: Engine, case: str) -> list[pb.StreamRequest]:
    nan = np.zeros(800, dtype="<f4")
    nan[123] = np.nan
    cases = {
        "no config first": [*chunks(PCM[:CHUNK_BYTES])],
        "unsupported sample rate": [config(sr=4000)],
        "unspecified encoding": [config(sr=SR, encoding=pb.ENCODING_UNSPECIFIED)],
        "odd byte count": [config(sr=SR), pb.StreamRequest(chunk=pb.AudioChunk(data=b"\0" * 1001))],
        "nan samples": [
            config(sr=SR, encoding=pb.ENCODING_PCM_F32LE),
            pb.StreamRequest(chunk=pb.AudioChunk(data=nan.tobytes())),
        ],
        "chunk over the limit": [
            config(sr=SR),
            pb.StreamRequest(chunk=pb.AudioChunk(data=b"\0" * (engine.max_chunk_bytes + 2))),
        ],
        "undecodable opus": [
            config(sr=48000, encoding=pb.ENCODING_OPUS),
            pb.StreamRequest(chunk=pb.AudioChunk(data=b"\xff\xfe\x00 not an opus packet")),
        ],
        "second config": [config(sr=SR), config(sr=SR)],
        "target out of range": [config(sr=SR, target_bpm=1000.0)],
        "sequence gap": [
            config(sr=SR),
            *chunks(PCM[: CHUNK_BYTES * 2], numbered=True)[1:],
        ],
    }
    return cases[case]


BAD_CASES = {
    "no config first": "first message of a stream must be a config",
    "unsupported sample rate": "unsupported sample rate 4000 Hz",
    "unspecified encoding": "ENCODING_UNSPECIFIED",
    "odd byte count": "1001 bytes is not a whole number of int16 frames",
    "nan samples": "NaN or infinite float32 samples (first at sample 123",
    "chunk over the limit": "exceeds the limit of 65536 bytes",
    "undecodable opus": "undecodable Opus packet",
    "second config": "got a second one",
    "target out of range": "1000",
    "sequence gap": "chunk sequence 1 skips ahead of the next expected 0",
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_input_is_invalid_argument_and_other_streams_carry_on(
    engine: Engine, case: str
) -> None:
    good_requests = [config(sr=SR), *chunks(PCM), END]

    async def both() -> tuple[StreamResult, StreamResult]:
        good = asyncio.ensure_future(stream_call(engine, good_requests, pace_s=0.005))
        await asyncio.sleep(0.05)  # the good stream is under way
        bad = await stream_call(engine, _bad_requests(engine, case), half_close=False)
        return bad, await good

    bad, good = engine.run(both())

    assert bad.code == grpc.StatusCode.INVALID_ARGUMENT, (bad.code, bad.details)
    assert BAD_CASES[case] in bad.details
    assert good.code == grpc.StatusCode.OK, good.details
    _assert_near_truth(_onset_times(good))
    _wait_freed(engine)


def test_bad_chunk_after_audio_still_publishes_the_practice_summary(engine: Engine) -> None:
    session = str(uuid.uuid4())
    requests = [
        config(sr=SR, practice_session_id=session),
        *chunks(PCM[: CHUNK_BYTES * 10]),
        pb.StreamRequest(chunk=pb.AudioChunk(data=b"\0" * 3)),
    ]

    result = engine.run(stream_call(engine, requests, half_close=False))

    assert result.code == grpc.StatusCode.INVALID_ARGUMENT
    _wait_freed(engine)
    (message,) = summaries_for(engine.queue, result.started.stream_id, group=uuid.uuid4().hex)
    assert message.payload["summary"]["duration_s"] == pytest.approx(1.0, abs=0.01)


# --------------------------------------------------------------------------------------------
# Cancellation, deadlines, resume


async def _open_and_cut(
    engine: Engine, requests: list[pb.StreamRequest], *, sub: str = "student-1"
) -> str:
    """Open a stream, send ``requests`` after the config, wait for their analysis, then
    cancel the call (a network cut); return the stream id."""
    async with grpc.aio.insecure_channel(engine.target) as channel:
        call = audio_pb2_grpc.AudioAnalysisStub(channel).Stream(
            metadata=engine.metadata(sub), timeout=30
        )
        await call.write(requests[0])
        started = await call.read()
        assert started.WhichOneof("response") == "started"
        for request in requests[1:]:
            await call.write(request)
        # wait until the server has taken every chunk (its events come back)
        while engine.server.hub.active and _next_sequence(engine, started.started.stream_id) < (
            len(requests) - 1
        ):
            await asyncio.sleep(0.01)
        call.cancel()
        return str(started.started.stream_id)


def _next_sequence(engine: Engine, stream_id: str) -> int:
    state = engine.server.hub.get(stream_id)  # called on the loop thread
    return -1 if state is None else state.next_sequence


def test_cancelled_stream_frees_its_state(engine: Engine) -> None:
    stream_id = engine.run(_open_and_cut(engine, [config(sr=SR), *chunks(PCM[:32000])]))

    engine.wait_until(lambda: engine.counts()[0] == 0)
    assert engine.gauge("mpt_engine_streams_active") == 0
    _wait_freed(engine)  # dropped after the resume window
    assert stream_id


def test_deadline_expiry_frees_the_stream(engine: Engine) -> None:
    async def scenario() -> grpc.StatusCode:
        async with grpc.aio.insecure_channel(engine.target) as channel:
            call = audio_pb2_grpc.AudioAnalysisStub(channel).Stream(
                metadata=engine.metadata(), timeout=0.5
            )
            try:
                await call.write(config(sr=SR))
                for request in chunks(PCM[:16000]):
                    await call.write(request)
            except grpc.aio.AioRpcError:
                pass  # a slow machine: the deadline came first
            # then nothing: the deadline expires while the server waits for audio
            return await call.code()

    assert engine.run(scenario()) == grpc.StatusCode.DEADLINE_EXCEEDED
    _wait_freed(engine)


def test_resume_within_the_window_yields_exactly_one_summary(engine: Engine) -> None:
    session = str(uuid.uuid4())
    all_chunks = chunks(PCM, numbered=True)
    cut_after = 18  # chunks 0-17 (1.8 s) reach the server before the cut
    stream_id = engine.run(
        _open_and_cut(
            engine,
            [config(sr=SR, target_bpm=BPM, practice_session_id=session), *all_chunks[:cut_after]],
        )
    )
    engine.wait_until(lambda: engine.counts() == (0, 1))

    resume = config(sr=SR, target_bpm=BPM, practice_session_id=session, resume_stream_id=stream_id)
    # the client resends from two chunks before what the server has: those are ignored
    result = engine.run(stream_call(engine, [resume, *all_chunks[cut_after - 2 :], END]))

    assert result.code == grpc.StatusCode.OK, result.details
    started = result.started
    assert started.resumed and started.stream_id == stream_id
    assert started.next_sequence == cut_after
    assert started.received_bytes == cut_after * CHUNK_BYTES
    assert started.audio_s == pytest.approx(cut_after * 0.1)
    summary = result.summary
    assert summary.duration_s == pytest.approx(DURATION_S, abs=0.01)  # no audio twice
    assert summary.n_onsets == TRUTH_S.size
    assert [o.time_s for o in result.of("onset")] == sorted(o.time_s for o in result.of("onset"))
    _wait_freed(engine)
    assert engine.gauge("mpt_engine_duplicate_chunks_total") >= 2
    (message,) = summaries_for(engine.queue, stream_id, group=uuid.uuid4().hex)
    assert message.payload["summary"]["n_onsets"] == TRUTH_S.size


async def _hold_then_resume(
    engine: Engine, session: str, all_chunks: list[pb.StreamRequest], cut_after: int
) -> tuple[tuple[grpc.StatusCode, str, int], StreamResult]:
    """Open a stream and send ``cut_after`` chunks on a call that then just stays open (the
    server has not noticed a cut), resume it on a second call with the rest; return the old
    call's (status, details, responses read) and the new call's result."""
    async with grpc.aio.insecure_channel(engine.target) as channel:
        old = audio_pb2_grpc.AudioAnalysisStub(channel).Stream(
            metadata=engine.metadata(), timeout=30
        )
        await old.write(config(sr=SR, target_bpm=BPM, practice_session_id=session))
        started = await old.read()
        stream_id = started.started.stream_id
        for request in all_chunks[:cut_after]:
            await old.write(request)
        while _next_sequence(engine, stream_id) < cut_after:
            await asyncio.sleep(0.01)

        async def drain_old() -> tuple[grpc.StatusCode, str, int]:
            n = 0
            try:
                while await old.read() is not grpc.aio.EOF:
                    n += 1
            except grpc.aio.AioRpcError as exc:
                return exc.code(), exc.details() or "", n
            return await old.code(), await old.details() or "", n

        old_reader = asyncio.ensure_future(drain_old())
        resume = config(
            sr=SR, target_bpm=BPM, practice_session_id=session, resume_stream_id=stream_id
        )
        new = await stream_call(engine, [resume, *all_chunks[cut_after - 1 :], END])
        return await asyncio.wait_for(old_reader, 10), new


def test_resume_takes_over_a_stream_still_held_by_its_old_call(engine: Engine) -> None:
    """The client saw the connection die, the server did not: the resume takes the stream
    from the old call (which ends with ABORTED), carries on where the audio stopped, and the
    session still gets exactly one summary."""
    session = str(uuid.uuid4())
    all_chunks = chunks(PCM, numbered=True)
    taken_before = engine.gauge("mpt_engine_streams_total", kind="taken_over") or 0.0

    (old_code, old_details, _), result = engine.run(
        _hold_then_resume(engine, session, all_chunks, cut_after=18)
    )

    assert old_code == grpc.StatusCode.ABORTED
    assert "resumed by a newer call" in old_details
    assert result.code == grpc.StatusCode.OK, result.details
    started = result.started
    assert started.resumed and started.next_sequence == 18
    assert result.summary.duration_s == pytest.approx(DURATION_S, abs=0.01)
    assert result.summary.n_onsets == TRUTH_S.size
    assert engine.gauge("mpt_engine_streams_total", kind="taken_over") == taken_before + 1
    _wait_freed(engine)
    (message,) = summaries_for(engine.queue, started.stream_id, group=uuid.uuid4().hex)
    assert message.payload["summary"]["n_onsets"] == TRUTH_S.size


def test_requests_ending_without_end_of_stream_are_a_cut_that_resumes(engine: Engine) -> None:
    """A reset connection can reach the server as a clean half-close: only EndOfStream ends a
    stream, so the half-closed call ends with ABORTED and the stream is kept for a resume."""
    session = str(uuid.uuid4())
    all_chunks = chunks(PCM, numbered=True)
    first = config(sr=SR, target_bpm=BPM, practice_session_id=session)

    cut = engine.run(stream_call(engine, [first, *all_chunks[:15]], half_close=True))

    assert cut.code == grpc.StatusCode.ABORTED
    assert "ended without EndOfStream" in cut.details
    assert cut.of("summary") == []
    stream_id = cut.started.stream_id
    resume = config(sr=SR, target_bpm=BPM, practice_session_id=session, resume_stream_id=stream_id)
    result = engine.run(stream_call(engine, [resume, *all_chunks[15:], END]))
    assert result.code == grpc.StatusCode.OK, result.details
    assert result.started.next_sequence == 15
    assert result.summary.duration_s == pytest.approx(DURATION_S, abs=0.01)
    _wait_freed(engine)
    (message,) = summaries_for(engine.queue, stream_id, group=uuid.uuid4().hex)
    assert message.payload["summary"]["duration_s"] == pytest.approx(DURATION_S, abs=0.01)


def test_stream_not_resumed_is_summarised_once_after_the_window(engine: Engine) -> None:
    session = str(uuid.uuid4())
    stream_id = engine.run(
        _open_and_cut(
            engine,
            [config(sr=SR, practice_session_id=session), *chunks(PCM[:32000], numbered=True)],
        )
    )
    _wait_freed(engine)

    (message,) = summaries_for(engine.queue, stream_id, group=uuid.uuid4().hex)
    assert message.payload["summary"]["duration_s"] == pytest.approx(1.0, abs=0.01)
    late = engine.run(
        stream_call(engine, [config(sr=SR, resume_stream_id=stream_id)], half_close=False)
    )
    assert late.code == grpc.StatusCode.NOT_FOUND
    assert stream_id in late.details


def test_resume_by_another_user_is_denied(engine: Engine) -> None:
    stream_id = engine.run(
        _open_and_cut(engine, [config(sr=SR), *chunks(PCM[:6400], numbered=True)], sub="owner")
    )
    engine.wait_until(lambda: engine.counts() == (0, 1))

    other = engine.run(
        stream_call(
            engine,
            [config(sr=SR, resume_stream_id=stream_id)],
            metadata=engine.metadata("someone-else"),
            half_close=False,
        )
    )
    changed = engine.run(
        stream_call(
            engine,
            [config(sr=48000, resume_stream_id=stream_id)],
            metadata=engine.metadata("owner"),
            half_close=False,
        )
    )

    assert other.code == grpc.StatusCode.PERMISSION_DENIED
    assert changed.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "must keep its audio format" in changed.details
    _wait_freed(engine)


def test_unknown_resume_id_is_not_found(engine: Engine) -> None:
    result = engine.run(
        stream_call(engine, [config(sr=SR, resume_stream_id="nope")], half_close=False)
    )

    assert result.code == grpc.StatusCode.NOT_FOUND
    assert "'nope'" in result.details


# --------------------------------------------------------------------------------------------
# AnalyzeRecording


async def _analyze(
    engine: Engine, request: pb.AnalyzeRecordingRequest
) -> pb.AnalyzeRecordingResponse:
    async with grpc.aio.insecure_channel(engine.target) as channel:
        stub = audio_pb2_grpc.AudioAnalysisStub(channel)
        return await stub.AnalyzeRecording(request, metadata=engine.metadata(), timeout=30)


def test_analyze_recording_pcm(engine: Engine) -> None:
    """A student's clicks, 5 ms of human jitter (clicks on every line within a millisecond
    of it, and nothing else, are a metronome heard alone, which leaves no note)."""
    played, truth_s = click_track(BPM, DURATION_S, SR, jitter_ms=5.0, seed=3)
    request = pb.AnalyzeRecordingRequest(
        pcm=pb.PcmAudio(
            sample_rate_hz=SR, channels=1, encoding=pb.ENCODING_PCM_S16LE,
            data=to_int16_bytes(played),
        ),
        target_bpm=BPM,
    )

    response = engine.run(_analyze(engine, request))

    assert response.duration_s == pytest.approx(DURATION_S)
    assert response.sample_rate_hz == SR
    onsets_s = np.array(response.onsets_s)
    assert onsets_s.size == truth_s.size
    assert np.max(np.abs(onsets_s - truth_s)) < ONSET_TOLERANCE_S
    assert response.tempo_bpm == pytest.approx(BPM, rel=0.03)
    assert response.HasField("timing") and len(response.timing.notes) == truth_s.size
    assert response.timing.metronome_clicks_removed == 0


def test_analyze_recording_file(engine: Engine) -> None:
    buffer = io.BytesIO()
    sf.write(buffer, CLICKS, SR, format="FLAC")
    request = pb.AnalyzeRecordingRequest(file=buffer.getvalue())

    response = engine.run(_analyze(engine, request))

    _assert_near_truth(np.array(response.onsets_s))
    assert not response.HasField("timing")


def test_analyze_recording_file_is_the_engines_analysis_of_its_samples(
    engine: Engine, tmp_path: Path
) -> None:
    # a 96 kHz stereo file, decoded straight to the working rate (a quarter of the memory)
    from audio_engine import analyze, load_audio

    path = tmp_path / "take.flac"
    stereo = np.stack([CLICKS, 0.5 * CLICKS], axis=1)
    sf.write(path, np.repeat(stereo, 96000 // SR, axis=0), 96000)
    request = pb.AnalyzeRecordingRequest(file=path.read_bytes(), target_bpm=BPM)

    response = engine.run(_analyze(engine, request))

    samples, sr = load_audio(path, mono=True)
    want = analyze(samples, sr, target_bpm=BPM)
    assert response.sample_rate_hz == 96000
    assert len(response.onsets_s) >= 5
    np.testing.assert_array_equal(np.array(response.onsets_s), want.onsets)
    np.testing.assert_array_equal(np.array(response.beats_s), want.beats)
    assert want.timing is not None  # a metronome alone: its clicks are no notes
    assert response.timing.metronome_clicks_removed == want.timing.metronome_clicks_removed > 0


def _wav_bytes(sr: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(sr // 10, np.float32), sr, format="WAV")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (pb.AnalyzeRecordingRequest(file=b"not audio at all" * 10), "cannot decode the recording"),
        (pb.AnalyzeRecordingRequest(file=_wav_bytes(192000)), "from 8000 to 96000 Hz, got 192000"),
        (pb.AnalyzeRecordingRequest(), "carries no audio"),
        (
            pb.AnalyzeRecordingRequest(
                pcm=pb.PcmAudio(
                    sample_rate_hz=SR, channels=1, encoding=pb.ENCODING_OPUS, data=b"\0\0"
                )
            ),
            "send encoded audio as a file",
        ),
    ],
)
def test_analyze_recording_bad_input(
    engine: Engine, request_: pb.AnalyzeRecordingRequest, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        engine.run(_analyze(engine, request_))

    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (info.value.details() or "")
