"""Authentication when a call opens, and errors mapped to status codes
(audio_engine/server/interceptors.py), against the session's real server."""

from __future__ import annotations

import asyncio
import time

import grpc
import grpc.aio
import numpy as np
import pytest

from audio_engine.errors import ParameterError
from audio_engine.server.errors import StreamBusyError, StreamOwnerError, StreamTakenOverError
from audio_engine.server.interceptors import status_for
from mpt.errors import TokenError
from mpt_protos.audio.v1 import audio_pb2 as pb
from mpt_protos.audio.v1 import audio_pb2_grpc
from tests.audio_engine._support.engine import (
    END,
    Engine,
    chunks,
    config,
    stream_call,
    to_int16_bytes,
)

SR = 16000
AUDIO = to_int16_bytes(np.zeros(SR // 2, dtype=np.float32))


def _bad_metadata(engine: Engine, case: str) -> tuple[tuple[str, str], ...]:
    if case == "missing":
        return ()
    if case == "not bearer":
        return (("authorization", f"Basic {engine.token()}"),)
    if case == "malformed":
        return (("authorization", "Bearer not.a.jwt"),)
    if case == "wrong audience":
        return (("authorization", f"Bearer {engine.token(audience='mpt-api')}"),)
    if case == "expired":
        return (("authorization", f"Bearer {engine.token(ttl_s=60, now=time.time() - 3600)}"),)
    raise AssertionError(case)


CASES = ["missing", "not bearer", "malformed", "wrong audience", "expired"]


@pytest.mark.parametrize("case", CASES)
def test_stream_without_a_valid_token_is_unauthenticated(engine: Engine, case: str) -> None:
    metadata = _bad_metadata(engine, case)
    # nothing is sent: the token is checked when the call opens, and a client write racing
    # the server's refusal is reported as INTERNAL by grpc.aio (grpc/grpc#36066)
    result = engine.run(stream_call(engine, [], metadata=metadata, half_close=False))

    assert result.code == grpc.StatusCode.UNAUTHENTICATED, result.details
    assert result.responses == []  # not even StreamStarted
    assert "token" in result.details or "authorization" in result.details
    assert engine.counts() == (0, 0)


@pytest.mark.parametrize("case", CASES)
def test_analyze_recording_without_a_valid_token_is_unauthenticated(
    engine: Engine, case: str
) -> None:
    async def call() -> grpc.StatusCode:
        async with grpc.aio.insecure_channel(engine.target) as channel:
            stub = audio_pb2_grpc.AudioAnalysisStub(channel)
            request = pb.AnalyzeRecordingRequest(
                pcm=pb.PcmAudio(
                    sample_rate_hz=SR, channels=1, encoding=pb.ENCODING_PCM_S16LE, data=AUDIO
                )
            )
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.AnalyzeRecording(request, metadata=_bad_metadata(engine, case))
            return info.value.code()

    assert engine.run(call()) == grpc.StatusCode.UNAUTHENTICATED


def test_token_expiring_during_the_stream_does_not_cut_it(engine: Engine) -> None:
    token = engine.token(ttl_s=1.0)  # exp within 2 s; the server allows no leeway here
    metadata = (("authorization", f"Bearer {token}"),)
    expires_at = time.time() + 2.0

    async def slow_requests() -> list[pb.StreamRequest]:
        return [config(sr=SR), *chunks(AUDIO)]

    async def scenario() -> None:
        async with grpc.aio.insecure_channel(engine.target) as channel:
            stub = audio_pb2_grpc.AudioAnalysisStub(channel)
            call = stub.Stream(metadata=metadata, timeout=30)
            for request in await slow_requests():
                await call.write(request)
            await asyncio.sleep(max(0.0, expires_at - time.time()) + 0.5)
            for request in chunks(AUDIO):  # after the token expired
                await call.write(request)
            await call.write(END)
            await call.done_writing()
            responses = [r async for r in call]
            assert await call.code() == grpc.StatusCode.OK
            assert responses[-1].WhichOneof("response") == "summary"
            assert responses[-1].summary.duration_s == pytest.approx(1.0, abs=0.01)

    engine.run(scenario())
    # the same token now opens nothing
    late = engine.run(stream_call(engine, [config(sr=SR)], metadata=metadata, half_close=False))
    assert late.code == grpc.StatusCode.UNAUTHENTICATED
    assert "expired" in late.details


def test_health_and_reflection_need_no_token(engine: Engine) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    async def check() -> int:
        async with grpc.aio.insecure_channel(engine.target) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="")
            )
            return reply.status

    assert engine.run(check()) == 1  # SERVING


def test_status_mapping() -> None:
    assert status_for(ParameterError("bad x")) == (grpc.StatusCode.INVALID_ARGUMENT, "bad x")
    assert status_for(TokenError("no"))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert status_for(StreamOwnerError("theirs"))[0] == grpc.StatusCode.PERMISSION_DENIED
    assert status_for(StreamTakenOverError("moved"))[0] == grpc.StatusCode.ABORTED
    assert status_for(StreamBusyError("held"))[0] == grpc.StatusCode.FAILED_PRECONDITION
    assert status_for(RuntimeError("secret detail")) == (
        grpc.StatusCode.INTERNAL,
        "internal error",
    )
