"""``halt-eval gate``: fail a candidate run that scores worse than a baseline, with confidence.

Samples are paired by ``(task, id)``; both runs must hold exactly the same tasks and documents.
For each task and metric, documents are resampled with replacement (the same draw for both
runs, so the pairing is kept) and the candidate-minus-baseline change of the task statistic is
recomputed on each resample; the percentile interval of those changes is the paired bootstrap
confidence interval.

A metric *regresses* when its whole interval lies below ``-max_drop`` (for ``abstention_rate``,
where lower is better, above ``+max_drop``): the drop is larger than the margin with the chosen
confidence. A point estimate past the margin whose interval still reaches it is reported as a
*possible drop* and does not fail the gate.

Undefined per-sample values: ``correctness`` is undefined for an answer that gives no fragment
(and ``completeness``/``f1`` when the needed count is unknown). As in ``metrics.summarize``, each
run's task mean is over its own samples where the metric is defined, on every resample; the
number excluded is reported per run. ``micro_correctness`` pools fragments, so empty answers add
nothing to it.

Exit codes: 0 pass, 1 regression, 2 bad input or unpaired runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from halt_eval.metrics import METRICS
from halt_eval.runs import Run, RunError, load_run

#: Metrics the gate can compare, each a ratio of per-sample sums (see ``_columns``).
GATE_METRICS: tuple[str, ...] = (
    "correctness", "completeness", "f1", "micro_correctness", "abstention_rate",
)
#: Largest allowed drop (absolute, in metric units on [0, 1]) when ``--max-drop`` is not given.
DEFAULT_MAX_DROP: dict[str, float] = {"correctness": 0.02, "completeness": 0.02, "f1": 0.02}
DEFAULT_CONFIDENCE = 0.95
#: Bootstrap resamples; 10,000 keeps the 95% bounds stable to about 0.001 at n = 1,000.
DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0
#: Resample-by-document cells drawn at once; caps the count matrix near 32 MB of int64.
_CHUNK_CELLS = 4_000_000

EXIT_PASS, EXIT_REGRESSION, EXIT_BAD_INPUT = 0, 1, 2
Status = Literal["pass", "possible drop", "regression", "not gated", "undefined"]


class GateError(ValueError):
    """Bad input to the gate: unreadable runs, unpaired samples or a bad option."""


@dataclass(frozen=True, slots=True)
class MetricResult:
    """One metric of one task, compared.

    Attributes:
        metric: Metric name from ``GATE_METRICS``.
        baseline: Task statistic of the baseline (``None`` when undefined).
        candidate: Task statistic of the candidate.
        change: ``candidate - baseline``.
        ci: Paired bootstrap interval of ``change`` at the gate's confidence.
        max_drop: Allowed drop, or ``None`` when the metric is not gated.
        status: ``pass``, ``possible drop``, ``regression``, ``not gated`` or ``undefined``.
        undefined_baseline: Baseline samples where the per-sample value is undefined.
        undefined_candidate: Candidate samples where it is undefined.
    """

    metric: str
    baseline: float | None
    candidate: float | None
    change: float | None
    ci: tuple[float, float] | None
    max_drop: float | None
    status: Status
    undefined_baseline: int
    undefined_candidate: int


@dataclass(frozen=True, slots=True)
class TaskResult:
    """Every compared metric of one task."""

    task: str
    n_pairs: int
    metrics: tuple[MetricResult, ...]


def parse_max_drop(text: str) -> dict[str, float]:
    """Parse ``correctness=0.02,f1=0.03``.

    Raises:
        GateError: An unknown metric or a value that is not a number in [0, 1].
    """
    out: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in GATE_METRICS:
            raise GateError(f"--max-drop: expected METRIC=DROP with METRIC one of "
                            f"{', '.join(GATE_METRICS)}, got {part!r}")
        try:
            drop = float(value)
        except ValueError as e:
            raise GateError(f"--max-drop: {name} needs a number, got {value!r}") from e
        if not 0.0 <= drop <= 1.0:
            raise GateError(f"--max-drop: {name} must lie in [0, 1], got {drop}")
        out[name] = drop
    if not out:
        raise GateError(f"--max-drop: no metric given in {text!r}")
    return out


def _columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-sample ``(numerator, denominator)`` of each metric; the task statistic is
    ``sum(numerator) / sum(denominator)``. A mean over defined samples has numerator
    ``value or 0`` and denominator ``1 if defined else 0``."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in ("correctness", "completeness", "f1"):
        values = [row.get(name) for row in rows]
        defined = np.array([v is not None and not math.isnan(v) for v in values], dtype=float)
        num = np.array([v if d else 0.0 for v, d in zip(values, defined)], dtype=float)
        out[name] = (num, defined)
    out["micro_correctness"] = (
        np.array([row.get("n_correct") or 0 for row in rows], dtype=float),
        np.array([row.get("n_given") or 0 for row in rows], dtype=float),
    )
    out["abstention_rate"] = (
        np.array([bool(row.get("abstained")) for row in rows], dtype=float),
        np.ones(len(rows)),
    )
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def paired_bootstrap(base: Mapping[str, tuple[np.ndarray, np.ndarray]],
                     cand: Mapping[str, tuple[np.ndarray, np.ndarray]], *,
                     resamples: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Changes ``candidate - baseline`` of each metric's statistic over paired resamples.

    Args:
        base: ``_columns`` of the baseline rows.
        cand: ``_columns`` of the candidate rows, in the same document order.
        resamples: Number of resamples.
        rng: Source of the draws; one draw of documents serves every metric.

    Returns:
        Metric name to ``resamples`` changes; NaN where a resample leaves a statistic undefined.
    """
    names = list(base)
    n = len(next(iter(base.values()))[0])
    # Columns: numerator and denominator of each metric, baseline then candidate.
    matrix = np.stack([col for m in names for col in (*base[m], *cand[m])], axis=1)
    sums = np.empty((resamples, matrix.shape[1]))
    chunk = max(1, _CHUNK_CELLS // max(n, 1))
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(k, n)) + n * np.arange(k)[:, None]
        counts = np.bincount(idx.ravel(), minlength=k * n).reshape(k, n)
        sums[start:start + k] = counts @ matrix
    return {m: _ratio(sums[:, 4 * i + 2], sums[:, 4 * i + 3]) - _ratio(sums[:, 4 * i], sums[:, 4 * i + 1])
            for i, m in enumerate(names)}


def _point(col: tuple[np.ndarray, np.ndarray]) -> float | None:
    den = col[1].sum()
    return float(col[0].sum() / den) if den > 0 else None


def compare_task(task: str, base_rows: Sequence[Mapping[str, Any]],
                 cand_rows: Sequence[Mapping[str, Any]], *, max_drop: Mapping[str, float],
                 confidence: float, resamples: int, rng: np.random.Generator) -> TaskResult:
    """Compare one task's paired rows (same documents, same order)."""
    base, cand = _columns(base_rows), _columns(cand_rows)
    diffs = paired_bootstrap(base, cand, resamples=resamples, rng=rng)
    alpha = (1.0 - confidence) / 2.0
    results = []
    for m in GATE_METRICS:
        b, c = _point(base[m]), _point(cand[m])
        # Per-sample undefined counts apply to means of defined values, not pooled ratios.
        undef_b = int((base[m][1] == 0).sum()) if m in ("correctness", "completeness", "f1") else 0
        undef_c = int((cand[m][1] == 0).sum()) if m in ("correctness", "completeness", "f1") else 0
        drop = max_drop.get(m)
        d = diffs[m][~np.isnan(diffs[m])]  # resamples where either statistic is undefined drop out
        # One pair resamples to itself: its "interval" would be a point, not a confidence bound.
        if b is None or c is None or len(base_rows) < 2 or d.size < 2:
            results.append(MetricResult(m, b, c, None, None, drop, "undefined", undef_b, undef_c))
            continue
        lo, hi = (float(x) for x in np.quantile(d, [alpha, 1.0 - alpha]))
        change = c - b
        status: Status = "not gated"
        if drop is not None:
            sign = 1.0 if METRICS[m].higher_is_better else -1.0
            # In the "better" direction, the interval's most favourable end and the estimate.
            best, est = max(sign * lo, sign * hi), sign * change
            status = "regression" if best < -drop else "possible drop" if est < -drop else "pass"
        results.append(MetricResult(m, b, c, change, (lo, hi), drop, status, undef_b, undef_c))
    return TaskResult(task, len(base_rows), tuple(results))


def pair_runs(baseline: Run, candidate: Run) -> dict[str, tuple[list[dict], list[dict]]]:
    """Rows of both runs paired by ``(task, id)``, in baseline order.

    Raises:
        GateError: A task or document is in one run only; the message names what is missing.
    """
    problems = []
    for task in sorted(set(baseline.tasks) - set(candidate.tasks)):
        problems.append(f"task {task!r} is only in the baseline ({baseline.path})")
    for task in sorted(set(candidate.tasks) - set(baseline.tasks)):
        problems.append(f"task {task!r} is only in the candidate ({candidate.path})")
    paired = {}
    for task in sorted(set(baseline.tasks) & set(candidate.tasks)):
        b_ids = {r["id"]: r for r in baseline.tasks[task]}
        c_ids = {r["id"]: r for r in candidate.tasks[task]}
        only_b = [i for i in b_ids if i not in c_ids]
        only_c = [i for i in c_ids if i not in b_ids]
        for ids, side in ((only_b, "baseline"), (only_c, "candidate")):
            if ids:
                shown = ", ".join(repr(i) for i in ids[:5]) + (", ..." if len(ids) > 5 else "")
                problems.append(f"task {task!r}: {len(ids)} document id(s) only in the {side} ({shown})")
        paired[task] = (list(b_ids.values()), [c_ids[i] for i in b_ids if i in c_ids])
    if problems:
        raise GateError("unpaired runs: " + "; ".join(problems))
    return paired


def gate(baseline: Run, candidate: Run, *, max_drop: Mapping[str, float] | None = None,
         confidence: float = DEFAULT_CONFIDENCE, resamples: int = DEFAULT_RESAMPLES,
         seed: int = DEFAULT_SEED) -> list[TaskResult]:
    """Compare every task of two paired runs.

    Args:
        baseline: The reference run.
        candidate: The run under test.
        max_drop: Allowed drop per gated metric; ``DEFAULT_MAX_DROP`` when ``None``.
        confidence: Two-sided confidence of the intervals, in (0, 1).
        resamples: Bootstrap resamples per task.
        seed: Seed of the draws; the same seed gives the same intervals.

    Raises:
        GateError: Unpaired runs, a bad option, or an explicitly gated metric undefined in a task.
    """
    if not 0.0 < confidence < 1.0:
        raise GateError(f"--confidence must lie in (0, 1), got {confidence}")
    if resamples < 100:
        raise GateError(f"--resamples must be at least 100, got {resamples}")
    explicit = max_drop is not None
    max_drop = dict(DEFAULT_MAX_DROP if max_drop is None else max_drop)
    rng = np.random.default_rng(seed)
    results = [compare_task(task, b, c, max_drop=max_drop, confidence=confidence,
                            resamples=resamples, rng=rng)
               for task, (b, c) in pair_runs(baseline, candidate).items()]
    if explicit:
        for t in results:
            for m in t.metrics:
                if m.status == "undefined" and m.max_drop is not None:
                    raise GateError(f"task {t.task!r}: {m.metric} is undefined (fewer than two "
                                    "samples where it is defined), so it cannot be gated")
    return results


def exit_code(results: Sequence[TaskResult]) -> int:
    """1 when any metric regressed, else 0."""
    regressed = any(m.status == "regression" for t in results for m in t.metrics)
    return EXIT_REGRESSION if regressed else EXIT_PASS


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    text = f"{x:+.3f}" if signed else f"{x:.3f}"
    return text.replace("-", "\u2212")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_ICON = {"pass": "\u2705 pass", "possible drop": "\u26a0\ufe0f possible drop",
         "regression": "\u274c regression", "not gated": "not gated", "undefined": "undefined"}


def to_markdown(baseline: Run, candidate: Run, results: Sequence[TaskResult], *,
                confidence: float, resamples: int, seed: int) -> str:
    """A Markdown summary for a pull request comment or ``$GITHUB_STEP_SUMMARY``."""
    code = exit_code(results)
    head = "\u274c regression" if code == EXIT_REGRESSION else "\u2705 pass"
    n_pairs = sum(t.n_pairs for t in results)
    pct = f"{confidence * 100:g}%"
    lines = [
        f"## halt-eval gate: {head}",
        "",
        f"Baseline `{_cell(baseline.name)}` vs candidate `{_cell(candidate.name)}`: "
        f"{len(results)} task(s), {n_pairs:,} paired samples. Paired bootstrap over documents, "
        f"{resamples:,} resamples, seed {seed}; a metric regresses when its whole {pct} interval "
        "lies past the allowed drop.",
        "",
        f"| task | metric | baseline | candidate | change | {pct} interval | max drop | result |",
        "|---|---|---:|---:|---:|---|---:|---|",
    ]
    notes = []
    for t in results:
        for m in t.metrics:
            ci = f"[{_fmt(m.ci[0], True)}, {_fmt(m.ci[1], True)}]" if m.ci else "n/a"
            drop = _fmt(m.max_drop) if m.max_drop is not None else ""
            lines.append(f"| {_cell(t.task)} | {m.metric} | {_fmt(m.baseline)} | {_fmt(m.candidate)} "
                         f"| {_fmt(m.change, True)} | {ci} | {drop} | {_ICON[m.status]} |")
            if m.undefined_baseline or m.undefined_candidate:
                notes.append(f"- {_cell(t.task)} {m.metric}: undefined for {m.undefined_baseline} "
                             f"baseline and {m.undefined_candidate} candidate sample(s) of {t.n_pairs} "
                             "(nothing given, or the needed count unknown); each run's mean leaves "
                             "its own out.")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def to_json(baseline: Run, candidate: Run, results: Sequence[TaskResult], *,
            confidence: float, resamples: int, seed: int) -> dict[str, Any]:
    """The machine-readable verdict."""
    code = exit_code(results)
    return {
        "verdict": "regression" if code == EXIT_REGRESSION else "pass",
        "exit_code": code,
        "baseline": {"name": baseline.name, "path": str(baseline.path), "source": baseline.source},
        "candidate": {"name": candidate.name, "path": str(candidate.path), "source": candidate.source},
        "confidence": confidence,
        "resamples": resamples,
        "seed": seed,
        "tasks": [
            {"task": t.task, "n_pairs": t.n_pairs,
             "metrics": [{**asdict(m), "ci": list(m.ci) if m.ci else None} for m in t.metrics]}
            for t in results
        ],
    }


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``halt-eval gate`` options."""
    parser.epilog = ("Samples are paired by (task, document id); a metric fails when its whole paired "
                     "bootstrap interval lies past the allowed drop.\n"
                     "Exit codes: 0 pass, 1 regression, 2 bad input or unpaired runs.")
    parser.add_argument("--baseline", required=True, metavar="RUN",
                        help="baseline run: a halt-eval score JSONL or folder, or an lm-eval output folder")
    parser.add_argument("--candidate", required=True, metavar="RUN", help="candidate run, same forms")
    parser.add_argument("--baseline-name", metavar="NAME",
                        help="display name of the baseline (default: lm-eval model name, else file or folder name)")
    parser.add_argument("--candidate-name", metavar="NAME", help="display name of the candidate")
    defaults = ",".join(f"{k}={v}" for k, v in DEFAULT_MAX_DROP.items())
    parser.add_argument("--max-drop", metavar="METRIC=DROP,...", default=None,
                        help=f"allowed drop per metric; only the named metrics are gated "
                             f"(default {defaults}; metrics: {', '.join(GATE_METRICS)})")
    parser.add_argument("--confidence", type=float, default=DEFAULT_CONFIDENCE,
                        help=f"two-sided confidence of the intervals (default {DEFAULT_CONFIDENCE})")
    parser.add_argument("--resamples", type=int, default=DEFAULT_RESAMPLES,
                        help=f"bootstrap resamples per task (default {DEFAULT_RESAMPLES})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    parser.add_argument("--markdown", metavar="FILE", type=Path,
                        help="write the Markdown summary here (also appended to $GITHUB_STEP_SUMMARY when set)")
    parser.add_argument("--json", metavar="FILE", type=Path, help="write the JSON verdict here")


def _write(path: Path | None, text: str, *, append: bool = False) -> None:
    if path is None:
        return
    with path.open("a" if append else "w", encoding="utf-8") as fh:
        fh.write(text)


def run(args: argparse.Namespace) -> int:
    """Run the gate; print the Markdown summary; return the exit code."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    try:
        max_drop = parse_max_drop(args.max_drop) if args.max_drop is not None else None
        baseline = load_run(args.baseline, args.baseline_name)
        candidate = load_run(args.candidate, args.candidate_name)
        results = gate(baseline, candidate, max_drop=max_drop, confidence=args.confidence,
                       resamples=args.resamples, seed=args.seed)
    except (GateError, RunError) as e:
        message = f"halt-eval gate: error: {e}"
        print(message, file=sys.stderr)
        _write(args.markdown, f"## halt-eval gate: error\n\n{message}\n")
        _write(Path(summary) if summary else None, f"## halt-eval gate: error\n\n{message}\n", append=True)
        _write(args.json, json.dumps({"verdict": "error", "exit_code": EXIT_BAD_INPUT, "error": str(e)},
                                     indent=2) + "\n")
        return EXIT_BAD_INPUT
    for note in (*baseline.skipped, *candidate.skipped):
        print(f"halt-eval gate: skipped {note}", file=sys.stderr)
    opts = {"confidence": args.confidence, "resamples": args.resamples, "seed": args.seed}
    markdown = to_markdown(baseline, candidate, results, **opts)
    print(markdown, end="")
    _write(args.markdown, markdown)
    _write(Path(summary) if summary else None, markdown, append=True)
    _write(args.json, json.dumps(to_json(baseline, candidate, results, **opts), indent=2) + "\n")
    return exit_code(results)
