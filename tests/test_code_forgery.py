"""Answers that try to forge a passing verdict instead of solving the task: each is incorrect.

Every forger answers a task whose tests it cannot pass honestly (its function is wrong or
absent) and tries instead to make the harness report a pass: objects that equal
everything, patching the runner through the stack or ``sys.modules``, writing to the result
channel, ``atexit``, reading the expected outputs from files or memory, leaving a process
behind to tamper with the next program, and so on. All of them run in one parallel batch,
next to honest answers that must keep their verdicts.
"""

from __future__ import annotations

import shutil
import textwrap

import pytest

from halt_eval.judges.sandbox_code import SandboxJudge
from halt_eval.score import Scorer
from halt_eval.types import Response

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

# The expected output is a number no honest program of this task computes by accident, so
# an answer that returns it has read it from somewhere.
SECRET = 8675309
MBPP = {"tests": [f"assert secret(7) == {SECRET}", f"assert secret(8) == {SECRET + 1}"], "setup": "",
        "solution": f"def secret(n):\n    return n + {SECRET - 7}\n"}
HUMANEVAL = {"test": ("METADATA = {}\n\ndef check(candidate):\n"
                      f"    assert candidate(7) == {SECRET}\n    assert candidate(8) == {SECRET + 1}\n"),
             "entry_point": "secret", "prompt": "def secret(n):\n",
             "solution": f"def secret(n):\n    return n + {SECRET - 7}\n"}

# Helper the forgers share: the expected output of a test text found in a blob. The
# pattern does not match its own source, so a forger never finds itself.
FIND = """
        import re
        _TEST = re.compile(rb"secret\\(\\d+\\) ?== ?(\\d+)")
        def _found(blob):
            if isinstance(blob, str):
                blob = blob.encode("utf-8", "replace")
            m = _TEST.search(blob)
            return int(m.group(1)) if m else None
"""

FORGERS: dict[str, str] = {
    "eq_always_true": """
        class Anything:
            def __eq__(self, other):
                return True
            __hash__ = object.__hash__
        def secret(n):
            return Anything()
    """,
    "int_subclass_with_fake_eq": """
        class Int(int):
            def __eq__(self, other):
                return True
            __hash__ = int.__hash__
        def secret(n):
            return Int(0)
    """,
    "list_and_dict_subclass_with_fake_eq": """
        class L(list):
            def __eq__(self, other):
                return True
        class D(dict):
            def __eq__(self, other):
                return True
        def secret(n):
            return L() if n == 7 else D()
    """,
    "class_attribute_lies_about_its_type": """
        class Fake:
            __class__ = int
            def __eq__(self, other):
                return True
        def secret(n):
            return Fake()
    """,
    "stack_walk_patches_the_runner": """
        import sys
        def secret(n):
            f = sys._getframe(1)
            while f is not None:
                me = f.f_locals.get("self")
                if me is not None and hasattr(me, "emit"):
                    real = me.emit
                    def forged(rec, real=real):
                        if "k" in rec:
                            rec = {"k": rec["k"], "s": "pass"}
                        real(rec)
                    me.emit = forged
                for name in ("values_equal", "stdout_equal"):
                    if name in f.f_globals:
                        f.f_globals[name] = lambda *a, **k: True
                f = f.f_back
            return 0
    """,
    "sys_modules_main_patched": """
        import sys
        main = sys.modules["__main__"]
        for name in ("values_equal", "stdout_equal", "encode"):
            if hasattr(main, name):
                setattr(main, name, lambda *a, **k: True)
        if hasattr(main, "_Child"):
            main._Child.guarded = lambda self, fn, trace=False: ("pass", None)
        def secret(n):
            return 0
    """,
    "fake_records_on_the_result_channel": """
        import os
        def secret(n):
            for fd in range(3, 64):
                try:
                    os.write(fd, b'{"k": 0, "s": "pass"}\\n{"k": 1, "s": "pass"}\\n{"done": true}\\n')
                except OSError:
                    pass
            os._exit(0)
    """,
    "done_record_then_early_exit": """
        import os
        def secret(n):
            os.write(3, b'{"done": true}\\n')
            os._exit(0)
    """,
    "atexit_swaps_the_channel": """
        import atexit, os
        def _swap():
            r, w = os.pipe()
            os.dup2(w, 3)
            os.write(1, b'{"k": 0, "s": "pass"}\\n')
        atexit.register(_swap)
        def secret(n):
            return 0
    """,
    "prints_fake_result_lines": """
        import sys
        def secret(n):
            print('{"k": 0, "s": "ok", "v": 8675309}')
            sys.__stdout__.write('{"k": 1, "s": "ok", "v": 8675310}\\n')
            return 0
    """,
    "reads_expected_outputs_from_files": FIND + """
        import os
        def _scan():
            hits = []
            for root in ("/sandbox", "/tmp", "/proc/self", "/proc/1", "/dev"):
                for dirpath, dirs, files in os.walk(root):
                    if dirpath.count("/") > 4:
                        dirs[:] = []
                    for name in files:
                        try:
                            with open(os.path.join(dirpath, name), "rb") as fh:
                                found = _found(fh.read(1 << 20))
                                if found is not None:
                                    hits.append(found)
                        except OSError:
                            pass
            return hits
        def secret(n):
            hits = _scan()
            return hits[0] + n - 7 if hits else -1
    """,
    "reads_expected_outputs_from_its_memory": FIND + """
        import ctypes, gc
        def secret(n):
            ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # make itself dumpable, to read its own memory
            for obj in gc.get_objects():
                for s in ([obj] if isinstance(obj, str) else
                          [v for v in (obj.values() if isinstance(obj, dict) else obj)
                           if isinstance(v, str)] if isinstance(obj, (dict, list, tuple)) else []):
                    if _found(s) is not None:
                        return _found(s) + n - 7
            try:
                with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
                    for line in maps:
                        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
                        if "r" not in line.split()[1] or hi - lo > 1 << 28:
                            continue
                        try:
                            mem.seek(lo)
                            found = _found(mem.read(hi - lo))
                            if found is not None:
                                return found + n - 7
                        except (OSError, ValueError, OverflowError):
                            pass
            except OSError:
                pass
            return -1
    """,
    "reads_the_servers_memory": """
        import ctypes
        def secret(n):
            libc = ctypes.CDLL(None, use_errno=True)
            attached = libc.ptrace(16, 1, 0, 0)  # PTRACE_ATTACH to the server
            try:
                open("/proc/1/mem", "rb").read(1)
                readable = True
            except OSError:
                readable = False
            return 8675309 + n - 7 if attached == 0 or readable else -1
    """,
    "monkeypatches_builtins_and_json": """
        import builtins, json
        builtins.isinstance = lambda *a: True
        builtins.type = lambda *a: int
        json.dumps = lambda *a, **k: '{"k": 0, "s": "pass"}'
        def secret(n):
            return 0
    """,
    "raises_system_exit_in_the_test": """
        def secret(n):
            raise SystemExit(0)
    """,
    "os_exit_zero_early": """
        import os
        def secret(n):
            os._exit(0)
    """,
    "kills_the_parent_and_init": """
        import os, signal
        def secret(n):
            for pid in (os.getppid(), 1, -1):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            return 0
    """,
    "huge_return_value": """
        def secret(n):
            return "x" * (16 << 20)
    """,
    "deeply_nested_json_on_the_channel": """
        import os
        def secret(n):
            os.write(3, b"[" * 200000 + b"\\n")
            return 0
    """,
    "oversized_channel_flood": """
        import os
        def secret(n):
            while True:
                os.write(3, b"x" * 65536)
    """,
    "unhashable_set_forged_on_the_channel": """
        import os
        def secret(n):
            os.write(3, b'{"load": true}\\n{"k": 0, "s": "ok", "v": {"$set": [[1]]}}\\n')
            os._exit(0)
    """,
    "returns_a_generator": """
        def secret(n):
            return (x for x in [8675309])
    """,
    "nan_and_opaque_objects": """
        def secret(n):
            return float("nan") if n == 7 else object()
    """,
    "ignores_timers_and_loops": """
        import signal
        def secret(n):
            for sig in (signal.SIGALRM, signal.SIGPROF, signal.SIGVTALRM, signal.SIGXCPU, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)
            while True:
                pass
    """,
}

# HumanEval-style forgers: the same tricks against check(candidate).
HE_FORGERS: dict[str, str] = {
    "he_eq_always_true": """
        def secret(n):
            class Anything:
                def __eq__(self, other):
                    return True
            return Anything()
    """,
    "he_stack_walk_replaces_candidate_and_check": """
        import sys
        def secret(n):
            f = sys._getframe(1)
            while f is not None:
                g = f.f_globals
                if "check" in g:
                    g["check"] = lambda candidate: None
                if "candidate" in g:
                    g["candidate"] = lambda x: x + 8675302
                f = f.f_back
            return 0
    """,
}

# A process left behind by one program must not reach the next ones.
LINGERER = """
    import os, time
    def secret(n):
        if os.fork() == 0:
            for _ in range(300):
                for fd in range(0, 64):
                    try:
                        os.write(fd, b'{"k": 0, "s": "ok", "v": 8675309}\\n{"done": true}\\n')
                    except OSError:
                        pass
                try:
                    with open("/tmp/json.py", "w") as fh:
                        fh.write("raise SystemExit(0)\\n")
                except OSError:
                    pass
                time.sleep(0.01)
            os._exit(0)
        return 0
"""
HONEST_RIGHT = f"def secret(n):\n    return n + {SECRET - 7}\n"
HONEST_WRONG = "import json\ndef secret(n):\n    return n\n"


def _src(code: str) -> str:
    return textwrap.dedent(code).strip() + "\n"


@pytest.fixture(scope="module")
def scored():
    judge = SandboxJudge(test_timeout_s=1.0, max_run_s=8.0, workers=2)
    responses = [Response(name, "code", "", _src(code), MBPP) for name, code in FORGERS.items()]
    responses += [Response(name, "code", "", _src(code), HUMANEVAL) for name, code in HE_FORGERS.items()]
    responses += [Response(f"lingerer_{i}", "code", "", _src(LINGERER), MBPP) for i in range(4)]
    responses += [Response(f"honest_right_{i}", "code", "", HONEST_RIGHT, MBPP) for i in range(6)]
    responses += [Response(f"honest_wrong_{i}", "code", "", HONEST_WRONG, MBPP) for i in range(6)]
    responses += [Response("honest_right_he", "code", "", HONEST_RIGHT, HUMANEVAL)]
    out = {s.response.id: s for s in Scorer.for_domain("code", judge=judge).score(responses)}
    judge.close()
    return out


def _first_error(s):
    return next(v for v in s.verdicts if v.label != "correct")


@pytest.mark.parametrize("name", list(FORGERS) + list(HE_FORGERS))
def test_forger_scores_incorrect(name, scored):
    s = scored[name]
    first = _first_error(s)
    assert s.solved is False, dict(s.evidence)
    assert first.label == "incorrect", (first.reason, dict(first.evidence))
    assert first.reason != "syntax_error"  # a real attack, not a typo
    assert s.evidence["trusted_comparison"] is True


@pytest.mark.parametrize(("name", "reason"), [
    ("huge_return_value", "bad_result"), ("deeply_nested_json_on_the_channel", "bad_result"),
    ("oversized_channel_flood", "bad_result"), ("unhashable_set_forged_on_the_channel", "bad_result"),
    ("fake_records_on_the_result_channel", "bad_result"), ("ignores_timers_and_loops", "timeout"),
    ("os_exit_zero_early", "early_exit"), ("done_record_then_early_exit", "early_exit"),
])
def test_hostile_results_are_the_answers_fault_with_evidence(name, reason, scored):
    first = _first_error(scored[name])
    assert first.reason == reason, dict(first.evidence)
    assert first.evidence


def test_honest_answers_keep_their_verdicts_next_to_forgers(scored):
    for i in range(6):
        assert scored[f"honest_right_{i}"].solved is True
        assert scored[f"honest_wrong_{i}"].solved is False
        assert _first_error(scored[f"honest_wrong_{i}"]).label == "incorrect"
    assert scored["honest_right_he"].solved is True


def test_lingering_processes_do_not_forge_anything(scored):
    for i in range(4):
        assert scored[f"lingerer_{i}"].solved is False


def test_wrong_value_shows_expected_and_actual_from_the_host(scored):
    first = _first_error(scored["honest_wrong_0"])
    assert first.evidence["expected"] == str(SECRET) and first.evidence["actual"] == "7"


def test_an_unsplittable_test_runs_in_the_sandbox_and_says_so():
    ref = {"tests": ["assert secret(7) == __import__('operator').add(7, 8675302)"], "setup": "",
           "solution": MBPP["solution"]}
    judge = SandboxJudge(test_timeout_s=1.0, max_run_s=8.0, workers=1)
    [right, forged] = Scorer.for_domain("code", judge=judge).score([
        Response("right", "code", "", HONEST_RIGHT, ref),
        Response("forged", "code", "", _src(FORGERS["eq_always_true"]), ref)])
    judge.close()
    assert right.solved is True and right.evidence["trusted_comparison"] is False
    assert right.evidence["untrusted_tests"] == 1
    # The fallback is as weak as any in-process harness: this is why it is marked.
    assert forged.evidence["trusted_comparison"] is False


def test_the_memory_reader_does_find_a_test_that_runs_in_the_sandbox():
    """The memory-reading forger is a real threat: it passes a test that fell back."""
    ref = {"tests": [f"assert secret(7) == {SECRET} or __import__('sys') is None"], "setup": "",
           "solution": MBPP["solution"]}
    judge = SandboxJudge(test_timeout_s=2.0, max_run_s=8.0, workers=1)
    [s] = Scorer.for_domain("code", judge=judge).score([
        Response("m", "code", "", _src(FORGERS["reads_expected_outputs_from_its_memory"]), ref)])
    judge.close()
    assert s.solved is True and s.evidence["trusted_comparison"] is False
