"""``halt-eval audit``: the configured judge against human fragment labels (``halt_eval.audit``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EPILOG = """\
figures per set (fragments labelled by people; our label after the dependent rule, with
`unverifiable` counted as not correct):
  misjudged/resp     fragments whose label differs from the human one, per response
                     (HALT Table 1, Llama3-405B judge: bio 0.27 of 9.58 fragments, MATH 0.63,
                     medicine 0.41, code 1.14 of 7.85 lines)
  corr. MAE (pts)    mean absolute difference of per-response correctness, in points
  bias (pts)         mean correctness ours minus mean human, in points
  precision flagged  share of the fragments we label incorrect that people label not correct
  recall             share of the human not-correct fragments we label incorrect
  bal. acc., AUROC   correct vs not correct over fragments (AUROC scores our labels
                     correct 1, unverifiable 0.5, incorrect 0)
  AUROC p            the same with the judge's p_supported as the score (incorrect 0), when
                     every verdict carries one (the embedded bio/med judge)

data (--data DIR, default $HALT_DATA_DIR):
  math  DIR/math/processbench/{gsm8k,math}.dev.json, references joined by problem text
        from DIR/math/gsm8k/test.jsonl, math-test-5000 and math-500
  bio   FActScore human atomic facts (DIR/**/{ChatGPT,InstructGPT,PerplexityAI}*.jsonl), one
        set per model; S facts correct, NS not, IR left out; reference: the S facts of the
        other models' bios of the same person (with --corpus: the corpus, by topic)
  med   kqa: K-QA physician statements (DIR/**/NLI_medical_annotator*.csv) judged against
        the LLM answer they were labelled on (entailed = correct); factcheck_gpt: Factbench
        claims (DIR/**/Factbench*.jsonl, true = correct) against their evidence passages
        (DIR/**/subtask3_claim_evidence_stance*.jsonl)

examples:
  halt-eval audit --domain math --limit 50 --json audit.json
  halt-eval audit --domain math --judge-arg reference_support=true --judge-arg locate=true
  halt-eval audit --domain med --judge-backend openai --judge-model M --judge-base-url URL
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from halt_eval.audit import LOADERS

    parser.epilog = EPILOG
    parser.add_argument("--domain", required=True, choices=sorted(LOADERS),
                        help="which domain's labelled sets to audit")
    parser.add_argument("--data", metavar="DIR",
                        help="data directory in the shared layout (default: $HALT_DATA_DIR)")
    parser.add_argument("--limit", type=int, metavar="N", help="first N labelled answers of each set")
    parser.add_argument("--json", metavar="OUT", help="write the figures (and per-answer rows) here")
    parser.add_argument("--judge-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="keyword argument for the domain's judge (repeatable; VALUE is "
                             "parsed as JSON when it can be)")
    parser.add_argument("--corpus", metavar="PATH", help="bio/med reference corpus (as for score)")
    parser.add_argument("--batch-size", type=int, default=32, help="answers per judge call (default: 32)")
    from halt_eval.judges.llm import add_cli_arguments

    add_cli_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from halt_eval.audit import LOADERS, format_table, run_audit
    from halt_eval.cmd_score import _judge_kwargs
    from halt_eval.data import DataError, data_dir
    from halt_eval.judges.llm import options_from_args
    from halt_eval.score import Scorer

    if args.limit is not None and args.limit <= 0:
        print("halt-eval audit: --limit must be positive", file=sys.stderr)
        return 2
    try:
        root = data_dir(args.data)
    except DataError as e:
        print(f"halt-eval audit: {e}", file=sys.stderr)
        return 2
    if root is None:
        print("halt-eval audit: no data directory: pass --data DIR or set HALT_DATA_DIR", file=sys.stderr)
        return 2
    try:
        options = {"corpus": True} if args.domain == "bio" and args.corpus else {}
        sets = LOADERS[args.domain](root, args.limit, **options)
    except (OSError, ValueError, KeyError) as e:
        print(f"halt-eval audit: cannot read the labelled data: {e}", file=sys.stderr)
        return 2
    try:
        scorer = Scorer.for_domain(args.domain, judge_kwargs=_judge_kwargs(args),
                                   llm=options_from_args(args).to_dict())
    except (RuntimeError, ValueError, ImportError) as e:
        print(f"halt-eval audit: {e}", file=sys.stderr)
        return 2

    def progress(name: str, done: int, total: int) -> None:
        print(f"\r{name}: {done}/{total} answers", end="" if done < total else "\n", file=sys.stderr)

    try:
        report = run_audit(scorer, sets, batch_size=args.batch_size, progress=progress)
    finally:
        close = getattr(scorer.judge, "close", None)
        if callable(close):
            close()
    report["domain"] = args.domain
    report["data"] = str(root)
    report["limit"] = args.limit
    print(f"# halt-eval audit --domain {args.domain} ({report['judge_spec']['judge'].get('name', '?')} "
          f"judge; rules {report['rules_version']})")
    print(format_table(report))
    for name, f in report["sets"].items():
        if f.get("left_out"):
            print(f"{name}: left out by the loader: "
                  + ", ".join(f"{v} {k}" for k, v in f["left_out"].items()))
        if f["n_skipped"]:
            print(f"{name}: {f['n_skipped']} answer(s) could not be judged and are left out "
                  f"(first: {f['skipped'][0]['id']}: {f['skipped'][0]['why']})", file=sys.stderr)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return 0
