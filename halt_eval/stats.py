"""Task statistics over per-answer values, and the one bootstrap.

Every task statistic is a ratio of per-answer sums, ``sum(numerator) / sum(denominator)``:

- a mean over the answers where a value is defined has numerator ``value`` (0 when undefined)
  and denominator ``1`` when defined, else ``0``;
- a pooled ratio (micro correctness) has numerator ``n_correct`` and denominator ``n_given``;
- a plain mean has denominator ``1``.

``bootstrap_ratios`` resamples answers with replacement and recomputes such ratios; the summaries'
percentile intervals (``bootstrap_interval``) and the gate's paired intervals (the same draw of
documents for both runs' columns) both come from it, so resampling lives in one place.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

#: Resamples of a summary's interval; 1,000 keeps a 95% bound stable to about 0.005 at n = 100.
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
#: Resample-by-answer cells drawn at once; caps the count matrix near 32 MB of int64.
_CHUNK_CELLS = 4_000_000

#: ``(numerator, denominator)`` per answer.
Columns = tuple[np.ndarray, np.ndarray]


def is_defined(value: Any) -> bool:
    """Not ``None`` and not NaN: the one test for an undefined per-answer value."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def mean_defined(values: Iterable[Any]) -> float | None:
    """Mean over values that are not ``None``/NaN; ``None`` if there are none."""
    kept = [float(v) for v in values if is_defined(v)]
    return float(np.mean(kept)) if kept else None


def pooled_ratio(pairs: Iterable[Sequence[float]]) -> float | None:
    """``sum(a) / sum(b)`` over ``(a, b)`` pairs; ``None`` when ``sum(b)`` is 0."""
    arr = np.array([tuple(p) for p in pairs], dtype=float).reshape(-1, 2)
    total = arr[:, 1].sum()
    return float(arr[:, 0].sum() / total) if total else None


def defined_columns(values: Sequence[Any]) -> Columns:
    """Columns of a mean over defined values: ``(value or 0, 1 if defined else 0)``."""
    defined = np.array([is_defined(v) for v in values], dtype=float)
    num = np.array([float(v) if d else 0.0 for v, d in zip(values, defined)], dtype=float)
    return num, defined


def pair_columns(pairs: Sequence[Sequence[float]]) -> Columns:
    """Columns of a pooled ratio of ``(a, b)`` pairs."""
    arr = np.array([tuple(p) for p in pairs], dtype=float).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def plain_columns(values: Sequence[float]) -> Columns:
    """Columns of a plain mean (every value defined)."""
    return np.array(values, dtype=float), np.ones(len(values))


def ratio(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    """Elementwise ``num / den``, NaN where ``den`` is 0."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def point(col: Columns) -> float | None:
    """The task statistic of one column pair; ``None`` when its denominator sums to 0."""
    den = float(col[1].sum())
    return float(col[0].sum() / den) if den > 0 else None


def bootstrap_ratios(columns: Sequence[Columns], *, resamples: int,
                     rng: np.random.Generator) -> np.ndarray:
    """Resample answers with replacement and recompute each column pair's ratio.

    Args:
        columns: ``(numerator, denominator)`` arrays, all over the same answers in the same
            order; one draw of answers serves every pair (so pairs from two runs stay paired).
        resamples: Number of resamples.
        rng: Source of the draws.

    Returns:
        Array of shape ``(resamples, len(columns))``; NaN where a resample leaves a
        denominator at 0.
    """
    n = len(columns[0][0]) if columns else 0
    if n == 0:
        return np.full((resamples, len(columns)), np.nan)
    matrix = np.stack([c for pair in columns for c in pair], axis=1)
    sums = np.empty((resamples, matrix.shape[1]))
    chunk = max(1, _CHUNK_CELLS // n)
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        # Count how often each answer is drawn in each resample, then sum by matrix product.
        idx = rng.integers(0, n, size=(k, n)) + n * np.arange(k)[:, None]
        counts = np.bincount(idx.ravel(), minlength=k * n).reshape(k, n)
        sums[start:start + k] = counts @ matrix
    return ratio(sums[:, 0::2], sums[:, 1::2])


def percentile_interval(draws: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Two-sided percentile interval of the defined draws; ``None`` with fewer than two."""
    d = np.asarray(draws, dtype=float)
    d = d[~np.isnan(d)]
    if d.size < 2:
        return None
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(d, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def bootstrap_intervals(cols: Sequence[Columns], *, resamples: int = BOOTSTRAP_RESAMPLES,
                        confidence: float = CONFIDENCE, seed: int = BOOTSTRAP_SEED) -> list[tuple[float, float] | None]:
    """Percentile bootstrap interval of each ``sum(numerator) / sum(denominator)``, all from
    one draw of answers.

    An interval is ``None`` when fewer than two answers have a non-zero denominator (one
    defined value resamples to itself: a point, not an interval).
    """
    if not cols:
        return []
    draws = bootstrap_ratios(cols, resamples=resamples, rng=np.random.default_rng(seed))
    return [percentile_interval(draws[:, i], confidence) if int((c[1] > 0).sum()) >= 2 else None
            for i, c in enumerate(cols)]


def bootstrap_interval(col: Columns, *, resamples: int = BOOTSTRAP_RESAMPLES,
                       confidence: float = CONFIDENCE, seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """``bootstrap_intervals`` of one column pair."""
    return bootstrap_intervals([col], resamples=resamples, confidence=confidence, seed=seed)[0]
