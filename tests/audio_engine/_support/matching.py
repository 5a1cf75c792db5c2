"""One-to-one matching of detected event times against the truth (like mir_eval's F-measure)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray


@dataclass(frozen=True)
class Match:
    """Result of matching estimated events to reference events within a tolerance."""

    precision: float
    recall: float
    f_measure: float
    errors_s: NDArray[np.float64]  # estimate - reference of every matched pair, by reference


def match_events(estimated: ArrayLike, reference: ArrayLike, tol_s: float) -> Match:
    """Greedy closest-pair matching: each reference and estimate is used at most once."""
    est = np.asarray(estimated, dtype=np.float64).ravel()
    ref = np.asarray(reference, dtype=np.float64).ravel()
    if est.size == 0 or ref.size == 0:
        f = 1.0 if est.size == ref.size else 0.0
        return Match(f, f, f, np.zeros(0))
    d = np.abs(est[:, None] - ref[None, :])
    pairs = sorted(zip(*np.nonzero(d <= tol_s), strict=True), key=lambda ij: d[ij])
    used_e: set[int] = set()
    used_r: set[int] = set()
    errors: dict[int, float] = {}
    for i, j in pairs:
        if i in used_e or j in used_r:
            continue
        used_e.add(int(i))
        used_r.add(int(j))
        errors[int(j)] = float(est[i] - ref[j])
    hits = len(errors)
    p, r = hits / est.size, hits / ref.size
    f = 2 * p * r / (p + r) if hits else 0.0
    return Match(p, r, f, np.array([errors[j] for j in sorted(errors)]))
