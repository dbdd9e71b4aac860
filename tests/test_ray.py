"""`halt-eval score --ray`: rows identical to a single-process run, in input order, resumable;
without Ray installed, a usage error naming the install command."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time

import pytest
from conftest import ROOT

from halt_eval.cli import main
from halt_eval.distributed import RayScoring, ScorerOptions, merge_stats, scorer_for
from halt_eval.domains import Domain
from halt_eval.score import ScoreConfig
from halt_eval.split import DEFAULT_MARKERS
from halt_eval.types import Judgement, Response, Verdict

_spec = importlib.util.spec_from_file_location("ray_scoring", ROOT / "benchmarks" / "ray_scoring.py")
ray_scoring = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ray_scoring)

#: The one field that differs between any two runs, Ray or not: the sandbox's wall-clock
#: seconds in a code row's evidence.
TIMINGS = {"code": ("wall_s",), "math": ()}


def _rows(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _without_timings(row, domain):
    row = dict(row, evidence=dict(row["evidence"]))
    for key in TIMINGS[domain]:
        if key in row["evidence"]:  # a program that ran; present in both runs or neither
            assert isinstance(row["evidence"][key], float), row["id"]
            row["evidence"][key] = "a timing"
    return row


class SleepyJudge:
    """Every fragment correct, after ``reference["sleep"]`` seconds per answer."""

    name = "sleepy"
    version = "1"

    def judge(self, batch):
        out = []
        for req in batch:
            time.sleep(float(req.response.reference.get("sleep", 0)))
            out.append(Judgement(tuple(Verdict("correct", "sleepy@1", "given") for _ in req.fragments)))
        return out


#: A domain the Ray workers import from this file (tests/ is on their PYTHONPATH).
SLEEPY = Domain(name="sleepy", description="test domain", kind="independent", fragment="sentence",
                splitter="sentences", judge="test_ray:SleepyJudge", n_desired="fixed:1")


@pytest.fixture(scope="module")
def ray_2cpu():
    import ray

    with pytest.MonkeyPatch.context() as mp:  # the workers inherit the environment
        mp.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(ROOT / "tests"), os.environ.get("PYTHONPATH")) if p))
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def answers(tmp_path_factory):
    return ray_scoring.build_answers(tmp_path_factory.mktemp("answers"), n_math=200, n_code=50)


@pytest.fixture(scope="module")
def single(answers, tmp_path_factory):
    """The single-process rows and summaries of both domains."""
    out = tmp_path_factory.mktemp("single")
    got = {}
    for domain, path in answers.items():
        rows, summary = out / f"{domain}.jsonl", out / f"{domain}.summary.json"
        assert main(["score", str(path), "--domain", domain, "-o", str(rows), "--batch-size", "10",
                     "--summary-json", str(summary)]) == 0
        got[domain] = (_rows(rows), json.loads(summary.read_text()))
    return got


def test_without_ray_the_option_is_a_usage_error_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": "a", "response": "1 + 1 = 2. \\boxed{2}", "reference": {"answer": "2"}}) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["score", str(inp), "--domain", "math", "-o", str(out), "--ray"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'halt-eval[ray]'" in err and err.count("\n") == 1
    assert not out.exists()


def test_without_the_option_ray_is_not_imported(tmp_path):
    import subprocess

    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": "a", "response": "1 + 1 = 2. \\boxed{2}", "reference": {"answer": "2"}}) + "\n")
    code = ("import sys; from halt_eval.cli import main; "
            f"rc = main(['score', {str(inp)!r}, '--domain', 'math', '-o', {str(tmp_path / 'o.jsonl')!r}]); "
            "assert rc == 0 and 'ray' not in sys.modules, (rc, 'ray' in sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, timeout=300)


def test_an_input_file_taken_as_the_address_is_refused(tmp_path, capsys):
    inp = tmp_path / "in.jsonl"
    inp.write_text("{}\n")
    assert main(["score", "--domain", "math", "-o", str(tmp_path / "o.jsonl"), "--ray", str(inp), str(inp)]) == 2
    assert "--ray took" in capsys.readouterr().err


def test_an_address_where_no_cluster_answers_is_a_usage_error(tmp_path, monkeypatch, capsys):
    import ray

    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh process
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps({"id": "a", "response": "1 + 1 = 2. \\boxed{2}", "reference": {"answer": "2"}}) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["score", str(inp), "--domain", "math", "-o", str(out), "--ray", "127.0.0.1:1"]) == 2
    assert "no Ray cluster answers at 127.0.0.1:1" in capsys.readouterr().err
    assert main(["score", str(inp), "--domain", "math", "-o", str(out), "--ray", "nonsense"]) == 2
    assert "expected auto, HOST:PORT" in capsys.readouterr().err
    assert not out.exists()


def test_an_in_process_vllm_judge_is_refused_on_ray(tmp_path, capsys):
    inp = tmp_path / "in.jsonl"
    inp.write_text("{}\n")
    out = tmp_path / "out.jsonl"
    assert main(["score", str(inp), "--domain", "math", "-o", str(out), "--judge-backend", "vllm",
                 "--judge-model", "m", "--ray"]) == 2
    assert "would load the model in every Ray worker" in capsys.readouterr().err
    assert not out.exists()


def test_a_worker_builds_its_scorer_once_per_options_with_a_pool_per_task_cpu():
    options = ScorerOptions(domain="math")
    first = scorer_for(options)
    assert scorer_for(ScorerOptions(domain="math")) is first
    assert first.judge.workers == 1  # one sympy worker for the task's one CPU
    other = scorer_for(ScorerOptions(domain="math", config=ScoreConfig(markers=DEFAULT_MARKERS + ("I stop",))))
    assert other is not first and other.config.markers[-1] == "I stop"
    named = scorer_for(ScorerOptions(domain="math", judge_kwargs={"workers": 2}))
    assert named.judge.workers == 2


def test_judge_counters_are_summed_and_a_note_kept():
    total = merge_stats(None, {"requests": 3, "cache_hits": 1, "note": ""})
    total = merge_stats(total, {"requests": 2, "cache_hits": 0, "note": "source unreachable"})
    total = merge_stats(total, None)
    assert total == {"requests": 5, "cache_hits": 1, "note": "source unreachable"}


@pytest.mark.parametrize("domain", ["math", "code"])
def test_ray_rows_are_the_single_process_rows_in_input_order(domain, answers, single, ray_2cpu, tmp_path):
    rows_path, summary_path = tmp_path / "ray.jsonl", tmp_path / "summary.json"
    assert main(["score", str(answers[domain]), "--domain", domain, "-o", str(rows_path), "--ray",
                 "--batch-size", "10", "--summary-json", str(summary_path)]) == 0
    want_rows, want_summary = single[domain]
    got = _rows(rows_path)
    ids = [json.loads(line)["id"] for line in answers[domain].read_text().splitlines()]
    assert [r["id"] for r in got] == ids
    assert [_without_timings(r, domain) for r in got] == [_without_timings(r, domain) for r in want_rows]
    summary = json.loads(summary_path.read_text())
    assert {k: v for k, v in summary.items() if k != "output"} == \
        {k: v for k, v in want_summary.items() if k != "output"}
    # Not a vacuous comparison: the answers get both kinds of verdict.
    labels = {f["verdict"] for r in got for f in r["fragments"]}
    assert {"correct", "incorrect"} <= labels
    assert {r["solved"] for r in got} >= {True, False}


def test_batches_come_back_in_order_each_once_those_before_it_are_done(ray_2cpu):
    def answer(rid, sleep):
        return Response(id=rid, domain=SLEEPY, prompt="", text="One. Two.", reference={"sleep": sleep})

    scoring = RayScoring(ScorerOptions(domain="test_ray:SLEEPY"))
    list(scoring.map([[answer("warm-up", 0)], [answer("warm-up 2", 0)]]))  # the workers import this file
    start, seen = time.monotonic(), []
    for scored in scoring.map([[answer("a", 2)], [answer("b", 0)], [answer("c", 8)]]):
        seen.append((scored[0].response.id, time.monotonic() - start))
    # b is done first but waits for a; a and b come back long before c is done
    assert [rid for rid, _ in seen] == ["a", "b", "c"]
    assert seen[0][1] >= 2 and seen[2][1] - seen[1][1] > 3, seen
    assert [v.label for v in scored[0].verdicts] == ["correct", "correct"]


def test_ray_resume_scores_only_the_missing_ids(answers, single, ray_2cpu, tmp_path):
    want = single["math"][0][:40]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(line + "\n" for line in answers["math"].read_text().splitlines()[:40]))
    out = tmp_path / "out.jsonl"
    kept = [dict(r, marker="kept") for r in want[:15]] + [want[30]]
    out.write_text("".join(json.dumps(r) + "\n" for r in kept))
    assert main(["score", str(inp), "--domain", "math", "-o", str(out), "--ray", "--resume",
                 "--batch-size", "4"]) == 0
    got = _rows(out)
    assert got[:16] == kept
    assert got[16:] == want[15:30] + want[31:]


# ---------------------------------------------------------------- lm-eval's halt filter on Ray

EGGS_RIGHT = "16 - 3 - 4 = 9 eggs are left. 9 * 2 = 18. The answer is \\boxed{18}."
EGGS_WRONG = "16 - 3 - 4 = 9 eggs are left. 9 * 2 = 19. The answer is \\boxed{19}."
CODE_ANSWERS = ["```python\ndef f(x):\n    return x\n```", "def g():\n    while True:\n        pass"]


def _lmeval(answers_path, tasks, metadata=None):
    """lm-eval's ``simple_evaluate`` on the halt tasks through ``halt-replay``: every document's
    scored rows (the filter's ``filtered_resps``) per task, and the results."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from halt_eval import lmeval

    lmeval._replay_class()
    manager = TaskManager(include_path=lmeval.tasks_path(), include_defaults=False,
                          metadata={"path": str(answers_path), **(metadata or {})})
    out = lm_eval.simple_evaluate(model="halt-replay", model_args=f"path={answers_path}", tasks=tasks,
                                  task_manager=manager, limit=2, bootstrap_iters=0, log_samples=True)
    rows = {task: [[json.loads(r) for r in s["filtered_resps"][0]]
                   for s in sorted(out["samples"][task], key=lambda s: s["doc_id"])] for task in tasks}
    return rows, out["results"]


@pytest.fixture(scope="module")
def replay_answers(tmp_path_factory):
    path = tmp_path_factory.mktemp("replay") / "answers.jsonl"
    recorded = [
        {"task": "halt_math_gsm8k_k4", "doc_id": 0,
         "responses": [EGGS_RIGHT, EGGS_WRONG, "Unsure from Here.", "16 - 3 = 13. Unsure from Here."]},
        {"task": "halt_math_gsm8k_k4", "doc_id": 1, "responses": [EGGS_WRONG, "1 + 1 = 2."]},
        {"task": "halt_code", "doc_id": 0, "response": CODE_ANSWERS[0]},
        {"task": "halt_code", "doc_id": 1, "response": CODE_ANSWERS[1]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in recorded))
    return path


def test_the_lmeval_filter_on_ray_gives_the_in_process_rows(replay_answers, ray_2cpu, monkeypatch):
    from halt_eval import distributed

    tasks = ["halt_math_gsm8k_k4", "halt_code"]
    local, local_results = _lmeval(replay_answers, tasks)
    batches = []
    real_map = distributed.RayScoring.map

    def counting_map(self, b):  # the filter's batches really go through Ray
        batches.append(sum(len(x) for x in b))
        return real_map(self, b)

    monkeypatch.setattr(distributed.RayScoring, "map", counting_map)
    on_ray, ray_results = _lmeval(replay_answers, tasks, {"ray": "local"})
    assert batches == [8, 2]  # 2 documents x 4 repeats, then 2 code answers
    for task in tasks:
        domain = "code" if task == "halt_code" else "math"
        assert [[_without_timings(r, domain) for r in doc] for doc in on_ray[task]] == \
            [[_without_timings(r, domain) for r in doc] for doc in local[task]]
        for key, value in local_results[task].items():
            assert ray_results[task][key] == value or (value != value and ray_results[task][key] != ray_results[task][key]), key
    math_rows = local["halt_math_gsm8k_k4"]
    assert [r["sample"] for r in math_rows[0]] == [0, 1, 2, 3]
    # n_capable over the 4 repeats of each document: the best sample's n_correct
    for doc in math_rows:
        assert {r["evidence"]["n_capable"] for r in doc} == {max(r["n_correct"] for r in doc)}
    assert local_results["halt_math_gsm8k_k4"]["completeness_capable,halt"] >= 0


def test_halt_eval_run_passes_ray_as_task_metadata(monkeypatch):
    from lm_eval._cli import HarnessCLI

    from halt_eval import lmeval

    seen = []
    monkeypatch.setattr(HarnessCLI, "execute", lambda self, args: seen.append(json.loads(args.metadata)
                        if isinstance(args.metadata, str) else args.metadata))
    assert lmeval.run_cli(["--model", "hf", "--tasks", "halt_math", "--ray"]) == 0
    assert lmeval.run_cli(["--model", "hf", "--ray", "10.0.0.1:6379", "--tasks", "halt_math",
                           "--metadata", '{"n_desired": "capable"}']) == 0
    assert seen == [{"ray": "local"}, {"n_desired": "capable", "ray": "10.0.0.1:6379"}]
    assert lmeval.ray_address({"ray": "local"}) is None and lmeval.ray_address({}) is False
    assert lmeval.ray_address({"ray": "false"}) is False and lmeval.ray_address({"ray": "auto"}) == "auto"


def test_halt_eval_run_ray_without_ray_names_the_extra(monkeypatch):
    from halt_eval import lmeval

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(SystemExit, match=r"pip install 'halt-eval\[ray\]'"):
        lmeval.run_cli(["--model", "hf", "--tasks", "halt_math", "--ray"])
