"""The one metric catalogue: every metric halt-eval writes, with its direction, per-answer value,
task aggregation, lm-eval aggregation, how "undefined" is handled, and whether it gets a CI.

``row_values`` (what lm-eval's ``process_results`` returns), ``summarize`` (score summaries, the
report), the gate's columns, the task YAML's ``metric_list`` (``lmeval_metric_list``) and the
CLI summary (``format_summary``) all read ``METRICS``; no other module lists metric names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from halt_eval import rules, stats
from halt_eval.types import LABELS, ScoredResponse

Direction = Literal["higher", "lower"] | None
#: ``mean_defined``: mean over the answers where the value is defined (``None`` elsewhere);
#: ``pooled_ratio``: ``sum(a) / sum(b)`` over per-answer pairs ``(a, b)``; ``mean``: plain mean.
TaskAggregation = Literal["mean_defined", "pooled_ratio", "mean"]


class FunctionRef(str):
    """An lm-eval aggregation given as a function (``!function halt_utils.NAME`` in YAML)."""


@dataclass(frozen=True, slots=True)
class Metric:
    """One entry of the catalogue.

    Attributes:
        name: Per-answer key: in lm-eval's ``process_results``, its samples and results.
        summary_name: Key of the task statistic in summaries and the gate.
        description: One line for readers of tables and help texts.
        direction: ``higher`` or ``lower`` is better; ``None`` for counts (not a quality).
        value: Per-answer value: a number, ``None`` when undefined, or for ``pooled_ratio``
            an ``(a, b)`` pair.
        aggregation: How task summaries and the gate combine the per-answer values.
        lmeval_aggregation: lm-eval's aggregation: a built-in name or a ``FunctionRef``.
        undefined: When the per-answer value is undefined and what the task statistic does.
        ci: Whether summaries give it a bootstrap confidence interval.
    """

    name: str
    summary_name: str
    description: str
    direction: Direction
    value: Callable[[ScoredResponse], Any]
    aggregation: TaskAggregation
    lmeval_aggregation: str
    undefined: str
    ci: bool

    @property
    def higher_is_better(self) -> bool | None:
        """lm-eval's ``higher_is_better`` (``None`` for counts: no arrow in its table)."""
        return None if self.direction is None else self.direction == "higher"

    def columns(self, rows: Sequence[ScoredResponse]) -> stats.Columns:
        """Per-answer ``(numerator, denominator)``: the task statistic is their sums' ratio."""
        values = [self.value(r) for r in rows]
        if self.aggregation == "pooled_ratio":
            return stats.pair_columns(values)
        if self.aggregation == "mean_defined":
            return stats.defined_columns(values)
        return stats.plain_columns(values)

    def lmeval_value(self, row: ScoredResponse) -> Any:
        """The value for lm-eval: NaN for undefined (its ``nanmean`` leaves it out), pairs as lists."""
        value = self.value(row)
        if self.aggregation == "pooled_ratio":
            return list(value)
        return math.nan if value is None else value


_NOTHING_GIVEN = "undefined when the answer gives no fragment; the task mean leaves such answers out"
_NEEDED_UNKNOWN = "undefined when the needed count is unknown; the task mean leaves such answers out"

_CAPABLE_UNKNOWN = ("undefined when no sample of the prompt has a correct fragment (n_capable 0) or the "
                    "row was scored without n_capable; the task mean leaves such answers out")


def _completeness_capable(r: ScoredResponse) -> float | None:
    """``n_correct / n_capable`` (``halt_eval.capable`` sets ``evidence["n_capable"]``)."""
    capable = r.evidence.get("n_capable")
    return rules.completeness_capable(r.n_correct, capable) if isinstance(capable, int) else None


#: Every metric name the harness writes, once. Task YAMLs are checked against it.
METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("correctness", "correctness", "share of given fragments that are correct", "higher",
               lambda r: r.correctness, "mean_defined", "nanmean", _NOTHING_GIVEN, True),
        Metric("completeness", "completeness",
               "correct fragments against what a complete answer needs", "higher",
               lambda r: r.completeness, "mean_defined", "nanmean", _NEEDED_UNKNOWN, True),
        Metric("completeness_capable", "completeness_capable",
               "correct fragments against the most any sample of the prompt reaches (HALT's n_capable)",
               "higher", _completeness_capable, "mean_defined", "nanmean", _CAPABLE_UNKNOWN, True),
        Metric("f1", "f1", "harmonic mean of correctness and completeness", "higher",
               lambda r: r.f1, "mean_defined", "nanmean", _NEEDED_UNKNOWN, True),
        Metric("micro_correctness", "micro_correctness",
               "correct fragments over all given fragments, pooled", "higher",
               lambda r: (r.n_correct, r.n_given), "pooled_ratio",
               FunctionRef("halt_utils.micro_correctness"),
               "answers with no fragment add nothing; undefined when no answer gives one", True),
        Metric("abstained", "abstained",
               "the answer holds the abstention marker or gives nothing (task: share of answers)",
               "lower", lambda r: float(r.abstained), "mean", "mean", "always defined", False),
        Metric("n_given", "n_given", "fragments given before the abstention marker", None,
               lambda r: r.n_given, "mean", "mean", "always defined", False),
        Metric("n_correct", "n_correct", "fragments judged correct", None,
               lambda r: r.n_correct, "mean", "mean", "always defined", False),
    )
}

#: Verdict reasons that mean a judge failed rather than judged: the fragment is
#: ``unverifiable`` because the judge crashed (``judge_error``, written by the scorer and the
#: claims judge), its LLM server failed, timed out or answered off-format (``llm_error``,
#: ``llm_timeout``, ``llm_unparseable``), a math worker raised or died (``worker_error``), or
#: the code sandbox gave no usable result (``sandbox_error``). A check stopped at its own time
#: or memory limit (``timeout``, ``memory_limit``) is a bound the input hit, not a failure.
JUDGE_ERROR_REASONS: frozenset[str] = frozenset({
    "judge_error", "llm_error", "llm_timeout", "llm_unparseable", "worker_error", "sandbox_error",
})

#: Metrics with a direction: the ones a gate can compare, by summary name.
QUALITY_METRICS: dict[str, Metric] = {m.summary_name: m for m in METRICS.values() if m.direction}


def row_values(scored: ScoredResponse) -> dict[str, Any]:
    """Per-answer values, exactly what lm-eval's ``process_results`` must return: NaN for
    undefined, ``micro_correctness`` as ``[n_correct, n_given]``."""
    return {m.name: m.lmeval_value(scored) for m in METRICS.values()}


def micro_correctness(items: Sequence[Sequence[float]]) -> float:
    """lm-eval aggregation of ``micro_correctness``: pooled ratio of ``[n_correct, n_given]``
    items; NaN when no answer gives a fragment."""
    value = stats.pooled_ratio(items)
    return math.nan if value is None else value


def lmeval_metric_list() -> list[dict[str, Any]]:
    """The task YAML's ``metric_list``: one ``{metric, aggregation, higher_is_better}`` per
    metric; a ``FunctionRef`` aggregation is written ``!function halt_utils.NAME``."""
    return [{"metric": m.name, "aggregation": m.lmeval_aggregation,
             "higher_is_better": m.higher_is_better} for m in METRICS.values()]


#: ``lmeval_metric_list()``, computed once.
LMEVAL_METRIC_LIST: list[dict[str, Any]] = lmeval_metric_list()


def lmeval_metric_list_yaml() -> str:
    """``metric_list`` as YAML text, for the task template."""
    lines = ["metric_list:"]
    for m in lmeval_metric_list():
        agg = m["aggregation"]
        hib = {True: "true", False: "false", None: "null"}[m["higher_is_better"]]
        lines += [f"  - metric: {m['metric']}",
                  f"    aggregation: {'!function ' + agg if isinstance(agg, FunctionRef) else agg}",
                  f"    higher_is_better: {hib}"]
    return "\n".join(lines) + "\n"


def summarize(rows: Sequence[ScoredResponse], *, resamples: int = stats.BOOTSTRAP_RESAMPLES,
              confidence: float = stats.CONFIDENCE, seed: int = stats.BOOTSTRAP_SEED) -> dict[str, Any]:
    """Task-level summary of scored responses.

    Returns:
        ``{"n": count, summary_name: value | None, summary_name + "_ci": [lo, hi] | None, ...}``
        for every metric (``_ci`` for those with ``ci``), the fragment verdict counts under
        ``verdicts``, the number of rows with an ``error`` under ``errors``, the fragments a
        judge failed on (reason in ``JUDGE_ERROR_REASONS``) under ``judge_errors`` and per
        reason under ``judge_error_reasons``, and the rules versions of the rows under
        ``rules_versions``.
    """
    out: dict[str, Any] = {"n": len(rows)}
    cols = {m.summary_name: m.columns(rows) for m in METRICS.values()}
    for name, col in cols.items():
        out[name] = stats.point(col)
    with_ci = [m.summary_name for m in METRICS.values() if m.ci]
    intervals = stats.bootstrap_intervals([cols[n] for n in with_ci], resamples=resamples,
                                          confidence=confidence, seed=seed)
    for name, ci in zip(with_ci, intervals):
        out[f"{name}_ci"] = list(ci) if ci else None
    counts = dict.fromkeys(LABELS, 0)
    failed: dict[str, int] = {}
    for r in rows:
        for v in r.verdicts:
            counts[v.label] += 1
            if v.label == "unverifiable" and v.reason in JUDGE_ERROR_REASONS:
                failed[v.reason] = failed.get(v.reason, 0) + 1
    out["verdicts"] = counts
    out["errors"] = sum(1 for r in rows if r.error)
    out["judge_errors"] = sum(failed.values())
    out["judge_error_reasons"] = dict(sorted(failed.items()))
    out["rules_versions"] = sorted({r.rules_version for r in rows})
    return out


def format_summary(summary: Mapping[str, Any]) -> str:
    """A plain-text table of a summary from ``summarize`` (with ``domain``, ``judge`` and
    ``n_desired`` when the caller added them)."""
    lines = [f"{summary.get('domain', '')}: {summary['n']} responses, judge {summary.get('judge', '?')}, "
             f"n_desired {summary.get('n_desired', '?')}"]
    pct = f"{stats.CONFIDENCE * 100:g}%"
    for m in METRICS.values():
        value = summary.get(m.summary_name)
        ci = summary.get(f"{m.summary_name}_ci")
        text = "n/a" if value is None else f"{value:.4f}"
        if ci:
            text += f"  [{pct} CI {ci[0]:.4f}, {ci[1]:.4f}]"
        lines.append(f"  {m.summary_name:<18} {text}")
    v = summary.get("verdicts", {})
    lines.append("  fragments          " + ", ".join(f"{v.get(label, 0)} {label}" for label in LABELS))
    if summary.get("judge_errors"):
        by_reason = ", ".join(f"{n} {reason}" for reason, n in summary.get("judge_error_reasons", {}).items())
        lines.append(f"  judge errors       {summary['judge_errors']} fragment(s) left unverifiable "
                     f"because the judge failed" + (f" ({by_reason})" if by_reason else ""))
    if summary.get("rules_versions"):
        lines.append(f"  rules version      {', '.join(summary['rules_versions'])}")
    return "\n".join(lines)
