"""`halt-eval audit`: our verdicts against human fragment labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import toy_domain
from halt_eval.audit import (
    AuditSet,
    LabelledItem,
    auroc,
    dependent_truth,
    format_table,
    load_math,
    measure,
    run_audit,
)
from halt_eval.cli import main
from halt_eval.score import Scorer
from halt_eval.split import SentenceSplitter
from halt_eval.types import Response


def test_dependent_truth_is_correct_before_the_first_error_and_incorrect_from_it():
    assert dependent_truth(4, -1) == (True, True, True, True)
    assert dependent_truth(4, 0) == (False, False, False, False)
    assert dependent_truth(4, 2) == (True, True, False, False)
    with pytest.raises(ValueError):
        dependent_truth(3, 3)


def test_auroc_counts_ties_half_and_needs_both_classes():
    assert auroc([1, 1, 0, 0], [True, True, False, False]) == 1.0
    assert auroc([0.5, 0.5], [True, False]) == 0.5
    assert auroc([1, 0.5, 0], [False, True, True]) == 0.0
    assert auroc([1, 1], [True, True]) is None


def _item(i: int, labels: list[str], human_first: int, solved=None) -> LabelledItem:
    steps = tuple(f"Step {k} of answer {i} says {k}." for k in range(len(labels)))
    resp = Response(id=str(i), domain="toy", prompt="p", text=" ".join(steps),
                    reference={"labels": labels, "solved": solved}, fragments=steps)
    return LabelledItem(resp, dependent_truth(len(steps), human_first))


def test_figures_against_hand_counts(label_judge):
    """Two answers of 4 steps. A: human first error at 2, ours flags step 3 and leaves step 1
    unverifiable -> misjudged steps 1 (unverifiable, human correct) and 2 (correct, human
    wrong) = 2. B: all correct for people, ours all correct = 0."""
    scorer = Scorer(toy_domain(kind="dependent"), splitter=SentenceSplitter(), judge=label_judge)
    items = [_item(0, ["correct", "unverifiable", "correct", "incorrect"], 2),
             _item(1, ["correct"] * 4, -1)]
    report = run_audit(scorer, [AuditSet("toy", tuple(items))])
    f = report["sets"]["toy"]
    assert f["n"] == 2 and f["fragments"] == 8
    assert f["misjudged_per_response"] == 1.0
    # correctness: A ours 2/4, human 2/4; B ours 4/4, human 4/4 -> MAE 0, bias 0
    assert f["correctness_mae"] == 0.0 and f["correctness_bias"] == 0.0
    # one flagged step (A#3), people call it wrong -> precision 1; 2 human-wrong steps -> recall 1/2
    assert f["flagged"] == 1 and f["precision_flagged"] == 1.0 and f["recall_not_correct"] == 0.5
    # correct vs not: human-correct 6 (ours correct on 5), human-wrong 2 (ours not correct on 1)
    assert f["balanced_accuracy"] == pytest.approx((5 / 6 + 1 / 2) / 2)
    assert f["rows"][0]["human_first_error"] == 2 and f["rows"][0]["ours_first_error"] == 3
    assert "| toy |" in format_table(report)


def test_the_dependent_rule_applies_before_comparing(label_judge):
    """Ours flags step 0 only; the scorer's dependent rule makes steps 1-2 incorrect too, so an
    answer people call wrong from step 0 has no misjudged step, and the bias is the difference
    of correctness means."""
    scorer = Scorer(toy_domain(kind="dependent"), splitter=SentenceSplitter(), judge=label_judge)
    items = [_item(0, ["incorrect", "correct", "correct"], 0), _item(1, ["incorrect", "correct", "correct"], -1)]
    f = run_audit(scorer, [AuditSet("toy", tuple(items))])["sets"]["toy"]
    assert f["misjudged_per_response"] == 1.5  # 0 and 3
    assert f["correctness_bias"] == pytest.approx(-50.0)  # ours 0 and 0; human 0 and 100
    assert f["correctness_mae"] == pytest.approx(50.0)
    assert f["precision_flagged"] == pytest.approx(0.5)


def test_an_answer_whose_fragments_are_not_in_it_is_left_out_and_named(label_judge):
    scorer = Scorer(toy_domain(kind="dependent"), splitter=SentenceSplitter(), judge=label_judge)
    good = _item(0, ["correct", "correct"], -1)
    bad = LabelledItem(Response(id="bad", domain="toy", prompt="p", text="something else",
                                reference={"labels": ["correct"]}, fragments=("not here",)), (True,))
    f = measure([good, bad], scorer.score([good.response, bad.response]))
    assert f["n"] == 1 and f["n_skipped"] == 1 and f["skipped"][0]["id"] == "bad"
    assert "does not occur" in f["skipped"][0]["why"]


def test_math_loader_joins_references_and_labels(shared_data: Path):
    sets = load_math(shared_data, limit=5)
    assert [s.name for s in sets] == ["gsm8k", "math"]
    for s in sets:
        assert len(s.items) == 5
        for it in s.items:
            assert it.response.reference.get("answer") and len(it.human) == len(it.response.fragments)
            assert it.response.text == "\n\n".join(it.response.fragments)
    raw = json.loads((shared_data / "math" / "processbench" / "gsm8k.dev.json").read_text())[:5]
    for row, it in zip(raw, sets[0].items):
        assert it.human == dependent_truth(len(row["steps"]), row["label"])


def test_cli_audit_math_prints_the_table_and_writes_json(shared_data: Path, tmp_path: Path, capsys):
    out = tmp_path / "audit.json"
    code = main(["audit", "--domain", "math", "--data", str(shared_data), "--limit", "4", "--json", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "misjudged/resp" in printed and "| gsm8k |" in printed and "| math |" in printed
    report = json.loads(out.read_text())
    for name in ("gsm8k", "math"):
        f = report["sets"][name]
        assert f["n"] == 4 and f["misjudged_per_response"] is not None
        assert len(f["rows"]) == 4 and f["correctness_mae"] >= 0
    assert report["judge_spec"]["judge"]["name"] == "sympy"


def test_cli_audit_refuses_a_missing_data_dir(tmp_path: Path, capsys):
    assert main(["audit", "--domain", "math", "--data", str(tmp_path / "nowhere")]) == 2
    assert main(["audit", "--domain", "math", "--data", str(tmp_path)]) == 2
    assert "cannot read the labelled data" in capsys.readouterr().err
