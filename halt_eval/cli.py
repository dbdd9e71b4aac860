"""The ``halt-eval`` command line.

Each subcommand lives in its own module exposing ``configure(parser)`` and ``run(args) -> int``;
modules are imported only when their subcommand runs, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "score": ("halt_eval.cmd_score", "score saved answers (JSONL or lm-eval samples) without lm-eval"),
    "run": ("halt_eval.lmeval", "run lm-eval with the halt tasks and models registered"),
    "tasks-path": ("halt_eval.lmeval", "print the directory to pass to lm_eval --include_path"),
    "report": ("halt_eval.reports.render", "write a self-contained HTML report of one or more runs"),
    "gate": ("halt_eval.gate", "compare a candidate run with a baseline; exit 1 on a regression"),
    "corpus": ("halt_eval.judges.wikipedia", "fetch the Wikipedia pages of a topic list into a JSONL corpus"),
    "targets": ("halt_eval.cmd_targets", "build HALT finetuning targets from runs with several samples per prompt"),
    "audit": ("halt_eval.cmd_audit", "measure the judge against human fragment labels (misjudged per response)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="halt-eval",
        description=(
            "Fragment-level evaluation of LLM answers (HALT): each answer is cut into fragments "
            "(atomic facts, reasoning steps, code lines), each fragment is judged against ground "
            "truth, and correctness, completeness and F1 come out. Text after 'Unsure from Here' "
            "is not scored."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_module, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, description=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        parser.parse_args(argv or ["--help"])
        return 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(SUBCOMMANDS[name][0])
    if name == "run":
        return module.run_cli(rest)
    if name == "tasks-path":
        print(module.tasks_path())
        return 0
    sub = argparse.ArgumentParser(prog=f"halt-eval {name}", description=SUBCOMMANDS[name][1],
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    module.configure(sub)
    args = sub.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except Exception as e:
        if not getattr(e, "fatal", False):  # a bug: keep its traceback
            raise
        print(f"halt-eval {name}: error: {e}", file=sys.stderr)  # e.g. the judge is unreachable
        return 2


if __name__ == "__main__":
    sys.exit(main())
