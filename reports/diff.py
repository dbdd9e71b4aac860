"""The baseline-versus-candidate diff report: what a reviewer opens when the gate fails.

Per task, the gate's paired changes with their intervals (``halt_eval.gate``: the same numbers
the gate decides on); then the documents sorted by how much their F1 moved, the largest drop
first, each with the two answers side by side, fragments coloured by verdict, and the fragments
whose verdict changed marked. Static HTML (no script needed), self-contained, model text escaped
by the template engine.

Fragments are matched across the two answers by their text (whitespace-normalised, in order for
repeated texts): a matched fragment whose verdict differs is *changed*; a fragment only one answer
gives is *only in this answer*.
"""

from __future__ import annotations

import re
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from halt_eval import gate as gate_mod
from halt_eval.runs import Run
from halt_eval.types import LABELS, ScoredResponse

from halt_eval.reports.render import RUN_COLOURS, _display_names, _environment, _numbered

#: Documents listed per task: every changed one up to this many, the largest drops first.
MAX_DOCUMENTS_PER_TASK = 200
#: Verdict severity for colouring text covered by several fragments: incorrect > unverifiable > correct.
_SEVERITY = {"correct": 0, "unverifiable": 1, "incorrect": 2}
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class FragmentView:
    """One fragment of one side, as the diff shows it."""

    number: int
    text: str
    label: str
    reason: str
    explanation: str
    change: str  # "" | "changed" | "only"
    other_label: str | None


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def match_fragments(base: ScoredResponse, cand: ScoredResponse) -> tuple[list[FragmentView], list[FragmentView]]:
    """Both answers' fragments, each marked changed (same text, other verdict), only in this
    answer, or unchanged."""
    queue: dict[str, deque[int]] = defaultdict(deque)
    for k, f in enumerate(base.fragments):
        queue[_norm(f.text)].append(k)
    pair_of_cand: dict[int, int] = {}
    for k, f in enumerate(cand.fragments):
        q = queue.get(_norm(f.text))
        if q:
            pair_of_cand[k] = q.popleft()
    pair_of_base = {b: c for c, b in pair_of_cand.items()}

    def views(row: ScoredResponse, pairs: dict[int, int], other: ScoredResponse) -> list[FragmentView]:
        out = []
        for k, (f, v) in enumerate(zip(row.fragments, row.verdicts)):
            explanation, _ = _numbered(v)
            if k in pairs:
                other_label = other.verdicts[pairs[k]].label
                change = "changed" if other_label != v.label else ""
            else:
                other_label, change = None, "only"
            out.append(FragmentView(k + 1, f.text, v.label, v.reason, explanation, change, other_label))
        return out

    return views(base, pair_of_base, cand), views(cand, pair_of_cand, base)


def segments(row: ScoredResponse, frags: Sequence[FragmentView]) -> list[dict[str, Any]]:
    """The answer text cut where fragments start and end: each piece with the worst verdict of
    the fragments covering it, whether one of them changed, and the text after the marker."""
    text = row.response.text
    end = len(text) if row.marker_offset is None else min(row.marker_offset, len(text))
    cuts = {0, end}
    for f in row.fragments:
        if f.span[0] < f.span[1]:
            cuts.update((max(0, min(f.span[0], end)), max(0, min(f.span[1], end))))
    ordered = sorted(cuts)
    out = []
    for a, b in zip(ordered, ordered[1:]):
        cover = [k for k, f in enumerate(row.fragments) if f.span[0] <= a and f.span[1] >= b]
        if not cover:
            out.append({"text": text[a:b], "cls": "", "title": ""})
            continue
        worst = max((frags[k].label for k in cover), key=_SEVERITY.__getitem__)
        marks = {frags[k].change for k in cover}
        mark = " changed" if "changed" in marks else " only" if "only" in marks else ""
        out.append({"text": text[a:b], "cls": f"frag {worst}{mark}",
                    "title": ", ".join(f"#{k + 1} {frags[k].label}" for k in cover)})
    if end < len(text):
        out.append({"text": text[end:], "cls": "abstained-text", "title": "after the abstention marker"})
    return out


def _side(row: ScoredResponse, frags: list[FragmentView]) -> dict[str, Any]:
    return {"segments": segments(row, frags), "fragments": frags, "f1": row.f1,
            "correctness": row.correctness, "completeness": row.completeness,
            "abstained": row.abstained, "error": row.error, "solved": row.solved,
            "code": row.response.domain == "code"}


def diff_tasks(baseline: Run, candidate: Run, results: Sequence[gate_mod.TaskResult]) -> list[dict[str, Any]]:
    """Per task: its gate result and the changed documents, the largest F1 drop first."""
    paired = gate_mod.pair_runs(baseline, candidate)
    by_task = {t.task: t for t in results}
    out = []
    for task, (b_rows, c_rows) in paired.items():
        rows = {gate_mod.row_key(b): (b, c) for b, c in zip(b_rows, c_rows)}
        docs, unchanged = [], 0
        for d in gate_mod.document_changes(task, b_rows, c_rows):
            b, c = rows[(d.doc_id, d.sample)]
            fb, fc = match_fragments(b, c)
            n_changed = sum(1 for f in (*fb, *fc) if f.change)
            if not d.change and not n_changed and b.response.text == c.response.text:
                unchanged += 1
                continue
            docs.append({"change": d, "n_changed": n_changed, "prompt": b.response.prompt,
                         "baseline": _side(b, fb), "candidate": _side(c, fc)})
        result = by_task.get(task)
        out.append({"task": task, "result": result,
                    "regressed": bool(result and any(m.status == "regression" for m in result.metrics)),
                    "docs": docs[:MAX_DOCUMENTS_PER_TASK], "n_docs": len(docs), "unchanged": unchanged,
                    "n_pairs": len(b_rows)})
    return out


def _bar(lo: float, hi: float, point: float) -> dict[str, float]:
    """Percent positions of an interval of changes on a [-1, 1] track."""
    pos = lambda x: 50.0 + 50.0 * max(-1.0, min(1.0, x))  # noqa: E731
    return {"left": pos(lo), "width": max(0.5, pos(hi) - pos(lo)), "point": pos(point)}


def render_diff(baseline: Run, candidate: Run, results: Sequence[gate_mod.TaskResult] | None = None, *,
                confidence: float = gate_mod.DEFAULT_CONFIDENCE, resamples: int = gate_mod.DEFAULT_RESAMPLES,
                seed: int = gate_mod.DEFAULT_SEED, title: str = "halt-eval diff") -> str:
    """The diff page of two paired runs.

    Args:
        baseline: The reference run.
        candidate: The run under test.
        results: The gate's results, when already computed (``halt-eval gate --report``); else
            computed here with the gate's defaults and the given options.

    Raises:
        GateError: The runs are unpaired or scored under different rules versions.
    """
    if results is None:
        results = gate_mod.gate(baseline, candidate, confidence=confidence, resamples=resamples, seed=seed)
    names = _display_names([baseline, candidate])
    tasks = diff_tasks(baseline, candidate, results)
    for t in tasks:
        t["bars"] = {m.metric: _bar(m.ci[0], m.ci[1], m.change or 0.0)
                     for m in (t["result"].metrics if t["result"] else ()) if m.ci}
    verdict = "regression" if gate_mod.exit_code(results) == gate_mod.EXIT_REGRESSION else "pass"
    return _environment().get_template("diff.html.j2").render(
        title=title, names=names, colours=RUN_COLOURS[:2], runs=[baseline, candidate], tasks=tasks,
        verdict=verdict, confidence=confidence, resamples=resamples, seed=seed, labels=LABELS,
        icon=gate_mod._ICON, fmt=gate_mod._fmt)
