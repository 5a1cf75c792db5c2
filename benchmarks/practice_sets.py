"""The engine's practice report on any folders of synth.py takes, offline and live.

For held-out renders (``python ../shared/eval/synth.py OUT --n 40 --seed 555``), which
``run_accuracy`` does not read: per folder, and over the takes with a bleeding metronome,
the means over takes of

- note recall, centred deviation error (ms) and note precision (``benchmarks/scoring.py``,
  the rules of ``run_accuracy``);
- **accuracy error**: |the report's ``accuracy_pct`` - the true one| in percentage points.
  The true accuracy is the share of ``played_notes`` within 25 ms of their nearest line of
  the grid at the take's true subdivision (the report's own definition); the report's is
  recomputed from its notes after removing the take's median difference between reported
  and true deviations (an attack or latency constant that calibration removes, as the
  centred deviation error does). Clicks kept as notes, notes lost, and a wrong subdivision
  all show in it.

The engine runs told the target and the grid start, not the subdivision: offline
(``analyze``) and, with ``--stream``, the live analyzer fed 100 ms chunks in-process.

    python -m benchmarks.practice_sets DIR [DIR ...] [--stream] [--jobs 2] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

TOLERANCE_MS = 25.0


def _wrap(dev_ms: NDArray[np.float64], spacing_ms: float) -> NDArray[np.float64]:
    out: NDArray[np.float64] = (dev_ms + spacing_ms / 2) % spacing_ms - spacing_ms / 2
    return out


def accuracy_error(
    played: NDArray[np.float64], reported: NDArray[np.float64], spacing_ms: float
) -> float:
    """|reported - true accuracy| in points; ``played`` and ``reported`` are rows of
    (time_s, deviation_ms), ``spacing_ms`` the true grid's spacing (see the module)."""
    from benchmarks.scoring import NOTE_WINDOW_S, match_nearest

    true_pct = 100.0 * float(np.mean(np.abs(_wrap(played[:, 1], spacing_ms)) <= TOLERANCE_MS))
    if reported.shape[0] == 0:
        return true_pct
    pairs = match_nearest(played[:, 0], reported[:, 0], NOTE_WINDOW_S)
    shift = 0.0
    if pairs:
        diffs = np.array([reported[b, 1] - played[a, 1] for a, b in pairs])
        shift = float(np.median(_wrap(diffs, spacing_ms)))
    rep_pct = 100.0 * float(np.mean(np.abs(reported[:, 1] - shift) <= TOLERANCE_MS))
    return abs(rep_pct - true_pct)


def _report_notes(path: str, truth: dict[str, Any], stream: bool) -> NDArray[np.float64]:
    import soundfile as sf

    y, sr = sf.read(path, dtype="float32")
    target, start = float(truth["target_tempo_bpm"]), float(truth["grid_start_s"])
    if stream:
        from audio_engine.stream import StreamAnalyzer, StreamConfig

        analyzer = StreamAnalyzer(StreamConfig(sr=sr, target_bpm=target, grid_start_s=start))
        step = sr // 10
        for i in range(0, y.shape[0], step):
            analyzer.process(y[i : i + step])
        timing = analyzer.finish()[1].timing
    else:
        from audio_engine.analysis import analyze

        timing = analyze(y, sr, target_bpm=target, grid_start_s=start).timing
    if timing is None:
        raise RuntimeError(f"{path}: no timing report")
    return np.asarray(timing.notes, dtype=np.float64).reshape(-1, 2)


def score_take(path: str, stream: bool = False) -> dict[str, Any]:
    """The practice scores of one take (see the module)."""
    from benchmarks.scoring import score_practice, true_notes

    truth = json.loads(Path(path).with_suffix(".json").read_text())
    target, sub = float(truth["target_tempo_bpm"]), int(truth["subdivision"])
    played = np.asarray(truth["played_notes"], dtype=np.float64).reshape(-1, 2)
    reported = _report_notes(path, truth, stream)
    s = score_practice(
        true_notes(truth["played_notes"], target_bpm=target, subdivision=sub),
        reported,
        played_s=played[:, 0],
    )
    return {
        "take": Path(path).stem,
        "bleed": bool(truth["metronome_bleed"]),
        "recall": s.recall,
        "centred_ms": s.centered_dev_err_ms,
        "precision": s.precision,
        "accuracy_error": accuracy_error(played, reported, 60000.0 / (target * sub)),
    }


def _mean(rows: list[dict[str, Any]], key: str) -> str:
    values = [r[key] for r in rows if r[key] is not None]
    return f"{np.mean(values):.3f}" if values else "-"


def _line(name: str, rows: list[dict[str, Any]]) -> str:
    return (
        f"| {name} | {len(rows)} | {_mean(rows, 'recall')} | {_mean(rows, 'centred_ms')} | "
        f"{_mean(rows, 'precision')} | {_mean(rows, 'accuracy_error')} |"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dirs", nargs="+", type=Path, help="folders of synth.py takes")
    p.add_argument("--stream", action="store_true", help="the live analyzer's report")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--json", type=Path, help="write every take's scores here")
    args = p.parse_args(argv)
    files = {d: sorted(str(f) for f in d.glob("*.flac")) for d in args.dirs}
    if not all(files.values()):
        p.error(f"no .flac takes in {[str(d) for d, f in files.items() if not f]}")
    every = [f for fs in files.values() for f in fs]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(score_take, every, [args.stream] * len(every)))
    scores = dict(zip(every, results, strict=True))
    print(f"engine {'stream' if args.stream else 'offline'} report\n")
    print("| takes | n | note recall | centred dev ms | note precision | accuracy error pts |")
    print("|---|---|---|---|---|---|")
    for d, fs in files.items():
        print(_line(str(d), [scores[f] for f in fs]))
    rows = list(scores.values())
    print(_line("all, bleeding metronome", [r for r in rows if r["bleed"]]))
    print(_line("all, no metronome", [r for r in rows if not r["bleed"]]))
    if args.json:
        args.json.write_text(json.dumps(scores, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
