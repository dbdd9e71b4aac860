"""Final answers by kind, through the whole ``halt-eval score --domain math`` pipeline, beside
Math-Verify's default ``verify(parse(gold), parse(answer))`` on the same cases.

The cases are ``tests/cases/math_answers_kinds.jsonl``, each labelled ``equal`` or
``not_equal``: labelled values, inequalities, intervals, equations, chained equalities,
matrices, decimal commas, and ``extraction`` (answers with no ``\\boxed{}``: a bare number,
"so x = 3", GSM8K's ``#### 18``, real last steps of ProcessBench answers, MATH-500 solutions
with their box removed). What both sides are given:

* an ``extraction`` case's answer is the whole response, as written;
* any other case's answer is put in a box (``\\boxed{ANSWER}``): those cases measure
  equivalence, not extraction;
* the gold is the reference; Math-Verify gets it as ``$GOLD$`` (as in ``math_answers.py``).

Ours: every case becomes one row of an answers file (``response`` the text above,
``reference.answer`` the gold); ``halt-eval score --domain math`` runs as a subprocess and each
scored row's ``solved`` (the final-answer verdict: true, false, or null when the answer or the
reference could not be parsed) is read back with the extraction recorded in its evidence. A
null counts as a disagreement with the label. Math-Verify runs in this process with its default
extraction (LaTeX and plain expressions) and its own timeouts.

    python benchmarks/math_answer_kinds.py [--json out.json] [--kind matrix]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "tests" / "cases" / "math_answers_kinds.jsonl"


def load(path: Path, kind: str | None) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if kind is None or r["kind"] == kind]


def response_of(case: dict) -> str:
    return case["answer"] if case["kind"] == "extraction" else f"\\boxed{{{case['answer']}}}"


def run_ours(cases: list[dict], workdir: Path) -> tuple[list[dict], float]:
    """Score the cases with the CLI; per case ``{"solved", "extraction", "extracted", "status"}``."""
    answers = workdir / "answers.jsonl"
    out = workdir / "scored.jsonl"
    with answers.open("w", encoding="utf-8") as f:
        for i, c in enumerate(cases):
            f.write(json.dumps({"id": f"k{i}", "prompt": c["name"], "response": response_of(c),
                                "reference": {"answer": c["reference"]}}) + "\n")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "from halt_eval.cli import main; raise SystemExit(main())",
                           "score", "--domain", "math", "-o", str(out), str(answers)],
                          capture_output=True, text=True, cwd=workdir)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"halt-eval score failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    rows = {r["id"]: r for r in (json.loads(line) for line in out.read_text().splitlines() if line.strip())}
    got = []
    for i in range(len(cases)):
        row = rows[f"k{i}"]
        ev = row.get("evidence") or {}
        got.append({"solved": row.get("solved"), "extraction": ev.get("extraction"),
                    "extracted": ev.get("final_answer"), "status": ev.get("status"), "error": row.get("error")})
    return got, seconds


def run_math_verify(cases: list[dict]) -> tuple[list[dict], float]:
    from math_verify import parse, verify

    got = []
    t0 = time.perf_counter()
    for c in cases:
        pred = parse(response_of(c))
        got.append({"equal": bool(verify(parse(f"${c['reference']}$"), pred)),
                    "extracted": str(pred[-1]) if pred else None})
    return got, time.perf_counter() - t0


def unbox(text: str) -> str:
    """``text`` with every ``\\boxed{X}`` written as ``X``."""
    out, k = [], 0
    while True:
        j = text.find("\\boxed{", k)
        if j < 0:
            return "".join(out) + text[k:]
        out.append(text[k:j])
        depth, m = 1, j + len("\\boxed{")
        start = m
        while m < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[m], 0)
            m += 1
        out.append(text[start:m - 1] if depth == 0 else text[start:])
        k = m


def run_processbench(data: Path, limit: int | None) -> dict:
    """Real answers: ProcessBench (GSM8K and MATH dev halves) against their reference answers,
    truth ``final_answer_correct``, as written and with every box removed. Ours is called
    directly (``locate_final_answer`` on the steps, then ``compare_answers``: the code the
    judge runs, without the step checks); Math-Verify parses the steps joined by blank lines."""
    from math_verify import parse, verify

    from halt_eval.audit import load_math_references
    from halt_eval.judges.math_answer import compare_answers, locate_final_answer, ranked_final_answer

    refs = load_math_references(data / "math")
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    how: dict[str, int] = defaultdict(int)
    for name in ("gsm8k", "math"):
        rows = json.loads((data / "math" / "processbench" / f"{name}.dev.json").read_text())[:limit]
        for r in rows:
            ref = refs.get(r["problem"].strip(), {}).get("answer")
            if ref is None:
                continue
            native = not any(ranked_final_answer(t) for t in r["steps"])
            for variant, steps in (("as written", r["steps"]), ("boxes removed", [unbox(t) for t in r["steps"]])):
                found = locate_final_answer(steps)
                ours = found is not None and compare_answers(ref, found.text)["status"] == "equal"
                peer = bool(verify(parse(f"${ref}$"), parse("\n\n".join(steps))))
                keys = [f"{name}, {variant}"] + ([f"{name}, no box nor 'answer is' as written"]
                                                  if native and variant == "as written" else [])
                for key in keys:
                    tally[key][0] += 1
                    tally[key][1] += ours is r["final_answer_correct"]
                    tally[key][2] += peer is r["final_answer_correct"]
                if variant == "boxes removed":
                    how[found.extraction if found else "none"] += 1
    return {"tally": dict(tally), "extractions_boxes_removed": dict(how)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=Path, default=CASES, help="labelled cases (JSONL)")
    ap.add_argument("--kind", default=None, help="only the cases of this kind")
    ap.add_argument("--json", type=Path, default=None, help="write figures and every case's results here")
    ap.add_argument("--processbench", action="store_true",
                    help="also grade ProcessBench's real answers (as written and with boxes removed)")
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("HALT_DATA_DIR", ROOT.parent / "shared" / "data")),
                    help="data directory (shared layout) for --processbench")
    ap.add_argument("--limit", type=int, default=None, help="first N ProcessBench answers of each set")
    args = ap.parse_args(argv)
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)

    cases = load(args.cases, args.kind)
    with tempfile.TemporaryDirectory() as tmp:
        ours, t_ours = run_ours(cases, Path(tmp))
    peer, t_peer = run_math_verify(cases)

    per_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    results = []
    for c, o, p in zip(cases, ours, peer):
        truth = c["expected"] == "equal"
        ok_ours, ok_peer = o["solved"] is truth, p["equal"] is truth
        for key in (c["kind"], "total"):
            per_kind[key][0] += 1
            per_kind[key][1] += ok_ours
            per_kind[key][2] += ok_peer
        results.append({**c, "ours": o, "peer": p, "ours_agrees": ok_ours, "peer_agrees": ok_peer})

    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# final answers by kind through `halt-eval score --domain math` ({len(cases)} cases; "
          f"load {load_avg:.1f} on {os.cpu_count()} CPUs)")
    print("| kind | n | ours agree | Math-Verify agree |")
    print("|---|---|---|---|")
    for kind in sorted(k for k in per_kind if k != "total") + ["total"]:
        n, a, b = per_kind[kind]
        print(f"| {kind} | {n} | {a}/{n} ({a / n:.2f}) | {b}/{n} ({b / n:.2f}) |")
    print(f"\nseconds: ours {t_ours:.1f} (one CLI run, start-up and worker pool included), "
          f"Math-Verify {t_peer:.1f} (in-process)")
    extractions: dict[str, int] = defaultdict(int)
    for r in results:
        if r["kind"] == "extraction":
            extractions[str(r["ours"]["extraction"])] += 1
    print("our extractions on the extraction cases: " + ", ".join(f"{k} {v}" for k, v in sorted(extractions.items())))
    wrong = [r for r in results if not (r["ours_agrees"] and r["peer_agrees"])]
    print(f"\n{len(wrong)} cases where one side disagrees with the label:")
    for r in wrong:
        print(f"  [{r['kind']}] {r['name']}: expected {r['expected']}; ours {r['ours']['solved']} "
              f"(extracted {r['ours']['extracted']!r} by {r['ours']['extraction']}, {r['ours']['status']}); "
              f"Math-Verify {r['peer']['equal']} (extracted {r['peer']['extracted']!r})")
    pb = None
    if args.processbench:
        pb = run_processbench(args.data, args.limit)
        print("\n# ProcessBench final answers (dev halves), agreement with `final_answer_correct`")
        print("| set | n | ours | Math-Verify |")
        print("|---|---|---|---|")
        for key, (n, a, b) in sorted(pb["tally"].items()):
            print(f"| {key} | {n} | {a}/{n} ({a / n:.3f}) | {b}/{n} ({b / n:.3f}) |")
        print("our extractions, boxes removed: " + ", ".join(f"{k} {v}" for k, v in
                                                             sorted(pb["extractions_boxes_removed"].items())))
    if args.json:
        args.json.write_text(json.dumps({"per_kind": {k: dict(zip(("n", "ours", "math_verify"), v))
                                                      for k, v in per_kind.items()},
                                         "seconds": {"ours": t_ours, "math_verify": t_peer},
                                         "load": load_avg, "cases": results, "processbench": pb}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
