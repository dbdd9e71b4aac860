"""The math judge: every claim of every step checked with sympy, the final answer against the reference.

How a step is judged (the rules ``docs/math.md`` explains and measures):

* Its claims come from ``halt_eval.judges.math_steps.find_claims``: the links of relation
  chains inside math, plain-text arithmetic ("33 * 15 = 495 students") and GSM8K calculator
  annotations. Numeric links are evaluated exactly; a symbolic link is checked as an identity
  only when it continues a chain (``... = (x+1)^2 = x^2 + 2x + 1``), because a first link with
  unknowns is usually a definition or an equation to solve. An identity can pass; a failed
  one is never flagged (such chains are as often systems of conditions). ``precheck`` lists
  the links not checked at all (unit conversions, remainders, other bases, ...).
* A claim fails only if *every* plausible reading of it fails: standard precedence and
  left-to-right for plain arithmetic, ``%`` as a percent and as a bare number; for LaTeX, our
  arithmetic reader, a fast ``parse_expr`` reader and latex2sympy, side by side and crossed.
  Rounding to the digits shown passes, and so does an integer written for a non-integer less
  than 1 away ("100/3 = 33 people"). A step that calls its own claim false is not flagged.
* The step that states the final answer (the last ``\\boxed{}``, ``#### N`` or "the answer
  is ..."; else the last step with a number or math, ``math_answer.EXTRACTIONS``) is also
  checked against ``reference["answer"]``; the evidence names the extraction.

Reason codes (``Verdict.reason``):

* ``claims_hold`` (correct): at least one claim was checked and none failed.
* ``final_answer_equal`` (correct): the final answer equals the reference answer.
* ``no_claim_solved`` (correct): nothing to check, but the answer reaches the reference
  answer with no failed check anywhere (the no-checkable-claim rule).
* ``claim_false`` (incorrect): a claim does not hold; the evidence names it and both values.
* ``final_answer_wrong`` (incorrect): the final answer differs from the reference answer.
* ``unreadable_claim`` (unverifiable): a claim with no unknown could not be read or evaluated
  (``9^9^9^9``, an operand over ``MAX_OPERAND_CHARS``); such a step is never correct, whatever else holds,
  unless it states the final answer and that answer equals the reference.
* ``reference_supported`` (correct): nothing to check, in an unsolved answer, at or before
  the last step whose new quantities the reference solution all writes
  (``reference_support``, on by default; ``_against_reference``; measured in ``docs/math.md``).
* ``opening_step`` (correct): in an unsolved answer, the first step, with nothing to check and
  no quantity the problem does not already give (``reference_support``).
* ``unsupported_after_reference`` (unverifiable): in an unsolved answer, a step whose claims
  hold but which comes after the last step on the reference solution's path (see ``_against_reference``):
  the error the wrong answer proves may lie before it (``reference_support``).
* ``diverges_from_reference`` (incorrect): in an unsolved answer, the first step after the
  last one sharing a quantity with the reference whose new quantities are all foreign to it
  (``locate=True`` only: see ``docs/math.md`` for its precision).
* ``no_checkable_claim`` (unverifiable): nothing to check, and the answer is not known to be
  solved with no failed check. Left for an LLM judge when one is composed with this one
  (``halt_eval.judges.compose``).
* ``missing_reference`` (unverifiable): the final answer has no reference answer to meet.
* ``unparsable_answer`` (unverifiable): the final answer or the reference could not be parsed.
* ``timeout`` (unverifiable): a sympy call ran past ``timeout_s``; its worker was killed.
* ``memory_limit`` (unverifiable): a sympy call needed more than the worker's memory limit
  (``memory_bytes``, default ``_workers.MEMORY_LIMIT_BYTES``); the worker goes on.
* ``worker_error`` (unverifiable): a check raised or its worker died.

Every sympy call runs in a worker process (``_workers.WorkerPool``, started with
``python -m``, so a caller's script is never re-imported): checks are sent in batches, each
may use ``timeout_s`` of CPU (``_workers.WALL_FACTOR`` times that of wall clock), and a worker
that overruns is killed and replaced.

The jobs live in their own modules: ``math_answer`` (final-answer extraction and grading),
``math_claims`` (checking one claim), ``math_arith`` (exact arithmetic), ``math_latex`` (LaTeX
readers), ``_workers`` (the pool). This module plans the checks and turns results into verdicts.
"""


from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from halt_eval.judges._workers import MEMORY_LIMIT_BYTES, WorkerPool
from halt_eval.judges.math_answer import compare_answers, extract_final_answer, locate_final_answer
from halt_eval.judges.math_claims import check_claim, names_no_unknown, precheck
from halt_eval.judges.math_steps import Claim, find_claims, quantities, telling, with_percent_forms
from halt_eval.types import Judgement, JudgeRequest, Verdict

__all__ = ["SympyJudge", "check_claim", "compare_answers", "extract_final_answer", "precheck", "run_task"]

#: CPU time one check (one claim, or one final-answer comparison) may use, in seconds.
TIMEOUT_S = 3.0
#: Claims checked per step at most; the rest are listed as not checked.
MAX_CLAIMS_PER_STEP = 40
#: What the workers call on each check (``module:function``); they import it, and with it
#: sympy and the parsers, before their first check.
RUNNER = "halt_eval.judges.sympy_math:run_task"
PRELOAD = ("sympy", "math_verify", "latex2sympy2_extended")


class SympyJudge:
    """Judges math steps with sympy and the final answer against the reference answer.

    Args:
        timeout_s: Time limit of each check, in seconds.
        workers: Worker processes; default ``min(2, cpu_count)``.
        memory_bytes: Address-space limit of each worker process, in bytes.
        reference_support: In an unsolved answer, read the steps against the quantities the
            reference solution writes (``_against_reference``): steps on its path with nothing
            to check are correct, steps past the last one on it are not vouched for by their
            arithmetic alone. On by default (measured in ``docs/math.md``).
        locate: Flag the first step of an unsolved answer that leaves the reference's
            quantities as the first error (off by default: its precision is below 0.95).

    Raises:
        RuntimeError: sympy, math-verify or latex2sympy2_extended is missing.
    """

    name = "sympy"
    version = "3"

    def __init__(self, *, timeout_s: float = TIMEOUT_S, workers: int | None = None,
                 memory_bytes: int = MEMORY_LIMIT_BYTES, reference_support: bool = True,
                 locate: bool = False) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        if isinstance(memory_bytes, bool) or not isinstance(memory_bytes, int) or memory_bytes <= 0:
            raise ValueError(f"memory_bytes must be a positive integer, got {memory_bytes!r}")
        try:
            import latex2sympy2_extended  # noqa: F401 - the workers need them
            import math_verify  # noqa: F401
            import sympy  # noqa: F401
        except ImportError as e:
            raise RuntimeError(
                f"the sympy judge needs {e.name}: pip install sympy math-verify latex2sympy2_extended"
            ) from e
        self.timeout_s = timeout_s
        self.memory_bytes = memory_bytes
        self.reference_support = bool(reference_support)
        self.locate = bool(locate)
        self.workers = workers or min(2, os.cpu_count() or 1)
        self._pool: WorkerPool | None = None

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"

    def spec(self) -> dict[str, Any]:
        """Name, version and the options that can change a verdict."""
        return {"name": self.name, "version": self.version,
                "options": {"timeout_s": self.timeout_s, "memory_bytes": self.memory_bytes,
                            "reference_support": self.reference_support, "locate": self.locate}}

    def close(self) -> None:
        """Stop the worker processes (they restart on the next ``judge`` call)."""
        if getattr(self, "_pool", None) is not None:
            self._pool.close()
            self._pool = None

    def __enter__(self) -> SympyJudge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def judge(self, batch: Sequence[JudgeRequest]) -> list[Judgement]:
        """Judge every fragment of every request.

        Args:
            batch: Requests; fragments are steps of a math answer.

        Returns:
            One ``Judgement`` per request: a verdict per fragment, ``solved`` (final answer
            equals ``reference["answer"]``; ``None`` without one) and the final-answer check
            as ``evidence``.
        """
        plans = [_plan(req) for req in batch]
        tasks: dict[tuple, int] = {}
        for plan in plans:
            for key in plan.keys():
                tasks.setdefault(key, len(tasks))
        if self._pool is None:
            self._pool = WorkerPool(self.workers, self.timeout_s, RUNNER, PRELOAD, self.memory_bytes)
        results = self._pool.run(list(tasks))
        by_key = {key: results[i] for key, i in tasks.items()}
        return [plan.decide(by_key, self.tag, self.reference_support, self.locate) for plan in plans]


def run_task(task: tuple) -> dict:
    """One check, inside a worker: ``("claim", lhs, rel, rhs, source, link)`` or
    ``("answer", reference, answer)``."""
    if task[0] == "claim":
        _, lhs, rel, rhs, source, link = task
        return check_claim(Claim(lhs, rel, rhs, source, link))
    if task[0] == "answer":
        return compare_answers(task[1], task[2])
    raise ValueError(f"unknown task kind {task[0]!r}")


# ---------------------------------------------------------------- planning and deciding

class _Plan:
    """The checks one request needs, and how their results become verdicts."""

    def __init__(self, req: JudgeRequest, claims: list[list[Claim]], final_index: int | None,
                 final_answer: str | None, reference: str | None, extraction: str | None = None) -> None:
        self.req = req
        self.extraction = extraction
        self.claims = claims
        self.final_index = final_index
        self.final_answer = final_answer
        self.reference = reference

    def answer_key(self) -> tuple | None:
        if self.final_answer is None or self.reference is None:
            return None
        return ("answer", self.reference, self.final_answer)

    def keys(self) -> list[tuple]:
        keys = [_claim_key(c) for cs in self.claims for c in cs if precheck(c) is None]
        if self.answer_key() is not None:
            keys.append(self.answer_key())
        return keys

    def decide(self, results: Mapping[tuple, dict], tag: str, support: bool = False,
               locate: bool = False) -> Judgement:
        answer = results.get(self.answer_key()) if self.answer_key() else None
        if answer is not None:  # the final step's evidence names what was compared and how found
            answer = {**answer, "extracted": self.final_answer, "extraction": self.extraction}
        solved, evidence = self._final(answer)
        checked = [[(c, results.get(_claim_key(c)) or {"status": "unchecked", "why": precheck(c)}) for c in cs]
                   for cs in self.claims]
        any_false = any(r["status"] == "false" for step in checked for _, r in step)
        verdicts = []
        for i, step in enumerate(checked):
            final = i == self.final_index
            text = self.req.fragments[i].text
            verdicts.append(_step_verdict(tag, text, step, final, answer, self.reference, solved, any_false))
        ref = self.req.response.reference or {}
        solution = ref.get("solution") if isinstance(ref.get("solution"), str) else None
        if solved is False and solution and (support or locate):
            verdicts = _against_reference(verdicts, [f.text for f in self.req.fragments], self.req.response.prompt,
                                          solution + "\n" + (self.reference or ""), tag, support, locate)
        return Judgement(tuple(verdicts), solved=solved, evidence=evidence)

    def _final(self, answer: dict | None) -> tuple[bool | None, dict[str, Any]]:
        evidence: dict[str, Any] = {"final_answer": self.final_answer, "extraction": self.extraction,
                                    "reference_answer": self.reference, "final_step": self.final_index}
        if self.reference is None:
            evidence["status"] = "missing_reference"
            return None, evidence
        if self.final_answer is None:
            evidence["status"] = "no_final_answer"
            return False, evidence
        evidence.update(answer or {})
        status = evidence.get("status")
        return {"equal": True, "not_equal": False}.get(status), evidence


def _against_reference(verdicts: list[Verdict], texts: list[str], prompt: str, reference: str, tag: str,
                       support: bool, locate: bool) -> list[Verdict]:
    """Steps of an unsolved answer read against the reference solution's quantities.

    The answer ends wrong, so its first error lies at or before the judge's first
    ``incorrect`` step (the last step when nothing is flagged); a step before it is correct
    only if no error precedes it. What the reference solution tells about where that error is:

    A step's *new* quantities are the numbers it writes that neither the problem nor an
    earlier step wrote (integers up to ``SMALL_QUANTITY`` left out: they cannot tell paths
    apart). A step whose new quantities are all ones the reference also writes *follows* it;
    one whose new quantities are all foreign *diverges*; one with both has left the path while
    repeating a number of it, and does neither (on the dev halves such a step comes before the
    first error in 22-35% of cases, a following one in 68%). Up to the last following step the
    answer is still on the reference's path; after it, nothing vouches for the reasoning.

    With ``support``:

    * up to the last following step, a step left ``no_checkable_claim`` is ``correct``
      (``reference_supported``);
    * the opening step, when it states nothing to check and writes no new quantity (it
      restates the problem or names a method), is ``correct`` (``opening_step``);
    * after the last following step, a step the judge found ``correct`` only because its
      claims hold is ``unverifiable`` (``unsupported_after_reference``): its arithmetic
      holds, but the error may already lie before it;
    With ``locate``:

    * the first diverging step after the last following one becomes ``incorrect``
      (``diverges_from_reference``), the candidate first error (a path that rejoins the
      reference later was only a different path).
    """
    ref_q = with_percent_forms(quantities(reference))
    seen = with_percent_forms(quantities(prompt))
    status: list[tuple[str | None, set]] = []
    for text in texts:
        q = quantities(text)
        new = telling(q - seen)
        status.append((None if not new else "follows" if new <= ref_q else "mixed" if new & ref_q else "diverges",
                       new))
        seen |= q
    stop = next((i for i, v in enumerate(verdicts) if v.label == "incorrect"), len(verdicts))
    last = max((i for i in range(stop) if status[i][0] == "follows"), default=-1)
    cand = next((i for i in range(last + 1, stop) if status[i][0] == "diverges"), None)
    out = list(verdicts)
    for i in range(stop if support else 0):
        v = out[i]
        if v.label == "unverifiable" and v.reason == "no_checkable_claim" and i <= last:
            out[i] = Verdict("correct", tag, "reference_supported",
                             "nothing to check; the answer follows the reference solution up to here",
                             {**dict(v.evidence), "followed_until": last,
                              "shared_quantities": sorted(str(x) for x in status[last][1] & ref_q)[:10]})
        elif v.label == "unverifiable" and v.reason == "no_checkable_claim" and i == 0 and status[0][0] is None:
            out[i] = Verdict("correct", tag, "opening_step",
                             "nothing to check and no new quantity: the opening step restates the problem "
                             "or names a method", dict(v.evidence))
        elif v.label == "correct" and v.reason == "claims_hold" and i > last:
            out[i] = Verdict("unverifiable", tag, "unsupported_after_reference",
                             "its claims hold, but the answer ends wrong and no step from here on stays on the "
                             "reference solution's path (new quantities all the reference's): the error may "
                             "lie before it",
                             {**dict(v.evidence), "own_reason": v.reason, "followed_until": last})
    if locate and cand is not None:
        v = out[cand]
        out[cand] = Verdict("incorrect", tag, "diverges_from_reference",
                            "the answer is wrong and this step is the first to derive only quantities the "
                            "reference solution never reaches",
                            {**dict(v.evidence), "own_reason": v.evidence.get("own_reason", v.reason),
                             "new_quantities": sorted(str(x) for x in status[cand][1])[:10]})
    return out


def _claim_key(c: Claim) -> tuple:
    return ("claim", c.lhs, c.rel, c.rhs, c.source, c.link)


def _plan(req: JudgeRequest) -> _Plan:
    claims = []
    for frag in req.fragments:
        claims.append(find_claims(frag.text)[:MAX_CLAIMS_PER_STEP])
    # The last box in any step wins over a later "the answer is ..." (often prose); with
    # neither, the last step with a number or math gives it (``math_answer.EXTRACTIONS``),
    # unless the answer abstained: the steps before the marker state no final answer.
    found = locate_final_answer([f.text for f in req.fragments], unanchored=req.marker_offset is None)
    final_index = req.fragments[found.index].index if found else None
    ref = req.response.reference.get("answer") if req.response.reference else None
    reference = str(ref).strip() if ref is not None and str(ref).strip() else None
    return _Plan(req, claims, final_index, found.text if found else None, reference,
                 found.extraction if found else None)


#: Why a claim the judge tried could not be decided (``math_claims.check_claim``): such a
#: claim, when it names no unknown (so it should have been computable), never makes its step
#: correct. A symbolic claim no reader understands (``\\varphi^2 = \\varphi + 1``) is left
#: like any claim the judge does not check.
UNREADABLE = frozenset({"unreadable", "not_a_number", "too_long"})

# A step that calls its own claim false is testing a candidate, not asserting it.
_DISCLAIMS = re.compile(r"\bfalse\b|contradiction|not true|(?:does not|doesn't|not) hold|not satisfied|"
                        r"\binvalid\b|impossible|not (?:a )?(?:valid|possible|correct)", re.IGNORECASE)


def _step_verdict(tag: str, text: str, step: list[tuple[Claim, dict]], final: bool, answer: dict | None,
                  reference: str | None, solved: bool | None, any_false: bool) -> Verdict:
    evidence: dict[str, Any] = {"claims": [{"claim": c.as_text(), "source": c.source, **r} for c, r in step]}
    failed = [(c, r) for c, r in step if r["status"] == "false"]
    if failed and _DISCLAIMS.search(text):
        evidence["disclaimed"] = True  # "2 + 1 = 1 (False)": the step itself rejects the claim
        failed = []
    if failed:
        c, r = failed[0]
        return Verdict("incorrect", tag, "claim_false",
                       f"{c.as_text()} does not hold ({r.get('lhs_value')} vs {r.get('rhs_value')})", evidence)
    if final:
        evidence["final_answer"] = answer
        if reference is None:
            if not any(r["status"] == "true" for _, r in step):
                return Verdict("unverifiable", tag, "missing_reference",
                               "no reference answer to check the final answer against", evidence)
        elif solved is True:
            return Verdict("correct", tag, "final_answer_equal", "the final answer equals the reference answer",
                           evidence)
        elif solved is False:
            return Verdict("incorrect", tag, "final_answer_wrong",
                           "the final answer differs from the reference answer", evidence)
        elif answer is not None and answer.get("status") == "timeout":
            return Verdict("unverifiable", tag, "timeout", "comparing the final answer timed out", evidence)
        elif answer is not None and answer.get("status") == "memory_limit":
            return Verdict("unverifiable", tag, "memory_limit",
                           "comparing the final answer passed the memory limit", evidence)
        elif answer is not None and answer.get("status") == "unparsable":
            return Verdict("unverifiable", tag, "unparsable_answer",
                           "the final answer or the reference could not be parsed", evidence)
    # A claim the judge tried and could not read or decide never lets the step pass, neither
    # beside claims that hold nor through the no-checkable-claim rule.
    if any(r["status"] == "timeout" for _, r in step):
        return Verdict("unverifiable", tag, "timeout", "a check ran past the time limit", evidence)
    if any(r["status"] == "memory_limit" for _, r in step):
        return Verdict("unverifiable", tag, "memory_limit", "a check passed the memory limit", evidence)
    if any(r["status"] == "error" for _, r in step):
        return Verdict("unverifiable", tag, "worker_error", "a check failed to run", evidence)
    unread = [c for c, r in step
              if r["status"] == "unchecked" and r.get("why") in UNREADABLE and names_no_unknown(c)]
    if unread:
        return Verdict("unverifiable", tag, "unreadable_claim",
                       f"{unread[0].as_text()} could not be read or evaluated", evidence)
    if any(r["status"] == "true" for _, r in step):
        return Verdict("correct", tag, "claims_hold", "every checked claim holds", evidence)
    if solved is True and not any_false:
        return Verdict("correct", tag, "no_claim_solved",
                       "no checkable claim; the answer reaches the reference answer with no failed check",
                       evidence)
    return Verdict("unverifiable", tag, "no_checkable_claim", "the step states nothing sympy can check", evidence)
