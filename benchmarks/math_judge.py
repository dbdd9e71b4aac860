"""The sympy math judge against ProcessBench's expert step labels.

Reads every ProcessBench-format file (``*.json``: a list of ``{id, problem, steps, label}``;
``label`` is the 0-based first wrong step, or -1) in ``--data``, scores each solution through
``Scorer.for_domain("math")`` with the expert steps as fragments, and takes the first
``incorrect`` step as the predicted first error (-1 when there is none). Per file and overall
it prints:

* ``error_acc``: erroneous solutions whose first error is found exactly;
* ``correct_acc``: error-free solutions with nothing flagged;
* ``f1``: their harmonic mean (ProcessBench's F1, in %);
* ``precision``: flagged solutions whose flagged step is at or after the expert's first error
  (that step is wrong under the dependent rule); ``precision_exact``: exactly at it;
* ``recall``: erroneous solutions flagged at or after their first error;
* ``steps_per_s``: steps judged per second, median of ``--repeat`` timed runs after one
  warm-up run; each timed run starts fresh worker processes, so no parse cache carries over.

References are joined by exact problem text from GSM8K test and MATH (MATH-500, then the
5000-problem test set); problems with no match (olympiadbench, omnimath) are scored without
a reference. The peer column holds the published ProcessBench F1 of LLM judges (QwQ-32B-Preview
71.5, o1-mini 87.9, averaged over the four full sets), for scale only: it is not measured here.

    python benchmarks/math_judge.py --data ../shared/data/math/processbench --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

from halt_eval.score import Scorer
from halt_eval.types import Response

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "math"
# Published average F1 over the four full ProcessBench sets (LLM judges, from the paper).
PUBLISHED_F1 = {"QwQ-32B-Preview": 71.5, "o1-mini": 87.9}


def load_references(math_dir: Path) -> dict[str, dict[str, str]]:
    """Problem text → ``{"answer", "solution"}`` from GSM8K test, MATH-500 and MATH test (the
    same join ``halt-eval audit`` uses)."""
    from halt_eval.audit import load_math_references

    return load_math_references(math_dir)


def responses_for(path: Path, refs: dict, limit: int | None) -> tuple[list[Response], list[int]]:
    rows = json.loads(path.read_text())[:limit]
    responses = [
        Response(id=str(r["id"]), domain="math", prompt=r["problem"], text="\n\n".join(r["steps"]),
                 reference=refs.get(r["problem"].strip(), {}), fragments=tuple(r["steps"]))
        for r in rows
    ]
    return responses, [int(r["label"]) for r in rows]


def first_error(scored) -> int:
    return next((i for i, v in enumerate(scored.verdicts) if v.label == "incorrect"), -1)


def measure(preds: list[int], labels: list[int]) -> dict[str, float]:
    """ProcessBench accuracies and F1, and precision/recall of flagged steps."""
    err = [(p, y) for p, y in zip(preds, labels) if y != -1]
    ok = [(p, y) for p, y in zip(preds, labels) if y == -1]
    flagged = [(p, y) for p, y in zip(preds, labels) if p != -1]
    error_acc = sum(p == y for p, y in err) / len(err) if err else 0.0
    correct_acc = sum(p == -1 for p, _ in ok) / len(ok) if ok else 0.0
    f1 = 2 * error_acc * correct_acc / (error_acc + correct_acc) if error_acc + correct_acc else 0.0
    return {
        "error_acc": 100 * error_acc,
        "correct_acc": 100 * correct_acc,
        "f1": 100 * f1,
        "precision": sum(y != -1 and p >= y for p, y in flagged) / len(flagged) if flagged else 0.0,
        "precision_exact": sum(p == y for p, y in flagged) / len(flagged) if flagged else 0.0,
        "recall": sum(p != -1 and p >= y for p, y in err) / len(err) if err else 0.0,
        "flagged": len(flagged),
        "n": len(labels),
        "n_erroneous": len(err),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA / "processbench",
                    help="directory of ProcessBench-format *.json files")
    ap.add_argument("--references", type=Path, default=DATA,
                    help="directory holding gsm8k/, math-500/, math-test-5000/ for the join")
    ap.add_argument("--no-references", dest="use_references", action="store_false",
                    help="score every file reference-free")
    ap.add_argument("--limit", type=int, default=None, help="first N rows of each file")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs after one warm-up run")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args(argv)

    refs = load_references(args.references) if args.use_references else {}
    files = sorted(args.data.glob("*.json"))
    if not files:
        print(f"no *.json files in {args.data}", file=sys.stderr)
        return 2
    scorer = Scorer.for_domain("math")
    machine = f"{platform.machine()}/{__import__('os').cpu_count()}cpu"
    all_preds, all_labels, all_steps, all_time = [], [], 0, 0.0
    report: dict[str, dict] = {}
    reasons: dict[str, int] = {}
    for path in files:
        responses, labels = responses_for(path, refs, args.limit)
        scored = scorer.score(responses)  # warm-up: starts workers, fills caches
        times = []
        for _ in range(args.repeat):
            scorer.judge.close()  # fresh workers: every timed run starts with cold caches
            t0 = time.perf_counter()
            scored = scorer.score(responses)
            times.append(time.perf_counter() - t0)
        seconds = statistics.median(times) if times else float("nan")
        preds = [first_error(s) for s in scored]
        steps = sum(len(r.fragments) for r in responses)
        figures = measure(preds, labels)
        figures.update(seconds=seconds, steps=steps, steps_per_s=steps / seconds,
                       with_reference=sum(bool(r.reference) for r in responses))
        for s in scored:
            for v in s.verdicts:
                reasons[v.reason] = reasons.get(v.reason, 0) + 1
        figures["rows"] = [
            {"id": r.id, "label": y, "predicted": p,
             "reason": s.verdicts[p].reason if p >= 0 else None,
             "explanation": s.verdicts[p].explanation if p >= 0 else None}
            for r, s, y, p in zip(responses, scored, labels, preds)
        ]
        report[path.stem] = figures
        all_preds += preds
        all_labels += labels
        all_steps += steps
        all_time += seconds
    overall = measure(all_preds, all_labels)
    overall.update(seconds=all_time, steps=all_steps, steps_per_s=all_steps / all_time)
    report["overall"] = overall

    print(f"# ProcessBench, sympy judge (median of {args.repeat} runs after a warm-up; "
          f"shared 2-core machine, timings noisy)")
    print("| file | measure | ours | peer | ratio | n | machine |")
    print("|---|---|---|---|---|---|---|")
    for name, f in report.items():
        for key in ("error_acc", "correct_acc", "f1", "precision", "precision_exact", "recall", "steps_per_s"):
            peer = ""
            ratio = ""
            if name == "overall" and key == "f1":
                peer = f"{PUBLISHED_F1['QwQ-32B-Preview']} (QwQ, published)"
                ratio = f"{f[key] / PUBLISHED_F1['QwQ-32B-Preview']:.2f}"
            print(f"| {name} | {key} | {f[key]:.3f} | {peer} | {ratio} | {f['n']} | {machine} |")
    print("\nverdict reasons:", json.dumps(dict(sorted(reasons.items(), key=lambda kv: -kv[1]))))
    if args.json:
        args.json.write_text(json.dumps({"files": report, "reasons": reasons, "machine": machine,
                                         "repeat": args.repeat}, indent=2))
    scorer.judge.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
