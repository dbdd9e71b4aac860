"""Final-answer equivalence: ours (``compare_answers``) beside Math-Verify's ``verify``.

Pairs, all built from MATH-500 (``--data`` holds ``test.jsonl``):

* positives: the reference ``answer`` against the last ``\\boxed{}`` of the row's own
  ``solution`` (the truth is "equal");
* negatives: the reference against wrong answers made from it with a fixed seed (the truth is
  "not equal"): every number shifted by one, doubled or with a digit appended, a factorial
  moved by two (``1/2004!`` → ``1/2006!``), a radical dropped (``4\\sqrt{2}`` → ``4``), an
  interval end's bracket flipped (not at an infinite end), a tuple reversed, a sign flipped.
  Digits of ``\frac43`` shorthands, units and base subscripts are left alone, ``0`` is not
  negated, and a perturbation that leaves the text unchanged is skipped, so every negative
  really differs in value (the truth is by construction).
* Math-Verify's documented false positives, written out.

Both sides get the same strings: the reference, and the boxed content as the answer. Math-Verify
runs as its README shows (``verify(parse(gold), parse(answer))``, gold first) with its own
signal-based timeouts; ours runs in-process without the worker pool, so both are timed on
the bare comparison. Timings are the median of ``--repeat`` runs after one warm-up run.

    python benchmarks/math_answers.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import re
import statistics
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "math" / "math-500"
SEED = 0
# Pairs Math-Verify is known to get wrong (it calls them equal); the truth is "not equal".
KNOWN_FALSE_POSITIVES = [
    ("\\frac{1}{2004!}", "\\frac{1}{2006!}"),
    ("4", "4\\sqrt{2}"),
    ("10^{-12}", "10^{-13}"),
    ("1000000001", "1000000002"),
]


def perturb(answer: str, rng: random.Random) -> list[tuple[str, str]]:
    """Wrong answers made from ``answer``: ``(kind, text)`` pairs, each differing from it."""
    out = []
    # Digits of a "\frac43" shorthand, of a unit ("\mbox{ cm}^2") or of a base subscript are
    # not perturbed: changing them may leave the value as it is.
    protected = [m.span() for m in re.finditer(r"\\[dt]?frac\s*\d\d|\\(?:mbox|text)\{[^{}]*\}(?:\^\d)?|_\{?\d+\}?",
                                               answer)]
    numbers = [m for m in re.finditer(r"\d+", answer)
               if not any(a <= m.start() < b for a, b in protected)]
    if numbers:
        m = rng.choice(numbers)
        n = int(m.group())
        for kind, new in (("plus_one", n + 1), ("double", 2 * n if n else 7), ("digit", f"{n}{rng.randint(1, 9)}")):
            out.append((kind, answer[:m.start()] + str(new) + answer[m.end():]))
    fact = re.search(r"(\d+)!", answer)
    if fact:
        out.append(("factorial", answer[:fact.start()] + f"{int(fact.group(1)) + 2}!" + answer[fact.end():]))
    root = re.search(r"\\sqrt\{[^{}]*\}|\\sqrt\d", answer)
    if root and answer.replace(root.group(), "").strip():
        out.append(("drop_root", (answer[:root.start()] + answer[root.end():]).strip()))
    if re.match(r"^\s*[\[(].*[\])]\s*$", answer) and "," in answer:
        flipped = {"(": "[", "[": "(", ")": "]", "]": ")"}
        s = answer.strip()
        if not s[1:].lstrip().startswith(("-\\infty", "\\infty")):  # "[-oo" is no interval end
            out.append(("bracket", flipped[s[0]] + s[1:]))
        inner = s[1:-1].split(",")
        if len(inner) > 1 and inner != inner[::-1] and "\\" not in s:
            out.append(("reverse", s[0] + ",".join(reversed(inner)) + s[-1]))
    head = answer.strip()
    if numbers and head != "0" and head[0] not in "-([{\\":
        out.append(("negate", "-" + head))
    return [(k, t) for k, t in out if t != answer]


def build_pairs(rows: list[dict], rng: random.Random) -> list[dict]:
    from halt_eval.judges.math_answer import extract_final_answer

    pairs = []
    for row in rows:
        boxed = extract_final_answer(row["solution"])
        if boxed is not None:
            pairs.append({"id": row["unique_id"], "kind": "own_solution", "gold": row["answer"],
                          "answer": boxed, "truth": True})
        for kind, wrong in perturb(row["answer"], rng):
            pairs.append({"id": row["unique_id"], "kind": kind, "gold": row["answer"],
                          "answer": wrong, "truth": False})
    for gold, wrong in KNOWN_FALSE_POSITIVES:
        pairs.append({"id": "known", "kind": "known_false_positive", "gold": gold, "answer": wrong, "truth": False})
    return pairs


def run_ours(pairs: list[dict]) -> list[bool | None]:
    from halt_eval.judges.math_answer import compare_answers

    out = []
    for p in pairs:
        status = compare_answers(p["gold"], p["answer"])["status"]
        out.append({"equal": True, "not_equal": False}.get(status))
    return out


def run_math_verify(pairs: list[dict]) -> list[bool]:
    from math_verify import parse, verify

    return [bool(verify(parse(f"${p['gold']}$"), parse(f"${p['answer']}$"))) for p in pairs]


def timed(fn, pairs: list[dict], repeat: int) -> tuple[list, float, float]:
    """Results, median seconds of ``repeat`` runs after the warm-up, and the warm-up's seconds
    (cold caches: both sides cache parsed LaTeX)."""
    t0 = time.perf_counter()
    result = fn(pairs)
    cold = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn(pairs)
        times.append(time.perf_counter() - t0)
    return result, statistics.median(times) if times else float("nan"), cold


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA, help="directory holding MATH-500 test.jsonl")
    ap.add_argument("--limit", type=int, default=None, help="first N problems")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs after one warm-up run")
    ap.add_argument("--json", type=Path, default=None, help="write figures and disagreements here")
    args = ap.parse_args(argv)
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)

    rows = [json.loads(line) for line in (args.data / "test.jsonl").read_text().splitlines()][: args.limit]
    pairs = build_pairs(rows, random.Random(SEED))
    ours, t_ours, cold_ours = timed(run_ours, pairs, args.repeat)
    peer, t_peer, cold_peer = timed(run_math_verify, pairs, args.repeat)
    truth = [p["truth"] for p in pairs]
    n = len(pairs)

    def acc(pred):
        return sum(x is t for x, t in zip(pred, truth)) / n

    def false_pos(pred):
        return sum(x is True and not t for x, t in zip(pred, truth))

    def false_neg(pred):
        return sum(x is not True and t for x, t in zip(pred, truth))

    known = [i for i, p in enumerate(pairs) if p["kind"] == "known_false_positive"]
    rows_out = [
        ("accuracy", acc(ours), acc(peer)),
        ("false positives (wrong called equal)", false_pos(ours), false_pos(peer)),
        ("false negatives (equal not called equal)", false_neg(ours), false_neg(peer)),
        ("known Math-Verify false positives called equal", sum(ours[i] is True for i in known),
         sum(peer[i] is True for i in known)),
        ("unparsable (ours: no decision)", sum(x is None for x in ours), 0),
        ("seconds for all pairs (median after warm-up)", t_ours, t_peer),
        ("seconds for all pairs (first run, cold caches)", cold_ours, cold_peer),
    ]
    machine = f"{platform.machine()}/{os.cpu_count()}cpu"
    agree = sum((o is True) == bool(p) for o, p in zip(ours, peer)) / n
    print(f"# answer equivalence on MATH-500 pairs (median of {args.repeat} runs after a warm-up; "
          "shared 2-core machine, timings noisy)")
    print("| measure | ours | peer (Math-Verify) | ratio | n | machine |")
    print("|---|---|---|---|---|---|")
    for name, a, b in rows_out:
        ratio = f"{a / b:.2f}" if b else ""
        fa = f"{a:.3f}" if isinstance(a, float) else str(a)
        fb = f"{b:.3f}" if isinstance(b, float) else str(b)
        print(f"| {name} | {fa} | {fb} | {ratio} | {n} | {machine} |")
    print(f"| agreement ours vs peer | {agree:.3f} |  |  | {n} | {machine} |")
    disagreements = [{**p, "ours": o, "peer": q} for p, o, q in zip(pairs, ours, peer) if (o is True) != q]
    print(f"\n{len(disagreements)} disagreements; first 15:")
    for d in disagreements[:15]:
        print(f"  {d['kind']}: gold={d['gold']!r} answer={d['answer']!r} truth={d['truth']} "
              f"ours={d['ours']} peer={d['peer']}")
    if args.json:
        args.json.write_text(json.dumps({"measures": {k: [a, b] for k, a, b in rows_out}, "agreement": agree,
                                         "n": n, "machine": machine, "disagreements": disagreements},
                                        indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
