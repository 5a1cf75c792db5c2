"""The server as deployed (audio_engine/server/main.py): health and reflection, Prometheus
metrics, several worker processes on one port, and a graceful stop on SIGTERM that lets a
live stream finish with its summary."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import grpc.aio
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from audio_engine.server.main import SERVICE_NAME
from mpt.queue import open_queue
from mpt.settings import Settings
from mpt.tokens import ensure_keypair, load_private_key, sign_token
from mpt_protos.audio.v1 import audio_pb2 as pb
from mpt_protos.audio.v1 import audio_pb2_grpc
from tests._support.signals import click_track
from tests.audio_engine._support.engine import (
    END,
    Engine,
    LoopThread,
    chunks,
    config,
    summaries_for,
    to_int16_bytes,
)

ROOT = Path(__file__).resolve().parents[3]
SR = 16000


def test_health_serves_the_engine(engine: Engine) -> None:
    async def check(service: str) -> int:
        async with grpc.aio.insecure_channel(engine.target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
            return int(reply.status)

    assert engine.run(check("")) == health_pb2.HealthCheckResponse.SERVING
    assert engine.run(check(SERVICE_NAME)) == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_and_describes_the_service(engine: Engine) -> None:
    async def ask() -> tuple[set[str], bytes]:
        async with grpc.aio.insecure_channel(engine.target) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            requests = [
                reflection_pb2.ServerReflectionRequest(list_services=""),
                reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME),
            ]
            replies = [r async for r in stub.ServerReflectionInfo(iter(requests))]
            names = {s.name for s in replies[0].list_services_response.service}
            return names, replies[1].file_descriptor_response.file_descriptor_proto[0]

    names, descriptor = engine.run(ask())

    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names
    assert b"AnalyzeRecording" in descriptor


# --------------------------------------------------------------------------------------------
# A server process, as `python -m audio_engine.server` runs it


@pytest.fixture
def server_process(
    tmp_path: Path,
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, int], Path]]:
    data_dir = tmp_path / "data"
    ready = tmp_path / "ready.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPT_")}
    env.update(
        MPT_DATA_DIR=str(data_dir),
        MPT_ENGINE__SHUTDOWN_GRACE_S="10",
        MPT_ENGINE__ANALYSIS_THREADS="2",
        PYTHONPATH=str(ROOT),
    )
    ensure_keypair(data_dir)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "audio_engine.server",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--metrics-port",
            "0",
            "--workers",
            "2",
            "--ready-file",
            str(ready),
        ],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                # bounded: a worker left running would hold stderr open for ever
                _, err = proc.communicate(timeout=30)
                raise AssertionError(f"server did not start: {err.decode()[-3000:]}")
            time.sleep(0.05)
        yield proc, json.loads(ready.read_text()), data_dir
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_workers_share_a_port_resume_anywhere_and_sigterm_lets_a_live_stream_finish(
    aio: LoopThread, server_process: tuple[subprocess.Popen[bytes], dict[str, int], Path]
) -> None:
    proc, addresses, data_dir = server_process
    target = f"127.0.0.1:{addresses['port']}"
    key = load_private_key(ensure_keypair(data_dir).private_key)
    token = sign_token(key, sub="student-7", role="student", audience="mpt-engine", ttl_s=600)
    metadata = (("authorization", f"Bearer {token}"),)
    clicks, truth = click_track(120.0, 3.0, SR)
    session = str(uuid.uuid4())

    async def healthy_connections() -> int:
        ok = 0
        for _ in range(6):  # separate connections, spread over the workers by the kernel
            async with grpc.aio.insecure_channel(target) as channel:
                reply = await health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=SERVICE_NAME), timeout=10
                )
                ok += reply.status == health_pb2.HealthCheckResponse.SERVING
        return ok

    assert aio.run(healthy_connections()) == 6

    async def resumed_across_connections() -> tuple[float, int, int]:
        """A stream cut five times, each resume on a new connection (so on either worker),
        the client resending from the ``next_sequence`` the server reports."""
        pcm = chunks(to_int16_bytes(clicks), numbered=True)
        stream_id, resumed = None, 0
        for _ in range(5):
            async with grpc.aio.insecure_channel(target) as channel:
                call = audio_pb2_grpc.AudioAnalysisStub(channel).Stream(
                    metadata=metadata, timeout=30
                )
                await call.write(config(sr=SR, target_bpm=120.0, resume_stream_id=stream_id))
                started = (await call.read()).started
                stream_id, resumed = started.stream_id, resumed + started.resumed
                for request in pcm[started.next_sequence : started.next_sequence + 6]:
                    await call.write(request)
                await asyncio.sleep(0.3)  # some of it analysed; then the network drops
                call.cancel()
            await asyncio.sleep(0.2)
        async with grpc.aio.insecure_channel(target) as channel:
            call = audio_pb2_grpc.AudioAnalysisStub(channel).Stream(metadata=metadata, timeout=30)
            await call.write(config(sr=SR, target_bpm=120.0, resume_stream_id=stream_id))
            started = (await call.read()).started
            for request in [*pcm[started.next_sequence :], END]:
                await call.write(request)
            await call.done_writing()
            summary = None
            while (response := await call.read()) is not grpc.aio.EOF:
                if response.WhichOneof("response") == "summary":
                    summary = response.summary
            assert summary is not None, await call.details()
            return summary.duration_s, summary.n_onsets, resumed + started.resumed

    duration_s, n_onsets, resumed = aio.run(resumed_across_connections())
    assert resumed == 5
    assert duration_s == pytest.approx(3.0, abs=0.01)  # every chunk once, whichever worker
    assert n_onsets == truth.size

    async def live_stream_through_sigterm() -> tuple[list[str], grpc.StatusCode, str]:
        async with grpc.aio.insecure_channel(target) as channel:
            call = audio_pb2_grpc.AudioAnalysisStub(channel).Stream(metadata=metadata, timeout=60)
            await call.write(config(sr=SR, target_bpm=120.0, practice_session_id=session))
            started = await call.read()
            for request in chunks(to_int16_bytes(clicks)):
                await call.write(request)
            kinds = ["started"]
            while kinds.count("onset") < truth.size:  # all of it analysed (not a wall-clock
                response = await call.read()  # guess: a loaded machine takes its time)
                assert response is not grpc.aio.EOF, await call.details()
                kinds.append(response.WhichOneof("response"))
            proc.send_signal(signal.SIGTERM)  # no EndOfStream: the server ends the stream
            while (response := await call.read()) is not grpc.aio.EOF:
                assert isinstance(response, pb.StreamResponse)
                kinds.append(response.WhichOneof("response"))
                if kinds[-1] == "summary":
                    assert response.summary.stream_id == started.started.stream_id
                    assert response.summary.n_onsets == truth.size
            return kinds, await call.code(), started.started.stream_id

    kinds, code, stream_id = aio.run(live_stream_through_sigterm())

    assert code == grpc.StatusCode.OK
    assert kinds[-1] == "summary"
    assert proc.wait(30) == 0
    queue = open_queue(Settings(_env_file=None, data_dir=data_dir))  # type: ignore[call-arg]
    try:
        (message,) = summaries_for(queue, stream_id, group="t")
        assert message.payload["user_id"] == "student-7"
        assert message.payload["session_id"] == session
    finally:
        queue.close()


def test_metrics_endpoint_aggregates_the_workers(
    aio: LoopThread, server_process: tuple[subprocess.Popen[bytes], dict[str, int], Path]
) -> None:
    proc, addresses, data_dir = server_process
    key = load_private_key(ensure_keypair(data_dir).private_key)
    token = sign_token(key, sub="s", role="student", audience="mpt-engine", ttl_s=600)

    async def streams(n: int) -> None:
        for _ in range(n):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{addresses['port']}") as channel:
                call = audio_pb2_grpc.AudioAnalysisStub(channel).Stream(
                    metadata=(("authorization", f"Bearer {token}"),), timeout=30
                )
                await call.write(config(sr=SR))
                await call.write(chunks(to_int16_bytes(np.zeros(SR, np.float32)), 32000)[0])
                await call.write(END)
                await call.done_writing()
                assert [r async for r in call][-1].WhichOneof("response") == "summary"

    aio.run(streams(4))
    url = f"http://127.0.0.1:{addresses['metrics_port']}/metrics"
    text = urllib.request.urlopen(url, timeout=10).read().decode()

    samples = {
        line.split(" ")[0]: float(line.split(" ")[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert samples['mpt_engine_streams_total{kind="new"}'] == 4
    assert samples["mpt_engine_chunks_total"] == 4
    assert samples["mpt_engine_streams_active"] == 0
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
