"""The program that runs inside the sandbox (standard library only).

It has two roles in one file:

**Server** (``serve``): started once per warm sandbox as its PID 1 (bubblewrap
``--as-pid-1``), so no process of the sandbox can kill it (the kernel drops signals from
inside a PID namespace to its init unless init handles them, and SIGKILL always) and, being
non-dumpable, none can ptrace it or read its memory or file descriptors through ``/proc/1``.
It reads one small header at a time from its standard input, forks one fresh child per
program and supervises it: a per-program wall deadline, a stall deadline (no result for
longer than a test may take), caps on the result channel and on the log. When the child
ends, or is killed, the server kills every other process of the sandbox (``kill(-1)``),
empties ``/tmp``, and writes one frame to its standard output: its own account (exit status,
why it killed, sizes: trusted) followed by the raw bytes of the child's result channel and
the tail of its log (untrusted; the server never parses them).

**Child** (``_child``): reads its own job body (the server never holds it), sets its
rlimits, loads the answer and evaluates the job's steps, each under a CPU-time and a
wall-time timer, writing one JSON line per step to its result channel. A step evaluates a
call the tests make (``eval``), a setup statement (``exec``), a test that could not be
split into calls and a trusted comparison (``test``: the only steps that report pass/fail
themselves), one call with JSON arguments (``call``) or one run of a stdin/stdout program
(``stdio``). Values go back in a tagged JSON form (``encode``); the host decides pass or
fail. Nothing here is trusted by the host except the server's frame header.

The host also imports ``encode``, ``values_equal`` and ``stdout_equal`` from here.
"""

from __future__ import annotations

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
# Nesting depth past which values are sent as an opaque repr.
MAX_DEPTH = 50
# Bytes of a stdin/stdout program's output kept as its value.
MAX_STDOUT_BYTES = 1 << 20
# Modules imported once by the server so forked children do not pay for them.
PRELOAD = ("ast", "collections", "functools", "heapq", "itertools", "json", "math", "re", "string",
           "typing", "bisect", "copy", "random", "operator", "fractions", "decimal", "statistics",
           "hashlib", "datetime", "array", "cmath", "numbers", "traceback", "io")
# Bytes of a child's log kept (the tail).
LOG_TAIL_BYTES = 16384
_RESULT_FD = 3


class TestTimeout(BaseException):
    """Raised by the per-test timer; a BaseException so ``except Exception`` does not eat it."""


# -- values ------------------------------------------------------------------------------------


def encode(x, depth=0):
    """A JSON-safe, type-tagged form of a value. Subclasses of the plain types are sent as
    their base type's content; anything else as an opaque ``$repr``."""
    t = type(x)
    if x is None or t is bool or t is str:
        return x
    if t is int:
        return x if abs(x) < 2**53 else {"$int": hex(x)}
    if t is float:
        return x if math.isfinite(x) else {"$float": repr(x)}
    if depth > MAX_DEPTH:
        return {"$repr": _short(_safe_repr(x))}
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
    for base in (bool, int, float, str, bytes, complex, tuple, list, dict, set, frozenset):
        if isinstance(x, base):  # a subclass: its base type's content, never its own __eq__
            if base is dict:
                return encode(dict(dict.items(x)), depth)
            if base in (list, tuple, set, frozenset):
                return encode(base(base.__iter__(x)), depth)
            return encode(base.__new__(base, x) if base is not bool else bool(int.__int__(x)), depth)
    return {"$repr": _short(f"{t.__name__}:{_safe_repr(x)}")}


def _safe_repr(x):
    try:
        return repr(x)
    except BaseException:  # noqa: BLE001 - a hostile __repr__
        return "<unrepresentable>"


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
        return int(v["$int"], 16) if v["$int"].lstrip("-").startswith("0x") else int(v["$int"])
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
        if "$repr" in actual or "$repr" in expected:
            return False  # an opaque object equals nothing
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


# -- the child: one program ----------------------------------------------------------------------


class _Child:
    def __init__(self, job):
        self.job = job
        self.timeout_s = float(job.get("test_timeout_s", 3.0))
        self.trace = bool(job.get("trace"))
        self.stop_on_error = bool(job.get("stop_on_error", True))
        self.max_timeouts = int(job.get("max_timeouts", 1))
        self.cover = None
        self.pid = os.getpid()

    def emit(self, obj):
        if os.getpid() != self.pid:
            return  # a process the answer forked does not report (it could, by writing fd 3)
        data = (json.dumps(obj) + "\n").encode()
        while data:
            n = os.write(_RESULT_FD, data)
            data = data[n:]

    def _global_tracer(self, frame, event, arg):
        if frame.f_code.co_filename == ANSWER_FILE:
            return self._local_tracer
        return None

    def _local_tracer(self, frame, event, arg):
        if event == "line" and self.cover is not None:
            self.cover.add(frame.f_lineno)
        return self._local_tracer

    def guarded(self, fn, trace=False):
        """Run ``fn`` under the per-test timers (and tracer); return (status, error)."""
        self.cover = set()
        signal.setitimer(signal.ITIMER_PROF, self.timeout_s)
        signal.setitimer(signal.ITIMER_REAL, self.timeout_s * WALL_FACTOR)
        if trace:
            sys.settrace(self._global_tracer)
        try:
            fn()
            return "ok", None
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

    def run(self):
        job = self.job
        src = job["code"]
        linecache.cache[ANSWER_FILE] = (len(src), None, src.splitlines(True), ANSWER_FILE)
        code = compile(src, ANSWER_FILE, "exec", dont_inherit=True)  # the host checked it compiles
        if job["kind"] == "stdio":
            self.steps(None, code)
        else:
            ns = {"__name__": "answer", "__builtins__": __builtins__}
            if self.load(code, ns):
                self.steps(ns, code)
        self.emit({"done": True})

    def load(self, code, ns):
        job = self.job

        def _load():
            exec(code, ns)
            if job.get("setup", "").strip():
                exec(compile(job["setup"], "<setup>", "exec", dont_inherit=True), ns)
            if job.get("module_src", "").strip():
                exec(compile(job["module_src"], TEST_FILE, "exec", dont_inherit=True), ns)
            param, entry = job.get("param"), job.get("entry_point")
            if param and entry in ns:
                ns[param] = ns[entry]
        status, error = self.guarded(_load)
        self.emit({"load": status == "ok", **({"e": error} if error else {})})
        return status == "ok"

    def steps(self, ns, code):
        timeouts = 0
        fn = None
        if self.job["kind"] == "call" and ns is not None:
            fn = _find_function(ns, self.job["entry_point"])
        for k, step in enumerate(self.job["steps"]):
            rec = {"k": k}
            box = []
            t = step["t"]
            if t == "eval":
                c = compile(step["src"], TEST_FILE, "eval", dont_inherit=True)
                status, error = self.guarded(lambda: box.append(eval(c, ns)), self.trace)
            elif t in ("exec", "test"):
                c = compile(step["src"], TEST_FILE, "exec", dont_inherit=True)
                status, error = self.guarded(lambda: exec(c, ns), self.trace)
                if t == "test" and status == "ok":
                    status = "pass"
            elif t == "call":
                if fn is None:
                    status, error = "error", {"type": "NameError", "line": None, "where": "",
                                              "msg": f"name {self.job['entry_point']!r} is not defined"}
                else:
                    args = decode(json.loads(step["args"]))
                    status, error = self.guarded(lambda: box.append(fn(*args)), self.trace)
            else:  # stdio
                status, error, out = self.run_stdio(code, step["input"])
                box.append(out)
            if status == "ok" and box:
                try:
                    rec["v"] = encode(box[0])
                except BaseException as e:  # noqa: BLE001 - a value whose conversion raises
                    status, error = "error", _error(e)
            rec["s"] = status
            if error:
                rec["e"] = error
            if self.trace:
                rec["c"] = sorted(self.cover or ())
            self.emit(rec)
            timeouts += status == "timeout"
            if status in ("error", "timeout", "fail") and t != "stdio" and (
                    self.stop_on_error or timeouts >= self.max_timeouts):
                break
            if t == "stdio" and status == "timeout" and timeouts >= self.max_timeouts:
                break

    def run_stdio(self, code, text):
        data = text.encode("utf-8")
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
        status, error = self.guarded(_run, self.trace)
        out = buf.getvalue()[:MAX_STDOUT_BYTES].decode("utf-8", errors="replace")
        return status, error, out


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
    try:
        frames = traceback.extract_tb(e.__traceback__)
    except BaseException:  # noqa: BLE001
        frames = []
    ours = [f for f in frames if f.filename == ANSWER_FILE]
    line = ours[-1].lineno if ours else None
    shown = ours[-1] if ours else (frames[-1] if frames else None)
    where = f"{shown.filename}, line {shown.lineno}, in {shown.name}: {shown.line or ''}" if shown else ""
    try:
        msg = str(e)
    except BaseException:  # noqa: BLE001 - a hostile __str__
        msg = "<unprintable>"
    out = {"type": type(e).__name__, "msg": _short(msg), "line": line, "where": _short(where)}
    if ours:
        out["outer_line"] = ours[0].lineno
    return out


def _on_alarm(signum, frame):
    raise TestTimeout("test took longer than its time limit")


def _read_exact(fd, n):
    parts = []
    while n > 0:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def _child(hdr, w_res, w_log, as_init):
    """The forked child: never returns."""
    try:
        if not as_init:
            os.setpgid(0, 0)
        os.dup2(w_log, 1)
        os.dup2(w_log, 2)
        body = _read_exact(0, hdr["body_len"])
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(w_res, _RESULT_FD)
        os.closerange(_RESULT_FD + 1, 1 << 16)
        import resource
        for name, value in hdr["rlimits"].items():
            resource.setrlimit(getattr(resource, name), (value, value))
        try:
            with open("/proc/self/oom_score_adj", "w") as fh:
                fh.write("1000")  # the memory budget's OOM kill takes the child, not the server
        except OSError:
            pass
        sys.stdout = sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                                   errors="replace", line_buffering=True)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.signal(signal.SIGPROF, _on_alarm)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
        job = json.loads(body)
        del body, hdr
        _Child(job).run()
    except BaseException:  # noqa: BLE001 - report nothing more; the host sees missing steps
        try:
            traceback.print_exc()
        except BaseException:  # noqa: BLE001
            pass
    os._exit(0)


# -- the server ----------------------------------------------------------------------------------


def _kill_rest(as_init, pid):
    """Kill every process of the sandbox but this one, and reap them."""
    import time
    try:
        if as_init:
            os.kill(-1, signal.SIGKILL)
        else:
            os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        try:
            got, _ = os.waitpid(-1, os.WNOHANG if not as_init else 0)
        except ChildProcessError:
            return
        if got == 0:
            time.sleep(0.001)


def _clean_tmp(root):
    """Empty ``root`` (the sandbox's /tmp), whatever permissions the program left."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    os.chmod(path, 0o700)
                    os.rmdir(path)
                else:
                    os.unlink(path)
            except OSError:
                try:
                    os.chmod(dirpath, 0o700)
                    (os.rmdir if os.path.isdir(path) and not os.path.islink(path) else os.unlink)(path)
                except OSError:
                    pass


def _supervise(pid, hdr, r_res, r_log, as_init):
    import select
    import time
    start = time.monotonic()
    deadline = start + float(hdr["wall_s"])
    stall_s = float(hdr["stall_s"])
    last = start
    result = bytearray()
    log = bytearray()
    log_total = 0
    killed = None
    open_fds = {r_res, r_log}
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    exited = False
    status = None
    while True:
        now = time.monotonic()
        if now >= deadline:
            killed = "wall"
            break
        if now - last >= stall_s:
            killed = "stall"
            break
        waits = list(open_fds) + ([pidfd] if pidfd is not None and not exited else [])
        timeout = min(deadline, last + stall_s) - now
        if pidfd is None and not exited:
            timeout = min(timeout, 0.05)
        if not waits:
            break
        ready, _, _ = select.select(waits, [], [], max(0.0, timeout))
        for fd in ready:
            if fd == pidfd:
                exited = True
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                open_fds.discard(fd)
                continue
            if fd == r_res:
                result += chunk
                last = time.monotonic()
                if len(result) > hdr["result_bytes"]:
                    killed = "result_limit"
            else:
                log_total += len(chunk)
                log += chunk
                if len(log) > LOG_TAIL_BYTES:
                    del log[: len(log) - LOG_TAIL_BYTES]
                if log_total > hdr["output_bytes"]:
                    killed = "output_limit"
        if killed:
            break
        if pidfd is None and not exited:
            got, st = os.waitpid(pid, os.WNOHANG)
            if got:
                exited, status = True, st
        if exited and not open_fds:
            break
        if exited:
            # The child is gone; what its descendants still hold open is not waited for.
            for fd in list(open_fds):
                os.set_blocking(fd, False)
                try:
                    while True:
                        chunk = os.read(fd, 65536)
                        if not chunk:
                            break
                        if fd == r_res and len(result) <= hdr["result_bytes"]:
                            result += chunk
                except BlockingIOError:
                    pass
            break
    wall = time.monotonic() - start
    if status is None and exited:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = None
    if status is None and killed:
        try:
            os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        except (ChildProcessError, ProcessLookupError):
            pass
    _kill_rest(as_init, pid)
    if pidfd is not None:
        os.close(pidfd)
    for fd in (r_res, r_log):
        os.close(fd)
    if len(result) > hdr["result_bytes"]:
        del result[hdr["result_bytes"]:]
        killed = killed or "result_limit"
    code = sig = None
    if status is not None:
        if os.WIFEXITED(status):
            code = os.WEXITSTATUS(status)
        elif os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
    return {"killed": killed, "exit": code, "signal": sig, "wall_s": round(wall, 4),
            "log_total": log_total}, bytes(result), bytes(log)


def serve():
    """The server loop (see the module docstring)."""
    as_init = os.getpid() == 1
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)  # as PID 1, unhandled signals from inside are dropped
    try:
        import ctypes
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE 0: no ptrace, no /proc/1/mem
    except Exception:  # noqa: BLE001 - not available: the seccomp filter still blocks ptrace
        pass
    sys.path[:] = [p for p in sys.path if p not in ("", ".") and not p.startswith("/sandbox")]
    for name in PRELOAD:
        try:
            __import__(name)
        except ImportError:
            pass
    tmp = os.getcwd()
    out = 1
    while True:
        try:
            n = int.from_bytes(_read_exact(0, 4), "big")
            hdr = json.loads(_read_exact(0, n))
        except EOFError:
            return
        r_res, w_res = os.pipe()
        r_log, w_log = os.pipe()
        try:
            pid = os.fork()
        except OSError as e:
            os.close(w_res)
            os.close(w_log)
            _read_exact(0, hdr["body_len"])
            meta = {"killed": "fork_failed", "exit": None, "signal": None, "wall_s": 0.0,
                    "log_total": 0, "error": str(e)}
            for fd in (r_res, r_log):
                os.close(fd)
            _send(out, meta, b"", b"")
            continue
        if pid == 0:
            os.close(r_res)
            os.close(r_log)
            os.close(out)
            _child(hdr, w_res, w_log, as_init)
        os.close(w_res)
        os.close(w_log)
        meta, result, log = _supervise(pid, hdr, r_res, r_log, as_init)
        _clean_tmp(tmp)
        _send(out, meta, result, log)


def _send(fd, meta, result, log):
    meta = dict(meta, result_len=len(result), log_len=len(log))
    head = json.dumps(meta).encode()
    data = len(head).to_bytes(4, "big") + head + result + log
    while data:
        n = os.write(fd, data)
        data = data[n:]


if __name__ == "__main__":
    serve()
