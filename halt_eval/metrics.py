"""The metric catalogue and task-level aggregation.

Per response (see ``ScoredResponse``): ``n_given``, ``n_correct``, ``correctness`` (undefined
when nothing was given), ``completeness``, ``f1``, ``abstained``. Per task: the mean of each
over the responses where it is defined, pooled-fragment ``micro_correctness``,
``abstention_rate``, and 95% percentile-bootstrap confidence intervals.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """One entry of the catalogue."""

    name: str
    description: str
    higher_is_better: bool


#: Every metric name the harness writes, once. Task YAMLs are checked against it.
METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("correctness", "share of given fragments that are correct", True),
        MetricInfo("completeness", "correct fragments against what a complete answer needs", True),
        MetricInfo("f1", "harmonic mean of correctness and completeness", True),
        MetricInfo("abstained", "the answer holds the abstention marker or gives nothing", False),
        MetricInfo("n_given", "fragments given before the abstention marker", True),
        MetricInfo("n_correct", "fragments judged correct", True),
        MetricInfo("micro_correctness", "correct fragments over all given fragments, pooled", True),
        MetricInfo("abstention_rate", "share of responses that abstained", False),
    )
}

#: Metrics that get a confidence interval in summaries.
CI_METRICS: tuple[str, ...] = ("correctness", "completeness", "f1", "micro_correctness")


def _defined(values: Iterable[Any]) -> np.ndarray:
    return np.array(
        [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))],
        dtype=float,
    )


def mean_defined(values: Iterable[Any]) -> float | None:
    """Mean over values that are not ``None``/NaN; ``None`` if there are none."""
    arr = _defined(values)
    return float(arr.mean()) if arr.size else None


def pooled_ratio(pairs: Iterable[Sequence[float]]) -> float | None:
    """``sum(a) / sum(b)`` over ``(a, b)`` pairs: pooled-fragment (micro) correctness."""
    arr = np.array([tuple(p) for p in pairs], dtype=float).reshape(-1, 2)
    total = arr[:, 1].sum()
    return float(arr[:, 0].sum() / total) if total else None


def bootstrap_ci(values: Iterable[Any], *, statistic: str = "mean",
                 resamples: int = BOOTSTRAP_RESAMPLES, confidence: float = CONFIDENCE,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean (or, for ``statistic="ratio"``, of the pooled
    ratio of ``(a, b)`` pairs). ``None`` with fewer than two values.
    """
    rng = np.random.default_rng(seed)
    if statistic == "ratio":
        arr = np.array([tuple(p) for p in values], dtype=float).reshape(-1, 2)
        if len(arr) < 2:
            return None
        idx = rng.integers(0, len(arr), size=(resamples, len(arr)))
        num, den = arr[idx, 0].sum(axis=1), arr[idx, 1].sum(axis=1)
        stats = np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)
        stats = stats[~np.isnan(stats)]
    else:
        arr = _defined(values)
        if arr.size < 2:
            return None
        stats = arr[rng.integers(0, arr.size, size=(resamples, arr.size))].mean(axis=1)
    if not stats.size:
        return None
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


def response_metrics(row: Mapping[str, Any]) -> dict[str, Any]:
    """The per-response metric values of a serialized scored row."""
    return {
        "correctness": row.get("correctness"),
        "completeness": row.get("completeness"),
        "f1": row.get("f1"),
        "abstained": float(bool(row.get("abstained"))),
        "n_given": row.get("n_given", 0),
        "n_correct": row.get("n_correct", 0),
    }


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Task-level summary of serialized scored rows (``ScoredResponse.to_dict``).

    Returns:
        ``{"n": count, metric: value, metric + "_ci": [lo, hi] | None, ...}`` with
        ``micro_correctness`` and ``abstention_rate`` added and the fragment verdict counts
        under ``verdicts``.
    """
    per = [response_metrics(r) for r in rows]
    out: dict[str, Any] = {"n": len(rows)}
    for name in ("correctness", "completeness", "f1", "n_given", "n_correct"):
        out[name] = mean_defined(p[name] for p in per)
    out["abstention_rate"] = mean_defined(p["abstained"] for p in per)
    pairs = [(p["n_correct"], p["n_given"]) for p in per]
    out["micro_correctness"] = pooled_ratio(pairs)
    for name in CI_METRICS:
        ci = (bootstrap_ci(pairs, statistic="ratio") if name == "micro_correctness"
              else bootstrap_ci(p[name] for p in per))
        out[f"{name}_ci"] = list(ci) if ci else None
    counts = {"correct": 0, "incorrect": 0, "unverifiable": 0}
    for r in rows:
        for f in r.get("fragments", ()):
            counts[f["verdict"]] = counts.get(f["verdict"], 0) + 1
    out["verdicts"] = counts
    out["errors"] = sum(1 for r in rows if r.get("error"))
    return out
