"""benchmarks/stream_identity.py: the stream's events of a take in every setting, and the
comparison that says which runs changed and where."""

from __future__ import annotations

from pathlib import Path

import soundfile as sf

from benchmarks.datasets import Clip
from benchmarks.stream_identity import compare, stream_runs
from tests._support.signals import click_track

SR = 16000


def test_a_take_with_a_target_runs_blind_and_told_in_both_chunkings(tmp_path: Path) -> None:
    clicks, truth = click_track(120.0, 3.0, SR)
    path = tmp_path / "clicks.flac"
    sf.write(path, clicks, SR)
    clip = Clip("dev-synth", "clicks", path, {"target_tempo_bpm": 120.0, "grid_start_s": 0.5})
    runs = stream_runs([clip], seconds=30.0)
    assert sorted(runs) == [f"dev-synth/clicks {label} {ms} ms"
                            for label in ("blind", "told") for ms in (100, 20)]
    # the chunking never changes the events (the stream's own guarantee)
    for label in ("blind", "told"):
        assert runs[f"dev-synth/clicks {label} 100 ms"] == runs[f"dev-synth/clicks {label} 20 ms"]
    told = runs["dev-synth/clicks told 100 ms"]
    assert sum("OnsetEvent(" in e for e in told) == truth.size
    assert told[-1].startswith("StreamSummary(") and "timing=TimingReport(" in told[-1]
    assert "timing=None" in runs["dev-synth/clicks blind 100 ms"][-1]


def test_compare_names_each_changed_run_and_its_first_difference() -> None:
    saved = {"a": ["x", "y", "s"], "b": ["x"], "gone": ["x"]}
    assert compare(saved, dict(saved)) == []
    now = {"a": ["x", "y2", "s"], "b": ["x", "extra"], "new": ["x"]}
    assert compare(saved, now) == [
        "a: event 1 was y, is y2",
        "b: event 1 was (none), is extra",
        "gone: only in the saved runs",
        "new: only in the new runs",
    ]
