"""The test runner that executes inside the sandbox (standard library only).

The harness ships this file and a ``job.json`` into the sandbox and runs this file. It
loads the answer (compiled under the file name ``ANSWER_FILE`` so tracebacks and coverage
point at answer lines), runs the tests one at a time, each under its own timer, and writes
one JSON object per line to the result channel (the original stdout; the program's own
output goes to stderr or, for stdin/stdout tests, to a per-test buffer):

- ``{"ev": "syntax", "line", "msg"}``: the answer does not compile.
- ``{"ev": "load", "ok", "error"?}``: the answer module (and test setup) ran.
- ``{"ev": "test", "i", "status", "error"?, "actual"?, "expected"?, "cover"?}`` per test;
  status is ``pass``, ``fail`` (wrong result), ``error`` (exception) or ``timeout`` (the
  test used ``test_timeout_s`` of CPU time, or ``WALL_FACTOR`` times that of wall time).
- ``{"ev": "done"}``.

Every record carries ``"pass"``: 1 for the first pass (untraced, stopping at the first
failing test); when the job asks to ``localise`` and the first pass failed without an
answer line to blame, pass 2 reruns every test in a fresh namespace with line coverage.

The host also imports ``encode`` and ``values_equal`` from here, so both sides share one
definition of value equality. Job kinds: ``asserts`` (statement strings), ``check``
(HumanEval ``check(candidate)``, one test per top-level assert statement of its body),
``stdio`` (program run per input), ``call`` (function called with JSON arguments, APPS
semantics) and ``compare`` (function outputs against encoded expected outputs, EvalPlus
semantics; with no expected outputs it just records them).
"""

from __future__ import annotations

import ast
import io
import json
import linecache
import math
import os
import signal
import sys
import traceback

ANSWER_FILE = "/sandbox/answer.py"
TEST_FILE = "<test>"
# Relative tolerance EvalPlus applies to float outputs on top of the task's atol.
PLUS_RTOL = 1e-7
# Absolute tolerance for float outputs of APPS call-based tests.
APPS_ATOL = 1e-6
# Characters kept of a value's repr, a message or a captured output in results.
MAX_SHOWN_CHARS = 300
# A test's wall-clock limit, as a multiple of its CPU-time limit (for tests that sleep).
WALL_FACTOR = 3
# Nesting depth past which values are encoded by repr.
MAX_DEPTH = 50


class TestTimeout(BaseException):
    """Raised by the per-test timer; a BaseException so ``except Exception`` does not eat it."""


def encode(x, depth=0):
    """A JSON-safe, type-tagged form of a value, so equality can be checked outside."""
    t = type(x)
    if x is None or t is bool or t is str:
        return x
    if t is int:
        return x if abs(x) < 2**53 else {"$int": str(x)}
    if t is float:
        return x if math.isfinite(x) else {"$float": repr(x)}
    if depth > MAX_DEPTH:
        return {"$repr": _short(repr(x))}
    if t is list:
        return [encode(v, depth + 1) for v in x]
    if t is tuple:
        return {"$tuple": [encode(v, depth + 1) for v in x]}
    if t is set or t is frozenset:
        items = [encode(v, depth + 1) for v in x]
        return {"$set": sorted(items, key=lambda v: json.dumps(v, sort_keys=True))}
    if t is dict:
        pairs = [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in x.items()]
        return {"$dict": sorted(pairs, key=lambda p: json.dumps(p[0], sort_keys=True))}
    if t is complex:
        return {"$complex": [encode(x.real), encode(x.imag)]}
    if t is bytes:
        return {"$bytes": x.hex()}
    return {"$repr": _short(f"{t.__name__}:{x!r}")}


def decode(v):
    """The value ``encode`` produced ``v`` from (``$repr`` values stay as their text)."""
    if isinstance(v, list):
        return [decode(x) for x in v]
    if not isinstance(v, dict):
        return v
    if "$tuple" in v:
        return tuple(decode(x) for x in v["$tuple"])
    if "$set" in v:
        return {decode(x) for x in v["$set"]}
    if "$dict" in v:
        return {decode(k): decode(x) for k, x in v["$dict"]}
    if "$int" in v:
        return int(v["$int"])
    if "$float" in v:
        return float(v["$float"])
    if "$complex" in v:
        return complex(*v["$complex"])
    if "$bytes" in v:
        return bytes.fromhex(v["$bytes"])
    if "$repr" in v:
        return v["$repr"]
    return {k: decode(x) for k, x in v.items()}


def _as_float(v):
    if type(v) in (int, float) and type(v) is not bool:
        return float(v)
    if isinstance(v, dict) and "$float" in v:
        return float(v["$float"])
    return None


def values_equal(actual, expected, *, atol=0.0, rtol=0.0, loose=False):
    """Equality of encoded values, with float tolerance ``atol + rtol * |expected|``.

    ``loose`` (APPS): tuples equal lists, as APPS converts tuple outputs to lists.
    """
    if loose:
        actual, expected = _untuple(actual), _untuple(expected)
    fa, fe = _as_float(actual), _as_float(expected)
    if fa is not None and fe is not None and (isinstance(actual, float) or isinstance(expected, float)
                                              or isinstance(actual, dict) or isinstance(expected, dict)):
        if math.isnan(fa) or math.isnan(fe):
            return math.isnan(fa) and math.isnan(fe)
        if math.isinf(fa) or math.isinf(fe):
            return fa == fe
        return abs(fa - fe) <= atol + rtol * abs(fe)
    if type(actual) is not type(expected):
        return False
    if isinstance(actual, list):
        return len(actual) == len(expected) and all(
            values_equal(a, e, atol=atol, rtol=rtol) for a, e in zip(actual, expected))
    if isinstance(actual, dict):
        if actual.keys() != expected.keys():
            return False
        return all(values_equal(actual[k], expected[k], atol=atol, rtol=rtol) for k in actual)
    return actual == expected


def _untuple(v):
    if isinstance(v, dict) and "$tuple" in v:
        return [_untuple(x) for x in v["$tuple"]]
    if isinstance(v, list):
        return [_untuple(x) for x in v]
    if isinstance(v, dict):
        return {k: _untuple(x) for k, x in v.items()}
    return v


def stdout_equal(actual, expected):
    """APPS-style whitespace-tolerant comparison of program output.

    Equal when the non-blank lines match after stripping, or the whitespace-separated
    tokens match (numbers within ``APPS_ATOL``).
    """
    a_lines = [ln.strip() for ln in actual.strip().splitlines() if ln.strip()]
    e_lines = [ln.strip() for ln in expected.strip().splitlines() if ln.strip()]
    if a_lines == e_lines:
        return True
    a_tok, e_tok = actual.split(), expected.split()
    if len(a_tok) != len(e_tok):
        return False
    for a, e in zip(a_tok, e_tok):
        if a == e:
            continue
        try:
            if abs(float(a) - float(e)) > APPS_ATOL:
                return False
        except ValueError:
            return False
    return True


def _short(s):
    return s if len(s) <= MAX_SHOWN_CHARS else s[:MAX_SHOWN_CHARS] + "..."


class _Runner:
    def __init__(self, job, out):
        self.job = job
        self.out = out
        self.timeout_s = float(job.get("test_timeout_s", 3.0))
        self.trace = False
        self.stop_on_fail = bool(job.get("stop_on_fail"))
        self.max_timeouts = 1_000_000
        self.cover = None
        self.pid = os.getpid()
        self.pass_no = 1
        self.events = []

    # -- plumbing ------------------------------------------------------------------------

    def emit(self, obj):
        if os.getpid() != self.pid:
            return  # a process the answer forked must not write results
        obj["pass"] = self.pass_no
        self.events.append(obj)
        self.out.write(json.dumps(obj) + "\n")
        self.out.flush()

    def _global_tracer(self, frame, event, arg):
        if frame.f_code.co_filename == ANSWER_FILE:
            return self._local_tracer
        return None

    def _local_tracer(self, frame, event, arg):
        if event == "line" and self.cover is not None:
            self.cover.add(frame.f_lineno)
        return self._local_tracer

    def guarded(self, fn):
        """Run ``fn`` under the per-test timer (and tracer); return (status, error)."""
        self.cover = set()
        # CPU time decides (steady under host load); the wall timer only catches a test
        # that blocks or sleeps.
        signal.setitimer(signal.ITIMER_PROF, self.timeout_s)
        signal.setitimer(signal.ITIMER_REAL, self.timeout_s * WALL_FACTOR)
        if self.trace:
            sys.settrace(self._global_tracer)
        try:
            fn()
            return "pass", None
        except TestTimeout as e:
            return "timeout", _error(e)
        except AssertionError as e:
            err = _error(e)
            return ("error" if err.get("line") is not None else "fail"), err
        except BaseException as e:  # noqa: BLE001 - the answer may raise anything
            return "error", _error(e)
        finally:
            sys.settrace(None)
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.setitimer(signal.ITIMER_REAL, 0)

    def test_result(self, i, status, error, extra=None):
        rec = {"ev": "test", "i": i, "status": status}
        if error:
            rec["error"] = error
        if extra:
            rec.update(extra)
        if self.trace:
            rec["cover"] = sorted(self.cover or ())
        self.emit(rec)
        return status == "pass"

    # -- the run ---------------------------------------------------------------------------

    def run(self):
        job = self.job
        src = job["code"]
        linecache.cache[ANSWER_FILE] = (len(src), None, src.splitlines(True), ANSWER_FILE)
        try:
            code = compile(src, ANSWER_FILE, "exec", dont_inherit=True)
        except SyntaxError as e:
            self.emit({"ev": "syntax", "line": e.lineno, "msg": _short(str(e.msg))})
            return
        except (ValueError, RecursionError, MemoryError) as e:
            self.emit({"ev": "syntax", "line": None, "msg": _short(f"{type(e).__name__}: {e}")})
            return
        self.one_pass(code)
        if job.get("localise") and needs_localisation(self.events):
            # Second pass, in a fresh namespace: every test, with line coverage.
            self.pass_no, self.trace, self.stop_on_fail = 2, True, False
            self.max_timeouts = int(job.get("max_timeouts", 1))
            self.one_pass(code)
        self.emit({"ev": "done"})

    def one_pass(self, code):
        if self.job["kind"] == "stdio":
            self.run_stdio(code)
            return
        ns = {"__name__": "answer", "__builtins__": __builtins__}
        if self.load(code, ns):
            getattr(self, "run_" + self.job["kind"])(ns)

    def load(self, code, ns):
        def _load():
            exec(code, ns)
            setup = self.job.get("setup") or ""
            if setup.strip():
                exec(compile(setup, "<setup>", "exec", dont_inherit=True), ns)
            if self.job["kind"] == "check":
                exec(compile(self.job["test_src"], TEST_FILE, "exec", dont_inherit=True), ns)
        trace, self.trace = self.trace, False  # module load is not coverage of any test
        status, error = self.guarded(_load)
        self.trace = trace
        self.emit({"ev": "load", "ok": status == "pass", **({"error": error} if error else {})})
        return status == "pass"

    def _loop(self, tests, one):
        timeouts = 0
        for i, test in enumerate(tests):
            status, error, extra = one(i, test)
            timeouts += status == "timeout"
            if not self.test_result(i, status, error, extra) and (
                    self.stop_on_fail or timeouts >= self.max_timeouts):
                break

    def run_asserts(self, ns):
        def one(i, src):
            status, error = self.guarded(lambda: exec(compile(src, TEST_FILE, "exec", dont_inherit=True), ns))
            extra = self._explain_assert(src, ns) if status == "fail" else None
            return status, error, extra
        self._loop(self.job["tests"], one)

    def run_check(self, ns):
        tree = ast.parse(self.job["test_src"])
        check = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"), None)
        entry = self.job["entry_point"]
        if check is None or not check.args.args:
            raise ValueError("test source defines no check(candidate)")
        if entry not in ns:
            self.test_result(0, "error", {"type": "NameError", "msg": f"name {entry!r} is not defined",
                                          "line": None, "where": ""})
            return
        ns[check.args.args[0].arg] = ns[entry]
        tests = []
        for stmt in check.body:
            is_test = any(isinstance(n, ast.Assert) for n in ast.walk(stmt))
            src = ast.get_source_segment(self.job["test_src"], stmt) or ast.unparse(stmt)
            tests.append((is_test, compile(ast.Module([stmt], []), TEST_FILE, "exec", dont_inherit=True), src))
        i = timeouts = 0
        for is_test, code, src in tests:
            status, error = self.guarded(lambda: exec(code, ns))
            if not is_test and status == "pass":
                continue
            extra = {"test": _short(src)}
            if status == "fail":
                extra.update(self._explain_assert(src, ns) or {})
            ok = self.test_result(i, status, error, extra)
            i += 1
            timeouts += status == "timeout"
            if not ok and (self.stop_on_fail or timeouts >= self.max_timeouts):
                break

    def _explain_assert(self, src, ns):
        """For ``assert A == B``, the two sides' values (A is evaluated again)."""
        try:
            node = ast.parse(src.strip()).body[0]
        except (SyntaxError, IndexError):
            return None
        if not (isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare)
                and len(node.test.ops) == 1 and isinstance(node.test.ops[0], ast.Eq)):
            return None
        shown = {}
        cover = self.cover  # the re-evaluation must not replace the test's coverage
        for key, expr in (("actual", node.test.left), ("expected", node.test.comparators[0])):
            box = []
            code = compile(ast.Expression(expr), TEST_FILE, "eval", dont_inherit=True)
            trace, self.trace = self.trace, False
            status, _ = self.guarded(lambda: box.append(eval(code, ns)))
            self.trace, self.cover = trace, cover
            if status != "pass":
                return None
            shown[key] = _short(repr(box[0]))
        return shown

    def run_call(self, ns):
        fn = _find_function(ns, self.job["entry_point"])
        plus = self.job.get("mode") == "plus"
        atol = float(self.job.get("atol") or 0.0)

        def one(i, test):
            box = []
            if fn is None:
                return "error", {"type": "NameError", "msg": f"name {self.job['entry_point']!r} is not defined",
                                 "line": None, "where": ""}, None
            args = decode(json.loads(test["args"]))  # a fresh copy for each call
            status, error = self.guarded(lambda: box.append(encode(fn(*args))))
            if status != "pass":
                return status, error, None
            actual = box[0]
            if "expected" not in test:
                return "pass", None, {"value": actual}
            expected = test["expected"]
            if plus:
                ok = values_equal(actual, expected, atol=atol, rtol=PLUS_RTOL)
            else:
                ok = values_equal(actual, expected, atol=APPS_ATOL, loose=True) or (
                    isinstance(expected, list) and len(expected) == 1
                    and values_equal(actual, expected[0], atol=APPS_ATOL, loose=True))
            if ok:
                return "pass", None, None
            return "fail", None, {"actual": _short(json.dumps(actual)), "expected": _short(json.dumps(expected)),
                                  "test": _short(test["args"])}
        self._loop(self.job["tests"], one)

    run_compare = run_call

    def run_stdio(self, code):
        def one(i, test):
            data = test["input"].encode("utf-8")
            stdin = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")
            buf = io.BytesIO()
            stdout = io.TextIOWrapper(buf, encoding="utf-8", write_through=True)
            ns = {"__name__": "__main__", "__builtins__": __builtins__}

            def _run():
                saved = sys.stdin, sys.stdout
                sys.stdin, sys.stdout = stdin, stdout
                try:
                    exec(code, ns)
                except SystemExit as e:
                    if e.code not in (None, 0):
                        raise
                finally:
                    try:
                        stdout.flush()
                    except ValueError:
                        pass
                    sys.stdin, sys.stdout = saved
            status, error = self.guarded(_run)
            actual = buf.getvalue().decode("utf-8", errors="replace")
            if status != "pass":
                return status, error, None
            if stdout_equal(actual, test["output"]):
                return "pass", None, None
            return "fail", None, {"actual": _short(actual), "expected": _short(test["output"]),
                                  "test": _short(test["input"])}
        self.emit({"ev": "load", "ok": True})
        self._loop(self.job["tests"], one)


def needs_localisation(events):
    """Whether a failed first pass needs a traced second one (no answer line raised)."""
    load = next((e for e in events if e["ev"] == "load"), None)
    if load is None or not load["ok"]:
        return False
    failed = [e for e in events if e["ev"] == "test" and e["status"] != "pass"]
    return bool(failed) and not any(
        e["status"] in ("error", "timeout") and (e.get("error") or {}).get("line") is not None
        for e in failed)


def _find_function(ns, name):
    fn = ns.get(name)
    if callable(fn):
        return fn
    cls = ns.get("Solution")
    if isinstance(cls, type) and hasattr(cls, name):
        try:
            return getattr(cls(), name)
        except Exception:  # noqa: BLE001 - a broken Solution class means no function
            return None
    return None


def _error(e):
    """Type, message, the innermost and outermost answer lines and the last frame of an exception."""
    frames = traceback.extract_tb(e.__traceback__)
    ours = [f for f in frames if f.filename == ANSWER_FILE]
    line = ours[-1].lineno if ours else None
    shown = ours[-1] if ours else (frames[-1] if frames else None)
    where = f"{shown.filename}, line {shown.lineno}, in {shown.name}: {shown.line or ''}" if shown else ""
    try:
        msg = str(e)
    except Exception:  # noqa: BLE001 - a hostile __str__
        msg = "<unprintable>"
    out = {"type": type(e).__name__, "msg": _short(msg), "line": line, "where": _short(where)}
    if ours:
        out["outer_line"] = ours[0].lineno
    return out


def _on_alarm(signum, frame):
    raise TestTimeout("test took longer than its time limit")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "job.json"), encoding="utf-8") as fh:
        job = json.load(fh)
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the answer's own prints go to the log, not the result channel
    sys.stdout = sys.stderr
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGPROF, _on_alarm)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    _Runner(job, out).run()


if __name__ == "__main__":
    main()
