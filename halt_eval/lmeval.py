"""The thin glue to lm-evaluation-harness: data loading, batch scoring, metrics, replay model.

Task ``utils.py`` files only bind names from here. Nothing runs at import. Everything travels
through lm-eval's own channels:

- ``load`` (the tasks' ``custom_dataset``) receives the task metadata merged with
  ``--metadata`` and writes the scoring options into every doc (``doc["options"]``);
- the ``halt`` filter scores a task's whole set of answers in one batch (the sandbox fans out
  over cores, an LLM judge batches) and returns, per document, its scored rows
  (``ScoredResponse.to_dict()``, one per generation) as JSON text: lm-eval logs them as the
  sample's ``filtered_resps`` under ``--log_samples``, every fragment with verdict and evidence
  (as text, because lm-eval's sample logger turns every filtered response into ``str``);
- ``process_results`` turns a document's rows into the catalogue's metric values.

Judge options (keys of ``--metadata`` or task metadata, else the environment):
``judge_backend`` (``HALT_JUDGE_BACKEND``), ``judge_model``, ``judge_base_url``,
``judge_cache``, ``llm_split``, ``corpus`` (``HALT_CORPUS``), ``n_desired``, ``markers``,
``judge_kwargs``, ``data_dir`` (``HALT_DATA_DIR``). Metadata wins over the environment.
``reasoning`` (``answer`` by default: score what follows a ``<think>...</think>`` span;
``reasoning``: score the span; ``keep``) and ``reasoning_delimiters`` (``"OPEN,CLOSE"``)
choose what of a reasoning model's answer is scored (``halt_eval.reasoning``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

#: Option key -> environment variable read when the key is not in the metadata.
ENV_OPTIONS = {
    "judge_backend": "HALT_JUDGE_BACKEND",
    "judge_model": "HALT_JUDGE_MODEL",
    "judge_base_url": "HALT_JUDGE_BASE_URL",
    "judge_cache": "HALT_JUDGE_CACHE",
    "llm_split": "HALT_LLM_SPLIT",
    "corpus": "HALT_CORPUS",
}
#: Scoring options read from task metadata (besides ``ENV_OPTIONS``).
METADATA_OPTIONS = ("n_desired", "markers", "judge_kwargs", "reasoning", "reasoning_delimiters")


def tasks_path() -> str:
    """The directory holding the task YAMLs (pass it to ``lm_eval --include_path``)."""
    from importlib.resources import files

    return str(files("halt_eval.tasks"))


def scoring_options(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The scoring options of a task: metadata first, then the environment; where each came
    from is recorded under ``"from"``."""
    options: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for key, env in ENV_OPTIONS.items():
        if metadata.get(key) not in (None, ""):
            options[key], origin[key] = metadata[key], "metadata"
        elif os.environ.get(env):
            options[key], origin[key] = os.environ[env], f"env:{env}"
    for key in METADATA_OPTIONS:
        if metadata.get(key) not in (None, ""):
            options[key], origin[key] = metadata[key], "metadata"
    options["from"] = origin
    return options


def load(**metadata: Any):
    """``custom_dataset`` for every halt task: the docs of ``metadata["source"]`` as a test
    split, each carrying the task's scoring options."""
    import datasets

    from halt_eval.data import load_docs

    # the domain as the task names it (a name or module:ATTR), so the filter finds the same record
    options = json.dumps({**scoring_options(metadata), "domain": metadata["domain"]}, sort_keys=True)
    docs = load_docs(metadata["domain"], metadata["source"], metadata["task"], metadata.get("data_dir"))
    for doc in docs:
        doc["options"] = options
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() not in ("", "0", "false", "no", "none")


def scorer_for(domain: str, options: Mapping[str, Any]):
    """The scorer a task's options ask for."""
    from halt_eval.domains import get_domain
    from halt_eval.reasoning import parse_delimiters
    from halt_eval.score import ScoreConfig, Scorer

    record = get_domain(domain)
    judge_kwargs = dict(options.get("judge_kwargs") or {})
    if record.corpus_option and options.get("corpus"):
        judge_kwargs.setdefault("corpus", options["corpus"])
    markers = options.get("markers")
    config = ScoreConfig(
        markers=tuple([markers] if isinstance(markers, str) else markers or ScoreConfig().markers),
        n_desired=options.get("n_desired"),
        reasoning=options.get("reasoning") or "answer",
        reasoning_delimiters=parse_delimiters(options.get("reasoning_delimiters")),
    )
    llm = {"backend": options.get("judge_backend") or "none", "model": options.get("judge_model"),
           "base_url": options.get("judge_base_url"), "cache_path": options.get("judge_cache"),
           "split": _flag(options.get("llm_split", False))}
    return Scorer.for_domain(record, config=config, judge_kwargs=judge_kwargs, llm=llm)


def _response(doc: Mapping[str, Any], text: str):
    from halt_eval.data import doc_to_reference
    from halt_eval.types import Response

    return Response(id=doc["id"], domain=doc["domain"], prompt=doc["prompt"], text=text,
                    reference=doc_to_reference(doc), task=doc["task"])


def _texts(resp: Any) -> list[str]:
    """Every generation of one request, as text (lm-eval gives a list per request)."""
    if isinstance(resp, str):
        return [resp]
    return [r if isinstance(r, str) else "" for r in (resp or [""])]


def score_filter(resps: Sequence[Sequence[str]], docs: Sequence[Mapping[str, Any]]):
    """``custom`` filter: score every answer of the task in one batch.

    Returns, per document, the list of its scored rows (one per generation) as JSON text.
    """
    from tqdm import tqdm

    if not docs:
        return []
    items = [(i, _response(d, t)) for i, (r, d) in enumerate(zip(resps, docs))
             for t in _texts(r)]
    first = docs[0]
    options = json.loads(first.get("options") or "{}")
    scorer = scorer_for(options.get("domain") or first["domain"], options)
    out: list[list[str]] = [[] for _ in docs]
    step = 32  # rows per judge call: enough for batching, small enough for a live bar
    with tqdm(total=len(items), desc=f"judging {first['task']}", unit="answer") as bar:
        for start in range(0, len(items), step):
            chunk = items[start:start + step]
            for (i, _), scored in zip(chunk, scorer.score([r for _, r in chunk])):
                out[i].append(json.dumps(scored.to_dict(), ensure_ascii=False))
            bar.update(len(chunk))
    return out


def process_results(doc: Mapping[str, Any], results: Sequence[Any]) -> dict[str, Any]:
    """Per-document metric values from the rows the filter returned (the first generation's;
    see the catalogue for what each value is and how undefined ones are written)."""
    from halt_eval.catalogue import row_values
    from halt_eval.types import ScoredResponse

    rows = results[0] if results else None
    row = rows[0] if isinstance(rows, list) and rows else None
    try:
        parsed = json.loads(row) if isinstance(row, str) else None
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, Mapping):
        raise RuntimeError(f"task {doc.get('task')!r} doc {doc.get('id')!r}: no scored row; the "
                           "task YAML must keep the 'halt' filter (halt_utils.score_filter)")
    return row_values(ScoredResponse.from_dict(parsed, where=f"{doc.get('task')} doc {doc.get('id')}"))


# ---------------------------------------------------------------- replay model and CLI wrapper

def _replay_class():
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model

    @register_model("halt-replay")
    class ReplayLM(LM):
        """Replays recorded answers instead of generating.

        ``--model_args path=FILE`` with JSONL rows ``{"task", "doc_id" or "id", "response"}``,
        or an lm-eval ``samples_<task>_*.jsonl`` (several files: ``path=A.jsonl|B.jsonl``).
        A request with no recorded answer is an error naming the task and document.
        """

        def __init__(self, path: str = "", **_: Any) -> None:
            super().__init__()
            if not path:
                raise ValueError("halt-replay needs --model_args path=ANSWERS.jsonl")
            self.answers = read_recorded(path.split("|"))

        @classmethod
        def create_from_arg_string(cls, arg_string: str, additional_config=None):
            args = dict(kv.split("=", 1) for kv in arg_string.split(",") if "=" in kv)
            return cls(**args)

        def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
            out = []
            for req in requests:
                doc = req.doc
                for key in ((req.task_name, str(doc.get("id"))), (req.task_name, str(req.doc_id))):
                    if key in self.answers:
                        out.append(self.answers[key])
                        break
                else:
                    raise KeyError(f"halt-replay: no recorded answer for task {req.task_name!r} "
                                   f"doc {doc.get('id', req.doc_id)!r}")
            return out

        def loglikelihood(self, requests):
            raise NotImplementedError("halt-replay only replays generations")

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError("halt-replay only replays generations")

    return ReplayLM


def read_recorded(paths: Sequence[str]) -> dict[tuple[str, str], str]:
    """Recorded answers keyed by ``(task, doc id)`` from answer JSONL or lm-eval samples files.

    Raises:
        ValueError: A line is not JSON or lacks a task or answer; the message names file:line.
    """
    from halt_eval.io import InputError, is_sample, iter_json_lines, parse_sample, task_of_samples_file

    answers: dict[tuple[str, str], str] = {}
    for path in paths:
        file_task = task_of_samples_file(path)
        for where, obj, error, _warning in iter_json_lines(path):
            if error:
                raise ValueError(error)
            if is_sample(obj):
                try:
                    sample = parse_sample(obj, where, file_task)
                except InputError as e:
                    raise ValueError(str(e)) from None
                task, text, ids = sample.task, (sample.texts or (None,))[0], {
                    str(sample.doc.get("id", sample.doc_id)), str(sample.doc_id)}
            elif isinstance(obj, Mapping):
                task, text = obj.get("task") or file_task, obj.get("response")
                ids = {str(obj.get("id", obj.get("doc_id"))), str(obj.get("doc_id"))}
            else:
                raise ValueError(f"{where}: expected a JSON object")
            if not task or not isinstance(text, str):
                raise ValueError(f"{where}: need 'task' (or a samples_<task>_*.jsonl name) and "
                                 f"'response' (or an lm-eval sample's 'resps')")
            for did in ids - {"None"}:
                answers[(task, did)] = text
    return answers


def run_cli(argv: Sequence[str]) -> int:
    """``halt-eval run``: lm-eval's own CLI with the halt tasks included, ``halt-replay``
    registered and the judge flags passed to the tasks as ``--metadata``."""
    from halt_eval.judges.llm import add_cli_arguments

    parser = argparse.ArgumentParser(
        prog="halt-eval run", add_help=False,
        description="Runs lm-eval with --include_path set to the halt tasks and the halt-replay "
                    "model registered. The options below reach the tasks as --metadata keys "
                    "(judge_backend, judge_model, ..., corpus, data_dir); every other argument "
                    "goes to lm-eval unchanged.")
    add_cli_arguments(parser)
    parser.add_argument("--corpus", help="reference corpus for bio/med (FActScore SQLite or JSONL)")
    parser.add_argument("--data-dir", help="local data directory (default: $HALT_DATA_DIR)")
    parser.add_argument("--bootstrap-iters", type=int, metavar="N",
                        help="resamples for lm-eval's bootstrap standard errors (lm-eval's default "
                             "100000 takes seconds per metric; 0 turns them off)")
    parser.add_argument("-h", "--help", action="store_true")
    ours, rest = parser.parse_known_args(list(argv))
    if ours.help:
        parser.print_help()
        print("\nlm-eval's own options follow.\n")
        rest = ["--help"]
    metadata = _metadata_from(ours, rest)
    if metadata is not None:
        rest = _without_option(rest, "--metadata") + ["--metadata", json.dumps(metadata)]
    import lm_eval.models  # noqa: F401 - the built-in models must register before ours
    from lm_eval._cli import HarnessCLI
    from lm_eval.utils import setup_logging

    _replay_class()
    if "--include_path" not in rest and "--help" not in rest:
        rest = ["--include_path", tasks_path(), *rest]
    if ours.bootstrap_iters is not None and ours.bootstrap_iters < 0:
        raise SystemExit("halt-eval run: --bootstrap-iters must be 0 or more")
    setup_logging()
    cli = HarnessCLI()
    try:
        with _bootstrap_iters(ours.bootstrap_iters):
            cli.execute(cli._parser.parse_args(["run", *rest]))
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    return 0


@contextlib.contextmanager
def _bootstrap_iters(n: int | None):
    """lm-eval 0.4.13's CLI has no option for it: its run command calls
    ``lm_eval.simple_evaluate``, which takes ``bootstrap_iters``. Bound for this call only and
    restored after, so nothing outlives the command."""
    if n is None:
        yield
        return
    import functools

    import lm_eval

    original = lm_eval.simple_evaluate
    lm_eval.simple_evaluate = functools.partial(original, bootstrap_iters=n)
    try:
        yield
    finally:
        lm_eval.simple_evaluate = original


def _metadata_from(ours: argparse.Namespace, rest: list[str]) -> dict[str, Any] | None:
    """The user's ``--metadata`` with our flags added (ours win); ``None`` when there is nothing."""
    from halt_eval.judges.llm import options_from_args

    given: dict[str, Any] = {}
    for i, arg in enumerate(rest):
        value = rest[i + 1] if arg == "--metadata" and i + 1 < len(rest) else (
            arg.split("=", 1)[1] if arg.startswith("--metadata=") else None)
        if value is not None:
            try:
                given = json.loads(value)
            except json.JSONDecodeError as e:
                raise SystemExit(f"halt-eval run: --metadata is not JSON ({e.msg})") from None
    llm = options_from_args(ours).to_dict()
    extra = {"judge_backend": llm.get("backend"), "judge_model": llm.get("model"),
             "judge_base_url": llm.get("base_url"), "judge_cache": llm.get("cache_path"),
             "llm_split": bool(llm.get("split")) or None, "corpus": ours.corpus, "data_dir": ours.data_dir}
    extra = {k: v for k, v in extra.items() if v not in (None, "", "none")}
    if not extra and not given:
        return None
    return {**given, **extra}


def _without_option(args: list[str], name: str) -> list[str]:
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out
