"""Streaming vs offline engine on the dev set (issue 3's equivalence targets).

For every dev clip: beat F (70 ms, mir_eval, whole clip) of the offline engine and of the
stream against the annotations, the summary tempo of both, and on the synthetic takes (told
the target) the share of the offline timing report's notes that the stream's summary also
has (same note within 10 ms). The stream is fed 100 ms chunks in-process.

Tempo agreement (stream within 2 % of offline) is counted, like tempo accuracy, on the clips
with one annotated tempo: the eval's README scores no tempo on a take that changes tempo
half-way (``tempo_bpm`` null), where "the tempo" of two engines may differ and both be right.
Tempo Accuracy1 (within 4 % of the annotation) of both is shown beside it: where the two
disagree, it tells which one is right.

The same comparison runs on the fresh synthetic set (``synth.py --seed 123 --pool base
--n 40``, rendered once into ``benchmarks/.cache``, as the accuracy benchmark does): the
issue's targets are the dev set's, and the fresh takes show how much of the stream's
agreement with the offline engine is tuning to the 21 dev takes (``--no-fresh`` skips them).

    python -m benchmarks.stream_vs_offline [--out benchmarks/STREAMING.md] [--no-fresh]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def _one(path: str) -> dict[str, Any]:
    import mir_eval
    import soundfile as sf

    from audio_engine.analysis import analyze
    from audio_engine.events import BeatEvent
    from audio_engine.stream import StreamAnalyzer, StreamConfig

    truth = json.loads(Path(path).with_suffix(".json").read_text())
    y, sr = sf.read(path, dtype="float32")
    y = y.mean(axis=1) if y.ndim == 2 else y
    target = truth.get("target_tempo_bpm")
    grid = truth.get("grid_start_s", 0.0) if target else 0.0
    out: dict[str, Any] = {"clip": Path(path).stem, "set": _set_of(path)}
    for told in (False, True) if target else (False,):
        kw = {"target_bpm": target, "grid_start_s": grid} if told else {}
        off = analyze(y, sr, **kw)  # offline defaults; the stream uses stream_params()
        an = StreamAnalyzer(StreamConfig(sr=sr, **kw))
        chunk = sr // 10
        beats = []
        t0 = time.perf_counter()
        for i in range(0, len(y), chunk):
            beats += [e.time_s for e in an.process(y[i : i + chunk]) if isinstance(e, BeatEvent)]
        last, summary = an.finish()
        beats += [e.time_s for e in last if isinstance(e, BeatEvent)]
        out["stream_x_rt"] = len(y) / sr / (time.perf_counter() - t0)
        if not told:
            ref = truth.get("beats")
            if ref:
                out["beat_f_offline"] = mir_eval.beat.f_measure(np.array(ref), off.beats)
                out["beat_f_stream"] = mir_eval.beat.f_measure(np.array(ref), np.array(beats))
            out["tempo_offline"] = off.tempo_bpm
            out["tempo_stream"] = summary.tempo_bpm
            out["tempo_truth"] = truth.get("tempo_bpm")
        else:
            assert off.timing is not None and summary.timing is not None
            a = np.array([t for t, _ in off.timing.notes])
            b = np.array([t for t, _ in summary.timing.notes])
            same = sum(1 for t in a if b.size and np.min(np.abs(b - t)) <= 0.010)
            out["notes_offline"] = int(a.size)
            out["notes_stream"] = int(b.size)
            out["notes_same"] = same
            out["verdict_offline"] = off.timing.verdict
            out["verdict_stream"] = summary.timing.verdict
    return out


def _within(value: float | None, reference: float | None, tolerance: float) -> bool:
    return bool(value and reference and abs(value / reference - 1) <= tolerance)


def _set_of(path: str) -> str:
    """``real`` or ``synth`` (dev, by folder) or ``fresh``."""
    parent = Path(path).parent
    return "fresh" if parent.parent.name != "dev" else parent.name


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "STREAMING.md")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-fresh", action="store_true", help="the dev set only")
    a = ap.parse_args(argv)
    from benchmarks.datasets import DatasetError, ensure_fresh_set, eval_dir

    dev = eval_dir() / "dev"
    clips = sorted(str(p) for p in dev.glob("*/*.flac"))
    if not clips:
        ap.error(f"no clips under {dev}; set MPT_EVAL_DIR to the shared eval folder")
    if not a.no_fresh:
        try:
            fresh = ensure_fresh_set()
        except DatasetError as exc:
            ap.error(f"{exc} (or pass --no-fresh)")
        clips += sorted(str(p) for p in fresh.glob("*.flac"))
    with ProcessPoolExecutor(a.jobs) as ex:
        rows = list(ex.map(_one, clips))
    lines = [
        "# Streaming vs offline (dev set; the fresh synthetic set beside it)",
        "",
        "Command: `python -m benchmarks.stream_vs_offline` (100 ms chunks, in-process). "
        "Sets: `real` and `synth` are the dev set (the issue's targets), `fresh` the takes "
        "of `synth.py --seed 123 --pool base --n 40` (never tuned on).",
        "",
        "| set | clip | beat F offline | beat F stream | tempo truth | tempo offline "
        "| tempo stream | notes same / offline | notes stream |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:

        def f(k: str, r: dict[str, Any] = r) -> str:
            return "–" if r.get(k) is None else f"{r[k]:.3f}"

        ns = f"{r['notes_same']}/{r['notes_offline']}" if "notes_offline" in r else "–"
        n_stream = str(r["notes_stream"]) if "notes_stream" in r else "–"
        lines.append(
            f"| {r['set']} | `{r['clip']}` | {f('beat_f_offline')} | {f('beat_f_stream')} | "
            f"{f('tempo_truth')} | {f('tempo_offline')} | {f('tempo_stream')} | {ns} | "
            f"{n_stream} |"
        )
    for subset in ("real", "synth", "fresh"):
        sub = [r for r in rows if r["set"] == subset]
        if not sub:
            continue
        bo = [r["beat_f_offline"] for r in sub if "beat_f_offline" in r]
        bs = [r["beat_f_stream"] for r in sub if "beat_f_stream" in r]
        scored = [r for r in sub if r.get("tempo_truth")]
        tempo_ok = [_within(r.get("tempo_stream"), r.get("tempo_offline"), 0.02) for r in scored]
        acc1_off = [_within(r.get("tempo_offline"), r["tempo_truth"], 0.04) for r in scored]
        acc1_stream = [_within(r.get("tempo_stream"), r["tempo_truth"], 0.04) for r in scored]
        same = sum(r.get("notes_same", 0) for r in sub)
        total = sum(r.get("notes_offline", 0) for r in sub)
        streamed = sum(r.get("notes_stream", 0) for r in sub)
        lines += [
            "",
            f"**{subset}**: beat F offline {np.mean(bo):.3f}, stream {np.mean(bs):.3f} "
            f"(difference {np.mean(bs) - np.mean(bo):+.3f}); stream tempo within 2 % of "
            f"offline on {sum(tempo_ok)} of {len(scored)} clips with one annotated tempo "
            f"({np.mean(tempo_ok) * 100:.0f} %); tempo Accuracy1 offline "
            f"{np.mean(acc1_off):.3f}, stream {np.mean(acc1_stream):.3f}"
            + (f"; same notes {same}/{total} = {same / max(total, 1) * 100:.1f} % of the "
               f"offline notes; the stream reports {streamed} notes ({streamed - same} not in "
               f"the offline report)" if total else "")
            + f"; stream speed median {np.median([r['stream_x_rt'] for r in sub]):.0f}x real time",
        ]
    a.out.write_text("\n".join(lines) + "\n")
    print("\n".join(line for line in lines if line.startswith("**")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
