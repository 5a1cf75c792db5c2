"""``python -m benchmarks.stream_identity save|compare FILE``: whether a change to the stream
analyzer left its events exactly as they were.

A change meant to make the stream cheaper (not different) should leave every event and the
summary bit for bit unchanged. ``save`` runs :class:`~audio_engine.stream.StreamAnalyzer`
over the dev takes (``--sets``, default both dev sets; their first ``--seconds``), each
without a target, with its target and grid when it has one, in 100 ms and in 20 ms chunks,
and writes every event and summary (their ``repr``: floats to the last bit) to ``FILE``;
``compare`` runs the same on the code as it is now and lists the runs that differ (exit 1),
or says that all are identical (exit 0). Typical use: ``save`` on the parent commit, change
the code, ``compare``. About 30 s on the dev sets.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.datasets import Clip, DatasetError, list_clips

__all__ = ["compare", "main", "stream_runs"]

CHUNKS_MS = (100, 20)


def _run(samples: Any, sr: int, chunk: int, **told: Any) -> list[str]:
    from audio_engine.stream import StreamAnalyzer, StreamConfig

    analyzer = StreamAnalyzer(StreamConfig(sr=sr, **told))
    out: list[str] = []
    for start in range(0, samples.shape[0], chunk):
        out += [repr(e) for e in analyzer.process(samples[start : start + chunk])]
    events, summary = analyzer.finish()
    return [*out, *(repr(e) for e in events), repr(summary)]


def stream_runs(clips: Sequence[Clip], *, seconds: float) -> dict[str, list[str]]:
    """Every run's events and summary (reprs), keyed by clip, target and chunk size."""
    import soundfile as sf

    runs: dict[str, list[str]] = {}
    for clip in clips:
        y, sr = sf.read(clip.audio_path, dtype="float32")
        y = y.mean(axis=1) if y.ndim == 2 else y
        y = y[: round(seconds * sr)]
        target = clip.truth.get("target_tempo_bpm")
        settings: list[tuple[str, dict[str, Any]]] = [("blind", {})]
        if target:
            grid = float(clip.truth.get("grid_start_s") or 0.0)
            settings.append(("told", {"target_bpm": float(target), "grid_start_s": grid}))
        for label, told in settings:
            for chunk_ms in CHUNKS_MS:
                key = f"{clip.set_name}/{clip.name} {label} {chunk_ms} ms"
                runs[key] = _run(y, sr, max(1, sr * chunk_ms // 1000), **told)
    return runs


def compare(saved: dict[str, list[str]], now: dict[str, list[str]]) -> list[str]:
    """The runs whose events differ (or that only one side has), each with its first
    difference."""
    differ = []
    for key in sorted(saved.keys() | now.keys()):
        a, b = saved.get(key), now.get(key)
        if a is None or b is None:
            differ.append(f"{key}: only in the {'new' if a is None else 'saved'} runs")
        elif a != b:
            k = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                     min(len(a), len(b)))
            was = a[k] if k < len(a) else "(none)"
            got = b[k] if k < len(b) else "(none)"
            differ.append(f"{key}: event {k} was {was}, is {got}")
    return differ


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.stream_identity",
                                description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("action", choices=("save", "compare"))
    p.add_argument("file", type=Path)
    p.add_argument("--sets", nargs="+", default=["dev-real", "dev-synth"],
                   choices=("dev-real", "dev-synth", "fresh"))
    p.add_argument("--seconds", type=float, default=30.0, help="of each take (default 30)")
    args = p.parse_args(argv)
    if args.seconds <= 0:
        p.error("--seconds must be > 0")
    try:
        clips = [clip for name in args.sets for clip in list_clips(name)]
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    runs = stream_runs(clips, seconds=args.seconds)
    n_events = sum(len(v) for v in runs.values())
    if args.action == "save":
        args.file.write_text(json.dumps(runs))
        print(f"saved {len(runs)} runs ({n_events} events and summaries) to {args.file}")
        return 0
    try:
        saved = json.loads(args.file.read_text())
    except (OSError, ValueError) as exc:
        print(f"error: cannot read the saved runs {args.file}: {exc}", file=sys.stderr)
        return 2
    differ = compare(saved, runs)
    for line in differ:
        print(line)
    print(f"{len(runs)} runs, {n_events} events and summaries: "
          + (f"{len(differ)} differ" if differ else "all identical"))
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main())
