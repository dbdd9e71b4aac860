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
    assert [(v.label, v.reason) for v in normal.verdicts] == [("correct", "claims_hold")]
    assert [(v.label, v.reason) for v in again.verdicts] == [("correct", "claims_hold")]


def test_the_memory_limit_is_a_judge_option_recorded_in_its_spec():
    from halt_eval.judges.sympy_math import SympyJudge
    from halt_eval.registry import get_judge

    judge = get_judge("sympy", memory_bytes=512 << 20)
    assert judge.spec()["options"] == {"timeout_s": 3.0, "memory_bytes": 512 << 20}
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
         "--judge-backend", "openai", "--judge-base-url", UNREACHABLE, "--judge-model", "m", *extra],
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
