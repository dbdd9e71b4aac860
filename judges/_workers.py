"""Worker processes that run checks under a time limit and are killed when they overrun.

A worker is a fresh interpreter started with ``python -m halt_eval.judges._workers`` and
talks to its pool over a socket pair. It never imports the caller's ``__main__``, so a user
script that calls the Python API without an ``if __name__ == "__main__":`` guard runs once
(``multiprocessing``'s spawn and forkserver start methods re-import the main script in every
child). No process-wide setting of the caller is touched.

The worker imports the runner given as ``module:function`` (and with it sympy and the
parsers) before it reports ready, so a check's clock starts only once imports are done.
Replacing a killed worker costs one interpreter start (about a second with sympy loaded);
after its first replacement a pool keeps one spare started, so later timeouts do not wait.

Each worker also runs under an address-space limit (``RLIMIT_AS``, ``MEMORY_LIMIT_BYTES`` by
default): a check that would need more (a huge power expanded) fails with ``MemoryError``
inside the worker, which reports it as a ``memory_limit`` result and goes on to the next check.
"""

from __future__ import annotations

import gc
import importlib
import logging
import math
import multiprocessing
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
log = logging.getLogger(__name__)

#: Checks sent to a worker in one message: large enough to amortize the pipe, small enough
#: that a killed worker loses little.
CHUNK = 64
#: A check is also stopped after this many times ``timeout_s`` of wall clock (a check that
#: sleeps or waits uses no CPU). On a shared, loaded machine the CPU limit keeps slow but
#: progressing checks from being cut short.
WALL_FACTOR = 10.0
#: Longest time a new worker may take to load its runner before its first check.
STARTUP_TIMEOUT_S = 120.0
#: Address space (``RLIMIT_AS``) of one worker, in bytes. A worker with sympy, math-verify and
#: latex2sympy loaded maps 66 MB and ordinary checks add little; expanding ``(x+1)^{100000}``
#: (an identity check) reached 540 MB within its 3 CPU seconds here, and a worker was seen at
#: 1.1 GB. 1 GiB leaves ordinary checks over ten times their room, while two workers cannot
#: push a small machine into swap. ``WorkerPool(memory_bytes=None)``: no limit.
MEMORY_LIMIT_BYTES = 1 << 30
_READY = "ready"


class _Worker:
    def __init__(self, runner: str, preload: Sequence[str], memory_bytes: int | None) -> None:
        parent, child = multiprocessing.Pipe(duplex=True)  # a socket pair; no process started
        fd = child.fileno()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", __name__, str(fd), str(memory_bytes or 0), runner, *preload],
            pass_fds=(fd,), stdin=subprocess.DEVNULL, close_fds=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
        )
        child.close()
        self.conn: Connection = parent
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

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """Ask the worker to exit; kill it if it does not within a second."""
        if self.alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=1)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
        self.proc.wait()
        self.conn.close()


class WorkerPool:
    """Worker processes that run tasks in batches, each task under a time limit.

    A worker that overruns the limit on one task (``timeout_s`` of CPU time, or
    ``WALL_FACTOR * timeout_s`` of wall clock) is killed and replaced; the task gets a
    ``timeout`` result and the rest of its batch goes to the replacement. A worker's clock
    starts when it reports ready (imports done), not when it is started. A task that needs
    more than ``memory_bytes`` of address space gets a ``memory_limit`` result (the worker
    catches the ``MemoryError`` and goes on); one whose worker dies gets an ``error``.

    Args:
        n: Worker processes.
        timeout_s: Time limit of one task, in seconds.
        runner: ``module:function`` the workers call on each task; it returns a dict.
        preload: Modules a worker imports before it reports ready (so that their import
            time is not charged to the first task).
        memory_bytes: Address-space limit of each worker (``RLIMIT_AS``); ``None``: none.
    """

    def __init__(self, n: int, timeout_s: float, runner: str, preload: Sequence[str] = (),
                 memory_bytes: int | None = MEMORY_LIMIT_BYTES) -> None:
        if memory_bytes is not None and memory_bytes <= 0:
            raise ValueError(f"memory_bytes must be > 0 or None, got {memory_bytes!r}")
        self.timeout_s = timeout_s
        self.runner = runner
        self.preload = tuple(preload)
        self.memory_bytes = memory_bytes
        self.workers = [self._start() for _ in range(n)]
        self._spare: _Worker | None = None

    def _start(self) -> _Worker:
        return _Worker(self.runner, self.preload, self.memory_bytes)

    def close(self) -> None:
        for w in self.workers + ([self._spare] if self._spare else []):
            w.stop()
        self.workers = []
        self._spare = None

    def run(self, tasks: Sequence[tuple]) -> list[dict]:
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

    def _send(self, k: int, idx: list[int], tasks: Sequence[tuple]) -> None:
        w = self.workers[k]
        w.queue.extend(idx)
        if w.ready:
            w.begin_check(self.timeout_s)
        else:
            w.deadline = time.monotonic() + STARTUP_TIMEOUT_S
        w.conn.send([(i, tasks[i]) for i in idx])

    def _replace(self, k: int, tasks: Sequence[tuple], results: list, result: dict) -> None:
        old = self.workers[k]
        old.kill()
        results[old.queue.popleft()] = result
        new, self._spare = (self._spare, None) if self._spare and self._spare.alive() else (None, None)
        self.workers[k] = new or self._start()
        self._spare = self._start()  # loads while the replacement works
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


def resolve(target: str) -> Callable[[tuple], dict]:
    """The function named by ``module:function``."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def limit_memory(memory_bytes: int) -> None:
    """Cap this process's address space (``RLIMIT_AS``) at ``memory_bytes`` (a lower limit
    already set is kept). Where the platform has no such limit or refuses it, say so on stderr
    and go on without one."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            memory_bytes = min(memory_bytes, hard)
        if soft == resource.RLIM_INFINITY or soft > memory_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, hard))
    except (ImportError, AttributeError, ValueError, OSError) as e:  # not POSIX, or refused
        print(f"halt_eval worker: no memory limit ({type(e).__name__}: {e})", file=sys.stderr)


def serve(conn: Connection, run: Callable[[tuple], dict], memory_bytes: int | None = None) -> None:
    """Worker loop: receive batches of tasks, send back one result per task."""
    conn.send(_READY)
    while True:
        try:
            batch = conn.recv()
        except EOFError:
            return
        if batch is None:
            return
        for idx, task in batch:
            out_of_memory = False
            try:
                result = run(task)
            except MemoryError:
                out_of_memory = True  # reported below, once the frames holding the memory are gone
            except Exception as e:  # noqa: BLE001 - the reason goes into the verdict
                result = {"status": "error", "error": f"{type(e).__name__}: {e}"[:300]}
            if out_of_memory:
                gc.collect()
                limit = f"{memory_bytes:,}-byte" if memory_bytes else "available"
                result = {"status": "memory_limit",
                          "error": f"the check needed more than the worker's {limit} memory"}
            conn.send((idx, result))


def main(argv: Sequence[str]) -> int:
    fd, memory_bytes, runner, preload = int(argv[0]), int(argv[1]), argv[2], argv[3:]
    conn = Connection(fd)
    if memory_bytes:
        limit_memory(memory_bytes)
    logging.getLogger("math_verify").setLevel(logging.CRITICAL)
    try:
        for module in preload:
            importlib.import_module(module)
        run = resolve(runner)
    except Exception as e:  # noqa: BLE001 - reported as the first message, then exit
        print(f"halt_eval worker: cannot load {runner}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    serve(conn, run, memory_bytes or None)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
