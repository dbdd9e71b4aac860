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
  is ...") is also checked against ``reference["answer"]``.

Reason codes (``Verdict.reason``):

* ``claims_hold`` (correct): at least one claim was checked and none failed.
* ``final_answer_equal`` (correct): the final answer equals the reference answer.
* ``no_claim_solved`` (correct): nothing to check, but the answer reaches the reference
  answer with no failed check anywhere (the no-checkable-claim rule).
* ``claim_false`` (incorrect): a claim does not hold; the evidence names it and both values.
* ``final_answer_wrong`` (incorrect): the final answer differs from the reference answer.
* ``no_checkable_claim`` (unverifiable): nothing to check, and the answer is not known to be
  solved with no failed check. The hook for an LLM judge (``fallback``).
* ``missing_reference`` (unverifiable): the final answer has no reference answer to meet.
* ``unparsable_answer`` (unverifiable): the final answer or the reference could not be parsed.
* ``timeout`` (unverifiable): a sympy call ran past ``timeout_s``; its worker was killed.
* ``worker_error`` (unverifiable): a check raised or its worker died.

Every sympy call runs in a worker process (``_WorkerPool``): checks are sent in batches, each
may use ``timeout_s`` of CPU (``WALL_FACTOR`` times that of wall clock), and a worker that
overruns is killed and replaced.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from fractions import Fraction
from functools import lru_cache
from multiprocessing.connection import Connection, wait
from typing import Any

from halt_eval.judges.math_steps import Claim, find_claims
from halt_eval.types import Judge, Judgement, JudgeRequest, Verdict

log = logging.getLogger(__name__)

#: CPU time one check (one claim, or one final-answer comparison) may use, in seconds.
TIMEOUT_S = 3.0
#: Claims checked per step at most; the rest are listed as not checked.
MAX_CLAIMS_PER_STEP = 40
#: Longest operand handed to sympy, in characters; longer ones are not checked.
MAX_OPERAND_CHARS = 400
#: Largest exponent the arithmetic reader evaluates exactly (2**10000 has ~3000 digits).
MAX_EXPONENT = 10_000
#: Significant digits used for numeric comparison of exact values.
EVAL_DIGITS = 50
#: Significant digits from which a decimal input is taken to be rounded (2.8284, not 1.5).
ROUNDED_INPUT_DIGITS = 4
#: Relative tolerance for "approximately" (``\\approx``, ``≈``) claims.
APPROX_REL_TOL = 0.01
#: Checks sent to a worker in one message: large enough to amortize the pipe, small enough
#: that a killed worker loses little.
CHUNK = 64
# Workers are forked from a forkserver that has sympy and the parsers loaded, so replacing a
# killed worker costs milliseconds and no thread of the caller is ever forked. (Tests switch
# to "fork" so that a patched check reaches the worker.)
_START_METHOD = "forkserver"

#: A check is also stopped after this many times ``timeout_s`` of wall clock (a check that
#: sleeps or waits uses no CPU). On a shared, loaded machine the CPU limit keeps slow but
#: progressing checks from being cut short.
WALL_FACTOR = 10.0
#: Longest time a new worker may take to load sympy and the parsers before its first check.
STARTUP_TIMEOUT_S = 120.0
_READY = "ready"

#: Reasons for which a ``fallback`` judge is asked instead.
FALLBACK_REASONS = frozenset({"no_checkable_claim", "timeout", "unparsable_answer", "worker_error"})


class SympyJudge:
    """Judges math steps with sympy and the final answer against the reference answer.

    Args:
        timeout_s: Time limit of each check, in seconds.
        workers: Worker processes; default ``min(2, cpu_count)``.
        fallback: A judge asked about the steps left ``unverifiable`` for a reason in
            ``FALLBACK_REASONS`` (an LLM judge); its verdicts replace ours for those steps.

    Raises:
        RuntimeError: sympy, math-verify or latex2sympy2_extended is missing.
    """

    name = "sympy"
    version = "1"

    def __init__(self, *, timeout_s: float = TIMEOUT_S, workers: int | None = None,
                 fallback: Judge | None = None) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        try:
            import latex2sympy2_extended  # noqa: F401
            import math_verify  # noqa: F401
            import sympy  # noqa: F401
        except ImportError as e:
            raise RuntimeError(
                f"the sympy judge needs {e.name}: pip install sympy math-verify latex2sympy2_extended"
            ) from e
        self.timeout_s = timeout_s
        self.workers = workers or min(2, os.cpu_count() or 1)
        self.fallback = fallback
        self._pool: _WorkerPool | None = None

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"

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
            self._pool = _WorkerPool(self.workers, self.timeout_s)
        results = self._pool.run(list(tasks))
        by_key = {key: results[i] for key, i in tasks.items()}
        judgements = [plan.decide(by_key, self.tag) for plan in plans]
        if self.fallback is not None:
            judgements = self._ask_fallback(batch, judgements)
        return judgements

    def _ask_fallback(self, batch: Sequence[JudgeRequest], judgements: list[Judgement]) -> list[Judgement]:
        asks = []
        for req, j in zip(batch, judgements):
            idx = [k for k, v in enumerate(j.verdicts) if v.label == "unverifiable" and v.reason in FALLBACK_REASONS]
            if idx:
                asks.append((req, j, idx))
        if not asks:
            return judgements
        answers = self.fallback.judge([JudgeRequest(req.response, tuple(req.fragments[k] for k in idx))
                                       for req, _, idx in asks])
        replaced = {id(j): (idx, a) for (_, j, idx), a in zip(asks, answers)}
        out = []
        for j in judgements:
            if id(j) not in replaced:
                out.append(j)
                continue
            idx, answer = replaced[id(j)]
            verdicts = list(j.verdicts)
            for k, v in zip(idx, answer.verdicts):
                verdicts[k] = v
            out.append(replace(j, verdicts=tuple(verdicts)))
        return out


# ---------------------------------------------------------------- planning and deciding

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_HASHES = re.compile(r"^\s*####\s*(?P<a>.+?)\s*$", re.MULTILINE)
_ANSWER_IS = re.compile(
    r"(?:final answer|the answer)\s*(?:is|:)\s*:?\s*(?P<a>\$[^$]+\$|\\\(.+?\\\)|[^\n]+?)(?:\.\s|\.?\s*$|\n)",
    re.IGNORECASE,
)


def extract_final_answer(text: str) -> str | None:
    """The final answer stated in ``text``: the last ``\\boxed{}``, else the last ``#### N``
    line, else the last "the answer is ..."; ``None`` if there is none."""
    found = _final_answer(text)
    return found[1] if found else None


def _final_answer(text: str) -> tuple[int, str] | None:
    """``(rank, answer)``: rank 0 for a box, 1 for ``####``, 2 for "the answer is"."""
    boxes = list(_BOXED.finditer(text))
    if boxes:
        start = boxes[-1].end()
        depth = 1
        for k in range(start, len(text)):
            depth += {"{": 1, "}": -1}.get(text[k], 0)
            if depth == 0:
                return (0, text[start:k].strip()) if text[start:k].strip() else None
        return (0, text[start:].strip()) if text[start:].strip() else None
    hashes = list(_HASHES.finditer(text))
    if hashes:
        return 1, hashes[-1].group("a")
    said = list(_ANSWER_IS.finditer(text))
    if said:
        answer = said[-1].group("a").strip()
        # "Final Answer: The final answer is $x$." says it twice; take the inner one.
        inner = _ANSWER_IS.search(answer + "\n")
        while inner is not None:
            answer = inner.group("a").strip()
            inner = _ANSWER_IS.search(answer + "\n")
        for a, b in (("$", "$"), ("\\(", "\\)")):
            if answer.startswith(a) and answer.endswith(b) and len(answer) > len(a) + len(b):
                answer = answer[len(a):-len(b)].strip()
        return (2, answer) if answer else None
    return None


class _Plan:
    """The checks one request needs, and how their results become verdicts."""

    def __init__(self, req: JudgeRequest, claims: list[list[Claim]], final_index: int | None,
                 final_answer: str | None, reference: str | None) -> None:
        self.req = req
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

    def decide(self, results: Mapping[tuple, dict], tag: str) -> Judgement:
        answer = results.get(self.answer_key()) if self.answer_key() else None
        solved, evidence = self._final(answer)
        checked = [[(c, results.get(_claim_key(c)) or {"status": "unchecked", "why": precheck(c)}) for c in cs]
                   for cs in self.claims]
        any_false = any(r["status"] == "false" for step in checked for _, r in step)
        verdicts = []
        for i, step in enumerate(checked):
            final = i == self.final_index
            text = self.req.fragments[i].text
            verdicts.append(_step_verdict(tag, text, step, final, answer, self.reference, solved, any_false))
        return Judgement(tuple(verdicts), solved=solved, evidence=evidence)

    def _final(self, answer: dict | None) -> tuple[bool | None, dict[str, Any]]:
        evidence: dict[str, Any] = {"final_answer": self.final_answer, "reference_answer": self.reference,
                                    "final_step": self.final_index}
        if self.reference is None:
            evidence["status"] = "missing_reference"
            return None, evidence
        if self.final_answer is None:
            evidence["status"] = "no_final_answer"
            return False, evidence
        evidence.update(answer or {})
        status = evidence.get("status")
        return {"equal": True, "not_equal": False}.get(status), evidence


def _claim_key(c: Claim) -> tuple:
    return ("claim", c.lhs, c.rel, c.rhs, c.source, c.link)


def _plan(req: JudgeRequest) -> _Plan:
    claims = []
    for frag in req.fragments:
        claims.append(find_claims(frag.text)[:MAX_CLAIMS_PER_STEP])
    # The last box in any step wins over a later "the answer is ..." (often prose).
    found = [(f.index, _final_answer(f.text)) for f in req.fragments]
    found = [(rank, -index, index, answer) for index, got in found if got for rank, answer in [got]]
    final_index, final_answer = (min(found)[2], min(found)[3]) if found else (None, None)
    ref = req.response.reference.get("answer") if req.response.reference else None
    reference = str(ref).strip() if ref is not None and str(ref).strip() else None
    return _Plan(req, claims, final_index, final_answer, reference)


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
        elif answer is not None and answer.get("status") == "unparsable":
            return Verdict("unverifiable", tag, "unparsable_answer",
                           "the final answer or the reference could not be parsed", evidence)
    if any(r["status"] == "true" for _, r in step):
        return Verdict("correct", tag, "claims_hold", "every checked claim holds", evidence)
    if any(r["status"] == "timeout" for _, r in step):
        return Verdict("unverifiable", tag, "timeout", "a check ran past the time limit", evidence)
    if any(r["status"] == "error" for _, r in step):
        return Verdict("unverifiable", tag, "worker_error", "a check failed to run", evidence)
    if solved is True and not any_false:
        return Verdict("correct", tag, "no_claim_solved",
                       "no checkable claim; the answer reaches the reference answer with no failed check",
                       evidence)
    return Verdict("unverifiable", tag, "no_checkable_claim", "the step states nothing sympy can check", evidence)


# ---------------------------------------------------------------- the worker pool

class _Worker:
    def __init__(self, ctx: Any) -> None:
        parent, child = ctx.Pipe()
        self.conn: Connection = parent
        self.proc = ctx.Process(target=_serve, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.queue: deque[int] = deque()
        self.ready = False
        self.deadline = math.inf
        self.started = math.inf  # wall clock when the current check began
        self.cpu_mark = 0.0  # the worker's CPU seconds when the current check began

    def begin_check(self, limit_s: float) -> None:
        """Start the clock of the next check."""
        self.started = time.monotonic()
        self.cpu_mark = _cpu_seconds(self.proc.pid)
        self.deadline = self.started + limit_s

    def overran(self, limit_s: float) -> bool:
        """Whether the current check used ``limit_s`` of CPU, or ``WALL_FACTOR`` times that of
        wall clock; if neither, push the deadline to when it could next have."""
        used = _cpu_seconds(self.proc.pid) - self.cpu_mark
        now = time.monotonic()
        if used >= limit_s or now - self.started >= WALL_FACTOR * limit_s:
            return True
        self.deadline = now + max(0.05, limit_s - used)
        return False

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join()
        self.conn.close()


class _WorkerPool:
    """Worker processes that run checks in batches, each check under a time limit.

    A worker that overruns the limit on one check (``timeout_s`` of CPU time, or
    ``WALL_FACTOR * timeout_s`` of wall clock) is killed and replaced; the check gets a
    ``timeout`` result and the rest of its batch goes to the replacement. A worker's clock
    starts when it reports ready (imports done), not when it is started.
    """

    def __init__(self, n: int, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.ctx = multiprocessing.get_context(_START_METHOD)
        if _START_METHOD == "forkserver":
            self.ctx.set_forkserver_preload([__name__])
        self.workers = [_Worker(self.ctx) for _ in range(n)]

    def close(self) -> None:
        for w in self.workers:
            if w.proc.is_alive():
                try:
                    w.conn.send(None)
                except OSError:
                    pass
            w.proc.join(timeout=1)
            if w.proc.is_alive():
                w.kill()
        self.workers = []

    def run(self, tasks: list[tuple]) -> list[dict]:
        """Run ``tasks`` (``(kind, *payload)``), returning one result dict per task, in order."""
        results: list[dict | None] = [None] * len(tasks)
        todo = deque(range(len(tasks)))
        while todo or any(w.queue for w in self.workers):
            for k, w in enumerate(self.workers):
                if not w.queue and todo:
                    self._send(k, [todo.popleft() for _ in range(min(CHUNK, len(todo)))], tasks)
            busy = [w for w in self.workers if w.queue]
            now = time.monotonic()
            ready = wait([w.conn for w in busy], timeout=max(0.0, min(w.deadline for w in busy) - now))
            for k, w in enumerate(self.workers):
                if not w.queue:
                    continue
                if w.conn in ready:
                    try:
                        message = w.conn.recv()
                    except (EOFError, OSError):
                        self._replace(k, tasks, results, {"status": "error", "error": "worker died"})
                        continue
                    if message == _READY:
                        w.ready = True
                        w.begin_check(self.timeout_s)
                        continue
                    idx, result = message
                    results[idx] = result
                    w.queue.popleft()
                    w.begin_check(self.timeout_s)
                elif time.monotonic() >= w.deadline and (not w.ready or w.overran(self.timeout_s)):
                    self._replace(k, tasks, results, {"status": "timeout",
                                                      "error": f"no result within {self.timeout_s} s"})
        return [r if r is not None else {"status": "error", "error": "lost"} for r in results]

    def _send(self, k: int, idx: list[int], tasks: list[tuple]) -> None:
        w = self.workers[k]
        w.queue.extend(idx)
        if w.ready:
            w.begin_check(self.timeout_s)
        else:
            w.deadline = time.monotonic() + STARTUP_TIMEOUT_S
        w.conn.send([(i, tasks[i]) for i in idx])

    def _replace(self, k: int, tasks: list[tuple], results: list, result: dict) -> None:
        old = self.workers[k]
        old.kill()
        results[old.queue.popleft()] = result
        self.workers[k] = _Worker(self.ctx)
        if old.queue:
            self._send(k, list(old.queue), tasks)


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc; 0 where there is none,
    which leaves only the wall-clock limit."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _serve(conn: Connection) -> None:
    """Worker loop: receive batches of checks, send back one result per check."""
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    import latex2sympy2_extended  # noqa: F401 - loaded before the first check's clock starts
    import math_verify  # noqa: F401
    import sympy  # noqa: F401

    conn.send(_READY)
    while True:
        try:
            batch = conn.recv()
        except EOFError:
            return
        if batch is None:
            return
        for idx, task in batch:
            try:
                result = _run_task(task)
            except Exception as e:  # noqa: BLE001 - the reason goes into the verdict
                result = {"status": "error", "error": f"{type(e).__name__}: {e}"[:300]}
            conn.send((idx, result))


def _run_task(task: tuple) -> dict:
    if task[0] == "claim":
        _, lhs, rel, rhs, source, link = task
        return check_claim(Claim(lhs, rel, rhs, source, link))
    if task[0] == "answer":
        return compare_answers(task[1], task[2])
    raise ValueError(f"unknown task kind {task[0]!r}")


# ---------------------------------------------------------------- checking one claim

class _Unreadable(ValueError):
    """An operand one reader cannot read (another reader may)."""


def check_claim(claim: Claim) -> dict:
    """Check one claim. Runs inside a worker (it may call sympy without a time limit).

    Returns:
        ``{"status": "true" | "false" | "unchecked", ...}`` with the values compared
        (``lhs_value``, ``rhs_value``, as strings), the ``reading`` that decided and, when
        unchecked, a ``why``.
    """
    if len(claim.lhs) > MAX_OPERAND_CHARS or len(claim.rhs) > MAX_OPERAND_CHARS:
        return {"status": "unchecked", "why": "too_long"}
    why = precheck(claim)
    if why is not None:
        return {"status": "unchecked", "why": why}
    outcomes: list[dict] = []
    readings = (_latex_readings(claim, lambda: any(o["status"] == "false" for o in outcomes))
                if claim.source == "latex" else _text_readings(claim))
    seen = set()
    decimals = _decimals(claim.lhs + " " + claim.rhs)
    for name, lhs, rhs in readings:
        if (str(lhs), str(rhs)) in seen:
            continue
        seen.add((str(lhs), str(rhs)))
        if name.startswith("identity"):
            outcome = _identity_outcome(lhs, rhs)
        else:
            outcome = _compare(lhs, rhs, claim.rel, decimals, _input_rounding(claim.lhs))
        outcome["reading"] = name
        if outcome["status"] == "true":
            return outcome
        outcomes.append(outcome)
        if name.startswith("identity"):
            break  # a failed identity is never flagged: another reader could only pass it
    decided = [o for o in outcomes if o["status"] == "false"]
    if decided and len(decided) == len(outcomes):
        return decided[0]
    if outcomes:
        return next(o for o in outcomes if o["status"] != "false")
    return {"status": "unchecked", "why": "unreadable"}


def precheck(claim: Claim) -> str | None:
    """Why ``claim`` cannot be checked, decided without sympy; ``None`` if it should be checked.

    * ``no_computation``: a plain-text first link with no operator on its left ("2 hours = 120
      minutes" restates with units).
    * ``base_notation``: a number written in another base (``2012_3``).
    * ``unit_conversion``: the two sides carry different units (``4 \\text{ hours} = 4 \\times 60``,
      ``13 \\text{ remainder } 4``).
    * ``no_computation``: neither side computes anything (``0 = -44`` concludes a contradiction).
    * ``notation``: brackets (``[22.8]`` is a floor) or ellipses.
    * ``ambiguous_function``: a function applied without parentheses next to a product or
      quotient (``\\log_{10} 8 / \\log_{10} 2``).
    * ``symbolic``: a LaTeX link with unknowns that is the first of its chain (a definition or
      an equation to solve), or whose other side has none (a substitution).
    """
    if _BASE_NOTATION.search(claim.lhs) or _BASE_NOTATION.search(claim.rhs):
        return "base_notation"
    if claim.source != "latex":
        if claim.source == "text" and claim.link == 0 and not re.search(r"[-+*/^]", claim.lhs.lstrip("-")):
            return "no_computation"
        return None
    if _units(claim.lhs) != _units(claim.rhs):
        return "unit_conversion"
    if not any(_OPERATION.search(side.strip().lstrip("-+")) for side in (claim.lhs, claim.rhs)):
        return "no_computation"
    if "[" in claim.lhs + claim.rhs or "\\cdots" in claim.lhs + claim.rhs or "\\ldots" in claim.lhs + claim.rhs:
        return "notation"
    if any(_BARE_FUNCTION.search(side) and _PRODUCT.search(side) for side in (claim.lhs, claim.rhs)):
        return "ambiguous_function"
    left, right = _has_unknowns(claim.lhs), _has_unknowns(claim.rhs)
    if (left or right) and (claim.link == 0 or left != right or claim.rel != "="):
        return "symbolic"
    return None


_OPERATION = re.compile(r"[-+*/^!]|\\(?:frac|dfrac|tfrac|sqrt|times|cdot|div|binom|sin|cos|tan|log|ln|pi|lceil|lfloor)"
                        r"|\d\s*\(")
_BARE_FUNCTION = re.compile(r"\\(?:sin|cos|tan|sec|csc|cot|log|ln)(?:_\{?[^{}\s]*\}?)?\s*[^\s({\\^]")
_PRODUCT = re.compile(r"[/*]|\\(?:cdot|times|div|frac)")


def _units(latex: str) -> list[str]:
    """The unit words written in ``\\text{}`` after numbers, in order."""
    return [re.sub(r"[^a-z]", "", m.group(1).lower()) for m in _UNIT_TEXT_WORDS.finditer(latex)]


_UNIT_TEXT_WORDS = re.compile(r"(?<=[\d}%])\s*\\(?:text|mbox|mathrm)\s*\{([^{}]*)\}")
_UNIT_TEXT = re.compile(r"(?<=[\d}%])\s*\\(?:text|mbox|mathrm)\s*\{[^{}]*\}")
_BASE_NOTATION = re.compile(r"[\d)}]\s*_")
_COMMAND = re.compile(r"\\[a-zA-Z]+")


def _has_unknowns(latex: str) -> bool:
    """Whether ``latex`` names an unknown: a letter outside commands, or a ``\\text{}`` that is
    not a unit after a number ("\\text{Chenny's Age} - 4" names a quantity)."""
    s = _UNIT_TEXT.sub(" ", latex)
    if _LATEX_TEXT.search(s):
        return True
    s = re.sub(r"\\operatorname\s*\{[^{}]*\}", " ", s)
    return re.search(r"[a-zA-Z]", _COMMAND.sub(" ", s)) is not None


def _input_rounding(text: str) -> float:
    """Relative error a computation may carry from rounded decimal inputs: a decimal with four
    or more significant digits (2.8284) looks rounded; fewer (1.5) are taken as exact."""
    sig = [len(m.lstrip("0.").replace(".", "")) for m in re.findall(r"\d+\.\d+", text)]
    sig = [n for n in sig if n >= ROUNDED_INPUT_DIGITS]
    return 2 * 10.0 ** -(min(sig) - 1) if sig else 0.0


def _decimals(text: str) -> int:
    return max((len(m) for m in re.findall(r"\d\.(\d+)", text)), default=0)


def _compare(lhs: Any, rhs: Any, rel: str, decimals: int, input_rel: float = 0.0) -> dict:
    import sympy

    if lhs is None or rhs is None:
        return {"status": "unchecked", "why": "unreadable"}
    if isinstance(lhs, Fraction) and isinstance(rhs, Fraction):
        lv, rv = lhs, rhs
        shown = {"lhs_value": str(lhs), "rhs_value": str(rhs)}
        diff = abs(float(lv - rv))
        exact_equal = lv == rv
        lf, rf = float(lv), float(rv)
    else:
        lv, rv = (sympy.Rational(x.numerator, x.denominator) if isinstance(x, Fraction) else sympy.sympify(x)
                  for x in (lhs, rhs))
        if lv.free_symbols or rv.free_symbols or _has_function(lv) or _has_function(rv):
            return {"status": "unchecked", "why": "symbolic"}
        try:
            ln, rn = lv.evalf(EVAL_DIGITS), rv.evalf(EVAL_DIGITS)
        except (AttributeError, TypeError, ValueError) as e:
            return {"status": "unchecked", "why": "not_a_number", "error": f"{type(e).__name__}: {e}"[:200]}
        shown = {"lhs_value": _short(ln), "rhs_value": _short(rn)}
        if not (ln.is_number and rn.is_number) or ln.has(sympy.zoo, sympy.nan) or rn.has(sympy.zoo, sympy.nan):
            return {"status": "unchecked", "why": "not_a_number", **shown}
        if not (ln.is_real and rn.is_real):
            if rel != "=":
                return {"status": "unchecked", "why": "complex_order", **shown}
            diff = float(abs(ln - rn))
            scale = max(1.0, float(abs(rn)))
            return {"status": "true" if diff <= 1e-30 * scale else "false", **shown}
        lf, rf = float(ln), float(rn)
        diff = abs(float(ln - rn))
        exact_equal = diff <= 1e-30 * max(1.0, abs(rf))
    if rel in ("=", "~"):
        tol = 10.0 ** -decimals if decimals else 0.0
        if rel == "~":
            tol = max(tol, APPROX_REL_TOL * max(abs(lf), abs(rf)), 0.0 if decimals else 1.0)
        if exact_equal or diff <= tol * (1 + 1e-9):
            return {"status": "true", **shown}
        if input_rel and diff <= input_rel * max(abs(lf), abs(rf)):
            return {"status": "true", "why": "rounded_inputs", **shown}
        rounded = (not decimals and diff < 1 and (float(lf).is_integer() != float(rf).is_integer()))
        if rounded:
            return {"status": "true", "why": "rounded", **shown}
        return {"status": "false", **shown}
    holds = {"<": lf < rf, ">": lf > rf, "<=": lf <= rf or exact_equal, ">=": lf >= rf or exact_equal,
             "!=": not exact_equal}[rel]
    return {"status": "true" if holds else "false", **shown}


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _has_function(expr: Any) -> bool:
    from sympy.core.function import AppliedUndef

    return bool(expr.atoms(AppliedUndef))


# Plain arithmetic: numbers, + - * / ^, parentheses and %.
_ARITH_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?|\.\d+)|(\*\*|[-+*/^()%]))")


def _text_readings(claim: Claim) -> list[tuple[str, Any, Any]]:
    """Readings of a plain-text claim: precedence × percent, and left to right."""
    out = []
    for percent in (True, False):
        for ltr in (False, True):
            try:
                lhs = _arith(claim.lhs, percent=percent, left_to_right=ltr)
                rhs = _arith(claim.rhs, percent=percent, left_to_right=ltr)
            except (_Unreadable, ZeroDivisionError, OverflowError):
                continue
            name = ("left_to_right" if ltr else "precedence") + ("" if percent else ",percent_as_number")
            out.append((name, lhs, rhs))
    return out


def _arith(text: str, *, percent: bool, left_to_right: bool) -> Fraction:
    """Evaluate plain arithmetic exactly; implicit products like ``2(3)`` are read as products."""
    tokens: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _ARITH_TOKEN.match(text, pos)
        if not m:
            raise _Unreadable(text)
        tok = m.group(1) or m.group(2)
        if tok == "**":
            tok = "^"
        if tokens and (tok == "(" or m.group(1)) and (tokens[-1] == ")" or _is_num(tokens[-1]) or tokens[-1] == "%"):
            tokens.append("*")
        tokens.append(tok)
        pos = m.end()
    if not tokens:
        raise _Unreadable(text)
    value, k = _expr(tokens, 0, percent, left_to_right)
    if k != len(tokens):
        raise _Unreadable(text)
    return value


def _is_num(tok: str) -> bool:
    return tok[0].isdigit() or tok[0] == "."


def _expr(tokens: list[str], k: int, percent: bool, ltr: bool) -> tuple[Fraction, int]:
    if ltr:
        value, k = _unary(tokens, k, percent, ltr)
        while k < len(tokens) and tokens[k] in "+-*/":
            op = tokens[k]
            rhs, k = _unary(tokens, k + 1, percent, ltr)
            value = _apply(op, value, rhs)
        return value, k
    value, k = _term(tokens, k, percent, ltr)
    while k < len(tokens) and tokens[k] in "+-":
        op = tokens[k]
        rhs, k = _term(tokens, k + 1, percent, ltr)
        value = _apply(op, value, rhs)
    return value, k


def _term(tokens, k, percent, ltr):
    value, k = _unary(tokens, k, percent, ltr)
    while k < len(tokens) and tokens[k] in "*/":
        op = tokens[k]
        rhs, k = _unary(tokens, k + 1, percent, ltr)
        value = _apply(op, value, rhs)
    return value, k


def _unary(tokens, k, percent, ltr):
    if k < len(tokens) and tokens[k] in "+-":
        sign = tokens[k]
        value, k = _unary(tokens, k + 1, percent, ltr)
        return (-value if sign == "-" else value), k
    return _power(tokens, k, percent, ltr)


def _power(tokens, k, percent, ltr):
    base, k = _atom(tokens, k, percent, ltr)
    if k < len(tokens) and tokens[k] == "^":
        exp, k = _unary(tokens, k + 1, percent, ltr)
        if exp.denominator != 1 or abs(exp) > MAX_EXPONENT:
            raise _Unreadable("exponent")
        base = base ** int(exp)
    return base, k


def _atom(tokens, k, percent, ltr):
    if k >= len(tokens):
        raise _Unreadable("end")
    tok = tokens[k]
    if tok == "(":
        value, k = _expr(tokens, k + 1, percent, ltr)
        if k >= len(tokens) or tokens[k] != ")":
            raise _Unreadable("paren")
        k += 1
    elif _is_num(tok):
        value = Fraction(tok)
        k += 1
    else:
        raise _Unreadable(tok)
    if k < len(tokens) and tokens[k] == "%":
        if percent:
            value /= 100
        k += 1
    return value, k


def _apply(op: str, a: Fraction, b: Fraction) -> Fraction:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a / b


_LATEX_SPACING = re.compile(r"\\left|\\right|\\boxed|\\[!,;:> ]|\\displaystyle|\\cdotp")
_LATEX_TEXT = re.compile(r"\\(?:text|mbox|mathrm|textbf|textrm|operatorname)\s*\{[^{}]*\}")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°")


def _latex_readings(claim: Claim, failed: Callable[[], bool]) -> Iterator[tuple[str, Any, Any]]:
    """Readings of a LaTeX claim, cheapest first; later ones are only built if needed.

    First both sides by the same reader (our arithmetic reader, the fast reader, latex2sympy
    with and without mixed numbers); then every cross pair, since one reader may misread one
    side only (latex2sympy reads "2(63)" as 65). Cross pairs are only tried when ``failed()``
    says some reading failed: they can rescue a claim from a misreading, nothing else.
    """
    for percent in (True, False):
        try:
            yield ("arithmetic" + ("" if percent else ",percent_as_number"),
                   _latex_arith(claim.lhs, percent), _latex_arith(claim.rhs, percent))
        except (_Unreadable, ZeroDivisionError, OverflowError):
            pass
    for name, read in _SIDE_READERS:
        lhs, rhs = read(claim.lhs), read(claim.rhs)
        if lhs is not None and rhs is not None:
            yield from _pair(claim, name, lhs, rhs)
    if not failed():
        return
    sides = [[(name, v) for name, read in _SIDE_READERS if (v := read(text)) is not None]
             for text in (claim.lhs, claim.rhs)]
    for lname, lhs in sides[0]:
        for rname, rhs in sides[1]:
            if lname != rname:
                yield from _pair(claim, f"{lname}|{rname}", lhs, rhs)


def _pair(claim: Claim, name: str, lhs: Any, rhs: Any) -> Iterator[tuple[str, Any, Any]]:
    """A numeric pair as is; a symbolic one only as an identity continuing a chain."""
    if getattr(lhs, "free_symbols", None) or getattr(rhs, "free_symbols", None):
        if claim.link > 0 and claim.rel == "=" and not _NO_IDENTITY.search(claim.lhs + claim.rhs):
            yield ("identity," + name, lhs, rhs)
        return
    yield (name, lhs, rhs)


def _arith_or_none(text: str) -> Fraction | None:
    try:
        return _latex_arith(text, True)
    except (_Unreadable, ZeroDivisionError, OverflowError):
        return None


def _latex_sympy_plain(text: str) -> Any:
    return _latex_sympy(text, False) if _MIXED.search(text) else None


_SIDE_READERS = (
    ("arithmetic", _arith_or_none),
    ("fast", lambda text: _latex_fast(text)),
    ("latex2sympy", lambda text: _latex_sympy(text, True)),
    ("latex2sympy,no_mixed_numbers", _latex_sympy_plain),
)
# Identities are not checked through absolute values (|x| = x needs a sign), primes
# (derivatives), a function applied without parentheses (\sin\theta(2x) is ambiguous), or
# the letters i and e (the imaginary unit and Euler's number, or unknowns).
_NO_IDENTITY = re.compile(
    r"\||\\[lr]vert|\\mid|'|\\(?:sin|cos|tan|sec|csc|cot|log|ln)(?!\s*[({])|(?<![a-zA-Z\\])[ie](?![a-zA-Z])"
)


def _identity_outcome(lhs: Any, rhs: Any) -> dict:
    """``lhs = rhs`` for all values of the unknowns: simplify, then three exact sample points."""
    import sympy

    shown = {"lhs_value": _short(lhs), "rhs_value": _short(rhs)}
    if _has_function(lhs) or _has_function(rhs) or lhs.free_symbols != rhs.free_symbols:
        return {"status": "unchecked", "why": "symbolic", **shown}
    diff = lhs - rhs
    if sympy.expand(diff) == 0:
        return {"status": "true", **shown}
    symbols = sorted(diff.free_symbols, key=str)
    values = []
    for k, point in enumerate(_SAMPLE_POINTS):
        at = {s: sympy.Rational(point[0] + j, point[1] + 2 * j) for j, s in enumerate(symbols)}
        v = diff.subs(at).evalf(EVAL_DIGITS)
        if not v.is_number or v.has(sympy.zoo, sympy.nan):
            return {"status": "unchecked", "why": "undefined_at_sample", **shown}
        values.append(abs(v))
    if all(v <= 1e-30 for v in values):
        return {"status": "true", "how": "sampled", **shown}
    if all(v > 1e-9 for v in values):
        # Not flagged: a chain of symbolic equalities is as often a system of conditions
        # ("a^2b + c = b^2c + a = c^2a + b") as a chain of identities.
        return {"status": "unchecked", "why": "not_an_identity", "how": "sampled",
                "differences": [_short(v) for v in values], **shown}
    return {"status": "unchecked", "why": "inconclusive", **shown}


# Exact sample points (numerator, denominator), away from small integers where
# expressions tend to vanish or be undefined.
_SAMPLE_POINTS = ((7, 3), (-5, 11), (13, 17))


def _latex_arith(text: str, percent: bool) -> Fraction:
    """Read LaTeX arithmetic (``\\frac``, ``\\times``, ``\\div``, ``^{}``) with ``_arith``."""
    s = _LATEX_SPACING.sub(" ", text)
    s = _LATEX_TEXT.sub(" ", s)
    s = _DEGREES.sub(" ", s).replace("\\$", " ").replace("\\%", "%")
    s = re.sub(r"\\[dt]?frac\s*\{", r"\\frac{", s)
    s = re.sub(r"\\frac\s*(\d)(\d)", r"\\frac{\1}{\2}", s)
    for _ in range(8):
        new = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", s)
        if new == s:
            break
        s = new
    s = s.replace("\\times", "*").replace("\\cdot", "*").replace("\\ast", "*").replace("\\div", "/")
    s = re.sub(r"(?<=\d)\{,\}(?=\d{3})|(?<=\d),(?=\d{3}(?!\d))", "", s)
    s = s.replace("{", "(").replace("}", ")")
    if "\\" in s or re.search(r"[a-zA-Z]", s):
        raise _Unreadable(text)
    return _arith(s, percent=percent, left_to_right=False)


_FAST_COMMANDS = {
    r"\sqrt": "sqrt", r"\pi": "pi", r"\sin": "sin", r"\cos": "cos", r"\tan": "tan",
    r"\ln": "log", r"\log": "log", r"\cdot": "*", r"\times": "*", r"\div": "/",
}
_FAST_LEFTOVER = re.compile(r"\\|[_'|&!\[\]]|[a-zA-Z]{2,}")


@lru_cache(maxsize=4096)
def _latex_fast(text: str) -> Any:
    """A fast reader for simple LaTeX (fractions, roots, powers, pi, sin/cos/tan/log, one-letter
    unknowns) through ``sympy.parse_expr``; ``None`` for anything else, which latex2sympy reads."""
    import sympy
    from tokenize import TokenError

    from sympy.parsing.sympy_parser import (
        implicit_multiplication, parse_expr, standard_transformations,
    )

    s = _LATEX_SPACING.sub(" ", text)
    s = _LATEX_TEXT.sub(" ", s)
    s = _DEGREES.sub(" *pi/180 ", s)
    if re.search(r"\\(?:sin|cos|tan|log|ln)\s*\^|\\log_", s):
        return None
    s = re.sub(r"\\[dt]?frac\s*(\d)(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\[dt]?frac\s*\{", r"\\frac{", s)
    s = re.sub(r"\\left\s*\|(.*?)\\right\s*\|", r"Abs(\1)", s)
    s = re.sub(r"(\d+)\s*!", r"factorial(\1)", s)
    for _ in range(8):
        new = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", s)
        new = re.sub(r"\\[dt]?binom\{([^{}]*)\}\{([^{}]*)\}", r"binomial(\1,\2)", new)
        new = re.sub(r"\\sqrt\{([^{}]*)\}", r"sqrt(\1)", new)
        if new == s:
            break
        s = new
    for cmd, py in _FAST_COMMANDS.items():
        s = re.sub(re.escape(cmd) + r"(?![a-zA-Z])", f" {py} ", s)
    s = re.sub(r"(?<=\d)\{,\}(?=\d{3})|(?<=\d),(?=\d{3}(?!\d))", "", s)
    s = s.replace("{", "(").replace("}", ")").replace("^", "**")
    known = {"sqrt", "pi", "sin", "cos", "tan", "log", "Abs", "factorial", "binomial"}
    words = set(re.findall(r"[a-zA-Z]+", s)) - known
    if _FAST_LEFTOVER.search(re.sub(r"\b(?:" + "|".join(known) + r")\b", " ", s)) or any(len(w) > 1 for w in words):
        return None
    local = {w: sympy.Symbol(w) for w in words}
    local.update(pi=sympy.pi, sqrt=sympy.sqrt, sin=sympy.sin, cos=sympy.cos, tan=sympy.tan, log=sympy.log,
                 Abs=sympy.Abs, factorial=sympy.factorial, binomial=sympy.binomial)
    try:
        expr = parse_expr(s, local_dict=local, transformations=standard_transformations + (implicit_multiplication,),
                          evaluate=False)
    except (SyntaxError, TypeError, ValueError, TokenError, AttributeError, ZeroDivisionError):
        return None
    return expr if isinstance(expr, sympy.Expr) else None


# A number right before a fraction or a parenthesis: latex2sympy may read it as a mixed number.
_MIXED = re.compile(r"\d\s*(?:\(|\\left|\\[dt]?frac|\{)")


@lru_cache(maxsize=4096)
def _latex_sympy(text: str, mixed: bool) -> Any:
    """Parse LaTeX with latex2sympy2_extended (case kept, degrees as pi/180); ``None`` if it fails.

    ``mixed`` reads a number before a fraction or parenthesis as a mixed number.
    """
    from latex2sympy2_extended import latex2sympy
    from latex2sympy2_extended.latex2sympy2 import ConversionConfig

    s = _LATEX_TEXT.sub(" ", text)
    s = _DEGREES.sub(r"\\cdot\\frac{\\pi}{180}", s).strip()
    if not s:
        return None
    try:
        expr = latex2sympy(s, conversion_config=ConversionConfig(lowercase_symbols=False,
                                                                       interpret_as_mixed_fractions=mixed))
    except Exception:  # noqa: BLE001 - an unreadable operand is simply not checked
        return None
    import sympy

    return expr if isinstance(expr, sympy.Expr) else None


# ---------------------------------------------------------------- final answers

def compare_answers(reference: str, answer: str) -> dict:
    """Whether ``answer`` equals ``reference``: numbers exactly (decimals to the digits shown),
    fractions, radicals, intervals (ends and openness), sets, tuples, simple expressions.

    Returns:
        ``{"status": "equal" | "not_equal" | "unparsable", "reference_parsed", "answer_parsed"}``.
    """
    if _norm_text(reference) == _norm_text(answer):
        return {"status": "equal", "how": "same_text"}
    if _BASE_NOTATION.search(reference) or _BASE_NOTATION.search(answer):
        # "52_8" is not 52: with a base subscript, only the same text is the same number.
        return {"status": "not_equal", "how": "base_notation_text_differs"}
    gold = _parse_answer(reference)
    pred = _parse_answer(answer)
    shown = {"reference_parsed": _short(gold), "answer_parsed": _short(pred)}
    if gold is None or pred is None:
        return {"status": "unparsable" if gold is None else "not_equal", **shown}
    equal = _equivalent(gold, pred)
    if not equal:
        for g, p in _percent_variants(reference, answer, gold, pred):
            if _equivalent(g, p):
                equal = True
                break
    return {"status": "equal" if equal else "not_equal", **shown}


def _norm_text(s: str) -> str:
    s = _LATEX_SPACING.sub("", s)
    s = re.sub(r"\\text\{\s*([^{}]*?)\s*\}", r"\1", s)
    s = s.replace("\\$", "").replace("$", "").replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = re.sub(r"\s+", "", s).rstrip(".")
    return s.lower()


@lru_cache(maxsize=4096)  # a reference is compared with many answers (Math-Verify caches too)
def _parse_answer(s: str) -> Any:
    from math_verify import parse
    from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig

    s = s.strip().strip("$").strip()
    s = re.sub(r"^\\\(|\\\)$", "", s)
    s = re.sub(r"\\text\{\s*(dollars?|cents?|units?|degrees?|cm|m|km|inches|feet|hours?|minutes?|"
               r"seconds?|days?|years?|miles?|people|students?)\s*\}", "", s)
    s = re.sub(r"\s*(dollars?|cents?|units?|students?|people|hours?|minutes?|days?|years?)\s*$", "", s)
    s = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", s)
    s = re.sub(r"\\(?=\d)", "", s.replace("\\$", ""))  # "\15" is a mistyped "\$15"
    if not s:
        return None
    found = parse(f"${s}$", extraction_config=(LatexExtractionConfig(), ExprExtractionConfig()),
                  parsing_timeout=None)
    if not found:
        return None
    return found[0]


def _percent_variants(reference: str, answer: str, gold: Any, pred: Any) -> list[tuple[Any, Any]]:
    """"10\\%" and "10" name the same answer; try the other reading of a lone percent sign."""
    ref_pct, ans_pct = "%" in reference, "%" in answer
    if ref_pct == ans_pct:
        return []
    if ref_pct:
        return [(_parse_answer(reference.replace("\\%", "").replace("%", "")), pred)]
    return [(gold, _parse_answer(answer.replace("\\%", "").replace("%", "")))]


def _equivalent(a: Any, b: Any) -> bool:
    import sympy
    from sympy.sets.sets import Interval, Union

    if a is None or b is None:
        return False
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and _norm_text(a) == _norm_text(b)
    a, b = _unwrap(a), _unwrap(b)
    if isinstance(a, sympy.FiniteSet) and isinstance(b, sympy.FiniteSet):
        return _match_all(list(a), list(b))
    if isinstance(a, (tuple, sympy.Tuple)) and isinstance(b, (tuple, sympy.Tuple)):
        return len(a) == len(b) and all(_equivalent(x, y) for x, y in zip(a, b))
    if isinstance(a, Interval) and isinstance(b, Interval):
        return (a.left_open == b.left_open and a.right_open == b.right_open
                and _equivalent(a.start, b.start) and _equivalent(a.end, b.end))
    if isinstance(a, Union) and isinstance(b, Union):
        return _match_all(list(a.args), list(b.args))
    if isinstance(a, sympy.MatrixBase) and isinstance(b, sympy.MatrixBase):
        return a.shape == b.shape and all(_equivalent(x, y) for x, y in zip(a, b))
    if isinstance(a, sympy.core.relational.Relational) and isinstance(b, sympy.core.relational.Relational):
        if type(a) is not type(b):
            return False
        return _expr_equal(a.lhs - a.rhs, b.lhs - b.rhs) or (
            isinstance(a, (sympy.Eq, sympy.Ne)) and _expr_equal(a.lhs - a.rhs, b.rhs - b.lhs))
    if isinstance(a, sympy.Expr) and isinstance(b, sympy.Expr):
        return _expr_equal(a, b)
    return a == b


def _match_all(xs: list, ys: list) -> bool:
    if len(xs) != len(ys):
        return False
    ys = list(ys)
    for x in xs:
        hit = next((k for k, y in enumerate(ys) if _equivalent(x, y)), None)
        if hit is None:
            return False
        ys.pop(hit)
    return True


def _unwrap(e: Any) -> Any:
    """``x = 3`` (an assignment to a lone symbol) stands for ``3``."""
    import sympy

    if isinstance(e, sympy.Eq) and isinstance(e.lhs, sympy.Symbol) and not e.rhs.has(e.lhs):
        return e.rhs
    return e


def _expr_equal(a: Any, b: Any) -> bool:
    """Exact equality; a written decimal matches to the precision it carries."""
    import sympy

    if a == b:
        return True
    if a.is_number and b.is_number:
        if a.is_Rational and b.is_Rational:
            return False
        if a.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo) or b.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
            return False
        # A decimal answer carries ~15 significant digits at most: demand agreement to 1e-9
        # relative; exact values must agree to 40 significant digits (1/2004! is not 1/2006!).
        rel_tol = 1e-9 if (a.has(sympy.Float) or b.has(sympy.Float)) else 1e-40
        try:
            an, bn = a.evalf(EVAL_DIGITS), b.evalf(EVAL_DIGITS)
            if not (an.is_number and bn.is_number):
                return False
            diff, scale = abs(an - bn), max(abs(complex(an)), abs(complex(bn)))
            if scale == 0 or scale == float("inf"):
                return bool(diff == 0)
            return bool(diff <= rel_tol * sympy.Max(abs(an), abs(bn)))
        except (TypeError, ValueError, OverflowError):
            return False
    if a.free_symbols != b.free_symbols:
        return False
    try:
        return sympy.simplify(a - b) == 0
    except (TypeError, ValueError, AttributeError):
        return False
