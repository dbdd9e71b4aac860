"""One offline contract test over every task YAML, and the lm-eval glue on real task docs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import LabelJudge
from halt_eval import lmeval
from halt_eval.catalogue import lmeval_metric_list, micro_correctness
from halt_eval.domains import get_domain
from halt_eval.rules import RULES_VERSION
from halt_eval.score import ScoreConfig, Scorer
from halt_eval.split import SentenceSplitter

TASKS_DIR = Path(lmeval.tasks_path())
TASK_YAMLS = sorted(p for p in TASKS_DIR.glob("halt_*/*.yaml"))


def _template_metric_list() -> list[dict]:
    template = (TASKS_DIR / "_halt_template_yaml").read_text()
    return yaml.load(template, Loader=_FunctionTolerantLoader)["metric_list"]


def _metric_list() -> list[str]:
    return [m["metric"] for m in _template_metric_list()]


class _FunctionTolerantLoader(yaml.SafeLoader):
    pass


_FunctionTolerantLoader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def test_the_template_metric_list_is_the_catalogues_and_holds_only_real_metrics():
    assert _template_metric_list() == lmeval_metric_list()
    assert not {"fragments", "details"} & set(_metric_list())


def _label_scorer(monkeypatch, judge=None):
    monkeypatch.setattr(lmeval, "scorer_for", lambda domain, options: Scorer(
        get_domain(domain), SentenceSplitter(), judge or LabelJudge(), ScoreConfig()))


@pytest.fixture(scope="module")
def task_manager(shared_data_dir):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(TASKS_DIR), include_defaults=False)


@pytest.fixture(scope="module")
def shared_data_dir():
    from conftest import SHARED_DATA

    assert SHARED_DATA.is_dir(), f"{SHARED_DATA} missing"
    return SHARED_DATA


def test_no_tag_or_group_matches_the_task_wildcard():
    for path in TASKS_DIR.rglob("*.yaml"):
        cfg = yaml.load(path.read_text(), Loader=_FunctionTolerantLoader)
        for key in ("tag", "group"):
            names = cfg.get(key) or []
            for name in [names] if isinstance(names, str) else names:
                assert not name.startswith("halt_"), f"{path}: {key} {name} matches halt_*"


@pytest.mark.parametrize("yaml_path", TASK_YAMLS, ids=[p.stem for p in TASK_YAMLS])
def test_task_loads_offline_and_process_results_returns_exactly_the_metric_list(yaml_path, task_manager, monkeypatch):
    name = yaml_path.stem
    task = task_manager.load([name])["tasks"][name]
    docs = list(task.test_docs())
    assert len(docs) > 0
    doc = docs[0]
    assert isinstance(task.doc_to_text(doc), str) and task.doc_to_text(doc).strip()
    assert json.loads(doc["reference"]) is not None and doc["task"] == name

    assert json.loads(doc["options"])["domain"] == doc["domain"]
    _label_scorer(monkeypatch)
    [rows] = lmeval.score_filter([["First claim here. Second claim here."]], [doc])
    out = lmeval.process_results(doc, [rows])
    assert sorted(out) == sorted(m["metric"] for m in task.config.metric_list)
    assert set(_metric_list()) <= set(out)
    assert out["n_given"] == 2 and json.loads(rows[0])["id"] == doc["id"]


def test_filter_scores_the_whole_task_once_and_process_results_reads_it(monkeypatch):
    calls = []

    class CountingJudge(LabelJudge):
        def judge(self, batch):
            calls.append(len(batch))
            return super().judge(batch)

    _label_scorer(monkeypatch, CountingJudge())
    ref = json.dumps({"labels": ["correct", "incorrect", "correct"]})
    docs = [{"id": str(i), "task": "halt_bio", "domain": "bio", "prompt": "p", "reference": ref} for i in range(5)]
    resps = [[f"Claim one {i}. Claim two. Claim three."] for i in range(5)]
    filtered = lmeval.score_filter(resps, docs)
    assert calls == []  # judged when lm-eval first asks for metrics (--predict_only never does)
    out = lmeval.process_results(docs[2], [filtered[2]])
    assert calls == [5]  # the whole task at once
    lmeval.process_results(docs[3], [filtered[3]])
    assert calls == [5]  # read from the rows the batch wrote, not scored again
    assert out["n_given"] == 3 and out["n_correct"] == 2
    assert out["correctness"] == pytest.approx(2 / 3) and out["micro_correctness"] == [2, 3]
    row = json.loads(filtered[2][0])
    assert [f["verdict"] for f in row["fragments"]] == ["correct", "incorrect", "correct"]
    assert row["id"] == "2" and row["rules_version"] == RULES_VERSION and row["judge_spec"]["judge"]["name"] == "labels"


def test_process_results_without_the_filters_rows_says_how_to_fix_the_yaml():
    doc = {"id": "0", "task": "halt_bio", "domain": "bio", "prompt": "p", "reference": "{}"}
    with pytest.raises(RuntimeError, match="must keep the 'halt' filter"):
        lmeval.process_results(doc, [["a raw answer"]])


def test_metadata_wins_over_the_environment_and_both_are_recorded(monkeypatch):
    monkeypatch.setenv("HALT_JUDGE_BACKEND", "vllm")
    monkeypatch.setenv("HALT_CORPUS", "/env/corpus.jsonl")
    options = lmeval.scoring_options({"judge_backend": "openai", "n_desired": "fixed:4"})
    assert options["judge_backend"] == "openai" and options["corpus"] == "/env/corpus.jsonl"
    assert options["from"] == {"judge_backend": "metadata", "corpus": "env:HALT_CORPUS",
                               "n_desired": "metadata"}


def test_undefined_correctness_is_nan_so_nanmean_leaves_it_out(monkeypatch):
    _label_scorer(monkeypatch)
    doc = {"id": "0", "task": "halt_bio", "domain": "bio", "prompt": "p", "reference": "{}"}
    out = lmeval.process_results(doc, lmeval.score_filter([["Unsure from Here."]], [doc]))
    assert out["correctness"] != out["correctness"]  # NaN
    assert out["abstained"] == 1.0 and out["n_given"] == 0 and out["f1"] == 0.0
    assert micro_correctness([[0, 0], [2, 4]]) == 0.5


def test_every_task_records_its_rules_version_judge_splitter_and_data_pin_in_its_metadata():
    """lm-eval's results carry a task's metadata: it must say how the task was scored."""
    import importlib.util

    from conftest import ROOT
    from halt_eval.rules import RULES_VERSION

    spec = importlib.util.spec_from_file_location("sync", ROOT / "scripts" / "sync_task_metadata.py")
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    for path in TASK_YAMLS:
        text = path.read_text()
        assert sync.synced(text) == text, f"{path.name} is stale: run python scripts/sync_task_metadata.py"
        meta = yaml.load(text, Loader=_FunctionTolerantLoader)["metadata"]
        assert meta["rules_version"] == RULES_VERSION and "@" in meta["judge"] and meta["data"]


def test_every_llm_flag_of_halt_eval_run_reaches_the_tasks_as_a_metadata_key(monkeypatch):
    import argparse

    from halt_eval.judges.llm import CLI_FLAGS, add_cli_arguments

    parser = argparse.ArgumentParser()
    add_cli_arguments(parser)
    parser.add_argument("--corpus")
    parser.add_argument("--data-dir")
    ours = parser.parse_args(["--judge-backend", "openai", "--judge-timeout", "5",
                              "--judge-on-error", "unverifiable", "--data-dir", "/d"])
    meta = lmeval._metadata_from(ours, ["--metadata", '{"n_desired": "fixed:4", "judge_timeout": 9}'])
    assert meta == {"n_desired": "fixed:4", "judge_backend": "openai", "judge_timeout": 5.0,
                    "judge_on_error": "unverifiable", "data_dir": "/d"}
    assert set(lmeval.llm_option_keys()) == {f[2:].replace("-", "_") for f in CLI_FLAGS}
    monkeypatch.delenv("HALT_JUDGE_BACKEND", raising=False)
    options = lmeval.scoring_options(meta)
    assert options["judge_timeout"] == 5.0 and options["from"]["judge_on_error"] == "metadata"
