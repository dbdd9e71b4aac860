"""Escape attempts against the code sandbox: each is contained, gets a verdict, and the harness lives.

Every attack is an MBPP-style answer whose function ``probe()`` tries something and
returns what it saw; the test ``assert probe() == "contained"`` passes when the attack
failed inside the sandbox. Attacks that cannot report (bombs, loops, floods) are judged by
their verdict. Where the host can check for itself (a file written, a connection received,
the parent still running) it does. All attacks run in one parallel batch.
"""

from __future__ import annotations

import os
import shutil
import socket
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from halt_eval.judges.sandbox_code import SandboxJudge
from halt_eval.score import Scorer
from halt_eval.types import Response

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")

SECRET_ENV = "HALT_ESCAPE_TEST_SECRET"
TOKEN = uuid.uuid4().hex
# Host paths an attack tries to create; none may exist afterwards.
HOST_TARGETS = [f"/tmp/halt-escape-{TOKEN}", str(Path(__file__).resolve().parent / f"escape-{TOKEN}"),
                f"/root/halt-escape-{TOKEN}"]
REF = {"tests": ["assert probe() == 'contained'"], "setup": "", "solution": "def probe():\n    return 'contained'\n"}


def _listener() -> tuple[socket.socket, list]:
    """A loopback TCP server on the host that records any connection."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    srv.settimeout(0.2)
    seen: list = []

    def accept() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                conn, addr = srv.accept()
            except (TimeoutError, OSError):
                if srv.fileno() == -1:
                    return
                continue
            seen.append(addr)
            conn.close()
    threading.Thread(target=accept, daemon=True).start()
    return srv, seen


def _attacks(port: int) -> dict[str, str]:
    writes = ", ".join(repr(p) for p in HOST_TARGETS + ["/usr/escape", "/sandbox/escape", "/escape"])
    return {
        "socket_to_the_outside": """
            import socket
            def probe():
                for host in ("1.1.1.1", "8.8.8.8"):
                    try:
                        socket.create_connection((host, 53), timeout=2)
                        return "connected " + host
                    except OSError:
                        pass
                try:
                    socket.getaddrinfo("pypi.org", 443)
                    return "dns works"
                except OSError:
                    return "contained"
        """,
        "socket_to_host_loopback": f"""
            import socket
            def probe():
                try:
                    socket.create_connection(("127.0.0.1", {port}), timeout=2)
                    return "connected"
                except OSError:
                    return "contained"
        """,
        "write_outside_tmp": f"""
            def probe():
                wrote = []
                for path in ({writes},):
                    try:
                        with open(path, "w") as fh:
                            fh.write("x")
                        if not path.startswith("/tmp/"):  # the private /tmp is writable
                            wrote.append(path)
                    except OSError:
                        pass
                with open("/tmp/inside-is-fine", "w") as fh:
                    fh.write("ok")
                return "contained" if not wrote else "wrote " + " ".join(wrote)
        """,
        "read_host_files": """
            import os
            def probe():
                read = []
                for path in ("/etc/shadow", "/etc/passwd", "/root/.bashrc", "/root/.ssh/id_rsa",
                             "/home", "/work", "/var/run/docker.sock"):
                    if os.path.exists(path):
                        read.append(path)
                for pid in os.listdir("/proc"):
                    if pid.isdigit():
                        try:
                            with open(f"/proc/{pid}/environ", "rb") as fh:
                                if b"HALT_ESCAPE_TEST_SECRET" in fh.read():
                                    read.append(f"/proc/{pid}/environ")
                        except OSError:
                            pass
                return "contained" if not read else "saw " + " ".join(read)
        """,
        "read_environment_secrets": f"""
            import os
            def probe():
                leaked = [k for k in os.environ if k not in
                          ("HOME", "LANG", "PWD", "PYTHONHASHSEED", "PYTHONIOENCODING", "LC_CTYPE")]
                return "contained" if not leaked and "{SECRET_ENV}" not in os.environ else "env " + str(leaked)
        """,
        "fork_bomb": """
            import os
            def probe():
                while True:
                    os.fork()
        """,
        "memory_bomb": """
            def probe():
                hog = []
                while True:
                    hog.append([0] * (1 << 27))  # 1 GiB of pointers each
        """,
        "infinite_loop": """
            def probe():
                while True:
                    pass
        """,
        "sleep_past_timeout": """
            import time
            def probe():
                time.sleep(3600)
                return "contained"
        """,
        "loop_that_ignores_the_test_timer": """
            import signal
            def probe():
                for sig in (signal.SIGALRM, signal.SIGPROF, signal.SIGVTALRM):
                    signal.signal(sig, signal.SIG_IGN)
                while True:
                    pass
        """,
        "huge_output": """
            import sys
            def probe():
                while True:
                    sys.__stderr__.write("x" * 1_000_000)
        """,
        "getframe_reaches_saved_os": f"""
            import sys
            def probe():
                frame = sys._getframe(1)
                while frame is not None:
                    g = frame.f_globals
                    if "os" in g:
                        g["os"].system("touch {HOST_TARGETS[0]} {HOST_TARGETS[1]}")
                    frame = frame.f_back
                return "contained"
        """,
        "ctypes_libc_system": f"""
            import ctypes
            def probe():
                libc = ctypes.CDLL(None)
                libc.system(b"touch {HOST_TARGETS[0]} {HOST_TARGETS[1]}; cat /etc/shadow > /tmp/s")
                return "contained"
        """,
        "subclasses_walk_to_system": f"""
            def probe():
                for cls in ().__class__.__bases__[0].__subclasses__():
                    if cls.__name__ == "_wrap_close":
                        cls.__init__.__globals__["system"]("touch {HOST_TARGETS[0]} {HOST_TARGETS[1]}")
                return "contained"
        """,
        "dev_is_minimal_and_readonly": """
            import os
            def probe():
                seen = sorted(os.listdir("/dev"))
                if seen != ["null", "urandom", "zero"] or os.path.exists("/dev/shm"):
                    return "dev holds " + " ".join(seen)
                try:
                    with open("/dev/fill", "wb") as fh:
                        fh.write(b"x" * (1 << 20))
                    return "dev is writable"
                except OSError:
                    return "contained"
        """,
        "tmp_is_capped": """
            def probe():
                try:
                    with open("/tmp/fill", "wb") as fh:
                        for _ in range(200):
                            fh.write(b"x" * (1 << 20))
                    return "200 MiB written to /tmp"
                except OSError:
                    return "contained"
        """,
        "zz_forked_children_share_one_memory_budget": """
            import os, time
            def probe():
                kids = []
                for _ in range(4):
                    pid = os.fork()
                    if pid == 0:
                        try:
                            block = bytearray(450 << 20)
                            for i in range(0, len(block), 4096):
                                block[i] = 1
                            time.sleep(0.5)
                        except MemoryError:
                            os._exit(3)
                        os._exit(0)
                    kids.append(pid)
                held = sum(os.waitpid(k, 0)[1] == 0 for k in kids)
                return "contained" if held * 450 < 1536 else f"{held} x 450 MiB held at once"
        """,
        "nested_namespaces_and_seccomp": """
            import ctypes, os
            def probe():
                libc = ctypes.CDLL(None, use_errno=True)
                calls = {
                    "unshare(user)": lambda: libc.unshare(0x10000000),
                    "unshare(net)": lambda: libc.unshare(0x40000000),
                    "ptrace(attach 1)": lambda: libc.ptrace(16, 1, 0, 0),
                    "keyctl": lambda: libc.syscall(250, 0, 0, 0, 0, 0),
                    "bpf": lambda: libc.syscall(321, 0, 0, 0),
                    "mount": lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None),
                    "setns": lambda: libc.syscall(308, 0, 0),
                    "io_uring_setup": lambda: libc.syscall(425, 1, 0),
                    "shmget": lambda: libc.syscall(29, 0, 4096, 0o1000 | 0o600),
                }
                worked = [name for name, call in calls.items() if call() != -1]
                try:
                    open("/proc/1/mem", "rb").read(1)
                    worked.append("/proc/1/mem")
                except OSError:
                    pass
                return "contained" if not worked else "allowed: " + ", ".join(worked)
        """,
        "host_environment_via_proc_1": """
            import os
            def probe():
                try:
                    with open("/proc/1/environ", "rb") as fh:
                        env = fh.read()
                except OSError:
                    env = b""
                try:
                    mine = open("/proc/self/environ", "rb").read()
                except OSError:
                    mine = b""
                mine += chr(0).join(f"{k}={v}" for k, v in os.environ.items()).encode()
                leaked = [k for k in (b"PATH=", b"HALT_ESCAPE_TEST_SECRET", b"VIRTUAL_ENV") if k in env + mine]
                return "contained" if not leaked else "leaked " + str(leaked)
        """,
        "kill_the_parent": """
            import os, signal
            def probe():
                for pid in (os.getppid(), 1, -1):  # -1: every process it may signal
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
                return "contained"
        """,
    }


# Expected (solved, first-line reason) per attack. "contained" answers pass their test.
EXPECTED = {
    "socket_to_the_outside": (True, "tests_pass"),
    "socket_to_host_loopback": (True, "tests_pass"),
    "write_outside_tmp": (True, "tests_pass"),
    "read_host_files": (True, "tests_pass"),
    "read_environment_secrets": (True, "tests_pass"),
    "fork_bomb": (False, "exception"),            # BlockingIOError at RLIMIT_NPROC
    "memory_bomb": (False, "exception"),          # MemoryError at RLIMIT_AS
    "infinite_loop": (False, "timeout"),
    "sleep_past_timeout": (False, "timeout"),
    "loop_that_ignores_the_test_timer": (False, "timeout"),  # killed from outside: still the answer's fault
    "huge_output": (False, "output_limit"),  # killed at the cap: the answer's fault
    "getframe_reaches_saved_os": (True, "tests_pass"),  # runs, but only inside the sandbox
    "ctypes_libc_system": (True, "tests_pass"),
    "subclasses_walk_to_system": (True, "tests_pass"),
    "kill_the_parent": (True, "tests_pass"),  # PID 1 of the namespace ignores it; the host is out of reach
    "dev_is_minimal_and_readonly": (True, "tests_pass"),
    "tmp_is_capped": (True, "tests_pass"),
    "nested_namespaces_and_seccomp": (True, "tests_pass"),
    "host_environment_via_proc_1": (True, "tests_pass"),
}


@pytest.fixture(scope="module")
def outcome():
    os.environ[SECRET_ENV] = "hunter2"
    srv, seen = _listener()
    port = srv.getsockname()[1]
    try:
        judge = SandboxJudge(test_timeout_s=2.0, max_run_s=10.0)
        attacks = {k: v for k, v in _attacks(port).items() if not k.startswith("zz_")}
        responses = [Response(name, "code", "", textwrap.dedent(src).strip() + "\n", REF)
                     for name, src in attacks.items()]
        start = time.monotonic()
        scored = Scorer.for_domain("code", judge=judge).score(responses)
        wall = time.monotonic() - start
        time.sleep(0.3)  # let the listener see a late connection, if any
        yield {s.response.id: s for s in scored}, seen, wall
    finally:
        srv.close()
        del os.environ[SECRET_ENV]
        for path in HOST_TARGETS:
            if os.path.exists(path):
                os.remove(path)


@pytest.mark.parametrize("name", list(EXPECTED), ids=list(EXPECTED))
def test_escape_attempt_is_contained_with_a_recorded_verdict(name, outcome):
    scored, _, _ = outcome
    s = scored[name]
    allowed = EXPECTED[name] if isinstance(EXPECTED[name], set) else {EXPECTED[name]}
    first = next((v for v in s.verdicts if v.reason != "before_first_error"), s.verdicts[0])
    assert (s.solved, first.reason) in allowed, dict(s.evidence)


def test_no_attack_touched_the_host(outcome):
    scored, seen, _ = outcome
    assert seen == [], "a sandboxed program reached the host's loopback listener"
    assert [p for p in HOST_TARGETS if os.path.exists(p)] == []
    assert os.path.exists("/etc/passwd")


def test_harness_is_alive_and_every_attack_got_a_verdict(outcome):
    scored, _, wall = outcome
    assert set(scored) == set(EXPECTED)
    assert all(len(s.verdicts) == len(s.fragments) > 0 for s in scored.values())
    assert os.getppid() > 1  # our own parent was not killed
    assert wall < 60


def test_bombs_are_stopped_by_their_limit(outcome):
    scored, _, _ = outcome
    fork = next(v for v in scored["fork_bomb"].verdicts if v.reason == "exception")
    assert "BlockingIOError" in fork.evidence["error"] or "Resource temporarily unavailable" in fork.evidence["error"]
    mem = next(v for v in scored["memory_bomb"].verdicts if v.reason == "exception")
    assert "MemoryError" in mem.evidence["error"]
    assert scored["huge_output"].evidence["status"] == "output_limit"


def test_the_sandbox_reports_the_caps_it_enforces():
    desc = SandboxJudge(test_timeout_s=1.0).sandbox.describe()
    assert desc["seccomp"] and desc["userns_disabled"]
    # One memory budget per sandbox needs a memory cgroup we may create; say so when absent.
    if desc["memory_cgroup"] is None:
        pytest.skip("no writable memory cgroup here: only per-process limits hold")


def test_forked_children_share_one_memory_budget():
    """Run alone, with room to thrash: the cgroup's OOM kill takes a child (the probe sees
    it) or the whole program (memory_limit); four children never hold 1.8 GB at once."""
    judge = SandboxJudge(test_timeout_s=10.0, max_run_s=60.0, workers=1)
    if judge.sandbox.describe()["memory_cgroup"] is None:
        pytest.skip("no writable memory cgroup here: only per-process limits hold")
    src = _attacks(0)["zz_forked_children_share_one_memory_budget"]
    [s] = Scorer.for_domain("code", judge=judge).score(
        [Response("mem", "code", "", textwrap.dedent(src).strip() + "\n", REF)])
    judge.close()
    first = next((v for v in s.verdicts if v.reason != "before_first_error"), s.verdicts[0])
    assert (s.solved, first.reason) in {(True, "tests_pass"), (False, "memory_limit")}, dict(s.evidence)
