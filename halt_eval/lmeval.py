"""The thin glue to lm-evaluation-harness: data loading, batch scoring, metrics, replay model.

Task ``utils.py`` files only bind names from here. Nothing runs at import: judges are built on
the first scored batch. A task's whole set of answers is scored in one batch by a ``custom``
filter (the sandbox fans out over cores, an LLM judge batches); ``process_results`` then reads
each document's scored row.

Judge options come from task metadata (``n_desired``, ``judge_kwargs``, ``markers``) and from
the environment, which ``halt-eval run`` sets from its flags: ``HALT_JUDGE_BACKEND``,
``HALT_JUDGE_MODEL``, ``HALT_JUDGE_BASE_URL``, ``HALT_JUDGE_CACHE``, ``HALT_LLM_SPLIT``,
``HALT_CORPUS``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from halt_eval.metrics import pooled_ratio

_TASK_OPTIONS: dict[str, dict[str, Any]] = {}
_SCORERS: dict[str, Any] = {}
_SCORED: dict[tuple[str, str, str], dict[str, Any]] = {}

ENV_FLAGS = {
    "judge_backend": "HALT_JUDGE_BACKEND",
    "judge_model": "HALT_JUDGE_MODEL",
    "judge_base_url": "HALT_JUDGE_BASE_URL",
    "judge_cache": "HALT_JUDGE_CACHE",
    "llm_split": "HALT_LLM_SPLIT",
    "corpus": "HALT_CORPUS",
}


def tasks_path() -> str:
    """The directory holding the task YAMLs (pass it to ``lm_eval --include_path``)."""
    import halt_eval.tasks

    return str(Path(halt_eval.tasks.__path__[0]).resolve())


def load(**metadata: Any):
    """``custom_dataset`` for every halt task: the docs of ``metadata["source"]`` as a test split."""
    import datasets

    from halt_eval.data import load_docs

    task = metadata["task"]
    _TASK_OPTIONS[task] = dict(metadata)
    docs = load_docs(metadata["source"], task, metadata.get("data_dir"))
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})


def llm_options_from_env() -> dict[str, Any]:
    """LLM judge options set by ``halt-eval run`` flags (or by hand) in the environment."""
    return {
        "backend": os.environ.get(ENV_FLAGS["judge_backend"], "none"),
        "model": os.environ.get(ENV_FLAGS["judge_model"]),
        "base_url": os.environ.get(ENV_FLAGS["judge_base_url"]),
        "cache_path": os.environ.get(ENV_FLAGS["judge_cache"]),
        "split": os.environ.get(ENV_FLAGS["llm_split"], "") not in ("", "0", "false"),
    }


def _scorer(task: str, domain: str):
    from halt_eval.score import ScoreConfig, Scorer

    if task not in _SCORERS:
        opts = _TASK_OPTIONS.get(task, {})
        judge_kwargs = dict(opts.get("judge_kwargs") or {})
        if domain in ("bio", "med") and os.environ.get(ENV_FLAGS["corpus"]):
            judge_kwargs.setdefault("corpus", os.environ[ENV_FLAGS["corpus"]])
        config = ScoreConfig(
            markers=tuple(opts.get("markers") or ScoreConfig().markers),
            n_desired=opts.get("n_desired"),
        )
        _SCORERS[task] = Scorer.for_domain(domain, config=config, judge_kwargs=judge_kwargs,
                                           llm=llm_options_from_env())
    return _SCORERS[task]


def _key(doc: Mapping[str, Any], text: str) -> tuple[str, str, str]:
    return doc["task"], doc["id"], hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()


def _response(doc: Mapping[str, Any], text: str):
    from halt_eval.data import doc_to_reference
    from halt_eval.types import Response

    return Response(id=doc["id"], domain=doc["domain"], prompt=doc["prompt"], text=text,
                    reference=doc_to_reference(doc), task=doc["task"])


def _text(resp: Any) -> str:
    from halt_eval.io import first_text

    return first_text(resp) or ""


def score_filter(resps: Sequence[Sequence[str]], docs: Sequence[Mapping[str, Any]]):
    """``custom`` filter: score every answer of the task in one batch; answers pass unchanged."""
    from tqdm import tqdm

    todo = [(d, _text(r)) for r, d in zip(resps, docs) if _key(d, _text(r)) not in _SCORED]
    if todo:
        task, domain = todo[0][0]["task"], todo[0][0]["domain"]
        scorer = _scorer(task, domain)
        step = 32  # rows per judge call: enough for batching, small enough for a live bar
        with tqdm(total=len(todo), desc=f"judging {task}", unit="answer") as bar:
            for start in range(0, len(todo), step):
                chunk = todo[start:start + step]
                for (d, t), s in zip(chunk, scorer.score([_response(d, t) for d, t in chunk])):
                    _SCORED[_key(d, t)] = s.to_dict()
                bar.update(len(chunk))
    return resps


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def process_results(doc: Mapping[str, Any], results: Sequence[Any]) -> dict[str, Any]:
    """Per-document metrics plus the fragments (with verdicts and evidence) for ``--log_samples``.

    ``correctness`` is NaN when nothing was given; lm-eval's ``nanmean`` leaves it out.
    """
    text = _text(results)
    key = _key(doc, text)
    row = _SCORED.pop(key, None)
    if row is None:  # the filter did not run (e.g. a custom pipeline): score this one alone
        row = _scorer(doc["task"], doc["domain"]).score([_response(doc, text)])[0].to_dict()
    fragments = row.pop("fragments")
    for k in ("prompt", "reference", "response"):
        row.pop(k, None)  # already in the sample's doc and resps
    return {
        "correctness": _nan(row["correctness"]),
        "completeness": _nan(row["completeness"]),
        "f1": _nan(row["f1"]),
        "abstained": float(row["abstained"]),
        "n_given": row["n_given"],
        "n_correct": row["n_correct"],
        "micro_correctness": [row["n_correct"], row["n_given"]],
        "fragments": fragments,
        "details": row,
    }


def micro_correctness(items: Sequence[Sequence[float]]) -> float:
    """Aggregation: correct fragments over all given fragments, pooled across documents."""
    value = pooled_ratio(items)
    return math.nan if value is None else value


def count_fragments(items: Sequence[Sequence[Any]]) -> int:
    """Aggregation of ``fragments``: the number of fragments judged."""
    return sum(len(x) for x in items)


def count_records(items: Sequence[Any]) -> int:
    """Aggregation of ``details``: the number of scored records logged."""
    return len(items)


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
    from halt_eval.io import first_text, iter_json_lines

    answers: dict[tuple[str, str], str] = {}
    for path in paths:
        stem = Path(path).name
        file_task = stem[len("samples_"):].rsplit("_", 1)[0] if stem.startswith("samples_") else None
        for where, obj, error, _warning in iter_json_lines(path):
            if error:
                raise ValueError(error)
            task = obj.get("task") or file_task
            text = obj.get("response")
            if text is None:
                text = first_text(obj.get("resps"))
            if not task or not isinstance(text, str):
                raise ValueError(f"{where}: need 'task' (or a samples_<task>_*.jsonl name) and "
                                 f"'response' (or 'resps')")
            doc = obj.get("doc") or {}
            for did in {str(obj.get("id", doc.get("id", obj.get("doc_id")))), str(obj.get("doc_id"))}:
                if did != "None":
                    answers[(task, did)] = text
    return answers


def run_cli(argv: Sequence[str]) -> int:
    """``halt-eval run``: lm-eval's own CLI with the halt tasks included and models registered."""
    parser = argparse.ArgumentParser(
        prog="halt-eval run", add_help=False,
        description="Runs lm-eval with --include_path set to the halt tasks and the halt-replay "
                    "model registered. Every other argument goes to lm-eval unchanged.")
    parser.add_argument("--judge-backend", choices=["none", "vllm", "openai"],
                        help="LLM judge backend (default: embedded judges only)")
    parser.add_argument("--judge-model", help="model path or name for the LLM judge")
    parser.add_argument("--judge-base-url", help="OpenAI-compatible server URL (backend openai)")
    parser.add_argument("--judge-cache", help="SQLite cache file for LLM replies and verdicts")
    parser.add_argument("--llm-split", action="store_true", help="split atomic facts with the LLM")
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
    for name, env in ENV_FLAGS.items():
        value = getattr(ours, name, None)
        if value:
            os.environ[env] = "1" if value is True else str(value)
    if ours.data_dir:
        os.environ["HALT_DATA_DIR"] = ours.data_dir
    import lm_eval.models  # noqa: F401 - the built-in models must register before ours

    from lm_eval.__main__ import cli_evaluate

    _replay_class()
    if ours.bootstrap_iters is not None:
        _set_bootstrap_iters(ours.bootstrap_iters)
    if "--include_path" not in rest and "--help" not in rest:
        rest = ["--include_path", tasks_path(), *rest]
    sys.argv = ["lm_eval", "run", *rest]
    try:
        cli_evaluate()
    except SystemExit as e:
        return int(e.code or 0)
    return 0


def _set_bootstrap_iters(n: int) -> None:
    """lm-eval 0.4.13's CLI has no option for it; its run command calls ``lm_eval.simple_evaluate``."""
    import functools

    import lm_eval

    lm_eval.simple_evaluate = functools.partial(lm_eval.simple_evaluate, bootstrap_iters=n)
