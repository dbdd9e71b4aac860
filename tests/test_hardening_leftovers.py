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
