"""``halt-eval targets``: HALT finetuning targets from scored runs with several samples per prompt."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EPILOG = """\
Each prompt (task, id) of a run with N scored samples gives one target per alpha: the samples
are sorted ascending by mean fragment correctness (no fragments = 0; ties by sample index) and
the one at position ceil(alpha*N) is trimmed: independent domains (bio, med) keep their correct
fragments; dependent ones (math, code) keep what precedes the first incorrect fragment and end
with "Unsure from Here". See docs/targets.md.

output rows: {"messages": [{"role": "user", ...}, {"role": "assistant", ...}], "provenance": {...}}
With -o naming "{alpha}" (targets_{alpha}.jsonl) one file is written per alpha.

exit status: 0 written; 2 bad options or unreadable runs.

example:
  halt-eval targets scored_math.jsonl scored_bio.jsonl -o targets_{alpha}.jsonl --alpha 0.4 0.6 0.8
"""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="a scored run: halt-eval score JSONL (several rows per id, numbered by "
                             "'sample'), a folder of them, or an lm-eval output folder run with repeats")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.jsonl",
                        help="where the rows go; '{alpha}' in the name gives one file per alpha")
    parser.add_argument("--alpha", type=float, nargs="+", default=[0.4, 0.6, 0.8], metavar="A",
                        help="thresholds in (0, 1] (default 0.4 0.6 0.8)")
    parser.add_argument("--variant", choices=("halt", "addon"), default="halt",
                        help="halt: trim the errors (default); addon: keep them after the marker")


def run(args: argparse.Namespace) -> int:
    from halt_eval.io import write_jsonl_row
    from halt_eval.runs import RunError, load_run
    from halt_eval.targets import TargetError, build_targets

    by_alpha: dict[float, list[dict]] = {a: [] for a in args.alpha}
    try:
        for path in args.runs:
            run_ = load_run(path)
            for note in run_.skipped:
                print(f"halt-eval targets: skipped {note}", file=sys.stderr)
            for target in build_targets(run_.rows(), args.alpha, args.variant):
                by_alpha[target.alpha].append(target.to_row(run_.name))
    except (RunError, TargetError) as e:
        print(f"halt-eval targets: error: {e}", file=sys.stderr)
        return 2
    split = "{alpha}" in args.output
    outputs = ({Path(args.output.replace("{alpha}", f"{a:g}")): [a] for a in args.alpha} if split
               else {Path(args.output): list(args.alpha)})
    for out, alphas in outputs.items():
        with out.open("w", encoding="utf-8") as fh:
            for a in alphas:
                for row in by_alpha[a]:
                    write_jsonl_row(fh, row)
        n = sum(len(by_alpha[a]) for a in alphas)
        print(f"halt-eval targets: {n} rows -> {out}", file=sys.stderr)
    for a in args.alpha:
        print(f"halt-eval targets: {summary_line(a, by_alpha[a])}", file=sys.stderr)
    return 0


def summary_line(alpha: float, rows: list[dict]) -> str:
    """``alpha=0.4: 12 targets, 3 only the marker, 1.5 of 4.2 fragments kept, ...``."""
    from halt_eval.targets import MARKER

    if not rows:
        return f"alpha={alpha:g}: no targets"
    prov = [r["provenance"] for r in rows]
    only_marker = sum(r["messages"][1]["content"] == MARKER for r in rows)
    kept = sum(p["n_kept"] for p in prov) / len(prov)
    given = sum(p["n_given"] for p in prov) / len(prov)
    capable = [p["completeness_capable"] for p in prov if p["completeness_capable"] is not None]
    cap = f"{sum(capable) / len(capable):.2f}" if capable else "n/a"
    return (f"alpha={alpha:g}: {len(rows)} targets, {only_marker} only the marker, "
            f"{kept:.1f} of {given:.1f} fragments kept, completeness against n_capable {cap}")
