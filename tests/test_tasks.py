"""One offline contract test over every task YAML, and the lm-eval glue on real task docs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import LabelJudge
from halt_eval import lmeval
from halt_eval.metrics import METRICS
from halt_eval.registry import domain_spec
from halt_eval.score import ScoreConfig, Scorer
from halt_eval.split import SentenceSplitter

TASKS_DIR = Path(lmeval.tasks_path())
TASK_YAMLS = sorted(p for p in TASKS_DIR.glob("halt_*/*.yaml"))
OWN_KEYS = {"fragments", "details"}


def _metric_list() -> list[str]:
    template = (TASKS_DIR / "_halt_template_yaml").read_text()
    return [m["metric"] for m in yaml.load(template, Loader=_FunctionTolerantLoader)["metric_list"]]


class _FunctionTolerantLoader(yaml.SafeLoader):
    pass


_FunctionTolerantLoader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def test_every_metric_key_is_in_the_catalogue():
    assert set(_metric_list()) - OWN_KEYS <= set(METRICS)


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

    spec = domain_spec(doc["domain"])
    monkeypatch.setattr(lmeval, "_scorer", lambda t, d: Scorer(spec, SentenceSplitter(), LabelJudge(), ScoreConfig()))
    out = lmeval.process_results(doc, ["First claim here. Second claim here."])
    assert sorted(out) == sorted(_metric_list())
    assert len(out["fragments"]) == 2 and out["details"]["id"] == doc["id"]


def test_filter_scores_the_whole_task_once_and_process_results_reads_it(monkeypatch):
    calls = []

    class CountingJudge(LabelJudge):
        def judge(self, batch):
            calls.append(len(batch))
            return super().judge(batch)

    spec = domain_spec("bio")
    monkeypatch.setattr(lmeval, "_scorer", lambda t, d: Scorer(spec, SentenceSplitter(), CountingJudge(), ScoreConfig()))
    ref = json.dumps({"labels": ["correct", "incorrect", "correct"]})
    docs = [{"id": str(i), "task": "halt_bio", "domain": "bio", "prompt": "p", "reference": ref} for i in range(5)]
    resps = [[f"Claim one {i}. Claim two. Claim three."] for i in range(5)]
    assert lmeval.score_filter(resps, docs) == resps
    assert calls == [5]
    out = lmeval.process_results(docs[2], resps[2])
    assert calls == [5]  # read from the batch, not scored again
    assert out["n_given"] == 3 and out["n_correct"] == 2
    assert out["correctness"] == pytest.approx(2 / 3) and out["micro_correctness"] == [2, 3]
    assert [f["verdict"] for f in out["fragments"]] == ["correct", "incorrect", "correct"]
    assert out["details"]["id"] == "2" and "fragments" not in out["details"]


def test_undefined_correctness_is_nan_so_nanmean_leaves_it_out(monkeypatch):
    spec = domain_spec("bio")
    monkeypatch.setattr(lmeval, "_scorer", lambda t, d: Scorer(spec, SentenceSplitter(), LabelJudge(), ScoreConfig()))
    doc = {"id": "0", "task": "halt_bio", "domain": "bio", "prompt": "p", "reference": "{}"}
    out = lmeval.process_results(doc, ["Unsure from Here."])
    assert out["correctness"] != out["correctness"]  # NaN
    assert out["abstained"] == 1.0 and out["n_given"] == 0 and out["f1"] == 0.0
    assert lmeval.micro_correctness([[0, 0], [2, 4]]) == 0.5
