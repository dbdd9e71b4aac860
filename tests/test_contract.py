"""The metric contract on hand-computed cases (tests/cases/contract.jsonl), the serialized row's
checks, and the catalogue's per-answer values."""

from __future__ import annotations

import math
import re

import pytest

from conftest import LabelJudge, load_cases
from halt_eval.catalogue import (
    METRICS,
    lmeval_metric_list,
    lmeval_metric_list_yaml,
    micro_correctness,
    row_values,
    summarize,
)
from halt_eval.domains import Domain
from halt_eval.score import ScoreConfig, Scorer
from halt_eval.split import SentenceSplitter
from halt_eval.rules import RULES_VERSION
from halt_eval.types import Response, RowError, ScoredResponse

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
    assert summary["abstained"] == pytest.approx(2 / 3)
    assert summary["completeness"] == pytest.approx((0.4 + 0.5 + 0.0) / 3)
    lo, hi = summary["correctness_ci"]
    assert lo <= summary["correctness"] <= hi
    assert summary["verdicts"] == {"correct": 4, "incorrect": 1, "unverifiable": 1}


def _row() -> dict:
    return scored(CASES[0]).to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": None}, "field 'id' is missing"),
        ({"response": 3}, "field 'response' is missing or not a string"),
        ({"fragments": "abc"}, "field 'fragments' must be list"),
        ({"n_desired": "5"}, "field 'n_desired' must be int or null, got '5'"),
        ({"abstained": "no"}, "field 'abstained' must be bool"),
        ({"judge_spec": []}, "field 'judge_spec' must be Mapping or null"),
        ({"schema_version": 3}, "field 'schema_version' is 3, newer than this halt-eval reads"),
        ({"f1": "high"}, "field 'f1' must be a number or null"),
        ({"f1": 0.9}, "field 'f1' is 0.9 but the verdicts give 0.444"),
        ({"coverage": [{"verdict": "yes"}]}, "coverage[0].verdict must be one of correct, incorrect"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_from_dict_names_the_record_and_the_bad_field(change, message):
    row = {**_row(), **change}
    with pytest.raises(RowError, match=re.escape(f"scored.jsonl:4: {message}")):
        ScoredResponse.from_dict(row, "scored.jsonl:4")


@pytest.mark.parametrize(
    ("fragment", "message"),
    [
        ({"span": [3]}, "fragments[1].span must be [start, end], got [3]"),
        ({"verdict": "maybe"}, "fragments[1].verdict must be one of"),
        ({"kind": "loose"}, "field 'fragments[1].kind' must be one of independent, dependent"),
        ({"evidence": "text"}, "field 'fragments[1].evidence' must be Mapping or null"),
    ],
)
def test_from_dict_names_the_bad_fragment_field(fragment, message):
    row = _row()
    row["fragments"][1].update(fragment)
    with pytest.raises(RowError, match=re.escape(message)):
        ScoredResponse.from_dict(row)
    with pytest.raises(RowError, match=re.escape(f"record '{row['id']}'")):
        ScoredResponse.from_dict(row)


def test_a_version_1_row_reads_with_rules_version_1_and_no_judge_spec():
    row = {k: v for k, v in _row().items() if k not in ("rules_version", "judge_spec")}
    old = ScoredResponse.from_dict({**row, "schema_version": 1, "f1": 0.9})  # not recomputed under rules 1
    assert old.rules_version == "1" and old.judge_spec == {}
    assert old.f1 == pytest.approx(0.4444444444)
    assert old.to_dict()["rules_version"] == "1"


def test_row_values_are_what_lmeval_gets_nan_for_undefined():
    empty = scored(next(c for c in CASES if c["name"] == "answer_starting_with_marker_gives_nothing"))
    values = row_values(empty)
    assert list(values) == list(METRICS)
    assert math.isnan(values["correctness"]) and values["micro_correctness"] == [0, 0]
    assert values["abstained"] == 1.0 and values["n_given"] == 0
    assert math.isnan(micro_correctness([values["micro_correctness"]]))
    assert micro_correctness([[1, 2], [3, 2]]) == 1.0


def test_the_lmeval_metric_list_has_one_entry_per_catalogue_metric():
    listed = lmeval_metric_list()
    assert [m["metric"] for m in listed] == list(METRICS)
    by_name = {m["metric"]: m for m in listed}
    assert by_name["correctness"] == {"metric": "correctness", "aggregation": "nanmean", "higher_is_better": True}
    assert by_name["abstained"]["higher_is_better"] is False and by_name["n_given"]["higher_is_better"] is None
    assert "aggregation: !function halt_utils.micro_correctness" in lmeval_metric_list_yaml()
