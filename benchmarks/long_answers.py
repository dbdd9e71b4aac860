"""Wall-clock time of ``halt-eval score`` on one very long answer, end to end.

Each case writes one input row holding a generated answer of ``--mb`` megabytes (5 by default)
and times ``halt-eval score`` on it as a subprocess (start-up, model loading, splitting, judging
and writing the row), against the 10 s target of the per-answer budget (docs/errors.md). Cases:

- ``bio_small`` / ``math_small``: a one-sentence answer, for the start-up time of the command
  (loading spaCy and MiniLM for bio), which no budget covers;
- ``bio_distinct``: a biography of distinct sentences (each names another place and year), with
  a topic found in a local JSONL corpus written beside the input;
- ``bio_one_sentence``: one sentence of ``--mb`` megabytes (no full stop until the end);
- ``bio_initials``: ``"A. " * 33000`` (every full stop an initial: one 99,000-character sentence);
- ``med``: distinct sentences against ``must_have`` / ``nice_to_have`` statements;
- ``math``: distinct arithmetic steps and a boxed answer, with a reference answer;
- ``code``: a right function followed by distinct assignment lines, run against a unit test in
  the sandbox.

Besides wall-clock seconds, each case prints the CPU seconds (user + system) of the command: on
this shared 2-core machine the wall clock grows with the load average, the CPU time much less.

No network: the bio judge reads the local corpus (``--corpus``) and ``HALT_WIKIPEDIA_API=off``.
Each row's budget evidence (``evidence.budget``) and its verdict counts are printed too.

Usage:
    python benchmarks/long_answers.py [--mb 5] [--cases bio_distinct,math] [--budget SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

TARGET_S = 10.0
CASES = ("bio_small", "bio_distinct", "bio_one_sentence", "bio_initials", "med", "math_small", "math", "code")

_PLACES = ("London", "Paris", "Turin", "Vienna", "Leeds", "Oslo", "Lisbon", "Madrid", "Dublin",
           "Prague", "Zurich", "Geneva", "Munich", "Bristol", "Cardiff", "Bergen", "Lyon")
_WORKS = ("a paper on engines", "a study of numbers", "a letter to Babbage", "notes on looms",
          "an essay on music", "a table of values", "a note on series", "a poem about flight")
_ADA = ("Ada Lovelace was an English mathematician and writer. She was born in London in 1815. "
        "She worked with Charles Babbage on the Analytical Engine. She wrote the first published "
        "algorithm intended for such a machine. She died in London in 1852.")


def _distinct_sentences(n_chars: int, subject: str = "She") -> str:
    parts, size, i = [], 0, 0
    while size < n_chars:
        place = _PLACES[i % len(_PLACES)]
        work = _WORKS[(i // len(_PLACES)) % len(_WORKS)]
        s = f"{subject} wrote {work} in {place} in {1000 + i % 9000} as item {i}. "
        parts.append(s)
        size += len(s)
        i += 1
    return "".join(parts)[:n_chars]


def _rows(case: str, n_chars: int) -> dict:
    if case == "bio_small":
        return {"id": case, "prompt": "Tell me a bio of Ada Lovelace.",
                "response": "Ada Lovelace was born in London.", "reference": {"topic": "Ada Lovelace"}}
    if case == "math_small":
        return {"id": case, "prompt": "What is 1 + 1?", "response": "1 + 1 = 2. \\boxed{2}",
                "reference": {"answer": "2"}}
    if case == "bio_distinct":
        text = "Ada Lovelace was an English mathematician. " + _distinct_sentences(n_chars)
        return {"id": case, "prompt": "Tell me a bio of Ada Lovelace.", "response": text,
                "reference": {"topic": "Ada Lovelace"}}
    if case == "bio_one_sentence":
        words = (f"and {w} in {p}" for w, p in zip(_WORKS * (n_chars // 40 + 1), _PLACES * (n_chars // 40 + 1)))
        text = "Ada Lovelace wrote " + " ".join(words)
        return {"id": case, "prompt": "Tell me a bio of Ada Lovelace.", "response": text[:n_chars] + ".",
                "reference": {"topic": "Ada Lovelace"}}
    if case == "bio_initials":
        return {"id": case, "prompt": "Tell me a bio of Ada Lovelace.", "response": "A. " * 33_000,
                "reference": {"topic": "Ada Lovelace"}}
    if case == "med":
        return {"id": case, "prompt": "How is hypertension treated?",
                "response": _distinct_sentences(n_chars, "The patient"),
                "reference": {"must_have": ["Lifestyle changes lower blood pressure.",
                                            "ACE inhibitors treat hypertension."],
                              "nice_to_have": ["Thiazide diuretics are a first-line option."]}}
    if case == "math":
        steps, size, i = [], 0, 0
        while size < n_chars:
            s = f"Step {i}: {i} + {i + 1} = {2 * i + 1}.\n"
            steps.append(s)
            size += len(s)
            i += 1
        return {"id": case, "prompt": "What is 1 + 1?", "response": "".join(steps) + "\\boxed{2}",
                "reference": {"answer": "2"}}
    if case == "code":
        lines, size, i = ["def add(a, b):\n    return a + b\n"], 0, 0
        while size < n_chars:
            line = f"value_{i} = {i} * 2  # line {i}\n"
            lines.append(line)
            size += len(line)
            i += 1
        return {"id": case, "prompt": "Write add(a, b).", "response": "".join(lines),
                "reference": {"tests": ["assert add(1, 2) == 3"], "setup": "",
                              "solution": "def add(a, b):\n    return a + b"}}
    raise ValueError(f"unknown case {case!r}; known: {', '.join(CASES)}")


def _domain(case: str) -> str:
    return case.split("_", 1)[0]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=5.0, help="answer size in megabytes (default 5)")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    ap.add_argument("--budget", type=float, default=None,
                    help="pass --answer-budget SECONDS (default: the command's own default)")
    args = ap.parse_args(argv)
    n_chars = int(args.mb * 1_000_000)
    exe = Path(sys.executable).with_name("halt-eval")
    env = {**os.environ, "HALT_WIKIPEDIA_API": "off", "TQDM_DISABLE": "1"}
    print(f"# {args.mb} MB answers, target {TARGET_S:.0f} s; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        corpus.write_text(json.dumps({"title": "Ada Lovelace", "text": _ADA}) + "\n")
        for case in args.cases.split(","):
            row = _rows(case, n_chars)
            src, out = Path(tmp) / f"{case}.jsonl", Path(tmp) / f"{case}.scored.jsonl"
            src.write_text(json.dumps(row) + "\n")
            cmd = [str(exe), "score", str(src), "--domain", _domain(case), "-o", str(out)]
            if _domain(case) == "bio":
                cmd += ["--corpus", str(corpus)]
            if args.budget is not None:
                cmd += ["--answer-budget", str(args.budget)]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            dt = time.perf_counter() - t
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            worst = max(worst, dt)
            if proc.returncode != 0:
                print(f"{case:<17} exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
                continue
            scored = json.loads(out.read_text().splitlines()[0])
            labels = Counter(v["verdict"] for v in scored["fragments"])
            reasons = Counter(v["reason"] for v in scored["fragments"] if v["verdict"] == "unverifiable")
            budget = scored.get("evidence", {}).get("budget")
            print(f"{case:<17} {len(row['response']):>9} chars  {dt:6.1f} s (cpu {cpu:5.1f} s)  "
                  f"{'ok' if dt < TARGET_S else 'OVER'}  fragments {len(scored['fragments'])} "
                  f"{dict(labels)} unverifiable {dict(reasons)} budget {budget}")
    print(f"# load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; slowest {worst:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
