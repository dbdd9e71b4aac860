"""``halt-eval gate``: fail a candidate run that scores worse than a baseline, with confidence.

Samples are paired by ``(task, id, sample)``; both runs must hold exactly the same tasks,
documents and samples. A document with several samples (lm-eval ``repeats``) counts once: its
value is the mean over its samples, as lm-eval's per-document value is. For each task and
metric, documents are resampled with replacement (the same draw for both runs, so the pairing
is kept) and the candidate-minus-baseline change of the task statistic is recomputed on each
resample; the percentile interval of those changes is the paired bootstrap confidence interval.

A metric *regresses* when its whole interval lies below ``-max_drop`` (for ``abstained``, the share of answers that abstained,
where lower is better, above ``+max_drop``): the drop is larger than the margin with the chosen
confidence. A point estimate past the margin whose interval still reaches it is reported as a
*possible drop* and does not fail the gate.

The compared metrics, their direction and how each handles undefined per-sample values come
from ``halt_eval.catalogue`` (every metric with a direction), the resampling from
``halt_eval.stats``: ``correctness`` is undefined for an answer that gives no fragment (and
``completeness``/``f1`` when the needed count is unknown); as in ``catalogue.summarize``, each
run's task mean is over its own samples where the metric is defined, on every resample, and the
number excluded is reported per run. ``micro_correctness`` pools fragments, so empty answers add
nothing to it.

Rows scored under different rules versions (``halt_eval.rules.RULES_VERSION``) are not
comparable: the gate refuses to pair them, in either run or between the two, with exit 2.

Exit codes: 0 pass, 1 regression and nothing else; 2 for everything that is not a comparison
result: bad input, unpaired runs, mixed rules versions, a gated metric defined in one run but in
no row of the other, a bad option, or an output (``--markdown``, ``--json``,
``$GITHUB_STEP_SUMMARY``) that cannot be written. Errors are one line on stderr.

Text from the runs (task names, run names, judge descriptions, ids in error messages) is
escaped in the Markdown so a name cannot inject HTML, links or ``@mentions`` into a pull
request summary.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from halt_eval import stats
from halt_eval.catalogue import QUALITY_METRICS
from halt_eval.runs import Run, RunError, load_run, row_key
from halt_eval.types import ScoredResponse

#: Metrics the gate can compare (by summary name): every catalogue metric with a direction.
GATE_METRICS: tuple[str, ...] = tuple(QUALITY_METRICS)
#: Largest allowed drop (absolute, in metric units on [0, 1]) when ``--max-drop`` is not given.
DEFAULT_MAX_DROP: dict[str, float] = {"correctness": 0.02, "completeness": 0.02, "f1": 0.02}
DEFAULT_CONFIDENCE = 0.95
#: Bootstrap resamples; 10,000 keeps the 95% bounds stable to about 0.001 at n = 1,000.
DEFAULT_RESAMPLES = 10_000
DEFAULT_SEED = 0
#: Most resamples accepted: 10x the default; past it a task's draws would take minutes and
#: gigabytes without changing the decision.
MAX_RESAMPLES = 100_000
#: numpy seeds are non-negative; larger values than this are surely a mistake.
MAX_SEED = 2**63 - 1

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
        undefined_baseline: Baseline documents where the per-document value is undefined.
        undefined_candidate: Candidate documents where it is undefined.
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
    #: Paired documents (``n_pairs`` counts paired samples; more with several per document).
    n_documents: int = 0


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


def _documents(rows: Sequence[ScoredResponse]) -> list[list[int]]:
    """Row indices grouped by document id, documents in order of their first row."""
    docs: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        docs.setdefault(r.response.id, []).append(i)
    return list(docs.values())


def _columns(rows: Sequence[ScoredResponse]) -> dict[str, stats.Columns]:
    """Per-document ``(numerator, denominator)`` of each gated metric.

    With one row per document these are the rows' ``Metric.columns``. With several samples
    per document (lm-eval ``repeats``, or score rows naming a ``sample``), a document's value is
    the mean over its samples (over those where it is defined; undefined when none is), as
    ``halt_eval.lmeval.process_results`` computes it, so the task statistic is lm-eval's mean
    over documents; ``micro_correctness`` pools the document's fragments. Documents, not
    samples, are the bootstrap's unit: a document's samples are not independent.
    """
    groups = _documents(rows)
    out = {}
    for name, m in QUALITY_METRICS.items():
        num, den = m.columns(rows)
        if len(groups) < len(rows):
            num = np.array([num[g].sum() for g in groups], dtype=float)
            den = np.array([den[g].sum() for g in groups], dtype=float)
            if m.aggregation != "pooled_ratio":
                num, den = np.nan_to_num(stats.ratio(num, den)), (den > 0).astype(float)
        out[name] = (num, den)
    return out


def paired_bootstrap(base: Mapping[str, stats.Columns], cand: Mapping[str, stats.Columns], *,
                     resamples: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Changes ``candidate - baseline`` of each metric's statistic over paired resamples.

    Args:
        base: ``_columns`` of the baseline rows.
        cand: ``_columns`` of the candidate rows, in the same document order.
        resamples: Number of resamples.
        rng: Source of the draws; one draw of documents serves every metric and both runs.

    Returns:
        Metric name to ``resamples`` changes; NaN where a resample leaves a statistic undefined.
    """
    names = list(base)
    draws = stats.bootstrap_ratios([*(base[m] for m in names), *(cand[m] for m in names)],
                                   resamples=resamples, rng=rng)
    k = len(names)
    return {m: draws[:, k + i] - draws[:, i] for i, m in enumerate(names)}


def compare_task(task: str, base_rows: Sequence[ScoredResponse],
                 cand_rows: Sequence[ScoredResponse], *, max_drop: Mapping[str, float],
                 confidence: float, resamples: int, rng: np.random.Generator) -> TaskResult:
    """Compare one task's paired rows (same documents and samples, same order); the
    statistics and the resampling are per document (``_columns``)."""
    base, cand = _columns(base_rows), _columns(cand_rows)
    n_docs = len(_documents(base_rows))
    diffs = paired_bootstrap(base, cand, resamples=resamples, rng=rng)
    results = []
    for m, metric in QUALITY_METRICS.items():
        b, c = stats.point(base[m]), stats.point(cand[m])
        # Per-document undefined counts apply to means of defined values, not pooled ratios.
        per_sample = metric.aggregation == "mean_defined"
        undef_b = int((base[m][1] == 0).sum()) if per_sample else 0
        undef_c = int((cand[m][1] == 0).sum()) if per_sample else 0
        drop = max_drop.get(m)
        # Resamples where either statistic is undefined drop out; one pair resamples to
        # itself, so its "interval" would be a point, not a confidence bound.
        ci = stats.percentile_interval(diffs[m], confidence) if n_docs >= 2 else None
        if b is None or c is None or ci is None:
            results.append(MetricResult(m, b, c, None, None, drop, "undefined", undef_b, undef_c))
            continue
        lo, hi = ci
        change = c - b
        status: Status = "not gated"
        if drop is not None:
            sign = 1.0 if metric.direction == "higher" else -1.0
            # In the "better" direction, the interval's most favourable end and the estimate.
            best, est = max(sign * lo, sign * hi), sign * change
            status = "regression" if best < -drop else "possible drop" if est < -drop else "pass"
        results.append(MetricResult(m, b, c, change, (lo, hi), drop, status, undef_b, undef_c))
    return TaskResult(task, len(base_rows), tuple(results), n_docs)


def check_rules_versions(baseline: Run, candidate: Run) -> str:
    """The one rules version both runs were scored under.

    Raises:
        GateError: A run holds rows of several rules versions, or the two runs differ; one
            line naming the versions and the fix.
    """
    for side, run in (("baseline", baseline), ("candidate", candidate)):
        if len(run.rules_versions) > 1:
            raise GateError(f"the {side} ({run.path}) mixes rows scored under rules versions "
                            f"{', '.join(run.rules_versions)}; rescore it so every row has one version")
    b, c = baseline.rules_versions[0], candidate.rules_versions[0]
    if b != c:
        raise GateError(f"rules versions differ: baseline ({baseline.path}) was scored under rules "
                        f"version {b}, candidate ({candidate.path}) under {c}; rescore one of them "
                        "with the other's halt-eval so both use the same rules")
    return b


def needed_modes(rows: Sequence[ScoredResponse]) -> list[str]:
    """The needed-count modes (``judge_spec["n_desired"]``: ``reference``, ``capable`` ...)
    the rows were scored under; rows that do not record one are left out."""
    return sorted({str(m) for r in rows if (m := r.judge_spec.get("n_desired")) is not None})


def check_needed_modes(paired: Mapping[str, tuple[Sequence[ScoredResponse], Sequence[ScoredResponse]]],
                       baseline: Run, candidate: Run) -> None:
    """Per task, both runs' rows were scored under one and the same needed-count mode:
    completeness against the reference and against ``n_capable`` (or a fixed count) are
    different measures, and pairing them would report a change no model made.

    Raises:
        GateError: A task's rows mix modes within a run, or the two runs differ; one line
            naming the task, the modes and the fix.
    """
    for task, (b_rows, c_rows) in paired.items():
        modes = {}
        for side, run, rows in (("baseline", baseline, b_rows), ("candidate", candidate, c_rows)):
            modes[side] = needed_modes(rows)
            if len(modes[side]) > 1:
                raise GateError(f"task {task!r}: the {side} ({run.path}) mixes rows scored under "
                                f"needed-count modes {', '.join(modes[side])}; rescore it with one "
                                "--n-desired")
        if modes["baseline"] and modes["candidate"] and modes["baseline"] != modes["candidate"]:
            raise GateError(f"task {task!r}: needed-count modes differ: baseline ({baseline.path}) "
                            f"was scored with n_desired {modes['baseline'][0]}, candidate "
                            f"({candidate.path}) with {modes['candidate'][0]}; rescore one of them "
                            "with the other's --n-desired (or task metadata n_desired)")


def pair_runs(baseline: Run, candidate: Run) -> dict[str, tuple[list[ScoredResponse], list[ScoredResponse]]]:
    """Rows of both runs paired by ``(task, id, sample)``, in baseline order.

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
        b_ids = {row_key(r): r for r in baseline.tasks[task]}
        c_ids = {row_key(r): r for r in candidate.tasks[task]}
        only_b = [i for i in b_ids if i not in c_ids]
        only_c = [i for i in c_ids if i not in b_ids]
        for keys, side in ((only_b, "baseline"), (only_c, "candidate")):
            if keys:
                shown = ", ".join(_show_key(k) for k in keys[:5]) + (", ..." if len(keys) > 5 else "")
                problems.append(f"task {task!r}: {len(keys)} document id(s) only in the {side} ({shown})")
        paired[task] = (list(b_ids.values()), [c_ids[i] for i in b_ids if i in c_ids])
    if problems:
        raise GateError("unpaired runs: " + "; ".join(problems))
    return paired


def _show_key(key: tuple[str, int]) -> str:
    doc_id, sample = key
    return f"{doc_id!r} sample {sample}" if sample else repr(doc_id)


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
        GateError: Unpaired runs, mixed rules versions or needed-count modes, a bad option, or
            an explicitly gated metric undefined in a task.
    """
    if not 0.0 < confidence < 1.0:
        raise GateError(f"--confidence must lie in (0, 1), got {confidence}")
    check_options(confidence=confidence, resamples=resamples, seed=seed)
    explicit = max_drop is not None
    max_drop = dict(DEFAULT_MAX_DROP if max_drop is None else max_drop)
    check_rules_versions(baseline, candidate)
    rng = np.random.default_rng(seed)
    paired = pair_runs(baseline, candidate)
    check_needed_modes(paired, baseline, candidate)
    for task, (b, c) in paired.items():
        check_defined(task, b, c, baseline, candidate, max_drop)
    results = [compare_task(task, b, c, max_drop=max_drop, confidence=confidence,
                            resamples=resamples, rng=rng)
               for task, (b, c) in paired.items()]
    if explicit:
        for t in results:
            for m in t.metrics:
                if m.status == "undefined" and m.max_drop is not None:
                    raise GateError(f"task {t.task!r}: {m.metric} is undefined (fewer than two "
                                    "samples where it is defined), so it cannot be gated")
    return results


def check_options(*, confidence: float, resamples: int, seed: int) -> None:
    """Refuse option values the gate cannot honour.

    Raises:
        GateError: ``confidence`` outside (0, 1) or not finite, ``resamples`` outside
            [100, ``MAX_RESAMPLES``], ``seed`` negative or past ``MAX_SEED``.
    """
    if not (math.isfinite(confidence) and 0.0 < confidence < 1.0):
        raise GateError(f"--confidence must lie in (0, 1), got {confidence}")
    if not 100 <= resamples <= MAX_RESAMPLES:
        raise GateError(f"--resamples must lie in [100, {MAX_RESAMPLES:,}], got {resamples}")
    if not 0 <= seed <= MAX_SEED:
        raise GateError(f"--seed must lie in [0, 2**63 - 1], got {seed}")


def _check_value(metric: str, value: float | None, row: ScoredResponse, side: str, run: Run) -> None:
    if value is not None and not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise GateError(f"{side} ({run.path}) task {row.response.task!r} id {row.response.id!r}: "
                        f"{metric} is {value!r}, not a number in [0, 1]")


def check_defined(task: str, base_rows: Sequence[ScoredResponse], cand_rows: Sequence[ScoredResponse],
                  baseline: Run, candidate: Run, max_drop: Mapping[str, float]) -> None:
    """Every per-row value of each metric lies in [0, 1]; a gated metric defined in one run is
    defined in at least one row of the other.

    A candidate whose every answer leaves a gated metric undefined (NaN, missing, nothing
    given) cannot be compared; passing it would let a broken run through the gate.

    Raises:
        GateError: Naming the run, the task, the metric and (for a bad value) the row's id.
    """
    for m, metric in QUALITY_METRICS.items():
        if metric.aggregation != "mean_defined":
            continue
        defined = {}
        for side, run, rows in (("baseline", baseline, base_rows), ("candidate", candidate, cand_rows)):
            values = [metric.value(r) for r in rows]
            for r, v in zip(rows, values):
                _check_value(m, v, r, side, run)
            defined[side] = sum(v is not None for v in values)
        if m in max_drop and (defined["baseline"] == 0) != (defined["candidate"] == 0):
            side, run, rows = (("candidate", candidate, cand_rows) if defined["candidate"] == 0
                               else ("baseline", baseline, base_rows))
            raise GateError(f"task {task!r}: {m} is undefined in every {side} row ({len(rows)} "
                            f"rows of {run.path}, first id {rows[0].response.id!r}: no fragment "
                            "given or the needed count unknown) but defined in the other run, "
                            "so the runs cannot be compared")


#: Documents named per regressed task in the Markdown summary.
WORST_DOCUMENTS = 5


@dataclass(frozen=True, slots=True)
class DocumentChange:
    """How one paired document's F1 moved from the baseline to the candidate.

    Attributes:
        task: Task name.
        doc_id: Document id.
        sample: Sample index (0 for one answer per document).
        baseline: The baseline answer's F1 (``None`` when undefined).
        candidate: The candidate answer's F1.
        change: ``candidate - baseline``; ``None`` when either is undefined.
    """

    task: str
    doc_id: str
    sample: int
    baseline: float | None
    candidate: float | None
    change: float | None


def document_changes(task: str, base_rows: Sequence[ScoredResponse],
                     cand_rows: Sequence[ScoredResponse]) -> list[DocumentChange]:
    """Paired documents (same order, as from ``pair_runs``) by F1 change, the largest drop first;
    documents whose F1 is undefined on either side come last, each group in baseline order."""
    out = []
    for b, c in zip(base_rows, cand_rows):
        change = c.f1 - b.f1 if b.f1 is not None and c.f1 is not None else None
        doc_id, sample = row_key(b)
        out.append(DocumentChange(task, doc_id, sample, b.f1, c.f1, change))
    order = {id(d): i for i, d in enumerate(out)}
    return sorted(out, key=lambda d: (d.change is None, d.change or 0.0, order[id(d)]))


def regressed_tasks(results: Sequence[TaskResult]) -> list[str]:
    """Tasks with at least one regressed metric, in result order."""
    return [t.task for t in results if any(m.status == "regression" for m in t.metrics)]


def exit_code(results: Sequence[TaskResult]) -> int:
    """1 when any metric regressed, else 0."""
    regressed = any(m.status == "regression" for t in results for m in t.metrics)
    return EXIT_REGRESSION if regressed else EXIT_PASS


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    text = f"{x:+.3f}" if signed else f"{x:.3f}"
    return text.replace("-", "\u2212")


_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
#: Characters that start links, images, emphasis or headings; backslash-escaped in plain text.
_MD_PUNCT = set("\\`*[]()!#~|")
_ZWSP = "\u200b"


def _one_line(text: str) -> str:
    return "".join(" " if (ord(ch) < 32 or ord(ch) == 127) else ch for ch in str(text))


def _defuse(text: str) -> str:
    """Break what GitHub turns into a mention or an autolink: ``@name``, ``://``, ``www.``."""
    return (text.replace("@", "@" + _ZWSP).replace("://", ":" + _ZWSP + "//")
            .replace("www.", "www" + _ZWSP + "."))


def _cell(text: str) -> str:
    """Data shown as plain Markdown text (a table cell, a note): one line, HTML as entities,
    link and emphasis syntax escaped, mentions and autolinks broken."""
    out = []
    for ch in _one_line(text):
        out.append(_HTML[ch] if ch in _HTML else "\\" + ch if ch in _MD_PUNCT else ch)
    return _defuse("".join(out))


def _code(text: str) -> str:
    """Data shown as a Markdown code span (no HTML, links or mentions render inside one);
    the fence is longer than any backtick run in ``text``, pipes are escaped for tables."""
    body = _one_line(text).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall("`+", body)), default=0) + 1)
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"


_ICON = {"pass": "\u2705 pass", "possible drop": "\u26a0\ufe0f possible drop",
         "regression": "\u274c regression", "not gated": "not gated", "undefined": "undefined"}


def to_markdown(baseline: Run, candidate: Run, results: Sequence[TaskResult], *,
                confidence: float, resamples: int, seed: int,
                worst: Mapping[str, Sequence[DocumentChange]] | None = None,
                report: Path | None = None) -> str:
    """A Markdown summary for a pull request comment or ``$GITHUB_STEP_SUMMARY``.

    Args:
        worst: Per task, its documents from ``document_changes``; each regressed task then names
            its ``WORST_DOCUMENTS`` largest F1 drops (ids and change).
        report: Where the diff report was written, named at the end.
    """
    code = exit_code(results)
    head = "\u274c regression" if code == EXIT_REGRESSION else "\u2705 pass"
    n_pairs = sum(t.n_pairs for t in results)
    n_docs = sum(t.n_documents for t in results)
    of_docs = f" of {n_docs:,} documents" if n_docs != n_pairs else ""
    pct = f"{confidence * 100:g}%"
    lines = [
        f"## halt-eval gate: {head}",
        "",
        f"Baseline {_code(baseline.name)} vs candidate {_code(candidate.name)}: "
        f"{len(results)} task(s), {n_pairs:,} paired samples{of_docs}. Paired bootstrap over documents, "
        f"{resamples:,} resamples, seed {seed}; a metric regresses when its whole {pct} interval "
        "lies past the allowed drop.",
        "",
        f"Rules version {_cell(', '.join(baseline.rules_versions))}. Judges: baseline "
        f"{_code(baseline.describe_judges())}; candidate {_code(candidate.describe_judges())}.",
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
                             f"baseline and {m.undefined_candidate} candidate document(s) of {t.n_documents} "
                             "(nothing given, or the needed count unknown); each run's mean leaves "
                             "its own out.")
    if notes:
        lines += ["", *notes]
    regressed = regressed_tasks(results)
    if worst and regressed:
        lines += ["", "### Worst documents of the regressed tasks", ""]
        for task in regressed:
            drops = [d for d in worst.get(task, ()) if d.change is not None and d.change < 0][:WORST_DOCUMENTS]
            if not drops:
                lines.append(f"- {_cell(task)}: no document's F1 dropped")
                continue
            shown = ", ".join(
                f"`{_cell(d.doc_id)}`{f' sample {d.sample}' if d.sample else ''} F1 "
                f"{_fmt(d.baseline)} \u2192 {_fmt(d.candidate)} ({_fmt(d.change, True)})" for d in drops)
            lines.append(f"- {_cell(task)}: {shown}")
    if report is not None:
        lines += ["", f"Diff report (per-document changes, answers side by side): `{_cell(str(report))}`"]
    return "\n".join(lines) + "\n"


def to_json(baseline: Run, candidate: Run, results: Sequence[TaskResult], *,
            confidence: float, resamples: int, seed: int) -> dict[str, Any]:
    """The machine-readable verdict."""
    code = exit_code(results)
    return {
        "verdict": "regression" if code == EXIT_REGRESSION else "pass",
        "exit_code": code,
        "rules_version": baseline.rules_versions[0] if baseline.rules_versions else None,
        "baseline": _run_json(baseline),
        "candidate": _run_json(candidate),
        "confidence": confidence,
        "resamples": resamples,
        "seed": seed,
        "tasks": [
            {"task": t.task, "n_pairs": t.n_pairs, "n_documents": t.n_documents,
             "metrics": [{**asdict(m), "ci": list(m.ci) if m.ci else None} for m in t.metrics]}
            for t in results
        ],
    }


def _run_json(run: Run) -> dict[str, Any]:
    return {"name": run.name, "path": str(run.path), "source": run.source,
            "rules_versions": list(run.rules_versions), "judge_specs": run.judge_specs,
            "verdict_judges": list(run.verdict_judges)}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``halt-eval gate`` options."""
    parser.epilog = ("Samples are paired by (task, document id, sample index); a document's samples "
                     "count once, by their mean, and documents are resampled. A metric fails when "
                     "its whole paired bootstrap interval lies past the allowed drop.\n"
                     "Exit codes: 0 pass, 1 regression, 2 bad input, unpaired runs or rows scored "
                     "under different rules versions.")
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
    parser.add_argument("--report", metavar="FILE", type=Path,
                        help="write the baseline-versus-candidate diff report (HTML) here")


def _write(path: Path | None, text: str, *, append: bool = False) -> None:
    if path is None:
        return
    with path.open("a" if append else "w", encoding="utf-8") as fh:
        fh.write(text)


def _outputs(args: argparse.Namespace) -> list[tuple[str, Path, bool]]:
    """``(what, path, append)`` of each requested output."""
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    out = []
    if args.markdown is not None:
        out.append(("--markdown", Path(args.markdown), False))
    if summary:
        out.append(("$GITHUB_STEP_SUMMARY", Path(summary), True))
    if args.json is not None:
        out.append(("--json", Path(args.json), False))
    return out


def _check_writable(outputs: Sequence[tuple[str, Path, bool]]) -> None:
    """Refuse, before any work, an output that cannot be opened for writing (a directory, a
    missing folder, no permission). Opening for append creates the file without truncating it.

    Raises:
        GateError: Naming the option and the reason.
    """
    for what, path, _ in outputs:
        try:
            if path.is_dir():
                raise IsADirectoryError(f"{path} is a directory")
            with path.open("a", encoding="utf-8"):
                pass
        except OSError as e:
            raise GateError(f"{what}: cannot write {path}: {e.strerror or e}") from e


def _error(message: str, outputs: Sequence[tuple[str, Path, bool]]) -> int:
    """Report a gate error on one line and, where possible, in the outputs; exit 2."""
    print(f"halt-eval gate: error: {_one_line(message)}", file=sys.stderr)
    fence = "`" * max(3, max((len(r) for r in re.findall("`+", message)), default=0) + 1)
    markdown = f"## halt-eval gate: error\n\n{fence}\n{message}\n{fence}\n"
    payload = json.dumps({"verdict": "error", "exit_code": EXIT_BAD_INPUT, "error": message},
                         indent=2) + "\n"
    for what, path, append in outputs:
        try:
            _write(path, payload if what == "--json" else markdown, append=append)
        except OSError:
            pass  # the error is on stderr; an unwritable output was named there if it was the cause
    return EXIT_BAD_INPUT


def run(args: argparse.Namespace) -> int:
    """Run the gate; print the Markdown summary; return the exit code.

    1 only for a regression; every failure that is not a comparison result is 2 with one line.
    """
    try:
        outputs = _outputs(args)
    except (OSError, ValueError) as e:
        print(f"halt-eval gate: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        _check_writable(outputs)
        check_options(confidence=args.confidence, resamples=args.resamples, seed=args.seed)
        max_drop = parse_max_drop(args.max_drop) if args.max_drop is not None else None
        baseline = load_run(args.baseline, args.baseline_name)
        candidate = load_run(args.candidate, args.candidate_name)
        results = gate(baseline, candidate, max_drop=max_drop, confidence=args.confidence,
                       resamples=args.resamples, seed=args.seed)
    except (GateError, RunError) as e:
        return _error(str(e), outputs)
    except MemoryError:
        return _error(f"out of memory comparing the runs with --resamples {args.resamples}; "
                      "use fewer resamples", outputs)
    except Exception as e:  # noqa: BLE001 - exit 1 must mean a regression, never a crash
        return _error(f"internal error: {type(e).__name__}: {e}", outputs)
    for note in (*baseline.skipped, *candidate.skipped):
        print(f"halt-eval gate: skipped {_one_line(note)}", file=sys.stderr)
    opts = {"confidence": args.confidence, "resamples": args.resamples, "seed": args.seed}
    worst = {task: document_changes(task, b, c) for task, (b, c) in pair_runs(baseline, candidate).items()}
    report = getattr(args, "report", None)
    if report is not None:
        from halt_eval.reports.diff import render_diff  # the page needs jinja2; the gate alone does not
        try:
            report.write_text(render_diff(baseline, candidate, results, **opts), encoding="utf-8")
        except OSError as e:
            return _error(f"--report: cannot write {report}: {e.strerror or e}", outputs)
    markdown = to_markdown(baseline, candidate, results, **opts, worst=worst, report=report)
    print(markdown, end="")
    payload = json.dumps(to_json(baseline, candidate, results, **opts), indent=2) + "\n"
    for what, path, append in outputs:
        try:
            _write(path, payload if what == "--json" else markdown, append=append)
        except OSError as e:
            print(f"halt-eval gate: error: {what}: cannot write {path}: {e.strerror or e}",
                  file=sys.stderr)
            return EXIT_BAD_INPUT
    return exit_code(results)
