"""The live stream under a change of its constants, paired against its defaults, on the dev
set and on takes never tuned on (issue 3's stream-vs-offline checks, for trying a change).

    python -m benchmarks.stream_sweep --set TATUM_MEMORY=0.97 [--set NAME=VALUE ...]
        [--seeds 555,99] [--jobs 2] [--takes]

Every take (dev real, dev synth, the fresh set, and ``synth.py --n 40 --pool all`` rendered
once per ``--seeds`` seed into ``benchmarks/.cache``) goes through
:func:`benchmarks.stream_vs_offline._one` twice, once with the stream's defaults and once
with ``audio_engine.stream``'s module constants ``NAME`` set to ``VALUE`` (a JSON literal) in
the worker processes. For each set it prints the offline engine's beat F, the stream's with
the defaults and with the change, the stream's tempo within 2 % of offline (takes with one
annotated tempo), and the paired difference of the stream's beat F: its mean, standard error
and the takes better or worse by more than 0.01. A dev-set gain that the renders do not
share is tuning to the 21 dev takes. ``--takes`` also lists every take whose stream beat F
moved by more than 0.01, with both tempi. Nothing is written.
"""

from __future__ import annotations

import argparse
import json
import math
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.stream_vs_offline import _one, _within


@dataclass(frozen=True, slots=True)
class SetSummary:
    """One set's figures under the defaults (``base``) and the change (``changed``)."""

    name: str
    n_takes: int
    beat_f_offline: float
    beat_f_base: float
    beat_f_changed: float
    agree_base: int
    agree_changed: int
    n_tempo: int
    diff_mean: float
    diff_se: float
    better: int
    worse: int

    def line(self) -> str:
        return (
            f"{self.name:14s} n={self.n_takes:3d}  beat F offline {self.beat_f_offline:.3f}, "
            f"stream {self.beat_f_base:.3f} -> {self.beat_f_changed:.3f} "
            f"(paired {self.diff_mean:+.4f}, SE {self.diff_se:.4f}; {self.better} better, "
            f"{self.worse} worse); tempo within 2 % of offline {self.agree_base} -> "
            f"{self.agree_changed} of {self.n_tempo}"
        )


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``NAME=VALUE`` pairs: NAME an upper-case constant of ``audio_engine.stream``, VALUE a
    JSON literal of the constant's type (an int constant takes an int, a float one a number).

    Raises
    ------
    ValueError
        On a malformed pair, an unknown name or a value of another type.
    """
    import audio_engine.stream as stream

    out: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise ValueError(f"expected NAME=VALUE, got {item!r}")
        if not name.isupper() or not hasattr(stream, name):
            raise ValueError(f"audio_engine.stream has no constant {name!r}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{name}: {raw!r} is not a JSON literal ({exc.msg})") from None
        current = getattr(stream, name)
        numeric = isinstance(current, float) and isinstance(value, int | float)
        if type(value) is not type(current) and not numeric:
            raise ValueError(
                f"{name} is a {type(current).__name__} ({current!r}); got {value!r}"
            )
        out[name] = float(value) if numeric else value
    return out


def summarise(name: str, base: list[dict[str, Any]], changed: list[dict[str, Any]]) -> SetSummary:
    """One set's figures from :func:`~benchmarks.stream_vs_offline._one`'s rows, paired take
    by take (the same takes in the same order)."""
    pairs = [
        (b, c) for b, c in zip(base, changed, strict=True) if b.get("beat_f_stream") is not None
    ]
    diff = np.array([c["beat_f_stream"] - b["beat_f_stream"] for b, c in pairs])
    se = float(diff.std(ddof=1) / math.sqrt(diff.size)) if diff.size > 1 else math.nan

    def agree(rows: list[dict[str, Any]]) -> int:
        return sum(
            1
            for r in rows
            if r.get("tempo_truth") and _within(r.get("tempo_stream"), r.get("tempo_offline"), 0.02)
        )

    def mean(rows: list[dict[str, Any]], key: str) -> float:
        return float(np.mean([r[key] for r in rows])) if rows else math.nan

    return SetSummary(
        name=name,
        n_takes=diff.size,
        beat_f_offline=mean([b for b, _ in pairs], "beat_f_offline"),
        beat_f_base=mean([b for b, _ in pairs], "beat_f_stream"),
        beat_f_changed=mean([c for _, c in pairs], "beat_f_stream"),
        agree_base=agree(base),
        agree_changed=agree(changed),
        n_tempo=sum(1 for r in base if r.get("tempo_truth")),
        diff_mean=float(diff.mean()) if diff.size else math.nan,
        diff_se=se,
        better=int((diff > 0.01).sum()),
        worse=int((diff < -0.01).sum()),
    )


def moved_takes(
    name: str, base: list[dict[str, Any]], changed: list[dict[str, Any]], *, by: float = 0.01
) -> list[str]:
    """A line for each take whose stream beat F moved by more than ``by``: its set, clip, the
    stream's beat F and tempo with the defaults and with the change, and offline's."""
    lines = []
    for b, c in zip(base, changed, strict=True):
        if "beat_f_stream" not in b:
            continue
        if abs(c["beat_f_stream"] - b["beat_f_stream"]) > by:
            lines.append(
                f"{name:10s} {b['clip']:36s} beat F {b['beat_f_stream']:.3f} -> "
                f"{c['beat_f_stream']:.3f} (offline {b['beat_f_offline']:.3f}); tempo "
                f"{_bpm(b.get('tempo_stream'))} -> {_bpm(c.get('tempo_stream'))} "
                f"(offline {_bpm(b.get('tempo_offline'))})"
            )
    return lines


def _bpm(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _set_overrides(overrides: dict[str, Any]) -> None:
    import audio_engine.stream as stream

    for name, value in overrides.items():
        setattr(stream, name, value)


def _run(clips: list[str], overrides: dict[str, Any], jobs: int) -> list[dict[str, Any]]:
    with ProcessPoolExecutor(jobs, initializer=_set_overrides, initargs=(overrides,)) as ex:
        return list(ex.map(_one, clips))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--seeds", default="555,99", help="held-out renders (synth.py --pool all)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--takes", action="store_true",
                    help="also list the takes whose stream beat F moved by more than 0.01")
    a = ap.parse_args(argv)
    if not a.sets:
        ap.error("give at least one --set NAME=VALUE")
    try:
        overrides = parse_overrides(a.sets)
        seeds = [int(s) for s in a.seeds.split(",") if s.strip()]
    except ValueError as exc:
        ap.error(str(exc))
    from benchmarks.datasets import DatasetError, ensure_fresh_set, ensure_rendered_set, eval_dir

    dev = eval_dir() / "dev"
    try:
        sets = {
            "dev-real": sorted(str(p) for p in (dev / "real").glob("*.flac")),
            "dev-synth": sorted(str(p) for p in (dev / "synth").glob("*.flac")),
            "fresh": sorted(str(p) for p in ensure_fresh_set().glob("*.flac")),
        }
        for seed in seeds:
            folder = ensure_rendered_set(seed)
            sets[f"seed-{seed}"] = sorted(str(p) for p in Path(folder).glob("*.flac"))
    except DatasetError as exc:
        ap.error(str(exc))
    if not sets["dev-real"]:
        ap.error(f"no clips under {dev}; set MPT_EVAL_DIR to the shared eval folder")
    clips = [c for paths in sets.values() for c in paths]
    base = dict(zip(clips, _run(clips, {}, a.jobs), strict=True))
    changed = dict(zip(clips, _run(clips, overrides, a.jobs), strict=True))
    print(f"change: {json.dumps(overrides)}")
    unseen_base: list[dict[str, Any]] = []
    unseen_changed: list[dict[str, Any]] = []
    for name, paths in sets.items():
        rows_b, rows_c = [base[p] for p in paths], [changed[p] for p in paths]
        print(summarise(name, rows_b, rows_c).line())
        if not name.startswith("dev"):
            unseen_base += rows_b
            unseen_changed += rows_c
    print(summarise("never tuned on", unseen_base, unseen_changed).line())
    if a.takes:
        for name, paths in sets.items():
            for line in moved_takes(name, [base[p] for p in paths], [changed[p] for p in paths]):
                print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
