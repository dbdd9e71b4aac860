"""Hardening leftovers of issue 14: math workers under a memory limit, judge errors counted in
the score summary, an unreachable LLM judge failing ``halt-eval score`` (unless told to go on),
and impossible metric values in lm-eval samples refused by ``report``/``gate``."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from halt_eval.types import Fragment, JudgeRequest, Response

ROOT = Path(__file__).resolve().parents[1]

# ------------------------------------------------------------------ math workers: memory limit

# Expanding (x+1)^100000 to check the identity builds 100001 coefficients of up to 30,000
# digits: it grows by about 70 MB per CPU second, far past the limit below.
HUGE_EXPANSION = "So $y = (x+1)^{100000} = x^{100000} + 1$."
NORMAL = "Then $3 \\cdot 4 = 12$."


def _request(rid: str, *steps: str, answer: str = "12") -> JudgeRequest:
    text = "\n".join(steps)
    r = Response(rid, "math", "?", text, {"answer": answer})
    return JudgeRequest(r, tuple(Fragment(i, s, (0, len(s)), "dependent") for i, s in enumerate(steps)),
                        None)


def test_a_claim_past_the_memory_limit_is_unverifiable_and_the_pool_goes_on():
    from halt_eval.judges._workers import MEMORY_LIMIT_BYTES
    from halt_eval.judges.sympy_math import SympyJudge

    assert MEMORY_LIMIT_BYTES == 1 << 30
    # A generous CPU limit, so that only the memory limit can stop the expansion.
    with SympyJudge(timeout_s=60, workers=1, memory_bytes=160 << 20) as judge:
        huge, normal = judge.judge([_request("huge", HUGE_EXPANSION), _request("ok", NORMAL)])
        worker = judge._pool.workers[0].proc
        assert worker.poll() is None  # the same worker is still serving
        [again] = judge.judge([_request("again", NORMAL)])
        assert judge._pool.workers[0].proc is worker
    [v] = huge.verdicts
    assert (v.label, v.reason) == ("unverifiable", "memory_limit")
    claims = v.evidence["claims"]
    assert [c["status"] for c in claims] == ["unchecked", "memory_limit"]
    assert "167,772,160-byte" in claims[1]["error"]
    # "Then $3 \cdot 4 = 12$." ends on 12, read as its final answer (the reference's 12)
    assert [(v.label, v.reason) for v in normal.verdicts] == [("correct", "final_answer_equal")]
    assert [(v.label, v.reason) for v in again.verdicts] == [("correct", "final_answer_equal")]


def allocate(task: tuple) -> dict:
    """A worker runner for the pool tests: ``("alloc", n)`` holds ``n`` bytes for a moment."""
    block = bytearray(task[1])
    return {"status": "ok", "size": len(block)}


def test_the_pool_sets_the_limit_and_a_task_past_it_does_not_cost_the_next():
    from halt_eval.judges._workers import MEMORY_LIMIT_BYTES, WorkerPool

    pool = WorkerPool(1, 30.0, f"{__name__}:allocate")
    try:
        first = pool.run([("alloc", 1)])
        pid = pool.workers[0].proc.pid
        limits = Path(f"/proc/{pid}/limits").read_text()
        assert f"Max address space         {MEMORY_LIMIT_BYTES}" in limits
        results = pool.run([("alloc", 2 * MEMORY_LIMIT_BYTES), ("alloc", 50 << 20)])
        assert pool.workers[0].proc.pid == pid  # not replaced
    finally:
        pool.close()
    assert first == [{"status": "ok", "size": 1}]
    assert results[0]["status"] == "memory_limit"
    assert "1,073,741,824-byte" in results[0]["error"]
    assert results[1] == {"status": "ok", "size": 50 << 20}


def test_limit_memory_lowers_the_address_space_limit_and_never_raises_it():
    code = ("import resource, sys; from halt_eval.judges._workers import limit_memory; "
            "resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), resource.RLIM_INFINITY)) "
            "if sys.argv[1] != '-' else None; limit_memory(1 << 30); "
            "print(resource.getrlimit(resource.RLIMIT_AS)[0])")
    for before, after in (("-", 1 << 30), (str(4 << 30), 1 << 30), (str(768 << 20), 768 << 20)):
        done = subprocess.run([sys.executable, "-c", code, before], capture_output=True, text=True,
                              timeout=60, check=True)
        assert int(done.stdout) == after, (before, done.stdout, done.stderr)
        assert done.stderr == ""


def test_a_final_answer_comparison_past_the_memory_limit_is_unverifiable():
    from halt_eval.judges import sympy_math

    plan = sympy_math._plan(_request("r", "The answer is \\boxed{5}.", answer="4"))
    out_of_memory = {"status": "memory_limit", "error": "the check needed more than the worker's memory"}
    judgement = plan.decide({plan.answer_key(): out_of_memory}, "sympy@1")
    [v] = judgement.verdicts
    assert (v.label, v.reason) == ("unverifiable", "memory_limit")
    assert judgement.solved is None


def test_the_memory_limit_is_a_judge_option_recorded_in_its_spec():
    from halt_eval.judges.sympy_math import SympyJudge
    from halt_eval.registry import get_judge

    judge = get_judge("sympy", memory_bytes=512 << 20)
    assert judge.spec()["options"] == {"timeout_s": 3.0, "memory_bytes": 512 << 20,
                                       "reference_support": True, "locate": False}
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="memory_bytes must be a positive integer"):
            SympyJudge(memory_bytes=bad)


# ------------------------------------------------------------- score summary: judge errors


def _scored(rid: str, reasons: list[tuple[str, str]]):
    from halt_eval.types import ScoredResponse, Verdict

    text = " ".join(f"Fact {k}." for k in range(len(reasons)))
    frags, pos = [], 0
    for k in range(len(reasons)):
        s = f"Fact {k}."
        frags.append(Fragment(k, s, (pos, pos + len(s)), "independent"))
        pos += len(s) + 1
    verdicts = [Verdict(label, "some@1", reason) for label, reason in reasons]
    return ScoredResponse(Response(rid, "bio", "?", text, {}), tuple(frags), tuple(verdicts),
                          abstained=False, n_desired=len(reasons))


def test_the_summary_counts_fragments_a_judge_failed_on_and_prints_them():
    from halt_eval.catalogue import JUDGE_ERROR_REASONS, format_summary, summarize

    rows = [
        _scored("a", [("correct", "supported"), ("unverifiable", "llm_error"), ("unverifiable", "llm_error")]),
        _scored("b", [("unverifiable", "llm_timeout"), ("unverifiable", "not_found"),
                      ("unverifiable", "judge_error")]),
        _scored("c", [("unverifiable", "worker_error"), ("unverifiable", "timeout"),
                      ("unverifiable", "memory_limit"), ("incorrect", "contradicted")]),
    ]
    summary = summarize(rows, resamples=50)
    assert summary["judge_errors"] == 5
    assert summary["judge_error_reasons"] == {"judge_error": 1, "llm_error": 2, "llm_timeout": 1,
                                              "worker_error": 1}
    text = format_summary(summary)
    assert ("  judge errors       5 fragment(s) left unverifiable because the judge failed "
            "(1 judge_error, 2 llm_error, 1 llm_timeout, 1 worker_error)") in text.splitlines()
    assert {"judge_error", "llm_error", "llm_timeout", "worker_error"} <= JUDGE_ERROR_REASONS


def test_a_summary_without_judge_errors_prints_no_such_line():
    from halt_eval.catalogue import format_summary, summarize

    summary = summarize([_scored("a", [("correct", "supported"), ("unverifiable", "not_found")])],
                        resamples=50)
    assert summary["judge_errors"] == 0 and summary["judge_error_reasons"] == {}
    assert "judge errors" not in format_summary(summary)


def test_every_judge_error_reason_is_one_a_judge_writes():
    # The list must not rot: each code is written as a verdict reason somewhere in the judges
    # or the scorer.
    from halt_eval.catalogue import JUDGE_ERROR_REASONS

    sources = "".join(p.read_text(encoding="utf-8") for p in
                      [*sorted((ROOT / "judges").glob("*.py")), ROOT / "halt_eval" / "score.py"])
    for reason in JUDGE_ERROR_REASONS:
        assert f'"{reason}"' in sources, reason


# ------------------------------------------- halt-eval score with an LLM judge nobody serves

UNREACHABLE = "http://127.0.0.1:1/v1"  # port 1: nothing listens, the connection is refused
# The first step states nothing sympy can check, so the math policy asks the LLM about it;
# the second gives a wrong final answer.
UNCHECKABLE = {"id": "q1", "prompt": "What is 2 + 2?", "reference": {"answer": "4"},
               "response": "We think about the problem carefully.\nThe answer is \\boxed{5}."}


def _score_cli(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    inp = tmp_path / "in.jsonl"
    inp.write_text(json.dumps(UNCHECKABLE) + "\n", encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "halt_eval.cli", "score", str(inp), "--domain", "math",
         "-o", str(tmp_path / "out.jsonl"), "--summary-json", str(tmp_path / "summary.json"),
         "--judge-backend", "openai", "--judge-base-url", UNREACHABLE, *extra],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env={**os.environ},
    )


def _messages(stderr: str) -> list[str]:
    """stderr without the progress bar."""
    lines = [part for line in stderr.splitlines() for part in line.split("\r")]
    return [line for line in lines if line.strip() and not line.startswith("scoring math:")]


def test_score_with_an_unreachable_llm_judge_fails_in_one_line_naming_the_url(tmp_path):
    done = _score_cli(tmp_path)
    assert done.returncode == 2, done.stderr
    [line] = _messages(done.stderr)
    assert line.startswith("halt-eval score: error: the LLM judge at http://127.0.0.1:1/v1 cannot be reached")
    assert "--judge-on-error unverifiable" in line
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "summary.json").exists()


def test_score_told_to_go_on_scores_the_step_unverifiable_and_counts_the_judge_error(tmp_path):
    done = _score_cli(tmp_path, "--judge-on-error", "unverifiable")
    assert done.returncode == 0, done.stderr
    [row] = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(f["verdict"], f["reason"]) for f in row["fragments"]] == [
        ("unverifiable", "llm_error"), ("incorrect", "final_answer_wrong")]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["judge_errors"] == 1 and summary["judge_error_reasons"] == {"llm_error": 1}
    assert ("  judge errors       1 fragment(s) left unverifiable because the judge failed "
            "(1 llm_error)") in done.stdout.splitlines()


# ----------------------------------------- lm-eval samples: impossible top-level metric values

STAMP = "2026-11-26T10-00-00.000001"


def _lmeval_run(root: Path, rows: list[dict], task: str = "halt_bio") -> Path:
    """An lm-eval output folder as the halt tasks write it: each sample's scored row as JSON
    text in ``filtered_resps`` and ``process_results``' values at the top."""
    from halt_eval.catalogue import row_values
    from halt_eval.types import ScoredResponse

    model_dir = root / "org__m"
    model_dir.mkdir(parents=True)
    lines = []
    for i, row in enumerate(rows):
        doc = {"id": row["id"], "task": task, "domain": row["domain"], "prompt": row["prompt"],
               "reference": json.dumps(row["reference"])}
        sample = {"doc_id": i, "doc": doc, "target": "", "arguments": [[row["prompt"], {}]],
                  "resps": [[row["response"]]], "filtered_resps": [[json.dumps(row)]],
                  **row_values(ScoredResponse.from_dict(row))}
        lines.append(json.dumps(sample))
    (model_dir / f"samples_{task}_{STAMP}.jsonl").write_text("\n".join(lines) + "\n")
    (model_dir / f"results_{STAMP}.json").write_text(json.dumps({"model_name": "org/m", "results": {}}))
    return model_dir


def _bio_rows(n: int = 12) -> list[dict]:
    from halt_runs import scored_row

    rows = [scored_row(str(i), ["correct", "correct", "incorrect"]) for i in range(n)]
    rows[5] = scored_row("5", [])  # gives nothing: correctness undefined, NaN in the sample
    return rows


def _corrupt(model_dir: Path, line: int, **values) -> None:
    f = next(model_dir.glob("samples_*.jsonl"))
    lines = f.read_text().splitlines()
    sample = json.loads(lines[line - 1])
    sample.update(values)
    lines[line - 1] = json.dumps(sample)
    f.write_text("\n".join(lines) + "\n")


def test_possible_sample_values_load_nan_included_where_the_row_is_undefined(tmp_path):
    from halt_eval.runs import load_run

    run = load_run(_lmeval_run(tmp_path, _bio_rows()))
    assert run.n_samples == 12
    sample = json.loads(next((tmp_path / "org__m").glob("samples_*.jsonl")).read_text().splitlines()[5])
    assert math.isnan(sample["correctness"])  # written as NaN by lm-eval for "undefined"


@pytest.mark.parametrize(("values", "message"), [
    ({"correctness": 7.5}, "'correctness' is 7.5, outside [0, 1]"),
    ({"correctness": -0.5}, "'correctness' is -0.5, outside [0, 1]"),
    ({"f1": float("inf")}, "'f1' is Infinity; metric values must be finite"),
    ({"completeness": float("-inf")}, "'completeness' is -Infinity; metric values must be finite"),
    ({"correctness": float("nan")}, "'correctness' is NaN but the scored row gives 0.666"),
    ({"correctness": 0.5}, "'correctness' is 0.5 but the scored row gives 0.666"),
    ({"correctness": "0.6"}, "'correctness' must be a number, got '0.6'"),
    ({"correctness": None}, "'correctness' must be a number, got None"),
    ({"n_given": -1}, "'n_given' is -1, outside >= 0"),
    ({"n_correct": float("nan")}, "'n_correct' is NaN but the scored row gives 2"),
    ({"abstained": 2.0}, "'abstained' is 2.0, outside [0, 1]"),
    ({"micro_correctness": [5, 3]}, "'micro_correctness' is [5, 3]: more correct fragments than given"),
    ({"micro_correctness": [1, float("inf")]}, "'micro_correctness' must be a pair of finite counts"),
    ({"micro_correctness": 0.5}, "'micro_correctness' must be a pair of finite counts"),
])
def test_an_impossible_sample_value_is_a_run_error_naming_file_and_line(tmp_path, values, message):
    from halt_eval.runs import RunError, load_run

    model_dir = _lmeval_run(tmp_path, _bio_rows())
    _corrupt(model_dir, 4, **values)
    with pytest.raises(RunError) as e:
        load_run(tmp_path)
    assert f"samples_halt_bio_{STAMP}.jsonl:4: lm-eval sample value {message}" in str(e.value)


@pytest.mark.parametrize("value", [7.5, float("inf"), float("nan")])
def test_the_gate_refuses_a_candidate_with_an_impossible_sample_value(tmp_path, capsys, value):
    from halt_eval.cli import main

    base = _lmeval_run(tmp_path / "base", _bio_rows())
    cand = _lmeval_run(tmp_path / "cand", _bio_rows())
    _corrupt(cand, 4, correctness=value)
    assert main(["gate", "--baseline", str(base), "--candidate", str(cand), "--resamples", "100"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("halt-eval gate: error: ")
    assert f"samples_halt_bio_{STAMP}.jsonl:4: lm-eval sample value 'correctness'" in err[0]


def test_the_report_refuses_a_run_with_an_impossible_sample_value(tmp_path, capsys):
    from halt_eval.cli import main

    run = _lmeval_run(tmp_path / "run", _bio_rows())
    _corrupt(run, 7, f1=float("inf"))
    assert main(["report", str(run), "-o", str(tmp_path / "report.html")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [f"halt-eval report: error: {run}/samples_halt_bio_{STAMP}.jsonl:7: lm-eval sample "
                   "value 'f1' is Infinity; metric values must be finite"]
    assert not (tmp_path / "report.html").exists()


# ------------------------------------------- the needed-count mode checked from Python too

@pytest.mark.parametrize("mode, says", [
    ("fixed:-3", "K must be at least 1"),
    ("fixed:0", "K must be at least 1"),
    ("fixed:abc", "expected fixed:K with an integer K"),
    ("everything", "n_desired must be reference, reference_recall, fixed:K or capable"),
])
def test_score_config_refuses_an_impossible_needed_count(mode, says):
    # Only the CLI checked the mode: from Python, fixed:-3 gave completeness -0.67 and F1 -4.0.
    from halt_eval.score import ScoreConfig

    with pytest.raises(ValueError, match=says):
        ScoreConfig(n_desired=mode)


def test_a_scorer_refuses_a_domain_whose_default_needed_count_is_impossible():
    from conftest import LabelJudge, toy_domain
    from halt_eval.score import Scorer
    from halt_eval.split import SentenceSplitter

    with pytest.raises(ValueError, match="K must be at least 1"):
        Scorer(toy_domain(n_desired="fixed:-3"), SentenceSplitter(), LabelJudge())


def test_a_valid_fixed_needed_count_still_scores():
    from conftest import LabelJudge, toy_domain
    from halt_eval.score import ScoreConfig, Scorer
    from halt_eval.split import SentenceSplitter

    scorer = Scorer(toy_domain(), SentenceSplitter(), LabelJudge(), ScoreConfig(n_desired="fixed:4"))
    s = scorer.score([Response("a", "bio", "", "One is one. Two is two.", {"labels": ["correct"] * 2})])[0]
    assert s.n_desired == 4 and s.completeness == 0.5


# ----------------------------------------- rows without an id: unique across input files

def test_id_less_rows_of_two_files_get_distinct_ids_and_are_all_scored(tmp_path, capsys):
    from halt_eval.cli import main

    row = {"prompt": "p", "response": "1 + 1 = 2. \\boxed{2}", "reference": {"answer": "2"}}
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    for path in (first, second):
        path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    out = tmp_path / "out.jsonl"
    assert main(["score", str(first), str(second), "--domain", "math", "-o", str(out)]) == 0
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert ids == ["first.jsonl:1", "first.jsonl:2", "second.jsonl:1", "second.jsonl:2"]
    assert "duplicate" not in capsys.readouterr().err


def test_a_row_id_given_is_kept_and_one_not_given_names_its_file(tmp_path):
    from halt_eval.io import default_id, read_responses

    path = tmp_path / "answers.jsonl"
    path.write_text(json.dumps({"id": 7, "response": "A."}) + "\n\n" + json.dumps({"response": "B."}) + "\n")
    assert [r.response.id for r in read_responses(path, "bio")] == ["7", "answers.jsonl:3"]
    assert default_id(f"{tmp_path}/dir:with:colons/x.jsonl:12") == "x.jsonl:12"
