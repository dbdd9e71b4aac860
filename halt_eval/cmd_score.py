"""``halt-eval score``: score saved answers without lm-eval."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


EPILOG = """\
input rows (JSONL): {{"id", "prompt", "response", "reference", "fragments"?}}; lm-eval
samples_*.jsonl files are read too. reference per domain:
{references}

exit status: 0 all records scored; 1 some records could not be read (each is named on
stderr, every other record is still scored and written); 2 bad options.

example:
  halt-eval score answers.jsonl --domain math -o scored.jsonl --summary-json summary.json
"""


def _epilog() -> str:
    from halt_eval.domains import domain_names, get_domain

    lines = []
    for name in domain_names():
        try:
            lines.append(f"  {name:<5} {get_domain(name).reference_help}")
        except ValueError:
            continue
    return EPILOG.format(references="\n".join(lines))


def configure(parser: argparse.ArgumentParser) -> None:
    from halt_eval.domains import domain_names

    parser.epilog = _epilog()
    parser.add_argument("inputs", nargs="+", metavar="INPUT.jsonl",
                        help="answers to score (halt-eval rows or lm-eval samples_*.jsonl)")
    parser.add_argument("--domain", required=True, metavar="DOMAIN",
                        help=f"which domain's splitter and judge apply: {', '.join(domain_names())}, "
                             "or module:ATTRIBUTE naming a Domain record")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.jsonl",
                        help="scored rows, one per input row, written as they are scored")
    parser.add_argument("--summary-json", metavar="FILE", help="also write the summary as JSON")
    parser.add_argument("--task", default="", help="task name recorded on each row")
    parser.add_argument("--resume", action="store_true",
                        help="keep rows already in OUT and score only the ids not there yet")
    parser.add_argument("--n-desired", metavar="MODE",
                        help="completeness denominator: reference, reference_recall or fixed:K "
                             "(default: the domain's; see the README)")
    parser.add_argument("--marker", action="append", default=[], metavar="PHRASE",
                        help="extra abstention marker besides 'Unsure from Here' (repeatable)")
    parser.add_argument("--reasoning", choices=("answer", "reasoning", "keep"), default="answer",
                        help="answers with a reasoning span (<think>...</think>): score the "
                             "answer after it (default), the reasoning inside it, or keep both; "
                             "the span's length is recorded in each row's evidence")
    parser.add_argument("--reasoning-delimiters", metavar="OPEN,CLOSE",
                        help="the reasoning span's delimiters (default: <think>,</think>)")
    parser.add_argument("--corpus", metavar="PATH",
                        help="bio/med reference corpus: FActScore SQLite (documents(title, text)) "
                             "or JSONL of {title, text}")
    parser.add_argument("--judge-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="keyword argument for the domain's judge (repeatable; VALUE is "
                             "parsed as JSON when it can be)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="answers per judge call (default: 32)")
    from halt_eval.judges.llm import add_cli_arguments

    add_cli_arguments(parser)


def _judge_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for item in args.judge_arg:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"halt-eval score: --judge-arg expects KEY=VALUE, got {item!r}")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    if args.corpus:
        kwargs["corpus"] = args.corpus
    return kwargs


def _done_ids(path: Path) -> set[str]:
    from halt_eval.io import iter_json_lines

    return {str(obj["id"]) for _, obj, err, _ in iter_json_lines(path) if not err and "id" in obj}


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from halt_eval.io import read_responses, write_jsonl_row
    from halt_eval.judges.llm import options_from_args
    from halt_eval.catalogue import format_summary, summarize
    from halt_eval.rules import RULES_VERSION
    from halt_eval.score import ScoreConfig, Scorer
    from halt_eval.split import DEFAULT_MARKERS

    from halt_eval.reasoning import parse_delimiters

    config = ScoreConfig(markers=DEFAULT_MARKERS + tuple(args.marker), n_desired=args.n_desired,
                         reasoning=args.reasoning,
                         reasoning_delimiters=parse_delimiters(args.reasoning_delimiters))
    try:
        scorer = Scorer.for_domain(
            args.domain, config=config, judge_kwargs=_judge_kwargs(args),
            llm=options_from_args(args).to_dict())
    except (RuntimeError, ValueError, ImportError) as e:
        print(f"halt-eval score: {e}", file=sys.stderr)
        return 2

    out_path = Path(args.output)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    done = _done_ids(out_path) if args.resume and out_path.exists() else set()
    bad = 0
    records = []
    for path in args.inputs:
        try:
            for rec in read_responses(path, args.domain, task=args.task):
                if rec.warning:
                    print(f"warning: {rec.warning}", file=sys.stderr)
                if rec.error:
                    bad += 1
                    print(f"error: {rec.error}", file=sys.stderr)
                elif rec.response.id not in done:
                    records.append(rec.response)
        except OSError as e:
            print(f"halt-eval score: cannot read {path}: {e}", file=sys.stderr)
            return 2

    rows: list[Any] = []
    with out_path.open("a" if args.resume else "w", encoding="utf-8") as fh, \
            tqdm(total=len(records), desc=f"scoring {args.domain}", unit="answer",
                 file=sys.stderr) as bar:
        for start in range(0, len(records), max(1, args.batch_size)):
            batch = records[start:start + args.batch_size]
            for scored in scorer.score(batch):
                write_jsonl_row(fh, scored.to_dict())
                rows.append(scored)
            bar.update(len(batch))
    if done:
        from halt_eval.io import iter_json_lines

        from halt_eval.types import ScoredResponse

        rows = [ScoredResponse.from_dict(obj, where) for where, obj, err, _ in iter_json_lines(out_path)
                if not err]

    summary = summarize(rows)
    summary.update({"domain": args.domain, "inputs": [str(p) for p in args.inputs],
                    "output": str(out_path), "skipped_records": bad,
                    "judge": f"{scorer.judge.name}@{scorer.judge.version}",
                    "splitter": f"{scorer.splitter.name}@{scorer.splitter.version}",
                    "n_desired": scorer.n_desired_mode, "rules_version": RULES_VERSION,
                    "judge_spec": scorer.spec()})
    stats = getattr(scorer.judge, "stats", None)  # the LLM judge's call counts
    if stats is not None:
        summary["judge_stats"] = stats() if callable(stats) else stats
    print(format_summary(summary))
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if bad:
        print(f"halt-eval score: {bad} record(s) could not be read (named above); "
              f"the other {len(rows)} were scored", file=sys.stderr)
        return 1
    return 0
