"""Tests of mpt/cli.py: run ``main([...])`` in-process; one run of the real console script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from mpt.cli import main
from tests._support.signals import click_track, tone_notes

SR = 22050
TIMING_KEYS = {
    "target_bpm", "grid_start_s", "subdivision", "latency_ms", "notes", "accuracy_pct",
    "tempo_bpm_played", "tempo_error_pct", "steadiness_ms", "drift_bpm_per_min", "verdict",
    "mood", "meditation", "points",
}  # fmt: skip


@pytest.fixture
def clicks_wav(tmp_path: Path) -> Path:
    """4 s of clicks at 120 BPM from 0.5 s."""
    samples, _ = click_track(120.0, 4.0, SR)
    path = tmp_path / "clicks.wav"
    sf.write(path, samples, SR)
    return path


@pytest.fixture
def silence_wav(tmp_path: Path) -> Path:
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(2 * SR, np.float32), SR)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code, out, err = run(capsys, *argv, "--json")
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)  # exactly one JSON document on stdout
    return data


def assert_one_error_line(err: str, *fragments: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mpt: error: ")
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0]


# --- usage --------------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--version")
    assert code == 0
    assert out.startswith("mpt ")


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "analyze", "--help")
    assert code == 0
    assert "--target-bpm" in out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        ([], "no command"),
        (["frobnicate"], "frobnicate"),
        (["analyze"], "PATH"),
        (["analyze", "x.wav", "--target-bpm", "500"], "500"),
        (["analyze", "x.wav", "--target-bpm", "19.9"], "19.9"),
        (["analyze", "x.wav", "--target-bpm", "fast"], "fast"),
        (["analyze", "x.wav", "--target-bpm", "nan"], "nan"),
        (["analyze", "x.wav", "--target-bpm", "90", "--subdivision", "5"], "5"),
        (["analyze", "x.wav", "--target-bpm", "90", "--latency-ms", "1500"], "1500"),
        (["analyze", "x.wav", "--target-bpm", "90", "--latency-ms", "-1001"], "-1001"),
        (["analyze", "x.wav", "--target-bpm", "90", "--grid-start", "-0.1"], "-0.1"),
        (["analyze", "x.wav", "--grid-start", "1"], "--target-bpm"),
        (["analyze", "x.wav", "--bogus"], "--bogus"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], fragment: str
) -> None:
    code, out, err = run(capsys, *argv)

    assert code == 2
    assert out == ""
    assert_one_error_line(err, fragment)


def test_bad_setting_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, clicks_wav: Path
) -> None:
    monkeypatch.setenv("MPT_ENGINE__PORT", "not-a-port")

    code, _, err = run(capsys, "analyze", str(clicks_wav))

    assert code == 2
    assert_one_error_line(err, "MPT_ENGINE__PORT", "not-a-port")


# --- input errors -------------------------------------------------------------------------


def test_missing_file_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "missing.wav"
    code, out, err = run(capsys, "analyze", str(path))

    assert code == 1
    assert out == ""
    assert_one_error_line(err, str(path), "no such file")


def test_corrupt_file_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF\x24\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)

    code, _, err = run(capsys, "analyze", str(path), "--json")

    assert code == 1
    assert_one_error_line(err, str(path))


@pytest.mark.parametrize("kind", ["zero_bytes", "zero_samples", "directory"])
def test_empty_input_exits_1(capsys: pytest.CaptureFixture[str], tmp_path: Path, kind: str) -> None:
    path = tmp_path / "empty.wav"
    if kind == "zero_bytes":
        path.touch()
    elif kind == "zero_samples":
        sf.write(path, np.zeros(0, np.float32), SR)
    else:
        path.mkdir()

    code, _, err = run(capsys, "analyze", str(path))

    assert code == 1
    assert_one_error_line(err, str(path))


def test_audio_the_engine_rejects_exits_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "low_rate.wav"
    sf.write(path, np.zeros(4000, np.float32), 2000)  # the engine needs >= 8000 Hz

    code, _, err = run(capsys, "analyze", str(path))

    assert code == 1
    assert_one_error_line(err, "2000")


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "analyze", str(tmp_path / "missing.wav"), "--debug")

    assert code == 1
    assert "Traceback" in err
    assert err.splitlines()[-1].startswith("mpt: error: ")


# --- analysis -----------------------------------------------------------------------------


def test_json_without_target(capsys: pytest.CaptureFixture[str], clicks_wav: Path) -> None:
    data = run_json(capsys, "analyze", str(clicks_wav))

    assert data["duration_s"] == pytest.approx(4.0)
    assert data["sr"] == SR
    assert data["tempo_bpm"] is None or data["tempo_bpm"] > 0
    assert isinstance(data["beats"], list)
    assert len(data["onsets"]) >= 5
    assert isinstance(data["tempo_curve"], list)
    assert "timing" not in data


def test_json_with_target_has_timing(capsys: pytest.CaptureFixture[str], clicks_wav: Path) -> None:
    data = run_json(
        capsys, "analyze", str(clicks_wav), "--target-bpm", "120", "--grid-start", "0.5",
        "--subdivision", "1", "--latency-ms", "0",
    )  # fmt: skip

    assert set(data["timing"]) >= TIMING_KEYS
    assert data["timing"]["target_bpm"] == 120
    assert data["timing"]["subdivision"] == 1
    assert data["timing"]["mood"] in {"happy", "neutral", "annoyed", "angry"}
    assert isinstance(data["timing"]["points"], int)


def test_multichannel_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    samples, _ = click_track(100.0, 3.0, SR)
    path = tmp_path / "stereo.flac"
    sf.write(path, np.stack([samples, 0.5 * samples], axis=1), SR)

    data = run_json(capsys, "analyze", str(path))

    assert data["duration_s"] == pytest.approx(3.0)
    assert len(data["onsets"]) >= 3


@pytest.mark.nojit
def test_silence_is_a_valid_result(capsys: pytest.CaptureFixture[str], silence_wav: Path) -> None:
    data = run_json(capsys, "analyze", str(silence_wav))

    assert data["tempo_bpm"] is None
    assert data["beats"] == []
    assert data["onsets"] == []


@pytest.mark.nojit
def test_silence_with_target(capsys: pytest.CaptureFixture[str], silence_wav: Path) -> None:
    data = run_json(capsys, "analyze", str(silence_wav), "--target-bpm", "50")

    assert data["tempo_bpm"] is None
    assert data["timing"]["meditation"] is True


def test_readable_summary(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    onsets = np.arange(0.5, 3.8, 0.25)  # eighth notes at 120 BPM
    path = tmp_path / "notes.wav"
    sf.write(path, tone_notes(onsets, 4.0, SR), SR)

    code, out, err = run(capsys, "analyze", str(path), "--target-bpm", "120", "--grid-start", "0.5")

    assert code == 0, err
    for label in ("Tempo", "Beats", "Onsets", "Duration", "Accuracy", "Played tempo",
                  "Steadiness", "Drift", "Mood", "Points", "Deviation (ms)"):  # fmt: skip
        assert label in out, label
    assert str(path) in out.replace("\n", "")


def test_readable_summary_of_silence(capsys: pytest.CaptureFixture[str], silence_wav: Path) -> None:
    code, out, _ = run(capsys, "analyze", str(silence_wav))

    assert code == 0
    assert "none found" in out
    assert "Accuracy" not in out


# --- demo ---------------------------------------------------------------------------------


def test_demo_json_writes_into_env_data_dir(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MPT_DATA_DIR", str(tmp_path / "state"))

    code, out, err = run(capsys, "demo", "--json")

    assert code == 0, err
    wav = tmp_path / "state" / "demo" / "demo_performance.wav"
    assert wav.is_file()
    assert str(wav) in err  # the note goes to stderr so stdout stays one JSON object
    data = json.loads(out)
    assert data["duration_s"] == pytest.approx(20.0)
    assert data["timing"]["target_bpm"] == 96
    assert data["timing"]["grid_start_s"] == 0.5
    assert data["timing"]["subdivision"] == 2
    info = sf.info(str(wav))
    assert (info.samplerate, info.channels) == (44100, 1)


def test_demo_readable_with_data_dir_flag(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MPT_DATA_DIR", str(tmp_path / "not-used"))

    code, out, err = run(capsys, "demo", "--data-dir", str(tmp_path / "flag"))

    assert code == 0, err
    wav = tmp_path / "flag" / "demo" / "demo_performance.wav"
    assert wav.is_file()
    assert not (tmp_path / "not-used").exists()
    assert "Mood" in out
    assert str(wav) in out.replace("\n", "")


# --- the installed entry point ------------------------------------------------------------


def mpt_executable() -> str:
    candidate = Path(sys.executable).with_name("mpt")
    found = str(candidate) if candidate.exists() else shutil.which("mpt")
    assert found, "the `mpt` console script is not installed next to this Python"
    return found


def test_console_script_entry_point(clicks_wav: Path) -> None:
    proc = subprocess.run(
        [mpt_executable(), "analyze", str(clicks_wav), "--json", "--target-bpm", "120"],
        capture_output=True, text=True, timeout=300, env=dict(os.environ), check=False,
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert {"tempo_bpm", "beats", "onsets", "tempo_curve", "duration_s", "timing"} <= set(data)


def test_importing_the_cli_loads_no_engine() -> None:
    code = (
        "import sys, mpt.cli\nprint(sorted({'audio_engine', 'numba', 'numpy'} & set(sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


def test_analysing_to_json_off_a_terminal_loads_no_display(clicks_wav: Path) -> None:
    # rich costs ~0.1 s of a cold `mpt analyze`: imported only where something is drawn
    code = (
        "import contextlib, io, sys\nfrom mpt.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    code = main(['analyze', {str(clicks_wav)!r}, '--json'])\n"
        "print(code, sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    assert proc.stdout.strip() == "0 []", proc.stderr
