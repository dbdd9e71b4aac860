"""The metric contract on hand-computed cases (tests/cases/contract.jsonl)."""

from __future__ import annotations

import pytest

from conftest import LabelJudge, load_cases
from halt_eval.catalogue import summarize
from halt_eval.domains import Domain
from halt_eval.score import ScoreConfig, Scorer
from halt_eval.split import SentenceSplitter
from halt_eval.rules import RULES_VERSION
from halt_eval.types import Response

CASES = load_cases("contract")


def scorer_for(kind: str, n_desired: str) -> Scorer:
    domain = Domain("bio" if kind == "independent" else "math", "test", kind, "sentence",
                    "sentences", "labels", n_desired)
    return Scorer(domain, SentenceSplitter(), LabelJudge(), ScoreConfig())


def scored(case: dict):
    ref = {k: case[k] for k in ("labels", "solved", "coverage") if k in case}
    frags = tuple(case["fragments"]) if "fragments" in case else None
    response = Response(case["name"], "bio", "", case["text"], ref, frags)
    return scorer_for(case["kind"], case["n_desired"]).score([response])[0]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_hand_computed_case(case):
    s = scored(case)
    for key, want in case["expected"].items():
        got = getattr(s, key)
        if isinstance(want, float):
            assert got == pytest.approx(want, abs=1e-9), key
        else:
            assert got == want, key


def test_serialized_row_agrees_with_the_properties():
    s = scored(CASES[0])
    row = s.to_dict()
    assert row["schema_version"] == 2 and row["rules_version"] == RULES_VERSION
    assert [f["verdict"] for f in row["fragments"]] == ["correct", "incorrect", "correct", "unverifiable"]
    for key in ("n_given", "n_correct", "correctness", "completeness", "f1", "abstained"):
        assert row[key] == getattr(s, key)


def test_dependent_rule_keeps_the_judges_own_label_as_evidence():
    s = scored(next(c for c in CASES if c["name"] == "dependent_error_poisons_the_rest"))
    later = s.verdicts[2]
    assert later.label == "incorrect" and later.reason == "after_first_error"
    assert later.evidence["own_label"] == "correct" and later.evidence["first_error"] == 1


def test_task_summary_pools_fragments_and_leaves_empty_answers_out_of_correctness():
    names = ["independent_mixed_labels", "marker_ends_the_answer", "answer_starting_with_marker_gives_nothing"]
    rows = [scored(next(c for c in CASES if c["name"] == n)) for n in names]
    summary = summarize(rows)
    assert summary["n"] == 3
    assert summary["correctness"] == pytest.approx((0.5 + 1.0) / 2)
    assert summary["micro_correctness"] == pytest.approx(4 / 6)
    assert summary["abstention_rate"] == pytest.approx(2 / 3)
    assert summary["completeness"] == pytest.approx((0.4 + 0.5 + 0.0) / 3)
    lo, hi = summary["correctness_ci"]
    assert lo <= summary["correctness"] <= hi
    assert summary["verdicts"] == {"correct": 4, "incorrect": 1, "unverifiable": 1}
