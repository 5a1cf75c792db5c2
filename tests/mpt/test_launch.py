"""Tests of mpt/launch.py: the console script's collector policy, in real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from tests._support.signals import click_track

SR = 22050

# runs the launcher as the console script does, then reports the exit code and the
# collector's state on stderr's last line (run() ends the process with SystemExit)
PROBE = """
import gc, json, sys
from mpt.launch import run
sys.argv = ["mpt", *sys.argv[1:]]
try:
    run()
except SystemExit as exc:
    state = {"code": exc.code, "enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}
    print(json.dumps(state), file=sys.stderr)
"""


def launch(*argv: str) -> tuple[dict[str, Any], str, str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        capture_output=True, text=True, timeout=300, env=dict(os.environ), check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    *err_lines, state_line = proc.stderr.splitlines()
    state: dict[str, Any] = json.loads(state_line)
    return state, proc.stdout, "\n".join(err_lines)


def test_the_mpt_console_script_is_the_launcher() -> None:
    (entry,) = metadata.entry_points(group="console_scripts", name="mpt")
    assert entry.value == "mpt.launch:run"


def test_a_short_command_runs_without_the_collector_and_freezes_what_is_left(
    tmp_path: Path,
) -> None:
    samples, _ = click_track(120.0, 3.0, SR)
    wav = tmp_path / "clicks.wav"
    sf.write(wav, samples, SR)

    state, out, err = launch("analyze", str(wav), "--json", "--data-dir", str(tmp_path / "d"))

    assert state["code"] == 0, err
    assert json.loads(out)["tempo_bpm"] == pytest.approx(120.0, rel=0.02)
    assert state["enabled"] is False
    assert state["frozen"] > 10_000  # the engine's imports, skipped by the final collections


def test_a_short_command_that_fails_still_exits_with_its_code(tmp_path: Path) -> None:
    state, out, err = launch("analyze", str(tmp_path / "missing.wav"))

    assert state["code"] == 1
    assert out == ""
    assert err.startswith("mpt: error: ") and "missing.wav" in err


def test_a_long_running_command_turns_the_collector_back_on(tmp_path: Path) -> None:
    # `up` with nothing to run fails after the policy is applied, before starting anything
    state, _, err = launch("up", "--no-engine", "--no-api", "--data-dir", str(tmp_path / "d"))

    assert state["code"] == 2
    assert "leaves nothing to run" in err
    assert state["enabled"] is True
