"""Tests of ``mpt stream`` (mpt/cli.py, mpt/stream_client.py, mpt/stream_view.py) against a
real ``mpt up`` started once for the module on port 0, with short synthetic takes.

Most runs call ``main([...])`` in this process; the JSON stream and Ctrl-C run the real
command in a child process. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from rich.console import Console

from mpt.cli import main
from mpt.errors import AudioInputError
from mpt.stream_client import FileSource, microphone_source
from mpt.stream_view import LiveView, deviation_style
from tests._support.proxy import CuttableProxy
from tests._support.signals import grid_times, tone_notes
from tests.mpt._support.processes import Child, child_env
from tests.mpt._support.supervised import read_until, stop_gracefully

SR = 22050
BPM = 120.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``mpt up`` on free ports: (the engine's address, the data directory)."""
    root = tmp_path_factory.mktemp("up")
    data_dir = root / "data"
    child = Child(
        ["-m", "mpt.cli", "up", "--port", "0", "--metrics-port", "off", "--data-dir",
         str(data_dir)],
        env=child_env({"MPT_ENGINE__SHUTDOWN_GRACE_S": "3"}),
        cwd=root,
    )  # fmt: skip
    try:
        found = read_until(child, r"^engine\s+gRPC (127\.0\.0\.1:\d+) \(pid \d+\)$")
        yield found.group(1), data_dir
        child.proc.send_signal(signal.SIGINT)
        assert child.finish(timeout_s=30) == 0
    finally:
        stop_gracefully(child)


@pytest.fixture(scope="module")
def take(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 s of plucked eighth notes at 120 BPM, a few ms off the grid, stereo."""
    onsets = grid_times(2 * BPM, 3.0, start_s=0.5, jitter_ms=8.0, seed=3)
    mono = tone_notes(onsets, 3.0, SR)
    path = tmp_path_factory.mktemp("take") / "take.wav"
    sf.write(path, np.stack([mono, 0.5 * mono], axis=1), SR)
    return path


def stream_args(cluster: tuple[str, Path], *extra: str) -> list[str]:
    address, data_dir = cluster
    return ["stream", *extra, "--server", address, "--data-dir", str(data_dir)]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mpt: error: ")
    assert "Traceback" not in err
    return lines[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --------------------------------------------------------------------------------------------
# Against the engine


def test_json_stream_gives_onset_events_and_the_summary_last(
    cluster: tuple[str, Path], take: Path, tmp_path: Path
) -> None:
    args = stream_args(cluster, str(take), "--target-bpm", "120", "--subdivision", "2",
                       "--grid-start", "0.5", "--speed", "0", "--json")  # fmt: skip
    child = Child(["-m", "mpt.cli", *args], env=child_env({}), cwd=tmp_path)
    try:
        events = []
        while not events or events[-1]["type"] != "summary":
            events.append(json.loads(child.read_line(timeout_s=30)))
        assert child.finish(timeout_s=10) == 0
    finally:
        child.close()

    assert events[0]["type"] == "started" and events[0]["stream_id"]
    onsets = [e for e in events if e["type"] == "onset"]
    assert len(onsets) >= 8
    assert all(abs(e["deviation_ms"]) < 40 for e in onsets if not e["is_metronome"])
    assert any(e["type"] == "tempo" and e["tempo_bpm"] is not None for e in events)
    summary = events[-1]
    assert summary["stream_id"] == events[0]["stream_id"]
    assert summary["duration_s"] == pytest.approx(3.0, abs=0.01)
    assert summary["n_onsets"] >= 8
    assert summary["timing"]["target_bpm"] == 120.0
    assert summary["timing"]["mood"] in {"happy", "neutral", "annoyed", "angry"}


def test_readable_summary_without_a_terminal(
    capsys: pytest.CaptureFixture[str], cluster: tuple[str, Path], take: Path
) -> None:
    argv = stream_args(cluster, str(take), "--target-bpm", "120", "--speed", "0")
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert f"Streamed      {take}" in out
    assert "Timing against 120 BPM" in out
    assert re.search(r"Accuracy\s+\d+ % of \d+ notes within ±25 ms", out)
    assert re.search(r"Mood\s+(happy|neutral|annoyed|angry)", out)


def test_opus_stream_is_resampled_and_analysed(
    capsys: pytest.CaptureFixture[str], cluster: tuple[str, Path], take: Path
) -> None:
    argv = stream_args(
        cluster, str(take), "--encoding", "opus", "--chunk-ms", "20", "--speed", "0", "--json"
    )
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["type"] == "summary"
    assert summary["duration_s"] == pytest.approx(3.0, abs=0.05)
    assert summary["n_onsets"] >= 8
    assert summary["timing"] is None


def test_ctrl_c_ends_the_stream_and_prints_the_summary(
    cluster: tuple[str, Path], take: Path, tmp_path: Path
) -> None:
    args = stream_args(cluster, str(take), "--target-bpm", "120", "--json")  # real time
    child = Child(["-m", "mpt.cli", *args], env=child_env({}), cwd=tmp_path)
    try:
        assert json.loads(child.read_line(timeout_s=30))["type"] == "started"
        time.sleep(0.8)
        child.proc.send_signal(signal.SIGINT)
        last = json.loads(child.read_line(timeout_s=10))
        while last["type"] != "summary":
            last = json.loads(child.read_line(timeout_s=10))
        assert child.finish(timeout_s=10) == 130
        assert child.stderr().strip() == "mpt: error: interrupted"
    finally:
        child.close()
    assert 0.5 < last["duration_s"] < 2.5  # only what was sent before Ctrl-C


def test_a_network_cut_is_resumed_and_no_audio_is_lost_or_doubled(
    capsys: pytest.CaptureFixture[str], cluster: tuple[str, Path], take: Path
) -> None:
    """The connection is reset twice while the take streams in real time: the client
    reconnects, resumes the stream and resends what the engine did not get; the summary
    covers the whole take once."""
    address, data_dir = cluster
    host, port = address.rsplit(":", 1)
    with CuttableProxy(host, int(port)) as proxy:
        done = threading.Event()

        def cut_twice() -> None:
            # the second cut 0.6 s into the resumed stream, however long the reconnection
            # took (a cut at a fixed time could fall while the client was reconnecting)
            if done.wait(0.9):
                return
            proxy.cut()
            deadline = time.monotonic() + 10.0
            while proxy.connections < 2 and time.monotonic() < deadline:
                if done.wait(0.01):
                    return
            if not done.wait(0.6):
                proxy.cut()

        cutter = threading.Thread(target=cut_twice, name="cutter", daemon=True)
        cutter.start()
        try:
            code, out, err = run(
                capsys, "stream", str(take), "--target-bpm", "120", "--json",
                "--server", proxy.address, "--data-dir", str(data_dir),
            )  # fmt: skip
        finally:
            done.set()
            cutter.join(10)
        connections = proxy.connections

    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds.count("reconnecting") >= 2 and connections >= 3
    started = [e for e in events if e["type"] == "started"]
    assert [s["resumed"] for s in started] == [False] + [True] * (len(started) - 1)
    assert len({s["stream_id"] for s in started}) == 1
    summary = events[-1]
    assert summary["type"] == "summary"
    assert summary["duration_s"] == pytest.approx(3.0, abs=0.01)  # every chunk exactly once
    assert summary["n_onsets"] >= 8


class _Blocks:
    """A source of ``n`` blocks of 100 ms at 8 kHz, as fast as they are read."""

    label, sr, duration_s = "blocks", 8000, None

    def __init__(self, n: int) -> None:
        self.n = n

    async def blocks(self, chunk_ms: int, stop: asyncio.Event) -> Any:
        for k in range(self.n):
            yield np.full(800, k / 100, dtype=np.float32)


def test_the_client_keeps_recent_chunks_to_resend_and_says_when_it_cannot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mpt import stream_client
    from mpt.errors import EngineCallError

    monkeypatch.setattr(stream_client, "RESEND_KEEP_BYTES", 3 * 1600)  # three chunks

    async def scenario() -> tuple[list[int], list[int], float, str]:
        outgoing = stream_client._Outgoing(
            _Blocks(5), stream_client.StreamOptions(), asyncio.Event()
        )
        try:
            sent = []
            while (chunk := await outgoing.next()) is not None:
                sent.append(chunk.chunk.sequence)
            again = [r.chunk.sequence for r in outgoing.resend_from(3)]
            with pytest.raises(EngineCallError) as info:
                outgoing.resend_from(1)
            return sent, again, outgoing.sent_s, str(info.value)
        finally:
            await outgoing.close()

    sent, again, sent_s, message = asyncio.run(scenario())
    assert sent == [0, 1, 2, 3, 4]
    assert again == [3, 4]
    assert sent_s == pytest.approx(0.5)
    assert "chunk 1" in message and "no longer kept" in message


def test_a_bad_token_is_unauthenticated(
    capsys: pytest.CaptureFixture[str], cluster: tuple[str, Path], take: Path
) -> None:
    code, _, err = run(capsys, *stream_args(cluster, str(take), "--token", "not-a-token"))
    assert code == 1
    line = one_error_line(err)
    assert "UNAUTHENTICATED" in line and "token rejected" in line


def test_a_token_from_another_data_dir_names_the_key(
    capsys: pytest.CaptureFixture[str], cluster: tuple[str, Path], take: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    argv = ["stream", str(take), "--server", cluster[0], "--data-dir", str(other)]
    code, _, err = run(capsys, *argv)
    assert code == 1
    line = one_error_line(err)
    assert "UNAUTHENTICATED" in line
    assert str(other / "keys" / "jwt_ed25519.pem") in line


# --------------------------------------------------------------------------------------------
# Without an engine


def test_a_closed_port_is_one_line(capsys: pytest.CaptureFixture[str], take: Path) -> None:
    port = free_port()
    code, out, err = run(capsys, "stream", str(take), "--server", f"127.0.0.1:{port}")
    assert code == 1
    assert out == ""
    assert one_error_line(err) == (
        f"mpt: error: cannot reach the engine at 127.0.0.1:{port} (is `mpt up` running?)"
    )


def test_mic_without_an_input_device_is_a_clear_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "stream", "--mic", "--server", f"127.0.0.1:{free_port()}")
    assert code == 1
    assert one_error_line(err).startswith("mpt: error: no audio input device found")


class _NoInputDevices:
    """A stand-in for the ``sounddevice`` module on a machine without an input device."""

    class PortAudioError(Exception):
        pass

    def query_devices(self, kind: str | None = None) -> Any:
        raise ValueError("No input device matching ''")


def test_microphone_source_without_a_default_input() -> None:
    with pytest.raises(AudioInputError, match=r"^no audio input device found$"):
        microphone_source(_NoInputDevices())


class _FakeInput:
    """A stand-in for ``sounddevice`` with one input device that records a ramp."""

    def __init__(self) -> None:
        self.opened: dict[str, Any] = {}
        self.closed = threading.Event()

    def query_devices(self, kind: str | None = None) -> dict[str, Any]:
        return {"name": "Fake mic", "max_input_channels": 1, "default_samplerate": 16000.0}

    def InputStream(self, **kw: Any) -> Any:  # noqa: N802  (sounddevice's name)
        self.opened = kw
        fake = self

        class Stream:
            def __enter__(self) -> Stream:
                self._thread = threading.Thread(target=self._run, daemon=True)
                self._thread.start()
                return self

            def _run(self) -> None:
                n = kw["blocksize"]
                for k in range(50):
                    if fake.closed.is_set():
                        return
                    block = np.full((n, 1), k, dtype=np.float32)
                    kw["callback"](block, n, None, None)
                    time.sleep(0.005)

            def __exit__(self, *exc: object) -> None:
                fake.closed.set()
                self._thread.join(5)

        return Stream()


def test_microphone_blocks_until_stopped() -> None:
    fake = _FakeInput()
    source = microphone_source(fake)
    assert (source.sr, source.label) == (16000, "microphone 'Fake mic'")

    async def collect() -> list[float]:
        stop = asyncio.Event()
        firsts = []
        async for block in source.blocks(20, stop):
            firsts.append(float(block[0]))
            if len(firsts) == 3:
                stop.set()
        return firsts

    assert asyncio.run(collect()) == [0.0, 1.0, 2.0]
    assert fake.opened["samplerate"] == 16000 and fake.opened["blocksize"] == 320
    assert fake.closed.is_set()  # the input stream is closed when the blocks end


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["stream"], "give a PATH to stream, or --mic"),
        (["stream", "x.wav", "--mic"], "give a PATH to stream, or --mic"),
        (["stream", "--mic", "--speed", "2"], "--speed paces files"),
        (["stream", "x.wav", "--grid-start", "1"], "--grid-start needs --target-bpm"),
        (["stream", "x.wav", "--encoding", "opus", "--chunk-ms", "30"], "use one of 10, 20"),
        (["stream", "x.wav", "--speed", "-1"], "speed -1 is negative"),
        (["stream", "x.wav", "--chunk-ms", "5"], "5 ms is outside 10..1000 ms"),
    ],
)
def test_usage_errors(capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert fragment in one_error_line(err)


def test_a_missing_file_is_an_input_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "stream", "missing.wav", "--server", f"127.0.0.1:{free_port()}")
    assert code == 1
    assert "missing.wav" in one_error_line(err)


# --------------------------------------------------------------------------------------------
# Pacing and the live view


def test_pacing_follows_the_absolute_schedule() -> None:
    """Block k leaves at t0 + end_k / sr / speed: never early, and lateness does not add up."""
    sr, speed = 8000, 20.0
    source = FileSource("test", np.zeros(2 * sr, np.float32), sr, speed)

    async def collect() -> tuple[float, list[tuple[float, int]]]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        sent, end = [], 0
        async for block in source.blocks(10, asyncio.Event()):
            end += block.shape[0]
            sent.append((loop.time() - t0, end))
        return loop.time() - t0, sent

    elapsed, sent = asyncio.run(collect())

    assert len(sent) == 200
    lateness = [at - end / sr / speed for at, end in sent]
    assert min(lateness) >= -0.002
    assert max(lateness) < 0.05
    assert elapsed == pytest.approx(2.0 / speed, abs=0.05)


def test_pacing_stops_early_when_asked() -> None:
    source = FileSource("test", np.zeros(8000 * 10, np.float32), 8000, 1.0)

    async def collect() -> int:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.25, stop.set)
        return sum([1 async for _ in source.blocks(100, stop)])

    started = time.monotonic()
    assert asyncio.run(collect()) == 2  # at 0.1 s and 0.2 s; the one due at 0.3 s is not sent
    assert time.monotonic() - started < 1.0


def test_live_view_shows_tempo_deviation_accuracy_and_mood() -> None:
    out = io.StringIO()
    console = Console(file=out, width=100, color_system=None)
    view = LiveView(console, source="take.wav", target="127.0.0.1:1", total_s=3.0, speed=0.0)
    for event in (
        {"type": "started", "stream_id": "s1"},
        {"type": "onset", "time_s": 0.5, "deviation_ms": -3.0, "is_metronome": False},
        {"type": "onset", "time_s": 0.75, "deviation_ms": 31.5, "is_metronome": False},
        {"type": "onset", "time_s": 0.8, "deviation_ms": 0.0, "is_metronome": True},
        {"type": "tempo", "time_s": 1.0, "tempo_bpm": 121.0, "confidence": 0.5,
         "accuracy_pct": 70.0, "mood": "annoyed", "meditation": False},
        {"type": "warning", "time_s": 1.1, "code": "clipping", "message": "the input clips"},
    ):  # fmt: skip
        view.event(event)
    view.progress(1.2)
    console.print(view.render())
    text = out.getvalue()

    assert "take.wav → 127.0.0.1:1 (as fast as possible)" in text
    assert "1.2 / 3.0 s sent, 1.1 s analysed" in text
    assert "121.0 BPM (confidence 0.50)" in text
    assert "+31.5 ms late" in text
    assert "70 % of 2 notes within ±25 ms" in text
    assert "annoyed" in text
    assert "1.1 s: the input clips" in text


@pytest.mark.parametrize(
    ("deviation_ms", "style"),
    [(0.0, "green"), (-25.0, "green"), (25.1, "yellow"), (-50.0, "yellow"), (50.1, "red")],
)
def test_deviation_colours(deviation_ms: float, style: str) -> None:
    assert deviation_style(deviation_ms) == style


def test_a_multichannel_file_is_streamed_as_the_engines_mixdown(tmp_path: Path) -> None:
    """The file is mixed down while it is decoded (one channel held, not six): the samples
    sent are the engine's own mixdown of the whole file."""
    import tracemalloc

    import soundfile as sf

    from audio_engine.dsp.signal import to_mono_float32
    from mpt.stream_client import file_source

    rng = np.random.default_rng(6)
    x = rng.uniform(-0.5, 0.5, (48000 * 10, 6)).astype(np.float32)
    path = tmp_path / "six.wav"
    sf.write(path, x, 48000, subtype="FLOAT")
    file_source(path, speed=1.0, encoding="pcm16")  # what loads on first use, beforehand
    tracemalloc.start()
    try:
        source = file_source(path, speed=1.0, encoding="pcm16")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert source.sr == 48000
    np.testing.assert_array_equal(source.samples, to_mono_float32(x))
    assert peak < 0.4 * x.nbytes
