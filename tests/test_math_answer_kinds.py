"""Final answers by kind (issue 12): equivalence of labelled values, relations, intervals,
equations, chains, matrices and decimal commas, called directly; and extraction of an answer
that is not boxed nor stated as "the answer is" (a bare "-5", "so x = 3", "#### 42", the last
math, the last number), recorded in the final step's evidence."""

from __future__ import annotations

import pytest

from halt_eval.judges.math_answer import EXTRACTIONS, compare_answers, extract_final_answer, locate_final_answer
from halt_eval.score import Scorer
from halt_eval.types import Response
from tests.conftest import load_cases

KINDS = load_cases("math_answers_kinds")
EQUIVALENCE = [c for c in KINDS if c["kind"] != "extraction"]
EXTRACTION = [c for c in KINDS if c["kind"] == "extraction"]


@pytest.mark.parametrize("case", EQUIVALENCE, ids=[c["name"] for c in EQUIVALENCE])
def test_answer_equivalence_kinds(case):
    assert compare_answers(case["reference"], case["answer"])["status"] == case["expected"], case["why"]


@pytest.mark.parametrize("case", EXTRACTION, ids=[c["name"] for c in EXTRACTION])
def test_an_unboxed_final_answer_is_extracted_and_graded(case):
    found = locate_final_answer([case["answer"]])
    assert (found.extraction if found else None) == case["extraction"], case["why"]
    status = compare_answers(case["reference"], found.text)["status"] if found else "not_equal"
    assert status == case["expected"], (case["why"], found)


def test_every_extraction_has_a_case():
    assert {c["extraction"] for c in EXTRACTION} - {None} == set(EXTRACTIONS)


def test_an_answer_stated_anywhere_wins_over_a_later_number():
    steps = ["The answer is $\\frac{1}{2}$.", "Check: $2 \\cdot \\frac{1}{2} = 1$ and 7 more."]
    assert locate_final_answer(steps) == (0, "\\frac{1}{2}", "answer_is")


def test_the_unanchored_answer_comes_from_the_last_step_that_has_one():
    steps = ["We have $3 + 4 = 7$.", "So x = 7.", "I hope this helps!"]
    assert locate_final_answer(steps) == (1, "x = 7", "final_equation")
    assert locate_final_answer(["No numbers.", "None here either."]) is None


@pytest.mark.parametrize("text, expected", [
    ("Step 3: then 10 - 3 = 7 apples remain.", "7"),      # the result, not an operand
    ("In 2020, she had 5 cats.", "5"),                   # the last number, not a year before it
    ("The result is $\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}$.", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
    ("So $9\\pi h = 45\\pi$, which gives $h = 5$ cm.", "h = 5"),
    ("the sum is \\[\\frac{1}{2} + \\frac{1}{4} + \\dots = 1\\]", "1"),  # a series: its value
    ("the line is $y = 2x + 1$.", "y = 2x + 1"),        # an equation stays whole
    ("a profit of $195,000.", "195,000"),                # a lone dollar sign is a price
])
def test_unanchored_extraction_reads(text, expected):
    assert extract_final_answer(text) == expected


def test_the_extraction_is_in_the_final_steps_evidence():
    scorer = Scorer.for_domain("math")
    try:
        right, wrong = scorer.score([
            Response("a", "math", "Solve 2x + 1 = 7.", "Subtract 1: $2x = 6$.\nDivide by 2, so x = 3.",
                     {"answer": "3"}),
            Response("b", "math", "Solve 2x + 1 = 7.", "Subtract 1: $2x = 8$.\nDivide by 2, so x = 4.",
                     {"answer": "3"}),
        ])
    finally:
        scorer.judge.close()
    assert right.solved is True and wrong.solved is False
    final = right.verdicts[-1]
    assert final.reason == "final_answer_equal"
    assert final.evidence["final_answer"]["extraction"] == "final_equation"
    assert final.evidence["final_answer"]["extracted"] == "x = 3"
    assert right.evidence["extraction"] == "final_equation"
    assert wrong.verdicts[-1].reason == "final_answer_wrong"


def test_an_equality_of_unknowns_split_off_by_the_step_splitter_does_not_answer():
    """The splitter cuts "\\(a = b = c = d\\)" into "\\(a = b\\)", "\\(b = c\\)", "\\(c = d\\), as
    per ..."; the last piece names unknowns and must not hide the value before it."""
    steps = ["Therefore, the minimum value of the given expression is \\(16\\).", "Equality occurs when \\(a = b\\)",
             "\\(b  = c\\)", "\\(c = d\\), as per the condition for equality in the AM-HM inequality."]
    assert locate_final_answer(steps) == (0, "16", "last_latex")


def test_an_answer_that_abstains_has_no_unanchored_final_answer():
    """"16 - 3 - 4 = 9. Unsure from Here. ..." stops before its answer: the 9 before the marker
    is a step, not a final answer (a box before the marker still is one)."""
    assert locate_final_answer(["16 - 3 - 4 = 9."], unanchored=False) is None
    assert locate_final_answer(["So $\\boxed{9}$."], unanchored=False) == (0, "9", "boxed")
    scorer = Scorer.for_domain("math")
    try:
        [scored] = scorer.score([Response("a", "math", "eggs", "16 - 3 - 4 = 9. Unsure from Here. 9 * 2 = 19.",
                                          {"answer": "18"})])
    finally:
        scorer.judge.close()
    assert scored.abstained is True
    assert [(v.label, v.reason) for v in scored.verdicts] == [("correct", "claims_hold")]
    assert scored.evidence["extraction"] is None


def test_a_symbolic_derivation_is_not_a_final_answer_but_a_stated_expression_is():
    assert extract_final_answer("So $y = (x+1)^{2} = x^{2} + 2x + 1$.") is None
    assert extract_final_answer("So $(x+1)^{2} = x^{2} + 2x + 1$.") is None
    assert extract_final_answer("Hence $f(x) = x^2 + 1$ for all x.") == "f(x) = x^2 + 1"
    assert extract_final_answer("The simplified form is \\(x^2 + 1\\) here.") == "x^2 + 1"
