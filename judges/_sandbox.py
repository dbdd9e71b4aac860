"""Run untrusted Python programs inside a bubblewrap sandbox.

Each run gets fresh namespaces (user, mount, network, PID, IPC, UTS, cgroup), sees only a
read-only ``/usr`` (plus the interpreter's prefix when it lives elsewhere), an empty
``/proc``-backed PID view, a minimal ``/dev``, a size-capped private ``/tmp`` and its own
input files under a read-only ``/sandbox``. The environment is cleared, all capabilities are
dropped, and when the harness runs as root the sandbox runs as the host user ``nobody``
(uid 65534), so host files it could see would still be checked against an unprivileged user
and ``RLIMIT_NPROC`` is enforced (the kernel never enforces it for uid 0).

Limits: CPU seconds, address space, processes, file size and core size are set as rlimits
inside the sandbox before any untrusted code runs; a wall-clock timeout and an output cap
are enforced from outside by killing the sandbox, which tears down its PID namespace and
every process in it.

What it does not isolate: the kernel is shared (no seccomp filter; a kernel exploit
escapes), CPU and memory bandwidth are shared with the host, and the program can read the
files it is given and everything under ``/usr``. It protects the host from the program,
not the verdict from a program that targets the harness running beside it in the sandbox.

``mode="none"`` runs the same program with the same rlimits, a cleared environment and a
temporary working directory, but with no namespaces at all: network, host files and other
processes are all reachable. Use it only for trusted code (reference solutions you wrote).
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Literal

SandboxMode = Literal["bwrap", "none"]
RunStatus = Literal["exited", "wall_timeout", "output_limit"]

BWRAP = "bwrap"
INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: `apt-get install -y bubblewrap`), or pass "
    "sandbox='none' to run trusted code with no isolation"
)
# Host user the sandbox runs as when the harness is root ("nobody" on Debian).
NOBODY_UID = 65534
NOBODY_GID = 65534
# Where the sandboxed program finds its input files (read-only).
SANDBOX_DIR = "/sandbox"
# Fallback interpreter readable by an unprivileged user, when ours lives under /root.
SYSTEM_PYTHON = "/usr/bin/python3"
PROBE_TIMEOUT_S = 30.0
# Bytes read from a pipe at a time.
_CHUNK_BYTES = 65536


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of one sandboxed run.

    Attributes:
        wall_s: Wall-clock seconds before the whole sandbox is killed.
        cpu_s: CPU seconds (RLIMIT_CPU) for the program and its children.
        memory_bytes: Address space per process (RLIMIT_AS).
        nproc: Processes and threads the sandbox user may have (RLIMIT_NPROC).
        fsize_bytes: Largest file the program may write (RLIMIT_FSIZE).
        tmp_bytes: Size of the private ``/tmp`` (bwrap only).
        output_bytes: Captured stdout and stderr, each; past this the run is killed.
    """

    wall_s: float = 30.0
    cpu_s: int = 30
    memory_bytes: int = 1 << 30
    nproc: int = 32
    fsize_bytes: int = 16 << 20
    tmp_bytes: int = 64 << 20
    output_bytes: int = 8 << 20

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {value!r}")


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one sandboxed run produced.

    Attributes:
        status: ``exited`` (on its own), ``wall_timeout`` or ``output_limit`` (killed).
        returncode: Exit code; negative for a signal (``-9`` when killed).
        stdout: Captured standard output, at most ``Limits.output_bytes``.
        stderr: Captured standard error, at most ``Limits.output_bytes``.
        wall_s: Seconds from start to exit.
    """

    status: RunStatus
    returncode: int | None
    stdout: bytes
    stderr: bytes
    wall_s: float


@dataclass(frozen=True, slots=True)
class Job:
    """One program to run.

    Attributes:
        files: Name (no slashes) to content, placed read-only in ``/sandbox``.
        main: The file in ``files`` that is run as ``__main__``.
        args: Command-line arguments given to ``main``.
        stdin: Bytes fed to standard input.
        limits: Limits of this run (the sandbox's own when ``None``).
    """

    files: Mapping[str, bytes]
    main: str
    args: tuple[str, ...] = ()
    stdin: bytes = b""
    limits: Limits | None = None


def _prelude(limits: Limits) -> str:
    """Python run first inside the sandbox: set the rlimits, then run the job's main file.

    RLIMIT_NPROC is set here, inside the new user namespace, so it counts only this
    sandbox's processes rather than every process of the host user.
    """
    rl = {
        "RLIMIT_CPU": (limits.cpu_s, limits.cpu_s),
        "RLIMIT_AS": (limits.memory_bytes, limits.memory_bytes),
        "RLIMIT_NPROC": (limits.nproc, limits.nproc),
        "RLIMIT_FSIZE": (limits.fsize_bytes, limits.fsize_bytes),
        "RLIMIT_CORE": (0, 0),
    }
    return (
        "import resource as _r, sys as _s\n"
        f"for _k, _v in {rl!r}.items():\n"
        "    _r.setrlimit(getattr(_r, _k), _v)\n"
        "_s.argv = _s.argv[1:]\n"
        "with open(_s.argv[0], 'rb') as _f:\n"
        "    _c = compile(_f.read(), _s.argv[0], 'exec')\n"
        "_g = {'__name__': '__main__', '__file__': _s.argv[0], '__builtins__': __builtins__}\n"
        "del _k, _v, _f, _r\n"
        "exec(_c, _g)\n"
    )


class Sandbox:
    """Runs jobs in bubblewrap (or, by explicit choice, with no isolation).

    Args:
        mode: ``bwrap`` (default) or ``none`` (no isolation; trusted code only).
        limits: Default limits of each run.
        python: Interpreter run inside the sandbox. By default the harness's own
            interpreter, or ``/usr/bin/python3`` when ours is not readable by the
            unprivileged sandbox user (a pyenv under ``/root``).
        workers: Runs at once in ``run_many``; defaults to twice the number of CPUs.

    Raises:
        RuntimeError: bubblewrap is missing or cannot create namespaces here, or no usable
            interpreter was found (the message names the fix).
        ValueError: ``mode`` is not one of ``bwrap``, ``none``.
    """

    def __init__(self, mode: SandboxMode = "bwrap", *, limits: Limits | None = None,
                 python: str | None = None, workers: int | None = None) -> None:
        if mode not in ("bwrap", "none"):
            raise ValueError(f"sandbox mode must be 'bwrap' or 'none', got {mode!r}")
        self.mode: SandboxMode = mode
        self.limits = limits or Limits()
        # Twice the CPUs: part of each run is spent waiting on the kernel to build namespaces.
        self.workers = workers or 2 * (os.cpu_count() or 1)
        self._as_nobody = mode == "bwrap" and os.geteuid() == 0
        self.python = python or self._default_python()
        self._bwrap = shutil.which(BWRAP) if mode == "bwrap" else None
        if mode == "bwrap" and self._bwrap is None:
            raise RuntimeError(f"the code sandbox needs bubblewrap, which is not on PATH: {INSTALL_HINT}")
        self._setpriv = shutil.which("setpriv") if self._as_nobody else None
        self._extra_ro: list[str] = []
        self.python_version = self._probe()

    def describe(self) -> dict:
        """JSON-safe description for run headers: mode, interpreter, limits."""
        return {"mode": self.mode, "python": self.python, "python_version": self.python_version,
                "as_nobody": self._as_nobody, "limits": asdict(self.limits)}

    def run(self, job: Job) -> RunResult:
        """Run one job and return what it produced; never raises over the program's behaviour.

        A sandbox that cannot be started (the host out of processes or memory) gives an
        ``exited`` result with no return code and the reason in ``stderr``.
        """
        limits = job.limits or self.limits
        scratch = (tempfile.TemporaryDirectory(prefix="halt-sbx-") if self.mode == "none"
                   else contextlib.nullcontext("/"))
        with scratch as tmp:
            argv, pass_fds, cwd = self._command(job, limits, tmp)
            try:
                return self._execute(argv, pass_fds, cwd, job.stdin, limits)
            except OSError as e:
                return RunResult("exited", None, b"", f"sandbox failed to start: {e}".encode(), 0.0)
            finally:
                for fd in pass_fds:
                    os.close(fd)

    def run_many(self, jobs: Sequence[Job]) -> list[RunResult]:
        """Run jobs in parallel, ``workers`` at a time; results in the order of ``jobs``."""
        if len(jobs) <= 1 or self.workers == 1:
            return [self.run(j) for j in jobs]
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            return list(pool.map(self.run, jobs))

    # -- construction ------------------------------------------------------------------

    def _default_python(self) -> str:
        if not self._as_nobody or _world_readable(sys.executable):
            return sys.executable
        return SYSTEM_PYTHON

    def _probe(self) -> str:
        """Run a trivial program in the sandbox; fail closed if that does not work."""
        if not os.access(self.python, os.X_OK):
            raise RuntimeError(f"sandbox interpreter {self.python!r} is not executable; pass "
                               f"python=<path to python3>")
        code = b"import sys, json\nprint(json.dumps([sys.base_prefix, sys.version.split()[0]]))\n"
        if self.mode == "bwrap":
            prefix = self._prefix_outside()
            if prefix and not prefix.startswith("/usr/"):
                self._extra_ro.append(prefix)
        result = self.run(Job({"probe.py": code}, "probe.py",
                              limits=Limits(wall_s=PROBE_TIMEOUT_S, cpu_s=int(PROBE_TIMEOUT_S))))
        try:
            prefix, version = json.loads(result.stdout.decode())
        except ValueError:
            log = result.stderr.decode(errors="replace").strip()[-500:]
            raise RuntimeError(
                f"the code sandbox ({self.mode}) could not run {self.python}: {log or result.status}. "
                f"bubblewrap must be able to create user, network and PID namespaces here; "
                f"{INSTALL_HINT}"
            ) from None
        return version

    def _prefix_outside(self) -> str | None:
        """The interpreter's prefix, to bind read-only when it is outside ``/usr``."""
        real = os.path.realpath(self.python)
        if real.startswith("/usr/"):
            return None
        out = subprocess.run([self.python, "-c", "import sys; print(sys.base_prefix)"],
                             capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False)
        return out.stdout.strip() or os.path.dirname(os.path.dirname(real))

    # -- one run -----------------------------------------------------------------------

    def _command(self, job: Job, limits: Limits, tmp: str) -> tuple[list[str], list[int], str]:
        for name in job.files:
            if "/" in name or name in ("", ".", ".."):
                raise ValueError(f"sandbox file name {name!r} must be a plain file name")
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8",
               "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONIOENCODING": "utf-8"}
        if self.mode == "none":
            run_dir = os.path.join(tmp, "sandbox")
            os.mkdir(run_dir)
            for name, data in job.files.items():
                with open(os.path.join(run_dir, name), "wb") as fh:
                    fh.write(data)
            main = os.path.join(run_dir, job.main)
            argv = ["env", "-i", *(f"{k}={v}" for k, v in {**env, "HOME": tmp, "TMPDIR": tmp}.items()),
                    self.python, "-s", "-c", _prelude(limits), main, *job.args]
            return argv, [], tmp
        fds: list[int] = []
        # Dropping to nobody through setpriv lets subprocess spawn with vfork, not fork.
        launcher = ([self._setpriv, f"--reuid={NOBODY_UID}", f"--regid={NOBODY_GID}", "--clear-groups"]
                    if self._as_nobody and self._setpriv else [])
        argv = [*launcher, self._bwrap or BWRAP, "--unshare-all", "--die-with-parent", "--new-session",
                "--cap-drop", "ALL", "--clearenv", "--hostname", "sandbox"]
        for k, v in env.items():
            argv += ["--setenv", k, v]
        argv += ["--ro-bind", "/usr", "/usr"]
        for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            path = "/" + top
            if os.path.islink(path):
                argv += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                argv += ["--ro-bind", path, path]
        argv += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
        for path in self._extra_ro:
            argv += ["--ro-bind", path, path]
        argv += ["--proc", "/proc", "--dev", "/dev", "--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
        for name, data in job.files.items():
            fd = os.memfd_create(f"halt-{name}")
            fds.append(fd)
            os.write(fd, data)
            os.lseek(fd, 0, os.SEEK_SET)
            argv += ["--ro-bind-data", str(fd), f"{SANDBOX_DIR}/{name}"]
        argv += ["--remount-ro", "/", "--chdir", "/tmp", "--",
                 self.python, "-s", "-c", _prelude(limits), f"{SANDBOX_DIR}/{job.main}", *job.args]
        return argv, fds, "/"

    def _execute(self, argv: list[str], pass_fds: list[int], cwd: str, stdin: bytes,
                 limits: Limits) -> RunResult:
        extra = ({"user": NOBODY_UID, "group": NOBODY_GID, "extra_groups": []}
                 if self._as_nobody and not self._setpriv else {})
        # stdin comes from a memory file, so a program that never reads it cannot block us.
        stdin_fd = os.memfd_create("halt-stdin")
        os.write(stdin_fd, stdin)
        os.lseek(stdin_fd, 0, os.SEEK_SET)
        start = time.monotonic()
        try:
            # bwrap gets no environment of ours: its PID-1 process stays visible to the
            # program as /proc/1, environ included.
            proc = subprocess.Popen(argv, stdin=stdin_fd, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, pass_fds=pass_fds, cwd=cwd,
                                    env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                                    start_new_session=True, **extra)
        finally:
            os.close(stdin_fd)
        status: RunStatus = "exited"
        out = {proc.stdout: bytearray(), proc.stderr: bytearray()}
        sel = selectors.DefaultSelector()
        for pipe in out:
            os.set_blocking(pipe.fileno(), False)
            sel.register(pipe, selectors.EVENT_READ)
        try:
            deadline = start + limits.wall_s
            while sel.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    status = "wall_timeout"
                    break
                for key, _ in sel.select(timeout=min(remaining, 1.0)):
                    chunk = key.fileobj.read(_CHUNK_BYTES)
                    if not chunk:
                        sel.unregister(key.fileobj)
                        continue
                    buf = out[key.fileobj]
                    buf += chunk[: max(0, limits.output_bytes - len(buf))]
                    if len(buf) >= limits.output_bytes:
                        status = "output_limit"
                if status != "exited":
                    break
            if status != "exited":
                _kill(proc)
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                status = "wall_timeout"
                _kill(proc)
                proc.wait()
        finally:
            sel.close()
            for pipe in out:
                pipe.close()
            if proc.poll() is None:
                _kill(proc)
                proc.wait()
        return RunResult(status, proc.returncode, bytes(out[proc.stdout]), bytes(out[proc.stderr]),
                         round(time.monotonic() - start, 4))


def _kill(proc: subprocess.Popen) -> None:
    """Kill the sandbox's process group; bwrap's death tears down its PID namespace."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _world_readable(path: str) -> bool:
    """Whether an unprivileged user can reach and run ``path`` (every parent searchable)."""
    real = os.path.realpath(path)
    parts = real.split("/")
    for i in range(2, len(parts)):
        if not os.stat("/".join(parts[:i])).st_mode & 0o001:
            return False
    return bool(os.stat(real).st_mode & 0o005 == 0o005)


__all__ = ["Job", "Limits", "RunResult", "Sandbox", "SandboxMode", "INSTALL_HINT"]
