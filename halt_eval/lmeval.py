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
``answer_budget`` (seconds, or ``off``; ``halt-eval run --answer-budget``) and ``budget_clock``
(``cpu``/``wall``) bound each answer's splitting and judging as ``halt-eval score``'s options do
(``halt_eval.budget``).
``reasoning`` (``answer`` by default: score what follows a ``<think>...</think>`` span;
``reasoning``: score the span; ``keep``) and ``reasoning_delimiters`` (``"OPEN,CLOSE"``)
choose what of a reasoning model's answer is scored (``halt_eval.reasoning``).
``natural_abstention`` (``true``) also detects abstention in the model's own words
(``halt_eval.abstain``), recorded in each row's evidence, apart from the marker's ``abstained``.
``judge_dry_run`` (``true``; ``halt-eval run --judge-dry-run``) prints, when a task's answers
are first judged, the LLM calls and estimated prompt tokens judging them would take
(``halt_eval.judge_plan``), then ends the run (``JudgeDryRun``, exit 0) with nothing judged
and no results written: with several tasks, the first task's plan is printed.
``ray`` (``true``/``local`` to start a local Ray instance, ``auto`` or ``HOST:PORT`` to join a
cluster; ``halt-eval run --ray [ADDRESS]``) judges the filter's batches as Ray tasks
(``halt_eval.distributed``, extra ``halt-eval[ray]``); rows are those of the in-process filter.
Every row gets its document's ``n_capable`` (``halt_eval.capable``) once all its samples are
scored; ``n_desired: capable`` makes it the needed count.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
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
METADATA_OPTIONS = ("ray", "n_desired", "markers", "judge_kwargs", "reasoning", "reasoning_delimiters",
                    "best_of", "natural_abstention", "judge_dry_run", "answer_budget", "budget_clock")


def tasks_path() -> str:
    """The directory holding the task YAMLs (pass it to ``lm_eval --include_path``)."""
    from importlib.resources import files

    return str(files("halt_eval.tasks"))


def task_metadata(domain: str, source: str) -> dict[str, Any]:
    """What a task records about how it is scored, for lm-eval's results (``configs.<task>.metadata``):
    the rules version, the judge and splitter (``name@version``) and the data pin.

    The task YAMLs hold a copy (``scripts/sync_task_metadata.py`` writes it; a test checks it),
    because lm-eval's results carry a task's metadata but nothing a filter computes.
    """
    from halt_eval.domains import get_domain
    from halt_eval.registry import judge_class, splitter_class
    from halt_eval.rules import RULES_VERSION

    record = get_domain(domain)
    src = record.sources[source]
    judge = judge_class(record.judge)
    splitter = splitter_class(record.splitter)
    if src.url:
        data = f"{src.url}"
    elif src.hub is not None:
        data = f"hf://{src.hub[0]}@{src.revision or 'unpinned'}"
    else:
        data = "package"
    return {"rules_version": RULES_VERSION, "judge": f"{record.judge}@{judge.version}",
            "splitter": f"{record.splitter}@{splitter.version}", "data": data}


def llm_option_keys() -> dict[str, str]:
    """Metadata key -> ``LLMOptions`` field, one per LLM flag (``--judge-timeout`` -> ``judge_timeout``),
    from the one declaration of the flags (``halt_eval.judges.llm.CLI_FLAGS``)."""
    from halt_eval.judges.llm import CLI_FLAGS

    return {flag[2:].replace("-", "_"): field for flag, (field, _) in CLI_FLAGS.items()}


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
    for key in (*METADATA_OPTIONS, *llm_option_keys()):
        if key not in origin and metadata.get(key) not in (None, ""):
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
    return scorer_options(domain, options).build()


def scorer_options(domain: str, options: Mapping[str, Any]):
    """The plain, picklable options the scorer is built from (``distributed.ScorerOptions``:
    what Ray workers build the same scorer from)."""
    from halt_eval.budget import DEFAULT_CLOCK, parse_budget
    from halt_eval.distributed import ScorerOptions
    from halt_eval.domains import get_domain
    from halt_eval.reasoning import parse_delimiters
    from halt_eval.score import ScoreConfig

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
        natural_abstention=_flag(options.get("natural_abstention", False)),
        answer_budget=parse_budget(options.get("answer_budget")),
        budget_clock=options.get("budget_clock") or DEFAULT_CLOCK,
    )
    llm = {field: options[key] for key, field in llm_option_keys().items() if options.get(key) is not None}
    llm["backend"] = llm.get("backend") or "none"
    llm["split"] = _flag(llm.get("split", False))
    return ScorerOptions(domain=domain, config=config, judge_kwargs=judge_kwargs, llm=llm)


def ray_address(options: Mapping[str, Any]) -> str | None | bool:
    """The ``ray`` option: ``False`` for in-process scoring (absent, ``false``, ``off``, ``no``,
    ``0``); ``None`` to start a local Ray instance (``true``, ``local``, ``""`` as given by a
    bare ``halt-eval run --ray``); else the address to connect to (``auto``, ``HOST:PORT``,
    ``ray://HOST:PORT``)."""
    value = options.get("ray")
    if value is None or value is False or str(value).lower() in ("false", "off", "no", "0", "none"):
        return False
    if value is True or str(value).lower() in ("", "true", "local", "1", "yes"):
        return None
    return str(value)


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


def fewshot_target(doc: Mapping[str, Any]) -> str:
    """The answer a few-shot demo shows (``fewshot_config.doc_to_target``): the domain's
    reference answer text (math and code: the reference solution), never the JSON reference.

    lm-eval draws the demos from the test split (the halt sources have no other), leaving out
    the document being asked.

    Raises:
        ValueError: The domain's references hold no answer text (bio, med: facts to check, not
            an answer to show), with what to do instead.
    """
    from halt_eval.data import doc_to_reference
    from halt_eval.domains import get_domain

    record = get_domain(json.loads(doc.get("options") or "{}").get("domain") or doc["domain"])
    reference = doc_to_reference(doc)
    for key in record.reference_text:
        if isinstance(reference.get(key), str) and reference[key].strip():
            return reference[key]
    raise ValueError(f"task {doc.get('task')!r}: --num_fewshot needs an answer text per demo, "
                     f"and the {record.name} references have none (fields "
                     f"{', '.join(record.reference_text) or 'none'}); run it with --num_fewshot 0")


class JudgeDryRun(SystemExit):
    """Ends an lm-eval run after printing the judge's plan (``judge_dry_run``); exit code 0.

    Attributes:
        plan: ``halt_eval.judge_plan.dry_run``'s plan, with the task name under ``task``.
    """

    def __init__(self, plan: dict[str, Any]) -> None:
        super().__init__(0)
        self.plan = plan


class ScoredRows(list):
    """One document's scored rows (JSON text, one per generation), filled when first read.

    The ``halt`` filter returns one per document, all bound to one batch of the task's answers;
    the first ``process_results`` call scores the whole batch at once. ``--predict_only``
    replaces a task's ``process_results`` with lm-eval's ``bypass`` metric
    (``Task.override_metric`` in ``simple_evaluate``), so nothing reads the rows and the judge is
    never called: the list stays empty, and the samples log keeps the answers in ``resps``.
    """

    def __init__(self, batch: _Batch, index: int) -> None:
        super().__init__()
        self.batch, self.index = batch, index

    def scored(self) -> ScoredRows:
        self.batch.run()
        return self


class _Batch:
    """All answers of one task, scored together on first demand."""

    def __init__(self, resps: Sequence[Any], docs: Sequence[Mapping[str, Any]]) -> None:
        self.resps, self.docs = resps, docs
        self.handles = [ScoredRows(self, i) for i in range(len(docs))]
        self.done = False

    def run(self) -> None:
        if self.done:
            return
        from tqdm import tqdm

        docs = self.docs
        items = []
        for i, (r, d) in enumerate(zip(self.resps, docs)):
            texts = _texts(r)
            items += [(i, j if len(texts) > 1 else None, _response(d, t)) for j, t in enumerate(texts)]
        first = docs[0]
        options = json.loads(first.get("options") or "{}")
        domain = options.get("domain") or first["domain"]
        address = ray_address(options)
        if _flag(options.get("judge_dry_run", False)):
            scorer = scorer_for(domain, options)
            import sys

            from halt_eval.judge_plan import dry_run, format_plan

            try:
                plan = {"task": first["task"], **dry_run(scorer, [r for _, _, r in items])}
            except ValueError as e:
                raise ValueError(f"task {first['task']!r}: {e} (in --metadata)") from None
            print(f"{first['task']}: " + format_plan(plan), file=sys.stderr)
            raise JudgeDryRun(plan)
        step = 32  # rows per judge call: enough for batching, small enough for a live bar
        batches = [[r for _, _, r in items[start:start + step]] for start in range(0, len(items), step)]
        cluster = None
        if address is not False:  # the same batches as Ray tasks (halt_eval.distributed)
            from halt_eval.distributed import RayScoring, require_ray

            require_ray()
            settings = scorer_options(domain, options)
            if settings.llm.get("backend") == "vllm":
                raise ValueError(f"task {first['task']!r}: ray with judge_backend vllm would load the "
                                 "model in every Ray worker: serve it (vllm serve MODEL) and use "
                                 "judge_backend openai with judge_base_url")
            cluster = RayScoring(settings, address=address)
        try:
            results = cluster.map(batches) if cluster else map(scorer_for(domain, options).score, batches)
            scored = []
            with tqdm(total=len(items), desc=f"judging {first['task']}", unit="answer") as bar:
                for batch, rows in zip(batches, results):
                    scored += rows
                    bar.update(len(batch))
        finally:
            if cluster is not None:
                cluster.close()
        from halt_eval.capable import with_capable

        by_doc: dict[int, list[int]] = {}
        for k, (i, _, _) in enumerate(items):
            by_doc.setdefault(i, []).append(k)
        for i, ks in by_doc.items():  # n_capable: a pass over each document's samples
            for k, row in zip(ks, with_capable([scored[k] for k in ks])):
                out = row.to_dict()
                if items[k][1] is not None:
                    out["sample"] = items[k][1]
                self.handles[i].append(json.dumps(out, ensure_ascii=False))
        self.done = True


def score_filter(resps: Sequence[Sequence[str]], docs: Sequence[Mapping[str, Any]]):
    """``custom`` filter: score every answer of the task in one batch.

    Returns, per document, the list of its scored rows (one per generation, each naming its
    ``sample`` index when a document has several) as JSON text. The batch is judged when
    lm-eval first asks for metrics (``ScoredRows``), so ``--predict_only`` judges nothing.
    """
    if not docs:
        return []
    return _Batch(resps, docs).handles


#: Metrics averaged over a document's samples by NaN-aware mean (undefined samples left out).
_NAN_MEAN = ("correctness", "completeness", "completeness_capable", "f1")
#: Metrics with a best-of-k value when the task asks for one (``best_of`` metadata key).
BEST_OF_METRICS = ("correctness", "completeness", "f1")


def best_of_k(values: Sequence[float], k: int) -> float:
    """Unbiased estimate of the expected best value among ``k`` samples drawn without
    replacement from ``values`` (pass@k of Chen et al. 2021 when values are 0/1): with the
    ``n`` values sorted ascending, the i-th is the best of a random k-subset with probability
    C(i-1, k-1) / C(n, k). NaN values are left out; NaN when fewer than ``k`` remain."""
    from math import comb, isnan, nan

    vals = sorted(v for v in values if not isnan(v))
    n = len(vals)
    if k < 1 or n < k:
        return nan
    total = comb(n, k)
    return sum(comb(i, k - 1) * v for i, v in enumerate(vals) if i >= k - 1) / total


def per_prompt(values: list[dict[str, Any]]) -> dict[str, Any]:
    """One document's metric values from those of its samples: the mean over samples
    (NaN-aware for the ratio metrics), ``micro_correctness`` pooled ``[n_correct, n_given]``."""
    from math import isnan, nan

    if len(values) == 1:
        return values[0]
    out: dict[str, Any] = {}
    for key in values[0]:
        column = [v[key] for v in values]
        if key == "micro_correctness":
            out[key] = [sum(c[0] for c in column), sum(c[1] for c in column)]
        elif key in _NAN_MEAN:
            defined = [x for x in column if not isnan(x)]
            out[key] = sum(defined) / len(defined) if defined else nan
        else:
            out[key] = sum(column) / len(column)
    return out


def process_results(doc: Mapping[str, Any], results: Sequence[Any]) -> dict[str, Any]:
    """Per-document metric values from the rows the filter returned: with several samples per
    document (lm-eval ``repeats``) the mean over them; with a ``best_of`` option (task metadata)
    also ``<metric>_best_of_k`` for correctness, completeness and F1 (``best_of_k``). See the
    catalogue for what each value is and how undefined ones are written."""
    from halt_eval.catalogue import row_values
    from halt_eval.types import ScoredResponse

    rows = results[0] if results else None
    if isinstance(rows, ScoredRows):
        rows = rows.scored()
    parsed = []
    for row in rows if isinstance(rows, list) else []:
        try:
            obj = json.loads(row) if isinstance(row, str) else None
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, Mapping):
            parsed.append(obj)
    if not parsed:
        raise RuntimeError(f"task {doc.get('task')!r} doc {doc.get('id')!r}: no scored row; the "
                           "task YAML must keep the 'halt' filter (halt_utils.score_filter)")
    where = f"{doc.get('task')} doc {doc.get('id')}"
    values = [row_values(ScoredResponse.from_dict(p, where=where)) for p in parsed]
    out = per_prompt(values)
    k = json.loads(doc.get("options") or "{}").get("best_of")
    if k not in (None, ""):
        for key in BEST_OF_METRICS:
            out[f"{key}_best_of_k"] = best_of_k([v[key] for v in values], int(k))
    return out


# ---------------------------------------------------------------- replay model and CLI wrapper

@functools.cache
def _replay_class():
    """The ``halt-replay`` model class, registered with lm-eval once per process."""
    from lm_eval.api.model import LM
    from lm_eval.api.registry import register_model

    @register_model("halt-replay")
    class ReplayLM(LM):
        """Replays recorded answers instead of generating.

        ``--model_args path=FILE`` with JSONL rows ``{"task", "doc_id" or "id", "response"}``
        (several answers per document: a ``responses`` list, or several rows, ordered by their
        ``sample`` index), or an lm-eval ``samples_<task>_*.jsonl`` (every generation of
        ``resps``; several files: ``path=A.jsonl|B.jsonl``). A task with ``repeats: K`` gets a
        document's answers in order (cycled when fewer than K were recorded).
        A request with no recorded answer is an error naming the task and document.

        ``--apply_chat_template`` works: the prompt is rendered as plain ``role: content``
        lines (the replayed answers do not depend on it), and ``tokenizer_name`` is
        ``halt-replay`` so lm-eval's request cache keys stay stable.
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

        @property
        def tokenizer_name(self) -> str:
            return "halt-replay"

        def chat_template(self, chat_template: bool | str = False) -> str:
            return ""

        def apply_chat_template(self, chat_history: list[dict[str, str]],
                                add_generation_prompt: bool = True) -> str:
            text = "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in chat_history)
            return text + ("\nassistant:" if add_generation_prompt else "")

        def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
            out = []
            served: dict[tuple[str, str], int] = {}  # lm-eval repeats a request K times in a row
            for req in requests:
                doc = req.doc
                for key in ((req.task_name, str(doc.get("id"))), (req.task_name, str(req.doc_id))):
                    if key in self.answers:
                        recorded = self.answers[key]
                        n = served.get(key, 0)
                        served[key] = n + 1
                        out.append(recorded[n % len(recorded)])
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


def read_recorded(paths: Sequence[str]) -> dict[tuple[str, str], list[str]]:
    """Recorded answers keyed by ``(task, doc id)`` from answer JSONL or lm-eval samples files:
    every answer of a document, in sample order.

    Raises:
        ValueError: A line is not JSON or lacks a task or answer; the message names file:line.
    """
    from halt_eval.io import InputError, is_sample, iter_json_lines, parse_sample, task_of_samples_file

    found: dict[tuple[str, str], list[tuple[int, int, str]]] = {}
    order = 0
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
                task, texts, ids = sample.task, list(sample.texts), {
                    str(sample.doc.get("id", sample.doc_id)), str(sample.doc_id)}
                first = 0
            elif isinstance(obj, Mapping):
                task = obj.get("task") or file_task
                many = obj.get("responses")
                texts = list(many) if isinstance(many, list) else [obj.get("response")]
                ids = {str(obj.get("id", obj.get("doc_id"))), str(obj.get("doc_id"))}
                first = obj.get("sample") if isinstance(obj.get("sample"), int) else 0
            else:
                raise ValueError(f"{where}: expected a JSON object")
            if not task or not texts or not all(isinstance(t, str) for t in texts):
                raise ValueError(f"{where}: need 'task' (or a samples_<task>_*.jsonl name) and "
                                 f"'response' or 'responses' (or an lm-eval sample's 'resps')")
            for did in ids - {"None"}:
                for j, text in enumerate(texts):
                    found.setdefault((task, did), []).append((first + j, order, text))
                    order += 1
    return {key: [t for _, _, t in sorted(items)] for key, items in found.items()}


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
    parser.add_argument("--judge-dry-run", action="store_true",
                        help="print the LLM calls and estimated prompt tokens judging would "
                             "take (the first task's), then stop: nothing judged or written")
    parser.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                        help="judge each task's answers as batches on Ray: with no ADDRESS a local "
                             "Ray instance, with auto or HOST:PORT a running cluster (metadata key "
                             "ray; rows are those of a run without it). Needs "
                             "pip install 'halt-eval[ray]'")
    parser.add_argument("--answer-budget", metavar="SECONDS",
                        help="seconds of splitting and judging per answer (default: 4; off for no "
                             "limit; metadata key answer_budget): what is left is unverifiable, "
                             "reason over_budget")
    parser.add_argument("--budget-clock", choices=("cpu", "wall"),
                        help="what --answer-budget counts (default: cpu, the seconds of the "
                             "scoring process; metadata key budget_clock)")
    parser.add_argument("--bootstrap-iters", type=int, metavar="N",
                        help="resamples for lm-eval's bootstrap standard errors (lm-eval's default "
                             "100000 takes seconds per metric; 0 turns them off)")
    parser.add_argument("-h", "--help", action="store_true")
    ours, rest = parser.parse_known_args(list(argv))
    if ours.help:
        parser.print_help()
        print("\nlm-eval's own options follow.\n")
        rest = ["--help"]
    if ours.ray is not None:
        from halt_eval.distributed import RayUnavailable, require_ray

        try:
            require_ray()
        except RayUnavailable as e:
            raise SystemExit(f"halt-eval run: {e}") from None
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
    from halt_eval.judges.llm import LLMOptions

    llm, default = options_from_args(ours).to_dict(), LLMOptions().to_dict()
    extra = {key: llm.get(field) for key, field in llm_option_keys().items()
             if llm.get(field) != default.get(field)}
    if getattr(ours, "answer_budget", None) is not None:
        from halt_eval.budget import parse_budget

        try:
            parse_budget(ours.answer_budget)
        except ValueError as e:
            raise SystemExit(f"halt-eval run: --answer-budget: {e}") from None
    extra.update(corpus=ours.corpus, data_dir=ours.data_dir, ray=getattr(ours, "ray", None),
                 answer_budget=getattr(ours, "answer_budget", None), budget_clock=getattr(ours, "budget_clock", None),
                 judge_dry_run=True if getattr(ours, "judge_dry_run", False) else None)
    extra = {k: v for k, v in extra.items() if v not in (None, "")}
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
