"""``halt-eval score``: score saved answers without lm-eval."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path
from typing import Any


EPILOG = """\
input rows (JSONL): {{"id", "prompt", "response", "reference", "fragments"?, "sample"?}}, or
"responses": [...] for several sampled answers to one prompt (scored as samples 0, 1, ...);
lm-eval samples_*.jsonl files are read too. reference per domain:
{references}

exit status: 0 all records scored; 1 some records could not be read or repeat an id (each is
named on stderr, every other record is still scored and written); 2 bad options or an
unusable file, one line on stderr, before any output is written (see docs/errors.md).

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
                        help="completeness denominator: reference, reference_recall, fixed:K or "
                             "capable (the most correct fragments any sample of the prompt reaches, "
                             "HALT's n_capable; docs/targets.md) (default: the domain's; see the README)")
    parser.add_argument("--marker", action="append", default=[], metavar="PHRASE",
                        help="extra abstention marker besides 'Unsure from Here' (repeatable)")
    parser.add_argument("--reasoning", choices=("answer", "reasoning", "keep"), default="answer",
                        help="answers with a reasoning span (<think>...</think>): score the "
                             "answer after it (default), the reasoning inside it, or keep both; "
                             "the span's length is recorded in each row's evidence")
    parser.add_argument("--reasoning-delimiters", metavar="OPEN,CLOSE",
                        help="the reasoning span's delimiters (default: <think>,</think>)")
    parser.add_argument("--natural-abstention", action="store_true",
                        help="also detect abstention in the model's own words (\"I don't know\", "
                             "\"I'm not sure about ...\"; phrase list in halt_eval.abstain): recorded "
                             "in each row's evidence and counted in the summary apart from the "
                             "marker's abstention; scores do not change")
    parser.add_argument("--corpus", metavar="PATH",
                        help="bio/med reference corpus: FActScore SQLite (documents(title, text)) "
                             "or JSONL of {title, text}")
    parser.add_argument("--judge-arg", action="append", default=[], metavar="KEY=VALUE",
                        help="keyword argument for the domain's judge (repeatable; VALUE is "
                             "parsed as JSON when it can be)")
    parser.add_argument("--answer-budget", default=None, metavar="SECONDS",
                        help="seconds of splitting and judging per answer (default: "
                             f"{_default_budget():g}; `off` for no limit): what is left when they "
                             "run out is unverifiable with reason over_budget, and the row's "
                             "evidence records the budget; the other answers are not affected")
    parser.add_argument("--budget-clock", choices=("cpu", "wall"), default="cpu",
                        help="what --answer-budget counts: CPU seconds of this process (default: "
                             "verdicts do not depend on the machine's load) or wall-clock seconds")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="answers per judge call (default: 32)")
    parser.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                        help="judge the batches as tasks on a Ray cluster: with no ADDRESS start a "
                             "local Ray instance, with `auto` or HOST:PORT connect to a running one "
                             "(rows are those of a run without --ray; see docs/ray.md). Needs "
                             "pip install 'halt-eval[ray]'")
    parser.add_argument("--judge-dry-run", action="store_true",
                        help="print how many LLM calls and prompt tokens (estimated as "
                             "characters / 4) scoring would take, without calling the LLM or "
                             "writing -o; needs --judge-backend; the embedded judge still runs "
                             "to find what it leaves undecided (--summary-json gets the plan)")
    from halt_eval.judges.llm import add_cli_arguments

    add_cli_arguments(parser)


def _default_budget() -> float:
    from halt_eval.budget import DEFAULT_ANSWER_BUDGET

    return DEFAULT_ANSWER_BUDGET


def answer_budget(value: str | None) -> float | None:
    """``--answer-budget``: seconds above 0, ``off`` (no limit), or the default when not given."""
    from halt_eval.budget import parse_budget

    try:
        return parse_budget(value)
    except ValueError:
        raise UsageError(f"--answer-budget must be a number of seconds above 0 or 'off', "
                         f"got {value!r}") from None


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


def _dry_run(args: argparse.Namespace, scorer: Any, records: list[Any], bad: int) -> int:
    """``--judge-dry-run``: the plan of LLM calls, nothing sent, ``-o`` untouched."""
    from halt_eval.judge_plan import dry_run, format_plan

    try:
        plan = dry_run(scorer, records, batch_size=args.batch_size)
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(format_plan(plan))
    if args.summary_json:
        try:
            Path(args.summary_json).write_text(json.dumps({"judge_dry_run": plan}, indent=2) + "\n",
                                               encoding="utf-8")
        except OSError as e:
            raise UsageError(f"cannot write --summary-json {args.summary_json}: {e.strerror or e}") from None
    return 1 if bad else 0


def natural_abstention_summary(rows) -> dict[str, Any]:
    """Natural abstention (``halt_eval.abstain``) counted apart from the marker's: answers
    declining in their own words, how many of them also hold the marker (or give nothing, the
    marker's ``abstained``), and how many abstain by the marker only."""
    from halt_eval.abstain import of_row

    natural = [of_row(r.evidence) for r in rows]
    marker = [r.abstained for r in rows]
    n = sum(natural)
    return {"n": n, "rate": n / len(rows) if rows else None,
            "with_marker": sum(a and b for a, b in zip(natural, marker)),
            "without_marker": sum(a and not b for a, b in zip(natural, marker)),
            "marker_only": sum(b and not a for a, b in zip(natural, marker))}


def _done_ids(path: Path) -> set[tuple[str, int | None]]:
    """``(id, sample)`` of the rows already in ``path``."""
    from halt_eval.io import iter_json_lines

    return {(str(obj["id"]), obj.get("sample")) for _, obj, err, _ in iter_json_lines(path)
            if not err and isinstance(obj, dict) and "id" in obj}


class UsageError(Exception):
    """A bad option or an unusable file: one line on stderr, exit 2, no output touched."""


def _check_options(args: argparse.Namespace) -> None:
    """Everything that can be checked before any file is opened for writing."""
    from halt_eval.split import DEFAULT_MARKERS, check_markers

    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.ray is not None:
        _check_ray(args)
    if args.n_desired is not None:
        check_n_desired(args.n_desired)
    answer_budget(args.answer_budget)
    try:
        check_markers(DEFAULT_MARKERS + tuple(args.marker))
    except ValueError as e:
        raise UsageError(f"--marker: {e}") from None
    out = Path(args.output)
    if out.is_dir():
        raise UsageError(f"-o {out}: is a directory")
    for path in args.inputs:
        if _same_file(Path(path), out):
            raise UsageError(f"-o {out} is also an input; write the scored rows to another file")
    if args.summary_json:
        summary = Path(args.summary_json)
        if summary.is_dir():
            raise UsageError(f"--summary-json {summary}: is a directory")
        if _same_file(summary, out) or any(_same_file(Path(p), summary) for p in args.inputs):
            raise UsageError(f"--summary-json {summary} is also the output or an input")


def _check_ray(args: argparse.Namespace) -> None:
    """Ray is installed, and ``--ray`` did not swallow an input file as its address."""
    from halt_eval.distributed import RayUnavailable, require_ray

    if args.ray and (args.ray.endswith((".jsonl", ".json")) or Path(args.ray).is_file()):
        raise UsageError(f"--ray took {args.ray!r} as the cluster address; put the input files "
                         "before --ray, or give an address (auto, HOST:PORT)")
    if getattr(args, "llm_opt_backend", None) == "vllm":
        raise UsageError("--ray with --judge-backend vllm would load the model in every Ray worker: "
                         "serve it (vllm serve MODEL) and pass --judge-backend openai --judge-base-url URL")
    try:
        require_ray()
    except RayUnavailable as e:
        raise UsageError(str(e)) from None


def check_n_desired(mode: str) -> None:
    """A needed-count mode ``rules.parse_needed_mode`` takes (``reference``,
    ``reference_recall``, ``capable``, ``fixed:K`` with an integer K >= 1)."""
    from halt_eval.rules import parse_needed_mode

    try:
        parse_needed_mode(mode)
    except ValueError as e:  # the message names the option as the user typed it
        raise UsageError(f"--{str(e).replace('n_desired', 'n-desired', 1)}") from None


def _prompt_buffer(args: argparse.Namespace, records: list[Any], written: Path | None):
    """A ``PromptBuffer`` over the records to score; with ``written`` (``--resume``), the best
    ``n_correct`` of each prompt's rows already there counts towards its ``n_capable``."""
    from collections import Counter

    from halt_eval.capable import PromptBuffer, prompt_key

    earlier: dict[tuple[str, str], int] = {}
    if written is not None:
        from halt_eval.io import iter_json_lines
        from halt_eval.types import ScoredResponse

        for where, obj, err, _ in iter_json_lines(written):
            if not err:
                row = ScoredResponse.from_dict(obj, where)
                earlier[prompt_key(row)] = max(earlier.get(prompt_key(row), 0), row.n_correct)
    return PromptBuffer(Counter((r.task or "", r.id) for r in records), earlier)


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return a.samefile(b)
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _open_output(path: Path, resume: bool):
    """Open OUT for writing under an exclusive lock, without truncating it before the lock
    is held (a second run on the same file is refused and leaves it alone). With ``resume``,
    a torn last line (a run killed mid-write, a full disk) is cut off, with a warning."""
    import fcntl

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = path.open("a+b")
    except OSError as e:
        raise UsageError(f"cannot write -o {path}: {e.strerror or e}") from None
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.close()
        raise UsageError(f"-o {path} is being written by another halt-eval run") from None
    if not resume:
        fh.truncate(0)
    else:
        _repair_torn_line(fh, path)
    fh.seek(0, 2)
    return io.TextIOWrapper(fh, encoding="utf-8", newline="\n")


def _repair_torn_line(fh, path: Path) -> None:
    size = fh.seek(0, 2)
    if size == 0:
        return
    fh.seek(size - 1)
    if fh.read(1) == b"\n":
        return
    # find the last newline, reading back in blocks
    pos, keep = size, 0
    while pos > 0:
        step = min(65536, pos)
        pos -= step
        fh.seek(pos)
        block = fh.read(step)
        nl = block.rfind(b"\n")
        if nl != -1:
            keep = pos + nl + 1
            break
    fh.truncate(keep)
    print(f"warning: {path}: the last line was incomplete ({size - keep} bytes, a run cut off "
          "while writing); removed, its record is scored again", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except UsageError as e:
        print(f"halt-eval score: {e}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from halt_eval.judges.llm import options_from_args
    from halt_eval.score import ScoreConfig, Scorer
    from halt_eval.split import DEFAULT_MARKERS

    _check_options(args)
    from halt_eval.reasoning import parse_delimiters

    try:
        delimiters = parse_delimiters(args.reasoning_delimiters)
    except ValueError as e:
        raise UsageError(f"--reasoning-delimiters: {e}") from None
    config = ScoreConfig(markers=DEFAULT_MARKERS + tuple(args.marker), n_desired=args.n_desired,
                         reasoning=args.reasoning, reasoning_delimiters=delimiters,
                         natural_abstention=args.natural_abstention,
                         answer_budget=answer_budget(args.answer_budget),
                         budget_clock=args.budget_clock)
    try:
        scorer = Scorer.for_domain(
            args.domain, config=config, judge_kwargs=_judge_kwargs(args),
            llm=options_from_args(args).to_dict())
    except TypeError as e:  # an option the judge does not take (--judge-arg)
        raise UsageError(f"the {args.domain} judge does not take this option: {e}") from None
    except (RuntimeError, ValueError, ImportError) as e:
        raise UsageError(str(e)) from None

    cluster = None
    if args.ray is not None:  # reached (or started) before any output is touched
        from halt_eval.distributed import RayScoring, RayUnavailable, ScorerOptions

        try:
            cluster = RayScoring(ScorerOptions(
                domain=args.domain, config=config,
                judge_kwargs=_judge_kwargs(args), llm=options_from_args(args).to_dict()),
                address=args.ray or None)
        except RayUnavailable as e:
            raise UsageError(str(e)) from None
    try:
        return _score(args, scorer, cluster)
    finally:
        if cluster is not None:
            cluster.close()


def _score(args: argparse.Namespace, scorer: Any, cluster: Any) -> int:
    from tqdm import tqdm

    from halt_eval.io import read_responses, write_jsonl_row
    from halt_eval.catalogue import format_summary, summarize
    from halt_eval.rules import RULES_VERSION

    out_path = Path(args.output)
    bad = 0
    records = []
    seen: dict[tuple[str, int | None], str] = {}  # (id, sample) -> where it was first read
    n_read = 0
    for path in args.inputs:
        try:
            for rec in read_responses(path, args.domain, task=args.task):
                n_read += 1
                if rec.warning:
                    print(f"warning: {rec.warning}", file=sys.stderr)
                if rec.error:
                    bad += 1
                    print(f"error: {rec.error}", file=sys.stderr)
                    continue
                rid, key = rec.response.id, (rec.response.id, rec.response.sample)
                if key in seen:
                    bad += 1
                    what = f"id {rid!r}" + ("" if key[1] is None else f" sample {key[1]}")
                    print(f"error: {rec.where}: duplicate {what}, first at {seen[key]}; "
                          "this record is not scored", file=sys.stderr)
                    continue
                seen[key] = rec.where
                records.append(rec.response)
        except OSError as e:
            raise UsageError(f"cannot read {path}: {e.strerror or e}") from None
    if n_read == 0:
        raise UsageError(f"no records in {', '.join(map(str, args.inputs))}: nothing to score")
    if args.judge_dry_run:
        return _dry_run(args, scorer, records, bad)

    fh = _open_output(out_path, args.resume)
    with fh:
        done = _done_ids(out_path) if args.resume else set()
        records = [r for r in records if (r.id, r.sample) not in done]
        rows: list[Any] = []
        # n_capable: a prompt's rows are written once all its samples are scored (halt_eval.capable)
        prompts = _prompt_buffer(args, records, out_path if done else None)
        with tqdm(total=len(records), desc=f"scoring {args.domain}", unit="answer",
                  file=sys.stderr) as bar:
            batches = [records[start:start + args.batch_size]
                       for start in range(0, len(records), args.batch_size)]
            # In input order either way; on Ray each batch as soon as those before it are done.
            results = cluster.map(batches) if cluster else (scorer.score(b) for b in batches)
            def write(ready: list[Any]) -> None:
                for scored in ready:
                    if write_jsonl_row(fh, scored.to_dict()):
                        print(f"warning: record {scored.response.id!r}: text that UTF-8 cannot "
                              "carry (a lone surrogate) written as a \\uXXXX escape",
                              file=sys.stderr)
                    rows.append(scored)

            for batch, scored_batch in zip(batches, results):
                write(prompts.add(scored_batch))
                bar.update(len(batch))
            write(prompts.rest())
        if done:
            from halt_eval.io import iter_json_lines

            from halt_eval.types import ScoredResponse

            rows = [ScoredResponse.from_dict(obj, where)
                    for where, obj, err, _ in iter_json_lines(out_path) if not err]

    summary = summarize(rows)
    summary.update({"domain": args.domain, "inputs": [str(p) for p in args.inputs],
                    "output": str(out_path), "skipped_records": bad,
                    "judge": f"{scorer.judge.name}@{scorer.judge.version}",
                    "splitter": f"{scorer.splitter.name}@{scorer.splitter.version}",
                    "n_desired": scorer.n_desired_mode, "rules_version": RULES_VERSION,
                    "judge_spec": scorer.spec()})
    if args.natural_abstention:
        summary["natural_abstention"] = natural_abstention_summary(rows)
    summary["over_budget_answers"] = sum("budget" in r.evidence for r in rows)
    stats = getattr(scorer.judge, "stats", None)  # the LLM judge's call counts
    if stats is not None:
        # On Ray the calls were made by the workers' judges, not this one.
        summary["judge_stats"] = (cluster.stats or {}) if cluster else (stats() if callable(stats) else stats)
    print(format_summary(summary))
    if "natural_abstention" in summary:
        na = summary["natural_abstention"]
        print(f"  natural abstention {na['rate']:.4f}  ({na['n']} answers in their own words: "
              f"{na['with_marker']} also with the marker, {na['without_marker']} without; "
              f"{na['marker_only']} with the marker only)" if na["rate"] is not None else
              "  natural abstention n/a")
    if summary["over_budget_answers"]:
        print(f"  note               {summary['over_budget_answers']} answer(s) ran out of their "
              f"{scorer.config.answer_budget:g}-second budget ({scorer.config.budget_clock} time): the rest of each is unverifiable "
              "(over_budget; row evidence 'budget'); --answer-budget raises it")
    if summary.get("judge_stats", {}).get("note"):  # e.g. the knowledge source was unreachable
        print(f"  note               {summary['judge_stats']['note']}")
    if args.summary_json:
        try:
            Path(args.summary_json).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        except OSError as e:
            raise UsageError(f"cannot write --summary-json {args.summary_json}: "
                             f"{e.strerror or e} (the scored rows are in {out_path})") from None
    if bad:
        print(f"halt-eval score: {bad} record(s) could not be read or repeat an id (named above); "
              f"the other {len(rows)} were scored", file=sys.stderr)
        return 1
    return 0
