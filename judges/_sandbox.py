"""Warm bubblewrap sandboxes that run untrusted Python programs one at a time.

A ``Sandbox`` keeps a few warm sandboxes (``Session``), one per worker thread. Each is one
bubblewrap instance whose PID 1 is the server in ``_sandbox_runner.py``: for every program
it forks a fresh child, so programs never share a process, and after each one it kills
everything else in the sandbox and empties ``/tmp``, so they share no state either.

Isolation of each sandbox (bwrap mode):

- namespaces: user (no further user namespaces: ``--disable-userns``), mount, network, PID,
  IPC, UTS, cgroup; ``--new-session``, ``--die-with-parent``, all capabilities dropped;
- a seccomp filter (``_sandbox_seccomp``): ptrace, namespaces, mounts, keyrings, BPF, perf,
  io_uring, userfaultfd, modules, clock setting, System V IPC, message queues, TIOCSTI;
- files: read-only ``/usr`` (and the ``/bin``/``/lib*`` links), ``/etc/ld.so.cache``, the
  interpreter's prefix when outside ``/usr``; ``/proc``; a read-only 64 KiB ``/dev`` holding
  only ``null``, ``zero`` and ``urandom`` (no ``/dev/shm``); a private size-capped ``/tmp``;
  the runner as a read-only file; ``/`` read-only;
- an environment with nothing of the host's (``LANG``, ``HOME=/tmp``, ``PYTHONHASHSEED=0``,
  ``PYTHONIOENCODING``), the server started with ``python3 -S -s -B``;
- as host user ``nobody`` when the harness is root (the kernel never enforces
  ``RLIMIT_NPROC`` for uid 0);
- one memory budget for all the sandbox's processes and its tmpfs together: a memory
  cgroup per sandbox (v2 ``memory.max`` or v1 ``memory.limit_in_bytes``) when the harness
  may create one; otherwise only the per-process limits below (``describe()`` says which);
- per program (set in the child before any answer code): ``RLIMIT_CPU``, ``RLIMIT_AS``,
  ``RLIMIT_NPROC``, ``RLIMIT_FSIZE``, no core files; from the server: a wall deadline, a
  stall deadline, caps on the result channel and the log; from the host: a deadline on
  the server's reply, past which the whole sandbox is killed.

``mode="none"`` runs the same server with the same per-program limits in a temporary
directory, with no namespaces, no seccomp filter and no memory cgroup: network, host files
and other processes are all reachable. Use it only for trusted code.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Literal, TypeVar

from halt_eval.judges import _sandbox_runner, _sandbox_seccomp

SandboxMode = Literal["bwrap", "none"]

BWRAP = "bwrap"
INSTALL_HINT = (
    "install bubblewrap (Debian/Ubuntu: `apt-get install -y bubblewrap`), or pass "
    "sandbox='none' to run trusted code with no isolation"
)
# Host user the sandbox runs as when the harness is root ("nobody" on Debian).
NOBODY_UID = 65534
NOBODY_GID = 65534
# Where the runner is placed inside the sandbox (read-only).
SANDBOX_DIR = "/sandbox"
# Fallback interpreter readable by an unprivileged user, when ours lives under /root.
SYSTEM_PYTHON = "/usr/bin/python3"
PROBE_TIMEOUT_S = 30.0
# Seconds the host waits for the server's reply beyond the program's own wall limit.
REPLY_SLACK_S = 15.0
# Size of the read-only /dev tmpfs.
DEV_BYTES = 65536
CGROUP_ROOT = "/sys/fs/cgroup"
_session_ids = itertools.count()
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits.

    Attributes:
        wall_s: Default wall-clock seconds of one program.
        cpu_s: CPU seconds of one program (RLIMIT_CPU of its process, children included).
        memory_bytes: Address space per process (RLIMIT_AS).
        sandbox_memory_bytes: Memory of the whole sandbox (all its processes and its
            tmpfs), where a memory cgroup can be made.
        nproc: Processes and threads of one program (RLIMIT_NPROC).
        fsize_bytes: Largest file a program may write (RLIMIT_FSIZE).
        tmp_bytes: Size of the private ``/tmp`` (bwrap only).
        output_bytes: A program's log (stdout and stderr together); past it the program is killed.
        result_bytes: A program's result channel; past it the program is killed.
    """

    wall_s: float = 30.0
    cpu_s: int = 30
    memory_bytes: int = 1 << 30
    sandbox_memory_bytes: int = 1536 << 20
    nproc: int = 32
    fsize_bytes: int = 16 << 20
    tmp_bytes: int = 64 << 20
    output_bytes: int = 8 << 20
    result_bytes: int = 4 << 20

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if value <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {value!r}")


@dataclass(frozen=True, slots=True)
class Outcome:
    """One program's run, as the sandbox's server (trusted) reports it.

    Attributes:
        killed: Why it was killed, or ``None`` when it ended on its own: ``wall`` (its wall
            limit), ``stall`` (no result for longer than a test may take), ``output_limit``,
            ``result_limit``, ``memory_limit`` (the sandbox's memory budget),
            ``fork_failed``, ``sandbox_died`` (the sandbox stopped answering or could not
            start; ``error`` says why).
        exit: Exit code of the program's process, if it exited.
        signal: Signal that ended it, if any.
        result: Bytes of its result channel (untrusted), at most ``Limits.result_bytes``.
        log: The tail of its stdout and stderr (untrusted).
        wall_s: Seconds it ran.
        error: The host's or server's own explanation, for ``sandbox_died``/``fork_failed``.
    """

    killed: str | None
    exit: int | None
    signal: int | None
    result: bytes
    log: bytes
    wall_s: float
    error: str = ""


class Session:
    """One warm sandbox: a server that runs one program at a time in a fresh child."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.cgroup: str | None = None
        self.proc: subprocess.Popen | None = None
        self._stderr = tempfile.TemporaryFile(prefix="halt-sbx-log-")
        self._scratch: tempfile.TemporaryDirectory | None = None
        self._buf = bytearray()
        self.start_error = ""
        fds: list[int] = []
        try:
            argv, fds, cwd = sandbox._server_command(self)
            extra = ({"user": NOBODY_UID, "group": NOBODY_GID, "extra_groups": []}
                     if sandbox._as_nobody and not sandbox._setpriv else {})
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self._stderr, pass_fds=fds, cwd=cwd, env={},
                                         start_new_session=True, **extra)
            os.set_blocking(self.proc.stdout.fileno(), False)
            os.set_blocking(self.proc.stdin.fileno(), False)
        except OSError as e:  # the host is out of processes or memory: no sandbox this time
            self.start_error = f"sandbox failed to start: {e}"
            self.proc = None
        finally:
            for fd in fds:
                os.close(fd)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def run(self, body: bytes, *, wall_s: float, stall_s: float, limits: Limits) -> Outcome:
        """Run one program (its job body, read by the child alone) and return its outcome."""
        if not self.alive:
            return Outcome("sandbox_died", None, None, b"", b"", 0.0,
                           self.start_error or self.startup_log() or "the sandbox is not running")
        hdr = json.dumps({
            "body_len": len(body), "wall_s": wall_s, "stall_s": stall_s,
            "result_bytes": limits.result_bytes, "output_bytes": limits.output_bytes,
            "rlimits": {"RLIMIT_CPU": limits.cpu_s, "RLIMIT_AS": limits.memory_bytes,
                        "RLIMIT_NPROC": limits.nproc, "RLIMIT_FSIZE": limits.fsize_bytes,
                        "RLIMIT_CORE": 0},
        }).encode()
        pending = memoryview(len(hdr).to_bytes(4, "big") + hdr + body)
        ooms = self.sandbox._oom_count(self.cgroup)
        deadline = time.monotonic() + wall_s + REPLY_SLACK_S
        out_fd, in_fd = self.proc.stdout.fileno(), self.proc.stdin.fileno()
        self._buf.clear()
        frame = None
        try:
            while frame is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("the sandbox did not answer in time")
                r, w, _ = select.select([out_fd], [in_fd] if pending else [], [], remaining)
                if w:
                    try:
                        n = os.write(in_fd, pending[: 1 << 16])
                        pending = pending[n:]
                    except BlockingIOError:
                        pass
                if r:
                    chunk = os.read(out_fd, 1 << 20)
                    if not chunk:
                        raise EOFError("the sandbox ended")
                    self._buf += chunk
                    frame = self._frame(limits)
        except (OSError, EOFError, TimeoutError, ValueError) as e:
            self.close()
            return Outcome("sandbox_died", None, None, b"", b"", 0.0, f"{e}; {self.startup_log()}")
        meta, result, log = frame
        killed = meta.get("killed")
        if killed is None and self.sandbox._oom_count(self.cgroup) > ooms:
            killed = "memory_limit"
        return Outcome(killed, meta.get("exit"), meta.get("signal"), result, log,
                       float(meta.get("wall_s") or 0.0), str(meta.get("error") or ""))

    def _frame(self, limits: Limits) -> tuple[dict, bytes, bytes] | None:
        buf = self._buf
        if len(buf) < 4:
            return None
        n = int.from_bytes(buf[:4], "big")
        if n > 65536:
            raise ValueError("malformed frame from the sandbox server")
        if len(buf) < 4 + n:
            return None
        meta = json.loads(bytes(buf[4:4 + n]))
        r_len, l_len = int(meta["result_len"]), int(meta["log_len"])
        if r_len > limits.result_bytes or l_len > _sandbox_runner.LOG_TAIL_BYTES:
            raise ValueError("oversized frame from the sandbox server")
        end = 4 + n + r_len + l_len
        if len(buf) < end:
            return None
        if len(buf) > end:
            raise ValueError("trailing bytes from the sandbox server")
        return meta, bytes(buf[4 + n:4 + n + r_len]), bytes(buf[4 + n + r_len:end])

    def startup_log(self) -> str:
        if self._stderr.closed:
            return ""
        try:
            self._stderr.seek(0)
            return self._stderr.read()[-2000:].decode("utf-8", errors="replace").strip()
        except (OSError, ValueError):
            return ""

    def close(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            for pipe in (self.proc.stdin, self.proc.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass
        if self.cgroup:
            self.sandbox._remove_cgroup(self.cgroup)
            self.cgroup = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None
        self._stderr.close()


class Sandbox:
    """Runs programs in warm bubblewrap sandboxes (or, by explicit choice, with no isolation).

    Args:
        mode: ``bwrap`` (default) or ``none`` (no isolation; trusted code only).
        limits: Limits of each program and sandbox.
        python: Interpreter run inside the sandbox. By default the harness's own
            interpreter, or ``/usr/bin/python3`` when ours is not readable by the
            unprivileged sandbox user (a pyenv under ``/root``).
        workers: Warm sandboxes (programs at once); defaults to twice the number of CPUs.

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
        self.workers = workers or 2 * (os.cpu_count() or 1)
        self._as_nobody = mode == "bwrap" and os.geteuid() == 0
        self.python = python or self._default_python()
        self._bwrap = shutil.which(BWRAP) if mode == "bwrap" else None
        if mode == "bwrap" and self._bwrap is None:
            raise RuntimeError(f"the code sandbox needs bubblewrap, which is not on PATH: {INSTALL_HINT}")
        self._setpriv = shutil.which("setpriv") if self._as_nobody else None
        self._extra_ro: list[str] = []
        self._seccomp = _sandbox_seccomp.program() if mode == "bwrap" else None
        with open(_sandbox_runner.__file__, "rb") as fh:
            self._runner = fh.read()
        self._cgroup_parent, self._cgroup_version = (self._find_cgroup() if mode == "bwrap"
                                                     else (None, None))
        self._idle: queue.SimpleQueue[Session] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._sessions: weakref.WeakSet[Session] = weakref.WeakSet()
        weakref.finalize(self, Sandbox._close_all, self._sessions)
        if mode == "bwrap":
            prefix = self._prefix_outside()
            if prefix and not prefix.startswith("/usr/"):
                self._extra_ro.append(prefix)
        self.python_version = self._probe()

    def describe(self) -> dict:
        """JSON-safe description for run headers: mode, interpreter, limits, what is enforced."""
        return {"mode": self.mode, "python": self.python, "python_version": self.python_version,
                "as_nobody": self._as_nobody, "limits": asdict(self.limits),
                "seccomp": self._seccomp is not None,
                "memory_cgroup": self._cgroup_version or None,
                "userns_disabled": self.mode == "bwrap"}

    # -- running ---------------------------------------------------------------------------

    def run(self, body: bytes, *, wall_s: float, stall_s: float, limits: Limits | None = None) -> Outcome:
        """Run one program in a warm sandbox (taken from, and returned to, the pool)."""
        session = self._take()
        try:
            return self.run_in(session, body, wall_s=wall_s, stall_s=stall_s, limits=limits)
        finally:
            self._give(session)

    def run_in(self, session: Session, body: bytes, *, wall_s: float, stall_s: float,
               limits: Limits | None = None) -> Outcome:
        """Run one program in ``session``; a sandbox that died is replaced and the program
        run once more there (so one program's outcome never depends on its neighbours)."""
        limits = limits or self.limits
        out = session.run(body, wall_s=wall_s, stall_s=stall_s, limits=limits)
        if out.killed == "sandbox_died":
            session.close()
            session.__init__(self)  # a fresh sandbox in the same slot
            out = session.run(body, wall_s=wall_s, stall_s=stall_s, limits=limits)
        return out

    def map(self, fn: Callable[[Session, T], R], items: Sequence[T]) -> list[R]:
        """``fn(session, item)`` for every item, ``workers`` warm sandboxes at once; in order."""
        if not items:
            return []

        def work(item: T) -> R:
            session = self._take()
            try:
                return fn(session, item)
            finally:
                self._give(session)
        if len(items) == 1 or self.workers == 1:
            return [work(i) for i in items]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(items))) as pool:
            return list(pool.map(work, items))

    def close(self) -> None:
        """Stop every warm sandbox."""
        Sandbox._close_all(self._sessions)

    @staticmethod
    def _close_all(sessions: Iterable[Session]) -> None:
        for s in list(sessions):
            s.close()

    def _take(self) -> Session:
        try:
            s = self._idle.get_nowait()
            if s.alive:
                return s
            s.close()
        except queue.Empty:
            pass
        s = Session(self)
        self._sessions.add(s)
        return s

    def _give(self, session: Session) -> None:
        if session.alive:
            self._idle.put(session)
        else:
            session.close()

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
        body = json.dumps({"code": "import sys\n", "kind": "asserts", "test_timeout_s": PROBE_TIMEOUT_S,
                           "steps": [{"t": "eval", "src": "sys.version.split()[0]"}]}).encode()
        try:
            out = self.run(body, wall_s=PROBE_TIMEOUT_S, stall_s=PROBE_TIMEOUT_S)
        except OSError as e:
            out = Outcome("sandbox_died", None, None, b"", b"", 0.0, str(e))
        for line in out.result.decode("utf-8", errors="replace").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("v"), str):
                return rec["v"]
        log = (out.error or out.log.decode("utf-8", errors="replace")).strip()[-500:]
        raise RuntimeError(
            f"the code sandbox ({self.mode}) could not run {self.python}: {log or out.killed}. "
            f"bubblewrap must be able to create user, network and PID namespaces here; "
            f"{INSTALL_HINT}"
        )

    def _prefix_outside(self) -> str | None:
        """The interpreter's prefix, to bind read-only when it is outside ``/usr``."""
        real = os.path.realpath(self.python)
        if real.startswith("/usr/"):
            return None
        out = subprocess.run([self.python, "-c", "import sys; print(sys.base_prefix)"],
                             capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False)
        return out.stdout.strip() or os.path.dirname(os.path.dirname(real))

    # -- memory cgroup -------------------------------------------------------------------

    def _find_cgroup(self) -> tuple[str | None, str | None]:
        """A memory cgroup directory we may create children in, and its version ("v1"/"v2")."""
        try:
            with open("/proc/self/cgroup") as fh:
                lines = fh.read().splitlines()
        except OSError:
            return None, None
        candidates = []
        for line in lines:
            _, controllers, path = line.split(":", 2)
            if controllers == "" and os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
                candidates.append((os.path.join(CGROUP_ROOT, path.lstrip("/")), "v2"))
            elif "memory" in controllers.split(","):
                candidates.append((os.path.join(CGROUP_ROOT, "memory", path.lstrip("/")), "v1"))
        for parent, version in candidates:
            probe = os.path.join(parent, f"halt-sbx-probe-{os.getpid()}")
            try:
                os.mkdir(probe)
                limit = "memory.max" if version == "v2" else "memory.limit_in_bytes"
                with open(os.path.join(probe, limit), "w") as fh:
                    fh.write(str(self.limits.sandbox_memory_bytes))
                os.rmdir(probe)
                return parent, version
            except OSError:
                try:
                    os.rmdir(probe)
                except OSError:
                    pass
        return None, None

    def _make_cgroup(self) -> str | None:
        if not self._cgroup_parent:
            return None
        path = os.path.join(self._cgroup_parent, f"halt-sbx-{os.getpid()}-{next(_session_ids)}")
        budget = str(self.limits.sandbox_memory_bytes)
        try:
            os.mkdir(path)
            if self._cgroup_version == "v2":
                _write(os.path.join(path, "memory.max"), budget)
                _write(os.path.join(path, "memory.swap.max"), "0", optional=True)
            else:
                _write(os.path.join(path, "memory.limit_in_bytes"), budget)
                _write(os.path.join(path, "memory.memsw.limit_in_bytes"), budget, optional=True)
        except OSError:
            self._remove_cgroup(path)
            return None
        return path

    def _remove_cgroup(self, path: str) -> None:
        for _ in range(50):
            try:
                os.rmdir(path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)

    def _oom_count(self, path: str | None) -> int:
        if not path:
            return 0
        name = "memory.events" if self._cgroup_version == "v2" else "memory.oom_control"
        try:
            with open(os.path.join(path, name)) as fh:
                for line in fh:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
        except (OSError, ValueError):
            pass
        return 0

    # -- the server's command line -------------------------------------------------------

    def _server_command(self, session: Session) -> tuple[list[str], list[int], str]:
        env = {"HOME": "/tmp", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONIOENCODING": "utf-8"}
        py = [self.python, "-S", "-s", "-B"]
        if self.mode == "none":
            session._scratch = tempfile.TemporaryDirectory(prefix="halt-sbx-")
            tmp = session._scratch.name
            runner = os.path.join(tmp, "runner.py")
            with open(runner, "wb") as fh:
                fh.write(self._runner)
            work = os.path.join(tmp, "work")
            os.mkdir(work)
            argv = ["/usr/bin/env", "-i", *(f"{k}={v}" for k, v in {**env, "HOME": work, "TMPDIR": work}.items()),
                    *py, runner]
            return argv, [], work
        fds: list[int] = []

        def memfd(name: str, data: bytes) -> int:
            fd = os.memfd_create(name)
            fds.append(fd)
            os.write(fd, data)
            os.lseek(fd, 0, os.SEEK_SET)
            return fd

        session.cgroup = self._make_cgroup()
        launcher: list[str] = []
        if session.cgroup:
            # Enter the cgroup before anything of the sandbox exists; exec keeps the PID.
            launcher = ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', session.cgroup]
        if self._as_nobody and self._setpriv:
            launcher += [self._setpriv, f"--reuid={NOBODY_UID}", f"--regid={NOBODY_GID}", "--clear-groups"]
        argv = [*launcher, self._bwrap or BWRAP, "--unshare-all", "--unshare-user", "--disable-userns",
                "--die-with-parent", "--new-session", "--as-pid-1", "--cap-drop", "ALL", "--clearenv",
                "--hostname", "sandbox"]
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
        argv += ["--proc", "/proc", "--size", str(DEV_BYTES), "--tmpfs", "/dev"]
        for dev in ("null", "zero", "urandom"):
            argv += ["--dev-bind", f"/dev/{dev}", f"/dev/{dev}"]
        argv += ["--remount-ro", "/dev", "--size", str(self.limits.tmp_bytes), "--tmpfs", "/tmp"]
        argv += ["--ro-bind-data", str(memfd("halt-runner", self._runner)), f"{SANDBOX_DIR}/runner.py"]
        if self._seccomp is not None:
            argv += ["--seccomp", str(memfd("halt-seccomp", self._seccomp))]
        argv += ["--remount-ro", "/", "--chdir", "/tmp", "--", *py, f"{SANDBOX_DIR}/runner.py"]
        return argv, fds, "/"


def _write(path: str, value: str, optional: bool = False) -> None:
    try:
        with open(path, "w") as fh:
            fh.write(value)
    except OSError:
        if not optional:
            raise


def _world_readable(path: str) -> bool:
    """Whether an unprivileged user can reach and run ``path`` (every parent searchable)."""
    real = os.path.realpath(path)
    parts = real.split("/")
    for i in range(2, len(parts)):
        if not os.stat("/".join(parts[:i])).st_mode & 0o001:
            return False
    return bool(os.stat(real).st_mode & 0o005 == 0o005)


__all__ = ["Limits", "Outcome", "Sandbox", "SandboxMode", "Session", "INSTALL_HINT"]
