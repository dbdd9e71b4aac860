"""HALT's ``n_capable`` as a needed-count mode: the count of correct fragments the model
reaches in its best sample, set per prompt once all its samples are scored; reported beside the
reference-based completeness (``completeness_capable``) in rows, summaries, lm-eval results and
the gate. Every expected value below is computed by hand in the comment beside it."""

from __future__ import annotations

import json
import math

import pytest

from halt_eval import rules
from halt_eval.capable import PromptBuffer, assign_capable
from halt_eval.catalogue import row_values, summarize
from halt_eval.cli import main
from halt_eval.lmeval import per_prompt
from halt_eval.types import Fragment, Response, ScoredResponse, Verdict


def _row(rid: str, sample: int | None, labels: str, *, mode: str = "reference",
         n_desired: int | None = 4, task: str = "t") -> ScoredResponse:
    """A bio-like row: one fragment per letter of ``labels`` (c correct, i incorrect)."""
    frags = tuple(Fragment(i, f"{rid} fact number {i}.", (0, 0), "independent") for i in range(len(labels)))
    verdicts = tuple(Verdict("correct" if c == "c" else "incorrect", "labels@1", "given") for c in labels)
    return ScoredResponse(Response(id=rid, domain="bio", prompt="p", text="t", task=task, sample=sample),
                          frags, verdicts, abstained=not labels, n_desired=n_desired, sample=sample,
                          judge_spec={"n_desired": mode})


#: Prompt A: five samples with 2, 0, 3, 1, 3 correct fragments (n_capable 3); prompt B: two
#: samples without a correct fragment (n_capable 0); prompt C: one sample with 2 (n_capable 2).
SAMPLES = {"A": ["cci", "ii", "ccc", "cii", "cccii"], "B": ["i", "ii"], "C": ["cc"]}


def _run(mode: str = "reference") -> list[ScoredResponse]:
    return [_row(rid, s if len(labels) > 1 else None, lab, mode=mode)
            for rid, labels in SAMPLES.items() for s, lab in enumerate(labels)]


def test_the_rule_and_the_count():
    assert rules.n_capable([2, 0, 3, 1, 3]) == 3
    assert rules.n_capable([]) == 0
    assert rules.completeness_capable(2, 3) == pytest.approx(2 / 3)
    assert rules.completeness_capable(5, 3) == 1.0  # capped (a count from elsewhere)
    assert rules.completeness_capable(0, 0) is None and rules.completeness_capable(1, None) is None
    assert rules.parse_needed_mode("capable") == ("capable", None)
    assert "capable" in rules.NEEDED_COUNT_MODES


def test_every_row_gets_its_prompts_best_n_correct_and_completeness_capable_beside_the_reference():
    rows = assign_capable(_run())
    assert [r.evidence["n_capable"] for r in rows] == [3, 3, 3, 3, 3, 0, 0, 2]
    got = [row_values(r)["completeness_capable"] for r in rows]
    want = [2 / 3, 0.0, 1.0, 1 / 3, 1.0, math.nan, math.nan, 1.0]
    assert got == pytest.approx(want, nan_ok=True)
    # the reference-based completeness is untouched: n_correct / 4 (n_desired 4 in every row)
    assert [r.completeness for r in rows] == pytest.approx([0.5, 0, 0.75, 0.25, 0.75, 0, 0, 0.5])
    assert [r.n_desired for r in rows] == [4] * 8
    # one sample per prompt (C): n_capable is that sample's own n_correct, so 1 when it has one
    summary = summarize(rows, resamples=200)
    # defined in A (5 rows, sum 2/3+0+1+1/3+1 = 3) and C (1): 4 / 6; B undefined (n_capable 0)
    assert summary["completeness_capable"] == pytest.approx(4 / 6)
    assert summary["completeness"] == pytest.approx((0.5 + 0 + 0.75 + 0.25 + 0.75 + 0 + 0 + 0.5) / 8)


def test_the_capable_mode_makes_n_capable_the_needed_count_of_completeness_and_f1():
    rows = assign_capable(_run("capable"))
    assert [r.n_desired for r in rows] == [3, 3, 3, 3, 3, 0, 0, 2]
    assert [r.completeness for r in rows] == pytest.approx([2 / 3, 0, 1, 1 / 3, 1, None, None, 1], nan_ok=True)
    # A sample 4: correctness 3/5, completeness 1 -> F1 = 2 * 0.6 * 1 / 1.6 = 0.75
    assert rows[4].f1 == pytest.approx(0.75)
    # A sample 0: correctness 2/3, completeness 2/3 -> F1 2/3
    assert rows[0].f1 == pytest.approx(2 / 3)
    assert rows[5].f1 is None  # nothing to be complete against
    for r in rows:  # the row reads back as written, values re-derived from the verdicts
        assert ScoredResponse.from_dict(r.to_dict()).to_dict() == r.to_dict()
        assert r.completeness == row_values(r)["completeness_capable"] or r.completeness is None


def test_lmeval_document_values_average_the_samples():
    values = [row_values(r) for r in assign_capable(_run())[:5]]  # prompt A's samples
    assert per_prompt(values)["completeness_capable"] == pytest.approx(3 / 5)


def test_the_buffer_releases_rows_in_input_order_once_their_prompt_is_complete():
    rows = [_row("A", 0, "c"), _row("B", 0, "cc"), _row("A", 1, "ccc"), _row("B", 1, "")]
    buf = PromptBuffer({("t", "A"): 2, ("t", "B"): 2})
    assert buf.add(rows[:2]) == []  # A and B each wait for their second sample
    out = buf.add(rows[2:3])  # A complete; B still waits, and A's rows do not jump ahead of it
    assert [(r.response.id, r.sample) for r in out] == [("A", 0)]
    out += buf.add(rows[3:])
    assert [(r.response.id, r.sample) for r in out] == [("A", 0), ("B", 0), ("A", 1), ("B", 1)]
    assert [r.evidence["n_capable"] for r in out] == [3, 2, 3, 2]
    assert buf.rest() == []


def _math_samples(tmp_path):
    """One problem, three sampled answers: 3 steps all correct, a wrong first step (0 correct
    after the dependent rule), and 2 correct steps (the last is the answer)."""
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps({
        "id": "q1", "prompt": "What is 2*(3+4)?",
        "responses": ["2*(3+4) = 2*7\n2*7 = 14\n\\boxed{14}", "3+4 = 8\n2*8 = 16\n\\boxed{16}",
                      "3+4 = 7\n\\boxed{14}"],
        "reference": {"answer": "14", "solution": "3+4=7\n2*7=14\n\\boxed{14}"}}) + "\n")
    return path


def _score(tmp_path, inp, *flags, name="out"):
    out, summary = tmp_path / f"{name}.jsonl", tmp_path / f"{name}.summary.json"
    assert main(["score", str(inp), "--domain", "math", "-o", str(out), "--summary-json", str(summary),
                 *flags]) == 0
    return [json.loads(line) for line in out.read_text().splitlines()], json.loads(summary.read_text())


def test_score_n_desired_capable_over_several_samples(tmp_path):
    inp = _math_samples(tmp_path)
    rows, summary = _score(tmp_path, inp, "--n-desired", "capable")
    assert [r["n_correct"] for r in rows] == [3, 0, 2]
    assert [r["n_desired"] for r in rows] == [3, 3, 3]  # the best sample's 3 correct steps
    assert [r["evidence"]["n_capable"] for r in rows] == [3, 3, 3]
    assert [r["completeness"] for r in rows] == pytest.approx([1.0, 0.0, 2 / 3])
    assert {r["judge_spec"]["n_desired"] for r in rows} == {"capable"}
    assert summary["n_desired"] == "capable"
    assert summary["completeness"] == pytest.approx(summary["completeness_capable"]) == pytest.approx(5 / 9)
    # the default mode: completeness against the reference (3 steps; sample 2 is solved -> 1),
    # completeness_capable beside it, the same as above
    ref_rows, ref_summary = _score(tmp_path, inp, name="ref")
    assert [r["n_desired"] for r in ref_rows] == [3, 3, 3]
    assert [r["completeness"] for r in ref_rows] == pytest.approx([1.0, 0.0, 1.0])
    assert ref_summary["completeness_capable"] == pytest.approx(5 / 9)


def test_resume_counts_the_rows_already_written_towards_n_capable(tmp_path):
    inp = _math_samples(tmp_path)
    rows, _ = _score(tmp_path, inp, "--n-desired", "capable")
    out = tmp_path / "out.jsonl"
    out.write_text(out.read_text().splitlines()[0] + "\n")  # a run cut off after sample 0
    assert main(["score", str(inp), "--domain", "math", "-o", str(out), "--n-desired", "capable",
                 "--resume"]) == 0
    again = [json.loads(line) for line in out.read_text().splitlines()]
    # samples 1 and 2 alone would give n_capable 2; sample 0 on disk has 3
    assert [r["n_desired"] for r in again] == [3, 3, 3]
    assert again == rows


def test_an_unknown_mode_is_a_usage_error(tmp_path, capsys):
    inp = _math_samples(tmp_path)
    assert main(["score", str(inp), "--domain", "math", "-o", str(tmp_path / "o.jsonl"),
                 "--n-desired", "capible"]) == 2
    assert "reference, reference_recall, fixed:K or capable, got 'capible'" in capsys.readouterr().err


def _write(path, rows):
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))
    return path


def test_the_gate_refuses_runs_scored_under_different_needed_count_modes(tmp_path, capsys):
    base = _write(tmp_path / "base.jsonl", assign_capable(_run("reference")))
    cand = _write(tmp_path / "cand.jsonl", assign_capable(_run("capable")))
    assert main(["gate", "--baseline", str(base), "--candidate", str(cand)]) == 2
    err = capsys.readouterr().err
    assert "needed-count modes differ" in err and "reference" in err and "capable" in err
    mixed = _write(tmp_path / "mixed.jsonl", assign_capable(_run("reference")[:5] + _run("capable")[5:]))
    assert main(["gate", "--baseline", str(base), "--candidate", str(mixed)]) == 2
    assert "mixes rows scored under needed-count modes capable, reference" in capsys.readouterr().err
    same = _write(tmp_path / "same.jsonl", assign_capable(_run("capable")))
    assert main(["gate", "--baseline", str(cand), "--candidate", str(same), "--resamples", "200"]) == 0


def test_lmeval_task_metadata_n_desired_capable(tmp_path):
    """``--metadata '{"n_desired": "capable"}'`` on a task with repeats: each document's rows
    get its best sample's n_correct as their needed count; results carry both completeness
    values, equal under this mode."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from halt_eval import lmeval

    right = "16 - 3 - 4 = 9 eggs are left. 9 * 2 = 18. The answer is \\boxed{18}."
    # Its first step derives the reference's 18, so the judge vouches for it; the error follows.
    wrong = "16 - 3 - 4 = 9 eggs, and 9 * 2 = 18 dollars. Then 18 + 1 = 20. The answer is \\boxed{20}."
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"task": "halt_math_gsm8k_k4", "doc_id": 0,
                                   "responses": [wrong, right, "Unsure from Here.", wrong]}) + "\n")
    lmeval._replay_class()
    manager = TaskManager(include_path=lmeval.tasks_path(), include_defaults=False,
                          metadata={"n_desired": "capable"})
    out = lm_eval.simple_evaluate(model="halt-replay", model_args=f"path={answers}",
                                  tasks=["halt_math_gsm8k_k4"], task_manager=manager, limit=1,
                                  bootstrap_iters=0, log_samples=True)
    sample = out["samples"]["halt_math_gsm8k_k4"][0]
    rows = [json.loads(r) for r in sample["filtered_resps"][0]]
    best = max(r["n_correct"] for r in rows)
    assert best > rows[0]["n_correct"] > 0  # the wrong answers keep their first correct steps
    assert [r["n_desired"] for r in rows] == [best] * 4
    assert {r["judge_spec"]["n_desired"] for r in rows} == {"capable"}
    want = [r["n_correct"] / best for r in rows]  # 4 samples: wrong, right, abstained, wrong
    assert [r["completeness"] for r in rows] == pytest.approx(want)
    assert want[1] == 1.0 and want[2] == 0.0
    result = out["results"]["halt_math_gsm8k_k4"]
    assert result["completeness,halt"] == pytest.approx(sum(want) / 4)
    assert result["completeness_capable,halt"] == pytest.approx(sum(want) / 4)
