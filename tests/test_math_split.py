"""The math step splitter: hand cases, real ProcessBench answers, and span invariants."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from halt_eval.judges.math_steps import MathStepSplitter, find_claims, split_steps
from halt_eval.registry import get_splitter
from tests.conftest import load_cases

CASES = load_cases("math_split")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_split_cases(case):
    assert [p.text for p in split_steps(case["text"])] == case["expected"], case["why"]


def test_the_registry_builds_the_math_splitter():
    splitter = get_splitter("math_steps")
    assert isinstance(splitter, MathStepSplitter)
    assert splitter.split(["$1 + 1 = 2$."], [None]) == [split_steps("$1 + 1 = 2$.")]


def _assert_spans_tile(text, pieces):
    cursor = 0
    for p in pieces:
        a, b = p.span
        assert cursor <= a <= b <= len(text)
        cursor = b


@pytest.mark.parametrize("name", ["gsm8k", "math", "olympiadbench", "omnimath"])
def test_no_step_of_a_real_processbench_answer_crosses_an_expert_step_boundary(shared_data, name):
    rows = json.loads((shared_data / "math" / "processbench" / f"{name}.dev.json").read_text())[:25]
    for row in rows:
        text = "\n\n".join(row["steps"])
        bounds, pos = [], 0
        for step in row["steps"]:
            bounds.append((pos, pos + len(step)))
            pos += len(step) + 2
        pieces = split_steps(text)
        _assert_spans_tile(text, pieces)
        for p in pieces:
            assert any(a <= p.span[0] and p.span[1] <= b for a, b in bounds), (row["id"], p)
        assert len(pieces) >= len([s for s in row["steps"] if s.strip()]), row["id"]


def test_real_gsm8k_and_math_references_are_cut_with_their_final_answer_kept(shared_data):
    gsm = json.loads((shared_data / "math" / "gsm8k" / "test.jsonl").read_text().splitlines()[0])
    steps = [p.text for p in split_steps(gsm["answer"])]
    assert steps[-1] == "#### 18" and len(steps) == 3
    math500 = [json.loads(line) for line in (shared_data / "math" / "math-500" / "test.jsonl").read_text().splitlines()]
    for row in math500[:50]:
        pieces = split_steps(row["solution"])
        _assert_spans_tile(row["solution"], pieces)
        assert any("\\boxed" in p.text for p in pieces), row["unique_id"]


def test_the_labelled_error_of_processbench_gsm8k_5_is_found_as_a_claim(shared_data):
    rows = json.loads((shared_data / "math" / "processbench" / "gsm8k.dev.json").read_text())
    row = next(r for r in rows if r["id"] == "gsm8k-5")
    claims = [c.as_text() for c in find_claims(row["steps"][row["label"]])]
    assert "495 * 15 = 7455" in claims


_MATHY = st.text(alphabet="ab12=+$\\{}()[]<>. \n#*/", max_size=80)


@settings(max_examples=200, deadline=None)
@given(_MATHY)
def test_spans_are_ordered_disjoint_and_inside_the_text(text):
    pieces = split_steps(text)
    _assert_spans_tile(text, pieces)
    assert split_steps(text) == pieces
