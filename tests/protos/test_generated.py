"""The committed generated code (``mpt_protos/``) is exactly what ``scripts/gen_protos.py``
produces from ``protos/`` with the pinned tools."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "mpt_protos"


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_generated_code_matches_protos(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    fresh = _tree(tmp_path / "mpt_protos")
    committed = _tree(COMMITTED)
    assert fresh, "the generator produced nothing"
    missing = sorted(fresh.keys() - committed.keys())
    stale = sorted(committed.keys() - fresh.keys())
    changed = sorted(k for k in fresh.keys() & committed.keys() if fresh[k] != committed[k])
    assert not (missing or stale or changed), (
        "mpt_protos/ is out of date with protos/ — run `python scripts/gen_protos.py` "
        f"(missing: {missing}, stale: {stale}, changed: {changed})"
    )


def test_generated_modules_import_and_name_the_service() -> None:
    from mpt_protos.audio.v1 import audio_pb2, audio_pb2_grpc

    service = audio_pb2.DESCRIPTOR.services_by_name["AudioAnalysis"]
    assert service.full_name == "mpt.audio.v1.AudioAnalysis"
    assert {m.name for m in service.methods} == {"Stream", "AnalyzeRecording"}
    assert hasattr(audio_pb2_grpc, "add_AudioAnalysisServicer_to_server")
    config = audio_pb2.StreamConfig(sample_rate_hz=48000)
    assert not config.HasField("target_bpm")  # optional: absent differs from 0
