"""The sympy math judge: claim checks, answer equivalence, verdict rules, time limits,
composition with a fallback judge, and workers that never re-run the caller's script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from halt_eval.judges import _workers, sympy_math
from halt_eval.judges.compose import compose
from halt_eval.judges.math_answer import compare_answers, extract_final_answer
from halt_eval.judges.math_claims import check_claim
from halt_eval.judges.math_steps import find_claims
from halt_eval.judges.sympy_math import SympyJudge
from halt_eval.registry import get_judge
from halt_eval.score import Scorer
from halt_eval.types import Judgement, Response, ScoredResponse, Verdict
from tests.conftest import load_cases

CLAIMS = load_cases("math_claims")
ANSWERS = load_cases("math_answers")


@pytest.mark.parametrize("case", CLAIMS, ids=[c["name"] for c in CLAIMS])
def test_claim_cases(case):
    got = [check_claim(c)["status"] for c in find_claims(case["text"])]
    assert got == case["expected"], case["why"]


@pytest.mark.parametrize("case", ANSWERS, ids=[c["name"] for c in ANSWERS])
def test_answer_equivalence_cases(case):
    assert compare_answers(case["reference"], case["answer"])["status"] == case["expected"], case["why"]


@pytest.mark.parametrize("text, expected", [
    ("So $x = \\boxed{\\frac{1}{2}}$.", "\\frac{1}{2}"),
    ("First \\boxed{1}, then finally \\boxed{\\{2, 3\\}}.", "\\{2, 3\\}"),
    ("She pays 18 dollars.\n#### 18", "18"),
    ("Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{3}{4}"),
    ("The answer is 42.", "42"),
    ("No answer here.", None),
])
def test_the_final_answer_is_taken_from_the_last_box_then_hashes_then_the_answer_is(text, expected):
    assert extract_final_answer(text) == expected


@pytest.fixture(scope="module")
def scorer():
    s = Scorer.for_domain("math")
    yield s
    s.judge.close()


def _gsm8k(shared_data, question: str) -> dict:
    for line in (shared_data / "math" / "gsm8k" / "test.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["question"].strip() == question.strip():
            return {"answer": row["answer"].split("####")[-1].strip(), "solution": row["answer"]}
    raise LookupError(question)


def _processbench(shared_data, name: str, row_id: str) -> dict:
    rows = json.loads((shared_data / "math" / "processbench" / f"{name}.dev.json").read_text())
    return next(r for r in rows if r["id"] == row_id)


def _response(row: dict, reference: dict) -> Response:
    return Response(row["id"], "math", row["problem"], "\n\n".join(row["steps"]), reference,
                    fragments=tuple(row["steps"]))


def test_the_registry_builds_the_sympy_judge_for_the_math_domain(scorer):
    assert isinstance(scorer.judge, SympyJudge)
    assert scorer.judge.name == "sympy"
    judge = get_judge("sympy", timeout_s=1.0)
    assert judge.timeout_s == 1.0
    judge.close()


def test_a_real_wrong_product_is_the_first_error_and_later_steps_follow_it(scorer, shared_data):
    row = _processbench(shared_data, "gsm8k", "gsm8k-5")  # Llama-3.1-8B, label 2: 495 * 15 = 7455
    [scored] = scorer.score([_response(row, _gsm8k(shared_data, row["problem"]))])
    labels = [v.label for v in scored.verdicts]
    assert labels.index("incorrect") == row["label"] == 2
    assert scored.verdicts[2].reason == "claim_false"
    assert "495 * 15 = 7455" in scored.verdicts[2].explanation
    assert all(v.reason == "after_first_error" for v in scored.verdicts[3:])
    assert scored.solved is False
    json.dumps(scored.to_dict())


def test_a_real_correct_answer_is_solved_with_nothing_flagged(scorer, shared_data):
    row = _processbench(shared_data, "gsm8k", "gsm8k-0")
    reference = _gsm8k(shared_data, row["problem"])
    solved = {**row, "steps": row["steps"][:1] + [
        "On Saturday they take back \\(18 / 3 = 6\\) flamingos and paint them white, "
        "so \\(18 - 6 = 12\\) pink ones are left.",
        "On Sunday they add 18 pink ones: \\(12 + 18 = 30\\) pink and 6 white.",
        "The difference is \\(30 - 6 = 24\\). The answer is \\(\\boxed{24}\\).",
    ]}
    [scored] = scorer.score([_response(solved, reference)])
    assert reference["answer"] == "24"
    assert [v.label for v in scored.verdicts] == ["correct"] * 4
    assert [v.reason for v in scored.verdicts] == ["no_claim_solved", "claims_hold", "claims_hold",
                                                   "final_answer_equal"]
    assert scored.solved is True and scored.completeness == 1.0


def test_a_right_final_answer_reached_after_a_wrong_step_is_still_flagged_at_that_step(scorer):
    text = "First, $3 \\times 4 = 13$.\nThen it happens to work out.\nThe answer is $\\boxed{12}$."
    [scored] = scorer.score([Response("r", "math", "3 * 4?", text, {"answer": "12"})])
    assert [v.label for v in scored.verdicts] == ["incorrect"] * 3
    assert scored.verdicts[0].reason == "claim_false"
    assert scored.verdicts[0].evidence["claims"][0]["lhs_value"] == "12"


def test_a_missing_reference_leaves_the_final_step_unverifiable(scorer):
    text = "We have $2 + 2 = 4$.\nSo the answer is $\\boxed{4}$."
    [scored] = scorer.score([Response("r", "math", "2 + 2?", text, {})])
    assert scored.verdicts[0].reason == "claims_hold"
    assert (scored.verdicts[1].label, scored.verdicts[1].reason) == ("unverifiable", "missing_reference")
    assert scored.solved is None
    assert scored.evidence["status"] == "missing_reference"


def test_a_step_with_no_checkable_claim_in_an_unsolved_answer_is_unverifiable(scorer):
    text = "Think about the pigeons.\nThe answer is $\\boxed{5}$."
    [scored] = scorer.score([Response("r", "math", "?", text, {"answer": "6"})])
    assert [(v.label, v.reason) for v in scored.verdicts] == [
        ("unverifiable", "no_checkable_claim"), ("incorrect", "final_answer_wrong")]


@pytest.mark.parametrize("text", ["", "$$", "\\boxed{", "$\\frac{{{$ = 3", "1 = = = 2", "$x^{10^{10^{10}}} = 1$",
                                  "\\boxed{\\frac{1}{0}}", "a" * 5000])
def test_a_malformed_answer_never_raises(scorer, text):
    [scored] = scorer.score([Response("r", "math", "?", text, {"answer": "1", "solution": "$1$"})])
    assert scored.error is None
    assert len(scored.verdicts) == len(scored.fragments)


def slow_or_dying_task(task):
    """A worker runner (imported by the workers by name) with checks that misbehave."""
    lhs = task[1].replace(" ", "") if task[0] == "claim" else ""
    if lhs == "7\\times7":
        while True:  # burns CPU: the CPU-time limit stops it
            pass
    if lhs == "8\\times8":
        time.sleep(60)  # uses no CPU: the wall-clock cap stops it
    if lhs == "9\\times9":
        os._exit(3)
    return sympy_math.run_task(task)


@pytest.fixture
def forked_judge(monkeypatch):
    """A judge whose workers run ``slow_or_dying_task`` instead of the real runner."""
    monkeypatch.setattr(sympy_math, "RUNNER", f"{__name__}:slow_or_dying_task")
    judge = SympyJudge(timeout_s=1.0, workers=1)
    yield judge
    judge.close()


def test_a_check_that_overruns_is_killed_and_the_rest_of_the_batch_still_runs(forked_judge):
    text = "So $7 \\times 7 = 49$.\nAnd $2 + 2 = 5$."
    scorer = Scorer.for_domain("math", judge=forked_judge)
    [scored] = scorer.score([Response("r", "math", "?", text, {})])  # returns: the overrun was cut
    assert (scored.verdicts[0].label, scored.verdicts[0].reason) == ("unverifiable", "timeout")
    assert scored.verdicts[0].evidence["claims"][0]["status"] == "timeout"
    assert (scored.verdicts[1].label, scored.verdicts[1].reason) == ("incorrect", "claim_false")


def test_a_check_that_sleeps_is_stopped_by_the_wall_clock_cap(forked_judge, monkeypatch):
    monkeypatch.setattr(_workers, "WALL_FACTOR", 2.0)
    [scored] = Scorer.for_domain("math", judge=forked_judge).score(
        [Response("r", "math", "?", "So $8 \\times 8 = 64$.\nAnd $1 + 1 = 2$.", {})])
    assert scored.verdicts[0].reason == "timeout"
    assert scored.verdicts[1].reason == "claims_hold"


def test_a_worker_that_dies_gives_worker_error_and_is_replaced(forked_judge):
    text = "So $9 \\times 9 = 81$.\nAnd $2 + 3 = 5$."
    [scored] = Scorer.for_domain("math", judge=forked_judge).score([Response("r", "math", "?", text, {})])
    assert (scored.verdicts[0].label, scored.verdicts[0].reason) == ("unverifiable", "worker_error")
    assert (scored.verdicts[1].label, scored.verdicts[1].reason) == ("correct", "claims_hold")


class _AlwaysCorrect:
    """A stand-in for the LLM judge: calls every fragment correct, and records which
    fragments the embedded judge had left undecided."""

    name = "stub"
    version = "1"

    def __init__(self):
        self.undecided = []

    def judge_undecided(self, batch, prior):
        self.undecided += [k for j in prior for k, v in enumerate(j.verdicts) if v.label == "unverifiable"]
        return [Judgement(tuple(Verdict("correct", "stub@1", "stub") for _ in req.fragments)) for req in batch]


def test_a_composed_fallback_decides_only_the_steps_sympy_could_not():
    fallback = _AlwaysCorrect()
    with SympyJudge() as sympy:
        judge = compose(sympy, fallback)
        text = "Think about the pigeons.\nSo $2 + 2 = 4$.\nThe answer is $\\boxed{5}$."
        [scored] = Scorer.for_domain("math", judge=judge).score([Response("r", "math", "?", text, {"answer": "4"})])
    assert fallback.undecided == [0]
    assert [v.reason for v in scored.verdicts] == ["stub", "claims_hold", "final_answer_wrong"]
    assert scored.solved is False  # the embedded judge's response-level decision stands
    spec = judge.spec()
    assert spec["name"] == "sympy+stub" and spec["embedded"]["name"] == "sympy"
    assert spec["embedded"]["options"] == {"timeout_s": sympy_math.TIMEOUT_S,
                                           "memory_bytes": sympy_math.MEMORY_LIMIT_BYTES,
                                           "reference_support": True, "locate": False}
    assert spec["fallback"] == {"name": "stub", "version": "1"}


_NO_GUARD_SCRIPT = """
import os, sys
with open(sys.argv[1], "a") as f:
    f.write(f"{os.getpid()}\\n")
from halt_eval.judges.sympy_math import SympyJudge
from halt_eval.types import Fragment, JudgeRequest, Response
text = "So $2 + 3 = 5$.\\nAnd $4 \\\\times 4 = 17$."
resp = Response("r", "math", "?", text, {})
frags = tuple(Fragment(i, t, (0, 0), "dependent") for i, t in enumerate(text.splitlines()))
judge = SympyJudge(workers=2)
[j] = judge.judge([JudgeRequest(resp, frags)])
judge.close()
print(" ".join(v.reason for v in j.verdicts))
"""


def test_a_script_without_a_main_guard_runs_once_and_its_workers_judge(tmp_path):
    script, runs = tmp_path / "plain_script.py", tmp_path / "runs.txt"
    script.write_text(textwrap.dedent(_NO_GUARD_SCRIPT))
    out = subprocess.run([sys.executable, str(script), str(runs)], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["claims_hold", "claim_false"]
    assert len(runs.read_text().splitlines()) == 1  # the workers never re-ran the script


def test_a_bad_timeout_fails_at_construction_with_the_value():
    with pytest.raises(ValueError, match="timeout_s must be > 0, got 0"):
        SympyJudge(timeout_s=0)


def test_the_last_box_wins_over_a_later_prose_the_answer_is(scorer):
    text = "So $x = \\boxed{4}$.\nThe answer is simple once you see it."
    [scored] = scorer.score([Response("r", "math", "?", text, {"answer": "4"})])
    assert scored.evidence["final_answer"] == "4" and scored.solved is True
    assert scored.verdicts[0].reason == "final_answer_equal"


def test_n_desired_counts_the_reference_solution_cut_by_the_same_splitter(scorer, shared_data):
    row = _processbench(shared_data, "gsm8k", "gsm8k-5")
    reference = _gsm8k(shared_data, row["problem"])
    [scored] = scorer.score([_response(row, reference)])
    assert scored.n_desired == len(reference["solution"].strip().splitlines())


# ---------------------------------------------------------------- round two (issue 12)

def test_an_unreadable_claim_never_makes_a_step_correct(scorer):
    """`9^9^9^9` cannot be evaluated; before the fix the step came out `no_claim_solved`
    (correct) because the answer's final answer matched."""
    text = "Step 1: 9^9^9^9 = 1.\nStep 2: The answer is $\\boxed{1}$."
    [scored] = scorer.score([Response("r", "math", "?", text, {"answer": "1"})])
    assert scored.solved is True
    first = scored.verdicts[0]
    assert first.label != "correct", first
    assert (first.label, first.reason) == ("unverifiable", "unreadable_claim")
    assert first.evidence["claims"][0]["status"] == "unchecked"


@pytest.mark.parametrize("reference", ["3 \\text{ and } \\frac{1}{", "x = 2 \\quad \\text{or} \\quad \\frac",
                                       "(1, 2) \\cup"])
def test_a_reference_that_does_not_parse_completely_is_unparsable(reference):
    got = compare_answers(reference, "3")
    assert got["status"] == "unparsable", got


def test_an_unparsable_reference_leaves_the_final_step_unverifiable(scorer):
    text = "We add $1 + 2 = 3$.\nSo the answer is $\\boxed{3}$."
    [scored] = scorer.score([Response("r", "math", "?", text, {"answer": "3 \\text{ and } \\frac{1}{"})])
    assert (scored.verdicts[1].label, scored.verdicts[1].reason) == ("unverifiable", "unparsable_answer")
    assert scored.solved is None


def test_given_fragments_that_do_not_occur_in_the_response_are_an_error_for_that_row(scorer):
    good = Response("ok", "math", "?", "We add $1 + 2 = 3$.\nSo $\\boxed{3}$.", {"answer": "3"},
                    fragments=("We add $1 + 2 = 3$.", "So $\\boxed{3}$."))
    bad = Response("bad", "math", "?", "We add $1 + 2 = 3$.", {"answer": "3"},
                   fragments=("We add $1 + 2 = 3$.", "So $\\boxed{3}$."))
    s_good, s_bad = scorer.score([good, bad])
    assert s_good.error is None and s_good.solved is True
    assert s_bad.error and "#1 does not occur" in s_bad.error
    assert all(v.label == "unverifiable" and v.reason == "fragment_not_in_response" for v in s_bad.verdicts)
    assert s_bad.n_correct == 0 and s_bad.solved is None


@pytest.mark.parametrize("reference, answer, why", [
    ("12:00", "1:00", "two times of day, both read as x/0 (complex infinity)"),
    ("\\frac{1}{0}", "\\frac{2}{0}", "two undefined values are not one answer"),
    ("(12,102)", "12102", "a pair is not a number with a thousands separator"),
])
def test_equivalence_bugs_are_not_equal(reference, answer, why):
    assert compare_answers(reference, answer)["status"] == "not_equal", why


@pytest.mark.parametrize("reference, answer", [
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
    ("\\begin{pmatrix} -1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}-1\\\\2\\end{pmatrix}"),
    ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{bmatrix}1\\\\2\\end{bmatrix}"),
    ("\\mathbf{v}_1 = 2", "2"),  # a subscript after a brace is not a base
    ("\\$15", "15"),
    ("1,000,000", "1000000"),
    ("(12,102)", "(12, 102)"),
])
def test_equivalence_repairs_keep_what_they_should(reference, answer):
    assert compare_answers(reference, answer)["status"] == "equal", (reference, answer)


def test_the_base_subscript_guard_fires_only_on_a_number_in_a_base():
    from halt_eval.judges.math_answer import BASE_NOTATION

    for text in ("52_8", "1011_2", "(21)_{5}", "{10}_3"):
        assert BASE_NOTATION.search(text), text
    for text in ("\\operatorname{proj}_{\\mathbf{w}}", "a_1 + a_2", "\\log_2 8", "\\mathbf{v}_1", "x_{n+1}"):
        assert not BASE_NOTATION.search(text), text


def test_padding_an_unsolved_answer_with_true_steps_does_not_pay(scorer):
    """40 irrelevant true steps and no right final answer: under rules 2 completeness was 40/41
    and F1 0.988; now the needed count is the reference's (2 steps), so completeness is 1/2 even
    when the steps count as correct (reference support off). The last step's 41, the answer's
    last value, is read as its final answer (wrong). With reference support on (the default) no
    step is vouched for: none meets a quantity of the reference solution."""
    pad = "\n".join(f"${k} + 1 = {k + 1}$" for k in range(1, 41))
    ref = {"answer": "7", "solution": "We have $3 + 4 = 7$.\nSo the answer is $\\boxed{7}$."}
    scored = _score_with(Response("r", "math", "3 + 4?", pad, ref), reference_support=False)
    assert scored.n_desired == 2 and scored.solved is False
    assert scored.verdicts[-1].reason == "final_answer_wrong"
    assert scored.n_correct == 39 and scored.correctness == pytest.approx(39 / 40)
    assert scored.completeness == 0.5 and scored.f1 == pytest.approx(2 * (39 / 40) * 0.5 / (39 / 40 + 0.5))
    [default] = scorer.score([Response("r", "math", "3 + 4?", pad, ref)])
    assert default.n_correct == 0
    assert {v.reason for v in default.verdicts[:-1]} == {"unsupported_after_reference"}
    assert default.verdicts[-1].reason == "final_answer_wrong"


def test_repeated_or_empty_steps_do_not_add_to_n_correct(scorer):
    """The same true step ten times counts once; a step with no content counts not at all."""
    text = "\n".join(["$2 + 2 = 4$"] * 10 + ["Step 11: $2+2 = 4$.", "**", "So the answer is $\\boxed{4}$."])
    ref = {"answer": "4", "solution": "$2 + 2 = 4$.\nThe answer is $\\boxed{4}$."}
    [scored] = scorer.score([Response("r", "math", "2 + 2?", text, ref)])
    assert scored.n_given == 13
    assert scored.n_correct == 2  # the first $2+2=4$ and the final answer


def test_the_padding_rule_counts_repeats_once_but_not_in_code():
    from halt_eval.rules import count_correct, fragment_key

    assert fragment_key("Step 3: $2 + 2 = 4$.") == fragment_key("$2+2=4$")
    assert fragment_key("**") is None and fragment_key("---") is None and fragment_key("Step 4:") is None
    texts = ["x = 1", "x = 1", ")", "return x"]
    assert count_correct(texts, [True] * 4, "math") == 2
    assert count_correct(texts, [True] * 4, "code") == 3  # `return False` may rightly occur twice


def test_a_symbolic_claim_no_reader_understands_is_not_an_unreadable_claim(scorer):
    """Only a claim with no unknown should have been computable; `\\varphi^2 = \\varphi + 1`
    stays a claim the judge does not check, so a solved answer's step is still correct."""
    text = "We know $\\varphi^2 = \\varphi + 1$.\nSo the answer is $\\boxed{2}$."
    [scored] = scorer.score([Response("r", "math", "?", text, {"answer": "2"})])
    assert scored.verdicts[0].reason == "no_claim_solved"


_REF = {"answer": "40", "solution": "Each box holds $4 \\times 6 = 24$ eggs, so 5 boxes hold 120 eggs. "
                                    "She sells a third: 40.\n#### 40"}
_PROMPT = "A box holds 4 rows of 6 eggs. She has 5 boxes and sells a third of the eggs. How many?"


def _score_with(resp: Response, **judge_options) -> ScoredResponse:
    """``resp`` scored through the math Scorer by a ``SympyJudge(**judge_options)``, closed after."""
    with SympyJudge(**judge_options) as judge:
        [scored] = Scorer.for_domain("math", judge=judge).score([resp])
    return scored
_WRONG = ["First we count the eggs in one box.", "That is 24 eggs per box.",
          "With 5 boxes she has 150 eggs.", "A third of them is 50 eggs.", "The answer is $\\boxed{50}$."]


def test_reference_support_makes_steps_on_the_reference_path_correct_and_locate_flags_the_divergence():
    """An unsolved answer follows the reference (24 eggs) and then leaves it (150, never in
    the reference): by default the steps up to 24 with nothing to check are supported; with
    locate=True the step writing 150 is the first error."""
    resp = Response("r", "math", _PROMPT, "\n".join(_WRONG), _REF, fragments=tuple(_WRONG))
    plain = _score_with(resp)  # on by default: see docs/math.md for what it measures
    assert [v.reason for v in plain.verdicts[:2]] == ["reference_supported", "reference_supported"]
    assert plain.verdicts[1].evidence["shared_quantities"] == ["24"]
    assert plain.verdicts[2].label == "unverifiable" and plain.verdicts[4].reason == "final_answer_wrong"
    located = _score_with(resp, locate=True)
    assert [v.label for v in located.verdicts] == ["correct", "correct", "incorrect", "incorrect", "incorrect"]
    assert located.verdicts[2].reason == "diverges_from_reference"
    assert located.verdicts[2].evidence["new_quantities"] == ["150"]
    off = _score_with(resp, reference_support=False)
    assert off.verdicts[0].reason == "no_checkable_claim" and off.verdicts[2].label == "unverifiable"


def test_in_an_unsolved_answer_arithmetic_that_holds_past_the_reference_path_is_not_vouched_for():
    """5 * 30 = 150 holds, but the answer ends wrong and no step from there on meets the
    reference (24, 120, 40): the error may lie before it, so it is unverifiable, not correct;
    the step that derives the reference's 24 stays correct. Nothing new is flagged."""
    steps = ["Each box holds $4 \\times 6 = 24$ eggs.", "With 5 boxes she has $5 \\times 30 = 150$ eggs.",
             "A third of them is $150 / 3 = 50$ eggs.", "The answer is $\\boxed{50}$."]
    resp = Response("r", "math", _PROMPT, "\n".join(steps), _REF, fragments=tuple(steps))
    s = _score_with(resp)
    assert [(v.label, v.reason) for v in s.verdicts] == [
        ("correct", "claims_hold"), ("unverifiable", "unsupported_after_reference"),
        ("unverifiable", "unsupported_after_reference"), ("incorrect", "final_answer_wrong")]
    assert s.verdicts[1].evidence["own_reason"] == "claims_hold" and s.verdicts[1].evidence["followed_until"] == 0
    solved = Response("s", "math", _PROMPT, "\n".join(steps[:1] + ["So $24 \\times 5 = 120$ and $120 / 3 = 40$.",
                                                                   "The answer is $\\boxed{40}$."]), _REF)
    ok = _score_with(solved)  # a solved answer is not touched
    assert [v.label for v in ok.verdicts] == ["correct"] * 3


def test_a_step_that_writes_a_reference_number_beside_a_foreign_one_has_left_the_reference_path():
    """120 is the reference's, 15 is not: the step repeats a number of the path while leaving it,
    so support stops at the step before (24), and the step is no locate candidate either."""
    steps = ["First we count the eggs in one box.", "That is 24 eggs per box.",
             "Five boxes hold 120 eggs, and she keeps 15 of them.", "A third of the rest is 35.",
             "The answer is $\\boxed{35}$."]
    resp = Response("r", "math", _PROMPT, "\n".join(steps), _REF, fragments=tuple(steps))
    s = _score_with(resp, locate=True)
    assert [(v.label, v.reason) for v in s.verdicts[:4]] == [
        ("correct", "reference_supported"), ("correct", "reference_supported"),
        ("unverifiable", "no_checkable_claim"), ("incorrect", "diverges_from_reference")]
    assert s.verdicts[0].evidence["followed_until"] == 1


def test_the_opening_step_of_an_unsolved_answer_that_states_nothing_new_is_correct():
    """A first step with nothing to check and no quantity beyond the problem's restates it or
    names a method; a later such step, or an opening step with a new quantity, stays unverifiable."""
    steps = ["We need to count all the eggs and then take a third.", "Let us think about the boxes.",
             "With 5 boxes she has $5 \\times 30 = 150$ eggs.", "The answer is $\\boxed{50}$."]
    resp = Response("r", "math", _PROMPT, "\n".join(steps), _REF, fragments=tuple(steps))
    s = _score_with(resp)
    assert [(v.label, v.reason) for v in s.verdicts] == [
        ("correct", "opening_step"), ("unverifiable", "no_checkable_claim"),
        ("unverifiable", "unsupported_after_reference"), ("incorrect", "final_answer_wrong")]
    new_quantity = ["A box holds 30 eggs.", "The answer is $\\boxed{50}$."]
    resp = Response("q", "math", _PROMPT, "\n".join(new_quantity), _REF, fragments=tuple(new_quantity))
    q = _score_with(resp)
    assert (q.verdicts[0].label, q.verdicts[0].reason) == ("unverifiable", "no_checkable_claim")


def test_a_path_that_rejoins_the_reference_is_not_located_as_an_error():
    """A foreign quantity followed later by a reference quantity was a different path."""
    steps = ["One row and a box: 6 eggs per row.", "Two boxes hold 48 eggs.", "So five boxes hold 120 eggs.",
             "A third is 41.", "The answer is $\\boxed{41}$."]
    resp = Response("r", "math", _PROMPT, "\n".join(steps), _REF, fragments=tuple(steps))
    s = _score_with(resp, locate=True)
    assert s.verdicts[1].label != "incorrect"  # 48 diverges, but 120 rejoins the reference
    assert s.verdicts[3].reason == "diverges_from_reference"  # 41: the first foreign step after 120


def test_reference_support_never_touches_an_answer_without_a_solution():
    text = "Think about it.\nThe answer is $\\boxed{50}$."
    s = _score_with(Response("r", "math", "?", text, {"answer": "40"}), reference_support=True, locate=True)
    assert s.verdicts[0].reason == "no_checkable_claim"


def test_quantities_read_integers_decimals_separators_and_fractions():
    from fractions import Fraction as F

    from halt_eval.judges.math_steps import quantities, telling, with_percent_forms

    got = quantities("She has 3/4 of $1,200, i.e. \\frac{9}{10} of 2.5 and 20%.")
    assert got == {F(3), F(4), F(3, 4), F(1200), F(9, 10), F(5, 2), F(20)}
    assert telling({F(3), F(10), F(11), F(1, 2)}) == {F(11), F(1, 2)}
    assert F(1, 5) in with_percent_forms({F(20)})
