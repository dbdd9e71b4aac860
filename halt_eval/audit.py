"""How good are the verdicts? The configured judge against human fragment labels.

HALT reports its judge's quality as **misjudged fragments per response** (Table 1 of the
paper). ``audit`` measures ours the same way: it scores human-labelled answers through the
real ``Scorer`` (splitting bypassed: the labelled fragments are passed as
``Response.fragments``) and compares our final label of each fragment (after the dependent
rule) with the human one. ``unverifiable`` counts as "not correct", like in the metrics.

Per set it reports:

* ``misjudged_per_response``: fragments whose label (correct / not correct) differs from
  the human one, averaged over responses;
* ``correctness_mae``: mean absolute difference of per-response correctness, in points;
* ``correctness_bias``: mean correctness ours minus mean human, in points;
* ``precision_flagged``: of the fragments we label ``incorrect``, the share the humans label
  not correct (``None`` when nothing is flagged); ``recall_not_correct`` the share of human
  not-correct fragments we flag;
* ``balanced_accuracy`` (correct vs not correct) and ``auroc`` (our label as a score:
  correct 1, unverifiable 0.5, incorrect 0) over fragments;
* ``human_correctness`` and ``ours_correctness`` (means, points) and the counts.

* ``auroc_p``: for judges whose every verdict carries ``p_supported`` (the embedded claims
  judge), the AUROC of that probability, with ``incorrect`` verdicts scored 0.

Labelled data per domain comes from a *loader* registered in ``LOADERS``: a function of the
data directory and a row limit returning ``AuditSet``s, each a list of ``LabelledItem``
(a ``Response`` with its fragments, and one human label per fragment). The readers of the
upstream files are in ``halt_eval.labelled``.

* **math**: ProcessBench's development halves (``math/processbench/{gsm8k,math}.dev.json``;
  a step label is the 0-based first wrong step or -1: the steps before it are correct, the rest
  incorrect) with references joined by problem text from ``math/gsm8k/test.jsonl``,
  ``math/math-test-5000/test.jsonl`` and ``math/math-500/test.jsonl``.
* **bio**: FActScore's human atomic facts, one set per model file. A bio's fragments are the
  human facts labelled ``S`` (correct) or ``NS`` (not correct); ``IR`` (irrelevant) facts are
  left out, as FActScore's own score leaves them out. The human facts are rewritten, not cut
  from the bio, so the answer text given to the judge is the facts, one per line. The
  reference is the topic's stand-in text (``labelled.factscore_reference_texts``: the ``S``
  facts of the other models' bios of the same person) as ``passages``, or with
  ``corpus=True`` only the topic, so the judge's corpus is searched instead.
* **med**: K-QA physician NLI (``kqa``): one item per labelled LLM answer; its fragments are
  the physician statements labelled on it, judged against the LLM answer as the reference
  (``{"answer": ...}``); a statement the physicians' majority says the answer entails is
  correct, a neutral or contradicted one not. Factcheck-GPT (``factcheck_gpt``): the Factbench
  responses whose claims have evidence passages in ``subtask3_claim_evidence_stance``; the
  fragments are the claims labelled true (correct) or false, the reference those passages
  (claims labelled ``unknown`` and responses without passages are left out).

What a loader leaves out is counted in ``AuditSet.left_out`` and reported with the figures.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from halt_eval import labelled, rules
from halt_eval.types import Response, ScoredResponse

#: ProcessBench development halves audited for math (those with a GSM8K/MATH reference).
MATH_SETS: tuple[str, ...] = ("gsm8k", "math")


@dataclass(frozen=True, slots=True)
class LabelledItem:
    """One human-labelled answer.

    Attributes:
        response: The answer, with its labelled fragments as ``Response.fragments``.
        human: One label per fragment: ``True`` when the human judges it correct.
    """

    response: Response
    human: tuple[bool, ...]

    def __post_init__(self) -> None:
        if self.response.fragments is None or len(self.response.fragments) != len(self.human):
            raise ValueError(f"record {self.response.id!r}: one human label per fragment is needed")


@dataclass(frozen=True, slots=True)
class AuditSet:
    """A named set of labelled answers (one row of the audit table)."""

    name: str
    items: tuple[LabelledItem, ...]
    source: str = ""
    #: What the loader left out, and how many: ``{"IR facts": 252, ...}``.
    left_out: Mapping[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------- loaders

def load_math_references(math_dir: Path) -> dict[str, dict[str, str]]:
    """Problem text -> ``{"answer", "solution"}`` from GSM8K test, the MATH test set and
    MATH-500 (MATH-500 wins where both have the problem)."""
    refs: dict[str, dict[str, str]] = {}
    gsm = math_dir / "gsm8k" / "test.jsonl"
    if gsm.exists():
        for line in gsm.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                refs[row["question"].strip()] = {"answer": row["answer"].split("####")[-1].strip(),
                                                  "solution": row["answer"]}
    full = math_dir / "math-test-5000" / "test.jsonl"
    if full.exists():
        from halt_eval.judges.math_answer import extract_final_answer

        for line in full.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                answer = extract_final_answer(row["solution"])
                refs.setdefault(row["problem"].strip(), {"solution": row["solution"],
                                                         **({"answer": answer} if answer else {})})
    m500 = math_dir / "math-500" / "test.jsonl"
    if m500.exists():
        for line in m500.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                refs[row["problem"].strip()] = {"answer": row["answer"], "solution": row["solution"]}
    return refs


def dependent_truth(n_steps: int, first_error: int) -> tuple[bool, ...]:
    """Human per-step truth of a dependent answer: the steps before the labelled first error
    are correct, it and every later step incorrect; ``-1`` means all correct."""
    if first_error < -1 or first_error >= n_steps:
        raise ValueError(f"first error {first_error} outside 0..{n_steps - 1} (or -1)")
    if first_error == -1:
        return (True,) * n_steps
    return tuple(i < first_error for i in range(n_steps))


def processbench_items(path: Path, refs: dict[str, dict[str, str]], limit: int | None = None,
                       ) -> list[LabelledItem]:
    """ProcessBench rows (``{id, problem, steps, label}``) as labelled items; the answer text
    is the steps joined by blank lines, the steps its fragments."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    if limit is not None:
        rows = rows[:limit]
    items = []
    for r in rows:
        steps = tuple(r["steps"])
        items.append(LabelledItem(
            Response(id=str(r["id"]), domain="math", prompt=r["problem"], text="\n\n".join(steps),
                     reference=refs.get(r["problem"].strip(), {}), fragments=steps),
            dependent_truth(len(steps), int(r["label"]))))
    return items


def load_math(data: Path, limit: int | None = None, sets: Sequence[str] = MATH_SETS) -> list[AuditSet]:
    """ProcessBench dev halves with their GSM8K/MATH references."""
    math_dir = data / "math"
    refs = load_math_references(math_dir)
    out = []
    for name in sets:
        path = math_dir / "processbench" / f"{name}.dev.json"
        if not path.exists():
            raise FileNotFoundError(f"no ProcessBench file {path}")
        out.append(AuditSet(name, tuple(processbench_items(path, refs, limit)), str(path)))
    return out


def load_bio(data: Path, limit: int | None = None, *, corpus: bool = False) -> list[AuditSet]:
    """FActScore's human atomic facts, one set per model file (see the module docstring).

    Args:
        data: Searched recursively for ``{ChatGPT,InstructGPT,PerplexityAI}*.jsonl``.
        limit: First N bios of each set (counted among the bios kept).
        corpus: Give only the topic as the reference (the judge's ``corpus`` is searched),
            not the stand-in text.
    """
    bios = labelled.factscore_bios(data)
    if not any(bios.values()):
        raise FileNotFoundError(f"no FActScore labelled bios ({', '.join(labelled.FACTSCORE_MODELS)}"
                                f"*.jsonl with annotations) under {data}")
    out = []
    for model in labelled.FACTSCORE_MODELS:
        files = labelled.find(data, f"{model}*.jsonl")
        refs = {} if corpus else labelled.factscore_reference_texts(bios, model)
        items: list[LabelledItem] = []
        left: Counter[str] = Counter()
        for bio in bios[model]:
            if limit is not None and len(items) >= limit:
                break
            facts = [((f.get("text") or "").strip(), f.get("label")) for a in bio["annotations"]
                     for f in a.get("human-atomic-facts") or []]
            left["IR facts"] += sum(lab == "IR" for _, lab in facts)
            kept = [(t, lab) for t, lab in facts if t and lab in ("S", "NS")]
            topic = bio["topic"]
            if not kept:
                left["bios without S/NS facts"] += 1
                continue
            if not corpus and topic not in refs:
                left["bios whose person no other model has S facts about (no reference)"] += 1
                continue
            texts = tuple(t for t, _ in kept)
            reference: dict[str, Any] = {"topic": topic}
            if not corpus:
                reference["passages"] = [refs[topic]]
            items.append(LabelledItem(
                Response(id=f"{model}|{topic}", domain="bio", prompt=bio.get("input") or f"Tell me a bio of {topic}.",
                         text="\n".join(texts), reference=reference, fragments=texts),
                tuple(lab == "S" for _, lab in kept)))
        if files:
            out.append(AuditSet(f"factscore_{model}", tuple(items), ", ".join(map(str, files)),
                                {k: v for k, v in left.items() if v}))
    return out


def kqa_items(data: Path, limit: int | None = None) -> tuple[list[LabelledItem], list[Path]]:
    """K-QA physician NLI rows grouped by (question, LLM) into labelled items."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in labelled.kqa_rows(data):
        groups.setdefault((r["group"], r["llm"]), []).append(r)
    items = []
    for (question, llm), rows in groups.items():
        if limit is not None and len(items) >= limit:
            break
        claims = tuple(r["claim"].strip() for r in rows)
        items.append(LabelledItem(
            Response(id=f"{llm}|{question}", domain="med", prompt=question, text="\n".join(claims),
                     reference={"answer": rows[0]["premise"]}, fragments=claims),
            tuple(bool(r["label"]) for r in rows)))
    return items, labelled.find(data, "NLI_medical_annotator*.csv")


def factcheck_items(data: Path, limit: int | None = None) -> tuple[list[LabelledItem], Counter[str], list[Path]]:
    """Factbench responses whose claims have evidence passages, as labelled items."""
    evidence: dict[str, list[str]] = {}
    for r in labelled.stance_rows(data):
        evidence.setdefault(r["claim"].strip(), []).append(r["premise"])
    items: list[LabelledItem] = []
    left: Counter[str] = Counter()
    for n, row in enumerate(labelled.factbench_rows(data)):
        if limit is not None and len(items) >= limit:
            break
        pairs = [(str(c).strip(), lab) for c, lab in zip(row["claims"], row["claim_labels"])]
        passages = list(dict.fromkeys(p for c, _ in pairs for p in evidence.get(c, [])))
        if not passages:
            left["responses without evidence passages"] += 1
            continue
        kept = [(c, lab) for c, lab in pairs if c and isinstance(lab, bool)]
        left["claims labelled unknown"] += len(pairs) - len(kept)
        if not kept:
            continue
        claims = tuple(c for c, _ in kept)
        items.append(LabelledItem(
            Response(id=f"factbench-{n}", domain="med", prompt=row.get("prompt") or "", text="\n".join(claims),
                     reference={"answer": passages}, fragments=claims),
            tuple(lab for _, lab in kept)))
    files = labelled.find(data, "Factbench*.jsonl") + labelled.find(data, "subtask3_claim_evidence_stance*.jsonl")
    return items, left, files


def load_med(data: Path, limit: int | None = None) -> list[AuditSet]:
    """K-QA physician NLI and Factcheck-GPT claims (see the module docstring)."""
    out = []
    kqa, kqa_files = kqa_items(data, limit)
    if kqa:
        out.append(AuditSet("kqa", tuple(kqa), ", ".join(map(str, kqa_files))))
    fc, left, fc_files = factcheck_items(data, limit)
    if fc:
        out.append(AuditSet("factcheck_gpt", tuple(fc), ", ".join(map(str, fc_files)),
                            {k: v for k, v in left.items() if v}))
    if not out:
        raise FileNotFoundError(f"no K-QA NLI_medical_annotator*.csv and no Factcheck-GPT Factbench*.jsonl "
                                f"with claim evidence (subtask3_claim_evidence_stance*.jsonl) under {data}")
    return out


#: Domain -> loader of its labelled sets.
LOADERS: dict[str, Callable[..., list[AuditSet]]] = {"math": load_math, "bio": load_bio, "med": load_med}


# ---------------------------------------------------------------- measuring

def _score_of(label: str) -> float:
    return {"correct": 1.0, "unverifiable": 0.5, "incorrect": 0.0}[label]


def auroc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """Area under the ROC curve (ties count half); ``None`` without both classes."""
    pos = [s for s, p in zip(scores, positive) if p]
    neg = [s for s, p in zip(scores, positive) if not p]
    if not pos or not neg:
        return None
    # Mann-Whitney U through ranks with ties averaged.
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_pos = sum(r for r, p in zip(ranks, positive) if p)
    return (rank_pos - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def _p_score(verdict: Any) -> float | None:
    """The verdict's ``p_supported`` (0 for an ``incorrect`` verdict), ``None`` without one."""
    p = verdict.evidence.get("p_supported") if isinstance(verdict.evidence, Mapping) else None
    if not isinstance(p, (int, float)):
        return None
    return 0.0 if verdict.label == "incorrect" else float(p)


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def measure(items: Sequence[LabelledItem], scored: Sequence[ScoredResponse]) -> dict[str, Any]:
    """The audit figures of one set (see the module docstring)."""
    misjudged, abs_err, ours_c, human_c = [], [], [], []
    labels: list[str] = []
    truth: list[bool] = []
    p_scores: list[float | None] = []
    skipped: list[dict[str, str]] = []
    first_flag_ok = first_flags = 0
    for item, s in zip(items, scored):
        if s.error or len(s.verdicts) != len(item.human):
            skipped.append({"id": item.response.id,
                            "why": s.error or f"{len(s.verdicts)} verdicts for {len(item.human)} labels"})
            continue
        ours = [v.label for v in s.verdicts]
        misjudged.append(sum((o == "correct") != h for o, h in zip(ours, item.human)))
        texts = [f.text for f in s.fragments]
        ours_corr = rules.correctness(rules.count_correct(texts, [o == "correct" for o in ours], item.response.domain), len(ours))
        human_corr = rules.correctness(rules.count_correct(texts, item.human, item.response.domain), len(ours))
        if ours_corr is not None and human_corr is not None:
            ours_c.append(ours_corr)
            human_c.append(human_corr)
            abs_err.append(abs(ours_corr - human_corr))
        labels += ours
        truth += item.human
        p_scores += [_p_score(v) for v in s.verdicts]
        first = next((i for i, o in enumerate(ours) if o == "incorrect"), None)
        if first is not None:
            first_flags += 1
            first_flag_ok += not item.human[first]
    flagged = [h for o, h in zip(labels, truth) if o == "incorrect"]
    n_bad = sum(not h for h in truth)
    n_good = len(truth) - n_bad
    tpr = sum(o == "correct" and h for o, h in zip(labels, truth)) / n_good if n_good else None
    tnr = sum(o != "correct" and not h for o, h in zip(labels, truth)) / n_bad if n_bad else None
    bias = None
    if ours_c:
        bias = 100 * (sum(ours_c) / len(ours_c) - sum(human_c) / len(human_c))
    return {
        "n": len(misjudged),
        "n_skipped": len(skipped),
        "fragments": len(truth),
        "fragments_per_response": len(truth) / len(misjudged) if misjudged else None,
        "misjudged_per_response": _mean(misjudged),
        "correctness_mae": 100 * _mean(abs_err) if abs_err else None,
        "correctness_bias": bias,
        "ours_correctness": 100 * _mean(ours_c) if ours_c else None,
        "human_correctness": 100 * _mean(human_c) if human_c else None,
        "flagged": len(flagged),
        "precision_flagged": sum(not h for h in flagged) / len(flagged) if flagged else None,
        "precision_first_flag": first_flag_ok / first_flags if first_flags else None,
        "recall_not_correct": len([h for h in flagged if not h]) / n_bad if n_bad else None,
        "balanced_accuracy": (tpr + tnr) / 2 if tpr is not None and tnr is not None else None,
        "auroc": auroc([_score_of(o) for o in labels], truth),
        "auroc_p": (auroc(p_scores, truth)  # type: ignore[arg-type]
                    if p_scores and all(p is not None for p in p_scores) else None),
        "labels": {k: labels.count(k) for k in ("correct", "incorrect", "unverifiable")},
        "skipped": skipped,
    }


def run_audit(scorer: Any, sets: Sequence[AuditSet], *, batch_size: int = 32,
              progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Score every set through ``scorer`` and measure it.

    Returns:
        ``{"sets": {name: figures}, "judge_spec": ...}``; each set's figures also carry
        ``rows``: per response its id, human first error and ours, and misjudged count.
    """
    out: dict[str, Any] = {"sets": {}, "judge_spec": scorer.spec(), "rules_version": rules.RULES_VERSION}
    for aset in sets:
        scored: list[ScoredResponse] = []
        items = list(aset.items)
        for start in range(0, len(items), max(1, batch_size)):
            scored += scorer.score([it.response for it in items[start:start + batch_size]])
            if progress:
                progress(aset.name, len(scored), len(items))
        figures = measure(items, scored)
        figures["source"] = aset.source
        figures["left_out"] = dict(aset.left_out)
        figures["rows"] = [_row(it, s) for it, s in zip(items, scored)]
        out["sets"][aset.name] = figures
    return out


def _row(item: LabelledItem, s: ScoredResponse) -> dict[str, Any]:
    ours = [v.label for v in s.verdicts]
    human_first = next((i for i, h in enumerate(item.human) if not h), -1)
    ours_first = next((i for i, o in enumerate(ours) if o == "incorrect"), -1)
    return {"id": item.response.id, "human_first_error": human_first, "ours_first_error": ours_first,
            "misjudged": (sum((o == "correct") != h for o, h in zip(ours, item.human))
                          if len(ours) == len(item.human) else None),
            "reasons": [v.reason for v in s.verdicts], "error": s.error}


COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("n", "n", "{:d}"),
    ("fragments_per_response", "frags/resp", "{:.2f}"),
    ("misjudged_per_response", "misjudged/resp", "{:.2f}"),
    ("correctness_mae", "corr. MAE (pts)", "{:.1f}"),
    ("correctness_bias", "bias (pts)", "{:+.1f}"),
    ("precision_flagged", "precision flagged", "{:.3f}"),
    ("recall_not_correct", "recall", "{:.3f}"),
    ("balanced_accuracy", "bal. acc.", "{:.3f}"),
    ("auroc", "AUROC", "{:.3f}"),
    ("auroc_p", "AUROC p", "{:.3f}"),
)


def format_table(report: dict[str, Any]) -> str:
    """The per-set figures as a Markdown table."""
    lines = ["| set | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
             "|---|" + "---|" * len(COLUMNS)]
    for name, f in report["sets"].items():
        cells = [fmt.format(f[k]) if f.get(k) is not None else "n/a" for k, _, fmt in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
